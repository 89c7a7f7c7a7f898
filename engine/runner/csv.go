package runner

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loyalty-connector/engine/connectors/csvfile"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/spec"
)

// CSVProgress is where one file's import stands.
type CSVProgress struct {
	File      string `json:"file"`
	Pipeline  string `json:"pipeline"`
	Rows      int    `json:"rows"`      // data rows read so far (broken ones included)
	Queued    int    `json:"queued"`    // rows this run sent to the workers
	Skipped   int    `json:"skipped"`   // rows an earlier run had already handled (the checkpoint), or moved to the inbox
	Broken    int    `json:"broken"`    // rows that could not be read: dead letters
	Delivered int    `json:"delivered"` // sent rows delivered
	Filtered  int    `json:"filtered"`  // sent rows the pipeline's filter dropped: no request made
	Failed    int    `json:"failed"`    // sent rows dead-lettered
	// RunsOver counts the rows read over lines that look like rows (a
	// stray quote): each is logged, but a second's worth at most, so the
	// count says how many to look for (engine dry-run --csv names them).
	RunsOver int `json:"runs_over,omitempty"`
	// Earlier counts what became, in this run, of rows of this content
	// an earlier run had moved to the inbox for a retry, or had
	// dead-lettered and this run replays: they are among Skipped (the
	// checkpoint had passed them), not among the rows this run sent.
	Earlier RowOutcomes `json:"earlier"`
	// Retrying counts the rows this import sent that wait in the inbox
	// without an outcome yet: for a retry, or, moved there as the engine
	// stopped, for the next run; and dead letters of its rows replayed
	// now. Each leaves it as it gets its outcome, counted above.
	Retrying int  `json:"retrying"`
	ReadDone bool `json:"read_done"` // the reading reached the end of the file
	// Finished: every row has an outcome or waits in the inbox for a
	// retry; the checkpoint says the file is done.
	Finished bool      `json:"finished"`
	Started  time.Time `json:"started"`
	Err      string    `json:"error,omitempty"` // why the import failed, or stopped before the end

	// Bytes is how far into the file, of Size bytes, the rows read so far
	// reach: until the whole file is read, what tells how many rows it
	// holds.
	Bytes int64 `json:"bytes"`
	Size  int64 `json:"size"`

	// letGo: the import stopped early and no lane holds a row of it any
	// more. The rows it moved to the inbox for a retry may still wait
	// there, for a pipeline a reload removed.
	letGo bool
	// apart: no import of this run counts in the record, only rows of an
	// earlier run as they settle, until an import of the same file and
	// content takes it (keyed).
	apart bool
	// retriesLogged: the line that said the file was imported counted
	// rows still waiting for a retry, so another gives the final figures
	// once they have their outcome.
	retriesLogged bool
}

// EarlierOnly reports whether no import of this run counts in the
// record, only rows an earlier run left (Earlier): of a file this run did
// not import, or of the content a file had before it was replaced.
func (p CSVProgress) EarlierOnly() bool { return p.apart }

// Settled reports whether every row has an outcome, retries included, or
// the import failed and nothing more will happen to its rows in this run.
func (p CSVProgress) Settled() bool {
	return (p.Finished || p.Err != "") && p.Done() >= p.Queued || p.Err != "" && p.letGo
}

// RowOutcomes counts rows by what became of them.
type RowOutcomes struct {
	Delivered int `json:"delivered"`
	Filtered  int `json:"filtered"`
	Failed    int `json:"failed"`
}

// Done is how many rows have an outcome: delivered, filtered out or
// dead-lettered.
func (p CSVProgress) Done() int { return p.Delivered + p.Filtered + p.Failed }

// csvCheckpoint is kept in the inbox per file content, so a restart
// resumes after the rows that have an outcome instead of sending them
// again (csvrun.go).
type csvCheckpoint struct {
	Rows int  `json:"rows"`
	Done bool `json:"done"`
	// Past and Holes: the rows after Rows up to Past have an outcome
	// too, but for those in Holes. One slow row held the checkpoint
	// back, and a kill sent again every row delivered after it (a QA
	// run: 1,088 behind a row SessionM took 15 s to answer).
	Past  int   `json:"past,omitempty"`
	Holes []int `json:"holes,omitempty"`
}

// handled reports whether row n has an outcome by the checkpoint.
func (cp csvCheckpoint) handled(n int) bool {
	return n <= cp.Rows || (n <= cp.Past && !slices.Contains(cp.Holes, n))
}

type csvImports struct {
	mu sync.Mutex
	// records holds a record per import of this run, in the order they
	// began, and latest the newest per file as named. An import counts in
	// its own record, so two of one file at once (a --csv file that also
	// sits in the inbox folder) do not count in each other's.
	records []*CSVProgress
	latest  map[string]*CSVProgress
	// earlier is, per checkpoint key (a pipeline and a content), the
	// record that counts apart (Earlier) the rows of that content this run
	// did not send: those an earlier run left in the inbox or as dead
	// letters that are replayed now.
	earlier map[string]*CSVProgress
	// queued holds, by event id, the CSV rows this run's imports moved to
	// the inbox for a retry: the import that sent a row counts its outcome,
	// whatever was imported since (an import stopped half-way, and the
	// file imported again, resuming after the rows it queued). A dead
	// letter of this run that is replayed is here too, to be taken back
	// out of the counts when the replay has its outcome.
	queued map[string]csvTally
	// dead holds, by dead-letter id, where each CSV row this run
	// dead-lettered was counted, for a replay to find. The record's
	// entries go when it does (maxCSVRecords).
	dead map[uint64]csvTally
	runs map[*csvRun]bool // imports whose last checkpoint is not written yet
	// reading holds, per checkpoint key (a pipeline and a content), the
	// file being read under it, and closes its channel when that import
	// returns. Two imports of one content at once would each resume from
	// the same checkpoint and both send the rows after it.
	reading map[string]readingCSV
	held    map[string]int // files HoldCSV keeps the watchers off, by absolute path
}

// HoldCSV keeps the inbox folder watchers off file (a --csv file that
// sits in a watched folder) until release: its import is the caller's,
// and a watcher would import it meanwhile and file it away to done/,
// where the caller's import could no longer open it.
func (r *Runner) HoldCSV(file string) (release func()) {
	abs := engine.RealPath(file) // the --csv name and the watcher's may differ
	r.csv.mu.Lock()
	defer r.csv.mu.Unlock()
	r.csv.held[abs]++
	return sync.OnceFunc(func() {
		r.csv.mu.Lock()
		defer r.csv.mu.Unlock()
		if r.csv.held[abs]--; r.csv.held[abs] == 0 {
			delete(r.csv.held, abs)
		}
	})
}

// csvHeld reports whether file is held by HoldCSV.
func (r *Runner) csvHeld(file string) bool {
	abs := engine.RealPath(file) // the --csv name and the watcher's may differ
	r.csv.mu.Lock()
	defer r.csv.mu.Unlock()
	return r.csv.held[abs] > 0
}

type readingCSV struct {
	file string
	done chan struct{}
}

// claim makes the caller the one import that reads under key, after
// waiting for another that does (a --csv file also dropped into the
// inbox folder, or two copies of one export); release ends the claim.
func (r *Runner) claimCSV(ctx context.Context, key, pipeline, file string) (release func(), err error) {
	for waited := false; ; waited = true {
		r.csv.mu.Lock()
		other, busy := r.csv.reading[key]
		if !busy {
			mine := readingCSV{file: file, done: make(chan struct{})}
			r.csv.reading[key] = mine
			r.csv.mu.Unlock()
			return func() {
				r.csv.mu.Lock()
				delete(r.csv.reading, key)
				r.csv.mu.Unlock()
				close(mine.done)
			}, nil
		}
		r.csv.mu.Unlock()
		if !waited {
			r.log.Info("this file's content is being imported already; it is taken once that import ends (and skipped if it finished the file)", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "importing", other.file)
		}
		select {
		case <-other.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.soft.Done():
			return nil, errStopping
		}
	}
}

func (c *csvImports) begin(run *csvRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[run] = true
}

func (c *csvImports) forget(run *csvRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.runs, run)
}

// finishCSVRuns writes the last checkpoint of the imports that match: one
// that stopped early goes on writing it while the rows it handed over
// settle.
func (r *Runner) finishCSVRuns(match func(*csvRun) bool) {
	r.csv.mu.Lock()
	var runs []*csvRun
	for run := range r.csv.runs {
		if match(run) {
			runs = append(runs, run)
		}
	}
	r.csv.mu.Unlock()
	for _, run := range runs {
		if err := run.finish(false); err != nil {
			r.log.Error("cannot write a CSV checkpoint; the next import of the file sends again the rows after the last one written", "pipeline", run.pipeline, "version", r.version(run.pipeline), "file", run.file, "error", err)
		}
	}
}

// maxCSVRecords bounds the records kept: past it the settled ones go,
// the newest of a file's name too, so an engine that imports dropped
// files for months, each under a name of its own (a dated export), does
// not keep a record of each.
const maxCSVRecords = 1000

// maxCSVDeadNoted bounds the memory that remembers where this run counted
// its CSV dead letters (some 50 bytes each). A replay of one past it
// counts apart, as a replay of an earlier run's dead letter does.
var maxCSVDeadNoted = 100_000 // a var for a test

// record makes a new record for file (c.mu held).
func (c *csvImports) record(file, pipeline string) *CSVProgress {
	p := &CSVProgress{File: file, Pipeline: pipeline, Started: time.Now()}
	if len(c.records) >= maxCSVRecords {
		maps.DeleteFunc(c.earlier, func(_ string, p *CSVProgress) bool { return p.Settled() })
		var gone []*CSVProgress
		// Not one that rows an earlier run left may still settle in (an
		// apart record among them: it never settles). The next import of
		// a name whose record went gets a new one (take).
		c.records = slices.DeleteFunc(c.records, func(old *CSVProgress) bool {
			drop := old.Settled() && !c.countsEarlier(old)
			if drop {
				gone = append(gone, old)
				if c.latest[old.File] == old {
					delete(c.latest, old.File)
				}
			}
			return drop
		})
		if len(gone) > 0 {
			maps.DeleteFunc(c.dead, func(_ uint64, t csvTally) bool { return slices.Contains(gone, t.p) })
		}
	}
	c.records = append(c.records, p)
	c.latest[file] = p
	return p
}

// countsEarlier reports whether rows an earlier run left in the inbox may
// still settle in p (c.mu held).
func (c *csvImports) countsEarlier(p *CSVProgress) bool {
	for _, s := range c.earlier {
		if s == p {
			return true
		}
	}
	return false
}

// csvKey is the checkpoint key of the file a row of pipeline came from,
// by the row's event id (the file's content hash and the row number).
func csvKey(pipeline, id string) string {
	hash, _, _ := strings.Cut(id, ":")
	return "csv:" + pipeline + ":" + hash
}

// take gives an import of file its record: the last import's of the file
// again when nothing came of that one and it ended (a file that cannot be
// filed away is taken again at every poll), or a new one. Once the import
// knows the content, keyed may swap it for the one rows of an earlier run
// made settling first.
func (c *csvImports) take(file, pipeline string) *CSVProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.latest[file]
	switch {
	case p == nil || p.apart:
		p = c.record(file, pipeline)
	case (p.ReadDone || p.Err != "") && p.Queued == 0 && p.Broken == 0 && p.Earlier == (RowOutcomes{}) && p.Settled() && !c.countsEarlier(p):
		*p = CSVProgress{File: file, Pipeline: pipeline, Started: time.Now()}
	default:
		p = c.record(file, pipeline)
	}
	return p
}

// unused drops p, a record nothing was counted in, when an import left
// the file to the next poll: the record it leaves behind would stay in
// /status, empty, beside the next one (a review).
func (c *csvImports) unused(p *CSVProgress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.Queued != 0 || p.Broken != 0 || p.Earlier != (RowOutcomes{}) || c.countsEarlier(p) {
		return
	}
	c.records = slices.DeleteFunc(c.records, func(r *CSVProgress) bool { return r == p })
	if c.latest[p.File] == p {
		delete(c.latest, p.File)
	}
}

func (c *csvImports) update(p *CSVProgress, f func(p *CSVProgress)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(p)
}

func (c *csvImports) snapshot(p *CSVProgress) CSVProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *p
}

// CSVImports returns the progress of every import of this run.
func (r *Runner) CSVImports() []CSVProgress {
	r.csv.mu.Lock()
	defer r.csv.mu.Unlock()
	out := make([]CSVProgress, 0, len(r.csv.records))
	for _, p := range r.csv.records {
		out = append(out, *p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// rowOutcome is what became of an event, for a CSV import's progress.
type rowOutcome int

const (
	rowDelivered rowOutcome = iota
	rowFiltered
	rowDead
)

// csvTally is where a CSV row's outcome counts: in a record, among the
// rows its import sent, or apart (Earlier). replayed: the row is a
// replayed dead letter that was counted there as dead-lettered; its new
// outcome replaces that one.
type csvTally struct {
	p        *CSVProgress
	earlier  bool
	replayed bool
}

// add counts n outcomes (c.mu held).
func (t csvTally) add(outcome rowOutcome, n int) {
	delivered, filtered, failed := &t.p.Delivered, &t.p.Filtered, &t.p.Failed
	if t.earlier {
		delivered, filtered, failed = &t.p.Earlier.Delivered, &t.p.Earlier.Filtered, &t.p.Earlier.Failed
	}
	switch outcome {
	case rowDelivered:
		*delivered += n
	case rowFiltered:
		*filtered += n
	default:
		*failed += n
	}
}

// settledRow counts a CSV row's outcome for its file's progress: a row
// read from the file in its import's record; one from the inbox in the
// record of the import that queued it, or, if this run did not (an
// earlier run did), apart. Rows an earlier run queued can settle before
// this run's import of the file has begun, so the record is made here
// when it is missing. deadLetter is the id of the row's dead letter, if
// that is its outcome.
func (r *Runner) settledRow(pipeline string, it *item, outcome rowOutcome, deadLetter uint64) {
	if it.stored == nil || it.stored.Row == nil {
		return
	}
	r.csv.mu.Lock()
	var t csvTally
	waited := false
	if it.row != nil {
		t.p = it.row.run.progress
	} else if queued, ok := r.csv.queued[it.stored.ID]; ok {
		delete(r.csv.queued, it.stored.ID)
		t, waited = queued, true
	} else {
		t = csvTally{p: r.csv.earlierRecord(pipeline, it.stored), earlier: true}
	}
	if t.replayed {
		t.add(rowDead, -1)
		t.replayed = false
	}
	t.add(outcome, 1)
	if deadLetter != 0 && len(r.csv.dead) < maxCSVDeadNoted {
		r.csv.dead[deadLetter] = t
	}
	var final *CSVProgress
	if waited {
		if t.p.Retrying--; t.p.Retrying == 0 && t.p.retriesLogged {
			t.p.retriesLogged = false
			snap := *t.p
			final = &snap
		}
	}
	r.csv.mu.Unlock()
	if final != nil {
		r.logCSVFigures("CSV file's retried rows settled", *final)
	}
}

// logCSVFigures logs what became of p's rows, as the stop's summary
// gives them.
func (r *Runner) logCSVFigures(msg string, p CSVProgress) {
	attrs := []any{"pipeline", p.Pipeline, "version", r.version(p.Pipeline), "file", p.File, "rows", p.Rows, "sent", p.Queued,
		"delivered", p.Delivered, "filtered", p.Filtered, "dead_lettered", p.Failed, "broken", p.Broken, "handled_before", p.Skipped, "retrying", p.Retrying}
	if p.RunsOver > 0 {
		attrs = append(attrs, "runs_over", p.RunsOver, "runs_over_note", "rows read over lines that look like rows (a stray quote?): engine dry-run --csv names each")
	}
	r.log.Info(msg, attrs...)
}

// replaying is told that dead letter id, of event eventID, is about to be
// queued again (a replay while the engine runs), before its feeder can
// take it. If this
// run counted it as a CSV row's outcome, the replay's outcome replaces
// that count; one this run did not count is a row from elsewhere, and its
// replay counts apart. undo puts things back if the replay fails.
func (c *csvImports) replaying(id uint64, eventID string) (undo func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.dead[id]
	if !ok {
		return func() {}
	}
	delete(c.dead, id)
	t.replayed = true
	c.queued[eventID] = t
	t.p.Retrying++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.queued[eventID] == t {
			delete(c.queued, eventID)
			t.p.Retrying--
		}
		t.replayed = false
		c.dead[id] = t
	}
}

// dropped forgets dead letter id: it was dropped, no replay will come.
func (c *csvImports) dropped(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.dead, id)
}

// earlierRecord is the record that counts apart the rows of stored's
// content that this run did not send (c.mu held): an import's of the
// content, or one of their own. Not the record of the file's name: a
// file replaced since holds other rows.
func (c *csvImports) earlierRecord(pipeline string, stored *storedEvent) *CSVProgress {
	key := csvKey(pipeline, stored.ID)
	if p := c.earlier[key]; p != nil {
		return p
	}
	p := c.record(stored.Row.File, pipeline)
	p.apart = true
	c.earlier[key] = p
	return p
}

// keyed is told the content (key) that an import of file found, and
// returns the import's record: rec, the one take gave it, or the record
// of file that rows of this content an earlier run left made as they
// settled first, with their counts (rec has counted nothing yet, and
// goes). Rows of the content from elsewhere count in the import's record
// from now on if it resumes the content, or if none counts them yet.
func (c *csvImports) keyed(rec *CSVProgress, file, key string, resuming bool) *CSVProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.earlier[key]; o != nil && o.apart && o.File == file {
		c.records = slices.DeleteFunc(c.records, func(p *CSVProgress) bool { return p == rec })
		o.apart, o.Started = false, rec.Started
		c.latest[file] = o
		rec = o
	}
	if resuming || c.earlier[key] == nil {
		c.earlier[key] = rec
	}
	return rec
}

// queue notes, before it is in the inbox (its feeder may take it at
// once), that row it goes there for a retry, its outcome to be counted by
// its import. It reports false when the id was noted already: an earlier
// import's copy of the row waits there, and the inbox will not take this
// one.
func (c *csvImports) queue(it *item) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.queued[it.stored.ID]; ok {
		return false
	}
	c.queued[it.stored.ID] = csvTally{p: it.row.run.progress}
	it.row.run.progress.Retrying++
	return true
}

// notQueued takes back what queue noted, if it noted it: the inbox did not
// take the row (a copy was there already, or it failed). A duplicate is a
// row an earlier import queued: its outcome is that copy's, so it counts
// as handled before, not as sent by this import.
func (c *csvImports) notQueued(it *item, noted, duplicate bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if noted {
		delete(c.queued, it.stored.ID)
		it.row.run.progress.Retrying--
	}
	if duplicate {
		it.row.run.progress.Queued--
		it.row.run.progress.Skipped++
	}
}

// ImportCSV sends the rows of file to pipeline's workers (a csv source),
// as far as they have room, from where the checkpoint says an earlier run
// stopped. Each row is an event whose id is the file's content hash and
// the row number; broken rows become dead letters with their row number.
// It returns once every row has an outcome (rows waiting for a retry are
// in the inbox by then), or when ctx ends: the checkpoint then says where
// the next import of the file resumes.
func (r *Runner) ImportCSV(ctx context.Context, pipeline, file string) (CSVProgress, error) {
	return r.importCSV(ctx, pipeline, file, nil, "", time.Time{})
}

// ImportNamedCSV is ImportCSV for a file named on the command line (held
// with HoldCSV). When fileAway is set (the last import naming the file)
// and the file sits in the folder the pipeline watches, it is then filed
// away to done/ or failed/ as the folder's own files are, so the watcher
// does not take it again once released. Not when the import stopped
// early: importing it again resumes it. A file in another pipeline's
// folder is left to that pipeline's watcher.
func (r *Runner) ImportNamedCSV(ctx context.Context, pipeline, file string, fileAway bool) (CSVProgress, error) {
	var opened os.FileInfo
	// The operator named the file: a link is followed wherever it leads.
	p, err := r.importCSV(ctx, pipeline, file, &opened, "", time.Time{})
	if fileAway && ctx.Err() == nil && r.soft.Err() == nil {
		if dir := r.watchedFolderOf(pipeline, file); dir != "" {
			r.fileAway(pipeline, dir, filepath.Base(file), opened, err)
		}
	}
	return p, err
}

// watchedFolderOf is the folder pipeline watches if file sits in it, or
// "".
func (r *Runner) watchedFolderOf(pipeline, file string) string {
	r.csvMu.Lock()
	w := r.csvWatch[pipeline]
	r.csvMu.Unlock()
	if w == nil {
		return ""
	}
	here, err := os.Stat(filepath.Dir(file))
	if err != nil {
		return ""
	}
	if info, err := os.Stat(w.dir); err == nil && os.SameFile(info, here) {
		return w.dir
	}
	return ""
}

// importCSV is ImportCSV; opened, when not nil, is given the file it
// opened, which is what it imported whatever file is named so now.
// inbox is the folder the watcher found file in ("" for a file the
// operator named), whose entries are imported only if they are files of
// the folder (openCSV). still is when the watcher last saw the file
// change: the import ends only once the file has held still csvSettle
// since (zero for a file the operator named: no wait).
func (r *Runner) importCSV(ctx context.Context, pipeline, file string, opened *os.FileInfo, inbox string, still time.Time) (CSVProgress, error) {
	rec := r.csv.take(file, pipeline)
	update := func(f func(p *CSVProgress)) { r.csv.update(rec, f) }
	snapshot := func() CSVProgress { return r.csv.snapshot(rec) }
	// ReadDone stays as it is: false, unless the reading reached the end.
	fail := func(err error) (CSVProgress, error) {
		update(func(p *CSVProgress) { p.Err = r.opts.Masker.String(err.Error()) }) // shown in /status
		return snapshot(), err
	}
	l := r.lane(pipeline)
	if l == nil || l.p.Source.Type.Kind != spec.CSVSource {
		// Recorded as failed, so --until-done does not wait for it.
		return fail(fmt.Errorf("pipeline %q does not read CSV files, or no longer runs", pipeline))
	}

	// One open for the hash and the rows: a file renamed over this one
	// in between would import its rows under this one's checkpoint, and
	// this one would later be skipped as imported before.
	f, began, err := openCSV(file, inbox)
	if opened != nil && began != nil {
		*opened = began
	}
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	// The import reads what it hashes: the file as it is now. A writer
	// may go on appending (csvtail.go). An inbox file is read as far as
	// its last whole record, unless its last line has held still the wait
	// for its end: a writer may have added part of a line since the
	// watcher looked, and it went as a row, cut (a review).
	size := began.Size()
	end := size
	if !still.IsZero() {
		if end, err = lastRecordEnd(f, 0, size); err != nil {
			return fail(fmt.Errorf("reading %s: %w", file, err))
		}
		// A last line without an end that held still through
		// unterminatedWait is taken as it stands, as the watcher took the
		// file: cut to the records before it, a header row alone without
		// a newline, or a file whose lines end with a lone CR, was read
		// as empty and failed (a re-QA).
		if end < size && r.clock.Now().Sub(still) >= unterminatedWait {
			end = size
		}
	}
	var grown csvGrowth
	if _, err := r.store.Checkpoint(csvGrowthKey(pipeline, file), &grown); err != nil {
		return fail(fmt.Errorf("reading the checkpoint of %s: %w", file, err))
	}
	h := sha256.New()
	var prefix string // the hash of the bytes an earlier import of the name read, if the file is longer
	from := int64(0)
	if grown.ID != "" && grown.Bytes > 0 && grown.Bytes <= end && grown.File == fileIdentity(began) {
		err = hashRange(h, f, 0, grown.Bytes)
		prefix, from = sumOf(h), grown.Bytes
	}
	if err == nil {
		err = hashRange(h, f, from, end)
	}
	if err != nil {
		return fail(fmt.Errorf("reading %s: %w", file, err))
	}
	sum := sumOf(h)
	if csvHashed != nil {
		csvHashed(file)
	}
	id := sum // the content the rows' ids and the checkpoint are of
	key := csvKey(pipeline, sum)
	if prefix == grown.Hash && prefix != "" {
		if found, err := r.store.Checkpoint(key, new(csvCheckpoint)); err != nil {
			return fail(fmt.Errorf("reading the checkpoint of %s: %w", file, err))
		} else if !found && endsLine(f, grown.Bytes) {
			// It starts with what an earlier import read: that one's
			// rows are not sent again.
			id, key = grown.ID, csvKey(pipeline, grown.ID)
		}
	}
	if end < size && id == sum {
		// Read to its last whole record, a file whose last line has no
		// end is known by the content before it; one imported whole
		// (by an older build, which took the whole file) is known by
		// all of it, and was sent again when dropped again.
		whole := sha256.New()
		if err := hashRange(whole, f, 0, size); err != nil {
			return fail(fmt.Errorf("reading %s: %w", file, err))
		}
		var done csvCheckpoint
		if found, err := r.store.Checkpoint(csvKey(pipeline, sumOf(whole)), &done); err != nil {
			return fail(fmt.Errorf("reading the checkpoint of %s: %w", file, err))
		} else if found && done.Done {
			sum = sumOf(whole)
			id, key = sum, csvKey(pipeline, sum)
		}
	}
	release, err := r.claimCSV(ctx, key, pipeline, file)
	if err != nil {
		return snapshot(), nil // stopping: the file is taken next run
	}
	defer release()
	// An earlier import of this content that stopped early may still be
	// writing its checkpoint as its rows settle; its last word is final
	// now, or it could undo this one's.
	r.finishCSVRuns(func(c *csvRun) bool { return c.key == key && c.stopped() })
	var cp csvCheckpoint
	if _, err := r.store.Checkpoint(key, &cp); err != nil {
		return fail(fmt.Errorf("reading the checkpoint of %s: %w", file, err))
	}
	if id != sum && cp.Done {
		// Done as far as the earlier import read: the rows after that
		// are new.
		cp.Done = false
		r.log.Info("this file grew since it was imported: the rows after those imported are imported now", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "after_row", cp.Rows)
	}
	rec = r.csv.keyed(rec, file, key, !cp.Done)
	update(func(p *CSVProgress) { p.Size = size })
	if cp.Done {
		if !still.IsZero() && (r.changesBeforeSettled(ctx, f, began, still) || ctx.Err() != nil) {
			// Filed away at once, an upload whose first part was the
			// content of a file imported before (an empty segment's
			// header row) went on being written in done/, unread (a QA
			// run). Left where it is, the next poll imports it as the
			// new content it is; a stop during the wait leaves it to the
			// next run, rather than calling it imported (a re-QA).
			r.csv.unused(rec)
			return snapshot(), nil
		}
		update(func(p *CSVProgress) { p.Skipped, p.Rows, p.ReadDone, p.Finished = cp.Rows, cp.Rows, true, true })
		r.log.Info("this file was imported before; nothing to do", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "rows", cp.Rows)
		return snapshot(), nil
	}
	tail := &csvTail{f: f, file: file, view: &csvView{f: f, end: end}, h: h, size: size, mod: began.ModTime(), changed: still}
	if still.IsZero() {
		tail.changed = r.clock.Now()
	}
	if err := tail.keepGuard(); err != nil {
		return fail(err)
	}
	reader, err := csvfile.NewReader(tail.view, file, l.p.Source.Delimiter)
	if err != nil {
		return fail(err)
	}
	// Before any row is sent: a header row without a column the pipeline
	// needs fails the file as a whole.
	if err := reader.Expect(l.p.EventReads); err != nil {
		return fail(err)
	}
	for _, w := range reader.NearMisses(l.p.EventReads) {
		r.log.Warn("a CSV column may be meant for one the pipeline reads", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "warning", w)
	}
	if cp.Rows > 0 && id == sum {
		r.log.Info("resuming a CSV import", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "after_row", cp.Rows)
	}
	handledBefore, err := r.rowsHandledBefore(pipeline, id, cp.Rows)
	if err != nil {
		return fail(err)
	}
	run := r.startCSVRun(pipeline, file, id, key, cp.Rows, rec)
	// stop ends the import early: the rows without an outcome are sent
	// when the file is imported again, after the checkpoint, which still
	// moves as the rows in the workers' hands settle.
	stop := func(why error) (CSVProgress, error) {
		finishErr := run.stop()
		if errors.Is(why, errRemoved) {
			why = run.removedError(ctx)
		}
		if re := (*errRewritten)(nil); errors.As(why, &re) {
			why = r.rewrittenError(file, re, snapshot())
		}
		if why != nil && !errors.Is(why, errStopping) && ctx.Err() == nil {
			return fail(why)
		}
		if finishErr != nil {
			return fail(finishErr)
		}
		return snapshot(), nil
	}
	// remember notes how far the file was read, and under which
	// content, for an import of it once it has grown (csvGrowth).
	remember := func() error {
		g := csvGrowth{ID: id, Bytes: tail.view.end, Hash: sumOf(tail.h), File: fileIdentity(began)}
		if g == grown {
			return nil
		}
		if err := r.store.SetCheckpoint(csvGrowthKey(pipeline, file), g); err != nil {
			return fmt.Errorf("writing the checkpoint of %s: %w", file, err)
		}
		grown = g
		return nil
	}
	// Before a row is sent: a restart after the file grew finds this
	// import only through what is remembered of it, and sent every row
	// again when it had stopped before it saw the file grow (a review).
	// Not written (a full disk), only that is at stake: the import goes
	// on, its checkpoint waiting for room as it does.
	if err := remember(); err != nil {
		r.log.Error("cannot write a CSV checkpoint; should the file grow and the engine stop before this import ends, importing it again sends all of its rows", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "error", err)
	}
	quiet := time.Duration(0)
	if !still.IsZero() {
		quiet = csvSettle
	}
	// atEnd looks whether the file grew past the rows read, and if so
	// has the reader read on.
	atEnd := func() (more bool, err error) {
		more, err = tail.look(r.clock.Now())
		if err == nil && more {
			if err = remember(); err == nil {
				err = reader.ReadOn()
			}
		}
		update(func(p *CSVProgress) { p.Size = max(tail.size, tail.view.end) })
		return more, err
	}
	rows := 0
	for {
		if ctx.Err() != nil {
			return stop(nil)
		}
		row, err := reader.Next()
		if errors.Is(err, io.EOF) {
			more, err := atEnd()
			if err != nil {
				return stop(err)
			}
			if more {
				continue
			}
			update(func(p *CSVProgress) { p.ReadDone = true })
			if err := run.waitSettled(ctx, rows); err != nil {
				return stop(err)
			}
			// The end is the end once the file has held still long
			// enough since it last changed: csvSettle for an inbox
			// file, and for any file, the end of a line still being
			// written (tail.look).
			for {
				if more, err = atEnd(); err != nil {
					return stop(err)
				}
				if more || !tail.pending() && r.clock.Now().Sub(tail.changed) >= quiet {
					break
				}
				if err := r.clock.Sleep(ctx, csvTailPoll); err != nil {
					return stop(nil)
				}
				if r.soft.Err() != nil {
					return stop(errStopping)
				}
			}
			if more {
				update(func(p *CSVProgress) { p.ReadDone = false })
				continue
			}
			break
		}
		rows++
		read := reader.Offset()
		update(func(p *CSVProgress) { p.Rows, p.Bytes = rows, read })
		var rowErr *csvfile.RowError
		if errors.As(err, &rowErr) {
			if cp.handled(rows) {
				// Its dead letter is an earlier run's: handled before.
				update(func(p *CSVProgress) { p.Skipped++ })
				if rows > cp.Rows {
					run.settleNow(rows)
				}
				continue
			}
			if err := run.brokenRow(rowErr, reader); err != nil {
				return stop(err) // the checkpoint stays before the row
			}
			run.settleNow(rows)
			continue
		}
		if err != nil {
			return stop(err)
		}
		if rows <= cp.Rows {
			update(func(p *CSVProgress) { p.Skipped++ })
			continue
		}
		if cp.handled(rows) || handledBefore.has(rows) {
			update(func(p *CSVProgress) { p.Skipped++ })
			run.settleNow(rows) // the inbox or a replay settles it; the checkpoint may pass it
			continue
		}
		if row.Warning != "" {
			update(func(p *CSVProgress) { p.RunsOver++ })
			r.logLimited(&r.brokenRows, pipeline+"\x00runs-over", slog.LevelWarn, slog.LevelWarn, "a CSV row runs over lines that look like rows",
				"pipeline", pipeline, "version", r.version(pipeline), "file", file, "row", row.Number, "line", row.Line, "warning", row.Warning)
		}
		it, err := run.item(row, rows)
		if err != nil {
			return stop(err)
		}
		// Counted before it is handed over: a row given back (this one,
		// if no lane takes it) is uncounted when the import stops.
		update(func(p *CSVProgress) { p.Queued++ })
		if err := run.handOver(ctx, it); err != nil {
			run.giveBack(it) // no lane holds it
			return stop(err)
		}
	}
	if err := run.finish(true); err != nil {
		return fail(err)
	}
	if err := remember(); err != nil {
		r.log.Error("cannot write a CSV checkpoint; should the file grow, importing it again sends all of its rows", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "error", err)
	}
	if info, err := f.Stat(); still.IsZero() && err == nil && info.Size() == tail.size && info.ModTime().Equal(tail.mod) {
		// A --csv file imported whole: a file of its name later is
		// another (an inbox file's is forgotten once it is filed away).
		r.forgetGrowth(pipeline, file)
	}
	if all := csvKey(pipeline, sumOf(tail.h)); all != key {
		// The whole file as read, under its own content hash: the same
		// file dropped again under another name is known as imported.
		if err := r.store.SetCheckpoint(all, csvCheckpoint{Rows: rows, Done: true}); err != nil {
			r.log.Error("cannot write a CSV checkpoint; the file dropped again under another name is sent again", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "error", err)
		}
	}
	if opened != nil {
		if info, err := f.Stat(); err == nil {
			*opened = info // what fileAway compares the file with
		}
	}
	// Rows that wait in the inbox for a retry may settle at any moment:
	// the figures logged, and whether a line must follow once they all
	// have, are taken together.
	var snap CSVProgress
	update(func(p *CSVProgress) {
		p.Finished = true
		p.retriesLogged = p.Retrying > 0
		snap = *p
	})
	r.logCSVFigures("CSV file imported", snap)
	return snap, nil
}

// changesBeforeSettled waits until the inbox file f, opened as began,
// has held still for csvSettle since still, as an import waits before it
// ends, and reports whether it changed meanwhile.
func (r *Runner) changesBeforeSettled(ctx context.Context, f *os.File, began os.FileInfo, still time.Time) bool {
	for {
		info, err := f.Stat()
		if err != nil || info.Size() != began.Size() || !info.ModTime().Equal(began.ModTime()) {
			return err == nil
		}
		if r.clock.Now().Sub(still) >= csvSettle || r.clock.Sleep(ctx, csvTailPoll) != nil {
			return false
		}
	}
}

// forgetGrowth forgets how far a file of this name was read, once it was
// imported whole: a new file that takes the name, even one on the same
// inode (a file system hands a freed one out again at once), and that
// starts with the same rows (a cumulative export), is new content, sent
// whole, not taken for the old one grown (a review).
func (r *Runner) forgetGrowth(pipeline, file string) {
	if err := r.store.SetCheckpoint(csvGrowthKey(pipeline, file), csvGrowth{}); err != nil {
		r.log.Error("cannot write a CSV checkpoint; a new file of this name that starts with the same rows would be sent only after them", "pipeline", pipeline, "version", r.version(pipeline), "file", file, "error", err)
	}
}

// rewrittenError is the error of an import of file that found what it
// had read changed (re): the rows it sent were of the content before,
// which is not what the file holds now.
func (r *Runner) rewrittenError(file string, re *errRewritten, p CSVProgress) error {
	return fmt.Errorf("%s was rewritten while it was imported (%s), so the import stopped: %d rows were sent before that was found (%d delivered, %d filtered out, %d dead-lettered so far, the rest still in flight), read from a file that changed under them; importing it again sends every row it holds then, since its content is another: if it still holds rows that were delivered (an edit, not a new export), remove them first, unless sending them twice is harmless",
		file, re.why, p.Queued, p.Delivered, p.Filtered, p.Failed)
}

// endsLine reports whether byte n-1 of f ends a line.
func endsLine(f *os.File, n int64) bool {
	var b [1]byte
	_, err := f.ReadAt(b[:], n-1)
	return err == nil && b[0] == '\n'
}

// rowSet is a set of row numbers, sorted, asked in ascending order.
type rowSet struct {
	rows []int
	next int // rows before it were asked about already
}

// has reports whether row is in the set; rows must be asked in order.
func (s *rowSet) has(row int) bool {
	for s.next < len(s.rows) && s.rows[s.next] < row {
		s.next++
	}
	return s.next < len(s.rows) && s.rows[s.next] == row
}

// rowsHandledBefore lists the rows after the checkpoint that an earlier
// run moved to the inbox (for a retry, or as it stopped), which the inbox
// sends, or dead-lettered, which a replay sends: this import must not. The
// checkpoint is saved now and then, and a row queued for its retry just
// before a kill -9 was read again and sent as well as its queued copy (a
// QA run: a fifth of the rows the restart sent twice); one dead-lettered
// just before was sent again, delivered, and its dead letter kept, so a
// replay sent it twice (a later QA run).
func (r *Runner) rowsHandledBefore(pipeline, sum string, after int) (*rowSet, error) {
	set := &rowSet{}
	prefix := sum + ":"
	add := func(id string) {
		if n, err := strconv.Atoi(id[len(prefix):]); err == nil && n > after {
			set.rows = append(set.rows, n)
		}
	}
	if err := r.store.SeenWithPrefix(pipeline, prefix, add); err != nil {
		return nil, err
	}
	if err := r.store.UnqueuedDeadWithPrefix(pipeline, prefix, add); err != nil {
		return nil, err
	}
	slices.Sort(set.rows)
	set.rows = slices.Compact(set.rows)
	return set, nil
}

// MissingLinkTarget reports whether err, from opening or looking up
// file, comes of file being a symbolic link to something that does not
// exist, and what it points at: the system says only that there is no
// such file, of a name that is plainly there.
func MissingLinkTarget(file string, err error) (target string, ok bool) {
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	target, err = os.Readlink(file)
	return target, err == nil
}

// notImportableError is an inbox folder entry that is not imported: not
// a regular file, or a link to something that is not a regular file of
// the folder. It is filed away to failed/ as a failed import is, or, if
// it cannot be moved, skipped until it changes rather than tried again
// at every poll.
type notImportableError struct{ msg string }

func (e *notImportableError) Error() string { return e.msg }

func notImportable(format string, a ...any) error {
	return &notImportableError{fmt.Sprintf(format, a...)}
}

// openCSV opens file to import it, and returns what it opened (also with
// an error, when a file replaced the one checked, so it is left for a
// later poll). Only a regular file is read: opening a named pipe waits
// for a writer, forever (and held up the engine's stop), and a device
// can be read without end. The open does not wait (O_NONBLOCK, which
// reads of a regular file ignore), so a pipe put in the file's place
// after the checks cannot hang it either.
//
// inbox is the folder the watcher found file in, or "" for a file the
// operator named, whose links are followed anywhere. Whoever can drop a
// file into an inbox folder is not trusted that far: there an entry is
// checked before it is opened, and a link is followed only to a regular
// file in the folder (or a folder below it), or the engine would send
// the rows of any file it can read to the pipeline's target.
func openCSV(file, inbox string) (*os.File, os.FileInfo, error) {
	var checked os.FileInfo
	var folder, inFolder string // the inbox folder and the entry's file in it, with no links
	if inbox != "" {
		var err error
		folder = engine.RealPath(inbox)
		if checked, inFolder, err = checkInboxEntry(file, folder); err != nil {
			return nil, nil, err
		}
	}
	f, err := openIn(file, folder, inFolder)
	if err != nil && folder != "" && strings.Contains(err.Error(), "path escapes from parent") {
		return nil, nil, notImportable("cannot import %s: it led out of the inbox folder %s when it was opened (a link in it changed after it was checked), and links are followed only to files in the folder; copy the CSV file into the folder instead", file, folder)
	}
	if target, ok := MissingLinkTarget(file, err); ok {
		return nil, nil, missingTarget(file, target)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open %s: %w", file, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if err := notAFile(file, info); err != nil {
		f.Close()
		return nil, nil, err
	}
	if checked != nil && !os.SameFile(checked, info) {
		// What the name held when it was checked is what was taken: the
		// file there now is not it, and is checked at a later poll.
		f.Close()
		return nil, checked, fmt.Errorf("%s was replaced while it was opened; the file now there is looked at again at a later poll", file)
	}
	return f, info, nil
}

// openIn opens file without waiting on a pipe. An entry of the inbox
// folder (folder set, with no links in its path) is opened as inFolder,
// the path checkInboxEntry resolved it to, through an os.Root of the
// folder, so that a link swapped between the check and the open cannot
// lead out of it (a review: a link pointed out, in, then out again passed
// every check).
func openIn(file, folder, inFolder string) (*os.File, error) {
	if folder == "" {
		return os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	}
	root, err := os.OpenRoot(folder)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rel, err := filepath.Rel(folder, inFolder)
	if err != nil {
		return nil, err
	}
	return root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// checkInboxEntry checks file, an entry of the inbox folder (folder, its
// path with no links in it), without opening it, and returns the file it
// names (the entry itself, or a link's target) and that file's path with
// no links in it.
func checkInboxEntry(file, folder string) (os.FileInfo, string, error) {
	entry, err := os.Lstat(file)
	if err != nil {
		return nil, "", fmt.Errorf("cannot open %s: %w", file, err)
	}
	if entry.Mode()&fs.ModeSymlink == 0 {
		if err := notAFile(file, entry); err != nil {
			return nil, "", err
		}
		return entry, filepath.Join(folder, filepath.Base(file)), nil
	}
	info, err := os.Stat(file) // not an open: it does not wait on a pipe
	if target, ok := MissingLinkTarget(file, err); ok {
		return nil, "", missingTarget(file, target)
	}
	if err != nil {
		return nil, "", fmt.Errorf("cannot open %s: %w", file, err)
	}
	if err := notAFile(file, info); err != nil {
		return nil, "", err
	}
	abs, err := filepath.Abs(file) // a relative one resolves to a relative path
	if err != nil {
		return nil, "", fmt.Errorf("cannot open %s: %w", file, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, "", fmt.Errorf("cannot open %s: %w", file, err)
	}
	if rel, err := filepath.Rel(folder, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, "", notImportable("cannot import %s: it is a symbolic link to %s, which is outside the inbox folder %s, and links are followed only to files in the folder; copy the CSV file into the folder instead", file, real, folder)
	}
	return info, real, nil
}

// missingTarget is the error for file, a link to target, which does not
// exist.
func missingTarget(file, target string) error {
	return notImportable("cannot open %s: it is a symbolic link to %s, which does not exist; put the CSV file itself there, or a link to one that exists", file, target)
}

// notAFile is the error for info, of file or of the file a link of that
// name points at, when it is not a regular file.
func notAFile(file string, info os.FileInfo) error {
	switch {
	case info.Mode().IsRegular():
		return nil
	case info.IsDir():
		return notImportable("cannot import %s: it is a folder (or a link to one), not a CSV file", file)
	}
	return notImportable("cannot import %s: it is %s (or a link to one), not a regular file, and only regular files are imported; save the CSV as a file and import that", file, SpecialFile(info.Mode()))
}

// SpecialFile names what a file of mode is, when it is neither a regular
// file nor a folder: a named pipe (FIFO), a socket, a device.
func SpecialFile(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// csvHashed, when set (tests), runs once ImportCSV has hashed a file and
// before it reads the rows.
var csvHashed func(file string)

// WatchCSVInboxes imports the CSV files dropped into each csv pipeline's
// source.inbox folder, until the runner stops; pipelines a reload adds (or
// points at another folder) are watched too. A file is taken once its
// size and time have not changed for one poll (so a file still being
// copied is left alone), then moved to done/ (or failed/, with a
// .error.txt). Only regular files of the folder are opened (openCSV):
// other entries go to failed/ too.
func (r *Runner) WatchCSVInboxes(poll time.Duration) {
	r.csvMu.Lock()
	r.csvPoll = poll
	r.csvMu.Unlock()
	r.watchNewCSVInboxes(r.gen.Load())
}

// watchNewCSVInboxes starts a watcher for each csv pipeline of gen whose
// folder is not watched yet. A watcher stops by itself once its pipeline
// is removed or watches another folder.
func (r *Runner) watchNewCSVInboxes(gen *generation) {
	r.csvMu.Lock()
	defer r.csvMu.Unlock()
	if r.csvPoll == 0 {
		return
	}
	for name, p := range gen.pipelines {
		dir := p.Source.Inbox
		if w := r.csvWatch[name]; p.Source.Type.Kind != spec.CSVSource || dir == "" || w != nil && w.dir == dir {
			continue
		}
		w := &csvWatcher{dir: dir}
		r.csvWatch[name] = w
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.watchFolder(r.soft, name, w, r.csvPoll)
		}()
	}
}

// csvInbox is the folder a running csv pipeline watches ("" if none).
func (r *Runner) csvInbox(pipeline string) string {
	if p := r.Running(pipeline); p != nil && p.Source.Type.Kind == spec.CSVSource {
		return p.Source.Inbox
	}
	return ""
}

// csvWatcher is one watch of a CSV inbox folder; a reload that points the
// pipeline elsewhere (even back to this folder) replaces it.
type csvWatcher struct {
	dir string

	mu sync.Mutex
	// problems are what keeps the watch from importing, by what they are
	// about ("" for the folder itself, or a file's name), shown in
	// /status with the pipeline's problems until they are solved: an
	// ERROR line scrolls away, and the pipeline said "running" while it
	// imported nothing (a QA run).
	problems map[string]string
}

// problem notes a problem about something, and reports whether none was
// noted about it before: only then is it logged.
func (w *csvWatcher) problem(about, msg string) (first bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.problems == nil {
		w.problems = map[string]string{}
	}
	_, was := w.problems[about]
	w.problems[about] = msg
	return !was
}

// solved forgets the problem about something, and reports whether there
// was one.
func (w *csvWatcher) solved(about string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, was := w.problems[about]
	delete(w.problems, about)
	return was
}

// solvedUnless forgets the problems about files for which keep is false.
func (w *csvWatcher) solvedUnless(keep func(name string) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	maps.DeleteFunc(w.problems, func(about, _ string) bool { return about != "" && !keep(about) })
}

// csvProblems lists the problems of pipeline's inbox folder watch, the
// folder's first, then by file name.
func (r *Runner) csvProblems(pipeline string) []string {
	r.csvMu.Lock()
	w := r.csvWatch[pipeline]
	r.csvMu.Unlock()
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, about := range slices.Sorted(maps.Keys(w.problems)) {
		out = append(out, w.problems[about])
	}
	return out
}

// stillWatching reports whether w is still the watch of pipeline; if not,
// it lets go of it.
func (r *Runner) stillWatching(pipeline string, w *csvWatcher) bool {
	r.csvMu.Lock()
	defer r.csvMu.Unlock()
	if r.csvWatch[pipeline] == w && r.csvInbox(pipeline) == w.dir {
		return true
	}
	if r.csvWatch[pipeline] == w {
		delete(r.csvWatch, pipeline)
	}
	return false
}

type fileState struct {
	size int64
	mod  time.Time
	mode fs.FileMode
	// linkMod is, for a link, when it was made; the rest is of the file
	// it points at, if any.
	linkMod time.Time
}

// entryState is what tells whether an inbox folder entry is still
// changing: for a link, the file it points at, so a link to a file still
// being written waits as that file would, and the link itself, so one
// pointed elsewhere (or a target that appears) is a change too.
func entryState(dir string, e fs.DirEntry) (fileState, bool) {
	info, err := e.Info()
	if err != nil {
		return fileState{}, false
	}
	st := fileState{size: info.Size(), mod: info.ModTime(), mode: info.Mode()}
	if info.Mode()&fs.ModeSymlink != 0 {
		st.linkMod = info.ModTime()
		// Stat, not open: it does not wait on a pipe.
		if target, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
			st.size, st.mod, st.mode = target.Size(), target.ModTime(), target.Mode()
		}
	}
	return st, true
}

func (r *Runner) watchFolder(ctx context.Context, pipeline string, w *csvWatcher, poll time.Duration) {
	dir := w.dir
	// made: the folder is there. Until it can be made (a read-only mount),
	// it is tried again at every poll: the watch returned for good, and
	// the pipeline imported nothing once the folder could be made, with
	// one ERROR line to say so (a QA run).
	made := false
	folderProblem := func(msg string, err error) {
		if w.problem("", fmt.Sprintf("%s %s: %v; no file is imported from it until that is solved (it is tried again every poll)", msg, dir, err)) {
			r.log.Error(msg+"; no file is imported from it until that is solved (it is tried again every poll, and logged again once it works)", "pipeline", pipeline, "version", r.version(pipeline), "folder", dir, "error", err)
		}
	}
	last := map[string]fileState{}
	// stuck holds the entries that are not importable and could not be
	// moved to failed/, as they were then: said once, not every poll.
	stuck := map[string]fileState{}
	// still holds when each entry was last seen to change; cut, the
	// entries said to wait for the rest of their last line.
	still := map[string]time.Time{}
	cut := map[string]bool{}
	gone := func() bool {
		if r.stillWatching(pipeline, w) {
			return false
		}
		r.log.Info("no longer watching for CSV files: the pipeline was removed or watches another folder", "pipeline", pipeline, "folder", dir)
		return true
	}
	for {
		if gone() {
			return
		}
		if !made {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				folderProblem("cannot create the CSV inbox folder", err)
				if r.clock.Sleep(ctx, poll) != nil {
					return
				}
				continue
			}
			made = true
			w.solved("") // the folder's problem, if any: the line after says it is solved
			r.log.Info("watching for CSV files", "pipeline", pipeline, "version", r.version(pipeline), "folder", dir)
		}
		entries, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			made = false // removed: made again at the next poll
		case err != nil:
			folderProblem("cannot read the CSV inbox folder", err)
		case w.solved(""):
			r.log.Info("the CSV inbox folder can be read again", "pipeline", pipeline, "version", r.version(pipeline), "folder", dir)
		}
		seen := map[string]fileState{}
		for _, e := range entries {
			if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".csv") || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			st, ok := entryState(dir, e)
			if !ok {
				continue
			}
			seen[e.Name()] = st
			if was, ok := stuck[e.Name()]; ok && was == st {
				continue // logged when it was refused; waits until it changes
			}
			if prev, ok := last[e.Name()]; !ok || prev != st {
				still[e.Name()] = r.clock.Now()
				continue // new or still changing: look again next poll
			}
			if wait := unterminatedWait - r.clock.Now().Sub(still[e.Name()]); wait > 0 && !lastLineEnded(filepath.Join(dir, e.Name()), st) {
				// Its last line has no end: most likely an upload that
				// paused mid-line. Taken at the pause, its first part
				// was imported, the file filed in done/, and the rest
				// written there, never sent (a QA run). A file that
				// simply lacks the last newline goes after the wait.
				// An empty file waits too: a shell's redirection makes
				// it before the writer has anything to write, and it
				// went to failed/ as empty at once while the writer
				// filled it there (a QA run).
				if !cut[e.Name()] {
					cut[e.Name()] = true
					msg := "a CSV file's last line has no end yet; waiting for the rest before importing it"
					if st.size == 0 {
						msg = "a CSV file is empty so far; waiting for it to be written before importing it"
					}
					r.log.Info(msg, "pipeline", pipeline, "version", r.version(pipeline), "file", filepath.Join(dir, e.Name()), "wait", wait.Round(time.Second))
				}
				continue
			}
			if r.csvHeld(filepath.Join(dir, e.Name())) {
				continue // a --csv file: imported by its own import
			}
			// The files before it in this poll took their time: one that
			// changed meanwhile is still being written (a line may be
			// half there), and is looked at again next poll (a review).
			if now, ok := entryState(dir, e); !ok || now != st {
				if ok {
					seen[e.Name()], still[e.Name()] = now, r.clock.Now()
				}
				continue
			}
			// A reload may have given the folder to another pipeline
			// while the files before this one were imported.
			if gone() {
				return
			}
			var opened os.FileInfo
			_, err = r.importCSV(ctx, pipeline, filepath.Join(dir, e.Name()), &opened, dir, still[e.Name()])
			if ctx.Err() != nil {
				return // stopped mid-file: the checkpoint resumes it next run
			}
			if stay := r.fileAway(pipeline, dir, e.Name(), opened, err); stay != nil {
				// Left where it is, it was imported again ("imported
				// before; nothing to do") and logged at every poll (a
				// QA run): like an entry that cannot go to failed/, it
				// waits until it changes, and /status names it.
				stuck[e.Name()] = st
				w.problem(e.Name(), r.opts.Masker.String(stay.Error())) // shown in /status
				continue
			}
			delete(seen, e.Name())
		}
		last = seen
		absent := func(name string) bool {
			_, there := seen[name]
			return !there
		}
		// A stuck file that changed is tried again: its problem stands
		// until that try says otherwise.
		maps.DeleteFunc(stuck, func(name string, was fileState) bool { return absent(name) })
		w.solvedUnless(func(name string) bool {
			_, ok := stuck[name]
			return ok
		})
		maps.DeleteFunc(still, func(name string, _ time.Time) bool { return absent(name) })
		maps.DeleteFunc(cut, func(name string, _ bool) bool { return absent(name) })
		if r.clock.Sleep(ctx, poll) != nil {
			return
		}
	}
}

// unterminatedWait is how long an inbox file whose last line has no end,
// or that is empty, must hold still before it is taken. A var for tests.
var unterminatedWait = 30 * time.Second

// lastLineEnded reports whether the file at path, in state st, ends with
// a newline; an empty file has no line yet, so it has not. A file it
// cannot read, or that is not a regular file, counts as one that has, so
// the import says what is wrong with it.
func lastLineEnded(path string, st fileState) bool {
	if !st.mode.IsRegular() {
		return true
	}
	if st.size == 0 {
		return false
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return true
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], st.size-1); err != nil {
		return true
	}
	return b[0] == '\n'
}

// fileAway moves an imported file to done/ or failed/, so it is not taken
// again and the folder shows what happened. opened is the file the import
// read (nil if it could not open one): a file put in its place meanwhile
// (an upload renamed over it) was not read, so it stays for a later poll.
// A link is moved itself, not the file it points at. When the file could
// not be moved it returns why, for /status, having logged it: the watcher
// leaves the file alone until it changes.
func (r *Runner) fileAway(pipeline, dir, name string, opened os.FileInfo, importErr error) error {
	src := filepath.Join(dir, name)
	if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		// Deleted, or moved away, while it was imported: the import read
		// the file it had open all the same.
		if importErr != nil {
			r.log.Error("CSV file not imported; it was moved away (renamed, perhaps) or removed from the inbox folder during the import, so there is nothing to move to failed/", "pipeline", pipeline, "version", r.version(pipeline), "file", src, "error", importErr)
			return nil
		}
		r.log.Warn("the CSV file was moved away (renamed, perhaps) or removed from the inbox folder during its import; its rows were imported all the same (the import read the file it had open), so there is nothing to move to done/", "pipeline", pipeline, "version", r.version(pipeline), "file", src)
		return nil
	}
	now, statErr := os.Stat(src)
	if statErr == nil && opened != nil && !os.SameFile(now, opened) {
		if importErr != nil {
			r.log.Error("CSV file not imported; a new file took its name meanwhile, which is imported at a later poll", "pipeline", pipeline, "version", r.version(pipeline), "file", src, "error", importErr)
			return nil
		}
		r.log.Warn("a new CSV file took the name of the one imported; it is imported at a later poll", "pipeline", pipeline, "version", r.version(pipeline), "file", src)
		return nil
	}
	if statErr == nil && importErr == nil && opened != nil && (now.Size() != opened.Size() || !now.ModTime().Equal(opened.ModTime())) {
		// Written to since its import looked at it last: filed away,
		// the writer would go on writing in done/, unread. Taken again,
		// one that grew sends only the rows after those imported
		// (csvGrowth).
		r.log.Info("the CSV file changed as its import ended; it is taken again once it holds still", "pipeline", pipeline, "version", r.version(pipeline), "file", src)
		return nil
	}
	sub := "done"
	if importErr != nil {
		sub = "failed"
	}
	target := filepath.Join(dir, sub)
	var dest string
	err := os.MkdirAll(target, 0o755)
	if err == nil {
		dest = freeName(target, name, r.clock.Now())
		err = os.Rename(src, dest)
	}
	switch {
	case err == nil:
	case errors.As(importErr, new(*notImportableError)):
		r.log.Error("CSV file not imported, and it cannot be moved to failed/ (see move_error); it is left alone until it changes: remove it, or fix what the error says", "pipeline", pipeline, "version", r.version(pipeline), "file", src, "error", importErr, "move_error", err)
		return fmt.Errorf("%s was not imported (%v), and cannot be moved to failed/: %v; it is left alone until it changes: remove it, or fix what the errors say", src, importErr, err)
	case importErr != nil:
		r.log.Error("CSV file not imported, and it cannot be moved to failed/ (see move_error); it is left alone until it changes: fix what move_error says, then touch the file or drop it again", "pipeline", pipeline, "version", r.version(pipeline), "file", src, "error", importErr, "move_error", err)
		return fmt.Errorf("%s was not imported (%v), and cannot be moved to failed/: %v; it is left alone until it changes: fix that, then touch the file or drop it again", src, importErr, err)
	default:
		r.log.Error("CSV file imported, but it cannot be moved to done/; it is left alone until it changes: fix what the error says, then touch the file or drop it again (it is not sent again)", "pipeline", pipeline, "version", r.version(pipeline), "file", src, "error", err)
		return fmt.Errorf("%s was imported, but cannot be moved to done/: %v; it is left alone until it changes: fix that, then touch the file or drop it again (its rows are not sent again)", src, err)
	}
	if importErr != nil {
		// Masked as the log is, and readable by the engine's user only,
		// as the data folder is (a security review).
		_ = os.WriteFile(dest+".error.txt", []byte(r.opts.Masker.String(importErr.Error())+"\n"), 0o600)
		r.log.Error("CSV file not imported", "pipeline", pipeline, "version", r.version(pipeline), "file", src, "moved_to", dest, "error", importErr)
		return nil
	}
	// A file taken out of failed/ and dropped again has been imported: the
	// reason it failed, left behind, no longer stands.
	failed := filepath.Join(dir, "failed", name)
	if _, err := os.Lstat(failed); errors.Is(err, fs.ErrNotExist) {
		_ = os.Remove(failed + ".error.txt")
	}
	r.forgetGrowth(pipeline, src)
	return nil
}

// freeName is where a file called name goes in folder: its own name, or,
// if a file of that name was filed before, one that starts with the time
// (and a counter after the first in a second), so none overwrites
// another (nor its .error.txt).
func freeName(folder, name string, now time.Time) string {
	taken := func(path string) bool {
		_, err := os.Lstat(path)
		_, errTxt := os.Lstat(path + ".error.txt")
		return err == nil || errTxt == nil
	}
	dest := filepath.Join(folder, name)
	stamp := now.UTC().Format("20060102T150405Z")
	for n := 1; taken(dest); n++ {
		prefix := stamp
		if n > 1 {
			prefix = fmt.Sprintf("%s-%d", stamp, n)
		}
		dest = filepath.Join(folder, prefix+"-"+name)
	}
	return dest
}
