// Package runner is engine run: it serves the pipelines' webhook routes,
// stores every accepted event in the durable inbox before answering 2xx,
// and delivers events with per-pipeline workers: filter, lookups, render,
// send through the connection's governor, then ack, retry with backoff,
// or dead-letter (DESIGN §2). Braze trigger and users/track requests are
// batched.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/internal/h1client"
)

// DefaultMaxInbox is how many undelivered events one pipeline may hold
// before its webhook answers 503 with Retry-After.
const DefaultMaxInbox = 1_000_000

// Options configures a Runner.
type Options struct {
	Store     *inbox.Store
	Pipelines []*engine.Pipeline
	// Masker hides secrets in dead letters and logs.
	Masker *secrets.Masker
	Logger *slog.Logger
	Clock  delivery.Clock
	// Client sends lookups and target requests; nil means a client with a
	// connection pool sized for the pipelines' concurrency.
	Client   *http.Client
	MaxInbox int
	// BodyMemory bounds the bytes of webhook bodies read at once, in each
	// of two rooms (DefaultBodyMemory when 0): one for callers whose
	// credentials were checked before the body, one for the others; past
	// it a webhook gets 503 with Retry-After.
	BodyMemory int64
	// Random feeds backoff jitter; nil means math/rand.
	Random func() float64
	// Warned: the warnings the start showed (Project.Warnings), so that a
	// reload does not show again those of no pipeline (connections.yaml, a
	// folder); it shows those of the files it changed.
	Warned []engine.Warning
}

// Runner runs a set of pipelines, and swaps in new versions of them while
// it runs (Apply).
type Runner struct {
	opts   Options
	store  *inbox.Store
	log    *slog.Logger
	clock  delivery.Clock
	client *http.Client
	gen    atomic.Pointer[generation]
	ready  atomic.Bool
	// stopping: Drain or Stop began; Apply reloads nothing.
	stopping atomic.Bool
	// cut counts, per pipeline, the events the stop cut on the wire, and
	// unwritten those it left queued with their dead letter unwritten.
	cutMu     sync.Mutex
	cut       map[string]int
	unwritten map[string]int
	started   atomic.Bool
	csv       csvImports
	metrics   *metrics
	bodies    bodyRooms

	reloadMu  sync.Mutex       // one Apply at a time
	warned    map[string]bool  // the texts of the warnings of no pipeline shown so far (under reloadMu)
	lastLane  map[string]*lane // the newest lane of each pipeline name, removed ones too (under reloadMu)
	lanesLive sync.WaitGroup   // launched lanes not yet done

	storing   byPipeline[storingEvents]   // storingNow
	unremoved byPipeline[unremovedEvents] // unremovedOf
	govMu     sync.Mutex
	governors map[string]*delivery.Governor // by spec.Connection.GovernorKey, kept across reloads
	// pauseForget clears a governor's stored pauses (keepPauses), by
	// GovernorKey, under govMu; it is given what pauseEnded is to hold.
	pauseForget map[string]func(ended endedPause) error
	// pauseEnded: by GovernorKey, under govMu, the span of the next
	// attempts the last pause an operator ended held back, stored so a
	// restart knows it too: one read from the inbox goes at once.
	pauseEnded map[string]endedPause
	// pauseStoreMu: governors that share a stored pause (keepPauses)
	// write it one at a time.
	pauseStoreMu sync.Mutex
	// resumes wakes what waits for a pause an operator ended (Resume).
	resumes resumeSignal

	stateMu    sync.Mutex
	states     map[string]*pipelineState
	lastReload *ReloadReport

	// refusals limits the warnings of refused webhooks (refuse), and
	// brokenRows those of broken CSV rows, per pipeline.
	refusals   warnLimiter
	brokenRows warnLimiter
	// storeErrors limits the errors of writes the inbox refused (a full
	// disk): one per event or row, every few seconds each, or every 20 ms
	// for a checkpoint, they came by the thousand a second.
	storeErrors warnLimiter
	// pauseLogged limits the warnings of pauses begun, per connection.
	pauseLogged warnLimiter
	// respondWarned holds each synchronous pipeline's warning limiter,
	// across its versions (respondWarnings).
	respondWarned byPipeline[warnLimiter]

	csvMu    sync.Mutex
	csvPoll  time.Duration          // 0 until WatchCSVInboxes
	csvWatch map[string]*csvWatcher // pipeline -> the watch of its source.inbox folder

	// soft ends when the runner stops taking new work; hard ends when
	// in-flight requests must be abandoned (the events stay in the inbox).
	soft, hard             context.Context
	cancelSoft, cancelHard context.CancelFunc
	wg                     sync.WaitGroup
}

// New builds a runner; Start starts its workers.
func New(opts Options) (*Runner, error) {
	if opts.Store == nil {
		return nil, errors.New("runner: no inbox")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = delivery.RealClock{}
	}
	if opts.Masker == nil {
		opts.Masker = &secrets.Masker{}
	}
	if opts.MaxInbox == 0 {
		opts.MaxInbox = DefaultMaxInbox
	}
	if opts.BodyMemory == 0 {
		opts.BodyMemory = DefaultBodyMemory
	}
	r := &Runner{
		opts: opts, store: opts.Store, log: opts.Logger, clock: opts.Clock,
		governors: map[string]*delivery.Governor{}, pauseForget: map[string]func(endedPause) error{}, pauseEnded: map[string]endedPause{}, lastLane: map[string]*lane{}, states: map[string]*pipelineState{}, csvWatch: map[string]*csvWatcher{},
		csv: csvImports{latest: map[string]*CSVProgress{}, earlier: map[string]*CSVProgress{}, queued: map[string]csvTally{}, dead: map[uint64]csvTally{},
			runs: map[*csvRun]bool{}, reading: map[string]readingCSV{}, held: map[string]int{}},
		bodies: newBodyRooms(opts.BodyMemory),
		warned: generalWarnings(opts.Warned),
	}
	r.client = opts.Client
	if r.client == nil {
		conns := 0
		for _, p := range opts.Pipelines {
			conns += p.Delivery.Concurrency
		}
		r.client = &http.Client{
			// Reusing connections is most of the speed: no TLS handshake
			// per event. h1client sends each request in its caller's
			// goroutine, at two thirds of net/http's CPU per request;
			// a proxy goes through net/http.
			Transport: &h1client.Transport{
				Proxy:          http.ProxyFromEnvironment,
				MaxIdlePerHost: max(16, conns),
				IdleTimeout:    90 * time.Second,
				Fallback: &http.Transport{
					Proxy:               http.ProxyFromEnvironment,
					MaxIdleConns:        max(100, conns*2),
					MaxIdleConnsPerHost: max(16, conns),
					IdleConnTimeout:     90 * time.Second,
					ForceAttemptHTTP2:   true,
				},
			},
			// A target that redirects is answering something else; the
			// redirect is reported, not followed.
			CheckRedirect: engine.NoRedirects,
		}
	}
	r.soft, r.cancelSoft = context.WithCancel(context.Background())
	r.hard, r.cancelHard = context.WithCancel(context.Background())
	r.metrics = newMetrics(r)
	next := map[string]*engine.Pipeline{}
	for _, p := range opts.Pipelines {
		next[p.Name] = p
	}
	gen, refused := r.buildGeneration(next, nil)
	for name, problem := range refused {
		return nil, fmt.Errorf("pipeline %s: %s", name, problem)
	}
	r.gen.Store(gen)
	for _, p := range gen.pipelines {
		r.metrics.expect(p)
	}
	r.lastLane = maps.Clone(gen.lanes)
	return r, nil
}

// ensureGovernor gives c's governor c's limits. The governor itself is
// kept for the runner's life: a reload that changes the limits must not
// forget a pause or a spent window the peer announced, and lanes built
// earlier hold the same governor, so one bucket paces the account.
func (r *Runner) ensureGovernor(c *spec.Connection) {
	r.governor(c).SetLimits(limitsOf(c))
}

func pipelineConnections(p *engine.Pipeline) []*spec.Connection {
	var out []*spec.Connection
	for _, st := range p.Steps {
		if st.Call != nil {
			out = append(out, st.Call.Conn)
		}
	}
	if p.Target != nil {
		out = append(out, p.Target.Conn)
	}
	return out
}

// limitsOf gives a connection its limits: its own rate_limit, one bucket
// for all its requests, else the type's documented limits, per pool (they
// are documented per endpoint). With a rate_limit the pools are still
// listed, with no limit of their own, so each honours what the peer says
// of its window.
func limitsOf(c *spec.Connection) delivery.Limits {
	out := delivery.Limits{Pools: make(map[string]delivery.Limit, len(c.Type.RateLimits)+1)}
	if l := c.RateLimit; l != nil {
		out.Shared = delivery.PerWindow(l.Requests, l.Window)
		out.Pools[""] = delivery.Limit{}
		for pool, l := range c.Type.RateLimits {
			out.Pools[pool] = delivery.Limit{Isolated: l.Isolated}
		}
		return out
	}
	for pool, l := range c.Type.RateLimits {
		lim := delivery.PerWindow(l.Requests, l.Window)
		lim.Isolated = l.Isolated
		out.Pools[pool] = lim
	}
	return out
}

// Start starts the workers. Events left in the inbox by an earlier run are
// delivered first.
func (r *Runner) Start() {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	gen := r.gen.Load()
	for name, n := range r.store.Pipelines() {
		if gen.lanes[name] == nil {
			r.log.Warn("events are queued for a pipeline that is not running; they stay in the inbox until it runs again", "pipeline", name, "events", n)
		}
	}
	r.started.Store(true)
	for _, l := range gen.lanes {
		r.launch(l)
	}
	r.wg.Add(1)
	go r.pruneSeen()
	r.ready.Store(true)
}

// pruneSeen forgets event ids older than the dedupe window, at start and
// then hourly, so the inbox file does not grow with every id ever seen.
func (r *Runner) pruneSeen() {
	defer r.wg.Done()
	for {
		if n, err := r.store.PruneSeen(); err != nil {
			r.log.Warn("cannot forget old event ids", "error", err)
		} else if n > 0 {
			r.log.Info("forgot old event ids", "ids", n)
		}
		if r.clock.Sleep(r.soft, time.Hour) != nil {
			return
		}
	}
}

// version is the running version of a pipeline, for log lines.
func (r *Runner) version(pipeline string) string {
	if p := r.Running(pipeline); p != nil {
		return p.Version
	}
	return ""
}

// Drain marks the runner not ready (/readyz answers 503) before a stop,
// so a load balancer sends no more webhooks; from now on nothing is
// reloaded (Apply), as a SIGHUP meanwhile reloads nothing either.
func (r *Runner) Drain() {
	r.stopping.Store(true)
	r.ready.Store(false)
}

// Stop stops taking new work, lets in-flight deliveries finish for up to
// grace, then abandons the rest; whatever is not delivered stays in the
// inbox for the next start. Stop the HTTP server first, so no webhook is
// accepted that no worker will see.
func (r *Runner) Stop(grace time.Duration) {
	r.stopping.Store(true)
	r.ready.Store(false)
	r.reloadMu.Lock() // no reload starts lanes from now on
	defer r.reloadMu.Unlock()
	r.cancelSoft()
	for _, l := range r.gen.Load().lanes {
		go r.retire(l, 0) // bounded by the grace below
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()        // CSV folder watchers
		r.lanesLive.Wait() // every version, replaced ones still draining included
		close(done)
	}()
	began := time.Now()
	ranOut := false
	select {
	case <-done:
	case <-time.After(grace):
		ranOut = true
		r.cancelHard()
		<-done
	}
	// grace is what the listener left of --grace: the time waited here
	// is what the log can say for sure.
	switch cut := r.CutByStop(); {
	case len(cut) > 0: // the grace ran out, or Abandon (a second signal)
		r.log.Warn("stopping: requests on the wire were cut, and their events stay in the inbox (CSV rows: in their file, read again): the peer may have taken them, so the next run may send them twice", "waited", time.Since(began).Round(time.Millisecond), "events", DescribeCounts(cut))
	case ranOut:
		r.log.Info("stopping: the grace ran out; no request was on the wire", "waited", time.Since(began).Round(time.Millisecond))
	}
	r.cancelHard()
	// The lines held back go out before the last word of the stop.
	r.refusals.flushAll()
	r.brokenRows.flushAll()
	r.storeErrors.flushAll()
	r.pauseLogged.flushAll()
	for _, wl := range r.respondWarned.all() {
		wl.flushAll()
	}
	// The lanes are done: the rows of CSV imports that stopped early have
	// their outcome or none will come, so their checkpoints are final.
	r.finishCSVRuns(func(*csvRun) bool { return true })
}

// DescribeCounts writes counts per pipeline as "a 3, b 1", by name.
func DescribeCounts(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for _, p := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", p, counts[p]))
	}
	return strings.Join(parts, ", ")
}

// countCutByStop counts an event of pipeline whose request the stop cut
// on the wire.
func (r *Runner) countCutByStop(pipeline string) { r.countAtStop(&r.cut, pipeline) }

func (r *Runner) countAtStop(counts *map[string]int, pipeline string) {
	r.cutMu.Lock()
	defer r.cutMu.Unlock()
	if *counts == nil {
		*counts = map[string]int{}
	}
	(*counts)[pipeline]++
}

// DeadLetterUnwrittenAtStop is how many events, per pipeline, the stop
// left queued whose dead letter could not be written (a full disk): the
// next run sends them again, and a /users/track object Braze took before
// its refusal of the others counts twice.
func (r *Runner) DeadLetterUnwrittenAtStop() map[string]int {
	r.cutMu.Lock()
	defer r.cutMu.Unlock()
	return maps.Clone(r.unwritten)
}

// CutByStop is how many events, per pipeline, stayed in the inbox because
// the stop cut their request on the wire (the grace ran out, or a second
// signal): the peer may have taken them, and the next run sends them again.
func (r *Runner) CutByStop() map[string]int {
	r.cutMu.Lock()
	defer r.cutMu.Unlock()
	return maps.Clone(r.cut)
}

// respondWarnings is the warning limiter of the synchronous pipeline
// name, whichever its version.
func (r *Runner) respondWarnings(name string) *warnLimiter {
	return r.respondWarned.get(name, func() *warnLimiter { return &warnLimiter{} })
}

// Abandon cuts a Stop short, as if its grace had run out now: in-flight
// requests are cancelled and their events stay in the inbox for the next
// start. For an operator who asks twice to stop.
func (r *Runner) Abandon() {
	r.cancelSoft() // no new work, whether or not Stop has begun
	r.cancelHard()
}

// unremovedOf keeps the delivered events of pipeline that a lane closing
// could not remove from the inbox (a full disk), for the pipeline's next
// lane: its feeder passes them by, its acker goes on trying, and the
// stop's last word counts those left.
func (r *Runner) unremovedOf(pipeline string) *unremovedEvents {
	return r.unremoved.get(pipeline, func() *unremovedEvents {
		return &unremovedEvents{r: r, store: r.store, pipeline: pipeline, seqs: map[uint64]bool{}}
	})
}

// Unremoved is how many delivered events, per pipeline, are still in the
// inbox because their removal failed until their lane closed.
func (r *Runner) Unremoved() map[string]int {
	out := map[string]int{}
	for name, u := range r.unremoved.all() {
		if n := u.count(); n > 0 {
			out[name] = n
		}
	}
	return out
}

// unremovedEvents are the delivered events of one pipeline still in the
// inbox after their acker closed.
type unremovedEvents struct {
	r        *Runner
	store    remover
	pipeline string
	n        atomic.Int64 // len(seqs), read without the lock per event
	mu       sync.Mutex
	seqs     map[uint64]bool
	retrying bool // retryLeft runs
}

func (u *unremovedEvents) leave(seqs []uint64, err error) {
	u.r.log.Error("cannot remove delivered events from the inbox; trying again every second, and a restart before that works sends them again", "pipeline", u.pipeline, "events", len(seqs), "first", seqs[0], "error", err)
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range seqs {
		u.seqs[s] = true
	}
	u.n.Store(int64(len(u.seqs)))
	if !u.retrying {
		u.retrying = true
		go u.retryLeft()
	}
}

// retryLeft tries every second to remove them, until none is left or the
// engine stops: with the pipeline's file deleted no acker of it runs, and
// they were sent again after a restart though the disk had room (a QA
// run). A next version's acker tries them too; a removal is idempotent.
func (u *unremovedEvents) retryLeft() {
	removedHere := 0
	for {
		if u.r.clock.Sleep(u.r.hard, ackRetryEvery) != nil {
			u.mu.Lock()
			u.retrying = false
			u.mu.Unlock()
			return
		}
		pending := u.pending()
		for len(pending) > 0 {
			chunk := pending[:min(len(pending), ackBatch)]
			if u.store.Ack(u.pipeline, chunk...) != nil {
				break
			}
			u.removed(chunk)
			removedHere += len(chunk)
			pending = pending[len(chunk):]
		}
		u.mu.Lock()
		if len(u.seqs) == 0 {
			u.retrying = false
			u.mu.Unlock()
			// Said once: the next version's acker, which tries them too,
			// says so when it is the one that removed them.
			if removedHere > 0 {
				u.r.log.Info("removed the delivered events a failed removal had left in the inbox", "pipeline", u.pipeline, "events", removedHere)
			}
			return
		}
		u.mu.Unlock()
	}
}

func (u *unremovedEvents) removed(seqs []uint64) {
	if u.n.Load() == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range seqs {
		delete(u.seqs, s)
	}
	u.n.Store(int64(len(u.seqs)))
}

// pending lists them, for a new acker to try again.
func (u *unremovedEvents) pending() []uint64 {
	if u.n.Load() == 0 {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Sorted(maps.Keys(u.seqs))
}

// holds reports whether seq is one of them: delivered already.
func (u *unremovedEvents) holds(seq uint64) bool {
	if u.n.Load() == 0 {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seqs[seq]
}

func (u *unremovedEvents) count() int { return int(u.n.Load()) }

// undelivered is how many events of pipeline the inbox holds that are not
// delivered yet: its depth less the delivered events whose removal failed,
// those left by closed lanes and those lanes (running ones) still retry.
func (r *Runner) undelivered(pipeline string, lanes ...*lane) int {
	left := 0
	if u := r.unremoved.lookup(pipeline); u != nil {
		left = u.count()
	}
	for _, l := range lanes {
		if l != nil {
			left += l.unremovedNow()
		}
	}
	return max(r.store.Depth(pipeline)-left, 0)
}

// storingNow are the webhooks of pipeline being stored in the inbox, for
// every version of the pipeline.
func (r *Runner) storingNow(pipeline string) *storingEvents {
	return r.storing.get(pipeline, func() *storingEvents { return &storingEvents{ids: map[string]chan struct{}{}} })
}

// storingEvents are webhooks being stored: how many, and their ids, each
// with a channel closed when it is stored or refused.
type storingEvents struct {
	count atomic.Int64
	mu    sync.Mutex
	ids   map[string]chan struct{}
}

// enter notes that a webhook with id is being stored and returns nil, or,
// when another one with that id is, the channel closed once that one is
// stored or refused.
func (s *storingEvents) enter(id string) (first <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, ok := s.ids[id]; ok {
		return done
	}
	s.ids[id] = make(chan struct{})
	return nil
}

func (s *storingEvents) leave(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ids[id])
	delete(s.ids, id)
}

// Depth is how many events of pipeline wait in the inbox.
func (r *Runner) Depth(pipeline string) int { return r.store.Depth(pipeline) }

// governor is the connection's governor (by its name and account), the
// same one for the runner's life (ensureGovernor sets its limits): two
// folders' connections of one name that reach one account share it.
func (r *Runner) governor(c *spec.Connection) *delivery.Governor {
	r.govMu.Lock()
	defer r.govMu.Unlock()
	g := r.governors[c.GovernorKey()]
	if g == nil {
		g = delivery.NewGovernor(r.clock, delivery.Limits{})
		r.governors[c.GovernorKey()] = g
		r.keepPauses(c, g)
	}
	return g
}

// keepPauses makes a connection's pauses outlive the process: a 429's
// Retry-After is stored, and restored when the connection's governor is
// made again. A restart inside a pause sent the queued events' requests
// at once, each answered 429 again. So for a pool a 429 holds back on
// its own (Braze's broadcasts): restarted, the engine sent a broadcast
// inside the burst, and was answered 429 again.
func (r *Runner) keepPauses(c *spec.Connection, g *delivery.Governor) {
	key := func(pool string) string {
		if pool == "" {
			return "pause:" + c.PauseKey()
		}
		return "pause:" + c.PauseKey() + "#" + pool
	}
	stored := map[string]time.Time{}
	pools := []string{""}
	for pool, l := range c.Type.RateLimits {
		if l.Isolated {
			pools = append(pools, pool)
		}
	}
	for _, pool := range pools {
		var until time.Time
		found, err := r.store.Checkpoint(key(pool), &until)
		switch {
		case err != nil:
			r.log.Warn("cannot read a connection's pause from the inbox; it starts unpaused", "connection", c.Name, "pool", pool, "error", err)
		case found && until.After(r.clock.Now()) && pool == "":
			g.PauseUntil(until)
			r.log.Info("the connection is still paused, as its peer asked before the restart", "connection", c.Name, "until", until.UTC().Format(time.RFC3339Nano))
		case found && until.After(r.clock.Now()):
			g.PausePoolUntil(pool, until)
			r.log.Info("the connection's pool is still paused, as its peer asked before the restart", "connection", c.Name, "pool", pool, "until", until.UTC().Format(time.RFC3339Nano))
		}
		stored[pool] = until
	}
	// Stored one to two seconds past the end, in whole seconds: the 429s of one burst
	// end their pauses a few milliseconds apart, and each would have been
	// a write; a restored pause may last up to two seconds longer.
	var mu sync.Mutex
	g.Remember(func(pool string, until time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !until.After(stored[pool]) {
			return
		}
		keep := until.Truncate(time.Second).Add(2 * time.Second)
		// Governors of one name and place with other keys store under
		// one key: a shorter pause of one must not replace a longer one.
		r.pauseStoreMu.Lock()
		defer r.pauseStoreMu.Unlock()
		var already time.Time
		if found, err := r.store.Checkpoint(key(pool), &already); err == nil && found && !keep.After(already) {
			stored[pool] = already
			return
		}
		if err := r.store.SetCheckpoint(key(pool), keep); err != nil {
			r.log.Warn("cannot store a connection's pause; a restart before its end would not wait for it", "connection", c.Name, "pool", pool, "until", until.UTC().Format(time.RFC3339Nano), "error", err)
			return
		}
		stored[pool] = keep
	})
	endedKey := "pause-ended:" + c.PauseKey()
	var ended endedPause
	if found, err := r.store.Checkpoint(endedKey, &ended); err == nil && found && ended.Through.After(r.clock.Now()) {
		r.pauseEnded[c.GovernorKey()] = ended
	}
	r.pauseForget[c.GovernorKey()] = func(ended endedPause) error {
		mu.Lock()
		defer mu.Unlock()
		r.pauseStoreMu.Lock()
		defer r.pauseStoreMu.Unlock()
		var errs []error
		if !ended.Through.IsZero() {
			errs = append(errs, r.store.SetCheckpoint(endedKey, ended))
		}
		for _, pool := range pools {
			// Read, not taken from stored: a governor of another key
			// to the same place (a rotated one) may have stored it.
			var until time.Time
			if found, err := r.store.Checkpoint(key(pool), &until); err != nil {
				errs = append(errs, err)
				continue
			} else if !found || !until.After(r.clock.Now()) {
				stored[pool] = time.Time{}
				continue
			}
			if err := r.store.SetCheckpoint(key(pool), time.Time{}); err != nil {
				errs = append(errs, err)
				continue
			}
			stored[pool] = time.Time{}
		}
		return errors.Join(errs...)
	}
}

// errStopping: the engine is shutting down; the event stays queued.
var errStopping = errors.New("the engine is stopping")

// eventLabel names an event in log lines: a CSV row by its file and row
// number, others by the event_id their sender was answered: their id, or
// <pipeline>#<inbox seq> when they have none (http.go), so the sender's
// id finds the event's lines. It is worked out only for lines that are
// written (a Debug line per delivery is not, by default).
func eventLabel(it *item) slog.LogValuer { return eventName{it} }

type eventName struct{ it *item }

func (e eventName) LogValue() slog.Value {
	it := e.it
	if it.stored != nil && it.stored.Row != nil {
		r := it.stored.Row
		return slog.StringValue(rowLabel(r.File, r.Number, it.stored.ID))
	}
	// The inbox keeps the id too: an event that cannot be decoded has
	// none stored.
	id := it.rec.ID
	if it.stored != nil && it.stored.ID != "" {
		id = it.stored.ID
	}
	if id != "" {
		return slog.StringValue(id)
	}
	return slog.StringValue(noIDLabel(it.pipeline, it.rec.Seq))
}

// rowLabel names a CSV row in log lines, the same on every line about it:
// its file and number, to find it, and its event id (file hash:row), to
// find its dead letter.
func rowLabel(file string, number int, id string) string {
	return fmt.Sprintf("%s row %d (%s)", filepath.Base(file), number, id)
}

// noIDLabel is the id an event without one is answered and logged by.
func noIDLabel(pipeline string, seq uint64) string { return fmt.Sprintf("%s#%d", pipeline, seq) }
