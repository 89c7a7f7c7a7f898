package inbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

	out, err := s.RequeueDeadLetters([]uint64{4, 9, 2, 3, 1, 5, 4}, nil) // 4 twice: queued once
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

// The list stops at its limit: what comes after is not read, so a
// damaged dead letter there does not fail it, and a page of five out of
// 200,000 is as quick as a page of five out of five. After pages on.
func TestDeadLettersStopAtTheLimit(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	for i := range 5 {
		if _, err := s.DeadLetter(fmt.Sprintf("f%d", i%2), 0, DeadLetter{Event: []byte(`{}`), Reason: "rejected"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(deadBucket).Put(seqKey(6), []byte("\x01damaged"))
	}); err != nil {
		t.Fatal(err)
	}
	ids := func(f DeadFilter) string {
		t.Helper()
		dls, err := s.DeadLetters(f)
		var got []uint64
		for _, dl := range dls {
			got = append(got, dl.ID)
		}
		if err != nil {
			return fmt.Sprint(got, " ", err)
		}
		return fmt.Sprint(got)
	}
	for _, tc := range []struct {
		f    DeadFilter
		want string
	}{
		{DeadFilter{Limit: 2}, "[1 2]"},
		{DeadFilter{Limit: 5}, "[1 2 3 4 5]"},
		{DeadFilter{Pipeline: "f0", Limit: 3}, "[1 3 5]"},
		{DeadFilter{After: 2, Limit: 2}, "[3 4]"},
		{DeadFilter{Pipeline: "f1", After: 2, Limit: 1}, "[4]"},
		{DeadFilter{After: math.MaxUint64}, "[]"},
		// Past the limit, the damaged one is met and named.
		{DeadFilter{Limit: 6}, "[] dead letter 6 is damaged: invalid character '\\x01' looking for beginning of value"},
		{DeadFilter{Pipeline: "f1", After: 2}, "[] dead letter 6 is damaged: invalid character '\\x01' looking for beginning of value"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.f, got, tc.want)
		}
	}
}

// EachDeadLetter hands over dead letters a batch at a time, between read
// transactions: memory holds a batch rather than every dead letter, and
// a slow reader keeps no transaction open (one would stop the inbox file
// from growing under the engine's writes).
func TestEachDeadLetterOutsideTransactions(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	n := 2*deadBatch + 5
	for i := range n {
		reason := "rejected"
		if i%3 == 0 {
			reason = "attempts_exhausted"
		}
		if _, err := s.DeadLetter("f1", 0, DeadLetter{Event: []byte(`{"n":1}`), Reason: reason}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []DeadFilter{{}, {Reason: "rejected"}, {Limit: deadBatch + 1}} {
		for name, each := range map[string]func(DeadFilter, func(DeadLetter) error) error{
			"EachDeadLetter": s.EachDeadLetter, "EachDeadLetterSummary": s.EachDeadLetterSummary,
		} {
			var last uint64
			count := 0
			err := each(f, func(dl DeadLetter) error {
				if open := s.db.Stats().OpenTxN; open != 0 {
					t.Fatalf("%s %+v: called with %d read transactions open", name, f, open)
				}
				if dl.ID <= last || !f.matches(&dl) {
					t.Fatalf("%s %+v: %d after %d", name, f, dl.ID, last)
				}
				last = dl.ID
				count++
				return nil
			})
			want := map[string]int{"": n, "rejected": n - (n+2)/3}[f.Reason]
			if f.Limit > 0 {
				want = f.Limit
			}
			if err != nil || count != want {
				t.Errorf("%s %+v: %d dead letters (%v), want %d", name, f, count, err, want)
			}
		}
	}
	// fn's error stops the walk and comes back.
	stop := errors.New("stop")
	count := 0
	if err := s.EachDeadLetter(DeadFilter{}, func(DeadLetter) error { count++; return stop }); err != stop || count != 1 {
		t.Errorf("%d calls, %v", count, err)
	}
}

// A summary is the dead letter without its event and request, however
// they are written.
func TestDeadLetterSummary(t *testing.T) {
	full := DeadLetter{ID: 7, Pipeline: "f1", Version: "v1", EventID: "e1",
		Event:    []byte(`{"s":"a \"quoted\" } ] { [ \\","n":[1,{"x":null}],"reason":"not this one"}`),
		Request:  &SentRequest{Method: "POST", URL: "http://x", Headers: map[string]string{"A": "b"}, Body: `{"k":"\\\""}`},
		Response: &GotResponse{Status: 503, Excerpt: `{"message":"x"}`}, Reason: "attempts_exhausted", Error: "braze \"said\" no\n",
		Attempts: 3, Received: t0, At: t0.Add(time.Minute)}
	stored, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	want := full
	want.Event, want.Request = nil, nil
	for _, tc := range []struct {
		name   string
		stored string
		want   DeadLetter
	}{
		{"as stored", string(stored), want},
		{"indented", func() string { b, _ := json.MarshalIndent(full, " ", "\t"); return string(b) }(), want},
		{"scalars last", `{"event":12,"request":null,"pipeline":"f2","attempts":4}`, DeadLetter{Pipeline: "f2", Attempts: 4}},
		{"event a string", `{"event":"{\"a\":1}\\","reason":"x"}`, DeadLetter{Reason: "x"}},
		{"empty", `{}`, DeadLetter{}},
	} {
		var got DeadLetter
		if _, err := decodeSummary([]byte(tc.stored), &got, nil); err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v (%v)\nwant %+v", tc.name, got, err, tc.want)
		}
	}
	// What is not an object is decoded in full, for json's error.
	for _, stored := range []string{``, `[1]`, `{"event":{"a":1}`, `{"a":1 "b":2}`, "\x01"} {
		var got DeadLetter
		if _, err := decodeSummary([]byte(stored), &got, nil); err == nil {
			t.Errorf("%q: no error", stored)
		}
	}
}

// Told which pipelines a file defines, a replay leaves the dead letters
// of the others as they are: queued, their events would wait under a
// name nothing delivers, and be dead letters no more.
func TestRequeueOnlyDefinedPipelines(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	for _, p := range []string{"f1", "gone", "f1", "f3"} {
		if _, err := s.DeadLetter(p, 0, DeadLetter{Event: []byte(`{}`), Reason: "rejected"}); err != nil {
			t.Fatal(err)
		}
	}
	states := map[string]PipelineState{"f1": PipelineQueues, "f3": PipelineResponds}
	out, err := s.RequeueDeadLetters([]uint64{1, 2, 3, 4}, func(p string) PipelineState { return states[p] })
	if err != nil {
		t.Fatal(err)
	}
	var gone, responds *NoPipelineError
	if out[0].Err != nil || out[2].Err != nil || !errors.As(out[1].Err, &gone) || gone.ID != 2 || gone.Pipeline != "gone" ||
		out[1].Err.Error() != "no file defines its pipeline, gone" {
		t.Fatalf("outcomes %+v", out)
	}
	// A pipeline that answers its callers would never take the event.
	if !errors.As(out[3].Err, &responds) || !responds.Responds ||
		out[3].Err.Error() != "its pipeline, f3, answers its callers (respond:) and takes no queued events" {
		t.Fatalf("outcome of the respond pipeline's %+v", out[3])
	}
	if s.Depth("gone") != 0 || s.Depth("f3") != 0 || s.Depth("f1") != 2 {
		t.Errorf("queued: gone %d, f3 %d, f1 %d", s.Depth("gone"), s.Depth("f3"), s.Depth("f1"))
	}
	if left, _ := s.DeadLetters(DeadFilter{}); len(left) != 2 || left[0].ID != 2 || left[1].ID != 4 {
		t.Errorf("left %+v, want 2 and 4", left)
	}
}

// A CSV row dead-lettered just before a crash is read and fails again
// after the restart: while its first dead letter is kept, no second one
// is made (a replay of both sent it twice). Once it is replayed or
// dropped, the event may be dead-lettered again; a queued event, which
// leaves the queue with its dead letter, is never looked up.
func TestUnqueuedEventIsDeadLetteredOnce(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, &clock{t: t0})
	dead := func(pipeline, eventID string, seq uint64) uint64 {
		t.Helper()
		id, err := s.DeadLetter(pipeline, seq, DeadLetter{EventID: eventID, Event: []byte(`{}`), Reason: "rejected"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	count := func() int {
		t.Helper()
		dls, err := s.DeadLetters(DeadFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(dls)
	}
	first := dead("csv", "ab12:7", 0)
	s.Close()
	s = open(t, dir, &clock{t: t0}) // the restart
	defer func() { s.Close() }()
	if again := dead("csv", "ab12:7", 0); again != first || count() != 1 {
		t.Fatalf("the row's second failure: dead letter %d (first %d), %d in all; want the first, alone", again, first, count())
	}
	if other := dead("other", "ab12:7", 0); other == first {
		t.Fatal("another pipeline's event of that id shares the dead letter")
	}
	if _, _, err := s.Requeue(first); err != nil {
		t.Fatal(err)
	}
	replayedAndFailed := dead("csv", "ab12:7", 0)
	if replayedAndFailed == first {
		t.Fatal("a replayed event that fails again got no dead letter of its own")
	}
	if err := s.DropDeadLetter(replayedAndFailed); err != nil {
		t.Fatal(err)
	}
	if afterDrop := dead("csv", "ab12:7", 0); afterDrop == replayedAndFailed {
		t.Fatal("a dropped dead letter still stands for its event")
	}
	// A kept dead letter that cannot be read does not stand for the
	// event: it would refuse the replay that is the row's only way back.
	damaged := dead("csv", "ab12:9", 0)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(deadBucket).Put(seqKey(damaged), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	if again := dead("csv", "ab12:9", 0); again == damaged {
		t.Fatal("a damaged dead letter stood for the row's new failure")
	}
	// Queued events: each failure of the same id is its own dead letter.
	got, err := s.Append("q", NewEvent{ID: "e-1", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := dead("q", "e-1", got[0].Seq), dead("q", "e-1", got[0].Seq)
	if a == b {
		t.Fatal("a queued event's dead letters were merged")
	}
}
