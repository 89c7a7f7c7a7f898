package inbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func payloads(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

func mustAppend(t *testing.T, s *Store, pipeline string, events ...NewEvent) []Appended {
	t.Helper()
	got, err := s.Append(pipeline, events...)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// mustDeliver appends events and acks them: their ids stay, for the
// dedupe window only.
func mustDeliver(t *testing.T, s *Store, pipeline string, events ...NewEvent) {
	t.Helper()
	for _, a := range mustAppend(t, s, pipeline, events...) {
		if err := s.Ack(pipeline, a.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func ev(id, payload string) NewEvent { return NewEvent{ID: id, Payload: []byte(payload)} }

// An engine that dies with events only in the journal finds them queued
// when it starts again, with their ids still recognised.
func TestJournalledEventsSurviveACrash(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true)
	mustAppend(t, s, "f1", ev("a", "1"), ev("", "2"))
	mustAppend(t, s, "f4", ev("x", "3"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, c)
	defer s.Close()
	if s.Depth("f1") != 2 || s.Depth("f4") != 1 {
		t.Fatalf("depth after the crash: f1 %d, f4 %d", s.Depth("f1"), s.Depth("f4"))
	}
	recs, err := s.ReadAfter("f1", 0, math.MaxInt)
	if err != nil || !slices.Equal(payloads(recs), []string{"1", "2"}) || recs[0].ID != "a" || recs[1].Seq != 2 {
		t.Fatalf("f1 after the crash: %+v %v", recs, err)
	}
	if got := mustAppend(t, s, "f1", ev("a", "again")); !got[0].Duplicate || got[0].Seq != 1 {
		t.Fatalf("a repeat of a recovered id: %+v", got)
	}
	if got := mustAppend(t, s, "f1", ev("b", "4")); got[0].Seq != 3 {
		t.Fatalf("numbering after the crash: %+v", got)
	}
}

// An engine that dies while it moves a sealed epoch into bbolt leaves two
// epochs only in the journal: the sealed one and the one written
// meanwhile. Both come back, in order, with their ids still recognised,
// and stay put across the next restart.
func TestCrashDuringAMoveKeepsBothEpochs(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true) // the committer moves nothing: the engine "dies" before it does
	mustAppend(t, s, "p", ev("a", "sealed epoch"))
	// What a move cut short leaves: the epoch sealed, not applied.
	s.journalMu.Lock()
	s.journal.start(s.journal.epoch + 1)
	s.journalMu.Unlock()
	mustAppend(t, s, "p", ev("b", "epoch after it"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, when := range []string{"after the crash", "after one more restart"} {
		s = open(t, dir, c)
		recs, err := s.ReadAfter("p", 0, math.MaxInt)
		if err != nil || !slices.Equal(payloads(recs), []string{"sealed epoch", "epoch after it"}) || s.Depth("p") != 2 {
			t.Fatalf("%s: %q, depth %d, %v; want both epochs' events", when, payloads(recs), s.Depth("p"), err)
		}
		if got := mustAppend(t, s, "p", ev("b", "b again")); !got[0].Duplicate || got[0].Seq != recs[1].Seq {
			t.Fatalf("%s: a repeat of the second epoch's id: %+v", when, got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Append returns only once its events are synced: the 2xx a webhook gets
// promises that the event survives a power cut, which no process test
// can show (a kill -9 keeps the page cache). Each sync is watched: what a
// restart would read back from the file then counts as synced, and every
// event an Append returns must be among it by then, repeats included.
func TestAppendReturnsOnlyOnceSynced(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	var mu sync.Mutex
	synced := map[eventRef]bool{}
	syncs := 0
	s.journalMu.Lock()
	realSync := s.journal.sync
	s.journal.sync = func(f *os.File) error {
		err := realSync(f)
		// The appender holds journalMu while it writes and syncs: the
		// epoch is the one f is written for.
		b, readErr := os.ReadFile(f.Name())
		if readErr != nil {
			t.Error(readErr)
		}
		back, _ := readEpoch(b, f.Name(), s.journal.epoch)
		mu.Lock()
		defer mu.Unlock()
		syncs++
		for _, e := range back {
			synced[eventRef{e.pipeline, e.rec.Seq}] = true
		}
		return err
	}
	s.journalMu.Unlock()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			pipeline := []string{"p", "q"}[g%2]
			for i := range 30 {
				events := []NewEvent{ev(fmt.Sprint(g, "-", i), "x")}
				if i%3 == 0 {
					events = append(events, ev("", "no id"))
				}
				if i%5 == 4 {
					events = append(events, ev(fmt.Sprint(g, "-", i-1), "a repeat"))
				}
				got, err := s.Append(pipeline, events...)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, a := range got {
					if !synced[eventRef{pipeline, a.Seq}] {
						t.Errorf("Append(%s, %q) returned seq %d (duplicate %v) before a sync covered it", pipeline, events[j].Payload, a.Seq, a.Duplicate)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if syncs == 0 {
		t.Error("the journal was never synced")
	}
}

// A torn write (the engine died inside it, so its sender never heard 2xx)
// ends the journal; what came before it is kept.
func TestJournalTornTail(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true)
	mustAppend(t, s, "f1", ev("a", "kept"))
	mustAppend(t, s, "f1", ev("b", "torn"))
	s.Close()

	path := journalPath(dir, 1) // the first epoch after a start is odd
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()-3); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, c)
	defer s.Close()
	recs, _ := s.ReadAfter("f1", 0, math.MaxInt)
	if !slices.Equal(payloads(recs), []string{"kept"}) {
		t.Fatalf("after a torn write: %q", payloads(recs))
	}
	if d := s.JournalDamage(); len(d) != 0 {
		t.Errorf("damage reported: %+v; a torn end is no damage", d)
	}
}

// A damaged entry with nothing after it ends the journal too, however
// long it claims to be, and is no damage to report: it is how a write
// torn by a crash looks.
func TestJournalDamagedEntry(t *testing.T) {
	first := journalHeaderSize + 8 // the first entry's length, after its marker
	for name, damage := range map[string]func(b []byte){
		"body":   func(b []byte) { b[len(b)-1] ^= 0xff },
		"length": func(b []byte) { b[first+3] = 0x7f },
		"marker": func(b []byte) { b[journalHeaderSize] ^= 0xff },
	} {
		t.Run(name, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			s.keepJournal.Store(true)
			mustAppend(t, s, "f1", ev("a", "only"))
			s.Close()
			editFile(t, journalPath(dir, 1), damage) // the first epoch after a start is odd
			s = open(t, dir, c)
			defer s.Close()
			if s.Depth("f1") != 0 {
				t.Fatalf("a damaged entry was queued: depth %d", s.Depth("f1"))
			}
			if d := s.JournalDamage(); len(d) != 0 {
				t.Errorf("damage reported: %+v; a torn end is no damage", d)
			}
		})
	}
}

// A byte damaged on disk in the middle of an epoch ended it there: the
// events after it were lost, and nothing said so. A start now finds the
// next entry by its marker, queues the events after the damage and
// reports the stretch it passed over.
func TestJournalDamageInTheMiddleIsPassedOverAndReported(t *testing.T) {
	// at is where the damaged entry's payload is, head where it begins.
	for name, damage := range map[string]func(b []byte, head, at int){
		"payload": func(b []byte, _, at int) { b[at] ^= 0xff },
		"marker":  func(b []byte, head, _ int) { b[head] ^= 0xff },
		"length":  func(b []byte, head, _ int) { copy(b[head+8:], []byte{0xff, 0xff, 0xff, 0x03}) },
		"zeroed":  func(b []byte, head, at int) { copy(b[head:], make([]byte, at+20-head)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			s.keepJournal.Store(true)
			mustAppend(t, s, "f1", ev("a", "before the damage"))
			mustAppend(t, s, "f1", ev("b", "DAMAGED-ONE, with a body long enough to hold the damage"))
			mustAppend(t, s, "f1", ev("c", "after the damage"), ev("d", "after it too"))
			epoch := s.journal.epoch
			s.Close()
			var at int
			editFile(t, journalPath(dir, 1), func(b []byte) { // the first epoch after a start is odd
				at = bytes.Index(b, []byte("DAMAGED-ONE"))
				damage(b, bytes.LastIndex(b[:at], b[16:24]), at) // the header's marker begins the entry
			})

			s = open(t, dir, c)
			defer s.Close()
			recs, err := s.ReadAfter("f1", 0, math.MaxInt)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(payloads(recs), []string{"before the damage", "after the damage", "after it too"}) {
				t.Errorf("queued after the damage: %q; want the events on both sides of it", payloads(recs))
			}
			d := s.JournalDamage()
			if len(d) != 1 || d[0].File != "inbox.wal.1" || d[0].Epoch != epoch || d[0].From > int64(at) || d[0].To <= int64(at) {
				t.Errorf("damage reported: %+v; want one stretch of inbox.wal.1, epoch %d, around byte %d", d, epoch, at)
			}
			if got := mustAppend(t, s, "f1", ev("c", "c again")); !got[0].Duplicate {
				t.Errorf("an event read after the damage is not recognised when sent again: %+v", got)
			}
		})
	}
}

// The header holds the marker a start searches by: a byte damaged in it
// lost the whole epoch without a word (a review). Its marker is also the
// first entry's, written with it: taken from there when the header's
// marker or its CRC agrees, and the header reported as damage. Every byte
// of the header, set to each of four values.
func TestJournalHeaderDamageIsPassedOver(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true) // a kill -9 after three acknowledged appends
	for _, id := range []string{"a", "b", "c"} {
		mustAppend(t, s, "f1", ev(id, "acknowledged "+id))
	}
	epoch := s.journal.epoch
	s.Close()
	want := []JournalDamage{{File: "inbox.wal.1", Epoch: epoch, From: 0, To: journalHeaderSize}}
	files := map[string][]byte{}
	for _, name := range []string{"inbox.db", "inbox.wal.0", "inbox.wal.1"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for at := range journalHeaderSize {
		for _, v := range []byte{0x00, 0x01, 0x03, 0xff} {
			if files["inbox.wal.1"][at] == v {
				continue
			}
			copyDir := t.TempDir()
			for name, b := range files {
				b = slices.Clone(b)
				if name == "inbox.wal.1" { // the first epoch after a start is odd
					b[at] = v
				}
				if err := os.WriteFile(filepath.Join(copyDir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s := open(t, copyDir, c)
			recs, err := s.ReadAfter("f1", 0, math.MaxInt)
			if err != nil || len(recs) != 3 || !slices.Equal(s.JournalDamage(), want) {
				t.Errorf("header byte %d set to %#x: %d queued (%v), damage %+v; want the 3 events and %+v", at, v, len(recs), err, s.JournalDamage(), want)
			}
			s.Close()
		}
	}
}

// Disks lose sectors, not bytes: with the header and the first entry
// gone, the epoch's marker is too, and its entries cannot be told from
// bytes shaped like them in a payload. None is taken, but the start says
// the file is damaged: it lost them without a word (a review).
func TestJournalDamageWiderThanTheHeaderIsReported(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true)
	for i := range 40 {
		mustAppend(t, s, "f1", ev(fmt.Sprint(i), "acknowledged"))
	}
	epoch := s.journal.epoch
	s.Close()
	var size int
	editFile(t, journalPath(dir, 1), func(b []byte) { copy(b, make([]byte, 512)); size = len(b) })

	s = open(t, dir, c)
	defer s.Close()
	want := []JournalDamage{{File: "inbox.wal.1", Epoch: epoch, From: 0, To: int64(size)}}
	if d := s.JournalDamage(); !slices.Equal(d, want) {
		t.Errorf("damage reported: %+v, want %+v", d, want)
	}
}

// A file past repair is searched for entries of the epoch, to report it,
// checksumming only offsets whose body begins as such an entry's. Payloads
// shaped to pass that test, each claiming a long length, made the search
// quadratic: a minute for 4 MiB (a review). It now checksums at most
// about twice the file, then reports the file damaged.
func TestDamagedFileWithShapedPayloadsIsReported(t *testing.T) {
	var file []byte
	for i := range 4 {
		var payload []byte
		for len(payload) < 1<<20 {
			payload = binary.LittleEndian.AppendUint32(payload, 1<<20) // a length that fits
			payload = append(payload, 0, 0, 0, 0, 5, 1, 'A')           // CRC, epoch 5, a name
		}
		file = append(file, make([]byte, 8)...) // a marker
		file = appendEntry(file, journalled{pipeline: "f1", epoch: 3, rec: Record{Seq: uint64(i + 1), Received: t0, Payload: payload}})
	}
	entries, damage := readEpoch(file, "inbox.wal.1", 5) // no header: a lost sector
	if len(entries) > 0 || len(damage) != 1 || damage[0].To != int64(len(file)) {
		t.Errorf("%d entries, damage %+v; want none, and the file reported", len(entries), damage)
	}
}

func BenchmarkSearchOfADamagedFile(b *testing.B) {
	var file []byte
	for len(file) < 4<<20 {
		payload := make([]byte, 300)
		for i := range payload {
			payload[i] = byte(i % 8) // small bytes: lengths that fit
		}
		file = appendEntry(append(file, make([]byte, 8)...), journalled{pipeline: "f1", epoch: 3, rec: Record{Seq: 1, Received: t0, Payload: payload}})
	}
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		holdsEntryOf(file, 5)
	}
}

// A legacy file that begins with a whole entry of an older epoch is not
// damaged, whatever its payloads hold: one shaped as an entry of the epoch
// read is not taken for a sign of damage (the file is not searched).
func TestLegacyFileIsNotSearchedForDamage(t *testing.T) {
	const epoch = 5
	forged := appendEntry(nil, journalled{pipeline: "f1", epoch: epoch, rec: Record{Seq: 9, ID: "forged", Received: t0, Payload: []byte("FORGED")}})
	b := appendEntry(nil, journalled{pipeline: "f1", epoch: epoch - 2, rec: Record{Seq: 1, ID: "old", Received: t0, Payload: forged}})
	if entries, damage := readEpoch(b, "inbox.wal.1", epoch); len(entries) > 0 || len(damage) > 0 {
		t.Errorf("a legacy file of epoch %d read for epoch %d: %d entries, damage %+v; want none", epoch-2, epoch, len(entries), damage)
	}
}

// A first write torn after the first 16 bytes of a header over a legacy
// file (the first write after an upgrade) left the magic and epoch beside
// legacy bytes, where a sender's payload can lie: a damaged header's
// marker is not taken on the magic alone (a review).
func TestTornHeaderOverALegacyPayloadOffersNoMarker(t *testing.T) {
	const epoch = 5
	legacyEntry := func(payload []byte) []byte {
		return appendEntry(nil, journalled{pipeline: "f1", epoch: 1, rec: Record{Seq: 1, Received: t0, Payload: payload}})
	}
	forged := appendEntry(nil, journalled{pipeline: "f1", epoch: epoch, rec: Record{Seq: 1, ID: "forged", Received: t0, Payload: []byte("FORGED")}})
	payloadAt := len(legacyEntry([]byte("PPPP"))) - 4
	payload := append(bytes.Repeat([]byte{'x'}, journalHeaderSize-payloadAt), "SENDERMK"...) // where a marker would be
	b := legacyEntry(append(payload, forged...))
	copy(b, journalMagic[:])
	binary.LittleEndian.PutUint64(b[8:], epoch)
	if entries, damage := readEpoch(b, "inbox.wal.1", epoch); len(entries) > 0 {
		t.Errorf("read %q from a legacy payload, damage %+v", entries[0].rec.Payload, damage)
	}
}

// A write whose sync failed is blanked, its senders refused. A blank that
// did not reach the disk left the failed write's entries behind a shorter
// later one of the same epoch, and the search by marker read them back as
// events (a review), also when that write was another pipeline's (the
// next review): the next write now zeroes what is left of the failed one,
// synced with it.
func TestRefusedWriteBehindAShorterOneStaysRefused(t *testing.T) {
	for _, next := range []string{"f1", "f2"} {
		t.Run("then "+next, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			s.keepJournal.Store(true)
			mustAppend(t, s, "f1", ev("a", "accepted"))
			failNextWriteUnblanked(t, s)
			if _, err := s.Append("f1", ev("x1", "refused, with a body longer than the next write's"), ev("x2", "REFUSED-2")); err == nil {
				t.Fatal("the append did not fail")
			}
			mustAppend(t, s, next, ev("y", "accepted after it"))
			s.Close()

			s = open(t, dir, c)
			defer s.Close()
			var got []string
			for _, p := range []string{"f1", "f2"} {
				recs, _ := s.ReadAfter(p, 0, math.MaxInt)
				got = append(got, payloads(recs)...)
			}
			if !slices.Equal(got, []string{"accepted", "accepted after it"}) || len(s.JournalDamage()) != 0 {
				t.Errorf("queued: %q, damage reported %+v; want the two accepted events and no damage", got, s.JournalDamage())
			}
		})
	}
}

// failNextWriteUnblanked makes the journal's next write fail at its sync
// with its bytes left on disk, as if its blanking did not reach it.
func failNextWriteUnblanked(t *testing.T, s *Store) {
	s.journalMu.Lock()
	defer s.journalMu.Unlock()
	j := s.journal
	at, realSync := j.off, j.sync
	var failed []byte
	calls := 0
	j.sync = func(f *os.File) error {
		calls++
		switch calls {
		case 1: // the write's own sync
			failed = slices.Clone(j.buf)
			return errors.New("input/output error")
		case 2: // the blank's sync: the failed bytes are what the disk keeps
			if _, err := f.WriteAt(failed, at); err != nil {
				t.Error(err)
			}
			return errors.New("input/output error")
		}
		return realSync(f)
	}
}

// The journal files keep the size of their largest epoch. A start read
// both whole, though after a clean stop it needs only their headers: 512
// MiB and 1.2 s after a 256 MiB backlog (a review).
func TestAStartReadsOnlyTheJournalItNeeds(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	mustAppend(t, s, "f1", ev("a", "1"))
	if err := s.SetCheckpoint("k", 1); err != nil { // moves the epoch into bbolt: the next goes to the other file
		t.Fatal(err)
	}
	mustAppend(t, s, "f1", ev("b", "2"))
	s.Close() // clean: every epoch applied
	for i := range 2 {
		if b, err := os.ReadFile(journalPath(dir, i)); err != nil || !bytes.HasPrefix(b, journalMagic[:]) {
			t.Fatalf("setup: %s holds no header (%v)", journalPath(dir, i), err)
		}
	}
	const stale = 64 << 20
	for i := range 2 {
		if err := os.Truncate(journalPath(dir, i), stale); err != nil { // as an old large epoch leaves it
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s = open(t, dir, c)
	runtime.ReadMemStats(&after)
	s.Close()
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > stale/4 {
		t.Errorf("a start allocated %d MiB beside journals of 2 x %d MiB holding nothing to replay", alloc>>20, stale>>20)
	}
}

// Journal files are reused: entries of an older epoch left behind the new
// ones must not come back after a crash (they were delivered long ago).
func TestJournalReuseIgnoresOlderEpochs(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	var old []NewEvent
	for i := range 5 {
		old = append(old, ev(fmt.Sprint("old", i), fmt.Sprintf("an older event with a long body %d", i)))
	}
	got := mustAppend(t, s, "f1", old...) // into one journal file
	for _, a := range got {
		if err := s.Ack("f1", a.Seq); err != nil { // moves that epoch into bbolt
			t.Fatal(err)
		}
	}
	got = mustAppend(t, s, "f1", ev("mid", "epoch 2")) // the other file
	if err := s.Ack("f1", got[0].Seq); err != nil {
		t.Fatal(err)
	}
	s.keepJournal.Store(true)
	mustAppend(t, s, "f1", ev("new", "3")) // the first file again, from its start
	s.Close()

	s = open(t, dir, c)
	defer s.Close()
	recs, _ := s.ReadAfter("f1", 0, math.MaxInt)
	if !slices.Equal(payloads(recs), []string{"3"}) || s.Depth("f1") != 1 {
		t.Fatalf("after the crash: %q, depth %d; want only the newest event", payloads(recs), s.Depth("f1"))
	}
	if d := s.JournalDamage(); len(d) != 0 {
		t.Errorf("damage reported: %+v; an older epoch's entries are none", d)
	}
}

// Ids are recognised while their event is journalled, after it moved into
// bbolt, and inside one group of appends.
func TestDedupeAcrossJournalAndStore(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	got := mustAppend(t, s, "f1", ev("a", "1"), ev("a", "repeat in the same call"))
	if got[0].Duplicate || !got[1].Duplicate || got[1].Seq != got[0].Seq {
		t.Fatalf("same call: %+v", got)
	}
	if got := mustAppend(t, s, "f1", ev("a", "2")); !got[0].Duplicate {
		t.Fatalf("while journalled: %+v", got)
	}
	seen := func(pipeline, id string) bool {
		t.Helper()
		ok, err := s.Seen(pipeline, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !seen("f1", "a") || seen("f1", "b") || seen("f2", "a") || seen("f1", "") {
		t.Fatal("Seen, while journalled, disagrees with Append")
	}
	if err := s.SetCheckpoint("k", 1); err != nil { // any change moves the journal into bbolt
		t.Fatal(err)
	}
	s.mu.Lock()
	left := s.pendingCount
	s.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d events still journalled after a change", left)
	}
	if got := mustAppend(t, s, "f1", ev("a", "3")); !got[0].Duplicate || got[0].Seq != 1 {
		t.Fatalf("after the move: %+v", got)
	}
	if !seen("f1", "a") || seen("f1", "b") {
		t.Fatal("Seen, after the move, disagrees with Append")
	}
	if got := mustAppend(t, s, "f2", ev("a", "other pipeline")); got[0].Duplicate {
		t.Fatalf("ids are per pipeline: %+v", got)
	}
}

// A feeder reading with a cursor while events are appended, moved and
// acknowledged sees every event exactly once, in order.
func TestReadAfterWhileEventsMove(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	const writers, each = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append("f1", ev(fmt.Sprintf("%d-%d", w, i), "x")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var cursor uint64
	seen := 0
	for seen < writers*each {
		recs, err := s.ReadAfter("f1", cursor, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Seq != cursor+1 {
				t.Fatalf("read seq %d after %d", r.Seq, cursor)
			}
			cursor = r.Seq
			seen++
			if err := s.Ack("f1", r.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	if s.Depth("f1") != 0 {
		t.Fatalf("depth %d after every event was acknowledged", s.Depth("f1"))
	}
}

// A replayed dead letter is queued again even though its id was seen.
func TestRequeueBypassesDedupe(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t: t0})
	defer s.Close()
	got := mustAppend(t, s, "f1", ev("a", `{"n":1}`))
	id, err := s.DeadLetter("f1", got[0].Seq, DeadLetter{EventID: "a", Event: []byte(`{"n":1}`), Reason: "rejected"})
	if err != nil {
		t.Fatal(err)
	}
	pipeline, seq, err := s.Requeue(id)
	if err != nil || pipeline != "f1" || seq != 2 {
		t.Fatalf("requeue: %s %d %v", pipeline, seq, err)
	}
	recs, _ := s.ReadAfter("f1", 0, math.MaxInt)
	if len(recs) != 1 || recs[0].Seq != 2 || recs[0].ID != "a" {
		t.Fatalf("queued after the replay: %+v", recs)
	}
	if _, err := s.GetDeadLetter(id); err == nil {
		t.Fatal("the dead letter is still there")
	}
}

// An id too long for the dedupe index is refused at the door, not after
// the sender heard 2xx, when it would stop every later commit.
func TestLongIDRefused(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	got := mustAppend(t, s, "p", ev("ok", "1"))
	if _, err := s.Append("p", ev(strings.Repeat("k", MaxIDLength+1), "2")); !errors.Is(err, ErrIDTooLong) {
		t.Fatalf("a %d-byte id: %v", MaxIDLength+1, err)
	}
	mustAppend(t, s, "p", ev(strings.Repeat("k", MaxIDLength), "3"))
	if err := s.Ack("p", got[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, c)
	defer s.Close()
	if s.Depth("p") != 1 {
		t.Fatalf("depth %d after reopening", s.Depth("p"))
	}
}

// A move into bbolt that fails (a disk full for a moment) must not let a
// later ack run without its event: the failed epoch is moved first, and
// the ack removes the event it names.
func TestAckAfterAFailedMove(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true) // the committer moves nothing while the test sets up
	mustAppend(t, s, "p", ev("a", "1"))
	// What a failed commit leaves: the epoch sealed, not applied.
	s.journalMu.Lock()
	s.journal.start(s.journal.epoch + 1)
	s.journalMu.Unlock()
	x := mustAppend(t, s, "p", ev("b", "2"))[0].Seq // in the epoch after it
	s.keepJournal.Store(false)
	if err := s.Ack("p", x); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.ReadAfter("p", 0, math.MaxInt)
	if s.Depth("p") != 1 || len(recs) != 1 || string(recs[0].Payload) != "1" {
		t.Fatalf("after acking seq %d: depth %d, queued %q", x, s.Depth("p"), payloads(recs))
	}
	s.Close()
	s = open(t, dir, c)
	defer s.Close()
	if recs, _ := s.ReadAfter("p", 0, math.MaxInt); len(recs) != 1 || string(recs[0].Payload) != "1" {
		t.Fatalf("after reopening: %q", payloads(recs))
	}
}

// Whatever bytes a damaged journal holds, reading them never panics, and
// an entry read back is the one written.
func FuzzDecodeJournalled(f *testing.F) {
	entry := journalled{pipeline: "f1", rec: Record{Seq: 7, ID: "a", Received: t0, Payload: []byte(`{"n":1}`)}}
	f.Add(appendEntry(nil, entry)[8:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		e, ok := decodeJournalled(body)
		if !ok {
			return
		}
		again, ok := decodeJournalled(appendEntry(nil, e)[8:])
		if !ok || again.pipeline != e.pipeline || again.rec.Seq != e.rec.Seq || again.rec.ID != e.rec.ID || string(again.rec.Payload) != string(e.rec.Payload) {
			t.Fatalf("%+v read back as %+v", e, again)
		}
	})
}

// Whatever bytes a journal file holds, a start reading it never panics
// (that would be reported as a damaged inbox.db), reads only entries of
// the epoch asked for, reports stretches inside the file, in order, and
// reads whole every file that holds any.
func FuzzReadEpoch(f *testing.F) {
	marker := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	file := appendJournalHeader(nil, 3, marker)
	for i := range 3 {
		e := journalled{pipeline: "f1", epoch: 3, rec: Record{Seq: uint64(i + 1), ID: fmt.Sprint(i), Received: t0, Payload: []byte(`{"n":1}`)}}
		file = appendEntry(append(file, marker[:]...), e)
	}
	if entries, damage := readEpoch(file, "inbox.wal.1", 3); len(entries) != 3 || len(damage) != 0 {
		f.Fatalf("the seed file reads as %d entries, %d damaged stretches; want 3 and none", len(entries), len(damage))
	}
	f.Add(file)
	f.Add(file[8:]) // no magic: legacy
	f.Add([]byte{})
	damagedHeader := slices.Clone(file)
	damagedHeader[25] ^= 1
	f.Add(damagedHeader)
	f.Fuzz(func(t *testing.T, b []byte) {
		firstEpoch(b)
		anyEntry(b)
		entries, damage := readEpoch(b, "inbox.wal.1", 3)
		// A start reads a file whole only when its beginning says it may
		// hold an epoch after the applied one (2 here).
		if !mayHoldAfter(b[:min(len(b), journalHeaderSize+8)], 2) && (len(entries) > 0 || len(damage) > 0) {
			t.Fatalf("a file read only in part holds %d entries of epoch 3", len(entries))
		}
		for _, e := range entries {
			if e.epoch != 3 {
				t.Fatalf("an entry of epoch %d read for epoch 3", e.epoch)
			}
		}
		var last int64
		for _, d := range damage {
			if d.From < last || d.To <= d.From || d.To > int64(len(b)) {
				t.Fatalf("damage %+v in a file of %d bytes, after byte %d", d, len(b), last)
			}
			last = d.To
		}
	})
}

// An event the journal could not read back after a crash (reading stops at
// an entry over maxJournalEntry, losing it and every later one) is refused
// before it is acknowledged; the largest one taken survives a crash.
func TestAppendRefusesWhatTheJournalCannotReadBack(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	s.keepJournal.Store(true) // the engine dies before the committer moves them
	largest := maxJournalEntry - journalEntrySlack - len("big") - len("f1")
	mustAppend(t, s, "f1", ev("a", "before"))
	if _, err := s.Append("f1", NewEvent{ID: "huge", Payload: make([]byte, largest+1)}); err == nil || !strings.Contains(err.Error(), "at most 63 MiB per event") {
		t.Fatalf("an event one byte over the limit: %v, want a refusal", err)
	}
	mustAppend(t, s, "f1", NewEvent{ID: "big", Payload: bytes.Repeat([]byte{'x'}, largest)})
	mustAppend(t, s, "f1", ev("c", "after"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, c)
	defer s.Close()
	recs, err := s.ReadAfter("f1", 0, math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[1].ID != "big" || len(recs[1].Payload) != largest || recs[2].ID != "c" {
		t.Fatalf("after the crash the inbox holds %d events, want a, big and c", len(recs))
	}
}

// An inbox.db deleted or emptied beside a journal that holds events was
// taken for a new inbox: every queued event was lost, and the engine said
// all were handled (a QA run). It is refused, saying what to do, and
// refused again at the next try; moving the journal away starts afresh.
func TestMissingDatabaseBesideAJournalIsRefused(t *testing.T) {
	const leftNew = "replaced by a new one, as a refused start killed before it removed its own leaves it"
	for _, damage := range []string{"deleted", "emptied", "deleted, the journal's first entry damaged too", leftNew} {
		t.Run(damage, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			s.keepJournal.Store(true) // as a kill -9 leaves it
			mustAppend(t, s, "f1", ev("a", "1"), ev("b", "2"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "inbox.db")
			if damage == "deleted, the journal's first entry damaged too" {
				// Found further on: a damaged first entry hid them all.
				os.Remove(db)
				editFile(t, journalPath(dir, 1), func(b []byte) { b[journalHeaderSize+8+5] ^= 0xff }) // its CRC
			} else if damage == "deleted" {
				os.Remove(db)
			} else if damage == leftNew {
				// 16 KiB, not empty: taken for the inbox, it lost both events.
				os.Remove(db)
				fresh, err := bolt.Open(db, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				fresh.Close()
			} else if err := os.Truncate(db, 0); err != nil {
				t.Fatal(err)
			}
			for try := range 2 {
				_, err := Open(dir, Options{Now: c.now})
				if err == nil || !strings.Contains(err.Error(), "inbox.db is missing or empty, but the inbox journal inbox.wal.") ||
					!strings.Contains(err.Error(), "move inbox.wal.0 and inbox.wal.1 out of the data folder") {
					t.Fatalf("try %d: Open = %v; want it refused, saying what to do", try, err)
				}
			}
			moveAway(t, dir, "inbox.wal.0", "inbox.wal.1")
			s = open(t, dir, c)
			defer s.Close()
			if n := s.Depth("f1"); n != 0 {
				t.Errorf("a fresh inbox holds %d events", n)
			}
		})
	}
}

// A new data folder, and one whose inbox.db is there, open as before.
func TestNewDataFolderOpens(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	mustAppend(t, s, "f1", ev("a", "1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, c)
	defer s.Close()
	if n := s.Depth("f1"); n != 1 {
		t.Errorf("depth %d after a reopen, want 1", n)
	}
}

// An inbox.db cut short or overwritten made bbolt panic or fault, as it
// opened it or as the start read it, and the engine died with a stack
// trace: it is an error naming the file.
func TestDamagedDatabaseIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
	}{
		{"cut to 8 KiB", cutTo(8192)},
		{"cut to 16 KiB", cutTo(16384)},
		{"cut to half", func(t *testing.T, path string, size int64) { cutTo(size/2)(t, path, size) }},
		{"cut to a quarter", func(t *testing.T, path string, size int64) { cutTo(size/4)(t, path, size) }},
		{"pages overwritten", func(t *testing.T, path string, size int64) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			noise := bytes.Repeat([]byte{0x5a, 0xc3, 0x17, 0xe9}, 4096)
			// Pages 2 to 10 held what Open reads in most runs, not all:
			// pages are written anew at each commit, and where the last
			// ones land varies (a flaky failure). The page of the root
			// bucket, named by the newer meta page, is read at every open.
			for _, page := range append([]int64{2, 3, 4, 5, 6, 7, 8, 9, 10}, rootPage(t, path)) {
				if _, err := f.WriteAt(noise, page*4096); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			for i := range 600 {
				mustAppend(t, s, "f1", ev(fmt.Sprint(i), strings.Repeat("x", 3000)))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "inbox.db")
			info, err := os.Stat(db)
			if err != nil || info.Size() < 1<<20 {
				t.Fatalf("setup: inbox.db is %v bytes (%v), want over 1 MiB", info.Size(), err)
			}
			tc.damage(t, db, info.Size())
			_, err = Open(dir, Options{Now: c.now})
			if err == nil || !strings.Contains(err.Error(), "inbox.db") || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("Open = %v; want an error naming inbox.db as damaged", err)
			}
			// Its advice works: moving inbox.db alone was refused, as the
			// journal beside it held events.
			for _, f := range []string{"inbox.db", "inbox.wal.0", "inbox.wal.1"} {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("the error does not name %s: %v", f, err)
				}
			}
			moveAway(t, dir, "inbox.db", "inbox.wal.0", "inbox.wal.1")
			s = open(t, dir, c)
			defer s.Close()
			if n := s.Depth("f1"); n != 0 {
				t.Errorf("an empty inbox holds %d events", n)
			}
		})
	}
}

// moveAway moves files out of the data folder dir, as a user told to
// does.
func moveAway(t *testing.T, dir string, files ...string) {
	t.Helper()
	elsewhere := t.TempDir()
	for _, f := range files {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(elsewhere, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// rootPage is the page of the root bucket of a bbolt file with 4 KiB
// pages, as its newer meta page (0 or 1) names it: after the page
// header (16 bytes), magic, version, page size and flags (4 each), the
// root page id (8), its sequence, the freelist and high water page ids
// (8 each), then the transaction id (8).
func rootPage(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2*4096 {
		t.Fatalf("reading the meta pages of %s: %d bytes, %v", path, len(b), err)
	}
	meta := b[:4096]
	if binary.LittleEndian.Uint64(b[4096+64:]) > binary.LittleEndian.Uint64(b[64:]) {
		meta = b[4096:]
	}
	return int64(binary.LittleEndian.Uint64(meta[32:]))
}

// editFile changes a file's bytes in place, as damage on disk would.
func editFile(t *testing.T, path string, edit func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func cutTo(size int64) func(t *testing.T, path string, _ int64) {
	return func(t *testing.T, path string, _ int64) {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

// An event's payload may hold bytes shaped like journal entries (a
// webhook body is the sender's to choose). A build that searched the
// journal byte by byte past the end of an epoch took them for events at
// the next start, replacing a queued one by its seq (a review). A start
// searches only for the epoch's marker, which no sender sees, so they
// stay payload: also when damage before them makes it search.
func TestJournalEntriesInsideAPayloadAreNotEvents(t *testing.T) {
	for _, how := range []string{"after a clean stop", "after a crash", "after a crash, the carrier's head damaged"} {
		t.Run(how, func(t *testing.T) {
			dir, c := t.TempDir(), &clock{t: t0}
			s := open(t, dir, c)
			s.keepJournal.Store(how != "after a clean stop")
			var forged []byte
			for epoch := uint64(1); epoch <= 64; epoch++ {
				e := journalled{pipeline: "f1", epoch: epoch, rec: Record{Seq: 1, ID: "forged", Received: t0, Payload: []byte("FORGED")}}
				forged = appendEntry(forged, e)                             // as a legacy file holds them
				forged = appendEntry(append(forged, make([]byte, 8)...), e) // behind a guessed marker
			}
			mustAppend(t, s, "f1", ev("victim", "a real queued event"))
			mustAppend(t, s, "f1", ev("carrier", string(forged)))
			s.Close()
			want := []string{"victim", "carrier"}
			if how == "after a crash, the carrier's head damaged" {
				// The start searches on from there, through the forged
				// entries: the carrier is lost, as any damaged event.
				editFile(t, journalPath(dir, 1), func(b []byte) { // the first epoch after a start is odd
					head := bytes.LastIndex(b[:bytes.Index(b, forged)], b[16:24]) // the header's marker
					b[head+8] ^= 0xff
				})
				want = want[:1]
			}

			s = open(t, dir, c)
			defer s.Close()
			recs, err := s.ReadAfter("f1", 0, math.MaxInt)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, want) || len(want) == 2 && string(recs[1].Payload) != string(forged) {
				t.Errorf("queued after the restart: %q; want %q, as accepted", got, want)
			}
		})
	}
}

// A journal an older build left after a crash (no header, no markers) is
// read as that build read it; and that build reads no entry from a file
// of this one, so it cannot take this build's bytes for its own.
func TestLegacyJournalIsRead(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	s := open(t, dir, c)
	applied := s.appliedEpoch
	s.Close()
	// As an older build left epoch applied+1 at a kill -9: two entries,
	// then the torn start of a third.
	var legacy []byte
	for seq, payload := range []string{"first", "second"} {
		legacy = appendEntry(legacy, journalled{pipeline: "f1", epoch: applied + 1,
			rec: Record{Seq: uint64(seq + 1), ID: payload, Received: t0, Payload: []byte(payload)}})
	}
	legacy = append(legacy, 0x40, 0, 0, 0, 1, 2)
	if err := os.WriteFile(journalPath(dir, int((applied+1)%2)), legacy, 0o600); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, c)
	recs, err := s.ReadAfter("f1", 0, math.MaxInt)
	if err != nil || !slices.Equal(payloads(recs), []string{"first", "second"}) {
		t.Fatalf("queued from a legacy journal: %q, %v", payloads(recs), err)
	}
	if got := mustAppend(t, s, "f1", ev("second", "again")); !got[0].Duplicate {
		t.Errorf("an id from a legacy journal is not recognised: %+v", got)
	}
	s.keepJournal.Store(true)
	mustAppend(t, s, "f1", ev("third", "third"))
	s.Close()

	// An older build reads a file from its start, entry after entry.
	marked := 0
	for i := range 2 {
		b, err := os.ReadFile(journalPath(dir, i))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(b, journalMagic[:]) {
			marked++
			if _, n := entryIn(b, 0); n != 0 {
				t.Errorf("an older build reads an entry at the start of %s", journalPath(dir, i))
			}
		}
	}
	if marked == 0 {
		t.Error("this build wrote no journal file with its header")
	}
	s = open(t, dir, c)
	defer s.Close()
	if recs, _ := s.ReadAfter("f1", 0, math.MaxInt); !slices.Equal(payloads(recs), []string{"first", "second", "third"}) {
		t.Errorf("after a crash of this build: %q", payloads(recs))
	}
}

// An inbox.db restored from a backup without the journal files of its
// time has moved fewer epochs in than the journal holds: the start read
// only the two epochs after its own and skipped the newer events without
// a word (a review). It is refused, saying what to do.
func TestOlderDatabaseThanItsJournalIsRefused(t *testing.T) {
	dir, c := t.TempDir(), &clock{t: t0}
	db := filepath.Join(dir, "inbox.db")
	s := open(t, dir, c)
	mustAppend(t, s, "f1", ev("a", "1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // starts move the epochs on
		s = open(t, dir, c)
		mustAppend(t, s, "f1", ev(fmt.Sprint("b", i), "2"))
		s.Close()
	}
	s = open(t, dir, c)
	s.keepJournal.Store(true) // as a kill -9 leaves it
	mustAppend(t, s, "f1", ev("c", "3"))
	s.Close()
	if err := os.WriteFile(db, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{Now: c.now})
	if err == nil || !strings.Contains(err.Error(), "inbox.db is older than the inbox journal beside it") ||
		!strings.Contains(err.Error(), "move inbox.wal.0 and inbox.wal.1 out of the data folder") {
		t.Fatalf("Open = %v; want it refused, saying what to do", err)
	}
	// Its advice works.
	moveAway(t, dir, "inbox.wal.0", "inbox.wal.1")
	s = open(t, dir, c)
	defer s.Close()
	if n := s.Depth("f1"); n != 1 {
		t.Errorf("the backup's inbox holds %d events, want its 1", n)
	}
}
