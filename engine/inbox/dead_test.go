package inbox

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// Replaying or dropping many dead letters at once says, for each id in
// the order given, what became of it; the others go on past an unknown id
// or one that cannot be replayed.
func TestChangeManyDeadLetters(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	dead := func(pipeline, reason string, n int) uint64 {
		t.Helper()
		id, err := s.DeadLetter(pipeline, 0, DeadLetter{EventID: fmt.Sprintf("e%d", n), Event: []byte(fmt.Sprintf(`{"n":%d}`, n)), Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	dead("f1", "rejected", 1)           // 1
	dead("f2", "rejected", 2)           // 2
	dead("f1", "csv_row", 3)            // 3
	dead("f1", "attempts_exhausted", 4) // 4
	dead("f2", "damaged", 5)            // 5

	out, err := s.RequeueDeadLetters([]uint64{4, 9, 2, 3, 1, 5, 4}) // 4 twice: queued once
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		id       uint64
		pipeline string
		seq      uint64
		err      string
	}
	var got []result
	for _, o := range out {
		r := result{o.ID, o.Pipeline, o.Seq, ""}
		if o.Err != nil {
			r.err = o.Err.Error()
		}
		got = append(got, r)
	}
	want := []result{
		{4, "f1", 1, ""},
		{9, "", 0, ErrNoSuchDeadLetter.Error()},
		{2, "f2", 1, ""},
		{3, "f1", 0, notReplayable["csv_row"]},
		{1, "f1", 2, ""},
		{5, "f2", 0, notReplayable["damaged"]},
		{4, "", 0, ErrNoSuchDeadLetter.Error()},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outcomes\n%v\nwant\n%v", got, want)
	}
	var nr *NotReplayableError
	if !errors.As(out[3].Err, &nr) || nr.ID != 3 || nr.Reason != "csv_row" {
		t.Errorf("csv_row: %#v", out[3].Err)
	}
	recs, _ := s.ReadAfter("f1", 0, math.MaxInt)
	if len(recs) != 2 || recs[0].ID != "e4" || recs[1].ID != "e1" || string(recs[1].Payload) != `{"n":1}` {
		t.Errorf("f1 queued %+v", recs)
	}
	left, _ := s.DeadLetters(DeadFilter{})
	if len(left) != 2 || left[0].ID != 3 || left[1].ID != 5 {
		t.Fatalf("left %+v, want 3 and 5", left)
	}

	out, err = s.DropDeadLetters([]uint64{5, 1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].ID != 5 || out[0].Reason != "damaged" || out[0].Err != nil || !errors.Is(out[1].Err, ErrNoSuchDeadLetter) ||
		out[2].ID != 3 || out[2].Pipeline != "f1" || out[2].Err != nil {
		t.Errorf("drop: %+v", out)
	}
	if left, _ := s.DeadLetters(DeadFilter{}); len(left) != 0 {
		t.Errorf("left after drop: %+v", left)
	}
}
