package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyalty-connector/engine/connectors/csvfile"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/prometheus/client_golang/prometheus"
)

// A CSV row goes from its file to the pipeline's workers without a stop in
// the inbox. The file is on disk already, so copying each row into the
// inbox (a journal write, a bbolt put and delete, an encode and a decode)
// only repeated what the file and its checkpoint make safe, and cost a
// sixth of an import's CPU. The checkpoint now counts the rows, from the
// top of the file, that have an outcome: delivered, filtered out,
// dead-lettered, or moved into the inbox to be retried from there (so a
// row that waits for its retry does not hold the checkpoint back). A
// restart resumes after it: the rows that were in flight, or had their
// outcome after it was last written, are sent again (at least once, never
// lost), as delivered events not yet removed from the inbox are.

// csvCheckpointEvery is how often the checkpoint is written while rows get
// their outcomes: what a crash sends again is at most this long's worth,
// plus the rows in flight (and, with order_by, the rows after one that
// waits in memory for its retry).
const csvCheckpointEvery = 20 * time.Millisecond

// csvRun is one import of a file: which of its rows have an outcome.
type csvRun struct {
	r          *Runner
	pipeline   string
	file, hash string
	key        string // the checkpoint's
	// progress is the import's own record (guarded by r.csv.mu).
	progress *CSVProgress
	received prometheus.Counter // engine_events_received_total, the pipeline's

	mu      sync.Mutex
	base    int           // rows 1..base have an outcome
	open    []bool        // rows base+1... handed over: whether each has one
	back    []*item       // rows a stopping lane gave back, to hand over again
	changed chan struct{} // (1) base moved, or a row came back
	lane    *lane         // the version rows are handed to (the import's goroutine alone)
	ending  bool          // the import stopped early; rows the lanes hold may still settle

	saveMu sync.Mutex
	saved  csvCheckpoint // what the stored checkpoint says
	closed bool          // the last checkpoint is written; nothing is written after it
	// saveFailing: the last write of the checkpoint failed (a full disk);
	// no row is handed over until one works (waitForCheckpoint).
	saveFailing atomic.Bool

	stopWriter chan struct{}
	stopOnce   sync.Once
	writerDone chan struct{}

	letGo     chan struct{} // closed by lettingGo
	letGoOnce sync.Once
}

// csvRow is a row's ticket back to its import. settled is only touched by
// whoever holds the row's item, which the lane hands on with channels.
type csvRow struct {
	run     *csvRun
	n       int // the row's position among the file's data rows
	settled bool
}

func (r *Runner) startCSVRun(pipeline, file, hash, key string, resumeAfter int, progress *CSVProgress) *csvRun {
	c := &csvRun{r: r, pipeline: pipeline, file: file, hash: hash, key: key, base: resumeAfter, saved: csvCheckpoint{Rows: resumeAfter}, progress: progress,
		received: r.metrics.received.WithLabelValues(pipeline),
		changed:  make(chan struct{}, 1), stopWriter: make(chan struct{}), writerDone: make(chan struct{}), letGo: make(chan struct{})}
	r.csv.begin(c)
	go c.writeCheckpoints()
	return c
}

// item makes row n (read now) an event for the workers. It is counted as
// received here, once: its retries from the inbox and replays of its dead
// letter are not new events, as a webhook's are not. A broken row is not
// counted, as a webhook body that is not JSON is not: it never becomes an
// event, and shows as a csv_row dead letter.
func (c *csvRun) item(row csvfile.Row, n int) (*item, error) {
	stored := &storedEvent{
		ID:  c.rowID(row.Number),
		Row: &storedRow{File: c.file, Number: row.Number, Line: row.Line, Values: row.Values},
	}
	ev, err := stored.event()
	if err != nil {
		return nil, err
	}
	c.track(n)
	c.received.Inc()
	return &item{rec: inbox.Record{ID: stored.ID, Received: c.r.clock.Now()}, stored: stored, ev: ev, row: &csvRow{run: c, n: n}}, nil
}

// rowID is a CSV row's event id: the file's content hash and the row
// number, the same in every import of the file.
func (c *csvRun) rowID(number int) string { return c.hash + ":" + strconv.Itoa(number) }

// brokenRowText is how much of a broken row its dead letter quotes.
const brokenRowText = 4 << 10

// brokenRow dead-letters a row that cannot be read, with its position and
// its text as the file holds it (the first 4 KiB: a row can take 1 MiB),
// which the fix the dead letter asks for starts from: an inbox file is in
// done/ by the time it is read. Bytes that are not UTF-8 show as U+FFFD.
// If the dead letter cannot be stored, the import stops before the row,
// so the next import of the file tries again.
func (c *csvRun) brokenRow(e *csvfile.RowError, reader *csvfile.Reader) error {
	where := map[string]any{"file": e.File, "row": e.Number, "line": e.Line}
	if text, cut := reader.Text(e, brokenRowText); text != "" {
		where["text"] = text
		if cut {
			where["text_cut"] = true
		}
	}
	event, _ := json.Marshal(where)
	version := c.r.version(c.pipeline)
	_, err := c.r.store.DeadLetter(c.pipeline, 0, inbox.DeadLetter{
		Version: version, EventID: c.rowID(e.Number),
		Event: event, Reason: "csv_row", Error: e.Error(), Received: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("row %d of %s cannot be read and its dead letter cannot be stored (%w); the import stops before it", e.Number, e.File, err)
	}
	c.r.csv.update(c.progress, func(p *CSVProgress) { p.Broken++ })
	c.r.metrics.deadLettered.WithLabelValues(c.pipeline, "csv_row").Inc()
	// One a second a pipeline, as dead letters are: a file of 50,000
	// broken rows wrote as many lines (a QA run).
	c.r.logLimited(&c.r.brokenRows, c.pipeline, slog.LevelWarn, slog.LevelWarn, "broken CSV row",
		"pipeline", c.pipeline, "version", version, "event", rowLabel(e.File, e.Number, c.rowID(e.Number)), "file", e.File, "row", e.Number, "line", e.Line, "error", e.Reason)
	return nil
}

// track records that row n, the next after the last one tracked, is on
// its way.
func (c *csvRun) track(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n != c.base+len(c.open)+1 {
		panic(fmt.Sprintf("csv row %d tracked after row %d", n, c.base+len(c.open)))
	}
	c.open = append(c.open, false)
}

// settleNow records an outcome reached while reading (a broken row).
func (c *csvRun) settleNow(n int) {
	c.track(n)
	c.settled(n)
}

func (row *csvRow) settle() {
	row.settled = true
	row.run.settled(row.n)
}

func (c *csvRun) settled(n int) {
	c.mu.Lock()
	c.open[n-c.base-1] = true
	moved := 0
	for moved < len(c.open) && c.open[moved] {
		moved++
	}
	if moved > 0 {
		c.base += moved
		c.open = append(c.open[:0], c.open[moved:]...)
		c.signal()
	}
	lastHeld := c.ending && c.heldByLanes() == 0
	c.mu.Unlock()
	if lastHeld {
		c.lettingGo() // after c.mu: finishCSVRuns takes r.csv.mu, then c.mu
	}
}

func (c *csvRun) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// giveBack takes a row a lane let go of without an outcome: the lane was
// retired by a reload, or the engine is stopping and could not move the
// row into the inbox (stowRow). A row the import could
// not hand over comes here too, so every row without an outcome is either
// here or held by a lane.
//
// A row that comes back after the import stopped early is not sent by
// this run, so it no longer counts as sent: its file's progress could
// otherwise never settle (--until-done waited for ever after a pipeline
// was removed mid-import).
func (c *csvRun) giveBack(it *item) {
	c.mu.Lock()
	c.back = append(c.back, it)
	c.signal()
	ending := c.ending
	lastHeld := ending && c.heldByLanes() == 0
	c.mu.Unlock()
	if ending {
		c.unsent(1)
	}
	if lastHeld {
		c.lettingGo()
	}
}

// lettingGo marks the import's progress: it stopped early, and no lane
// holds a row of it. Marked where the last held row settles or comes
// back, and by the checkpoint writer: a later import of the content may
// stop that writer first (finishCSVRuns).
func (c *csvRun) lettingGo() {
	c.r.csv.mu.Lock()
	c.progress.letGo = true
	c.r.csv.mu.Unlock()
	c.letGoOnce.Do(func() { close(c.letGo) })
}

// unsent takes n rows this run will not send after all off its counts of
// rows sent and read: the next import of the file reads them again, and
// the summary adds up (rows read = sent + broken + handled before).
func (c *csvRun) unsent(n int) {
	c.r.csv.mu.Lock()
	defer c.r.csv.mu.Unlock()
	c.progress.Queued -= n
	c.progress.Rows -= n
}

// settledThrough reports whether rows 1..n all have an outcome.
func (c *csvRun) settledThrough(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base >= n
}

// errNewVersion: the pipeline's running lane is not the one the import
// hands rows to; it must switch first (switchLane).
var errNewVersion = errors.New("a new version of the pipeline runs")

// handOver gives it to the pipeline's running lane, waiting for a free
// slot. It fails when the engine stops or the pipeline is removed: the row
// then has no outcome, and the checkpoint stays before it.
func (c *csvRun) handOver(ctx context.Context, it *item) error {
	if err := c.waitForCheckpoint(ctx); err != nil {
		return err
	}
	for {
		err := c.offer(ctx, it)
		if !errors.Is(err, errNewVersion) {
			return err
		}
		if err := c.switchLane(ctx); err != nil {
			return err
		}
	}
}

// offer gives it to c.lane, the lane the import hands rows to.
func (c *csvRun) offer(ctx context.Context, it *item) error {
	for {
		l := c.r.lane(c.pipeline)
		if l == nil {
			return c.removed()
		}
		if l != c.lane {
			return errNewVersion
		}
		select {
		case l.slots <- struct{}{}:
			if l.enter() {
				if it.stored.AcceptedBy == "" {
					it.stored.AcceptedBy = l.p.Version
				}
				l.route(it) // a lane that stops first gives it back
				l.leave()
				return nil
			}
			<-l.slots
		case <-l.soft.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		// Stopping: the engine, or this version for the next one.
		if err := c.pause(ctx); err != nil {
			return err
		}
	}
}

// waitForCheckpoint holds the next row back while the checkpoint cannot be
// written (a full disk). Read on, rows were delivered by the thousand that
// the checkpoint did not pass, and a restart sent them all again (a QA
// run: 5,670 after a kill -9); held, only the rows in flight are.
func (c *csvRun) waitForCheckpoint(ctx context.Context) error {
	for c.saveFailing.Load() {
		if err := c.r.clock.Sleep(ctx, csvCheckpointEvery); err != nil {
			return err
		}
		if c.r.soft.Err() != nil {
			return errStopping
		}
	}
	return nil
}

// switchLane moves the import to the pipeline's newest running lane. Rows
// go to it only once the lane before it is done and has given back the
// rows it had not started; those go first, in file order, so the rows of
// one order_by key keep their order across a reload.
func (c *csvRun) switchLane(ctx context.Context) error {
	for {
		if old := c.lane; old != nil {
			select {
			case <-old.done:
			case <-ctx.Done():
				return ctx.Err()
			case <-c.r.soft.Done():
				return errStopping
			}
		}
		l := c.r.lane(c.pipeline)
		if l == nil {
			return c.removed()
		}
		if !l.isRunning() {
			// It starts once the version before it is done (or a newer
			// one replaces it).
			if err := c.pause(ctx); err != nil {
				return err
			}
			continue
		}
		c.lane = l
		for {
			it := c.takeBack()
			if it == nil {
				return nil
			}
			if err := c.offer(ctx, it); err != nil {
				c.giveBack(it)
				if errors.Is(err, errNewVersion) {
					break // replaced again meanwhile
				}
				return err
			}
		}
	}
}

// takeBack returns the given-back row that comes first in the file.
func (c *csvRun) takeBack() *item {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.back) == 0 {
		return nil
	}
	first := 0
	for i, it := range c.back {
		if it.row.n < c.back[first].row.n {
			first = i
		}
	}
	it := c.back[first]
	c.back = slices.Delete(c.back, first, first+1)
	return it
}

// errRemoved: the pipeline was removed while it imported the file;
// removedError says so in full once it knows where the next import
// resumes.
var errRemoved = errors.New("the pipeline was removed")

func (c *csvRun) removed() error { return errRemoved }

// removedError tells that the pipeline was removed, and after which row
// importing the file again resumes. The removed version's requests in
// flight may still settle rows and move the checkpoint on, so it waits
// for them (the version's grace bounds that) before it says: told at once,
// the row was one the checkpoint then passed. A stop meanwhile (the
// engine's, or the import's) cuts the wait short, and the row is a lower
// bound.
func (c *csvRun) removedError(ctx context.Context) error {
	bound := " or a later one (the import was stopped while the removed version still had requests in flight)"
	select {
	case <-c.letGo:
		bound = ""
	case <-ctx.Done():
	case <-c.r.soft.Done():
	}
	resume := fmt.Sprintf("resumes after row %d", c.checkpoint())
	if cp := c.checkpointNow(); cp.Past > cp.Rows {
		// The rows after the first open one that had their outcome are
		// not sent again: "after row 1659" read as if 190 rows delivered
		// past it would be (a QA run).
		resume += fmt.Sprintf(", passing by the rows up to row %d that had their outcome", cp.Past)
	}
	return fmt.Errorf("pipeline %s was removed while it imported %s; importing the file again with a pipeline named %s %s (a pipeline of another name starts at row 1: the checkpoint is the pipeline's)%s", c.pipeline, c.file, c.pipeline, resume, bound)
}

func (c *csvRun) pause(ctx context.Context) error {
	if err := c.r.clock.Sleep(ctx, 5*time.Millisecond); err != nil {
		return err
	}
	if c.r.soft.Err() != nil {
		return errStopping
	}
	return nil
}

// waitSettled returns once rows 1..n all have an outcome, handing rows a
// replaced version gave back to the next.
func (c *csvRun) waitSettled(ctx context.Context, n int) error {
	for !c.settledThrough(n) {
		var stopped <-chan struct{} // the version the rows went to is done: a reload, which may give nothing back
		if c.lane != nil {
			stopped = c.lane.done
		}
		select {
		case <-c.changed:
		case <-stopped:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.r.soft.Done():
			return errStopping
		}
		if l := c.r.lane(c.pipeline); l != c.lane || c.hasBack() {
			if err := c.switchLane(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *csvRun) hasBack() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.back) > 0
}

func (c *csvRun) checkpoint() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base
}

// maxHoles bounds the rows without an outcome a checkpoint names after
// the first: past it, the checkpoint says only where that first one is.
const maxHoles = 1024

// checkpointNow is the checkpoint of the rows with an outcome: all of
// them up to base, and those after it, with the rows still open between.
func (c *csvRun) checkpointNow() csvCheckpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := csvCheckpoint{Rows: c.base}
	for i := len(c.open) - 1; i >= 0; i-- {
		if c.open[i] {
			cp.Past = c.base + i + 1
			break
		}
	}
	for i := 0; cp.Past > 0 && c.base+i+1 < cp.Past; i++ {
		if !c.open[i] {
			if len(cp.Holes) == maxHoles {
				return csvCheckpoint{Rows: c.base}
			}
			cp.Holes = append(cp.Holes, c.base+i+1)
		}
	}
	return cp
}

// writeCheckpoints writes the checkpoint at most every csvCheckpointEvery
// while it moves; a failed write is tried again with the next. After an
// early stop it goes on while the lanes hold rows of the file (a stop's
// grace lets them finish), so those that settle are not sent again.
func (c *csvRun) writeCheckpoints() {
	defer close(c.writerDone)
	tick := time.NewTicker(csvCheckpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stopWriter:
			return
		case <-tick.C:
		}
		// Once a stopped import's rows are all settled or back, nothing
		// moves the checkpoint: this write is the last.
		last := c.wound()
		err := c.save(false, false)
		c.saveFailing.Store(err != nil)
		if err != nil {
			c.r.logLimited(&c.r.storeErrors, c.pipeline+"\x00checkpoint\x00"+c.file, slog.LevelError, slog.LevelError, "cannot write a CSV checkpoint; trying again, and reading the file waits until it can", "pipeline", c.pipeline, "version", c.r.version(c.pipeline), "file", c.file, "error", err)
			continue
		}
		if last {
			c.r.csv.forget(c)
			c.lettingGo()
			return
		}
	}
}

// wound reports whether the import stopped early and no lane holds a row
// of it: each has an outcome or came back.
func (c *csvRun) wound() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending && c.heldByLanes() == 0
}

// heldByLanes is how many rows lanes hold (c.mu held): those without an
// outcome, less those given back.
func (c *csvRun) heldByLanes() int {
	open := 0
	for _, settled := range c.open {
		if !settled {
			open++
		}
	}
	return open - len(c.back)
}

// stopped reports whether the import stopped early.
func (c *csvRun) stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending
}

// save writes the checkpoint if it moved since the last write, or to say
// the file is done. Once the last one is written nothing is: Runner.Stop
// writes it before the inbox closes.
func (c *csvRun) save(done, last bool) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = last
	cp := c.checkpointNow()
	cp.Done = done
	if !done && cp.Rows <= c.saved.Rows && cp.Past <= c.saved.Past && len(cp.Holes) >= len(c.saved.Holes) {
		return nil // nothing more has an outcome
	}
	if done {
		cp.Past, cp.Holes = 0, nil
	}
	if err := c.r.store.SetCheckpoint(c.key, cp); err != nil {
		return fmt.Errorf("writing the checkpoint of %s (row %d): %w", c.file, cp.Rows, err)
	}
	c.saved = cp
	return nil
}

// stop ends an import before its end (a row it could not hand over is
// given back first). The checkpoint is written now, and again as the rows
// the lanes hold settle, until each has an outcome or came back;
// Runner.Stop writes the last one once its lanes are done.
func (c *csvRun) stop() error {
	c.mu.Lock()
	c.ending = true
	idle := c.heldByLanes() == 0
	back := len(c.back) // rows given back later are giveBack's to uncount
	c.mu.Unlock()
	c.unsent(back)
	if idle {
		defer c.lettingGo()
		return c.finish(false)
	}
	return c.save(false, false)
}

// finish stops the checkpoint writer and writes the last checkpoint: done
// once every row has an outcome, otherwise where a restart resumes.
func (c *csvRun) finish(done bool) error {
	c.stopOnce.Do(func() { close(c.stopWriter) })
	<-c.writerDone
	c.r.csv.forget(c)
	return c.save(done, true)
}

// queueRow moves a CSV row that needs another attempt into the inbox, with
// its attempts and next time, so it stops holding its import's checkpoint
// back; the feeder tries it again from there. It reports false when the
// row must wait here instead: it holds its order_by key (later rows of the
// key wait for it), or the inbox could not take it.
func (l *lane) queueRow(it *item, attempt int, next time.Time) bool {
	if it.keyed {
		return false
	}
	if err := l.moveRow(it, attempt, next); err != nil {
		l.r.logLimited(&l.r.storeErrors, l.p.Name+"\x00row retry", slog.LevelError, slog.LevelError, "cannot move a CSV row to the inbox for its retry; it waits in memory", "pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it), "error", err)
		return false
	}
	l.release(it)
	l.wake()
	return true
}

// stowRow moves a CSV row the engine let go of as it stopped, unsent, into
// the inbox, as it stood, so it is settled for its import: the checkpoint
// passes it to the rows after it that were delivered in the stop's grace.
// Given back instead, it held the checkpoint before them, and the next run
// sent them all again: a worker that took a row just before the stop, or
// whose lookup was slower than the next rows', cost a resend of every row
// delivered after it.
//
// It reports false, and the row goes back to its import, when a reload
// retires the lane (the next version takes the row from there), when the
// pipeline orders by key (in the inbox the row could be overtaken, at the
// next start, by the rows of its key after the checkpoint), or when the
// inbox cannot take it.
func (l *lane) stowRow(it *item) bool {
	if l.r.soft.Err() == nil || l.keys != nil {
		return false
	}
	if err := l.moveRow(it, it.rec.Attempts, it.rec.NotAfter); err != nil {
		l.r.logLimited(&l.r.storeErrors, l.p.Name+"\x00row stow", slog.LevelError, slog.LevelError, "cannot move an unsent CSV row to the inbox as the engine stops; the next import of its file sends it again, with the rows after it", "pipeline", l.p.Name, "version", l.p.Version, "event", eventLabel(it), "error", err)
		return false
	}
	return true
}

// moveRow appends row it to the inbox with its attempts and next time, its
// outcome to be counted by its import, and settles it there.
func (l *lane) moveRow(it *item, attempts int, next time.Time) error {
	noted := l.r.csv.queue(it)
	got, err := l.r.store.Append(l.p.Name, inbox.NewEvent{ID: it.stored.ID, Payload: it.payload(), Attempts: attempts, NotAfter: next})
	if err != nil {
		l.r.csv.notQueued(it, noted, false)
		return err
	}
	// A duplicate is a row an earlier run or import queued: the inbox
	// holds it, or held and delivered it.
	if got[0].Duplicate {
		l.r.csv.notQueued(it, noted, true)
	}
	it.row.settle()
	return nil
}

// payload is the event as the inbox stores it. A CSV row handed over from
// its file is encoded only when it must be: a retry, a dead letter.
func (it *item) payload() []byte {
	if it.rec.Payload == nil && it.stored != nil {
		it.rec.Payload, _ = encodeStored(it.stored) // rows hold text, which always encodes
	}
	return it.rec.Payload
}
