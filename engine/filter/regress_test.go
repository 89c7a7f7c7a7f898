package filter

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMessagesHaveNoGoTypes(t *testing.T) {
	opts := Options{Names: []string{"event"}, Now: func() time.Time { return time.Unix(0, 0) }}
	_, problems := CompileBool("now()", opts)
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "gives time") || strings.Contains(problems[0].Message, "time.Time") {
		t.Errorf("now() as a filter: %+v", problems)
	}
	p, problems := CompileBool("event.v", opts)
	if problems != nil {
		t.Fatal(problems)
	}
	for _, v := range []any{map[string]any{"a": 1}, []any{1}} {
		_, err := p.Eval(map[string]any{"event": map[string]any{"v": v}})
		if err == nil || strings.Contains(err.Error(), "interface") || !strings.HasPrefix(err.Error(), "the filter must give true or false, but it gave ") {
			t.Errorf("%v: %v", v, err)
		}
	}
}

// A method call on a variable still checks the variable's path.
func TestCheckSeesReceiverOfMethodCall(t *testing.T) {
	var seen [][]string
	opts := Options{Names: []string{"event"}, Check: func(p []string) string { seen = append(seen, p); return "" }}
	if _, problems := CompileBool("event.when.Unix() > 0", opts); problems != nil {
		t.Fatal(problems)
	}
	if len(seen) != 1 || !slices.Equal(seen[0], []string{"event", "when"}) {
		t.Errorf("checked %v, want [[event when]]", seen)
	}
}
