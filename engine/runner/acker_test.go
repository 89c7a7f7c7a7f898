package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/inbox"
)

// fullDisk refuses removals while full is set, as bbolt does on a full
// disk, and records what it removed.
type fullDisk struct {
	mu      sync.Mutex
	full    bool
	tries   int
	removed []uint64
}

var errNoSpace = errors.New("write inbox.db: no space left on device")

func (d *fullDisk) Ack(_ string, seqs ...uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tries++
	if d.full {
		return errNoSpace
	}
	d.removed = append(d.removed, seqs...)
	return nil
}

func (d *fullDisk) set(full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.full = full
}

// leftBehind records what ackers leave and what is removed at last.
type leftBehind struct {
	mu   sync.Mutex
	left []uint64
	why  error
	gone []uint64 // removed at last
}

func (l *leftBehind) leave(seqs []uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.left, l.why = append(l.left, seqs...), err
}

func (l *leftBehind) removed(seqs []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gone = append(l.gone, seqs...)
}

func (d *fullDisk) snapshot() (removed []uint64, tries int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(slices.Values(d.removed)), d.tries
}

// A removal that fails on a full disk is tried again once the disk has
// room, with nothing else delivered meanwhile: given up after the first
// tries, the events stayed in the inbox and the next run sent each of
// them twice (a QA run).
func TestAckerRetriesARemovalUntilTheDiskHasRoom(t *testing.T) {
	disk := &fullDisk{full: true}
	left := &leftBehind{}
	a := newAcker(disk, "p", slog.New(slog.NewTextHandler(io.Discard, nil)), left, nil)
	for seq := range uint64(3) {
		a.ack(seq + 1)
	}
	// The first removal fails, and is tried again every second.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, tries := disk.snapshot(); tries > 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed removal was not tried again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	disk.set(false)
	for {
		if removed, _ := disk.snapshot(); len(removed) == 3 {
			break
		}
		if time.Now().After(deadline) {
			removed, tries := disk.snapshot()
			t.Fatalf("after the disk had room: removed %v in %d tries, want 1, 2 and 3", removed, tries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.close()
	if removed, _ := disk.snapshot(); !slices.Equal(removed, []uint64{1, 2, 3}) || left.left != nil {
		t.Errorf("removed %v (want 1, 2, 3), left %v (want none)", removed, left.left)
	}
}

// What still cannot be removed when the acker closes is left to the
// pipeline's next version, and the stop counts it.
func TestAckerGivesUpAtClose(t *testing.T) {
	disk := &fullDisk{full: true}
	left := &leftBehind{}
	a := newAcker(disk, "p", slog.New(slog.NewTextHandler(io.Discard, nil)), left, nil)
	a.ack(7)
	a.ack(8)
	a.close()
	a.ack(9) // after the close: removed at once, or left at once
	slices.Sort(left.left)
	if !slices.Equal(left.left, []uint64{7, 8, 9}) || !errors.Is(left.why, errNoSpace) {
		t.Errorf("left %v (%v), want 7, 8 and 9 for the full disk", left.left, left.why)
	}
	// The next version's acker takes them over and removes them once it
	// can, a batch at a time, saying so.
	disk.set(false)
	next := newAcker(disk, "p", slog.New(slog.NewTextHandler(io.Discard, nil)), left, left.left)
	next.close()
	if removed, _ := disk.snapshot(); !slices.Equal(removed, []uint64{7, 8, 9}) || !slices.Equal(left.gone, []uint64{7, 8, 9}) {
		t.Errorf("the next acker removed %v and reported %v; want 7, 8 and 9", removed, left.gone)
	}
}

// The events a closing acker left are passed by the next lane's feeder
// (held), handed to its acker (pending), and counted for the stop until
// they are removed.
func TestUnremovedEventsAcrossLanes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &Runner{log: slog.New(slog.NewTextHandler(io.Discard, nil)), clock: delivery.RealClock{}, hard: ctx}
	disk := &fullDisk{full: true}
	u := r.unremovedOf("p")
	u.store = disk
	if u.holds(1) || u.pending() != nil || len(r.Unremoved()) != 0 {
		t.Fatal("a new set holds something")
	}
	u.leave([]uint64{3, 1, 2}, errNoSpace)
	u.leave([]uint64{2}, errNoSpace) // left again by the next acker: counted once
	if !u.holds(2) || u.holds(4) || !slices.Equal(u.pending(), []uint64{1, 2, 3}) || r.Unremoved()["p"] != 3 {
		t.Fatalf("after leave: holds 2 %v, holds 4 %v, pending %v, counted %v", u.holds(2), u.holds(4), u.pending(), r.Unremoved())
	}
	if r.unremovedOf("p") != u {
		t.Fatal("the next lane of the pipeline gets another set")
	}
	u.removed([]uint64{1, 3, 9})
	if u.holds(1) || !u.holds(2) || r.Unremoved()["p"] != 1 {
		t.Fatalf("after removing 1 and 3: pending %v, counted %v", u.pending(), r.Unremoved())
	}
	// With no acker of the pipeline left (its file deleted), they are
	// tried every second on their own, and removed once the disk has room.
	disk.set(false)
	deadline := time.Now().Add(5 * time.Second)
	for u.count() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if removed, _ := disk.snapshot(); !slices.Equal(removed, []uint64{2}) || len(r.Unremoved()) != 0 {
		t.Errorf("once the disk had room: removed %v, still counted %v; want 2 removed", removed, r.Unremoved())
	}
}

// The reload's count of what a removed pipeline leaves undelivered passes
// over its delivered events whose removal failed: those a closed lane left
// and those a running lane's acker still retries (it counted them as
// undelivered, where the stop told them apart).
func TestUndeliveredLeavesOutFailedRemovals(t *testing.T) {
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range 5 {
		if _, err := store.Append("p", inbox.NewEvent{ID: fmt.Sprint("e-", i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &Runner{log: log, clock: delivery.RealClock{}, hard: ctx, store: store}
	if got := r.undelivered("p"); got != 5 {
		t.Fatalf("nothing delivered: %d undelivered, want 5", got)
	}
	disk := &fullDisk{full: true}
	u := r.unremovedOf("p")
	u.store = disk
	u.leave([]uint64{1}, errNoSpace) // a closed lane's
	running := &lane{acks: newAcker(disk, "p", log, u, []uint64{2, 3})}
	defer func() { disk.set(false); running.acks.close() }()
	if got := r.undelivered("p", running, nil); got != 2 {
		t.Errorf("3 delivered but not removed: %d undelivered, want 2", got)
	}
	if got := r.undelivered("p"); got != 4 {
		t.Errorf("without the running lane: %d undelivered, want 4", got)
	}
}
