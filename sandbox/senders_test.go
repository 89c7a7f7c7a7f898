package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/diag"
)

// scripted answers each request with the next status of its script
// (repeating the last one), optionally with a Retry-After.
type scripted struct {
	mu         sync.Mutex
	statuses   []int
	retryAfter string
	calls      int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status := s.statuses[min(s.calls, len(s.statuses)-1)]
	s.calls++
	s.mu.Unlock()
	if status == http.StatusTooManyRequests && s.retryAfter != "" {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	if status == http.StatusFound {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
}

// testSenders records the waits instead of sleeping.
func testSenders(t *testing.T) (*senders, *[]time.Duration) {
	t.Helper()
	var waits []time.Duration
	var mu sync.Mutex
	sd := newSenders(&Sandbox{now: func() time.Time { return t0 }}, nil, func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	})
	t.Cleanup(sd.stop)
	return sd, &waits
}

// TestBrazeWebhookRetrySchedule checks the sender against braze.md §4:
// 408, 429 and 5xx are retried up to 5 times with exponential backoff,
// other 4xx and redirects are not, and Retry-After is honoured.
func TestBrazeWebhookRetrySchedule(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name       string
		statuses   []int
		retryAfter string
		scale      float64
		delivered  bool
		waits      []time.Duration
		reason     string
	}{
		{"5xx then success", []int{503, 500, 200}, "", 1, true, []time.Duration{30 * s, 60 * s}, ""},
		{"408 is retried", []int{408, 201}, "", 1, true, []time.Duration{30 * s}, ""},
		{"429 waits for Retry-After when longer", []int{429, 200}, "300", 1, true, []time.Duration{300 * s}, ""},
		{"429 keeps the backoff when Retry-After is shorter", []int{429, 200}, "1", 1, true, []time.Duration{30 * s}, ""},
		{"other 4xx is not retried", []int{404}, "", 1, false, nil, "HTTP 404 is not retried"},
		{"a redirect is neither followed nor retried", []int{302}, "", 1, false, nil, "HTTP 302 is not retried"},
		{"5 retries, then give up", []int{503}, "", 1, false,
			[]time.Duration{30 * s, 60 * s, 120 * s, 240 * s, 480 * s}, "gave up after 6 attempts: HTTP 503"},
		{"a Retry-After past Braze's 30 minutes is cut to them", []int{429}, "3600", 1, false,
			[]time.Duration{30 * time.Minute}, "gave up after 2 attempts: HTTP 429"},
		{"time scale shrinks the waits", []int{500, 500, 204}, "", 0.001, true,
			[]time.Duration{30 * time.Millisecond, 60 * time.Millisecond}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := &scripted{statuses: tt.statuses, retryAfter: tt.retryAfter}
			srv := httptest.NewServer(target)
			defer srv.Close()
			sd, waits := testSenders(t)
			d := sd.deliver(context.Background(), outbound{user: "u-1001", method: "POST", url: srv.URL, header: http.Header{}, body: []byte("{}")},
				brazeWebhookRetries, tt.scale, time.Second)
			if d.Delivered != tt.delivered || d.Reason != tt.reason {
				t.Fatalf("delivered=%v reason=%q, want %v %q", d.Delivered, d.Reason, tt.delivered, tt.reason)
			}
			if len(d.Attempts) != len(tt.waits)+1 || target.calls != len(d.Attempts) {
				t.Fatalf("%d attempts (%d calls), want %d", len(d.Attempts), target.calls, len(tt.waits)+1)
			}
			if len(*waits) != len(tt.waits) {
				t.Fatalf("waits %v, want %v", *waits, tt.waits)
			}
			var total time.Duration
			for i, w := range *waits {
				if w != tt.waits[i] {
					t.Fatalf("waits %v, want %v", *waits, tt.waits)
				}
				if d.Attempts[i+1].Waited != Duration(w) {
					t.Fatalf("attempt %d reports waiting %v, slept %v", i+1, d.Attempts[i+1].Waited, w)
				}
				total += w
			}
			if tt.scale == 1 && total > 30*time.Minute {
				t.Fatalf("retries span %v; Braze retries within 30 minutes", total)
			}
		})
	}
}

func TestSenderRetriesUnreachableTargets(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	sd, waits := testSenders(t)
	d := sd.deliver(context.Background(), outbound{method: "POST", url: addr, header: http.Header{}}, sessionmEventRetries, 1, time.Second)
	if d.Delivered || len(d.Attempts) != 4 || d.Attempts[0].Error == "" {
		t.Fatalf("delivery %+v: want 4 failed attempts with errors", d)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; len(*waits) != 3 || (*waits)[2] != want[2] {
		t.Fatalf("waits %v, want %v", *waits, want)
	}
	if !strings.HasPrefix(d.Reason, "gave up after 4 attempts: ") {
		t.Fatalf("reason %q", d.Reason)
	}
}

func TestSenderStopsWhenCancelled(t *testing.T) {
	srv := httptest.NewServer(&scripted{statuses: []int{503}})
	defer srv.Close()
	sd := newSenders(&Sandbox{now: time.Now}, nil, func(context.Context, time.Duration) error { return context.Canceled })
	defer sd.stop()
	d := sd.deliver(context.Background(), outbound{method: "POST", url: srv.URL, header: http.Header{}}, brazeWebhookRetries, 1, time.Second)
	if d.Delivered || len(d.Attempts) != 1 || !strings.Contains(d.Reason, "stopped") {
		t.Fatalf("delivery %+v", d)
	}
}

func TestLineCol(t *testing.T) {
	src := "ab\ncé{{ x }"
	for _, tt := range []struct{ off, line, col int }{{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {6, 2, 3}, {100, 2, 9}} {
		if l, c := diag.LineCol(src, tt.off); l != tt.line || c != tt.col {
			t.Errorf("offset %d: %d:%d, want %d:%d", tt.off, l, c, tt.line, tt.col)
		}
	}
}
