package runner_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/runner"
)

// debugLogs starts a harness whose runner logs every line, Debug
// included, as JSON into the buffer it returns.
func debugLogs(t *testing.T, s setup) (*harness, *runner.LockedBuffer) {
	logs := &runner.LockedBuffer{}
	s.opts = func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return start(t, s), logs
}

// linesAbout returns the log lines whose event is event.
func linesAbout(t *testing.T, logs *runner.LockedBuffer, event string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line["event"] == event {
			out = append(out, line)
		}
	}
	return out
}

// An event the filter drops gets one log line, which says why; it had a
// second, without the why, from the ack.
func TestFilteredEventIsLoggedOnce(t *testing.T) {
	h, logs := debugLogs(t, setup{})
	// No user: the shipped filter drops it.
	body := `{"event_id":"p-1","event_type":"points_awarded","campaign":{"braze_canvas_id":"c-1"},"points":{"amount":5}}`
	if a := h.post("/hooks/sessionm/points", body, map[string]string{"Authorization": hookAuth}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	h.drained()
	lines := linesAbout(t, logs, "p-1")
	if len(lines) != 1 || lines[0]["msg"] != "filtered" || lines[0]["why"] == "" || lines[0]["why"] == nil {
		t.Fatalf("log lines about the filtered event: %v; want one, filtered, with why", lines)
	}
}

// A webhook without an id is answered with "<pipeline>#<n>" as its
// event_id; its log lines said "#<n>", so grepping the log for the id
// the sender got found nothing.
func TestEventWithoutIDIsLoggedByTheIDItWasAnswered(t *testing.T) {
	h, logs := debugLogs(t, setup{dirs: []string{"testdata/pipelines"}, users: 1})
	a := h.post("/hooks/campaign", fmt.Sprintf(`{"campaign_id":%q,"user":"load-000000","n":1}`, winter), nil)
	var answer struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(a.body), &answer); a.status != 200 || err != nil || !strings.HasPrefix(answer.EventID, "any-campaign#") {
		t.Fatalf("setup: %d %s, want an event_id any-campaign#<n>", a.status, a.body)
	}
	h.drained()
	lines := linesAbout(t, logs, answer.EventID)
	if len(lines) != 1 || lines[0]["msg"] != "delivered" {
		t.Fatalf("log lines naming %s: %v; want its delivery", answer.EventID, lines)
	}
}
