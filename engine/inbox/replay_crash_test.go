package inbox

import (
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A replay cut short by a crash after it queued the events left their
// dead letters listed too, and a later replay sent them twice (a QA run:
// 1,000 events after a kill -9 of engine dlq replay). The next Open
// removes the dead letter of an event the replay queued, and keeps the
// one of an event it had not queued yet; either way nothing is lost.
func TestAReplayCutShortIsSettledAtOpen(t *testing.T) {
	for _, crash := range []string{"marked", "queued"} {
		t.Run(crash, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			got := mustAppend(t, s, "f1", ev("a", `{"n":1}`))
			replayed, err := s.DeadLetter("f1", got[0].Seq, DeadLetter{EventID: "a", Event: []byte(`{"n":1}`), Reason: "rejected"})
			if err != nil {
				t.Fatal(err)
			}
			left, err := s.DeadLetter("f1", 0, DeadLetter{EventID: "b", Event: []byte(`{"n":2}`), Reason: "rejected"})
			if err != nil {
				t.Fatal(err)
			}
			s.replayCrash = crash
			if _, err := s.RequeueDeadLetters([]uint64{replayed}, nil); err != errReplayCrash {
				t.Fatalf("replay: %v", err)
			}
			s.Close()

			s = open(t, dir, c)
			defer s.Close()
			recs, err := s.ReadAfter("f1", 0, math.MaxInt)
			if err != nil {
				t.Fatal(err)
			}
			_, stillDead := s.GetDeadLetter(replayed)
			if _, err := s.GetDeadLetter(left); err != nil {
				t.Errorf("the dead letter no replay named: %v", err)
			}
			switch crash {
			case "queued":
				if len(recs) != 1 || recs[0].ID != "a" || stillDead == nil || s.ReplaysSettled() != 1 {
					t.Errorf("queued %+v, dead letter still there: %v, settled %d; want the event queued once and its dead letter gone", recs, stillDead == nil, s.ReplaysSettled())
				}
			case "marked":
				if len(recs) != 0 || stillDead != nil || s.ReplaysSettled() != 0 {
					t.Errorf("queued %+v, dead letter lookup: %v, settled %d; want nothing queued and the dead letter kept", recs, stillDead, s.ReplaysSettled())
				}
				if _, _, err := s.Requeue(replayed); err != nil {
					t.Errorf("replayed again: %v", err)
				}
			}
			marks := 0
			s.db.View(func(tx *bolt.Tx) error { marks = tx.Bucket(deadReplaying).Stats().KeyN; return nil })
			if marks != 0 {
				t.Errorf("%d replay marks left after the open", marks)
			}
		})
	}
}

// A replay that queued the events but could not remove their dead letters
// (a full disk) left them in both places, and the natural retry, once the
// disk had room, sent 1,000 events twice (a QA run). The store now removes
// them as soon as it can write, replays nothing before it has, and tries
// once more at Close; an event without an id is settled too, which the
// next Open could not do.
func TestAReplayWhoseDeadLettersCannotBeRemovedIsSettledLater(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	var full diskFull
	s, err := Open(dir, Options{Now: c.now, Fault: full.err})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, id := range []string{"a", "", "c"} {
		dl, err := s.DeadLetter("f1", 0, DeadLetter{EventID: id, Event: []byte(`{"n":1}`), Reason: "rejected"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, dl)
	}
	queued := func() int {
		recs, err := s.ReadAfter("f1", 0, math.MaxInt)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	deadLetters := func() int {
		n, err := s.DeadLetterCount()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	full.Store(true)
	out, err := s.RequeueDeadLetters(ids, nil)
	var left *ReplayLeftError
	if !errors.As(err, &left) || left.Queued != 3 || len(out) != 3 || out[0].Seq == 0 || out[0].Err != nil {
		t.Fatalf("replay: %+v, %v; want the three queued and a *ReplayLeftError", out, err)
	}
	if n := queued(); n != 3 {
		t.Fatalf("%d queued; want 3", n)
	}
	// Asked again while the disk is full: refused, nothing queued twice.
	if _, err := s.RequeueDeadLetters(ids, nil); err == nil || !strings.Contains(err.Error(), "nothing is replayed until they are") {
		t.Errorf("a second replay: %v; want it refused", err)
	}
	if n, err := s.SettleReplaysLeft(); n != 3 || err == nil {
		t.Errorf("settled on a full disk: %d left, %v; want 3 left and the error", n, err)
	}
	if n := queued(); n != 3 {
		t.Errorf("%d queued after the refused replay; want 3", n)
	}
	// One dropped meanwhile is not counted out twice.
	if out, err := s.DropDeadLetters(ids[2:]); err != nil || out[0].Err != nil {
		t.Fatalf("drop: %v %+v", err, out)
	}
	if n := deadLetters(); n != 2 {
		t.Fatalf("%d dead letters after the drop; want 2", n)
	}

	full.Store(false)
	if n, err := s.SettleReplaysLeft(); n != 0 || err != nil {
		t.Fatalf("settled: %d left, %v", n, err)
	}
	if n := deadLetters(); n != 0 {
		t.Errorf("%d dead letters counted after settling; want 0", n)
	}
	if dls, _ := s.DeadLetters(DeadFilter{}); len(dls) != 0 {
		t.Errorf("dead letters left: %+v", dls)
	}
	out, err = s.RequeueDeadLetters(ids, nil)
	if err != nil || !errors.Is(out[0].Err, ErrNoSuchDeadLetter) || !errors.Is(out[1].Err, ErrNoSuchDeadLetter) {
		t.Errorf("replayed again: %+v, %v; want none found", out, err)
	}
	if n := queued(); n != 3 {
		t.Errorf("%d queued; want 3, each once", n)
	}
	marks := 0
	s.db.View(func(tx *bolt.Tx) error { marks = tx.Bucket(deadReplaying).Stats().KeyN; return nil })
	if marks != 0 {
		t.Errorf("%d replay marks left", marks)
	}
	s.Close()
}

// Left unsettled until the store closes, the dead letters go at Close,
// the one of an event without an id too, which the next Open could not
// tell apart from a new event's.
func TestAReplayLeftUnsettledIsSettledAtClose(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	var full diskFull
	s, err := Open(dir, Options{Now: c.now, Fault: full.err})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.DeadLetter("f1", 0, DeadLetter{Event: []byte(`{"n":1}`), Reason: "rejected"})
	if err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if _, err := s.RequeueDeadLetters([]uint64{id}, nil); err == nil {
		t.Fatal("the replay's removal did not fail")
	}
	full.Store(false) // room again, then a stop
	s.Close()
	s = open(t, dir, c)
	defer s.Close()
	if dls, _ := s.DeadLetters(DeadFilter{}); len(dls) != 0 {
		t.Errorf("dead letters after the reopen: %+v", dls)
	}
	if recs, _ := s.ReadAfter("f1", 0, math.MaxInt); len(recs) != 1 {
		t.Errorf("queued %+v; want the event once", recs)
	}
}

// diskFull fails the removal of replayed dead letters while set.
type diskFull struct{ atomic.Bool }

func (d *diskFull) err(write string) error {
	if write == FaultReplayRemoval && d.Load() {
		return errors.New("write inbox.db: no space left on device")
	}
	return nil
}
