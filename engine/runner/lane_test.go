package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/secrets"
)

// noWaitClock skips the wait before a dead letter is written again.
type noWaitClock struct{}

func (noWaitClock) Now() time.Time                                   { return time.Now() }
func (noWaitClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// When a dead letter cannot be written (a full disk), the event comes back
// to the workers to have its dead letter written again, not to be sent
// again: a damaged record, which has no event to evaluate, used to crash
// the worker that took it.
func TestDeadLetterThatCannotBeWrittenIsWrittenAgain(t *testing.T) {
	l := laneOnAFullDisk(t)
	l.slots <- struct{}{} // taken as the feeder takes it
	l.dispatch(inbox.Record{Seq: 1, Payload: []byte{0x01, 0x05, 'a'}})
	for round := range 2 {
		it := <-l.work
		if it.deadAgain == nil || it.ev != nil {
			t.Fatalf("round %d: the damaged event came back to be processed, not to have its dead letter written", round)
		}
		l.process(it) // writes the dead letter again, fails again, comes back
	}
}

// On a full disk each event's dead letter fails every few seconds, and
// each failure wrote an error line: 1,365 lines in 22 s for 292 events (a
// QA run). At most one a second is written, the next saying how many were
// left out; with the held-back line flushed at the stop, lines and
// left_out together count every failure.
func TestDeadLetterWriteErrorsAreLimited(t *testing.T) {
	var logs LockedBuffer
	l := laneOnAFullDiskLogging(t, slog.New(slog.NewJSONHandler(&logs, nil)))
	const failures = 20
	l.slots <- struct{}{}
	l.dispatch(inbox.Record{Seq: 1, Payload: []byte{0x01, 0x05, 'a'}})
	for range failures - 1 {
		l.process(<-l.work)
	}
	const msg = "cannot store a dead letter; the event stays queued and its dead letter will be written again"
	if lines, _ := LinesOf(logs.String(), msg); lines != 1 {
		t.Errorf("%d lines for %d failures within a second; want 1, the rest held back", lines, failures)
	}
	l.r.storeErrors.flushAll()
	if lines, leftOut := LinesOf(logs.String(), msg); lines != 2 || lines+leftOut != failures {
		t.Errorf("%d lines, left_out %d after the flush; want 2 lines accounting for %d failures", lines, leftOut, failures)
	}
}

// An event the stop lets go with its dead letter unwritten (a full disk)
// is counted for the stop's last word: it stays queued, and the next run
// sends it again.
func TestStopCountsTheDeadLettersItLeavesUnwritten(t *testing.T) {
	l := laneOnAFullDisk(t)
	l.slots <- struct{}{}
	l.dispatch(inbox.Record{Seq: 1, Payload: []byte{0x01, 0x05, 'a'}}) // its dead letter fails
	it := <-l.work
	l.r.stopping.Store(true)
	l.release(it)
	if got := l.r.DeadLetterUnwrittenAtStop(); got[l.p.Name] != 1 || len(got) != 1 {
		t.Errorf("counted %v; want %s 1", got, l.p.Name)
	}
}

// A CSV row given back to its import when its lane stops goes to the next
// version's lane without the dead letter the old one still had to write:
// run by the next lane, that write used the old lane and blocked its
// worker for good.
func TestDeadLetterToWriteStaysWithItsLane(t *testing.T) {
	old, next := laneOnAFullDisk(t), laneOnAFullDisk(t)
	old.slots <- struct{}{}
	old.dispatch(inbox.Record{Seq: 1, Payload: []byte{0x01, 0x05, 'a'}}) // the dead letter fails
	it := <-old.work
	old.release(it) // the lane stops (a reload) before the next try
	if it.deadAgain != nil {
		t.Fatal("the item left its lane with a dead letter of that lane still to write")
	}
	// As a CSV row is, the item has an event for the next version to try.
	it.ev = &engine.Event{Data: map[string]any{"tags": []any{"vip"}}, Request: &engine.RequestInfo{Params: map[string]string{"user_id": "u-1"}}}
	next.slots <- struct{}{}
	done := make(chan struct{})
	go func() { next.process(it); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the next lane's worker is stuck on the item")
	}
}

// laneOnAFullDisk is the F1 pipeline's lane of a runner whose inbox fails
// every write, as on a full disk; its targets cannot be reached.
func laneOnAFullDisk(t *testing.T) *lane {
	return laneOnAFullDiskLogging(t, nil)
}

func laneOnAFullDiskLogging(t *testing.T, logger *slog.Logger) *lane {
	proj := loaderFor(t, "http://127.0.0.1:1").Load([]string{"../../pipelines"})
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Store: store, Pipelines: proj.Pipelines, Clock: noWaitClock{}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	return r.gen.Load().lanes["braze-segment-to-sessionm-tags"]
}

// Stopping lets in-flight requests finish for the grace it is given, even
// past the grace of a reload (it used to abandon them then, and the event
// was sent again by the next start).
func TestStopWaitsForItsOwnGrace(t *testing.T) {
	defer func(was time.Duration) { retireGrace = was }(retireGrace)
	retireGrace = 20 * time.Millisecond
	var answered atomic.Int32
	arrived := make(chan struct{}, 1)
	braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(300 * time.Millisecond) // longer than a reload's grace, within the stop's
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"dispatch_id":"d1","message":"success"}`)
		answered.Add(1)
	}))
	defer braze.Close()
	r, store := campaignRunner(t, braze.URL)
	select {
	case <-arrived: // the request is in flight
	case <-time.After(5 * time.Second):
		t.Fatal("the event was not sent")
	}
	r.Stop(5 * time.Second)
	if answered.Load() != 1 || store.Depth("any-campaign") != 0 {
		t.Fatalf("%d answers, %d events left queued: the stop abandoned a request within its grace", answered.Load(), store.Depth("any-campaign"))
	}
}

// Abandon, when an operator asks twice to stop, ends a stop under way at
// once: the request in flight is cancelled, not waited for, and its event
// stays queued for the next start.
func TestAbandonCutsAStopShort(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select { // a peer that does not answer
		case <-r.Context().Done():
		case <-release: // the test failed
		}
	}))
	defer braze.Close()
	defer close(release)
	r, store := campaignRunner(t, braze.URL)
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the event was not sent")
	}
	stopped := make(chan struct{})
	go func() { r.Stop(time.Minute); close(stopped) }()
	r.Abandon()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop still waits for the request in flight after Abandon")
	}
	if n := store.Depth("any-campaign"); n != 1 {
		t.Fatalf("%d events queued after the stop, want the abandoned one", n)
	}
}

// campaignRunner starts a runner of testdata/pipelines with Braze at
// brazeURL and sends it one campaign webhook; the store closes when the
// test ends.
func campaignRunner(t *testing.T, brazeURL string) (*Runner, *inbox.Store) {
	t.Helper()
	proj := loaderFor(t, brazeURL).Load([]string{"testdata/pipelines"})
	for _, p := range proj.Pipelines {
		p.Delivery.Linger = time.Millisecond
	}
	r, store := startRunner(t, proj.Pipelines)
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/hooks/campaign", "application/json", strings.NewReader(`{"campaign_id":"c1","user":"u-1","n":1}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	return r, store
}

// A synchronous pipeline's cache stays within its size, however large
// the answers: the oldest go first.
func TestRespondCacheKeepsToItsSize(t *testing.T) {
	defer func(was int) { maxCachedBytes = was }(maxCachedBytes)
	maxCachedBytes = 100_000
	rs := newResponder(&Runner{clock: noWaitClock{}}, &engine.Pipeline{})
	body := []byte(strings.Repeat("x", 3000)) // about 3.2 KB each
	for i := range 200 {
		rs.keep(fmt.Sprintf("user-%03d", i), &engine.Reply{Status: 200, Body: body}, false)
		if rs.cachedBytes > maxCachedBytes {
			t.Fatalf("after %d answers the cache holds %d bytes, over its %d", i+1, rs.cachedBytes, maxCachedBytes)
		}
	}
	if rs.cache["user-199"] == nil || rs.cache["user-000"] != nil {
		t.Fatal("the newest answer was dropped, or the oldest kept")
	}
	total := 0
	for _, c := range rs.cache {
		total += c.size
	}
	if total != rs.cachedBytes {
		t.Fatalf("sizes add up to %d, the count says %d", total, rs.cachedBytes)
	}
	rs.keep("huge", &engine.Reply{Status: 200, Body: make([]byte, maxCachedBytes)}, false)
	if rs.cache["huge"] != nil {
		t.Fatal("an answer bigger than the whole cache was kept")
	}
}

// loaderFor loads pipelines with the sandbox's settings, Braze at
// brazeURL, and SessionM where nothing answers.
func loaderFor(t *testing.T, brazeURL string) *engine.Loader {
	t.Helper()
	settings := map[string]string{"SESSIONM_CORE_URL": "http://127.0.0.1:1/core", "SESSIONM_CONNECT_URL": "http://127.0.0.1:1/connect", "BRAZE_REST_URL": brazeURL + "/braze"}
	rest, err := secrets.ReadEnvFile("../../examples/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	loader, err := engine.NewLoader(connectors.Catalog(), secrets.NewResolver(secrets.LookupChain(settings, rest), "", &secrets.Masker{}))
	if err != nil {
		t.Fatal(err)
	}
	return loader
}

// Events waiting for a retry leave the window, but only up to their own
// bound: past it they wait in their slots and the feeder stops reading, so
// however many events of an outage wait, the lane holds at most the window
// and the waiting bound in memory; the rest stays on disk.
func TestWaitingEventsAreBounded(t *testing.T) {
	defer func(was int) { waitingPerWorker = was }(waitingPerWorker)
	waitingPerWorker = 2
	var got atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer api.Close()
	r, store := runAPI(t, "testdata/unsendable", api.URL, func(p *engine.Pipeline) {
		p.Delivery.Concurrency = 1 // a window of 4
		p.Delivery.BackoffInitial, p.Delivery.BackoffMax = time.Minute, time.Minute
	})
	defer r.Stop(5 * time.Second)
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	for i := range 10 {
		resp, err := http.Post(srv.URL+"/hooks/target", "application/json", strings.NewReader(fmt.Sprintf(`{"note":"n-%d"}`, i)))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	l := r.lane("target-header")
	for deadline := time.Now().Add(10 * time.Second); !(got.Load() == 6 && len(l.slots) == 4 && len(l.waits) == 2); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests, %d events in slots, %d waiting; want 6, 4 (the window) and 2 (the bound)", got.Load(), len(l.slots), len(l.waits))
		}
	}
	if d := store.Depth("target-header"); d != 10 {
		t.Fatalf("depth %d, want all 10 queued", d)
	}
}

// runAPI starts a runner of the pipelines in dir, their API at apiURL
// (API_URL), tweaked by tweak (if any); the store closes when the test
// ends.
func runAPI(t *testing.T, dir, apiURL string, tweak func(*engine.Pipeline)) (*Runner, *inbox.Store) {
	t.Helper()
	pipelines := loadAPI(t, dir, apiURL)
	if tweak != nil {
		for _, p := range pipelines {
			tweak(p)
		}
	}
	return startRunner(t, pipelines)
}

// loadAPI loads the pipelines in dir, their API at apiURL (API_URL).
func loadAPI(t *testing.T, dir, apiURL string) []*engine.Pipeline {
	t.Helper()
	loader, err := engine.NewLoader(connectors.Catalog(), secrets.NewResolver(secrets.LookupChain(map[string]string{"API_URL": apiURL}), "", &secrets.Masker{}))
	if err != nil {
		t.Fatal(err)
	}
	proj := loader.Load([]string{dir})
	if proj.Diagnostics.HasErrors() {
		t.Fatal(proj.Diagnostics.Items())
	}
	return proj.Pipelines
}

// startRunner starts a runner of pipelines on an inbox in a temporary
// folder, which closes when the test ends.
func startRunner(t *testing.T, pipelines []*engine.Pipeline) (*Runner, *inbox.Store) {
	t.Helper()
	return startRunnerWith(t, Options{Pipelines: pipelines})
}

// startRunnerWith starts a runner with opts on an inbox in a temporary
// folder (opts.Store), which closes when the test ends.
func startRunnerWith(t *testing.T, opts Options) (*Runner, *inbox.Store) {
	t.Helper()
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	opts.Store = store
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	return r, store
}

// runOn runs body with a runner of opts (not started) on the inbox in dir,
// opened for it and closed after: one run of the engine, for tests that
// start again on the same data.
func runOn(t *testing.T, dir string, opts Options, body func(r *Runner, store *inbox.Store)) {
	t.Helper()
	store, err := inbox.Open(dir, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	opts.Store = store
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	body(r, store)
}

// A request HTTP cannot carry (here a header rendered from the event with
// a control character in it) is refused by net/http before a byte leaves.
// It fails the same way on every attempt, so it is a template dead letter
// at once, whether it is a lookup's or the target's.
func TestRequestHTTPCannotCarryIsATemplateDeadLetter(t *testing.T) {
	var got atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.Write([]byte(`{}`))
	}))
	defer api.Close()
	r, store := runAPI(t, "testdata/unsendable", api.URL, nil)
	defer r.Stop(5 * time.Second)
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	for _, c := range []struct{ path, pipeline, says string }{
		{"/hooks/lookup", "lookup-header", "step thing: headers X-Note"},
		{"/hooks/target", "target-header", "target: headers X-Note"},
	} {
		t.Run(c.pipeline, func(t *testing.T) {
			resp, err := http.Post(srv.URL+c.path, "application/json", strings.NewReader(`{"note":"a\u0001b"}`))
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("webhook: %v %v", err, resp)
			}
			resp.Body.Close()
			var dls []inbox.DeadLetter
			for deadline := time.Now().Add(10 * time.Second); len(dls) == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no dead letter")
				}
				dls, _ = store.DeadLetters(inbox.DeadFilter{Pipeline: c.pipeline})
			}
			dl := dls[0]
			if dl.Reason != "template" || dl.Attempts != 1 || !strings.Contains(dl.Error, c.says) || !strings.Contains(dl.Error, "control character") {
				t.Fatalf("dead-lettered as %q after %d attempts (want template, 1): %s", dl.Reason, dl.Attempts, dl.Error)
			}
			if dl.Request == nil || dl.Request.Headers["X-Note"] != "a\x01b" {
				t.Fatalf("the dead letter should show the request as rendered: %+v", dl.Request)
			}
		})
	}
	if n := got.Load(); n != 0 {
		t.Fatalf("the API got %d requests", n)
	}
}

// A panic on the feeder, while it reads an event's order_by key, would end
// the engine at every start, the event being first in the inbox. It is an
// internal_error dead letter instead, and its slot and key are free. The
// panic is injected: an item without its decoded event makes the bindings
// fail, as a bug in our own code might.
func TestPanicReadingAnOrderKeyIsDeadLettered(t *testing.T) {
	proj := loaderFor(t, "http://127.0.0.1:1").Load([]string{"../../pipelines"})
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := New(Options{Store: store, Pipelines: proj.Pipelines})
	if err != nil {
		t.Fatal(err)
	}
	const name = "braze-segment-to-sessionm-tags"
	payload, _ := encodeStored(&storedEvent{ID: "e-1", Data: []byte(`{"tags":["x"]}`)})
	got, err := store.Append(name, inbox.NewEvent{ID: "e-1", Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	l := r.gen.Load().lanes[name]
	l.slots <- struct{}{} // taken as the feeder takes it
	l.route(&item{rec: inbox.Record{Seq: got[0].Seq, Payload: payload}, stored: &storedEvent{ID: "e-1"}})
	dls, _ := store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 || dls[0].Reason != "internal_error" || !strings.Contains(dls[0].Error, "nil pointer") {
		t.Fatalf("dead letters %+v", dls)
	}
	if len(l.slots) != 0 || len(l.keys) != 0 || store.Depth(name) != 0 {
		t.Fatalf("%d slots and %d keys held, %d events queued after the dead letter", len(l.slots), len(l.keys), store.Depth(name))
	}
}
