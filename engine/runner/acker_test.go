package runner

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
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
	var gaveUp []uint64
	a := newAcker(disk, "p", slog.New(slog.NewTextHandler(io.Discard, nil)), func(seqs []uint64, _ error) { gaveUp = append(gaveUp, seqs...) })
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
	if removed, _ := disk.snapshot(); !slices.Equal(removed, []uint64{1, 2, 3}) || gaveUp != nil {
		t.Errorf("removed %v (want 1, 2, 3), given up %v (want none)", removed, gaveUp)
	}
}

// What still cannot be removed when the acker closes is handed to giveUp,
// so the stop can say the next run sends it again.
func TestAckerGivesUpAtClose(t *testing.T) {
	disk := &fullDisk{full: true}
	var gaveUp []uint64
	var why error
	a := newAcker(disk, "p", slog.New(slog.NewTextHandler(io.Discard, nil)), func(seqs []uint64, err error) { gaveUp, why = append(gaveUp, seqs...), err })
	a.ack(7)
	a.ack(8)
	a.close()
	a.ack(9) // after the close: removed at once, or given up at once
	slices.Sort(gaveUp)
	if !slices.Equal(gaveUp, []uint64{7, 8, 9}) || !errors.Is(why, errNoSpace) {
		t.Errorf("given up %v (%v), want 7, 8 and 9 for the full disk", gaveUp, why)
	}
}
