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
	file   string
	csv    *csv.Reader
	header []string
	number int
}

// NewReader reads the header row. file names the input in messages.
func NewReader(r io.Reader, file string, delimiter rune) (*Reader, error) {
	// A byte-order mark (Excel writes one) is not part of the first column
	// name; removed before parsing, so a quoted first name still parses.
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	if delimiter != 0 {
		cr.Comma = delimiter
	}
	cr.FieldsPerRecord = -1 // counted here, to name the row in the message
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the file is empty; a CSV source needs a header row naming the columns", file)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the header row: %s", file, parseReason(err))
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
	return &Reader{file: file, csv: cr, header: header}, nil
}

// Header returns the column names.
func (r *Reader) Header() []string { return r.header }

// Next returns the next row, io.EOF after the last, or a *RowError for a
// row that is broken (the next call reads on).
func (r *Reader) Next() (Row, error) {
	record, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return Row{}, io.EOF
	}
	r.number++
	if err != nil {
		line := 0
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			line = pe.StartLine
		}
		return Row{}, &RowError{r.file, r.number, line, parseReason(err)}
	}
	line, _ := r.csv.FieldPos(0)
	if len(record) != len(r.header) {
		return Row{}, &RowError{r.file, r.number, line, fmt.Sprintf("has %d columns, the header has %d; check the delimiter and quoting of this row", len(record), len(r.header))}
	}
	values := make(map[string]any, len(record))
	for i, v := range record {
		values[r.header[i]] = v
	}
	return Row{Number: r.number, Line: line, Values: values}, nil
}

func parseReason(err error) string {
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
	return fmt.Sprintf("%s (line %d, character %d)", what, pe.Line, pe.Column)
}
