package runner

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// cutAnswer writes an answer's head and the start of its body, and then
// cuts it: "late" stalls until the request's own timeout ends it, "reset"
// closes the connection, "large" goes on past the 4 MiB the engine reads.
func cutAnswer(t *testing.T, w http.ResponseWriter, r *http.Request, how string, status int, header http.Header) {
	io.Copy(io.Discard, r.Body)
	if how == "reset" {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		header.Write(&b)
		b.WriteString("Content-Length: 100\r\n\r\n{\"message\":") // and no more: the length says 100
		io.WriteString(conn, b.String())
		return
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	if how == "large" {
		w.WriteHeader(status)
		w.Write([]byte(`{"dispatch_id":"d1","message":"success","pad":"` + strings.Repeat("x", 4<<20) + `"}`))
		return
	}
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(status)
	io.WriteString(w, `{"message":`)
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// cutTimeout is the delivery.timeout for answers cut how: short for one
// that stalls until it ends, long enough otherwise that reading 4 MiB
// under -race on a busy machine does not end it first (the "large" case
// failed about one run in five so).
func cutTimeout(how string) time.Duration {
	if how == "late" {
		return 200 * time.Millisecond
	}
	return 10 * time.Second
}

// sendTriggers posts n campaign webhooks at once to a runner delivering
// testdata's any-campaign to braze (linger: how long a batch waits to be
// merged; the timeout for answers cut how, 3 attempts 10 ms apart), waits
// until none is queued, and stops the runner, so its log lines are all
// written.
func sendTriggers(t *testing.T, braze *httptest.Server, n int, linger time.Duration, how string, logger *slog.Logger) *inbox.Store {
	t.Helper()
	proj := loaderFor(t, braze.URL).Load([]string{"testdata/pipelines"})
	for _, p := range proj.Pipelines {
		p.Delivery.Linger = linger
		p.Delivery.Timeout = cutTimeout(how)
		p.Delivery.Attempts = 3
		p.Delivery.BackoffInitial, p.Delivery.BackoffMax = 10*time.Millisecond, 10*time.Millisecond
	}
	r, store := startRunnerWith(t, Options{Pipelines: proj.Pipelines, Logger: logger})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(srv.URL+"/hooks/campaign", "application/json", strings.NewReader(fmt.Sprintf(`{"campaign_id":"c1","user":"u-%d","n":%d}`, i, i)))
			if err != nil || resp.StatusCode != 200 {
				t.Error(err, resp)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for store.Depth("any-campaign") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("still queued after 15 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Stop(5 * time.Second)
	return store
}

// deliverOneTrigger sends one trigger through sendTriggers.
func deliverOneTrigger(t *testing.T, braze *httptest.Server, how string) *inbox.Store {
	t.Helper()
	return sendTriggers(t, braze, 1, time.Millisecond, how, nil)
}

// Braze took the trigger (201) and its body never came whole: the
// message was sent, so the event is delivered, not sent again on every
// attempt (a campaign message each) and then dead-lettered for a replay
// to send once more.
func TestMidBodyTimeoutAfter201IsNotSentAgain(t *testing.T) {
	for _, how := range []string{"late", "reset", "large"} {
		t.Run(how, func(t *testing.T) {
			var got atomic.Int32
			braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1)
				cutAnswer(t, w, r, how, http.StatusCreated, http.Header{})
			}))
			defer braze.Close()
			store := deliverOneTrigger(t, braze, how)
			dls, _ := store.DeadLetters(inbox.DeadFilter{})
			for _, dl := range dls {
				t.Errorf("dead letter: %s after %d attempts: %s", dl.Reason, dl.Attempts, dl.Error)
			}
			if n := got.Load(); n != 1 {
				t.Errorf("Braze answered 201, and the trigger was sent %d times (a campaign message each)", n)
			}
		})
	}
}

// A refusal whose body was cut is judged by its status, as a whole one
// is: a 400 is a dead letter at once, a 503 is retried. The dead letter
// shows the status and what came of the body, marked as cut, and says
// once why.
func TestCutRefusalIsJudgedByItsStatus(t *testing.T) {
	for _, tt := range []struct {
		how      string
		status   int
		reason   string
		attempts int
		err      string
		excerpt  string
	}{
		{"late", 400, "rejected", 1, "HTTP 400, but the rest of its body did not come within 200ms, the pipeline's delivery.timeout", `{"message": [cut: the rest did not come]`},
		{"reset", 503, "attempts_exhausted", 3, "HTTP 503, but its body was cut: unexpected EOF", `{"message": [cut: the rest did not come]`},
		{"large", 400, "rejected", 1, "HTTP 400, but the answer is over 4194304 bytes", `x... [cut: over the size limit]`},
	} {
		t.Run(tt.how, func(t *testing.T) {
			var got atomic.Int32
			braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1)
				cutAnswer(t, w, r, tt.how, tt.status, http.Header{})
			}))
			defer braze.Close()
			store := deliverOneTrigger(t, braze, tt.how)
			dls, _ := store.DeadLetters(inbox.DeadFilter{})
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dls))
			}
			dl := dls[0]
			if dl.Reason != tt.reason || dl.Attempts != tt.attempts || int(got.Load()) != tt.attempts {
				t.Errorf("dead-lettered as %s after %d attempts (%d sent), want %s after %d", dl.Reason, dl.Attempts, got.Load(), tt.reason, tt.attempts)
			}
			if !strings.Contains(dl.Error, tt.err) || strings.Contains(dl.Error, "reading the answer") {
				t.Errorf("error %q, want %q", dl.Error, tt.err)
			}
			if dl.Response == nil || dl.Response.Status != tt.status || !strings.HasSuffix(dl.Response.Excerpt, tt.excerpt) {
				t.Errorf("response %+v, want %d and an excerpt ending %q", dl.Response, tt.status, tt.excerpt)
			}
		})
	}
}

// A 429 whose body was cut still says when to come back: the connection
// is paused until then, and the event waits for it instead of going
// again after its backoff of 10 ms.
func TestMidBody429WaitsForRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		first := len(times) == 1
		mu.Unlock()
		if first {
			cutAnswer(t, w, r, "reset", http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
			return
		}
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"dispatch_id":"d1","message":"success"}`)
	}))
	defer braze.Close()
	store := deliverOneTrigger(t, braze, "reset")
	mu.Lock()
	defer mu.Unlock()
	if dls, _ := store.DeadLetters(inbox.DeadFilter{}); len(times) != 2 || len(dls) != 0 {
		t.Fatalf("%d requests and %d dead letters; want the 429 and a delivery", len(times), len(dls))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("the retry went %s after a 429 with Retry-After: 1 (its body was cut)", gap.Round(time.Millisecond))
	}
}
