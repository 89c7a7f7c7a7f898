package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/internal/h1client"
)

// readAhead is how many events the feeder reads from disk at a time.
const readAhead = 256

// deadLetterRetry is how long an event waits when its dead letter could
// not be stored.
const deadLetterRetry = 5 * time.Second

// waitingPerWorker bounds, per worker, the events a lane keeps in memory
// while they wait: for their next attempt's time, or behind an earlier
// event of their order_by key. Such an event gives its window slot up, so
// the events of other keys go on past it; were it to keep the slot, 64
// users whose requests fail for a while (4 per worker at concurrency 16)
// would stop every other user's events for minutes of backoff.
//
// Past the bound a waiting event keeps its slot, so a lane holds at most
// window + waitingPerWorker×concurrency events (64 + 4,096 at concurrency
// 16) however many wait: after a long outage a million events due for a
// retry stay on disk, with their attempts and next time, until the feeder
// reaches them. Each costs its stored form and its decoded body, a few
// kilobytes, so the bound is tens of megabytes per pipeline at worst.
var waitingPerWorker = 256

// lane delivers one pipeline's events. A feeder reads the inbox in order
// and hands events to workers; at most `window` events are in progress at
// once, and at most waitingPerWorker per worker more wait in memory, so a
// deep inbox costs disk, not memory.
//
// With order_by, one event per key is in progress at a time (being sent,
// waiting in a batch, or waiting to be retried); the key's later events
// wait for it. A waiting event holds a place among the waiting ones, not
// a window slot, so other keys go on: a key whose events keep failing
// delays only itself, as long as fewer events wait than that bound.
type lane struct {
	r       *Runner
	p       *engine.Pipeline
	notify  chan struct{}
	slots   chan struct{} // one per event in the window (read, not waiting)
	waits   chan struct{} // one per event that waits without a slot (see waitingPerWorker)
	work    chan *item    // never closed: workers leave when the lane stops
	batcher *batcher
	gov     *delivery.Governor // the connection's: one for the runner's life, so never stale after a reload
	// paused: waitForRemovals holds the lane, and said so.
	paused atomic.Bool
	acks   *acker
	// unremoved: delivered events an earlier version's acker could not
	// remove (a full disk), which the feeder passes by.
	unremoved *unremovedEvents
	wg        sync.WaitGroup // the feeder and the workers

	retryLogged warnLimiter // "will retry" and "dead-lettered" lines, at most one a second of each

	// soft ends when the lane stops taking events (the engine stops, or a
	// reload retires this version); hard when in-flight requests must be
	// abandoned.
	soft, hard             context.Context
	cancelSoft, cancelHard context.CancelFunc

	keyMu sync.Mutex
	keys  map[string][]*item // order_by: keys in progress, with the events waiting behind them

	// Goroutines started while the lane runs (retries, the next event of
	// a key) are counted in pending; once stopped is set none starts, so
	// waiting for them cannot race with adding one.
	spawnMu sync.Mutex
	stopped bool
	pending sync.WaitGroup

	// A reload replaces a lane with a new version's: the new lane starts
	// only once prev (the version it replaces) is done, so no event is
	// handled by both (see reload.go).
	prev     *lane
	lifeMu   sync.Mutex
	life     laneLife
	launched bool
	done     chan struct{} // closed once the lane has stopped, or will never start
	retiring sync.Once
}

type item struct {
	rec    inbox.Record // for a row, Seq is 0 and Payload empty until needed
	stored *storedEvent
	ev     *engine.Event
	key    string
	keyed  bool // holds its order_by key
	// waiting: it holds a place among the waiting events (l.waits)
	// instead of a window slot, from its first wait until it is let go.
	waiting bool
	// turn counts the times an attempt let it go (release, later, a
	// batch): a panic in an attempt may settle it only while it is
	// unchanged, as one let go may be in another attempt already
	// (recover.go).
	turn atomic.Uint32
	// row is set for a CSV row handed over straight from its file
	// (csvrun.go): its outcome goes to the import, not to the inbox.
	row *csvRow
	// deadAgain, when set, is a dead letter whose write failed: the next
	// attempt writes it again rather than send the event again (a damaged
	// event has nothing to send; a /users/track object Braze refused must
	// not be sent twice with the ones it took).
	deadAgain func()
	// pipeline names an inbox event without an id in log lines as its
	// sender was told (eventLabel); a row has its file and number.
	pipeline string
	// committed: a step of this attempt that changes something at its
	// peer (an offer issued) was answered, so its target request goes
	// even once the lane stops taking work, within the grace: left
	// queued, the next run or version made that change again (a QA run:
	// an offer issued twice across a stop and across a reload).
	committed bool
}

func newLane(r *Runner, p *engine.Pipeline) *lane {
	n := max(1, p.Delivery.Concurrency)
	window := n * 4
	if p.Target != nil && p.Target.Endpoint != nil && p.Target.Endpoint.MaxBatch > 0 {
		window = max(window, p.Target.Endpoint.MaxBatch*n*2)
	}
	l := &lane{r: r, p: p, notify: make(chan struct{}, 1), slots: make(chan struct{}, window), waits: make(chan struct{}, waitingPerWorker*n), work: make(chan *item, n), done: make(chan struct{})}
	l.soft, l.cancelSoft = context.WithCancel(r.soft)
	l.hard, l.cancelHard = context.WithCancel(r.hard)
	if p.Target != nil {
		l.gov = r.governor(p.Target.Conn)
		if e := p.Target.Endpoint; e != nil && e.MaxBatch > 0 {
			l.batcher = newBatcher(l, e)
		}
	}
	if p.Delivery.OrderBy != nil {
		l.keys = map[string][]*item{}
	}
	return l
}

func (l *lane) start() {
	l.unremoved = l.r.unremovedOf(l.p.Name)
	l.acks = newAcker(l.r.store, l.p.Name, l.r.log, l.unremoved, l.unremoved.pending())
	l.wg.Add(1)
	go l.feed()
	for range max(1, l.p.Delivery.Concurrency) {
		l.wg.Add(1)
		go l.worker()
	}
}

// unremovedNow is how many delivered events l's acker could not remove
// yet; none before l started (start sets acks under lifeMu).
func (l *lane) unremovedNow() int {
	l.lifeMu.Lock()
	defer l.lifeMu.Unlock()
	if l.acks == nil {
		return 0
	}
	return l.acks.unremoved()
}

// wake tells the feeder that events were appended.
func (l *lane) wake() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// wait returns when the lane has stopped: the feeder is done, the workers
// have finished what they held, and open batches were sent.
func (l *lane) wait() {
	l.wg.Wait()
	if l.batcher != nil {
		l.batcher.flushAll()
		l.batcher.wait()
	}
	l.spawnMu.Lock()
	l.stopped = true
	l.spawnMu.Unlock()
	l.pending.Wait()
	// An event can land in work after the workers left: the next event of
	// a key, or a CSV row, that found room in the channel as the lane
	// stopped. Nothing adds to it any more, so it is let go of here (a
	// row is stowed or goes back to its import; an inbox event stays in
	// the inbox).
	for len(l.work) > 0 {
		l.release(<-l.work)
	}
	if l.acks != nil {
		l.acks.close()
	}
	l.retryLogged.flushAll()
}

// enter counts a caller from outside the lane (a CSV import handing a row
// over) in pending, as spawn does, so the lane's wait cannot finish under
// it; it reports false when the lane is not running (not started yet, or
// stopping). leave ends what enter began.
func (l *lane) enter() bool {
	running := l.isRunning()
	l.spawnMu.Lock()
	defer l.spawnMu.Unlock()
	if !running || l.stopped || l.soft.Err() != nil {
		return false
	}
	l.pending.Add(1)
	return true
}

func (l *lane) leave() { l.pending.Done() }

// spawn runs f on its own goroutine, counted in pending; it reports false,
// running nothing, once the lane has stopped.
func (l *lane) spawn(f func()) bool {
	l.spawnMu.Lock()
	defer l.spawnMu.Unlock()
	if l.stopped {
		return false
	}
	l.pending.Add(1)
	go func() {
		defer l.pending.Done()
		f()
	}()
	return true
}

func (l *lane) feed() {
	defer l.wg.Done()
	soft := l.soft
	var cursor uint64
	for {
		recs, err := l.r.store.ReadAfter(l.p.Name, cursor, readAhead)
		if err != nil {
			l.r.log.Error("cannot read the inbox; trying again", "pipeline", l.p.Name, "version", l.p.Version, "error", err)
			if l.r.clock.Sleep(soft, time.Second) != nil {
				return
			}
			continue
		}
		if len(recs) == 0 {
			select {
			case <-l.notify:
				continue
			case <-soft.Done():
				return
			}
		}
		for _, rec := range recs {
			cursor = rec.Seq
			if l.unremoved.holds(rec.Seq) {
				continue // delivered by an earlier version
			}
			if !l.waitForRemovals() {
				return
			}
			select {
			case l.slots <- struct{}{}:
			case <-soft.Done():
				return
			}
			if !l.dispatch(rec) {
				return
			}
		}
	}
}

// waitForRemovals holds the feeder, and the workers before each event,
// while the inbox cannot remove the events delivered (a full disk), this
// version's or an earlier one's, until it can; it reports false when the
// lane stops. Each event delivered meanwhile is sent again by a restart
// before the disk has room: the feeder went on through the whole backlog,
// 5,881 events then sent twice (a QA run), and through a replay's 1,000.
// Those delivered before the first removal failed still are (a few
// hundred at full speed).
func (l *lane) waitForRemovals() bool {
	held := func() bool { return l.acks.failing.Load() || l.unremoved.count() > 0 }
	if !held() {
		return true
	}
	if l.paused.CompareAndSwap(false, true) {
		l.r.log.Warn("delivery paused: delivered events cannot be removed from the inbox (a full disk?), and a restart would send each again; it resumes once they can be", "pipeline", l.p.Name, "version", l.p.Version)
	}
	for held() {
		if l.r.clock.Sleep(l.soft, 50*time.Millisecond) != nil {
			return false
		}
	}
	if l.paused.CompareAndSwap(true, false) {
		l.r.log.Info("delivery resumed: the delivered events could be removed", "pipeline", l.p.Name, "version", l.p.Version)
	}
	return true
}

// dispatch hands one record to a worker (or schedules it, when its next
// attempt is later, or parks it behind its key). It reports false when the
// lane is stopping.
func (l *lane) dispatch(rec inbox.Record) bool {
	it := &item{rec: rec, pipeline: l.p.Name}
	if err := l.decode(it); err != nil {
		reason := "damaged"
		if isInternal(err) {
			reason = "internal_error"
		}
		it.stored = &storedEvent{}
		l.dead(it, rec.Attempts, reason, err, nil, nil)
		return true
	}
	return l.route(it)
}

// decode reads the event of it.rec. A panic is an *internalError: on the
// feeder it would end the engine, and again on each start, as the event
// would still be there to read.
func (l *lane) decode(it *item) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = l.r.caught(v, l.p, eventLabel(it))
		}
	}()
	stored, err := decodeStored(it.rec.Payload)
	if err != nil {
		return err
	}
	it.stored = stored
	it.ev, err = stored.event()
	return err
}

// route takes an event that holds a slot to a worker: behind an earlier
// event of its order_by key, after its retry time, or now. It reports
// false when the lane stopped first.
func (l *lane) route(it *item) bool {
	if l.keys != nil {
		key, err := l.orderKey(it)
		if err != nil && isInternal(err) {
			l.dead(it, it.rec.Attempts, "internal_error", err, nil, nil)
			return true
		}
		if err != nil {
			// Every event of a key that cannot render fails alike: a
			// line a second, not one each.
			l.r.logLimited(&l.retryLogged, "order_by", slog.LevelWarn, slog.LevelWarn, "order_by did not render; the event is ordered with the others whose key failed",
				"pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it), "error", err)
		}
		it.key = key
		if !l.takeKey(it) {
			return true // parked behind an earlier event of its key
		}
	}
	return l.begin(it)
}

// orderKey renders the order_by key of it; a panic is an *internalError.
func (l *lane) orderKey(it *item) (key string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = l.r.caught(v, l.p, eventLabel(it))
		}
	}()
	return l.p.Delivery.OrderBy.Render(l.p.Bindings(it.ev, l.r.clock.Now()))
}

// begin hands it to a worker, at once or when its next attempt is due.
func (l *lane) begin(it *item) bool {
	if wait := it.rec.NotAfter.Sub(l.r.clock.Now()); wait > 0 {
		l.laterCounting(it, wait, 0, true)
		return true
	}
	select {
	case l.work <- it:
		return true
	case <-l.soft.Done():
		l.release(it)
		return false
	}
}

// takeKey makes it the event in progress for its key, or parks it behind
// the one that is; it reports whether it may go now.
func (l *lane) takeKey(it *item) bool {
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	it.keyed = true
	if waiting, busy := l.keys[it.key]; busy {
		l.stepAside(it)
		l.keys[it.key] = append(waiting, it)
		return false
	}
	l.keys[it.key] = nil
	return true
}

// nextOfKey starts the event waiting behind a finished one, if any.
func (l *lane) nextOfKey(key string) {
	l.keyMu.Lock()
	waiting, ok := l.keys[key]
	if !ok {
		l.keyMu.Unlock()
		return
	}
	if len(waiting) == 0 {
		delete(l.keys, key)
		l.keyMu.Unlock()
		return
	}
	next := waiting[0]
	l.keys[key] = waiting[1:]
	l.keyMu.Unlock()
	// Stopping: the event before it was let go of without an outcome, so
	// it must not go either (a worker still running could take it), or it
	// would overtake that one in the next version.
	if l.soft.Err() != nil || !l.spawn(func() { l.begin(next) }) {
		l.release(next) // it stays in the inbox, or goes back to its import
	}
}

// stepAside moves it, which is about to wait, from the window to the
// waiting events when there is room, so the feeder may read another event
// in its place. It keeps that place until it is let go: going back to a
// slot when its wait ends could block on a window full of events waiting
// behind it, and the lane would stop.
func (l *lane) stepAside(it *item) {
	if it.waiting {
		return
	}
	select {
	case l.waits <- struct{}{}:
		it.waiting = true
		<-l.slots
	default: // no room: it waits in its slot (see waitingPerWorker)
	}
}

// later makes the next attempt after wait, unless the engine stops first
// (the event then stays in the inbox, with its next attempt time). It
// waits on its own goroutine, so no worker is held by a retry, and out of
// the window (stepAside), so no other key is.
func (l *lane) later(it *item, wait time.Duration) { l.laterCounting(it, wait, 0, false) }

// laterCounting is later for an event whose wait holds a pause to count
// (countPause), counted by the goroutine that waits for it. forPause: the
// wait may be for a peer's pause (a 429's retry, or a next attempt read
// from the inbox, whose cause is not known), which an operator can end
// early (sleepUntil).
func (l *lane) laterCounting(it *item, wait, pause time.Duration, forPause bool) {
	it.turn.Add(1)
	l.stepAside(it)
	from := l.r.clock.Now()
	ok := l.spawn(func() {
		resumed, err := l.sleepUntil(from.Add(wait), forPause)
		if err != nil {
			l.release(it)
		} else {
			select {
			case l.work <- it:
			case <-l.soft.Done():
				l.release(it)
			}
		}
		if pause > 0 {
			// Back up to a linger before its pause ends (retry: to join
			// that pause's batch), the event is on its way; its pause is
			// counted once over (or ended by an operator), or as far as a
			// stop let it go.
			if rest := pause - l.r.clock.Now().Sub(from); rest > 0 && !resumed {
				_ = l.r.clock.Sleep(l.soft, rest)
			}
			l.pauseWaited(from, pause)
		}
	})
	if !ok {
		l.release(it)
	}
}

func (l *lane) worker() {
	defer l.wg.Done()
	for {
		select {
		case it := <-l.work:
			// Here too, not only in the feeder: an event waiting behind its
			// order_by key, or for its retry, comes back by another way,
			// and with 20 users a backlog of 3,000 all went out while
			// removals failed (a QA run).
			if !l.waitForRemovals() {
				l.release(it)
				continue
			}
			l.attempt(it)
		case <-l.soft.Done():
			// Events still in the channel stay in the inbox.
			for {
				select {
				case it := <-l.work:
					l.release(it)
				default:
					return
				}
			}
		}
	}
}

// release ends its time in memory: its slot (or its place among the
// waiting events) frees, and the next event of its key may start. A CSV
// row let go without an outcome moves into the inbox if the engine is
// stopping (stowRow), or goes back to its import, which hands it to the
// next version.
func (l *lane) release(it *item) {
	it.turn.Add(1)
	// A dead letter still to write is this lane's: a CSV row given back
	// goes to the next version, which makes its own attempt.
	if it.deadAgain != nil && l.r.stopping.Load() {
		l.r.countAtStop(&l.r.unwritten, l.p.Name)
	}
	it.deadAgain = nil
	if it.waiting {
		it.waiting = false
		<-l.waits
	} else {
		<-l.slots
	}
	if it.keyed {
		it.keyed = false
		l.nextOfKey(it.key)
	}
	if it.row != nil && !it.row.settled && !l.stowRow(it) {
		it.row.run.giveBack(it)
	}
}

// attempt processes it, surviving a panic (recover.go).
func (l *lane) attempt(it *item) {
	defer l.survive(it, it.turn.Load(), it.rec.Attempts+1, nil)
	l.process(it)
}

// process makes one attempt at an event.
func (l *lane) process(it *item) {
	if again := it.deadAgain; again != nil {
		it.deadAgain = nil
		again()
		return
	}
	attempt := it.rec.Attempts + 1
	steps := &laneLookups{l: l}
	out := l.p.Evaluate(l.hard, it.ev, steps, l.r.clock.Now())
	it.committed = steps.committed
	switch {
	case out.Err != nil:
		l.failed(it, attempt, out)
	case !out.Passed:
		// The one line for it (ack writes none): with why.
		l.r.log.Debug("filtered", "pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it), "why", l.r.opts.Masker.String(out.FilterExplain))
		l.ack(it, "filtered")
	case out.Request == nil:
		l.ack(it, "no request")
	case l.batcher != nil:
		// The batch has it now: a panic in this attempt must leave it be.
		// One in add itself would leave it held until the next start.
		it.turn.Add(1)
		l.batcher.add(it, attempt, out.Request)
	default:
		res := l.send(l.hard, out.Request, it.committed)
		l.settle(it, attempt, out.Request, res)
	}
}

// failed handles an event whose evaluation failed: a lookup that may work
// later is retried, anything else (a template error, a lookup the peer
// refused) is dead-lettered.
func (l *lane) failed(it *item, attempt int, out *engine.Outcome) {
	if n := len(out.Steps); n > 0 {
		last := out.Steps[n-1]
		if last.Err != nil && last.Request != nil {
			// A lookup that was never sent fails the same way every time:
			// its rendered body does not fit the endpoint, or HTTP cannot
			// carry it. Like the same fault in the target's request, it
			// is the template's, and no retry mends it.
			var unfit *engine.BodyError
			if errors.As(last.Err, &unfit) {
				l.dead(it, attempt, "template", out.Err, last.Request, nil)
				return
			}
			if last.Response == nil {
				if bad := unsendable(last.Request); bad != nil {
					l.dead(it, attempt, "template", fmt.Errorf("step %s: %w", last.Step, bad), last.Request, nil)
					return
				}
			}
			status := 0
			var transport error
			if last.Response == nil {
				transport = last.Err
			} else {
				status = last.Response.Status
			}
			res := sendResult{status: status, err: transport, envelopeErr: last.Err, verdict: delivery.Classify(status, transport, last.Err), cutByStop: errors.Is(last.Err, errStepCut)}
			if last.Response != nil {
				res.body = last.Response.Body
			}
			var cut *engine.CutAnswerError
			if errors.As(last.Err, &cut) {
				// The status decides, as for the target; but a lookup
				// needs its whole answer, and asking again costs nothing
				// but a request, unless the answer is too large each time.
				res.cut = cutNote(cut)
				if status >= 200 && status < 300 && !cut.TooLarge {
					res.verdict = delivery.Retry
				}
			}
			if res.verdict == delivery.Retry {
				l.retry(it, attempt, out.Err, last.Request, &res)
				return
			}
			l.dead(it, attempt, "lookup_rejected", out.Err, last.Request, &res)
			return
		}
	}
	reason := "template"
	if len(out.Steps) == 0 && out.Request == nil && out.Reply == nil && strings.HasPrefix(out.Err.Error(), "filter:") {
		reason = "filter"
	}
	l.dead(it, attempt, reason, out.Err, out.Request, nil)
}

// sendResult is the answer to one target request.
type sendResult struct {
	status      int
	header      http.Header
	body        []byte
	err         error // no answer
	envelopeErr error // the connector's reading of the answer
	verdict     delivery.Verdict
	pause       time.Duration
	// unsent: the request could not leave at all (see unsendable), a
	// fault of the template that rendered it, not of the peer.
	unsent bool
	cut    string // the body did not come whole: cutNote's mark
	// cutByStop: the request had left, or was leaving, when the stop cut
	// it (its grace ran out, or a second signal): the peer may have it.
	cutByStop bool
	// pauseCounted, when set, is shared by the events of one merged
	// request: the request waits out its pause once, however many
	// events it carried, so the wait is counted once (retry), as the
	// wait of one request.
	pauseCounted *atomic.Bool
}

func (res *sendResult) describe() error {
	switch {
	case res.err != nil:
		return res.err
	case res.envelopeErr != nil:
		return res.envelopeErr
	}
	return fmt.Errorf("HTTP %d", res.status)
}

// logRetry says an event will be tried again: each one at debug level,
// else at most one line a second for the pipeline, the next saying how
// many were left out. A line per retry made 430,000 lines of a million
// CSV rows under 30% 503s, each clearing the status line (a QA run); the
// metrics count every retry.
func (l *lane) logRetry(it *item, attempt int, wait time.Duration, cause error) {
	l.r.logLimited(&l.retryLogged, "will retry", slog.LevelInfo, slog.LevelDebug, "will retry",
		"pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it),
		"attempt", attempt, "in", wait.Round(time.Millisecond), "error", l.r.opts.Masker.String(cause.Error()))
}

// logDead says an event became a dead letter: at debug level each one,
// else at most one line a second for each reason of the pipeline, the
// next saying how many were left out. A line each made 76 MB of log for
// 300,000 dead letters (a QA run); engine dlq list names each, and
// engine_events_dead_lettered_total counts them.
func (l *lane) logDead(it *item, reason string, id uint64, attempts int, cause string) {
	l.r.logLimited(&l.retryLogged, "dead-lettered "+reason, slog.LevelWarn, slog.LevelWarn, "dead-lettered",
		"pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it),
		"reason", reason, "dead_letter", id, "attempts", attempts, "error", cause)
}

// send delivers one request through the connection's governor.
func (l *lane) send(ctx context.Context, req *engine.Request, committed bool) sendResult {
	call := l.p.Target
	pool := call.Endpoint.Pool(req.Value)
	// No request leaves once the lane stops taking work (a reload retires
	// it, or the engine stops), and the queue for the governor ends then,
	// not when requests are cut: one that left late in a reload's grace
	// (from the queue, or one by one after Braze refused their merged
	// request) was cut on the wire, the peer had it, and the next version
	// sent it again (a campaign message sent twice). One that has not left
	// is no attempt: its event stays queued.
	// An event whose steps changed something at a peer goes all the same,
	// within the grace (lane.committed).
	queue := l.soft
	if committed {
		queue = l.hard
	}
	if queue.Err() != nil {
		return sendResult{err: errStopping, verdict: delivery.Retry}
	}
	waited, err := l.gov.Wait(queue, pool)
	if err != nil || queue.Err() != nil {
		return sendResult{err: errStopping, verdict: delivery.Retry}
	}
	began := time.Now()
	caller := engine.HTTPCaller{Client: l.r.client, Timeout: l.p.TargetTimeout()}
	if l.p.Delivery.Timeout > 0 {
		caller.TimeoutFrom = "the pipeline's delivery.timeout"
	}
	resp, err := caller.Call(ctx, nil, req)
	if resp == nil {
		if bad := unsendable(req); bad != nil {
			return sendResult{err: fmt.Errorf("target: %w", bad), verdict: delivery.Reject, unsent: true}
		}
		l.r.metrics.observeRequest(call.Conn.Name, endpointName(call), 0, time.Since(began), waited)
		return sendResult{err: err, verdict: delivery.Retry, cutByStop: ctx.Err() != nil && l.r.stopping.Load()}
	}
	l.r.metrics.observeRequest(call.Conn.Name, endpointName(call), resp.Status, time.Since(began), waited)
	res := sendResult{status: resp.Status, header: resp.Header, body: resp.Body}
	var pauseBegan bool
	if res.pause, pauseBegan = l.gov.Observe(pool, resp.Status, resp.Header); pauseBegan {
		l.r.pauseBegan(call.Conn, l.gov, pool, res.pause, resp.Status)
	}
	if err != nil {
		// The answer's head came and its body did not, whole: the peer
		// had the request and said what it made of it, so its status
		// decides, not the cut.
		res.cut = cutNote(err)
		if resp.Status >= 200 && resp.Status < 300 {
			// The peer acted on it: sent again, a trigger would send
			// its message twice. What the body would have said is lost
			// (a /users/track error about one object, SessionM's
			// "status":"error"), but the request as a whole was taken,
			// and a resend would repeat all it did (every stored
			// object, a counter tag's increment): it counts as
			// delivered, and the log says, per event, what is not known
			// (cutDelivered).
			res.body = nil // a part is not the answer: nothing to read in it
			res.envelopeErr = err
			res.verdict = delivery.Delivered
			return res
		}
		res.envelopeErr = err
		// A status that refuses the whole request by itself (Braze's 401,
		// 403, 404) needs no body to say so: a merged batch is then
		// dead-lettered at once, not sent again event by event.
		if errors.As(call.ResponseError(resp.Status, nil), new(*spec.WholeRequestError)) {
			res.envelopeErr = &spec.WholeRequestError{Err: err}
		}
		res.verdict = delivery.Classify(resp.Status, nil, err)
		return res
	}
	res.envelopeErr = call.ResponseError(resp.Status, resp.Body)
	res.verdict = delivery.Classify(resp.Status, nil, res.envelopeErr)
	return res
}

// cutDelivered warns, naming the event, when res delivered it with an
// answer whose body was cut: a /users/track refusal of one of its objects
// or SessionM's "status":"error" would have been in the part that is lost.
func (l *lane) cutDelivered(it *item, res *sendResult) {
	if res.cut == "" {
		return
	}
	l.r.log.Warn("delivered, but the answer's body was cut: what it said beyond its status is unknown", "pipeline", l.p.Name,
		"version", l.p.Version, "event", eventLabel(it), "error", l.r.opts.Masker.String(res.envelopeErr.Error()))
}

// cutNote marks the excerpt of an answer whose body did not come whole
// (err a *engine.CutAnswerError), and is "" for any other error.
func cutNote(err error) string {
	var cut *engine.CutAnswerError
	switch {
	case !errors.As(err, &cut):
		return ""
	case cut.TooLarge:
		return " [cut: over the size limit]"
	}
	return " [cut: the rest did not come]"
}

// unsendable says why req cannot leave at all, or nil: the transport
// (h1client, or net/http for a proxy) refuses such a request before it
// sends a byte, and would refuse it again on every retry. It is asked only once a request got no answer, so a
// delivery pays nothing for it.
func unsendable(req *engine.Request) error {
	if !h1client.IsToken(req.Method) {
		return fmt.Errorf("the method %q is not valid in HTTP", req.Method)
	}
	if _, err := url.Parse(req.URL); err != nil {
		return fmt.Errorf("the rendered URL is not valid: %w", err)
	}
	for name, values := range req.Header {
		if !h1client.IsToken(name) {
			return fmt.Errorf("the header name %q is not valid in HTTP", name)
		}
		for _, v := range values {
			if i := h1client.ControlByte(v); i >= 0 {
				return fmt.Errorf("headers %s: the rendered value holds the control character %q, which HTTP does not allow", name, v[i])
			}
		}
	}
	return nil
}

// settle acts on the verdict for one event.
func (l *lane) settle(it *item, attempt int, req *engine.Request, res sendResult) {
	switch res.verdict {
	case delivery.Delivered:
		l.cutDelivered(it, &res)
		l.ack(it, "delivered")
	case delivery.Reject:
		reason := "rejected"
		if res.unsent {
			reason = "template"
		}
		l.dead(it, attempt, reason, res.describe(), req, &res)
	default:
		l.retry(it, attempt, res.describe(), req, &res)
	}
}

func (l *lane) retry(it *item, attempt int, cause error, req *engine.Request, res *sendResult) {
	if errors.Is(cause, errStopping) || l.hard.Err() != nil {
		// Not an attempt: the engine stopped while it waited. The event
		// stays queued as it was.
		if res != nil && res.cutByStop {
			l.r.countCutByStop(l.p.Name)
		}
		l.release(it)
		return
	}
	if attempt >= l.p.Delivery.Attempts {
		l.dead(it, attempt, "attempts_exhausted", cause, req, res)
		return
	}
	wait := delivery.Backoff(attempt, l.p.Delivery.BackoffInitial, l.p.Delivery.BackoffMax, l.r.opts.Random)
	var pause time.Duration // of wait, what engine_rate_limit_wait_seconds_total counts
	early := time.Duration(0)
	forPause := res != nil && res.pause > wait
	if forPause {
		wait = res.pause
		if l.batcher != nil {
			// Back a linger before the pause ends, the event joins the
			// batch that filled during it, which stays open until then;
			// back at its end, it came a moment after that batch left,
			// and went alone a linger later (one request more per pause).
			// Anything else it would send waits in the governor.
			early = min(l.p.Delivery.Linger, wait/2)
		}
		// The event waits out the pause here, not in the governor, which
		// counts only its own waits: when it wakes the pause is over, so
		// nothing is counted twice.
		if res.pauseCounted == nil || res.pauseCounted.CompareAndSwap(false, true) {
			pause = wait
		}
	}
	next := l.r.clock.Now().Add(wait)
	l.r.metrics.retried.WithLabelValues(l.p.Name).Inc()
	l.logRetry(it, attempt, wait, cause)
	if it.row != nil {
		if l.queueRow(it, attempt, next) {
			if pause > 0 {
				l.countPause(pause) // no goroutine of the lane waits for it
			}
			return // the inbox has it now; its feeder tries it again
		}
	} else if err := l.r.store.Retry(l.p.Name, it.rec.Seq, attempt, next); err != nil {
		l.r.logLimited(&l.r.storeErrors, l.p.Name+"\x00retry", slog.LevelError, slog.LevelError, "cannot record a retry; the event stays queued", "pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it), "error", err)
	}
	it.rec.Attempts, it.rec.NotAfter = attempt, next
	// The event keeps its order_by key while it waits, so the key's later
	// events cannot overtake it.
	l.laterCounting(it, wait-early, pause, forPause)
}

// A pause that a request's events wait out for their retry is added to
// engine_rate_limit_wait_seconds_total once it ends (or the lane stops,
// with the part waited): added at its start, a Retry-After of 8 s read 8
// a second later, and a stop or reload a second in counted the seconds
// nobody waited. An event waiting in memory is timed by the goroutine that
// waits for it (laterCounting); a CSV row moved to the inbox, by one of
// its own (countPause).
func (l *lane) countPause(pause time.Duration) {
	from := l.r.clock.Now()
	l.spawn(func() {
		_, _ = l.sleepUntil(from.Add(pause), true) // a resume ends it: counted as waited
		l.pauseWaited(from, pause)
	})
}

func (l *lane) pauseWaited(from time.Time, pause time.Duration) {
	l.rateLimitWaited(min(l.r.clock.Now().Sub(from), pause))
}

func (l *lane) rateLimitWaited(waited time.Duration) {
	l.r.metrics.rateLimitWait.WithLabelValues(l.p.Target.Conn.Name).Add(waited.Seconds())
}

func (l *lane) ack(it *item, why string) {
	if it.row == nil {
		l.acks.ack(it.rec.Seq)
	}
	if why != "filtered" { // process logged it, with why
		l.r.log.Debug(why, "pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it))
	}
	l.r.metrics.handled.WithLabelValues(l.p.Name, why).Inc()
	outcome := rowDelivered
	if why == "filtered" {
		outcome = rowFiltered // nothing was sent: not a delivery
	}
	l.finished(it, outcome, 0)
}

// finished counts an event's outcome (a CSV row's in its import's
// progress; deadLetter is its dead letter's id, if it has one), settles a
// row, and lets the event go.
func (l *lane) finished(it *item, outcome rowOutcome, deadLetter uint64) {
	l.r.settledRow(l.p.Name, it, outcome, deadLetter)
	if it.row != nil {
		// After the count: an import that sees its last row settle
		// returns, and its progress must include it.
		it.row.settle()
	}
	l.release(it)
}

// dead moves the event to the dead letters with what is needed to see why.
func (l *lane) dead(it *item, attempts int, reason string, cause error, req *engine.Request, res *sendResult) {
	m := l.r.opts.Masker
	eventID, event := it.stored.ID, storedJSON(it.payload())
	if eventID == "" && it.row == nil && it.rec.Seq != 0 {
		// An event without an id is named as its sender was answered
		// (<pipeline>#<seq>), here and, once replayed, in its log lines:
		// queued again it gets another number. The name enters the dedupe
		// index with the replay; only a sender whose Idempotency-Key is
		// that very name could meet it there.
		eventID = noIDLabel(l.p.Name, it.rec.Seq)
		event = withID(event, eventID)
	}
	dl := inbox.DeadLetter{
		Version: l.p.Version, EventID: eventID, Event: []byte(m.String(string(event))),
		Reason: reason, Error: m.String(cause.Error()), Attempts: attempts, Received: it.rec.Received,
	}
	if req != nil {
		sent := &inbox.SentRequest{Method: req.Method, URL: m.String(req.URL), Headers: map[string]string{}, Body: m.String(string(req.Body))}
		for k, vs := range req.Header {
			// A Basic credential is base64 of key:secret, which the masker
			// cannot know; the scheme is all a reader needs.
			sent.Headers[k] = m.String(engine.ShownHeader(k, strings.Join(vs, ", ")))
		}
		dl.Request = sent
	}
	if res != nil && (res.status != 0 || len(res.body) > 0) {
		dl.Response = &inbox.GotResponse{Status: res.status, Excerpt: spec.Excerpt([]byte(m.String(string(res.body)))) + res.cut}
	}
	if !json.Valid(dl.Event) {
		dl.Event, _ = json.Marshal(string(dl.Event)) // damaged: kept, masked, as text
	}
	id, err := l.r.store.DeadLetter(l.p.Name, it.rec.Seq, dl)
	if err != nil {
		// The event stays queued and in memory: it is tried again in a
		// while, so a disk that was full for a moment loses nothing.
		l.r.logLimited(&l.r.storeErrors, l.p.Name+"\x00dead letter", slog.LevelError, slog.LevelError, "cannot store a dead letter; the event stays queued and its dead letter will be written again", "pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it), "error", err)
		it.deadAgain = func() { l.dead(it, attempts, reason, cause, req, res) }
		l.later(it, deadLetterRetry)
		return
	}
	l.logDead(it, reason, id, attempts, dl.Error)
	l.r.metrics.deadLettered.WithLabelValues(l.p.Name, reason).Inc()
	l.finished(it, rowDead, id)
}

// lookups is the Caller for the lookup steps of synchronous pipelines:
// through the connection's governor, over the shared client.
func (r *Runner) lookups() engine.Caller { return lookupCaller{r} }

type lookupCaller struct{ r *Runner }

func (c lookupCaller) Call(ctx context.Context, step *engine.Step, req *engine.Request) (*engine.Response, error) {
	return c.r.lookup(ctx, nil, step, req)
}

// laneLookups is the Caller for a lane's steps in one attempt. Like a
// target request (send), a step waits for the governor only while the lane
// takes work: a stop or a reload ends the wait at once, and the event stays
// queued, not sent late and refused after (a lookup wasted) nor holding
// the stop up for its grace. Unlike a target request, one that only reads
// and is on the wire is cut then too: its answer could only feed a request
// the lane no longer sends, and the event, still queued, is looked up
// again by the next run or version all the same. Left to finish, a lookup
// SessionM took 15 s over held the stop up for its whole grace.
//
// A step that changes something at its peer (an offer issued) is left to
// finish, and once one is answered the attempt is committed: the steps
// after it, and its target request (lane.send), go even once the lane
// stops taking work, within the grace; left queued, the event had its
// offer issued again by the next run (a QA run, with a lookup after the
// issuing step too). One the grace cuts on the wire is counted as cut by
// the stop (errStepCut).
type laneLookups struct {
	l         *lane
	committed bool
}

// errStepCut marks a step that changes its peer, cut on the wire by the
// stop: the peer may have acted on it.
var errStepCut = errors.New("cut on the wire by the stop")

func (c *laneLookups) Call(ctx context.Context, step *engine.Step, req *engine.Request) (*engine.Response, error) {
	changes, committed := step.Call.ChangesPeer(), c.committed
	if changes || committed {
		soft := c.l.soft
		if committed {
			soft = nil // waits for the governor within the grace
		}
		resp, err := c.l.r.lookup(ctx, soft, step, req)
		if changes && resp != nil {
			c.committed = true
		}
		// Cut with a change at the peer behind it, its own or an earlier
		// step's: the next run makes that change again (a QA run: a
		// lookup after the issued offer, cut by the grace).
		if err != nil && !errors.Is(err, errStopping) && ctx.Err() != nil && c.l.r.stopping.Load() {
			return resp, fmt.Errorf("%w: %w", errStepCut, err)
		}
		return resp, err
	}
	ctx, cut := context.WithCancel(ctx)
	defer cut()
	defer context.AfterFunc(c.l.soft, cut)()
	resp, err := c.l.r.lookup(ctx, c.l.soft, step, req)
	if err != nil && c.l.soft.Err() != nil {
		return nil, errStopping
	}
	return resp, err
}

// lookup sends a lookup step's request. It waits for the connection's
// governor under soft when given (a lane's: it ends before ctx does), and
// then reports errStopping once soft has ended; otherwise under ctx.
func (r *Runner) lookup(ctx, soft context.Context, step *engine.Step, req *engine.Request) (*engine.Response, error) {
	gov := r.governor(step.Call.Conn)
	pool := step.Call.Endpoint.Pool(req.Value)
	queue := ctx
	if soft != nil {
		queue = soft
	}
	waited, err := gov.Wait(queue, pool)
	if soft != nil && soft.Err() != nil {
		return nil, errStopping
	}
	if err != nil {
		if l := gov.PausedUntil(); l.After(r.clock.Now()) {
			return nil, fmt.Errorf("%s is paused until %s (the peer asked for it): %w", step.Call.Conn.Name, l.UTC().Format(time.RFC3339), err)
		}
		if r.soft.Err() != nil {
			return nil, errStopping
		}
		// The caller's own deadline ran out while the rate limit held the
		// lookup back: a synchronous pipeline answers 504.
		return nil, fmt.Errorf("waiting for %s's rate limit: %w", step.Call.Conn.Name, err)
	}
	began := time.Now()
	resp, err := engine.HTTPCaller{Client: r.client, Timeout: step.Call.Conn.Timeout}.Call(ctx, step, req)
	status := 0
	if resp != nil { // a cut answer too: a 429's Retry-After holds
		status = resp.Status
		if pause, pauseBegan := gov.Observe(pool, resp.Status, resp.Header); pauseBegan {
			r.pauseBegan(step.Call.Conn, gov, pool, pause, resp.Status)
		}
	}
	r.metrics.observeRequest(step.Call.Conn.Name, endpointName(step.Call), status, time.Since(began), waited)
	return resp, err
}

// pauseBegan counts and logs a pause of conn's governor that an answer
// with status began: the connection's, or with a pause of 0 the pool's
// alone (Braze's broadcasts). Without a line, events waited out a day's
// pause with nothing in the log but their retries (a QA run). A line a
// second per connection (and pool) at most: a peer that pauses it every
// second says so once. Keyed and said with the file too: two folders'
// connections of one name may reach two accounts.
func (r *Runner) pauseBegan(conn *spec.Connection, gov *delivery.Governor, pool string, pause time.Duration, status int) {
	key, until := conn.GovernorKey(), gov.PausedUntil()
	msg := "connection paused: its peer asked to wait (a 429 or Retry-After); every pipeline that uses it waits"
	args := []any{"connection", conn.Name}
	if pause == 0 {
		key, until = key+"#"+pool, gov.PoolsHeldUntil()[pool]
		msg = "connection's pool paused: its peer answered 429 for this kind of request alone; only these wait, the rest of the connection goes on"
		args = append(args, "pool", pool)
	} else {
		r.metrics.pauses.WithLabelValues(conn.Name).Inc()
	}
	args = append(args, "status", status, "until", until.UTC().Format(time.RFC3339Nano), "for", until.Sub(r.clock.Now()).Round(time.Millisecond), "file", conn.File)
	r.logLimited(&r.pauseLogged, key, slog.LevelWarn, slog.LevelWarn, msg, args...)
}

// endpointName labels a call in metrics: its endpoint, or "raw".
func endpointName(c *engine.Call) string {
	if c.Endpoint != nil {
		return c.Endpoint.Name
	}
	return "raw"
}

func (l *lane) isRunning() bool {
	l.lifeMu.Lock()
	defer l.lifeMu.Unlock()
	return l.life == laneRunning
}
