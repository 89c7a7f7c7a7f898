package inbox

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/loyalty-connector/engine/internal/wire"
)

// The journal is where an accepted event becomes durable. A bbolt commit
// writes every page the change touched (the queue, the dedupe index, whose
// random ids land on random pages) and syncs twice; measured here it took
// about 1 ms at the median and 6 ms at p99 under load, and a webhook waits
// for one or two of them. Appending the events to a file and syncing once
// takes about 0.2 ms. So Append writes to the journal, and the committer
// moves journalled events into bbolt later, many at a time, in the same
// transaction as the next ack or retry (see commit.go).
//
// The journal is two files used in turn, one per epoch: epoch e is written
// to inbox.wal.<e%2>. To move events into bbolt, the committer seals the
// current epoch (new appends go to the other file, from its start), copies
// the sealed epoch's events into bbolt and records, in that transaction,
// that the epoch is applied. A file is reused only after its epoch is
// applied. After a crash, Open replays the epochs after the applied one.
//
// Each file begins with a header: a magic, the epoch and a marker, 8
// random bytes drawn when the epoch starts, then a CRC-32C of those. Each
// entry: the marker, length (4 bytes), CRC-32C of the body (4), body:
// epoch, pipeline, seq and the encoded record. A start reads an epoch's
// entries one after another. Where there is no whole entry, it looks for
// the next one by its marker: found, the bytes between were damaged on
// disk (or torn by a power cut) and the events after them are read and
// the damage reported; not found, the epoch ended there (a write torn by
// a crash, never acknowledged, or an older epoch's bytes in a reused
// file, whose marker is another). A webhook body cannot imitate an entry:
// its sender never sees the marker. Damage to the last entries of the
// epoch being written looks like a torn write, and is not reported.
//
// Files of builds before the marker hold entries with no header and no
// marker (legacy): read one after another up to the first that is not
// whole, as those builds did. The magic's first four bytes, read as such
// an entry's length, are over maxJournalEntry, so those builds read no
// entry from a file of this build (the README: stop cleanly before a
// downgrade, which moves every journalled event into inbox.db).

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxJournalEntry bounds one entry, so a damaged length cannot make Open
// allocate gigabytes. Events are limited far below this by source.max_body.
const maxJournalEntry = 64 << 20

// journalEntrySlack is room for what an entry holds besides the event's
// payload, id and pipeline name (lengths, seq, times, attempts).
const journalEntrySlack = 1 << 10

// journalled is an event in the journal, not yet in bbolt.
type journalled struct {
	pipeline string
	epoch    uint64
	rec      Record
}

type journal struct {
	files  [2]*os.File
	epoch  uint64 // being written
	marker [8]byte
	off    int64 // where the next write goes in files[epoch%2]; 0: the header's place
	// failedEnd is where the furthest write of this epoch that failed
	// ended, until a write covers it.
	failedEnd int64
	noSync    bool
	// sync is syncData; a test wraps it to see what each sync covers,
	// which a process test cannot (kill -9 keeps the page cache).
	sync func(*os.File) error
	buf  []byte
}

func journalPath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("inbox.wal.%d", i))
}

func openJournal(dir string, noSync bool) (*journal, error) {
	j := &journal{noSync: noSync, sync: syncData}
	created := false
	for i := range j.files {
		path := journalPath(dir, i)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			created = true
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			j.close()
			return nil, fmt.Errorf("opening the inbox journal: %w", err)
		}
		j.files[i] = f
	}
	if created && !noSync {
		// The files' names must survive a power cut too, or the events
		// synced into them would be lost with them.
		if err := syncDir(dir); err != nil {
			j.close()
			return nil, fmt.Errorf("syncing the data folder: %w", err)
		}
	}
	return j, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (j *journal) close() error {
	var errs []error
	for _, f := range j.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// start makes epoch the one written next, from the start of its file,
// with a marker of its own.
func (j *journal) start(epoch uint64) {
	j.epoch, j.off, j.failedEnd = epoch, 0, 0
	_, _ = rand.Read(j.marker[:]) // never fails (crypto/rand)
}

// write appends entries of the current epoch, after the header if they
// are its first, and syncs them. On error nothing counts as written: the
// next write starts at the same place.
func (j *journal) write(entries []journalled) error {
	b := j.buf[:0]
	if j.off == 0 {
		b = appendJournalHeader(b, j.epoch, j.marker)
	}
	for i := range entries {
		entries[i].epoch = j.epoch
		b = append(b, j.marker[:]...)
		b = appendEntry(b, entries[i])
	}
	written := int64(len(b))
	if pad := j.failedEnd - (j.off + written); pad > 0 {
		// Zeros over what is left of a failed write, synced with this
		// one: its blanking may not have reached the disk, and its
		// entries (their senders were refused) would be found by their
		// marker behind this shorter write (a review). The next write
		// goes after this one's entries, over the zeros.
		b = append(b, make([]byte, pad)...)
	}
	j.buf = b
	f := j.files[j.epoch%2]
	_, err := f.WriteAt(b, j.off)
	if err == nil && !j.noSync {
		err = j.sync(f)
	}
	if err != nil {
		// The next write starts at the same place. Blank what may have
		// landed, so that no entry of this failed write (its senders were
		// refused) can be read back behind a shorter later one.
		_, _ = f.WriteAt(make([]byte, len(b)), j.off)
		_ = j.sync(f)
		j.failedEnd = max(j.failedEnd, j.off+int64(len(b)))
		return fmt.Errorf("writing the inbox journal: %w", err)
	}
	j.off += written
	j.failedEnd = 0
	return nil
}

// journalMagic begins every journal file of this build. Read as a
// legacy entry's length, its first four bytes are over maxJournalEntry.
var journalMagic = [8]byte{0xff, 'L', 'C', 'J', 'W', 'A', 'L', '2'}

// journalHeaderSize: magic, epoch, marker, CRC-32C of the three.
const journalHeaderSize = 8 + 8 + 8 + 4

func appendJournalHeader(b []byte, epoch uint64, marker [8]byte) []byte {
	start := len(b)
	b = append(b, journalMagic[:]...)
	b = binary.LittleEndian.AppendUint64(b, epoch)
	b = append(b, marker[:]...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// journalHeader reads the header at the start of a file's contents. A
// file that does not begin with the magic is legacy (or its magic is
// damaged); ok is false for it and for a damaged header, whose marker
// readEpoch looks for behind it.
func journalHeader(b []byte) (epoch uint64, marker [8]byte, legacy, ok bool) {
	if !bytes.HasPrefix(b, journalMagic[:]) {
		return 0, marker, true, false
	}
	if len(b) < journalHeaderSize || crc32.Checksum(b[:journalHeaderSize-4], crcTable) != binary.LittleEndian.Uint32(b[journalHeaderSize-4:]) {
		return 0, marker, false, false
	}
	copy(marker[:], b[16:24])
	return binary.LittleEndian.Uint64(b[8:16]), marker, false, true
}

// appendEntry appends e to b as a legacy entry: length, CRC, body. An
// entry of this build is the marker, then that.
func appendEntry(b []byte, e journalled) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, e.epoch)
	b = wire.AppendFieldString(b, e.pipeline)
	b = binary.AppendUvarint(b, e.rec.Seq)
	b = e.rec.appendEncoded(b)
	body := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

// JournalDamage is a stretch of an inbox journal file that a start could
// not read, though entries of the epoch lie in or after it: the events
// written in it are lost.
type JournalDamage struct {
	File     string // inbox.wal.0 or inbox.wal.1
	Epoch    uint64
	From, To int64 // byte offsets: [From, To)
}

// head reads what a start needs of journal file i: the whole file when
// it may hold an epoch after applied, or when whole says so; else its
// beginning only. The files keep the size of their largest epoch:
// reading both whole at every start cost a stopped engine 512 MiB and
// 1.2 s after a 256 MiB backlog (a review).
func (j *journal) head(i int, applied uint64, whole bool) ([]byte, error) {
	f := j.files[i]
	read := func(n int64) ([]byte, error) {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading the inbox journal %s: %w", filepath.Base(f.Name()), err)
		}
		return b, nil
	}
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the inbox journal %s: %w", filepath.Base(f.Name()), err)
	}
	if !whole {
		b, err := read(min(info.Size(), journalHeaderSize+8))
		if err != nil || !mayHoldAfter(b, applied) {
			return b, err
		}
	}
	return read(info.Size())
}

// mayHoldAfter reports whether a file beginning with b may hold entries of
// an epoch after applied: its header says so, or it has none that can be
// read (legacy, or damaged: read whole, to find the first entry's marker
// or tell of damage; rare, as an epoch's first write writes its header).
func mayHoldAfter(b []byte, applied uint64) bool {
	if epoch, _, _, ok := journalHeader(b); ok {
		return epoch > applied
	}
	return len(b) > 0
}

// firstEntryMarker is the marker of the entry right behind a damaged
// header, which the engine writes with the header and which is the
// header's own: found if the header's marker field agrees, or the
// header's CRC does over its magic, epoch and that marker (the marker
// field is what was damaged). Not taken on the magic alone: a write torn
// after the first 16 bytes of a header over a legacy file would offer a
// sender's payload there (a review).
func firstEntryMarker(b []byte) (marker [8]byte, found bool) {
	if len(b) < journalHeaderSize+8 {
		return marker, false
	}
	copy(marker[:], b[journalHeaderSize:])
	if marker == [8]byte{} {
		return marker, false
	}
	if bytes.Equal(b[16:24], marker[:]) {
		return marker, true
	}
	crc := crc32.Update(crc32.Checksum(b[:16], crcTable), crcTable, marker[:])
	return marker, crc == binary.LittleEndian.Uint32(b[24:28])
}

// readEpoch returns the entries of epoch in a file's contents b (named
// file), and the stretches it had to pass over to reach some of them.
func readEpoch(b []byte, file string, epoch uint64) ([]journalled, []JournalDamage) {
	headerEpoch, marker, legacy, ok := journalHeader(b)
	var out []journalled
	if legacy {
		for off := 0; ; {
			e, n := entryIn(b, off)
			if n == 0 || e.epoch != epoch {
				break
			}
			out = append(out, e)
			off += n
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	r := epochReader{b: b, marker: marker, epoch: epoch, last: map[string]uint64{}}
	var damage []JournalDamage
	off := journalHeaderSize
	switch {
	case ok && headerEpoch != epoch:
		return nil, nil
	case !ok:
		// A damaged header (a byte of it damaged on disk, or a first
		// write torn at a crash): its marker is the first entry's.
		var found bool
		r.marker, found = firstEntryMarker(b)
		if _, n := r.entryAt(off); !found || n == 0 {
			// Damage wider than that (a sector lost): the epoch's entries
			// cannot be told from bytes shaped like them in a payload, so
			// none is taken, but whole ones say the file is damaged. Not
			// looked for in a legacy file that begins with a whole entry
			// (of an older epoch): it is not damaged.
			if _, whole := entryIn(b, 0); whole == 0 && holdsEntryOf(b, epoch) {
				return nil, []JournalDamage{{File: file, Epoch: epoch, From: 0, To: int64(len(b))}}
			}
			return nil, nil
		}
		damage = append(damage, JournalDamage{File: file, Epoch: epoch, From: 0, To: int64(off)})
	}
	for off < len(b) {
		if e, n := r.entryAt(off); n > 0 {
			out = append(out, e)
			r.last[e.pipeline] = e.rec.Seq
			off += n
			continue
		}
		next := r.next(off + 1)
		if next < 0 {
			break
		}
		damage = append(damage, JournalDamage{File: file, Epoch: epoch, From: int64(off), To: int64(next)})
		off = next
	}
	return out, damage
}

// epochReader reads the entries of one epoch of a file of this build.
type epochReader struct {
	b      []byte
	marker [8]byte
	epoch  uint64
	// last is the seq last read, by pipeline. Seqs rise in the order
	// entries are written, and a failed write's are never given again:
	// an entry whose seq does not rise is one of a failed write (its
	// senders were refused) that its blanking did not reach, behind a
	// shorter write in its place (a review).
	last map[string]uint64
}

// entryAt reads the entry at off and its length, or a length of 0 when
// there is none: no whole entry, another epoch's or marker, or a seq
// that does not rise.
func (r *epochReader) entryAt(off int) (journalled, int) {
	e, n := markedEntryIn(r.b, off, r.marker, r.epoch)
	if n == 0 || e.rec.Seq <= r.last[e.pipeline] {
		return journalled{}, 0
	}
	return e, n
}

// next is where the first entry entryAt takes begins at or after from,
// or -1.
func (r *epochReader) next(from int) int {
	for from < len(r.b) {
		i := bytes.Index(r.b[from:], r.marker[:])
		if i < 0 {
			return -1
		}
		if _, n := r.entryAt(from + i); n > 0 {
			return from + i
		}
		from += i + 1
	}
	return -1
}

// markedEntryIn reads the entry of epoch with marker at b[off:] and its
// length, or a length of 0 when there is none.
func markedEntryIn(b []byte, off int, marker [8]byte, epoch uint64) (journalled, int) {
	if len(b)-off < len(marker) || !bytes.Equal(b[off:off+len(marker)], marker[:]) {
		return journalled{}, 0
	}
	e, n := entryIn(b, off+len(marker))
	if n == 0 || e.epoch != epoch {
		return journalled{}, 0
	}
	return e, len(marker) + n
}

// entryIn reads the legacy entry at b[off:] and its length, or a length
// of 0 when there is no whole entry there.
func entryIn(b []byte, off int) (journalled, int) {
	if len(b)-off < 8 {
		return journalled{}, 0
	}
	n := int(binary.LittleEndian.Uint32(b[off:]))
	if n == 0 || n > maxJournalEntry || n > len(b)-off-8 {
		return journalled{}, 0
	}
	body := b[off+8 : off+8+n]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[off+4:]) {
		return journalled{}, 0
	}
	e, ok := decodeJournalled(body)
	if !ok {
		return journalled{}, 0
	}
	return e, 8 + n
}

// firstEpoch is the epoch a file's contents begin with, if any.
func firstEpoch(b []byte) (uint64, bool) {
	epoch, _, legacy, ok := journalHeader(b)
	if legacy {
		e, n := entryIn(b, 0)
		return e.epoch, n > 0
	}
	return epoch, ok
}

// anyEntry finds a whole entry anywhere in a file's contents: a journal
// that ever held an event has one, even with its header or first entry
// damaged. It checks every byte offset (an entry of this build holds a
// legacy one after its marker), which is slow for a large file but only
// done for an inbox.db that is new.
func anyEntry(b []byte) (epoch uint64, found bool) {
	for off := 0; off+8 <= len(b); off++ {
		if e, n := entryIn(b, off); n > 0 {
			return e.epoch, true
		}
	}
	return 0, false
}

// holdsEntryOf reports whether a whole entry of epoch is anywhere in b.
// An offset is checksummed only if its body begins as one of epoch does,
// with a name's length: checksumming every offset whose length fits took
// seconds for a large file, and far longer where payloads hold small
// bytes, which read as lengths that fit. Payloads shaped to pass that
// test could still make it checksum the file many times over (a review):
// past twice the file's size in all, it gives up and says yes, as a file
// whose header and first entry are gone, with such bytes in it, is
// damaged enough to say so.
func holdsEntryOf(b []byte, epoch uint64) bool {
	var want [binary.MaxVarintLen64]byte
	prefix := want[:binary.PutUvarint(want[:], epoch)]
	budget := 2*len(b) + 1<<20
	for from := 8; from < len(b); {
		i := bytes.Index(b[from:], prefix)
		if i < 0 {
			return false
		}
		off := from + i - 8
		length := int(binary.LittleEndian.Uint32(b[off:]))
		if name, k := binary.Uvarint(b[from+i+len(prefix):]); k > 0 && name > 0 && name <= 255 && length <= len(b)-off-8 {
			if budget -= length; budget < 0 {
				return true
			}
			if e, n := entryIn(b, off); n > 0 && e.epoch == epoch {
				return true
			}
		}
		from += i + 1
	}
	return false
}

func decodeJournalled(b []byte) (journalled, bool) {
	d := wire.NewReader(b)
	epoch := d.Uvarint()
	name := d.FieldString()
	seq := d.Uvarint()
	if d.Bad() {
		return journalled{}, false
	}
	rec, err := decodeRecord(seq, d.Rest())
	if err != nil {
		return journalled{}, false
	}
	return journalled{pipeline: name, epoch: epoch, rec: rec}, true
}
