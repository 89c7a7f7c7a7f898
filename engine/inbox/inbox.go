// Package inbox is the engine's durable queue: every accepted event is on
// disk before its sender hears 2xx, and stays there until it is delivered
// or dead-lettered (DESIGN §2). It is a bbolt file in the data folder, with
// a journal in front of it that accepted events are written to first
// (journal.go).
//
// Its contract is narrow on purpose (append with a dedupe id, pending,
// ack, retry-at, dead-letter, depth) so that a NATS JetStream work queue
// can stand in for it without changing the workers.
package inbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyalty-connector/engine/internal/wire"
	bolt "go.etcd.io/bbolt"
)

// DefaultDedupeWindow is how long an event id is remembered after the
// event arrived. Braze retries a webhook for up to 24 hours when the
// endpoint is unreachable (braze.md §4), so a repeat inside a day is a
// retry, not a new event.
const DefaultDedupeWindow = 24 * time.Hour

var (
	deadBucket   = []byte("dead")
	deadUnqueued = []byte("dead-unqueued") // see DeadLetter
	// deadReplaying marks the dead letters a replay is queueing again
	// (RequeueDeadLetters), so the next Open can settle one a crash cut
	// short (settleReplays).
	deadReplaying     = []byte("dead-replaying")
	checkpointsBucket = []byte("checkpoints")
	// journalBucket holds appliedKey: the last journal epoch whose events
	// are in bbolt (journal.go), and runningKey while an engine run holds
	// the store (Options.MarkRunning).
	journalBucket = []byte("journal")
	appliedKey    = []byte("applied")
	runningKey    = []byte("running")
	// deadCountKey (in journalBucket) counts the dead letters, changed in
	// the transaction that adds or removes one (DeadLetterCount).
	deadCountKey = []byte("dead-count")
	// keptIDsKey (in journalBucket) is written with appliedKey, to the
	// same epoch, by builds that keep the ids of queued events in the
	// seen index past the dedupe window. Builds before them pruned those
	// ids, and set appliedKey alone: an epoch that differs says one of
	// them wrote the folder last (restoreQueuedIDs).
	keptIDsKey = []byte("queued-ids-kept")
)

func queueBucket(pipeline string) []byte { return []byte("queue/" + pipeline) }
func seenBucket(pipeline string) []byte  { return []byte("seen/" + pipeline) }

// Options tunes a Store.
type Options struct {
	// DedupeWindow: how long ids are remembered (DefaultDedupeWindow when 0).
	DedupeWindow time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// NoSync skips fsync. Only for tests and benchmarks that measure
	// something else: an acknowledged event may then be lost in a crash.
	NoSync bool
	// MarkRunning records in the store that it is in use until Close, so
	// that the next Open can tell a run that ended without Close (killed,
	// crashed): see StoppedUncleanly. Only engine run sets it; a command
	// that reads the store meanwhile (engine dlq) leaves the mark alone.
	MarkRunning bool
	// Fault (tests) makes the writes of a kind fail with the error it
	// returns for that kind, as on a full disk: FaultAppend,
	// FaultReplayRemoval, FaultCheckpoint, FaultAck.
	Fault func(write string) error
}

// Store is the inbox, the dead letters and the CSV checkpoints in one
// bbolt file, with a journal in front of it for accepted events.
type Store struct {
	db     *bolt.DB
	path   string
	window time.Duration
	now    func() time.Time

	journalMu sync.Mutex // the journal's file and offset: appender, and seal
	journal   *journal

	mu           sync.Mutex
	depth        map[string]int
	lastSeq      map[string]uint64        // the last seq given out, per pipeline
	pending      map[string]*pendingQueue // journalled, not yet in bbolt
	pendingCount int
	pendingBytes int

	// deadMu makes replaying or dropping a dead letter one step: two
	// replays of one dead letter at once would queue its event twice.
	deadMu sync.Mutex
	// replayLeft (under deadMu): dead letters a replay queued again, or
	// marked, but could not remove or unmark (the disk was full); see
	// SettleReplaysLeft.
	replayLeft []replayed

	appliedEpoch uint64 // the committer's alone
	markRunning  bool
	// stoppedUncleanly: the last run that marked the store did not close it.
	stoppedUncleanly bool
	// replaysSettled: dead letters a replay cut short had queued again,
	// removed at Open (ReplaysSettled).
	replaysSettled int
	// journalDamage: stretches of the journal the open found damaged
	// (JournalDamage).
	journalDamage []JournalDamage
	// keepJournal (tests) stops events from moving into bbolt, as if the
	// engine died before they did: Close then leaves them in the journal.
	keepJournal atomic.Bool
	// pruneBatch is the constant of that name but in tests, which also
	// set prunedBatch to run after each batch of old ids is forgotten.
	pruneBatch  int
	prunedBatch func()

	// replayCrash (tests) makes RequeueDeadLetters return at the step it
	// names ("marked" or "queued"), as if the process died there.
	replayCrash string
	fault       func(write string) error // Options.Fault

	holderSet bool // SetHolder wrote the holder file

	appends       chan *appendReq
	writes        chan write
	applyNow      chan struct{}
	closing       chan struct{}
	closeOnce     sync.Once
	appenderDone  chan struct{}
	committerDone chan struct{}
}

// Open opens (or creates) the inbox in dir. Only one process may hold it:
// a second engine on the same data folder waits a few seconds, then fails.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, "inbox.db")
	info, statErr := os.Stat(path)
	created := statErr != nil || info.Size() == 0 // by the bolt.Open below
	db, err := openBolt(path, &bolt.Options{Timeout: 3 * time.Second, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolt.ErrTimeout) {
		locked := &LockedError{Dir: dir}
		if raw, err := os.ReadFile(filepath.Join(dir, holderFile)); err == nil {
			_ = json.Unmarshal(raw, &locked.Holder)
		}
		return nil, locked
	}
	if err != nil {
		return nil, fmt.Errorf("opening the inbox %s: %w", path, err)
	}
	// Whoever wrote it let go of the lock: killed, it left its record.
	_ = os.Remove(filepath.Join(dir, holderFile))
	s := &Store{db: db, path: path, window: opts.DedupeWindow, now: opts.Now, fault: opts.Fault,
		depth: map[string]int{}, lastSeq: map[string]uint64{}, pending: map[string]*pendingQueue{},
		appends: make(chan *appendReq, maxGroup), writes: make(chan write, maxGroup), applyNow: make(chan struct{}, 1),
		closing: make(chan struct{}), appenderDone: make(chan struct{}), committerDone: make(chan struct{})}
	if s.window == 0 {
		s.window = DefaultDedupeWindow
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.pruneBatch = pruneBatch
	s.markRunning = opts.MarkRunning
	if err := survivingDamage(func() error { return s.recover(dir, opts.NoSync) }); err != nil {
		db.Close()
		if created {
			// Not left behind as if it were the inbox: the next start
			// would take it for one and lose the journal's events.
			_ = os.Remove(path)
		}
		return nil, fmt.Errorf("reading the inbox %s: %w", path, err)
	}
	// Marked only once the store opened: an Open that fails has no Close
	// to clear the mark, and the next run would be told of a kill.
	if s.markRunning {
		err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(journalBucket).Put(runningKey, []byte{1}) })
		if err != nil {
			s.journal.close()
			db.Close()
			return nil, fmt.Errorf("marking the inbox %s in use: %w", path, err)
		}
	}
	go s.appendLoop()
	go s.commitLoop()
	return s, nil
}

// openBolt is bolt.Open, with a damaged file reported as an error.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	err = survivingDamage(func() error {
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	return db, err
}

// survivingDamage runs fn, which reads inbox.db, and turns what a damaged
// file makes bbolt do (a failed assertion on a page, or a fault reading
// past the end of the mapped file when it was cut short) into an error:
// the engine died with a stack trace (QA runs: cut to a half, a page
// overwritten). bbolt rolls back a transaction a panic leaves.
func survivingDamage(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("it is damaged (%v): was it cut short or overwritten? Restore it from a backup, with the inbox.wal.0 and inbox.wal.1 of the same time; to start an empty inbox instead, losing the events it held, move inbox.db and both inbox.wal files out of the data folder", v)
		}
	}()
	return fn()
}

// recover opens the journal, moves into bbolt the events a crash left
// only there, and counts what is queued. An inbox.db that never recorded
// an applied epoch is new: with a journal that holds events, the real one
// was deleted or emptied, and taking the new one for it lost every queued
// event in silence (a QA run), so it is refused. Told by its contents,
// not its size: a refused start killed before it removed the file it
// made left one of 16 KiB that the next start took for the inbox (a
// review).
func (s *Store) recover(dir string, noSync bool) error {
	var applied uint64
	var restoreIDs, fresh bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{deadBucket, deadUnqueued, deadReplaying, checkpointsBucket, journalBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(journalBucket)
		fresh = meta.Get(appliedKey) == nil
		if v := meta.Get(appliedKey); len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		restoreIDs = !bytes.Equal(meta.Get(keptIDsKey), meta.Get(appliedKey))
		if meta.Get(deadCountKey) == nil || restoreIDs {
			// A folder from before the count, or one an older build
			// changed since: counted, walking the dead letters' pages.
			if err := meta.Put(deadCountKey, seqKey(uint64(tx.Bucket(deadBucket).Stats().KeyN))); err != nil {
				return err
			}
		}
		s.stoppedUncleanly = s.markRunning && meta.Get(runningKey) != nil
		return nil
	})
	if err != nil {
		return err
	}
	j, err := openJournal(dir, noSync)
	if err != nil {
		return err
	}
	var contents [2][]byte
	for i := range contents {
		if contents[i], err = j.head(i, applied, fresh); err != nil {
			j.close()
			return err
		}
	}
	if fresh {
		for i, b := range contents {
			if epoch, found := anyEntry(b); found {
				j.close()
				return fmt.Errorf("inbox.db is missing or empty, but the inbox journal %s holds events (of epoch %d) that it had: the queued events would be lost. Restore inbox.db; to start an empty inbox instead, losing them, move inbox.wal.0 and inbox.wal.1 out of the data folder", filepath.Base(j.files[i].Name()), epoch)
			}
		}
	}
	// An epoch past those two is one an inbox.db newer than this one
	// moved in: this one is a backup restored without the journal files
	// of its time, and the events of the later epochs would be skipped
	// without a word (a review).
	for i, b := range contents {
		if epoch, ok := firstEpoch(b); ok && epoch > applied+2 {
			j.close()
			return fmt.Errorf("inbox.db is older than the inbox journal beside it: it moved the journal's events up to epoch %d into the inbox, and %s begins with epoch %d, so events the journal holds would be lost. Was inbox.db restored from a backup? Restore inbox.wal.0 and inbox.wal.1 of the same time with it; to start from this inbox.db anyway, losing the journal's newer events, move inbox.wal.0 and inbox.wal.1 out of the data folder", applied, filepath.Base(j.files[i].Name()), epoch)
		}
	}
	// At most two epochs can be unapplied: a sealed one whose move did
	// not finish, and the one after it.
	var replay []journalled
	for e := applied + 1; e <= applied+2; e++ {
		entries, damage := readEpoch(contents[e%2], filepath.Base(j.files[e%2].Name()), e)
		replay = append(replay, entries...)
		s.journalDamage = append(s.journalDamage, damage...)
	}
	// A fresh epoch every start, replay or not: entries a crash left
	// half-synced in the files (never acknowledged) must not be taken for
	// ones written after this start.
	applied += 2
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := putEvents(tx, replay, nil); err != nil {
			return err
		}
		if restoreIDs {
			if err := restoreQueuedIDs(tx); err != nil {
				return fmt.Errorf("restoring the ids of queued events: %w", err)
			}
		}
		settled, err := settleReplays(tx)
		if err != nil {
			return fmt.Errorf("settling replays a crash cut short: %w", err)
		}
		s.replaysSettled = settled
		return putApplied(tx, applied)
	})
	if err != nil {
		j.close()
		return fmt.Errorf("moving journalled events into the inbox: %w", err)
	}
	s.journal, s.appliedEpoch = j, applied
	j.start(applied + 1)
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if p, ok := bytes.CutPrefix(name, []byte("queue/")); ok {
				s.depth[string(p)] = b.Stats().KeyN
				s.lastSeq[string(p)] = b.Sequence()
			}
			return nil
		})
	})
}

// putApplied records that the journal's epochs up to epoch are in bbolt,
// and that this build keeps the ids of queued events (keptIDsKey).
func putApplied(tx *bolt.Tx, epoch uint64) error {
	meta := tx.Bucket(journalBucket)
	if err := meta.Put(appliedKey, seqKey(epoch)); err != nil {
		return err
	}
	return meta.Put(keptIDsKey, seqKey(epoch))
}

// restoreQueuedIDs puts back into the seen index the id of every queued
// event that has none there: a build before this one pruned them once a
// day old, though their event was still queued, and a CSV import resumed
// by this one read those rows from the file again while the inbox sent
// them too (a QA run of upgrades: 165 rows sent twice), and a sender's
// retry of such an event was taken as new. It reads every queued event,
// once, at the first open after such a build.
func restoreQueuedIDs(tx *bolt.Tx) error {
	var pipelines []string // first: buckets are made below
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if p, ok := bytes.CutPrefix(name, []byte("queue/")); ok {
			pipelines = append(pipelines, string(p))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range pipelines {
		seen, err := tx.CreateBucketIfNotExists(seenBucket(p))
		if err != nil {
			return err
		}
		err = tx.Bucket(queueBucket(p)).ForEach(func(k, v []byte) error {
			rec, err := decodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil || rec.ID == "" || seen.Get([]byte(rec.ID)) != nil {
				return nil // one that cannot be read is the feeder's to report
			}
			at := seenValue(rec.Received, rec.Seq)
			return seen.Put([]byte(rec.ID), at[:])
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// seenValue is what the seen index keeps of an event: when it arrived,
// and its seq.
func seenValue(received time.Time, seq uint64) [16]byte {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], uint64(received.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], seq)
	return v
}

// Close finishes the appends and changes already queued, moves the
// journalled events into bbolt and closes the files.
func (s *Store) Close() error {
	// A last try, while the committer runs: the marks of those it cannot
	// remove let the next Open remove them (those with an event id).
	_, _ = s.SettleReplaysLeft()
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.appenderDone
	<-s.committerDone
	var unmark error
	if s.markRunning {
		unmark = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(journalBucket).Delete(runningKey) })
		s.markRunning = false
	}
	if s.holderSet {
		// Still locked: no other process has written it since.
		_ = os.Remove(filepath.Join(filepath.Dir(s.path), holderFile))
		s.holderSet = false
	}
	return errors.Join(unmark, s.journal.close(), s.db.Close())
}

// The kinds of write Options.Fault makes fail.
const (
	FaultAppend        = "append"         // the journal's writes of new events
	FaultReplayRemoval = "replay removal" // the removal of replayed dead letters
	FaultCheckpoint    = "checkpoint"     // SetCheckpoint
	FaultAck           = "ack"            // the removal of delivered events
)

// faulty is the error Options.Fault gives a write of kind, if any.
func (s *Store) faulty(kind string) error {
	if s.fault == nil {
		return nil
	}
	return s.fault(kind)
}

// Holder is who holds a store: a process that finds it locked names it.
type Holder struct {
	Command string `json:"command"` // "engine run", "engine dlq replay"
	PID     int    `json:"pid"`
	// Admin is engine run's admin listener (host:port); "" when it has
	// none.
	Admin string `json:"admin,omitempty"`
}

// IsDlq reports whether the holder is an engine dlq command, which holds
// the store for a moment only.
func (h Holder) IsDlq() bool { return strings.HasPrefix(h.Command, "engine dlq") }

// LockedError says that another process holds the data folder, and who,
// when it said (SetHolder).
type LockedError struct {
	Dir    string
	Holder Holder
}

func (e *LockedError) Error() string {
	who, advice := "another engine", "give each engine its own --data"
	if e.Holder.Command != "" {
		who = fmt.Sprintf("%s (pid %d)", e.Holder.Command, e.Holder.PID)
	}
	if e.Holder.IsDlq() {
		advice = "wait for it to finish, then try again"
	}
	return fmt.Sprintf("data folder %s is in use by %s: its inbox.db is locked; %s", e.Dir, who, advice)
}

// holderFile, in the data folder, says who holds the store.
const holderFile = "holder.json"

// SetHolder records who holds the store, for a process that finds it
// locked to say (LockedError). Close removes the record.
func (s *Store) SetHolder(h Holder) error {
	raw, err := json.Marshal(h)
	if err == nil {
		err = os.WriteFile(filepath.Join(filepath.Dir(s.path), holderFile), raw, 0o600)
	}
	if err == nil {
		s.holderSet = true
	}
	return err
}

// ReplaysSettled is how many dead letters Open removed because a replay
// that a crash (or kill) cut short had already queued their events again:
// left, a later replay would have sent them twice.
func (s *Store) ReplaysSettled() int { return s.replaysSettled }

// JournalDamage is what Open found damaged in the journal: the events
// written there are lost.
func (s *Store) JournalDamage() []JournalDamage { return s.journalDamage }

// StoppedUncleanly reports whether the last engine run on this store
// ended without closing it (killed, crashed, the machine down): what it
// had on the wire then is sent again, so a peer may get it twice.
func (s *Store) StoppedUncleanly() bool { return s.stoppedUncleanly }

// Path is the inbox file.
func (s *Store) Path() string { return s.path }

// Record is one queued event.
type Record struct {
	Seq      uint64
	ID       string // the dedupe id ("" when the event has none)
	Received time.Time
	Attempts int       // delivery attempts made so far
	NotAfter time.Time // zero, or the earliest time of the next attempt
	Payload  []byte    // the event, as the engine encoded it; read-only (it may be the inbox's own copy)
}

// encode: attempts, received, next attempt (unix nanos), id, payload.
func (r *Record) encode() []byte {
	return r.appendEncoded(make([]byte, 0, 3*binary.MaxVarintLen64+len(r.ID)+len(r.Payload)+binary.MaxVarintLen32))
}

func (r *Record) appendEncoded(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	b = binary.AppendVarint(b, r.Received.UnixNano())
	b = binary.AppendVarint(b, unixNano(r.NotAfter))
	b = wire.AppendFieldString(b, r.ID)
	return append(b, r.Payload...)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func decodeRecord(seq uint64, b []byte) (Record, error) {
	d := wire.NewReader(b)
	attempts, received, next := d.Uvarint(), d.Varint(), d.Varint()
	id := d.FieldString()
	if d.Bad() {
		return Record{Seq: seq}, errCorrupt
	}
	r := Record{Seq: seq, Attempts: int(attempts), Received: time.Unix(0, received), ID: id, Payload: append([]byte(nil), d.Rest()...)}
	if next != 0 {
		r.NotAfter = time.Unix(0, next)
	}
	return r, nil
}

var errCorrupt = errors.New("a queued record is damaged")

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// MaxIDLength bounds a dedupe id. Ids are keys of the dedupe index, whose
// store refuses keys over 32 KiB once they are moved in, long after the
// sender heard 2xx; real ids (a Braze dispatch and user id, a SessionM
// event id) are well under 100 bytes.
const MaxIDLength = 1024

// ErrIDTooLong is returned by Append for an id over MaxIDLength.
var ErrIDTooLong = fmt.Errorf("the event id is longer than %d bytes", MaxIDLength)

// NewEvent is an event to append.
type NewEvent struct {
	ID      string // dedupe id; "" for none
	Payload []byte
	// Attempts and NotAfter: for an event already tried elsewhere (a CSV
	// row that goes to its workers straight from the file and needs a
	// retry), the attempts made and the earliest time of the next.
	Attempts int
	NotAfter time.Time
	// Received, when set, is when the event first arrived: a dead letter
	// replayed keeps it, so one that fails again still says when its
	// event came. Zero: now.
	Received time.Time
}

// Appended says what became of one appended event.
type Appended struct {
	Seq       uint64
	Duplicate bool // the id was seen inside the dedupe window; nothing was stored
}

// Append stores events for pipeline durably and returns when they are on
// disk (in the journal). Concurrent calls share one write and one fsync
// (group commit). An event whose id was seen inside the dedupe window is
// not stored again.
func (s *Store) Append(pipeline string, events ...NewEvent) ([]Appended, error) {
	for _, ev := range events {
		if len(ev.ID) > MaxIDLength {
			return nil, ErrIDTooLong
		}
	}
	out, err := s.appendEvents(&appendReq{pipeline: pipeline, events: events})
	if err != nil {
		return nil, fmt.Errorf("storing the event in the inbox: %w", err)
	}
	return out, nil
}

// Seen reports whether an event of pipeline with id is stored, or was
// inside the dedupe window: a repeat that Append would not store again.
// A sender's retry of an event the inbox holds is answered as a repeat
// even while the inbox is full.
func (s *Store) Seen(pipeline, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	s.mu.Lock()
	_, ok := s.pending[pipeline].lookup(id)
	s.mu.Unlock()
	if ok {
		return true, nil
	}
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		_, ok = s.seenInBolt(tx, pipeline, id, now)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading the inbox's dedupe index: %w", err)
	}
	return ok, nil
}

// SeenWithPrefix calls fn with the id of each event of pipeline still
// queued, or seen inside the dedupe window, whose id starts with prefix,
// in no set order and maybe twice: the rows of a CSV file an earlier run
// moved to the inbox (their ids are the file's hash, a colon and the row
// number). An id stays in the dedupe index while its event is queued,
// past the window too (PruneSeen keeps it): a restart after a weekend
// found such a row nowhere, and sent it from its file as well (a review).
// It reads only the ids with the prefix: the whole queue, at each import,
// was 230 ms and 76 MB for a million queued events (a review).
func (s *Store) SeenWithPrefix(pipeline, prefix string, fn func(id string)) error {
	s.mu.Lock()
	var pending []string
	if pq := s.pending[pipeline]; pq != nil {
		for id := range pq.ids {
			if strings.HasPrefix(id, prefix) {
				pending = append(pending, id)
			}
		}
	}
	s.mu.Unlock()
	for _, id := range pending {
		fn(id)
	}
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		seen := tx.Bucket(seenBucket(pipeline))
		if seen == nil {
			return nil
		}
		q := tx.Bucket(queueBucket(pipeline))
		c := seen.Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			if len(v) != 16 {
				continue
			}
			inWindow := now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) < s.window
			if inWindow || q != nil && q.Get(v[8:]) != nil {
				fn(string(k))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the inbox's dedupe index: %w", err)
	}
	return nil
}

// seenInBolt looks id up in pipeline's dedupe index: the seq it was
// stored under, if it was seen inside the window.
func (s *Store) seenInBolt(tx *bolt.Tx, pipeline, id string, now time.Time) (uint64, bool) {
	seen := tx.Bucket(seenBucket(pipeline))
	if seen == nil {
		return 0, false
	}
	v := seen.Get([]byte(id))
	if len(v) != 16 || now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) >= s.window {
		return 0, false
	}
	return binary.BigEndian.Uint64(v[8:]), true
}

// ReadAfter returns up to max queued events of pipeline whose seq is above
// after, in arrival order: the engine feeds its workers from the disk a
// window at a time, so memory stays flat however deep the inbox grows.
// ReadAfter(p, 0, math.MaxInt) is everything a restarted engine must
// still deliver.
func (s *Store) ReadAfter(pipeline string, after uint64, max int) ([]Record, error) {
	// The journalled events first: one the committer moves into bbolt
	// meanwhile is then found in both, never in neither.
	var journalled []Record
	s.mu.Lock()
	if pq := s.pending[pipeline]; pq != nil {
		// in seq order: the one append loop takes seqs and adds entries
		es := pq.entries
		from := sort.Search(len(es), func(i int) bool { return es[i].rec.Seq > after })
		for _, e := range es[from:min(len(es), from+max)] {
			journalled = append(journalled, e.rec)
		}
	}
	s.mu.Unlock()
	var stored []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(queueBucket(pipeline))
		if q == nil {
			return nil
		}
		c := q.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(stored) < max; k, v = c.Next() {
			r, err := decodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			stored = append(stored, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the inbox of %s: %w", pipeline, err)
	}
	return mergeBySeq(stored, journalled, max), nil
}

// mergeBySeq merges two seq-ordered lists, up to max records; a seq in
// both is taken from stored, which has its latest attempts.
func mergeBySeq(stored, journalled []Record, max int) []Record {
	if len(journalled) == 0 {
		return stored
	}
	out := make([]Record, 0, min(max, len(stored)+len(journalled)))
	i, j := 0, 0
	for len(out) < max && (i < len(stored) || j < len(journalled)) {
		switch {
		case j == len(journalled) || (i < len(stored) && stored[i].Seq < journalled[j].Seq):
			out = append(out, stored[i])
			i++
		case i == len(stored) || journalled[j].Seq < stored[i].Seq:
			out = append(out, journalled[j])
			j++
		default:
			out = append(out, stored[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// Pipelines lists the pipelines that have events queued.
func (s *Store) Pipelines() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.depth))
	for p, n := range s.depth {
		if n > 0 {
			out[p] = n
		}
	}
	return out
}

// LastSeqs is, per pipeline, the last seq given out so far: the events
// queued before the call have seqs up to it.
func (s *Store) LastSeqs() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.lastSeq))
	for p, seq := range s.lastSeq {
		out[p] = seq
	}
	return out
}

// Depth is how many events of pipeline are queued.
func (s *Store) Depth(pipeline string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depth[pipeline]
}

// Ack removes delivered events.
func (s *Store) Ack(pipeline string, seqs ...uint64) error {
	removed := 0
	ack := &ackWrite{pipeline: pipeline, seqs: seqs}
	err := s.groupWrite(ack, func(tx *bolt.Tx) error {
		if err := s.faulty(FaultAck); err != nil {
			return err
		}
		removed = len(ack.unmoved) // never put into bbolt
		var c *bolt.Cursor
		if q := tx.Bucket(queueBucket(pipeline)); q != nil {
			c = q.Cursor()
		}
		for _, seq := range seqs {
			if ack.unmoved[seq] {
				continue
			}
			if c == nil {
				continue
			}
			// One search per event: a Get, then a Delete, would make two.
			k := seqKey(seq)
			if at, _ := c.Seek(k); !bytes.Equal(at, k) {
				continue
			}
			if err := c.Delete(); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing delivered events from the inbox: %w", err)
	}
	s.mu.Lock()
	s.depth[pipeline] -= removed
	s.mu.Unlock()
	return nil
}

// Retry records an attempt that failed and when the next may be made, so
// a restarted engine keeps counting and does not retry early.
func (s *Store) Retry(pipeline string, seq uint64, attempts int, next time.Time) error {
	err := s.group(func(tx *bolt.Tx) error {
		q := tx.Bucket(queueBucket(pipeline))
		if q == nil {
			return nil
		}
		v := q.Get(seqKey(seq))
		if v == nil {
			return nil
		}
		r, err := decodeRecord(seq, v)
		if err != nil {
			return err
		}
		r.Attempts, r.NotAfter = attempts, next
		return q.Put(seqKey(seq), r.encode())
	})
	if err != nil {
		return fmt.Errorf("recording a retry in the inbox: %w", err)
	}
	return nil
}

// pruneBatch bounds the ids one transaction forgets. Ids are random, so
// nearly every one forgotten dirties a leaf page of its own: an hour's
// worth of a busy pipeline's ids in one transaction took 133 MiB and held
// every other change (acks, retries, checkpoints) for most of a second.
const pruneBatch = 5000

// pruneScan bounds the ids one read transaction looks at while it finds
// the old ones: a long read holds off a writer that must grow the file.
const pruneScan = 100_000

// PruneSeen forgets ids older than the dedupe window, but those of events
// still queued; it returns how many.
// It finds them in read transactions and forgets them a batch at a time,
// each batch a change of its own through the committer, so the changes
// that wait get their turn in between and memory stays bounded however
// many ids are old.
func (s *Store) PruneSeen() (int, error) {
	cutoff := s.now().Add(-s.window).UnixNano()
	// An empty change moves the ids journalled so far into bbolt, where
	// the scan finds them.
	if err := s.group(func(*bolt.Tx) error { return nil }); err != nil {
		return 0, fmt.Errorf("pruning old event ids: %w", err)
	}
	var names [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if bytes.HasPrefix(name, []byte("seen/")) {
				names = append(names, bytes.Clone(name))
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("pruning old event ids: %w", err)
	}
	pruned := 0
	for _, name := range names {
		n, err := s.pruneBucket(name, cutoff)
		pruned += n
		if err != nil {
			return pruned, fmt.Errorf("pruning old event ids: %w", err)
		}
	}
	return pruned, nil
}

// pruneBucket forgets the ids of one seen bucket whose time is before
// cutoff.
func (s *Store) pruneBucket(name []byte, cutoff int64) (int, error) {
	pruned := 0
	var after []byte // the last id looked at; nil before the first
	for {
		old, last, err := s.findOld(name, after, cutoff)
		if err != nil {
			return pruned, err
		}
		if len(old) > 0 {
			n := 0
			err := s.group(func(tx *bolt.Tx) error {
				n = 0 // the committer may run this twice
				b := tx.Bucket(name)
				if b == nil {
					return nil
				}
				c := b.Cursor()
				for _, k := range old {
					// Looked at again: an id seen again since the scan has
					// a new time, and must be kept.
					if at, v := c.Seek(k); bytes.Equal(at, k) && seenBefore(v, cutoff) {
						if err := c.Delete(); err != nil {
							return err
						}
						n++
					}
				}
				return nil
			})
			if err != nil {
				return pruned, err
			}
			pruned += n
			if s.prunedBatch != nil {
				s.prunedBatch()
			}
		}
		if last == nil {
			return pruned, nil
		}
		after = last
	}
}

// findOld returns, in key order, up to pruneBatch ids of the bucket name
// that come after the id after, were seen before cutoff and whose events
// are not queued, and the last
// id it looked at (nil when it reached the end).
func (s *Store) findOld(name, after []byte, cutoff int64) (old [][]byte, last []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		// An id whose event is still queued stays: SeenWithPrefix finds
		// an earlier run's CSV rows by it.
		q := tx.Bucket(queueBucket(strings.TrimPrefix(string(name), "seen/")))
		c := b.Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for scanned := 1; k != nil; k, v = c.Next() {
			if seenBefore(v, cutoff) && (q == nil || q.Get(v[8:]) == nil) {
				old = append(old, bytes.Clone(k))
			}
			if len(old) == s.pruneBatch || scanned == pruneScan {
				last = bytes.Clone(k)
				return nil
			}
			scanned++
		}
		return nil
	})
	return old, last, err
}

// seenBefore reports whether a seen bucket's value (time, seq) has a time
// before cutoff.
func seenBefore(v []byte, cutoff int64) bool {
	return len(v) == 16 && int64(binary.BigEndian.Uint64(v)) < cutoff
}

// Checkpoint returns the value stored under key (CSV files: how far an
// import got).
func (s *Store) Checkpoint(key string, into any) (bool, error) {
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(checkpointsBucket).Get([]byte(key)); v != nil {
			raw = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil || raw == nil {
		return false, err
	}
	return true, json.Unmarshal(raw, into)
}

// SetCheckpoint stores v under key; nil deletes it.
func (s *Store) SetCheckpoint(key string, v any) error {
	return s.group(func(tx *bolt.Tx) error {
		if err := s.faulty(FaultCheckpoint); err != nil {
			return err
		}
		b := tx.Bucket(checkpointsBucket)
		if v == nil {
			return b.Delete([]byte(key))
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), raw)
	})
}
