package inbox

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Two goroutines write: the appender puts accepted events in the journal
// (one write and one sync for all the appends waiting), and the committer
// runs every bbolt change (acks, retries, dead letters, checkpoints) in
// shared transactions, moving the journalled events into bbolt first.
// Neither gathers for a fixed delay: each takes whatever queued while its
// previous write was syncing, so a lone webhook pays one sync, and under
// load the groups grow by themselves.

const (
	// maxGroup and maxGroupBytes bound how much shares one write, so the
	// wait of everyone in it (and the journal's buffer) stays small under a
	// flood.
	maxGroup      = 2000
	maxGroupBytes = 8 << 20
	// The committer moves journalled events into bbolt with the next change
	// (acks come often while events are delivered), and otherwise once they
	// are this old or this many, so the journal and the memory that mirrors
	// it stay small when nothing is delivered (a paused connection).
	applyEvery = 200 * time.Millisecond
	applyCount = 20000
	applyBytes = 16 << 20
)

var errClosed = errors.New("the inbox is closed")

// appendReq is one Append call.
type appendReq struct {
	pipeline string
	events   []NewEvent
	// replay skips the dedupe check: a dead letter sent again on purpose.
	replay bool
	out    []Appended
	err    error
	done   chan struct{}
}

// write is one caller's bbolt change, run inside a shared transaction.
type write struct {
	fn   func(*bolt.Tx) error
	ack  *ackWrite // set for Ack
	done chan error
}

// ackWrite is what an Ack removes. When deliveries keep up, events are
// often delivered before the committer has moved them from the journal
// into bbolt; those the same transaction would move and then delete are
// not moved at all (only their dedupe ids are), which saves bbolt a put,
// a delete and the pages they dirty for each event.
type ackWrite struct {
	pipeline string
	seqs     []uint64
	unmoved  map[uint64]bool // set by the committer: acked while still journalled
}

// eventRef names one event of the inbox.
type eventRef struct {
	pipeline string
	seq      uint64
}

// pendingQueue is a pipeline's journalled events not yet in bbolt, in seq
// order (so in epoch order), and their dedupe ids.
type pendingQueue struct {
	entries []journalled
	ids     map[string]uint64
}

func (s *Store) appendEvents(req *appendReq) ([]Appended, error) {
	for _, ev := range req.events {
		// Refused here, before anything is acknowledged: reading the
		// journal back stops at an entry over maxJournalEntry, which would
		// lose it and every entry after it.
		if n := len(ev.Payload) + len(ev.ID) + len(req.pipeline); n > maxJournalEntry-journalEntrySlack {
			return nil, fmt.Errorf("the event takes %d bytes; the inbox stores at most %d MiB per event", n, (maxJournalEntry-journalEntrySlack)>>20)
		}
	}
	req.done = make(chan struct{})
	select {
	case s.appends <- req:
	case <-s.closing:
		return nil, errClosed
	}
	select {
	case <-req.done:
	case <-s.appenderDone:
		// The appender answers every request it took before it stops.
		select {
		case <-req.done:
		default:
			return nil, errClosed
		}
	}
	return req.out, req.err
}

func (s *Store) appendLoop() {
	defer close(s.appenderDone)
	var group []*appendReq
	for {
		select {
		case req := <-s.appends:
			group = append(group[:0], req)
		case <-s.closing:
			for {
				select {
				case req := <-s.appends:
					s.appendGroup([]*appendReq{req})
				default:
					return
				}
			}
		}
		events, size := len(group[0].events), group[0].size()
	gather:
		for events < maxGroup && size < maxGroupBytes {
			select {
			case req := <-s.appends:
				group = append(group, req)
				events += len(req.events)
				size += req.size()
			default:
				break gather
			}
		}
		s.appendGroup(group)
	}
}

// appendGroup journals the new events of group and answers each request.
func (s *Store) appendGroup(group []*appendReq) {
	now := s.now()
	s.journalMu.Lock()
	defer s.journalMu.Unlock()

	// Repeats: first among the journalled events, then in bbolt. In that
	// order: the committer drops events from pending only after bbolt has
	// them, so an id is always found in one of the two.
	type idKey struct{ pipeline, id string }
	groupIDs := map[idKey]uint64{}
	var toCheck []idKey
	s.mu.Lock()
	for _, req := range group {
		req.out = make([]Appended, len(req.events))
		if req.replay {
			continue
		}
		for i, ev := range req.events {
			if ev.ID == "" {
				continue
			}
			if seq, ok := s.pending[req.pipeline].lookup(ev.ID); ok {
				req.out[i] = Appended{Seq: seq, Duplicate: true}
			} else {
				toCheck = append(toCheck, idKey{req.pipeline, ev.ID})
			}
		}
	}
	s.mu.Unlock()
	inBolt := map[idKey]uint64{}
	if len(toCheck) > 0 {
		err := s.db.View(func(tx *bolt.Tx) error {
			for _, k := range toCheck {
				if seq, ok := s.seenInBolt(tx, k.pipeline, k.id, now); ok {
					inBolt[k] = seq
				}
			}
			return nil
		})
		if err != nil {
			s.failAppends(group, err)
			return
		}
	}

	var entries []journalled
	s.mu.Lock()
	for _, req := range group {
		for i, ev := range req.events {
			if req.out[i].Duplicate {
				continue
			}
			k := idKey{req.pipeline, ev.ID}
			if ev.ID != "" && !req.replay {
				seq, ok := inBolt[k]
				if !ok {
					seq, ok = groupIDs[k]
				}
				if ok {
					req.out[i] = Appended{Seq: seq, Duplicate: true}
					continue
				}
			}
			s.lastSeq[req.pipeline]++
			seq := s.lastSeq[req.pipeline]
			if ev.ID != "" {
				groupIDs[k] = seq
			}
			req.out[i] = Appended{Seq: seq}
			received := ev.Received
			if received.IsZero() {
				received = now
			}
			entries = append(entries, journalled{pipeline: req.pipeline, rec: Record{
				Seq: seq, ID: ev.ID, Received: received, Payload: append([]byte(nil), ev.Payload...),
				Attempts: ev.Attempts, NotAfter: ev.NotAfter,
			}})
		}
	}
	s.mu.Unlock()

	if len(entries) > 0 {
		err := s.faulty(FaultAppend)
		if err == nil {
			err = s.journal.write(entries)
		}
		if err != nil {
			// The seqs taken stay unused; a gap is harmless.
			s.failAppends(group, err)
			return
		}
	}
	s.mu.Lock()
	for _, e := range entries {
		pq := s.pending[e.pipeline]
		if pq == nil {
			pq = &pendingQueue{ids: map[string]uint64{}}
			s.pending[e.pipeline] = pq
		}
		pq.entries = append(pq.entries, e)
		if e.rec.ID != "" {
			pq.ids[e.rec.ID] = e.rec.Seq
		}
		s.depth[e.pipeline]++
		s.pendingCount++
		s.pendingBytes += len(e.rec.Payload) + len(e.rec.ID)
	}
	full := s.pendingCount >= applyCount || s.pendingBytes >= applyBytes
	s.mu.Unlock()
	for _, req := range group {
		close(req.done)
	}
	if full {
		select {
		case s.applyNow <- struct{}{}:
		default:
		}
	}
}

func (req *appendReq) size() int {
	n := 0
	for _, ev := range req.events {
		n += len(ev.Payload) + len(ev.ID)
	}
	return n
}

func (s *Store) failAppends(group []*appendReq, err error) {
	for _, req := range group {
		req.out, req.err = nil, err
		close(req.done)
	}
}

func (pq *pendingQueue) lookup(id string) (uint64, bool) {
	if pq == nil {
		return 0, false
	}
	seq, ok := pq.ids[id]
	return seq, ok
}

// group runs fn in a bbolt transaction shared with every other change that
// is waiting, after the journalled events, and returns when that
// transaction is on disk. fn may run more than once (when another change of
// its group fails, each is run again on its own), so it must set its
// results afresh each time.
func (s *Store) group(fn func(*bolt.Tx) error) error { return s.groupWrite(nil, fn) }

// groupWrite is group for an Ack, which says what it removes.
func (s *Store) groupWrite(ack *ackWrite, fn func(*bolt.Tx) error) error {
	w := write{fn: fn, ack: ack, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.closing:
		return errClosed
	}
	select {
	case err := <-w.done:
		return err
	case <-s.committerDone:
		select {
		case err := <-w.done:
			return err
		default:
			return errClosed
		}
	}
}

func (s *Store) commitLoop() {
	defer close(s.committerDone)
	tick := time.NewTicker(applyEvery)
	defer tick.Stop()
	pending := make([]write, 0, maxGroup)
	for {
		select {
		case w := <-s.writes:
			pending = append(pending[:0], w)
		case <-s.applyNow:
			s.commitGroup(nil)
			continue
		case <-tick.C:
			s.mu.Lock()
			idle := s.pendingCount == 0
			s.mu.Unlock()
			if !idle {
				s.commitGroup(nil)
			}
			continue
		case <-s.closing:
			// Appends still queued are journalled first, then everything
			// goes into bbolt, so the journal is empty when the file closes.
			<-s.appenderDone
			for {
				select {
				case w := <-s.writes:
					s.commitGroup([]write{w})
				default:
					s.commitGroup(nil)
					return
				}
			}
		}
	gather:
		for len(pending) < maxGroup {
			select {
			case w := <-s.writes:
				pending = append(pending, w)
			default:
				break gather
			}
		}
		s.commitGroup(pending)
	}
}

// commitGroup moves the journalled events into bbolt and runs the group's
// changes, in one transaction.
func (s *Store) commitGroup(group []write) {
	// A move that failed earlier goes first, on its own: a change may be
	// about an event of the epoch after it, which can only be sealed and
	// moved once that one is in bbolt. Until then every change fails (the
	// acker tries again), rather than running without its event.
	if s.backlog() {
		sealed, moving := s.seal() // the failed epoch; nothing rotates while it waits
		if err := s.moveJournalled(sealed, moving); err != nil {
			for _, w := range group {
				w.done <- err
			}
			return
		}
	}
	sealed, moving := s.seal()
	unmoved := markUnmoved(group, moving)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.applyJournalled(tx, sealed, moving, unmoved); err != nil {
			return err
		}
		for _, w := range group {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.applied(sealed)
	} else if len(group) > 0 {
		// A change failed and took the others down with it. Move the
		// events on their own, then give each change its own transaction,
		// so only the failing one hears about it. Every event is moved
		// then, and the acks delete theirs.
		markUnmoved(group, nil)
		err = s.moveJournalled(sealed, moving)
		if err == nil {
			for _, w := range group {
				w.done <- s.db.Update(w.fn)
			}
			return
		}
	}
	for _, w := range group {
		w.done <- err
	}
}

// markUnmoved marks, in each ack of group, the events it removes that are
// among moving, and returns them: the transaction that moves the others
// skips these. With no moving events it clears the marks.
func markUnmoved(group []write, moving []journalled) map[eventRef]bool {
	for _, w := range group {
		if w.ack != nil {
			w.ack.unmoved = nil
		}
	}
	if len(moving) == 0 {
		return nil
	}
	// The first ack to list an event claims it, so each is counted as
	// removed once.
	claim := map[eventRef]*ackWrite{}
	for _, w := range group {
		if w.ack == nil {
			continue
		}
		for _, seq := range w.ack.seqs {
			if ref := (eventRef{w.ack.pipeline, seq}); claim[ref] == nil {
				claim[ref] = w.ack
			}
		}
	}
	var unmoved map[eventRef]bool
	for _, e := range moving {
		ref := eventRef{e.pipeline, e.rec.Seq}
		ack := claim[ref]
		if ack == nil {
			continue
		}
		if unmoved == nil {
			unmoved = map[eventRef]bool{}
		}
		unmoved[ref] = true
		if ack.unmoved == nil {
			ack.unmoved = map[uint64]bool{}
		}
		ack.unmoved[e.rec.Seq] = true
	}
	return unmoved
}

// backlog reports whether a sealed epoch older than the one being written
// is still not in bbolt (its move failed).
func (s *Store) backlog() bool {
	s.journalMu.Lock()
	defer s.journalMu.Unlock()
	return s.appliedEpoch < s.journal.epoch-1
}

// seal ends the journal epoch being written, when it holds events and the
// one before it is in bbolt, and returns the newest epoch that is not in
// bbolt yet with the events to move. An epoch whose move failed stays
// sealed and is tried again; its file is not reused until then.
func (s *Store) seal() (uint64, []journalled) {
	if s.keepJournal.Load() {
		return s.appliedEpoch, nil
	}
	s.journalMu.Lock()
	if s.journal.off > 0 && s.appliedEpoch == s.journal.epoch-1 {
		s.journal.start(s.journal.epoch + 1)
	}
	sealed := s.journal.epoch - 1
	s.journalMu.Unlock()
	if sealed == s.appliedEpoch {
		return sealed, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var moving []journalled
	for _, pq := range s.pending {
		for _, e := range pq.entries {
			if e.epoch > sealed {
				break
			}
			moving = append(moving, e)
		}
	}
	return sealed, moving
}

// moveJournalled moves the sealed epoch's events into bbolt in a
// transaction of their own.
func (s *Store) moveJournalled(sealed uint64, moving []journalled) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return s.applyJournalled(tx, sealed, moving, nil) })
	if err == nil {
		s.applied(sealed)
	}
	return err
}

// applyJournalled puts the moving events in their queues (but for those
// acked in the same transaction) and their ids in the dedupe index, and
// records that the sealed epoch is applied.
func (s *Store) applyJournalled(tx *bolt.Tx, sealed uint64, moving []journalled, acked map[eventRef]bool) error {
	if sealed == s.appliedEpoch {
		return nil
	}
	if err := putEvents(tx, moving, acked); err != nil {
		return err
	}
	return putApplied(tx, sealed)
}

func putEvents(tx *bolt.Tx, events []journalled, skip map[eventRef]bool) error {
	for _, e := range events {
		q, err := tx.CreateBucketIfNotExists(queueBucket(e.pipeline))
		if err != nil {
			return err
		}
		if !skip[eventRef{e.pipeline, e.rec.Seq}] {
			if err := q.Put(seqKey(e.rec.Seq), e.rec.encode()); err != nil {
				return err
			}
		}
		if e.rec.Seq > q.Sequence() {
			// The next Open starts numbering after it.
			if err := q.SetSequence(e.rec.Seq); err != nil {
				return err
			}
		}
		if e.rec.ID == "" {
			continue
		}
		seen, err := tx.CreateBucketIfNotExists(seenBucket(e.pipeline))
		if err != nil {
			return err
		}
		v := seenValue(e.rec.Received, e.rec.Seq)
		if err := seen.Put([]byte(e.rec.ID), v[:]); err != nil {
			return err
		}
	}
	return nil
}

// applied drops the moved events from memory once bbolt has them.
func (s *Store) applied(sealed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sealed == s.appliedEpoch {
		return
	}
	s.appliedEpoch = sealed
	for name, pq := range s.pending {
		n := 0
		for n < len(pq.entries) && pq.entries[n].epoch <= sealed {
			e := pq.entries[n]
			if e.rec.ID != "" && pq.ids[e.rec.ID] == e.rec.Seq {
				delete(pq.ids, e.rec.ID)
			}
			s.pendingCount--
			s.pendingBytes -= len(e.rec.Payload) + len(e.rec.ID)
			n++
		}
		if n == len(pq.entries) {
			delete(s.pending, name)
			continue
		}
		pq.entries = append(pq.entries[:0:0], pq.entries[n:]...)
	}
}
