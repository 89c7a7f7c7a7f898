package inbox

import (
	"math"
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
