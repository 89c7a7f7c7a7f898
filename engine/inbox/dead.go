package inbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter is an event the engine gave up on, with everything needed to
// understand why and to send it again: the event, the request as rendered
// (secrets masked), the last response, and the pipeline version.
type DeadLetter struct {
	ID       uint64          `json:"id"`
	Pipeline string          `json:"pipeline"`
	Version  string          `json:"version"`
	EventID  string          `json:"event_id,omitempty"`
	Event    json.RawMessage `json:"event"`
	Request  *SentRequest    `json:"request,omitempty"`
	Response *GotResponse    `json:"response,omitempty"`
	// Reason is a short category, one of Reasons; Error says it in
	// words.
	Reason   string    `json:"reason"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	Received time.Time `json:"received"`
	At       time.Time `json:"at"`
}

// Reasons are the reasons the engine gives dead letters, as engine dlq
// --reason and GET /dlq?reason= take them (the README's Dead letters says
// what each means). A runner test checks them against the code that sets
// them.
var Reasons = []string{"rejected", "not_sent", "attempts_exhausted", "lookup_rejected", "template", "filter", "internal_error", "damaged", "csv_row"}

// CheckReason says, when r is not one of Reasons, which ones there are.
// The error starts with r, for the caller to put its name before. A
// mistyped reason would select nothing, which looks like no dead letter
// of that reason.
func CheckReason(r string) error {
	if slices.Contains(Reasons, r) {
		return nil
	}
	return fmt.Errorf("%q is not a reason dead letters have; the reasons are %s", r, strings.Join(Reasons, ", "))
}

// SentRequest is a request as it went out, secrets already masked.
type SentRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// GotResponse is the last answer, shortened.
type GotResponse struct {
	Status  int    `json:"status"`
	Excerpt string `json:"excerpt"`
}

// ErrNoSuchDeadLetter is returned for an unknown dead-letter id.
var ErrNoSuchDeadLetter = errors.New("no such dead letter")

// notReplayable holds the reasons whose dead letters keep something a
// pipeline cannot take, and what to do instead. Queued again, such an
// event fails to decode and becomes a "damaged" dead letter whose error is
// a Go decoding message: the row number and what was wrong with it, or
// the first decoding error, are gone for good.
//   - csv_row: the event is where the row was and its text
//     ({"file","row","line","text"}), not a row; the runner stores it
//     for a row it could not read.
//   - damaged: the event is the stored bytes the engine could not read;
//     they fail the same way again (binary ones, kept as a JSON string,
//     fail with a different and less useful error).
var notReplayable = map[string]string{
	// Not "fix the file and import it again": a fixed file is new
	// content, so importing it sends every good row of it a second time.
	"csv_row": "a broken row cannot be replayed: put the fixed row, under the header row, in a new file and import that (importing the whole file again would send its other rows again); drop this dead letter when done",
	"damaged": "a damaged event cannot be replayed: the engine could not read it and would only fail again; drop it when done",
}

// NotReplayableError is returned when asked to replay a dead letter whose
// reason says its event cannot go through a pipeline again. The dead
// letter is left as it is.
type NotReplayableError struct {
	ID       uint64
	Pipeline string
	Reason   string
}

func (e *NotReplayableError) Error() string { return notReplayable[e.Reason] }

// NoPipelineError is returned when asked to replay a dead letter whose
// pipeline no file defines (its file was renamed or removed). Queued,
// its event would wait under a name nothing delivers, and be a dead
// letter no more: out of sight of those that list and drop them. The
// dead letter is left as it is.
type NoPipelineError struct {
	ID       uint64
	Pipeline string
	// Responds: a file defines the pipeline, but it answers its callers
	// (respond:) and takes no queued events.
	Responds bool
}

func (e *NoPipelineError) Error() string {
	if e.Responds {
		return fmt.Sprintf("its pipeline, %s, answers its callers (respond:) and takes no queued events", e.Pipeline)
	}
	return fmt.Sprintf("no file defines its pipeline, %s", e.Pipeline)
}

// PipelineState is what the pipeline files say of a pipeline, for a
// replay.
type PipelineState int

const (
	PipelineMissing  PipelineState = iota // no file defines it
	PipelineQueues                        // it delivers queued events
	PipelineResponds                      // it answers its callers (respond:) instead
)

// Replayable says whether dl's event can be queued again, and if not, why
// and what to do instead (a *NotReplayableError).
func (dl *DeadLetter) Replayable() error {
	if _, ok := notReplayable[dl.Reason]; ok {
		return &NotReplayableError{ID: dl.ID, Pipeline: dl.Pipeline, Reason: dl.Reason}
	}
	return nil
}

// DeadLetter moves a queued event (seq) to the dead letters in one
// transaction, so it is never in both places nor in neither. A dl built
// for an event that never was queued (a CSV row) passes seq 0.
//
// Such an event can come twice: a CSV row dead-lettered just before a
// crash, whose checkpoint had not passed it yet, is read and fails again
// after the restart, and a second dead letter made a replay of both send
// it twice. So while a dead letter of an unqueued event is kept, another
// with its pipeline and event id is not made: the first one's id is
// returned.
func (s *Store) DeadLetter(pipeline string, seq uint64, dl DeadLetter) (uint64, error) {
	removed := 0
	err := s.group(func(tx *bolt.Tx) error {
		removed = 0
		dead := tx.Bucket(deadBucket)
		var unqueued []byte
		if seq == 0 && dl.EventID != "" {
			unqueued = unqueuedKey(pipeline, dl.EventID)
			// One that cannot be read would hold the event's only copy
			// and refuse a replay: a new one replaces it in the index.
			if first := tx.Bucket(deadUnqueued).Get(unqueued); first != nil && json.Valid(dead.Get(first)) {
				dl.ID = binary.BigEndian.Uint64(first)
				return nil
			}
		}
		id, err := dead.NextSequence()
		if err != nil {
			return err
		}
		dl.ID, dl.Pipeline = id, pipeline
		if dl.At.IsZero() {
			dl.At = s.now()
		}
		raw, err := json.Marshal(dl)
		if err != nil {
			return err
		}
		if err := dead.Put(seqKey(id), raw); err != nil {
			return err
		}
		if err := addDeadCount(tx, 1); err != nil {
			return err
		}
		if unqueued != nil {
			return tx.Bucket(deadUnqueued).Put(unqueued, seqKey(id))
		}
		if seq == 0 {
			return nil
		}
		if q := tx.Bucket(queueBucket(pipeline)); q != nil && q.Get(seqKey(seq)) != nil {
			removed = 1
			return q.Delete(seqKey(seq))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storing a dead letter: %w", err)
	}
	s.mu.Lock()
	s.depth[pipeline] -= removed
	s.mu.Unlock()
	return dl.ID, nil
}

// unqueuedKey indexes the dead letter of an unqueued event (DeadLetter).
func unqueuedKey(pipeline, eventID string) []byte {
	return []byte(pipeline + "\x00" + eventID)
}

// UnqueuedDeadWithPrefix calls fn with the event id of each dead letter
// of an event of pipeline that never was queued (a CSV row) whose id
// starts with prefix: such a row has its outcome, even when the import's
// checkpoint had not passed it yet.
func (s *Store) UnqueuedDeadWithPrefix(pipeline, prefix string, fn func(id string)) error {
	key := unqueuedKey(pipeline, prefix)
	return s.db.View(func(tx *bolt.Tx) error {
		dead := tx.Bucket(deadBucket)
		c := tx.Bucket(deadUnqueued).Cursor()
		for k, v := c.Seek(key); k != nil && bytes.HasPrefix(k, key); k, v = c.Next() {
			if dead.Get(v) != nil {
				fn(string(k[len(pipeline)+1:]))
			}
		}
		return nil
	})
}

// forgetUnqueued removes dl from the index of unqueued events' dead
// letters, when it is there: dl is being replayed or dropped, so the
// event may be dead-lettered again.
func forgetUnqueued(tx *bolt.Tx, dl *DeadLetter) error {
	if dl.EventID == "" {
		return nil
	}
	idx := tx.Bucket(deadUnqueued)
	key := unqueuedKey(dl.Pipeline, dl.EventID)
	if v := idx.Get(key); v != nil && binary.BigEndian.Uint64(v) == dl.ID {
		return idx.Delete(key)
	}
	return nil
}

// addDeadCount changes the count of dead letters by delta, in tx.
func addDeadCount(tx *bolt.Tx, delta int) error {
	if delta == 0 {
		return nil
	}
	meta := tx.Bucket(journalBucket)
	n := int64(0)
	if v := meta.Get(deadCountKey); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return meta.Put(deadCountKey, seqKey(uint64(max(n+int64(delta), 0))))
}

// DeadLetterCount is how many dead letters the store holds, without
// reading them: a count kept beside them.
func (s *Store) DeadLetterCount() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(journalBucket).Get(deadCountKey); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, err
}

var errReplayCrash = errors.New("the replay stops here, as if the process died (a test)")

// settleReplays ends the replays a crash cut short, once the journal's
// events are in bbolt: a marked dead letter whose event was queued again
// (the pipeline's seen index names a seq after the mark's) is removed, the
// others stay; the marks go. It returns how many it removed.
func settleReplays(tx *bolt.Tx) (int, error) {
	marks, dead := tx.Bucket(deadReplaying), tx.Bucket(deadBucket)
	var ids [][]byte
	removed := 0
	err := marks.ForEach(func(k, before []byte) error {
		ids = append(ids, bytes.Clone(k))
		v := dead.Get(k)
		if v == nil || len(before) != 8 {
			return nil
		}
		var dl DeadLetter
		if err := json.Unmarshal(v, &dl); err != nil || dl.EventID == "" {
			return nil // not told apart from a new event: it stays
		}
		seen := tx.Bucket(seenBucket(dl.Pipeline))
		if seen == nil {
			return nil
		}
		at := seen.Get([]byte(dl.EventID))
		if len(at) != 16 || binary.BigEndian.Uint64(at[8:]) <= binary.BigEndian.Uint64(before) {
			return nil // the replay did not queue it
		}
		dl.ID = binary.BigEndian.Uint64(k)
		if err := dead.Delete(k); err != nil {
			return err
		}
		removed++
		return forgetUnqueued(tx, &dl)
	})
	if err != nil {
		return 0, err
	}
	if err := addDeadCount(tx, -removed); err != nil {
		return 0, err
	}
	for _, k := range ids {
		if err := marks.Delete(k); err != nil {
			return 0, err
		}
	}
	return removed, nil
}

// DeadFilter selects dead letters; zero fields match everything.
type DeadFilter struct {
	Pipeline string
	Reason   string
	Since    time.Time
	// After leaves out the dead letters up to and including this id: the
	// last one of the previous page.
	After uint64
	Limit int
}

func (f DeadFilter) filters() bool {
	return f.Pipeline != "" || f.Reason != "" || !f.Since.IsZero()
}

func (f DeadFilter) matches(dl *DeadLetter) bool {
	return (f.Pipeline == "" || dl.Pipeline == f.Pipeline) &&
		(f.Reason == "" || dl.Reason == f.Reason) &&
		(f.Since.IsZero() || !dl.At.Before(f.Since))
}

// ParseSince reads a DeadFilter's Since as people write it (engine dlq
// --since, the admin listener's since=): a duration back from now, or a
// point in time. time.ParseDuration stops at hours; dead letters are
// often looked at days later, so a whole number of days (7d) is accepted
// too, and a day alone (2026-11-29, from its midnight UTC). A point in
// the future is refused: it selects nothing, and was answered "no dead
// letters" as if there were none. The error starts with the value, for
// the caller to put its name before.
func ParseSince(s string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err == nil {
		if t.After(now) {
			return time.Time{}, fmt.Errorf("%q is in the future (it is %s now), and no dead letter is that new", s, now.UTC().Format(time.RFC3339))
		}
		return t, nil
	}
	d, err := time.ParseDuration(s)
	// Days, alone or before a Go duration: 7d, 1d12h.
	if days, rest, ok := strings.Cut(s, "d"); ok && err != nil {
		n, nerr := strconv.Atoi(days)
		var extra time.Duration
		if rest != "" && nerr == nil {
			extra, nerr = time.ParseDuration(rest)
		}
		const maxDays = 100 * 365 // time.Duration ends at about 292 years
		switch {
		case nerr == nil && (n > maxDays || n < -maxDays):
			return time.Time{}, fmt.Errorf("%q reaches back more than 100 years; give fewer days, or leave --since out for every dead letter", s)
		case nerr == nil:
			d, err = time.Duration(n)*24*time.Hour+extra, nil
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration such as 2h, 7d or 1d12h nor an RFC 3339 time such as 2026-11-29T10:00:00Z or a day such as 2026-11-29", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%q: give a positive duration, how far back to look", s)
	}
	return now.Add(-d), nil
}

// DeadLetters lists the dead letters f selects, oldest first. It holds
// them all: a caller that may meet many uses EachDeadLetter.
func (s *Store) DeadLetters(f DeadFilter) ([]DeadLetter, error) {
	var out []DeadLetter
	err := s.EachDeadLetter(f, func(dl DeadLetter) error {
		out = append(out, dl)
		return nil
	})
	return out, err
}

// EachDeadLetter calls fn with each dead letter f selects, oldest first,
// and stops after f.Limit of them, or at the first error fn returns,
// which it returns. Only those selected are decoded in full; the filters
// read the rest of each as EachDeadLetterSummary does.
func (s *Store) EachDeadLetter(f DeadFilter, fn func(DeadLetter) error) error {
	return s.eachDeadLetter(f, true, fn)
}

// EachDeadLetterSummary is EachDeadLetter without the event and the
// request, which are most of a dead letter's size: what a list, a filter
// or a choice of ids needs, read without decoding the bodies.
func (s *Store) EachDeadLetterSummary(f DeadFilter, fn func(DeadLetter) error) error {
	return s.eachDeadLetter(f, false, fn)
}

// Bounds on one read transaction of eachDeadLetter. fn is called between
// transactions, with what the last one decoded: memory holds a batch, not
// every dead letter, and a slow reader (an operator's curl) keeps no
// transaction open. An open one would keep bbolt, under the engine's
// writes, from reusing the pages freed since it began and from growing
// its file.
const (
	deadBatch      = 100     // dead letters handed to fn per transaction
	deadBatchBytes = 1 << 20 // or fewer, once their stored size is past this
	deadScanMax    = 10000   // dead letters looked at per transaction
)

func (s *Store) eachDeadLetter(f DeadFilter, full bool, fn func(DeadLetter) error) error {
	if f.After == math.MaxUint64 {
		return nil // none after it; After+1 would start again at the first
	}
	after, handed := f.After, 0
	var batch []DeadLetter
	var buf []byte
	for {
		batch = batch[:0]
		more := false
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(deadBucket).Cursor()
			size, scanned := 0, 0
			for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
				if f.Limit > 0 && handed+len(batch) == f.Limit {
					return nil
				}
				if len(batch) == deadBatch || size >= deadBatchBytes || scanned == deadScanMax {
					more = true
					return nil
				}
				after = binary.BigEndian.Uint64(k)
				scanned++
				var dl DeadLetter
				var err error
				switch {
				case full && !f.filters():
					err = json.Unmarshal(v, &dl)
				case full:
					if buf, err = decodeSummary(v, &dl, buf); err == nil && f.matches(&dl) {
						dl = DeadLetter{}
						err = json.Unmarshal(v, &dl)
					}
				default:
					buf, err = decodeSummary(v, &dl, buf)
				}
				if err != nil {
					return fmt.Errorf("dead letter %d is damaged: %w", after, err)
				}
				if f.matches(&dl) {
					batch = append(batch, dl)
					size += len(v)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, dl := range batch {
			if err := fn(dl); err != nil {
				return err
			}
		}
		handed += len(batch)
		if !more {
			return nil
		}
	}
}

// decodeSummary decodes a stored dead letter into dl but for its event and
// request, and returns buf for the next call. encoding/json would scan
// every byte of those two with its state machine to skip them; here a
// string is skipped with one IndexByte, which reads the summaries of
// 200,000 F4 dead letters (840 MB) in 2 s rather than 5 to 7. A value it
// cannot take apart is decoded in full, for json's error.
func decodeSummary(v []byte, dl *DeadLetter, buf []byte) ([]byte, error) {
	buf, ok := summaryOf(v, buf[:0])
	if !ok {
		return buf, json.Unmarshal(v, dl)
	}
	return buf, json.Unmarshal(buf, dl)
}

// summaryOf appends to buf the JSON object v without its members "event"
// and "request". It only finds where members end: what it keeps is
// decoded by encoding/json, which checks it, and what it leaves out is
// never looked at. ok is false when v is not an object.
func summaryOf(v, buf []byte) (_ []byte, ok bool) {
	i := skipSpace(v, 0)
	if i == len(v) || v[i] != '{' {
		return buf, false
	}
	buf = append(buf, '{')
	kept := false
	for i = skipSpace(v, i+1); i < len(v) && v[i] != '}'; {
		start := i
		if v[i] != '"' {
			return buf, false
		}
		keyEnd, ok := stringEnd(v, i)
		if !ok {
			return buf, false
		}
		if i = skipSpace(v, keyEnd); i == len(v) || v[i] != ':' {
			return buf, false
		}
		end, ok := valueEnd(v, skipSpace(v, i+1))
		if !ok {
			return buf, false
		}
		if key := string(v[start:keyEnd]); key != `"event"` && key != `"request"` {
			if kept {
				buf = append(buf, ',')
			}
			buf, kept = append(buf, v[start:end]...), true
		}
		switch i = skipSpace(v, end); {
		case i < len(v) && v[i] == ',':
			i = skipSpace(v, i+1)
		case i < len(v) && v[i] != '}':
			return buf, false
		}
	}
	if i == len(v) {
		return buf, false
	}
	return append(buf, '}'), true
}

func skipSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at v[i].
func stringEnd(v []byte, i int) (int, bool) {
	for j := i + 1; ; j++ {
		q := bytes.IndexByte(v[j:], '"')
		if q < 0 {
			return 0, false
		}
		j += q
		// A quote after an odd number of backslashes is escaped.
		n := 0
		for b := j - 1; v[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return j + 1, true
		}
	}
}

// valueEnd returns the index just past the value that starts at v[i].
func valueEnd(v []byte, i int) (int, bool) {
	depth := 0
	for i < len(v) {
		switch v[i] {
		case '"':
			end, ok := stringEnd(v, i)
			if !ok || depth == 0 {
				return end, ok
			}
			i = end
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // a number, true, false or null ends here
				return i, true
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i, true
			}
		}
		i++
	}
	return 0, false
}

// DeadLetterPipelines is the set of pipelines that have dead letters. It
// reads every dead letter's summary.
func (s *Store) DeadLetterPipelines() (map[string]bool, error) {
	names := map[string]bool{}
	err := s.EachDeadLetterSummary(DeadFilter{}, func(dl DeadLetter) error {
		names[dl.Pipeline] = true
		return nil
	})
	return names, err
}

// GetDeadLetter returns one dead letter.
func (s *Store) GetDeadLetter(id uint64) (DeadLetter, error) {
	var dl DeadLetter
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(deadBucket).Get(seqKey(id))
		if v == nil {
			return ErrNoSuchDeadLetter
		}
		return json.Unmarshal(v, &dl)
	})
	return dl, err
}

// Outcome is what became of one dead letter that DropDeadLetters or
// RequeueDeadLetters was asked about.
type Outcome struct {
	// DeadLetter is the dead letter as it was (only its ID when there
	// was none, or when it could not be read). A dropped one has no
	// Event and Request: they are not read.
	DeadLetter
	// Seq is where a replayed event is queued now.
	Seq uint64
	// Err is why this one was left as it was: ErrNoSuchDeadLetter, a
	// *NotReplayableError, a *NoPipelineError, a *NotQueuedError, or a
	// stored dead letter that cannot be read.
	Err error
}

// NotQueuedError: a dead letter stays, as its event could not be queued
// again (the inbox could not be written): not the dead letter's fault, and
// a later replay may work.
type NotQueuedError struct{ Err error }

func (e *NotQueuedError) Error() string { return "queueing it again: " + e.Err.Error() }
func (e *NotQueuedError) Unwrap() error { return e.Err }

// ReplayLeftError: a replay queued events again but could not remove their
// dead letters. The store removes them as soon as it can write again
// (SettleReplaysLeft), and until then replays nothing, so no event is
// queued twice; Outcomes are as if it had.
type ReplayLeftError struct {
	Queued int
	Err    error
}

func (e *ReplayLeftError) Error() string {
	return fmt.Sprintf("%d events are queued again, but their dead letters could not be removed yet: %v", e.Queued, e.Err)
}
func (e *ReplayLeftError) Unwrap() error { return e.Err }

// replayed is a dead letter a replay marked: queued, when its event was
// queued again, and its dead letter must go.
type replayed struct {
	dl     *DeadLetter
	queued bool
}

// removeReplayed ends a replay: its marks go, and the dead letters whose
// events it queued. One dropped meanwhile (a replay left for later, see
// SettleReplaysLeft) is counted out already.
func removeReplayed(tx *bolt.Tx, done []replayed) error {
	b, marks := tx.Bucket(deadBucket), tx.Bucket(deadReplaying)
	removed := 0
	for _, d := range done {
		k := seqKey(d.dl.ID)
		if err := marks.Delete(k); err != nil {
			return err
		}
		if !d.queued || b.Get(k) == nil {
			continue
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		removed++
		if err := forgetUnqueued(tx, d.dl); err != nil {
			return err
		}
	}
	return addDeadCount(tx, -removed)
}

func (s *Store) removeReplayed(done []replayed) error {
	return s.group(func(tx *bolt.Tx) error {
		if err := s.faulty(FaultReplayRemoval); err != nil {
			return err
		}
		return removeReplayed(tx, done)
	})
}

// SettleReplaysLeft removes the dead letters a replay queued again but
// could not remove (and the marks it could not), now that the store may
// write again: the engine tries every second, and every replay first. It
// returns how many are left (0, or all of them with the error).
func (s *Store) SettleReplaysLeft() (int, error) {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	if err := s.settleReplaysLeft(); err != nil {
		return len(s.replayLeft), err
	}
	return 0, nil
}

func (s *Store) settleReplaysLeft() error {
	if len(s.replayLeft) == 0 {
		return nil
	}
	if err := s.removeReplayed(s.replayLeft); err != nil {
		return fmt.Errorf("an earlier replay queued events again whose dead letters cannot be removed yet: %w", err)
	}
	s.replayLeft = nil
	return nil
}

// DropDeadLetter deletes one dead letter for good.
func (s *Store) DropDeadLetter(id uint64) error {
	out, err := s.DropDeadLetters([]uint64{id})
	if err != nil {
		return err
	}
	return out[0].Err
}

// DropDeadLetters deletes dead letters for good, all in one transaction,
// and says for each id, in order, what it was. One that cannot be read is
// deleted too: dropping is how an operator gets rid of it.
func (s *Store) DropDeadLetters(ids []uint64) ([]Outcome, error) {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	out := make([]Outcome, len(ids))
	var buf []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket)
		for i, id := range ids {
			out[i] = Outcome{DeadLetter: DeadLetter{ID: id}}
			v := b.Get(seqKey(id))
			if v == nil {
				out[i].Err = ErrNoSuchDeadLetter
				continue
			}
			buf, _ = decodeSummary(v, &out[i].DeadLetter, buf) // what it said, if it can be read
			if err := b.Delete(seqKey(id)); err != nil {
				return err
			}
			if err := addDeadCount(tx, -1); err != nil {
				return err
			}
			if err := forgetUnqueued(tx, &out[i].DeadLetter); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dropping dead letters: %w", err)
	}
	return out, nil
}

// Requeue puts a dead letter's event back into its pipeline's queue with
// no attempts counted, and then removes the dead letter; one that cannot
// be replayed (see Replayable) stays, with a *NotReplayableError.
func (s *Store) Requeue(id uint64) (pipeline string, seq uint64, err error) {
	out, err := s.RequeueDeadLetters([]uint64{id}, nil)
	if out == nil {
		return "", 0, err
	}
	if out[0].Err != nil {
		return "", 0, out[0].Err
	}
	return out[0].Pipeline, out[0].Seq, err // a *ReplayLeftError
}

// RequeueDeadLetters is Requeue for many dead letters: they are marked as
// being replayed, their events are queued with one journal write per
// pipeline, then the dead letters and marks go in one transaction, rather
// than two syncs for each. It says for each id, in order, what became of
// it; an error means none was removed: a *ReplayLeftError, with the
// outcomes, when it came after queueing (they are removed later). The
// dedupe window does not apply: asking for
// a replay is deliberate. A crash between the steps leaves an event
// queued, or not, and its dead letter marked: the next Open removes the
// dead letter of an event that was queued (settleReplays), which a later
// replay sent twice, and keeps the other. Never in neither place. A
// second replay of the same dead letter, at the same time or later,
// finds none.
//
// state, unless nil, says what the pipeline files say of a pipeline: a
// dead letter of one that does not take queued events stays, with a
// *NoPipelineError.
func (s *Store) RequeueDeadLetters(ids []uint64, state func(pipeline string) PipelineState) ([]Outcome, error) {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	// A dead letter still here after its replay queued the event would be
	// queued twice.
	if err := s.settleReplaysLeft(); err != nil {
		return nil, fmt.Errorf("%w; nothing is replayed until they are (their events would be sent twice)", err)
	}
	out := make([]Outcome, len(ids))
	seen := make(map[uint64]bool, len(ids))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket)
		for i, id := range ids {
			out[i] = Outcome{DeadLetter: DeadLetter{ID: id}}
			v := b.Get(seqKey(id))
			if v == nil || seen[id] { // named twice: it is queued once
				out[i].Err = ErrNoSuchDeadLetter
				continue
			}
			seen[id] = true
			if err := json.Unmarshal(v, &out[i].DeadLetter); err != nil {
				out[i].Err = fmt.Errorf("it is damaged and cannot be read: %w", err)
				continue
			}
			out[i].Err = out[i].Replayable()
			if out[i].Err == nil && state != nil {
				if st := state(out[i].Pipeline); st != PipelineQueues {
					out[i].Err = &NoPipelineError{ID: id, Pipeline: out[i].Pipeline, Responds: st == PipelineResponds}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// One append per pipeline, in the order the ids name them.
	var pipelines []string
	byPipeline := map[string][]int{}
	for i := range out {
		if out[i].Err != nil {
			continue
		}
		p := out[i].Pipeline
		if byPipeline[p] == nil {
			pipelines = append(pipelines, p)
		}
		byPipeline[p] = append(byPipeline[p], i)
	}
	if len(pipelines) == 0 {
		return out, nil
	}
	// Each mark holds the last seq of its pipeline before the append: a
	// queued copy of the event has a later one.
	before := map[string][]byte{}
	s.mu.Lock()
	for _, p := range pipelines {
		before[p] = seqKey(s.lastSeq[p])
	}
	s.mu.Unlock()
	err = s.group(func(tx *bolt.Tx) error {
		marks := tx.Bucket(deadReplaying)
		for _, p := range pipelines {
			for _, i := range byPipeline[p] {
				if err := marks.Put(seqKey(out[i].ID), before[p]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marking the dead letters as being replayed: %w", err)
	}
	if s.replayCrash == "marked" {
		return nil, errReplayCrash
	}
	var queued []uint64
	for _, p := range pipelines {
		idx := byPipeline[p]
		events := make([]NewEvent, len(idx))
		for j, i := range idx {
			events[j] = NewEvent{ID: out[i].EventID, Payload: out[i].Event, Received: out[i].Received}
		}
		got, err := s.appendEvents(&appendReq{pipeline: p, replay: true, events: events})
		for j, i := range idx {
			if err != nil {
				// Those of the other pipelines go on.
				out[i].Err = &NotQueuedError{err}
				continue
			}
			out[i].Seq = got[j].Seq
			queued = append(queued, out[i].ID)
		}
	}
	if s.replayCrash == "queued" {
		return nil, errReplayCrash
	}
	var done []replayed
	for _, idx := range byPipeline {
		for _, i := range idx {
			// What removing it takes, not its event: these may wait.
			dl := &DeadLetter{ID: out[i].ID, Pipeline: out[i].Pipeline, EventID: out[i].EventID}
			done = append(done, replayed{dl: dl, queued: out[i].Err == nil}) // else it stays
		}
	}
	if err := s.removeReplayed(done); err != nil {
		s.replayLeft = done
		return out, &ReplayLeftError{Queued: len(queued), Err: err}
	}
	return out, nil
}
