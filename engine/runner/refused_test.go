package runner_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/runner"
)

// refusedLines are the "webhook refused" lines in logs.
func refusedLines(t *testing.T, logs *runner.LockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "webhook refused" {
			out = append(out, line)
		}
	}
	return out
}

// A refused webhook was only counted, in engine_events_refused_total:
// nothing in the log said which pipeline refused whom, or why. Each is
// now logged with the pipeline, reason, status and the sender's address,
// never its body or credentials.
func TestRefusedWebhooksAreLogged(t *testing.T) {
	const route = "/hooks/sessionm/offers"
	const pipeline = "offer-issued-to-braze-campaign"
	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
		status int
		reason string
	}{
		{"no credentials", `{"secret-body":1}`, nil, 401, "unauthorized"},
		{"wrong credentials", `{"secret-body":1}`, map[string]string{"Authorization": "Bearer wrong-secret-token"}, 401, "unauthorized"},
		{"too large", `{"secret-body":"` + strings.Repeat("x", 600) + `"}`, map[string]string{"Authorization": hookAuth}, 413, "too_large"},
		{"empty", ``, map[string]string{"Authorization": hookAuth}, 400, "not_json"},
		{"not JSON", `{"secret-body":`, map[string]string{"Authorization": hookAuth}, 400, "not_json"},
		{"not UTF-8", "{\"secret-body\":\"\xff\"}", map[string]string{"Authorization": hookAuth}, 400, "not_json"},
		// A SessionM event is an object; these were accepted, then
		// dead-lettered by the filter.
		{"an array", ` ["secret-body"]`, map[string]string{"Authorization": hookAuth}, 400, "not_json"},
		{"null", "\nnull", map[string]string{"Authorization": hookAuth}, 400, "not_json"},
		{"id too long", `{"event_id":"secret-body-` + strings.Repeat("x", 1100) + `"}`, map[string]string{"Authorization": hookAuth}, 400, "id_too_long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &runner.LockedBuffer{}
			h := start(t, setup{
				tweak: func(p *engine.Pipeline) {
					if p.Name == pipeline && tc.reason != "id_too_long" {
						p.Source.MaxBody = 512
					}
				},
				opts: jsonLogTo(logs),
			})
			if a := h.post(route, tc.body, tc.header); a.status != tc.status {
				t.Fatalf("setup: %d %s; want %d", a.status, a.body, tc.status)
			}
			lines := refusedLines(t, logs)
			if len(lines) != 1 {
				t.Fatalf("%d lines about the refused webhook; want 1\n%s", len(lines), logs.String())
			}
			l := lines[0]
			if l["level"] != "WARN" || l["pipeline"] != pipeline || l["reason"] != tc.reason || l["status"] != float64(tc.status) || !strings.HasPrefix(l["remote"].(string), "127.0.0.1:") {
				t.Errorf("logged %v; want a warning with pipeline %s, reason %s, status %d and the remote address", l, pipeline, tc.reason, tc.status)
			}
			for _, leak := range []string{"secret-body", "wrong-secret-token", "sandbox-sessionm-webhook-token"} {
				if strings.Contains(logs.String(), leak) {
					t.Errorf("the log shows %q from the refused request\n%s", leak, logs.String())
				}
			}
		})
	}
}

// A full inbox refuses every webhook until it drains, at the senders'
// rate: one line a second per pipeline and reason, the next saying how
// many were left out, and another reason is not held back by the first.
// When no next line comes, the last refusal held back goes out a second
// after the first was, with the count of the others: held for a next
// line, the count of a burst was lost (a QA run).
func TestRefusedWebhooksAreLoggedOnceASecond(t *testing.T) {
	logs := &runner.LockedBuffer{}
	h := start(t, setup{opts: func(o *runner.Options) {
		o.MaxInbox = 1
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}})
	// Braze answers slowly, so the one event stored keeps the inbox full.
	h.control("POST", "/faults", `{"emulator":"braze","latency":"3s"}`)
	auth := map[string]string{"Authorization": hookAuth}
	if a := h.post("/hooks/sessionm/offers", offerEvent("full-0", "u-1001"), auth); a.status != 200 {
		t.Fatalf("setup: %d %s", a.status, a.body)
	}
	began := time.Now()
	for i := range 5 {
		if a := h.post("/hooks/sessionm/offers", offerEvent(fmt.Sprintf("full-%d", i+1), "u-1001"), auth); a.status != 503 {
			t.Fatalf("setup: %d %s; want 503 while the inbox is full", a.status, a.body)
		}
	}
	h.post("/hooks/sessionm/offers", `{}`, nil) // another reason: logged at once
	if time.Since(began) > 900*time.Millisecond {
		t.Skip("the webhooks took a second: the limit cannot be seen")
	}
	var full, unauthorized []map[string]any
	h.eventually("the last refusal held back", func() bool {
		full, unauthorized = nil, nil
		for _, l := range refusedLines(t, logs) {
			switch l["reason"] {
			case "inbox_full":
				full = append(full, l)
			case "unauthorized":
				unauthorized = append(unauthorized, l)
			}
		}
		return len(full) >= 2
	})
	if len(full) != 2 || full[0]["left_out"] != nil || full[1]["left_out"] != float64(3) {
		t.Errorf("inbox_full lines %v; want 2, the second (the last refusal) saying 3 more were left out", full)
	}
	if len(unauthorized) != 1 {
		t.Errorf("unauthorized lines %v; want 1", unauthorized)
	}
}

// A body cut short is refused like any other webhook, counted and logged,
// and the answer does not name the listener's sockets (it said "reading
// the body: read tcp 127.0.0.1:...: unexpected EOF" and counted nothing:
// a QA run).
func TestCutBodyIsRefusedAndLogged(t *testing.T) {
	logs := &runner.LockedBuffer{}
	h := start(t, setup{opts: jsonLogTo(logs)})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.engine.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /hooks/sessionm/offers HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event_id\":", hookAuth)
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 400") || !strings.Contains(string(answer), "the body ended before it was whole") || strings.Contains(string(answer), "127.0.0.1") {
		t.Fatalf("answer %q; want 400 saying the body ended, naming no socket", answer)
	}
	h.eventually("the refusal logged", func() bool {
		lines := refusedLines(t, logs)
		return len(lines) == 1 && lines[0]["reason"] == "body_unread" && lines[0]["status"] == float64(400)
	})
}
