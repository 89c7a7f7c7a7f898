package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/liquid"
)

// respond.cache.until renders the time an answer stops being right: a
// time, nothing, or, for anything else, an error that keeps the answer
// out of the cache.
func TestRespondCacheUntil(t *testing.T) {
	for _, tt := range []struct {
		src, value string
		want       time.Time
		err        string
	}{
		{"{{ v }}", "2026-12-31T23:59:59Z", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), ""},
		{"{{ v }}", "2026-12-31T23:59:59.5+01:00", time.Date(2026, 12, 31, 22, 59, 59, 5e8, time.UTC), ""},
		{"{{ v }}", "", time.Time{}, ""},
		{" {{ v }} ", "  ", time.Time{}, ""},
		{"{{ v }}", "tomorrow", time.Time{}, `respond.cache.until rendered "tomorrow", which is not an RFC 3339 time`},
		{"{{ v | divided_by: 0 }}", "1", time.Time{}, "respond.cache.until: "},
	} {
		tmpl, problems := liquid.NewEngine().Parse(tt.src, liquid.Options{})
		if len(problems) > 0 {
			t.Fatalf("%s: %v", tt.src, problems)
		}
		r := &Respond{Status: 200, Cache: &ResponseCache{Until: tmpl}}
		reply, err := r.Build(map[string]any{"v": tt.value})
		if err != nil {
			t.Fatalf("%s with %q: %v", tt.src, tt.value, err)
		}
		if !reply.Until.Equal(tt.want) || (tt.err == "") != (reply.UntilErr == nil) ||
			(reply.UntilErr != nil && !strings.Contains(reply.UntilErr.Error(), tt.err)) {
			t.Errorf("%s with %q: until %v, error %v; want %v, %q", tt.src, tt.value, reply.Until, reply.UntilErr, tt.want, tt.err)
		}
	}
}
