package runner

import "testing"

// The checkpoint moves only over rows that all have an outcome: a row
// still in flight holds it, however many rows after it are done.
func TestCSVRunCheckpointWaitsForEveryEarlierRow(t *testing.T) {
	c := &csvRun{base: 10, changed: make(chan struct{}, 1)} // resumed after row 10
	for n := 11; n <= 16; n++ {
		c.track(n)
	}
	c.settleNow(17) // a broken row: its dead letter is its outcome
	steps := []struct {
		settle int
		want   int
	}{
		{13, 10}, {12, 10}, {11, 13}, {16, 13}, {15, 13}, {14, 17},
	}
	for _, s := range steps {
		c.settled(s.settle)
		if got := c.checkpoint(); got != s.want {
			t.Fatalf("after row %d: checkpoint %d, want %d", s.settle, got, s.want)
		}
	}
	if !c.settledThrough(17) || c.settledThrough(18) {
		t.Error("settledThrough disagrees with the checkpoint")
	}
	select {
	case <-c.changed:
	default:
		t.Error("no signal when the checkpoint moved")
	}
}
