package inbox

import (
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
// Each entry: length (4 bytes), CRC-32C of the body (4), body: epoch,
// pipeline, seq and the encoded record. Reading stops at the first entry
// that is short, damaged or of another epoch: a torn write at a crash (its
// event was never acknowledged), or an older epoch's entries left behind
// in a reused file.

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
	off    int64  // where the next entry goes in files[epoch%2]
	noSync bool
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

// start makes epoch the one written next, from the start of its file.
func (j *journal) start(epoch uint64) {
	j.epoch, j.off = epoch, 0
}

// write appends entries of the current epoch and syncs them. On error
// nothing counts as written: the next write starts at the same place.
func (j *journal) write(entries []journalled) error {
	b := j.buf[:0]
	for i := range entries {
		entries[i].epoch = j.epoch
		b = appendEntry(b, entries[i])
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
		return fmt.Errorf("writing the inbox journal: %w", err)
	}
	j.off += int64(len(b))
	return nil
}

// appendEntry appends e to b as it is stored: length, CRC, body.
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

// read returns the entries of epoch in its file, up to the first that is
// short, damaged or of another epoch: a write torn by a crash (never
// acknowledged) ends an epoch so, as do an older epoch's entries left in
// a reused file. It does not look further for entries after damage in
// the middle of an epoch: searching every byte offset found entries
// inside events' payloads, which a webhook body could shape to replace a
// queued event at the next start, and took seconds for a large journal
// (a review of a build that did).
func (j *journal) read(epoch uint64) ([]journalled, error) {
	f := j.files[epoch%2]
	var out []journalled
	for off := int64(0); ; {
		e, n, err := entryAt(f, off)
		if err != nil || n == 0 || e.epoch != epoch {
			return out, err
		}
		out = append(out, e)
		off += n
	}
}

// entryAt reads the entry at off and its length on disk, or a length of 0
// when there is no whole entry there.
func entryAt(f *os.File, off int64) (journalled, int64, error) {
	var head [8]byte
	if _, err := f.ReadAt(head[:], off); err != nil {
		if errors.Is(err, io.EOF) {
			return journalled{}, 0, nil
		}
		return journalled{}, 0, fmt.Errorf("reading the inbox journal: %w", err)
	}
	n := binary.LittleEndian.Uint32(head[:4])
	if n == 0 || n > maxJournalEntry {
		return journalled{}, 0, nil
	}
	body := make([]byte, n)
	if _, err := f.ReadAt(body, off+8); err != nil {
		if errors.Is(err, io.EOF) {
			return journalled{}, 0, nil
		}
		return journalled{}, 0, fmt.Errorf("reading the inbox journal: %w", err)
	}
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(head[4:]) {
		return journalled{}, 0, nil
	}
	e, ok := decodeJournalled(body)
	if !ok {
		return journalled{}, 0, nil
	}
	return e, 8 + int64(n), nil
}

// findEntry finds the first whole entry at from or after whose epoch
// wanted takes.
func findEntry(f *os.File, from int64, wanted func(epoch uint64) bool) (int64, bool, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("reading the inbox journal: %w", err)
	}
	size := info.Size()
	if from >= size-8 {
		return 0, false, nil
	}
	rest := make([]byte, size-from)
	if _, err := f.ReadAt(rest, from); err != nil && !errors.Is(err, io.EOF) {
		return 0, false, fmt.Errorf("reading the inbox journal: %w", err)
	}
	for i := 0; i+8 <= len(rest); i++ {
		n := int(binary.LittleEndian.Uint32(rest[i:]))
		if n == 0 || n > len(rest)-i-8 {
			continue
		}
		body := rest[i+8 : i+8+n]
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(rest[i+4:]) {
			continue
		}
		if e, ok := decodeJournalled(body); ok && wanted(e.epoch) {
			return from + int64(i), true, nil
		}
	}
	return 0, false, nil
}

// anyEntry finds a whole entry anywhere in either file: a journal that
// ever held an event has one, even with its first entry damaged.
func (j *journal) anyEntry() (file string, epoch uint64, found bool) {
	for _, f := range j.files {
		at, ok, err := findEntry(f, 0, func(uint64) bool { return true })
		if err != nil || !ok {
			continue
		}
		if e, n, err := entryAt(f, at); err == nil && n > 0 {
			return f.Name(), e.epoch, true
		}
	}
	return "", 0, false
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
