package braze

import (
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/spec"
)

// braze.md §1: a trigger call that targets a segment or Connected Audience
// is limited to 250 a minute; with recipients it is one of the 250,000 an
// hour the send endpoints share. The pool follows the body.
func TestTriggerPoolFollowsTheBody(t *testing.T) {
	recipient := []any{map[string]any{"external_user_id": "u-1001"}}
	tests := []struct {
		name string
		body any
		want string
	}{
		{"recipients", map[string]any{"campaign_id": "c", "recipients": recipient}, "messaging"},
		{"broadcast", map[string]any{"campaign_id": "c", "broadcast": true}, "broadcast"},
		{"broadcast false", map[string]any{"campaign_id": "c", "broadcast": false, "recipients": recipient}, "messaging"},
		{"audience", map[string]any{"campaign_id": "c", "broadcast": true, "audience": map[string]any{"AND": []any{}}}, "broadcast"},
		{"audience beside recipients", map[string]any{"campaign_id": "c", "audience": map[string]any{}, "recipients": recipient}, "broadcast"},
		{"audience null", map[string]any{"campaign_id": "c", "audience": nil, "recipients": recipient}, "messaging"},
		{"not an object", "broadcast", "messaging"},
		{"no body", nil, "messaging"},
	}
	for _, endpoint := range []string{"campaign_trigger", "canvas_trigger"} {
		e, _ := REST.Endpoint(endpoint)
		for _, tt := range tests {
			if got := e.Pool(tt.body); got != tt.want {
				t.Errorf("%s, %s: pool %q, want %q", endpoint, tt.name, got, tt.want)
			}
		}
	}
	track, _ := REST.Endpoint("users_track")
	if got := track.Pool(map[string]any{"broadcast": true}); got != "users_track" {
		t.Errorf("users_track: pool %q", got)
	}
	var raw *spec.Endpoint // a raw call has no endpoint and no pool
	if got := raw.Pool(map[string]any{"broadcast": true}); got != "" {
		t.Errorf("raw call: pool %q", got)
	}
	want := map[string]spec.RateLimit{
		"messaging":   {Requests: 250_000, Window: time.Hour},
		"broadcast":   {Requests: 250, Window: time.Minute, Isolated: true},
		"users_track": {Requests: 3_000, Window: 3 * time.Second},
	}
	for pool, l := range want {
		if REST.RateLimits[pool] != l {
			t.Errorf("pool %s: %+v, want %+v", pool, REST.RateLimits[pool], l)
		}
	}
}
