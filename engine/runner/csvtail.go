package runner

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A CSV file may still be written while it is imported: an upload that
// paused at the end of a line was taken at the pause, its first part
// imported and the file filed in done/, where the writer went on writing
// rows that were never sent (a QA run: 15,001 of 20,000); one that grew
// while it was read was failed as "changed", all its rows delivered, and
// importing it again as the error advised sent them all twice (another).
// So an import reads the file as far as it was when hashed (an inbox
// file, to its last whole record, unless its last line has waited
// unterminatedWait for its end), and then, as long as the last bytes
// it read are still where they were, reads on through the whole records
// appended, under the same content hash and checkpoint. Only a file
// rewritten (cut, or what was read changed) fails.

// csvSettle is how long a file dropped into an inbox folder must have
// held still, after its import read to its end, before the import ends
// and the file is filed away: a writer's pause shorter than this is not
// taken for the end. A var for tests.
var csvSettle = 5 * time.Second

// csvTailPoll is how often an import that read to the end of its file
// looks whether it grew.
const csvTailPoll = 200 * time.Millisecond

// csvView is a file read as far as end, which grows as whole records
// are appended: the rows read are those of the bytes hashed, never the
// part of a record a writer has not finished.
type csvView struct {
	f        *os.File
	pos, end int64
}

func (v *csvView) Read(p []byte) (int, error) {
	if v.pos >= v.end {
		return 0, io.EOF
	}
	if int64(len(p)) > v.end-v.pos {
		p = p[:v.end-v.pos]
	}
	n, err := v.f.ReadAt(p, v.pos)
	v.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads the file itself, apart from the view's position: what a
// broken row's dead letter quotes (csvfile.Reader.Text).
func (v *csvView) ReadAt(p []byte, off int64) (int, error) { return v.f.ReadAt(p, off) }

func (v *csvView) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += v.pos
	case io.SeekEnd:
		off += v.end
	}
	if off < 0 {
		return 0, errors.New("seek before the start of the file")
	}
	v.pos = off
	return off, nil
}

// errCut: the file is shorter than the bytes that were to be hashed.
var errCut = errors.New("the file was cut short")

// hashRange adds bytes from..to of f to h.
func hashRange(h hash.Hash, f *os.File, from, to int64) error {
	n, err := io.Copy(h, io.NewSectionReader(f, from, to-from))
	if err != nil {
		return err
	}
	if n < to-from {
		return errCut
	}
	return nil
}

// sumOf is the content hash h has so far, as the ids of rows use it.
func sumOf(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil))[:16] }

// csvGrowth is kept per pipeline and file name: an import of the file
// read its first Bytes bytes (of hash Hash), whose rows' ids and
// checkpoint are of content ID (the file as it was when the first of
// those imports began). A file of that name that starts with those bytes
// grew since: it is imported under ID, after the rows the checkpoint
// passed, so a restart sends only the rows after them. It is forgotten
// once the file is imported whole (forgetGrowth).
//
// Only the same file, by its identity on disk (fileIdentity): a new file
// that takes the name and starts with the same rows, a cumulative export
// of a segment that only grew, say, is new content and sent whole, as
// before; taken for the old one grown, its rows would not be sent again
// (F2's tags, whose ttl such an export renews, would expire).
type csvGrowth struct {
	ID    string `json:"id"`
	Bytes int64  `json:"bytes"`
	Hash  string `json:"hash"`
	File  string `json:"file,omitempty"`
}

func csvGrowthKey(pipeline, file string) string {
	return "csv-grown:" + pipeline + ":" + filepath.Base(file)
}

// csvTail follows the end of a file while it is imported.
type csvTail struct {
	f    *os.File
	file string
	view *csvView
	h    hash.Hash // of the file's first view.end bytes
	// guard is the last bytes read (up to guardBytes before view.end):
	// still there, where they were, the file was appended to, not
	// rewritten. Hashing all that was read again at every change took a
	// core on a large file written slowly (a review).
	guard []byte
	// size and mod are the file as last looked at; changed is when (by
	// the runner's clock) it was last seen to change.
	size    int64
	mod     time.Time
	changed time.Time
}

// errRewritten: what an import read of a file is no longer how the file
// starts. rewrittenError says so in full, with the import's figures.
type errRewritten struct{ why string }

func (e *errRewritten) Error() string { return e.why }

// pending reports whether the file holds more than was read: the start
// of a line still being written.
func (t *csvTail) pending() bool { return t.size > t.view.end }

// look looks at the file again, at now, once the rows read so far are
// all read. It reports whether whole records were appended (the view now
// reaches them: read on), or an error when what was read changed.
func (t *csvTail) look(now time.Time) (bool, error) {
	info, err := t.f.Stat()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", t.file, err)
	}
	if info.Size() == t.size && info.ModTime().Equal(t.mod) {
		if t.pending() && now.Sub(t.changed) >= unterminatedWait {
			// A last line with no end that held still that long is the
			// end: read, as the watcher takes such a file.
			return true, t.extend(info.Size())
		}
		return false, nil
	}
	t.size, t.mod, t.changed = info.Size(), info.ModTime(), now
	if info.Size() < t.view.end {
		return false, &errRewritten{fmt.Sprintf("it is now %d bytes, shorter than the %d bytes read", info.Size(), t.view.end)}
	}
	if len(t.guard) > 0 {
		again, err := t.lastRead()
		if err != nil {
			return false, err
		}
		if !bytes.Equal(again, t.guard) {
			return false, &errRewritten{fmt.Sprintf("the bytes before byte %d, read already, are not what they were", t.view.end)}
		}
	}
	if !t.pending() {
		return false, nil // only its time changed: touched
	}
	if t.view.end > 0 && t.guard[len(t.guard)-1] != '\n' {
		// Its last line, read as a row, had no end, and the file went on
		// after it: that row was only its first part.
		return false, &errRewritten{"its last line, read as a row once the file had held still for a while, went on after all"}
	}
	// Up to the end of the last whole record: the rest is one still being
	// written, a line or a quoted value over several (read in two, it was
	// two broken rows: a review).
	end, err := lastRecordEnd(t.f, t.view.end, info.Size())
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", t.file, err)
	}
	if end == t.view.end {
		return false, nil
	}
	return true, t.extend(end)
}

// lastRecordEnd is the offset after the last line break in bytes
// from..to of f that is outside quotes, counting quotes from from (the
// end of a record), or from itself when there is none: in CSV a quoted
// value holds its own quotes doubled, so a line break after an even
// number of them ends a record.
func lastRecordEnd(f *os.File, from, to int64) (int64, error) {
	end, quotes := from, 0
	buf := make([]byte, min(to-from, 64<<10))
	for at := from; at < to; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-at)], at)
		for i, c := range buf[:n] {
			switch {
			case c == '"':
				quotes++
			case c == '\n' && quotes%2 == 0:
				end = at + int64(i) + 1
			}
		}
		at += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && at >= to) {
			return from, err
		}
	}
	return end, nil
}

// extend has the view, and the hash, reach to.
func (t *csvTail) extend(to int64) error {
	if err := hashRange(t.h, t.f, t.view.end, to); err != nil {
		return &errRewritten{fmt.Sprintf("it was cut short while its new lines were read: %v", err)}
	}
	t.view.end = to
	return t.keepGuard()
}

// guardBytes is how much of what was read the tail keeps to tell an
// append from a rewrite.
const guardBytes = 4096

// keepGuard keeps the last bytes read as the guard.
func (t *csvTail) keepGuard() (err error) {
	t.guard, err = t.lastRead()
	return err
}

// lastRead reads the file's last guardBytes before view.end again.
func (t *csvTail) lastRead() ([]byte, error) {
	b := make([]byte, min(t.view.end, guardBytes))
	if _, err := t.f.ReadAt(b, t.view.end-int64(len(b))); err != nil {
		return nil, &errRewritten{fmt.Sprintf("the bytes it read could not be read again: %v", err)}
	}
	return b, nil
}
