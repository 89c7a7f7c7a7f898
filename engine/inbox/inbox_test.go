package inbox

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t testing.TB, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAppendPendingAckSurviveReopen(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	got, err := s.Append("f1", NewEvent{ID: "a", Payload: []byte(`{"n":1}`)}, NewEvent{Payload: []byte(`{"n":2}`)}, NewEvent{ID: "c", Payload: []byte(`{"n":3}`)})
	if err != nil || len(got) != 3 || got[0].Seq != 1 || got[2].Seq != 3 {
		t.Fatalf("append: %+v %v", got, err)
	}
	if err := s.Ack("f1", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Retry("f1", 3, 2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s.Depth("f1") != 2 {
		t.Fatalf("depth %d", s.Depth("f1"))
	}
	s.Close()

	s = open(t, dir, c)
	defer s.Close()
	if s.Depth("f1") != 2 || s.Pipelines()["f1"] != 2 {
		t.Fatalf("depth after reopen %d", s.Depth("f1"))
	}
	recs, err := s.ReadAfter("f1", 0, math.MaxInt)
	if err != nil || len(recs) != 2 {
		t.Fatalf("pending %+v %v", recs, err)
	}
	if recs[0].ID != "a" || string(recs[0].Payload) != `{"n":1}` || !recs[0].Received.Equal(t0) || recs[0].Attempts != 0 {
		t.Fatalf("first %+v", recs[0])
	}
	if recs[1].Seq != 3 || recs[1].Attempts != 2 || !recs[1].NotAfter.Equal(t0.Add(time.Minute)) {
		t.Fatalf("retried record %+v: attempts and next time must survive a restart", recs[1])
	}
	window, err := s.ReadAfter("f1", 1, 10)
	if err != nil || len(window) != 1 || window[0].Seq != 3 {
		t.Fatalf("read after 1: %+v %v", window, err)
	}
	if window, _ := s.ReadAfter("f1", 0, 1); len(window) != 1 || window[0].Seq != 1 {
		t.Fatalf("read after 0, max 1: %+v", window)
	}
	// Sequence numbers keep growing after a restart.
	more, _ := s.Append("f1", NewEvent{Payload: []byte("x")})
	if more[0].Seq != 4 {
		t.Fatalf("seq after reopen %d", more[0].Seq)
	}
	if recs, _ := s.ReadAfter("other", 0, math.MaxInt); len(recs) != 0 {
		t.Fatal("an unknown pipeline has events")
	}
}

// TestAppendTried: an event appended with its attempts and next time (a
// CSV row that failed on its way from the file) keeps both, in the
// journal and once moved into bbolt.
func TestAppendTried(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	next := t0.Add(90 * time.Second)
	if _, err := s.Append("f2", NewEvent{ID: "h:7", Payload: []byte("row"), Attempts: 3, NotAfter: next}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		recs, err := s.ReadAfter("f2", 0, math.MaxInt)
		if err != nil || len(recs) != 1 || recs[0].Attempts != 3 || !recs[0].NotAfter.Equal(next) || recs[0].ID != "h:7" {
			t.Fatalf("%s: %+v %v; want attempts 3, next %v", when, recs, err, next)
		}
	}
	check("journalled")
	s.Close()
	s = open(t, dir, c)
	defer s.Close()
	check("after a restart")
}

func TestDedupeWindow(t *testing.T) {
	c := &clock{t: t0}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	first, _ := s.Append("f4", NewEvent{ID: "evt-1", Payload: []byte("1")})
	again, _ := s.Append("f4", NewEvent{ID: "evt-1", Payload: []byte("1 again")})
	if !again[0].Duplicate || again[0].Seq != first[0].Seq || s.Depth("f4") != 1 {
		t.Fatalf("a repeat inside the window was stored: %+v depth %d", again, s.Depth("f4"))
	}
	// Dedupe holds after delivery too: a Braze retry of a delivered event
	// must not be sent twice.
	s.Ack("f4", first[0].Seq)
	if again, _ = s.Append("f4", NewEvent{ID: "evt-1", Payload: []byte("1")}); !again[0].Duplicate {
		t.Fatal("a repeat of a delivered event was stored")
	}
	// Ids are per pipeline.
	other, _ := s.Append("f1", NewEvent{ID: "evt-1", Payload: []byte("1")})
	if other[0].Duplicate {
		t.Fatal("an id of another pipeline counted as a repeat")
	}
	c.advance(DefaultDedupeWindow + time.Second)
	if later, _ := s.Append("f4", NewEvent{ID: "evt-1", Payload: []byte("1")}); later[0].Duplicate {
		t.Fatal("an id older than the window still counts as a repeat")
	}
	// The f1 event is still queued: its id stays, for SeenWithPrefix.
	if n, err := s.PruneSeen(); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v), want none: f4's id is new, f1's event is queued", n, err)
	}
	var found []string
	s.SeenWithPrefix("f1", "evt-", func(id string) { found = append(found, id) })
	if len(found) != 1 || found[0] != "evt-1" {
		t.Errorf("SeenWithPrefix found %v past the window; want the queued evt-1", found)
	}
	s.Ack("f1", other[0].Seq)
	n, err := s.PruneSeen()
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the f1 id only, once its event is delivered", n, err)
	}
	found = nil
	s.SeenWithPrefix("f1", "evt-", func(id string) { found = append(found, id) })
	if len(found) != 0 {
		t.Errorf("SeenWithPrefix found %v, which is neither queued nor inside the window", found)
	}
}

// seenCount is how many ids the dedupe index of pipeline holds in bbolt.
func seenCount(t *testing.T, s *Store, pipeline string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(seenBucket(pipeline)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A prune forgets old ids a batch per transaction, so however many are
// old it holds the writer, and the memory of the pages it dirties, for
// one batch at a time; the ids seen inside the window stay.
func TestPruneSeenInBatches(t *testing.T) {
	c := &clock{t: t0}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	const old, young, batch = 1000, 300, 64
	s.pruneBatch = batch
	var olds, youngs []NewEvent
	for i := range old {
		olds = append(olds, ev(fmt.Sprintf("%04d-old", i), "o"))
	}
	for i := range young { // spread among the old ones, as random ids are
		youngs = append(youngs, ev(fmt.Sprintf("%04d-young", i*old/young), "y"))
	}
	mustDeliver(t, s, "f4", olds...)
	c.advance(time.Hour)
	mustDeliver(t, s, "f4", youngs...)
	c.advance(DefaultDedupeWindow - 30*time.Minute) // the old ones are 30 minutes past the window
	if err := s.group(func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := seenCount(t, s, "f4"); n != old+young {
		t.Fatalf("%d ids in bbolt before the prune, want %d", n, old+young)
	}

	batches, before := 0, old+young
	s.prunedBatch = func() {
		batches++
		after := seenCount(t, s, "f4")
		if before-after > batch {
			t.Errorf("batch %d: one transaction forgot %d ids, want at most %d", batches, before-after, batch)
		}
		before = after
	}
	n, err := s.PruneSeen()
	if err != nil || n != old {
		t.Fatalf("pruned %d (%v), want %d", n, err, old)
	}
	if batches < old/batch {
		t.Errorf("%d batches forgot %d ids, want at least %d", batches, old, old/batch)
	}
	for _, got := range mustAppend(t, s, "f4", youngs...) {
		if !got.Duplicate {
			t.Fatal("an id seen inside the window was forgotten")
		}
	}
	for _, got := range mustAppend(t, s, "f4", olds[:10]...) {
		if got.Duplicate {
			t.Fatal("an id older than the window is still remembered")
		}
	}
}

// An old id seen again after the prune found it, before the prune's
// transaction forgets it, has a new time and is kept.
func TestPruneSeenKeepsAnIDSeenAgain(t *testing.T) {
	c := &clock{t: t0}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	s.pruneBatch = 1
	mustDeliver(t, s, "f4", ev("a", "1"), ev("b", "2"))
	c.advance(DefaultDedupeWindow + time.Second)
	s.prunedBatch = func() {
		s.prunedBatch = nil
		// Journalled: the prune's next scan still finds b's old time in
		// bbolt, and its transaction moves the new one in first.
		if got := mustAppend(t, s, "f4", ev("b", "2 again")); got[0].Duplicate {
			t.Error("b, past the window, was taken for a repeat")
		}
	}
	n, err := s.PruneSeen()
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want a only", n, err)
	}
	if got := mustAppend(t, s, "f4", ev("b", "2 once more")); !got[0].Duplicate {
		t.Fatal("b, seen again inside the window, was forgotten")
	}
}

func TestDeadLetters(t *testing.T) {
	c := &clock{t: t0}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	got, _ := s.Append("f4", NewEvent{ID: "e1", Payload: []byte(`{"a":1}`)}, NewEvent{ID: "e2", Payload: []byte(`{"a":2}`)})
	id, err := s.DeadLetter("f4", got[0].Seq, DeadLetter{Version: "v1", EventID: "e1", Event: []byte(`{"a":1}`), Reason: "rejected", Error: "braze answered HTTP 400",
		Response: &GotResponse{Status: 400, Excerpt: `{"message":"Invalid Campaign ID"}`}, Attempts: 1})
	if err != nil || id != 1 {
		t.Fatal(id, err)
	}
	c.advance(time.Hour)
	s.DeadLetter("f1", 0, DeadLetter{Reason: "csv_row", Error: "row 3: wrong number of fields"})
	if s.Depth("f4") != 1 {
		t.Fatalf("depth %d: a dead-lettered event must leave the queue", s.Depth("f4"))
	}
	all, _ := s.DeadLetters(DeadFilter{})
	if len(all) != 2 || all[0].Pipeline != "f4" || !all[0].At.Equal(t0) || all[0].Response.Status != 400 {
		t.Fatalf("dead letters %+v", all)
	}
	for _, tt := range []struct {
		f    DeadFilter
		want int
	}{
		{DeadFilter{Pipeline: "f1"}, 1},
		{DeadFilter{Reason: "rejected"}, 1},
		{DeadFilter{Since: t0.Add(time.Minute)}, 1},
		{DeadFilter{Limit: 1}, 1},
		{DeadFilter{Pipeline: "f9"}, 0},
	} {
		if got, _ := s.DeadLetters(tt.f); len(got) != tt.want {
			t.Errorf("%+v: %d dead letters, want %d", tt.f, len(got), tt.want)
		}
	}
	pipeline, seq, err := s.Requeue(1)
	if err != nil || pipeline != "f4" || seq != 3 {
		t.Fatalf("requeue: %s %d %v", pipeline, seq, err)
	}
	recs, _ := s.ReadAfter("f4", 0, math.MaxInt)
	if len(recs) != 2 || recs[1].ID != "e1" || string(recs[1].Payload) != `{"a":1}` || recs[1].Attempts != 0 {
		t.Fatalf("requeued %+v", recs)
	}
	if _, err := s.GetDeadLetter(1); !errors.Is(err, ErrNoSuchDeadLetter) {
		t.Fatal("a requeued dead letter is still there")
	}
	if err := s.DropDeadLetter(2); err != nil {
		t.Fatal(err)
	}
	if err := s.DropDeadLetter(2); !errors.Is(err, ErrNoSuchDeadLetter) {
		t.Fatal("dropping twice")
	}
}

// A replay asked for twice at once (a double click, a retried request)
// queues the event once; the other replay, and a drop racing them, find
// no dead letter.
func TestConcurrentReplaysQueueOnce(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	got, _ := s.Append("f1", NewEvent{ID: "a", Payload: []byte(`{"n":1}`)})
	id, err := s.DeadLetter("f1", got[0].Seq, DeadLetter{EventID: "a", Event: []byte(`{"n":1}`), Reason: "rejected"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var replayed, dropped atomic.Int32
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i == 0 {
				if err = s.DropDeadLetter(id); err == nil {
					dropped.Add(1)
				}
			} else if _, _, err = s.Requeue(id); err == nil {
				replayed.Add(1)
			}
			if err != nil && !errors.Is(err, ErrNoSuchDeadLetter) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	recs, _ := s.ReadAfter("f1", 0, math.MaxInt)
	if replayed.Load()+dropped.Load() != 1 || len(recs) != int(replayed.Load()) {
		t.Fatalf("%d replays and %d drops succeeded, %d events queued; want one of them, and the event queued once if replayed", replayed.Load(), dropped.Load(), len(recs))
	}
}

func TestCheckpoints(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	type progress struct{ Row int }
	var p progress
	if ok, err := s.Checkpoint("csv:x", &p); ok || err != nil {
		t.Fatal("a missing checkpoint was found")
	}
	s.SetCheckpoint("csv:x", progress{41})
	if ok, _ := s.Checkpoint("csv:x", &p); !ok || p.Row != 41 {
		t.Fatalf("checkpoint %+v", p)
	}
	s.SetCheckpoint("csv:x", nil)
	if ok, _ := s.Checkpoint("csv:x", &p); ok {
		t.Fatal("a deleted checkpoint was found")
	}
}

func TestOneEnginePerDataFolder(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, &clock{t: t0})
	defer s.Close()
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another engine") {
		t.Fatalf("second open: %v", err)
	}
	// Who holds it, once it says.
	if err := s.SetHolder(Holder{Command: "engine run", PID: 7, Admin: "127.0.0.1:8079"}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	var locked *LockedError
	if !errors.As(err, &locked) || locked.Holder != (Holder{Command: "engine run", PID: 7, Admin: "127.0.0.1:8079"}) ||
		err.Error() != "data folder "+dir+" is in use by engine run (pid 7): its inbox.db is locked; give each engine its own --data" {
		t.Fatalf("second open: %v", err)
	}
	// engine dlq holds it for a moment only.
	if err := s.SetHolder(Holder{Command: "engine dlq replay", PID: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || err.Error() != "data folder "+dir+" is in use by engine dlq replay (pid 8): its inbox.db is locked; wait for it to finish, then try again" {
		t.Fatalf("second open: %v", err)
	}
}

// A holder's record left by a process killed while it held the folder is
// not taken for the next holder's: it named a dead pid and its admin
// address until the next one wrote its own (a review).
func TestStaleHolderRecordIsRemoved(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, &clock{t: t0})
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, holderFile), []byte(`{"command":"engine run","pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, &clock{t: t0})
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, holderFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dead holder's record is still there: %v", err)
	}
}

// A run that ends without Close (killed) leaves its mark for the next
// engine run to see; a reader such as engine dlq neither sees nor
// clears it.
func TestStoppedUncleanly(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		name        string
		markRunning bool
		killed      bool // ends without clearing its mark, as kill -9 does
		want        bool
	}{
		{"first run", true, false, false},
		{"after a clean stop", true, true, false},
		{"engine dlq after the kill", false, false, false},
		{"the run after the kill", true, false, true},
		{"the run after that", true, false, false},
	}
	for _, step := range steps {
		s, err := Open(dir, Options{MarkRunning: step.markRunning})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := s.StoppedUncleanly(); got != step.want {
			t.Errorf("%s: StoppedUncleanly() = %v, want %v", step.name, got, step.want)
		}
		if step.killed {
			s.markRunning = false // Close then leaves the mark, as a killed process would
		}
		if err := s.Close(); err != nil {
			t.Fatalf("%s: close: %v", step.name, err)
		}
	}
}

func TestDamagedRecord(t *testing.T) {
	for _, b := range [][]byte{nil, {0x80}, {1, 2}, {1, 2, 2, 9, 'a'}} {
		if _, err := decodeRecord(1, b); err == nil {
			t.Errorf("%v decoded", b)
		}
	}
}

// Concurrent appends all land, in one or a few transactions each.
func TestConcurrentAppends(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := s.Append("f1", NewEvent{ID: fmt.Sprintf("%d-%d", g, i), Payload: []byte("x")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recs, _ := s.ReadAfter("f1", 0, math.MaxInt)
	if len(recs) != 800 || s.Depth("f1") != 800 {
		t.Fatalf("%d stored, depth %d, want 800", len(recs), s.Depth("f1"))
	}
}

// BenchmarkAppendParallel measures durable appends (with fsync) from many
// goroutines, as webhook handlers make them.
func BenchmarkAppendParallel(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := []byte(`{"tags":["braze_test","spring_promo"],"ttl":2592000}`)
	b.SetParallelism(32)
	var n int64
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			id := fmt.Sprint(n)
			mu.Unlock()
			if _, err := s.Append("f1", NewEvent{ID: id, Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAckWhileJournalled: events delivered before they reached bbolt are
// not put there, yet their ids still dedupe, the depth drops, and a
// restart neither resends them nor reuses their seqs.
func TestAckWhileJournalled(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	got, err := s.Append("f1", NewEvent{ID: "a", Payload: []byte(`{"n":1}`)}, NewEvent{ID: "b", Payload: []byte(`{"n":2}`)}, NewEvent{ID: "c", Payload: []byte(`{"n":3}`)})
	if err != nil || len(got) != 3 {
		t.Fatalf("append: %+v %v", got, err)
	}
	if err := s.Ack("f1", 1, 2, 2, 3); err != nil { // 2 twice: counted once
		t.Fatal(err)
	}
	if d := s.Depth("f1"); d != 0 {
		t.Fatalf("depth %d after acking every event", d)
	}
	s.Close()

	s = open(t, dir, c)
	if recs, err := s.ReadAfter("f1", 0, math.MaxInt); err != nil || len(recs) != 0 || s.Depth("f1") != 0 {
		t.Fatalf("after reopen: pending %+v, depth %d, %v", recs, s.Depth("f1"), err)
	}
	again, err := s.Append("f1", NewEvent{ID: "b", Payload: []byte(`{"n":2}`)}, NewEvent{ID: "d", Payload: []byte(`{"n":4}`)}, NewEvent{ID: "e", Payload: []byte(`{"n":5}`)})
	if err != nil || !again[0].Duplicate || again[1].Seq != 4 {
		t.Fatalf("after reopen: %+v %v; want b a repeat and d seq 4", again, err)
	}
	s.Close()

	// d and e are in bbolt now. Acking d with seqs already gone, or never
	// given, removes d alone and counts only it.
	s = open(t, dir, c)
	defer s.Close()
	if err := s.Ack("f1", 2, 4, 99); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.ReadAfter("f1", 0, math.MaxInt); len(recs) != 1 || recs[0].ID != "e" || s.Depth("f1") != 1 {
		t.Fatalf("after acking d: pending %+v, depth %d; want e alone", recs, s.Depth("f1"))
	}
}

// TestMarkUnmoved: the acks of a commit group claim the events the same
// transaction moves, each event once.
func TestMarkUnmoved(t *testing.T) {
	moving := []journalled{{pipeline: "p", rec: Record{Seq: 1}}, {pipeline: "p", rec: Record{Seq: 2}}, {pipeline: "q", rec: Record{Seq: 1}}}
	first := &ackWrite{pipeline: "p", seqs: []uint64{1, 9}}
	second := &ackWrite{pipeline: "p", seqs: []uint64{1, 2}}
	other := &ackWrite{pipeline: "r", seqs: []uint64{1}, unmoved: map[uint64]bool{1: true}}
	group := []write{{ack: first}, {}, {ack: second}, {ack: other}}
	skip := markUnmoved(group, moving)
	want := map[eventRef]bool{{"p", 1}: true, {"p", 2}: true}
	if fmt.Sprint(skip) != fmt.Sprint(want) {
		t.Errorf("skipped %v, want %v", skip, want)
	}
	if fmt.Sprint(first.unmoved) != "map[1:true]" || fmt.Sprint(second.unmoved) != "map[2:true]" || other.unmoved != nil {
		t.Errorf("marks %v %v %v; want p/1 claimed by the first ack only, and the stale mark of r cleared", first.unmoved, second.unmoved, other.unmoved)
	}
	if markUnmoved(group, nil) != nil || first.unmoved != nil || second.unmoved != nil {
		t.Errorf("with nothing moving the marks must clear: %v %v", first.unmoved, second.unmoved)
	}
}
