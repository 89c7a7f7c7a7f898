package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/internal/ids"
)

// A SessionM event without user.id passes F4's filter, and its wallet
// lookup renders user_id null, left out, which get_user_offers needs. Nothing
// is sent, and nothing would be on a retry: it is a template dead letter at
// once, as the same fault in a target's body is, not ten attempts over two
// minutes taken for network errors while it holds its order_by key.
func TestLookupBodyThatDoesNotFitIsATemplateDeadLetter(t *testing.T) {
	h := start(t, setup{})
	noID := `{"event_id":"no-user-id","event_type":"offer_issued","user":{"external_id":"u-1001"},
	  "campaign":{"name":"Winter","braze_campaign_id":"` + winter + `"},"offer":{"offer_id":"o-1","name":"Coat"}}`
	if a := h.post("/hooks/sessionm/offers", noID, map[string]string{"Authorization": hookAuth}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 {
		t.Fatalf("dead letters %+v", dls)
	}
	dl := dls[0]
	if dl.Reason != "template" || dl.Attempts != 1 || !strings.Contains(dl.Error, `does not fit the endpoint: "user_id" is required (its template rendered nothing: is a variable missing?)`) {
		t.Fatalf("dead-lettered as %q after %d attempts (want template, 1): %s", dl.Reason, dl.Attempts, dl.Error)
	}
	if dl.Request == nil || !strings.Contains(dl.Request.Body, `"retailer_id"`) || strings.Contains(dl.Request.Body, `"user_id"`) {
		t.Fatalf("the dead letter should show the lookup as rendered: %+v", dl.Request)
	}
	if n := len(h.journal("/sessionm/connect/*")); n != 0 {
		t.Fatalf("%d lookups sent", n)
	}
}

// Events of different keys waiting for a retry give their window slots up
// (4 per worker: 64 at concurrency 16), so 64 users whose requests failed
// do not stop the events of every other user for a minute of backoff.
// Those that wait stay queued through a stop, and the next start delivers
// each once.
func TestEventsWaitingForARetryDoNotHoldBackOtherKeys(t *testing.T) {
	data := t.TempDir()
	minute := func(p *engine.Pipeline) { p.Delivery.BackoffInitial, p.Delivery.BackoffMax = time.Minute, time.Minute }
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, dataDir: data, users: 300, tweak: minute,
		opts: func(o *runner.Options) { o.Random = func() float64 { return 0.999 } }})
	user := func(i int) string { return ids.GeneratedSessionMID(i) }
	h.control("POST", "/faults", `{"emulator":"sessionm_core","error_ratio":1,"count":64}`)
	for i := 200; i < 264; i++ {
		h.post("/hooks/tags/"+user(i), `{"tags":["x"]}`, map[string]string{"Authorization": coreBasic})
	}
	h.eventually("64 failed first attempts", func() bool { return len(h.journal("/sessionm/core/*")) >= 64 })
	for i := 1; i <= 100; i++ {
		h.post("/hooks/tags/"+user(i), `{"tags":["y"]}`, map[string]string{"Authorization": coreBasic})
	}
	// delivered counts the 200s per user
	delivered := func() map[string]int {
		out := map[string]int{}
		for _, e := range h.journal("/sessionm/core/*") {
			if e["status"].(float64) == 200 {
				out[strings.Split(e["path"].(string), "/")[8]]++
			}
		}
		return out
	}
	h.eventually("the 100 healthy events, while 64 of other keys wait a minute for their retry", func() bool { return len(delivered()) == 100 })
	h.eventually("the 64 events waiting for their retry, alone in the inbox", func() bool { return h.store.Depth("ordered-tags") == 64 })
	h.stop()

	// A minute on, the next start delivers what waited, each once.
	h2 := start(t, setup{dirs: []string{"testdata/pipelines"}, dataDir: data, sandbox: h.sbURL, tweak: minute,
		opts: func(o *runner.Options) { o.Clock = aheadClock{2 * time.Minute} }})
	h2.drained()
	got := delivered()
	for i := 200; i < 264; i++ {
		if n := got[user(i)]; n != 1 {
			t.Errorf("user %d: %d deliveries after the restart, want 1", i, n)
		}
	}
}

// aheadClock is the wall clock moved on by a duration.
type aheadClock struct{ by time.Duration }

func (c aheadClock) Now() time.Time { return time.Now().Add(c.by) }
func (aheadClock) Sleep(ctx context.Context, d time.Duration) error {
	return delivery.RealClock{}.Sleep(ctx, d)
}

// panicOnce makes the first request whose path contains pathPart panic
// on the goroutine that sends it, as a bug in a connector would. It works
// through the runner's HTTP client: what a connection reads is fixed when
// a pipeline is built, and the types are shared by every test.
func panicOnce(pathPart string) func(o *runner.Options) {
	return func(o *runner.Options) {
		var done atomic.Bool
		o.Client = &http.Client{Transport: panicTransport(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(req.URL.Path, pathPart) && done.CompareAndSwap(false, true) {
				panic("injected: a connector bug")
			}
			return http.DefaultTransport.RoundTrip(req)
		})}
	}
}

type panicTransport func(*http.Request) (*http.Response, error)

func (f panicTransport) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// internalErrors waits for the dead letters of pipeline and checks they
// say what happened.
func (h *harness) internalErrors(pipeline string, want int) []inbox.DeadLetter {
	h.t.Helper()
	var dls []inbox.DeadLetter
	h.eventually("the internal_error dead letters", func() bool {
		dls, _ = h.store.DeadLetters(inbox.DeadFilter{Pipeline: pipeline})
		return len(dls) >= want
	})
	for _, dl := range dls {
		if dl.Reason != "internal_error" || !strings.Contains(dl.Error, "injected: a connector bug") || dl.Attempts != 1 {
			h.t.Fatalf("dead letter %q after %d attempts: %s", dl.Reason, dl.Attempts, dl.Error)
		}
	}
	return dls
}

// A panic while an event is tried (here while its target request is
// sent) used to end the engine, and the event, first in the
// inbox, ended it again on every start. The event is an internal_error
// dead letter instead, its key is free, and its later events go on.
func TestPanicInAnAttemptIsDeadLetteredAndTheLaneGoesOn(t *testing.T) {
	var log runner.LockedBuffer
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, opts: func(o *runner.Options) {
		panicOnce("/sessionm/core/")(o)
		o.Logger = slog.New(slog.NewJSONHandler(&log, nil))
	}})
	for i := range 3 {
		if a := h.post("/hooks/tags/"+ana, fmt.Sprintf(`{"tags":["step_%d"]}`, i), map[string]string{"Authorization": coreBasic}); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	h.drained()
	h.internalErrors("ordered-tags", 1)
	var order []string
	for _, e := range h.journal("/sessionm/core/*") {
		if e["status"].(float64) == 200 {
			order = append(order, e["body"].(string))
		}
	}
	if len(order) != 2 || !strings.Contains(order[0], "step_1") || !strings.Contains(order[1], "step_2") {
		t.Fatalf("sent %v; want the second and third delivered after the first panicked", order)
	}
	var logged int
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, `"panic":"injected: a connector bug"`) {
			logged++
			if !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, "panicOnce") {
				t.Errorf("the panic is logged without its stack, or not as an error: %s", line)
			}
		}
	}
	if logged != 1 {
		t.Errorf("the panic is logged %d times, want once:\n%s", logged, log.String())
	}
}

// A panic in a batch's goroutine dead-letters the events of the batch,
// with the request they made, and the lane goes on batching.
func TestPanicInABatchIsDeadLetteredAndTheLaneGoesOn(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 5 * time.Millisecond },
		opts: panicOnce("/campaigns/trigger/send")})
	h.post("/hooks/sessionm/offers", offerEvent("p-1", "u-1001"), map[string]string{"Authorization": hookAuth})
	dls := h.internalErrors("offer-issued-to-braze-campaign", 1)
	if len(dls) != 1 || dls[0].EventID != "p-1" || dls[0].Request == nil || !strings.Contains(dls[0].Request.Body, "u-1001") {
		t.Fatalf("dead letters %+v, want p-1's with its request", dls)
	}
	h.post("/hooks/sessionm/offers", offerEvent("p-2", "u-1002"), map[string]string{"Authorization": hookAuth})
	h.drained()
	if n := len(h.messages("u-1002")); n != 1 {
		t.Fatalf("u-1002 got %d messages after the panic, want 1", n)
	}
}

// A panic in a synchronous pipeline's lookup, which runs on a goroutine of
// its own when the pipeline caches, answers 500 and ends nothing: the
// next request for the same key is answered.
func TestPanicInASynchronousPipelineAnswers500(t *testing.T) {
	h := start(t, setup{opts: panicOnce("/get_user_offers")})
	if a := h.wallet(ana); a.status != http.StatusInternalServerError || !strings.Contains(a.body, "internal error") || strings.Contains(a.body, "injected") {
		t.Fatalf("%d %s, want 500 saying only that it is an internal error", a.status, a.body)
	}
	if a := h.wallet(ana); a.status != http.StatusOK {
		t.Fatalf("the next request: %d %s", a.status, a.body)
	}
}

// When the event a key's later events wait for becomes a dead letter, they
// go on without it, and a replay of it comes after them (README, Workers).
func TestKeyGoesOnPastItsDeadLetterAndAReplayComesAfter(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}}) // ordered-tags: 3 attempts
	admin := h.admin()
	h.control("POST", "/faults", `{"emulator":"sessionm_core","error_ratio":1,"count":3}`)
	for i := range 3 {
		h.post("/hooks/tags/"+ana, fmt.Sprintf(`{"tags":["step_%d"]}`, i), map[string]string{"Authorization": coreBasic})
	}
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "attempts_exhausted"})
	if len(dls) != 1 || !strings.Contains(string(dls[0].Event), "step_0") {
		t.Fatalf("dead letters %+v, want step_0's", dls)
	}
	if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, dls[0].ID), "", nil); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	h.drained()
	order := h.tagsDelivered()
	if strings.Join(order, ",") != "step_1,step_2,step_0" {
		t.Fatalf("delivered in order %v", order)
	}
}
