// Package csvfile is the csv source: a Braze segment export (or any CSV with
// a header row) read row by row, each row an event keyed by column name.
package csvfile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/engine/spec"
)

// Source reads CSV files. The Braze dashboard export's columns are listed
// in braze.md §8 (user_id is the external id); any header works.
var Source = &spec.SourceType{
	Name: "csv",
	Kind: spec.CSVSource,
	Doc:  "a CSV file with a header row, such as a Braze segment export",
}

// Row is one data row.
type Row struct {
	Number int // 1 for the first row after the header
	Line   int // the file line it starts on
	Values map[string]any
}

// RowError is a row that cannot become an event; reading goes on after it.
type RowError struct {
	File   string
	Number int
	Line   int
	Reason string
}

func (e *RowError) Error() string {
	return fmt.Sprintf("%s:%d: row %d: %s", e.File, e.Line, e.Number, e.Reason)
}

// notUTF8 is what to do about text that is not UTF-8.
const notUTF8 = `the file is not UTF-8: save it as CSV UTF-8 (Excel's "CSV UTF-8", not its plain "CSV")`

// Reader reads rows after the header.
type Reader struct {
	file      string
	src       io.ReadSeeker
	delimiter rune
	csv       *csv.Reader
	base      int64 // where csv's input starts in src
	lineBase  int   // lines of src before csv's first line
	header    []string
	number    int
}

// NewReader reads the header row. file names the input in messages. The
// input is read again from an earlier point after a row whose quote runs
// on over the lines after it (see Next), hence the Seeker.
func NewReader(src io.ReadSeeker, file string, delimiter rune) (*Reader, error) {
	r := &Reader{file: file, src: src, delimiter: delimiter}
	// A byte-order mark (Excel writes one) is not part of the first column
	// name; skipped before parsing, so a quoted first name still parses.
	var bom [3]byte
	if n, _ := io.ReadFull(src, bom[:]); n == 3 && string(bom[:]) == "\ufeff" {
		r.base = 3
	}
	if err := r.readFrom(r.base, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	header, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the file is empty; a CSV source needs a header row naming the columns", file)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the header row: %s", file, parseReason(err, 0))
	}
	// encoding/csv ends rows at \n only: in a file whose lines end with a
	// lone \r (old Mac, Excel's "CSV (Macintosh)") the header row runs on
	// to the end of the file, which would import as no rows at all.
	for i, h := range header {
		h = strings.TrimSpace(h)
		if strings.Contains(h, "\r") {
			return nil, fmt.Errorf("%s: the line endings are CR only (old Mac or Excel \"CSV (Macintosh)\"), so the whole file reads as its header row; save it with LF or CRLF line endings", file)
		}
		if strings.Contains(h, "\n") {
			return nil, fmt.Errorf("%s:1: column %d of the header row has a line break in its name", file, i+1)
		}
	}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if !utf8.ValidString(h) {
			return nil, fmt.Errorf("%s:1: column %d of the header row is not UTF-8 text; %s", file, i+1, notUTF8)
		}
		if h == "" {
			return nil, fmt.Errorf("%s:1: column %d of the header row has no name", file, i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("%s:1: the header row names column %q twice", file, h)
		}
		seen[h] = true
		header[i] = h
	}
	r.header = header
	return r, nil
}

// readFrom parses src from byte offset at, whose line is lineBase+1.
func (r *Reader) readFrom(at int64, lineBase int) error {
	if _, err := r.src.Seek(at, io.SeekStart); err != nil {
		return err
	}
	cr := csv.NewReader(r.src)
	if r.delimiter != 0 {
		cr.Comma = r.delimiter
	}
	cr.FieldsPerRecord = -1 // counted here, to name the row in the message
	r.csv, r.base, r.lineBase = cr, at, lineBase
	return nil
}

// Header returns the column names.
func (r *Reader) Header() []string { return r.header }

// Offset is how many bytes of the input the header and the rows returned
// so far take up: against the file's size, how far the import has read.
func (r *Reader) Offset() int64 { return r.base + r.csv.InputOffset() }

// Next returns the next row, io.EOF after the last, or a *RowError for a
// row that is broken (the next call reads on).
//
// A quote that is opened and never closed makes encoding/csv read every
// line after it into the same field, to the end of the file: one broken
// row would swallow all the rows after it. So such a row is its first
// line only, and reading goes on from its second line. (A quote that a
// later stray quote closes is valid CSV, or an error no reader can undo:
// those rows stay as encoding/csv reads them.)
func (r *Reader) Next() (Row, error) {
	start := r.Offset()
	record, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return Row{}, io.EOF
	}
	r.number++
	if err != nil {
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return Row{}, fmt.Errorf("%s: reading row %d: %w", r.file, r.number, err)
		}
		line := r.lineBase + pe.StartLine
		reason := parseReason(err, r.lineBase)
		if errors.Is(pe.Err, csv.ErrQuote) && pe.Line > pe.StartLine {
			cut, err := r.cutBack(start, line)
			if err != nil {
				return Row{}, fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
			}
			if cut {
				reason = "a quote in this row is never closed, so it ran on to the end of the file; the lines after this one are read as rows of their own"
			}
		}
		return Row{}, &RowError{r.file, r.number, line, reason}
	}
	line, _ := r.csv.FieldPos(0)
	line += r.lineBase
	if len(record) != len(r.header) {
		return Row{}, &RowError{r.file, r.number, line, fmt.Sprintf("has %d columns, the header has %d; check the delimiter and quoting of this row", len(record), len(r.header))}
	}
	values := make(map[string]any, len(record))
	for i, v := range record {
		// Excel's plain "CSV" on Windows is Windows-1252: its accented
		// letters would reach the peer as U+FFFD, with no word of it.
		if !utf8.ValidString(v) {
			fieldLine, col := r.csv.FieldPos(i)
			return Row{}, &RowError{r.file, r.number, line, fmt.Sprintf("column %d (%q, at line %d, character %d) is not UTF-8 text; %s", i+1, r.header[i], r.lineBase+fieldLine, col, notUTF8)}
		}
		values[r.header[i]] = v
	}
	return Row{Number: r.number, Line: line, Values: values}, nil
}

// cutBack makes the record at offset start, whose first line is line,
// that first line only when a quote of it is still open at the end of the
// file: parsing goes on from the line after. Otherwise the file is left
// where encoding/csv had it, and it reads on from there.
func (r *Reader) cutBack(start int64, line int) (cut bool, err error) {
	was, err := r.src.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, err
	}
	first, next, err := r.firstLine(start)
	if err != nil {
		return false, err
	}
	open, err := r.quoteLeftOpen(first)
	if err != nil || !open {
		if _, serr := r.src.Seek(was, io.SeekStart); err == nil {
			err = serr
		}
		return false, err
	}
	return true, r.readFrom(next, line)
}

// firstLine returns where the first line of the record at start begins
// (after the blank lines encoding/csv skips) and where the line after it
// begins.
func (r *Reader) firstLine(start int64) (first, next int64, err error) {
	if _, err := r.src.Seek(start, io.SeekStart); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReader(r.src)
	at := start
	for {
		text, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		first, at = at, at+int64(len(text))
		if err != nil || (text != "\n" && text != "\r\n") {
			return first, at, nil // the record's first line, or the end of the file
		}
	}
}

// quoteLeftOpen reads the record that starts at offset first as
// encoding/csv does, and reports whether a quoted field of it is still
// open at the end of the file.
func (r *Reader) quoteLeftOpen(first int64) (bool, error) {
	if _, err := r.src.Seek(first, io.SeekStart); err != nil {
		return false, err
	}
	br := bufio.NewReader(r.src)
	delimiter := r.delimiter
	if delimiter == 0 {
		delimiter = ','
	}
	fieldStart := true
	for {
		c, _, err := br.ReadRune()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch {
		case fieldStart && c == '"':
			for closed := false; !closed; {
				c, _, err := br.ReadRune()
				if errors.Is(err, io.EOF) {
					return true, nil
				}
				if err != nil {
					return false, err
				}
				if c == '"' {
					if next, _ := br.Peek(1); len(next) == 1 && next[0] == '"' {
						_, _ = br.Discard(1) // "" is a quote inside the field
					} else {
						closed = true
					}
				}
			}
			fieldStart = false
		case c == '\n':
			return false, nil // the record ended with its quotes closed
		case c == delimiter:
			fieldStart = true
		default:
			fieldStart = false
		}
	}
}

// parseReason says what is wrong, with the line counted from the top of
// the file (lineBase: lines before the parser's first).
func parseReason(err error, lineBase int) string {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	var what string
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		what = `a " inside a field that does not start with one; quote the whole field and write inner quotes as ""`
	case errors.Is(pe.Err, csv.ErrQuote):
		what = "a quoted field is not closed, or has text after its closing quote"
	default:
		what = pe.Err.Error()
	}
	return fmt.Sprintf("%s (line %d, character %d)", what, lineBase+pe.Line, pe.Column)
}
