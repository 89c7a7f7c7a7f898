package inbox

import (
	"testing"
	"time"
)

// A replayed dead letter's event keeps the time it first arrived, also
// across a restart (the record goes through the journal and bbolt): it
// was given the replay's, so a replay that failed again made a dead
// letter whose received said the event came then. An event appended
// without a time is received now.
func TestReplayKeepsWhenTheEventArrived(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	s := open(t, dir, c)
	arrived := t0.Add(-72 * time.Hour)
	if _, err := s.DeadLetter("f1", 0, DeadLetter{EventID: "e1", Event: []byte(`{"n":1}`), Reason: "rejected", Received: arrived}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Requeue(1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("f1", NewEvent{ID: "e2", Payload: []byte(`{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		recs, err := s.ReadAfter("f1", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || !recs[0].Received.Equal(arrived) || !recs[1].Received.Equal(t0) {
			t.Fatalf("%s: records %+v; want the replayed one received %s, the new one %s", when, recs, arrived, t0)
		}
	}
	check("queued")
	s.Close()
	s = open(t, dir, c)
	defer s.Close()
	check("after a restart")
}
