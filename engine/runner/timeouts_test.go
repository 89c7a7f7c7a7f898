package runner

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/spec"
)

// pauseClock is the wall clock that says when someone begins to wait out
// a pause of the test's length (between 1 and 2 s): the governor holding
// a request back.
type pauseClock struct{ waiting chan struct{} }

func (pauseClock) Now() time.Time { return time.Now() }
func (c pauseClock) Sleep(ctx context.Context, d time.Duration) error {
	if d > time.Second && d <= 2*time.Second {
		select {
		case c.waiting <- struct{}{}:
		default:
		}
	}
	return delivery.RealClock{}.Sleep(ctx, d)
}

// laneEnds are the two ways a lane stops taking work: the engine stops,
// or a reload retires its version; each returns once the lane is done.
var laneEnds = []struct {
	name string
	end  func(r *Runner, l *lane, grace time.Duration)
}{
	{"stop", func(r *Runner, _ *lane, grace time.Duration) { r.Stop(grace) }},
	{"reload", func(r *Runner, l *lane, grace time.Duration) { r.retire(l, grace); <-l.done }},
}

// queuedOnce fails t unless pipeline's one event is queued, with attempts
// counted, and nothing is dead-lettered.
func queuedOnce(t *testing.T, store *inbox.Store, pipeline string, attempts int) {
	t.Helper()
	recs, err := store.ReadAfter(pipeline, 0, 10)
	if err != nil || len(recs) != 1 || recs[0].Attempts != attempts {
		t.Fatalf("queued %+v (%v); want the event, with %d attempts counted", recs, err, attempts)
	}
	if dls, _ := store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Fatalf("dead letters: %+v", dls)
	}
}

// The peer paused the connection (429, Retry-After: 2) and the event's
// next lookup waits for the pause to end when the lane stops (the engine
// stops, or a reload retires the version). Like a target request waiting
// for the connection, it stays queued at once, not counted as an attempt:
// waiting under the lane's hard context, it held the stop up until the
// pause ended, then was sent, and the target request after it refused
// (a lookup wasted); with a pause longer than the grace, the stop took
// the whole grace (a reload, 30 s).
func TestLookupWaitingForAPauseEndsWithTheLane(t *testing.T) {
	for _, tt := range laneEnds {
		t.Run(tt.name, func(t *testing.T) {
			var lookups, targets atomic.Int32
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/sink" {
					targets.Add(1)
					return
				}
				if lookups.Add(1) == 1 {
					w.Header().Set("Retry-After", "2")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				io.WriteString(w, `{}`)
			}))
			defer api.Close()
			clock := pauseClock{waiting: make(chan struct{}, 1)}
			r, store := startRunnerWith(t, Options{Pipelines: loadAPI(t, "testdata/paused-lookup", api.URL), Clock: clock})
			defer r.Stop(5 * time.Second)
			postOne(t, r, "/hooks/lookup")
			select {
			case <-clock.waiting: // the retry's lookup waits out the pause
			case <-time.After(10 * time.Second):
				t.Fatal("no lookup waited for the pause")
			}
			const grace = 10 * time.Second // longer than the pause
			began := time.Now()
			tt.end(r, r.lane("lookup-then-send"), grace)
			if took := time.Since(began); took > grace/2 {
				t.Errorf("the lane took %s to end", took.Round(time.Millisecond))
			}
			if n := lookups.Load(); n != 1 {
				t.Errorf("%d lookups; want the first only, none after the lane ended", n)
			}
			if n := targets.Load(); n != 0 {
				t.Errorf("%d target requests; want none", n)
			}
			queuedOnce(t, store, "lookup-then-send", 1) // the 429
		})
	}
}

// A lookup on the wire when the lane stops is cut, and its event stays
// queued as it was: its answer could only feed a target request the lane
// no longer sends. Left to finish, a lookup the peer took its time over
// held the stop (or the reload's retirement) up for the whole grace.
func TestLookupOnTheWireIsCutWithTheLane(t *testing.T) {
	for _, tt := range laneEnds {
		t.Run(tt.name, func(t *testing.T) {
			var targets atomic.Int32
			lookupSent := make(chan struct{}, 1)
			lookupCut := make(chan bool, 1)
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/sink" {
					targets.Add(1)
					return
				}
				lookupSent <- struct{}{}
				select {
				case <-r.Context().Done():
					lookupCut <- true
				case <-time.After(20 * time.Second):
					lookupCut <- false
					io.WriteString(w, `{}`)
				}
			}))
			defer api.Close()
			r, store := startRunner(t, loadAPI(t, "testdata/paused-lookup", api.URL))
			defer r.Stop(5 * time.Second)
			postOne(t, r, "/hooks/lookup")
			<-lookupSent
			const grace = 10 * time.Second
			began := time.Now()
			tt.end(r, r.lane("lookup-then-send"), grace)
			if took := time.Since(began); took > grace/2 {
				t.Errorf("the lane took %s to end", took.Round(time.Millisecond))
			}
			if !<-lookupCut {
				t.Error("the lookup was answered, not cut")
			}
			if n := targets.Load(); n != 0 {
				t.Errorf("%d target requests; want none", n)
			}
			queuedOnce(t, store, "lookup-then-send", 0)
		})
	}
}

// A step that changes something at its peer (an offer issued), on the wire
// when the lane stops, is left to finish, and its event's target request
// then goes, within the grace, a lookup after the step too: cut, or left
// to finish with its target refused after it, the event stayed queued and
// the next run or version issued the offer again (QA runs).
func TestAWriteStepOnTheWireCommitsItsEvent(t *testing.T) {
	tests := []struct {
		name, pipeline, path string
		lookups              int32
		end                  func(r *Runner, l *lane, grace time.Duration) // returns once l is done
	}{
		{"stop", "write-then-send", "/hooks/write", 0, func(r *Runner, _ *lane, grace time.Duration) { r.Stop(grace) }},
		{"reload", "write-then-send", "/hooks/write", 0, func(r *Runner, l *lane, grace time.Duration) { r.retire(l, grace); <-l.done }},
		{"stop, a lookup after the step", "write-lookup-send", "/hooks/write-lookup", 1, func(r *Runner, _ *lane, grace time.Duration) { r.Stop(grace) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var issued, lookups, targets atomic.Int32
			issueSent, release := make(chan struct{}, 1), make(chan struct{})
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				switch r.URL.Path {
				case "/sink":
					targets.Add(1)
				case "/things":
					lookups.Add(1)
				case "/issue":
					issueSent <- struct{}{}
					<-release
					issued.Add(1)
				}
				io.WriteString(w, `{}`)
			}))
			defer api.Close()
			r, store := startRunner(t, loadAPI(t, "testdata/write-then-send", api.URL))
			defer r.Stop(5 * time.Second)
			postOne(t, r, tt.path)
			<-issueSent
			l := r.lane(tt.pipeline)
			ended := make(chan struct{})
			go func() {
				tt.end(r, l, 10*time.Second)
				close(ended)
			}()
			<-l.soft.Done()
			close(release)
			select {
			case <-ended:
			case <-time.After(15 * time.Second):
				t.Fatal("the lane did not end")
			}
			if n, k, m := issued.Load(), lookups.Load(), targets.Load(); n != 1 || k != tt.lookups || m != 1 {
				t.Errorf("%d issue requests answered, %d lookups, %d target requests; want 1, %d and 1: the event committed", n, k, m, tt.lookups)
			}
			if recs, err := store.ReadAfter(tt.pipeline, 0, 10); err != nil || len(recs) != 0 {
				t.Errorf("queued %+v (%v); want nothing: the event was delivered", recs, err)
			}
		})
	}
}

// A step that changes its peer, cut on the wire when the grace runs out,
// is counted as cut by the stop, as a target request is: the log said "no
// request was on the wire", and the next run issued the offer again with
// nothing said (a QA run). So is a lookup after such a step.
func TestAWriteStepCutByTheGraceIsCounted(t *testing.T) {
	for _, tt := range []struct{ pipeline, path, hangs string }{
		{"write-then-send", "/hooks/write", "/issue"},
		{"write-lookup-send", "/hooks/write-lookup", "/things"},
	} {
		t.Run(tt.pipeline, func(t *testing.T) {
			hung := make(chan struct{}, 1)
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path == tt.hangs {
					hung <- struct{}{}
					<-r.Context().Done()
					return
				}
				io.WriteString(w, `{}`)
			}))
			defer api.Close()
			r, store := startRunner(t, loadAPI(t, "testdata/write-then-send", api.URL))
			postOne(t, r, tt.path)
			<-hung
			r.Stop(200 * time.Millisecond)
			if got := r.CutByStop(); got[tt.pipeline] != 1 {
				t.Errorf("cut by the stop: %v; want %s 1", got, tt.pipeline)
			}
			queuedOnce(t, store, tt.pipeline, 0)
		})
	}
}

// A target request has the pipeline's delivery.timeout when it sets one,
// else its connection's timeout: the connection's was used by lookups
// only, and a target request on a connection with `timeout: 200ms` still
// waited the default 10 s.
func TestTargetRequestTimeout(t *testing.T) {
	// What became of each campaign's first request: "cut" by the engine,
	// or "answered" after a second.
	outcomes := map[string]chan string{"connection": make(chan string, 1), "own": make(chan string, 1)}
	braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			CampaignID string `json:"campaign_id"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		outcome := "cut"
		select {
		case <-time.After(time.Second): // past the connection's 200ms
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"dispatch_id":"d1","message":"success"}`)
			outcome = "answered"
		case <-r.Context().Done():
		}
		select {
		case outcomes[body.CampaignID] <- outcome:
		default: // a retry's: the first one is kept
		}
	}))
	defer braze.Close()
	proj := loaderFor(t, braze.URL).Load([]string{"testdata/conn-timeout"})
	if proj.Diagnostics.HasErrors() {
		t.Fatal(proj.Diagnostics.Items())
	}
	r, _ := startRunner(t, proj.Pipelines)
	defer r.Stop(5 * time.Second)
	hooks := httptest.NewServer(r.Handler())
	defer hooks.Close()
	tests := []struct {
		name, route, campaign string
		want                  string
	}{
		{"the connection's timeout", "/hooks/connection-timeout", "connection", "cut"},
		{"delivery.timeout wins", "/hooks/own-timeout", "own", "answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(hooks.URL+tt.route, "application/json", strings.NewReader(`{"campaign_id":"`+tt.campaign+`","user":"u-1"}`))
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("webhook: %v %v", err, resp)
			}
			resp.Body.Close()
			select {
			case got := <-outcomes[tt.campaign]:
				if got != tt.want {
					t.Errorf("the request was %s; want %s", got, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no request")
			}
		})
	}
}

// A replaced version's grace covers the longest timeout of its requests,
// lookups' included: a request on the wire ends by itself within it.
func TestRetireGraceCoversTheLongestTimeout(t *testing.T) {
	conn := func(timeout time.Duration) *spec.Connection { return &spec.Connection{Timeout: timeout} }
	tests := []struct {
		name     string
		target   time.Duration // the target connection's timeout
		delivery time.Duration // delivery.timeout, 0 when left out
		lookup   time.Duration // a lookup connection's timeout, 0 for no lookup
		want     time.Duration
	}{
		{"defaults", engine.DefaultTimeout, 0, 0, retireGrace},
		{"the connection's", 45 * time.Second, 0, 0, 46 * time.Second},
		{"delivery.timeout wins over the connection's", 45 * time.Second, 5 * time.Second, 0, retireGrace},
		{"delivery.timeout", engine.DefaultTimeout, time.Minute, 0, 61 * time.Second},
		{"a lookup's", engine.DefaultTimeout, 0, 40 * time.Second, 41 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &engine.Pipeline{Target: &engine.Call{Conn: conn(tt.target)}, Delivery: engine.Delivery{Timeout: tt.delivery}}
			if tt.lookup > 0 {
				p.Steps = []*engine.Step{{Name: "expr"}, {Name: "lookup", Call: &engine.Call{Conn: conn(tt.lookup)}}}
			}
			if got := retireGraceOf(p); got != tt.want {
				t.Errorf("grace %s; want %s", got, tt.want)
			}
		})
	}
}

// postOne sends r the webhook {"n":1} on path, from a listener that
// lasts as long as the test, and fails the test unless it is accepted.
func postOne(t *testing.T, r *Runner, path string) {
	t.Helper()
	hooks := httptest.NewServer(r.Handler())
	t.Cleanup(hooks.Close)
	resp, err := http.Post(hooks.URL+path, "application/json", strings.NewReader(`{"n":1}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
}
