package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

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

// stoppedClock says it is always the same time.
type stoppedClock struct{ t time.Time }

func (c stoppedClock) Now() time.Time                                   { return c.t }
func (c stoppedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// Files of one name filed away within a second each keep a name of their
// own in done/ and failed/: none overwrites another, nor its .error.txt.
func TestCSVFilesOfOneNameFiledAwayApart(t *testing.T) {
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := New(Options{Store: store, Clock: stoppedClock{time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range 3 {
		for _, importErr := range []error{nil, fmt.Errorf("failure %d", i)} {
			if err := os.WriteFile(filepath.Join(dir, "segment.csv"), []byte(strconv.Itoa(i)), 0o644); err != nil {
				t.Fatal(err)
			}
			r.fileAway("segment", dir, "segment.csv", nil, importErr)
		}
	}
	for sub, want := range map[string][]string{
		"done":   {"0", "1", "2"},
		"failed": {"0", "1", "2", "failure 0\n", "failure 1\n", "failure 2\n"}, // sorted
	} {
		var got []string
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			got = append(got, string(b))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s/ holds %q; want %q", sub, got, want)
		}
	}
	// The names say when: the first in a second has the time alone.
	for _, name := range []string{"done/segment.csv", "done/20250301T120000Z-segment.csv", "done/20250301T120000Z-2-segment.csv"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}
