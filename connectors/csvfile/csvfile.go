// Package csvfile is the csv source: a Braze segment export (or any CSV with
// a header row) read row by row, each row an event keyed by column name.
package csvfile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

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
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
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

// Next returns the next row, io.EOF after the last, or a *RowError for a
// row that is broken (the next call reads on).
//
// A quote that is opened and never closed makes encoding/csv read the
// lines after it into the same field, to the end of the file or to the
// next stray quote: one broken row would swallow every row after it. So
// when a broken row spans several lines, only its first line is taken as
// the row, and reading goes on from its second line.
func (r *Reader) Next() (Row, error) {
	start := r.base + r.csv.InputOffset()
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
		if pe.Line > pe.StartLine {
			if err := r.readAfterFirstLine(start, line); err != nil {
				return Row{}, err
			}
			reason += spanNote
		}
		return Row{}, &RowError{r.file, r.number, line, reason}
	}
	line, _ := r.csv.FieldPos(0)
	line += r.lineBase
	if len(record) != len(r.header) {
		reason := fmt.Sprintf("has %d columns, the header has %d; check the delimiter and quoting of this row", len(record), len(r.header))
		if slices.ContainsFunc(record, func(v string) bool { return strings.Contains(v, "\n") }) {
			if err := r.readAfterFirstLine(start, line); err != nil {
				return Row{}, err
			}
			reason += spanNote
		}
		return Row{}, &RowError{r.file, r.number, line, reason}
	}
	values := make(map[string]any, len(record))
	for i, v := range record {
		values[r.header[i]] = v
	}
	return Row{Number: r.number, Line: line, Values: values}, nil
}

const spanNote = "; it ran on over the lines after it, which are read as rows of their own"

// readAfterFirstLine goes back to start, where the broken row's text
// begins (after the blank lines encoding/csv skips), and reads on from the
// line after firstLine, its first.
func (r *Reader) readAfterFirstLine(start int64, firstLine int) error {
	if _, err := r.src.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
	}
	br := bufio.NewReader(r.src)
	at := start
	for {
		text, err := br.ReadString('\n')
		at += int64(len(text))
		if err != nil || (text != "\n" && text != "\r\n") {
			break // the row's first line, or the end of the file
		}
	}
	if err := r.readFrom(at, firstLine); err != nil {
		return fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
	}
	return nil
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
