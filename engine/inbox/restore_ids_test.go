package inbox

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Builds before the queued-ids mark pruned the ids of events still queued
// once they were a day old; a CSV import resumed by this build then read
// those rows from the file again while the inbox sent them too (a QA run
// of upgrades: 165 rows sent twice). The first open after such a build
// puts the ids of queued events back; an open after this build's own run,
// killed or not, reads no queue.
func TestQueuedIDsAreRestoredAfterAnOlderBuild(t *testing.T) {
	for _, olderBuild := range []bool{true, false} {
		dir, c := t.TempDir(), &clock{t: t0}
		s := open(t, dir, c)
		got := mustAppend(t, s, "csv", ev("h:1", `{}`), ev("h:2", `{}`))
		if err := s.Ack("csv", got[1].Seq); err != nil {
			t.Fatal(err)
		}
		s.Close()
		db, err := bolt.Open(dir+"/inbox.db", 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			// What an older build's prune and start did: the ids go, and
			// the applied epoch moves on without the mark.
			seen := tx.Bucket(seenBucket("csv"))
			if err := seen.Delete([]byte("h:1")); err != nil {
				return err
			}
			if err := seen.Delete([]byte("h:2")); err != nil {
				return err
			}
			if olderBuild {
				return tx.Bucket(journalBucket).Put(appliedKey, seqKey(1<<40))
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		s = open(t, dir, c)
		queued, _ := s.Seen("csv", "h:1")
		delivered, _ := s.Seen("csv", "h:2")
		s.Close()
		switch {
		case olderBuild && (!queued || delivered):
			t.Errorf("after an older build: queued id seen %v, delivered id seen %v; want the queued one back only", queued, delivered)
		case !olderBuild && queued:
			t.Errorf("after this build's own run the queue was read again")
		}
	}
}
