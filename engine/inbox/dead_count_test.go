package inbox

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The count of dead letters kept beside them follows every way one comes
// or goes (made, an unqueued event's second one refused, dropped,
// replayed, settled after a replay cut short), and a folder from before
// the count gets it counted at Open. /status and /metrics read it: there
// was no way to learn how many were stored short of listing them all.
func TestDeadLetterCountFollowsTheDeadLetters(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	check := func(when string, want int) {
		t.Helper()
		n, err := s.DeadLetterCount()
		stored := 0
		s.db.View(func(tx *bolt.Tx) error { stored = tx.Bucket(deadBucket).Stats().KeyN; return nil })
		if err != nil || n != want || stored != want {
			t.Fatalf("%s: count %d (%v), %d stored; want %d", when, n, err, stored, want)
		}
	}
	check("new", 0)
	var ids []uint64
	for _, e := range []string{"a", "b", "c", "d"} {
		got := mustAppend(t, s, "f1", ev(e, `{}`))
		id, err := s.DeadLetter("f1", got[0].Seq, DeadLetter{EventID: e, Event: []byte(`{}`), Reason: "rejected"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	row := DeadLetter{EventID: "h:1", Event: []byte(`{}`), Reason: "csv_row"}
	if _, err := s.DeadLetter("csv", 0, row); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeadLetter("csv", 0, row); err != nil { // the same row again: the first stands
		t.Fatal(err)
	}
	check("made", 5)
	if _, err := s.DropDeadLetters([]uint64{ids[0], ids[0], 999}); err != nil {
		t.Fatal(err)
	}
	check("dropped", 4)
	if _, _, err := s.Requeue(ids[1]); err != nil {
		t.Fatal(err)
	}
	check("replayed", 3)
	s.replayCrash = "queued"
	if _, err := s.RequeueDeadLetters([]uint64{ids[2]}, nil); err != errReplayCrash {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, c)
	check("settled at open", 2)
	// A folder from before the count.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(journalBucket).Delete(deadCountKey) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, c)
	check("counted at open", 2)
	// An older build dropped one since, leaving the count as it was, and
	// moved the applied epoch on without this build's mark.
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(deadBucket).Delete(seqKey(ids[3])); err != nil {
			return err
		}
		return tx.Bucket(journalBucket).Put(appliedKey, seqKey(1<<40))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, c)
	defer s.Close()
	check("counted again after an older build", 1)
}
