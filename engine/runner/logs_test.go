package runner_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/runner"
)

// debugLogs starts a harness whose runner logs every line, Debug
// included, as JSON into the buffer it returns.
func debugLogs(t *testing.T, s setup) (*harness, *lockedBuffer) {
	logs := &lockedBuffer{}
	s.opts = func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return start(t, s), logs
}

// linesAbout returns the log lines whose event is event.
func linesAbout(t *testing.T, logs *lockedBuffer, event string) []map[string]any {
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
