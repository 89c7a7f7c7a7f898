// Package csvfile is the csv source: a Braze segment export (or any CSV with
// a header row) read row by row, each row an event keyed by column name.
package csvfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/engine/diag"
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
	// Warning, when set, says the row is likely not what its writer meant
	// (a quoted value over lines that look like rows: a stray quote).
	Warning string
}

// RowError is a row that cannot become an event; reading goes on after it.
type RowError struct {
	File   string
	Number int
	Line   int
	Reason string
	// Start and End are where the row lies in the file (End past its
	// line break), for Reader.Text.
	Start, End int64
}

func (e *RowError) Error() string {
	return fmt.Sprintf("%s:%d: row %d: %s", e.File, e.Line, e.Number, e.Reason)
}

// MaxRowBytes is how long one row may be in the file, its line break not
// counted. encoding/csv holds a whole record in memory, several times
// over, before it returns it: a quote never closed in a file of some GB,
// or one huge value, would take GBs, and an engine killed for it would
// start again from the checkpoint before that row, to be killed again. A
// longer row is a broken row, read past without being held. Braze's export
// rows are well under a KiB; 1 MiB is far more than any row of an event.
const MaxRowBytes = 1 << 20

// errRowTooLong is bounded's word to encoding/csv that the record being
// read has gone past MaxRowBytes. Next never returns it.
var errRowTooLong = errors.New("csv row longer than the bound")

// runsOn is why a row whose quote is never closed is its first line only.
const runsOn = "a quote in this row is never closed, so the row would run on to the end of the file; this line alone is taken as the broken row, and the lines after it are read as rows of their own"

// notUTF8 is what to do about text that is not UTF-8.
const notUTF8 = `the file is not UTF-8: save it as CSV UTF-8 (Excel's "CSV UTF-8", not its plain "CSV")`

// rowNotUTF8 is what to do about a row whose text is not UTF-8. Not "save
// the file as UTF-8" alone: the fixed file, imported again, is new content,
// and every good row of it would be sent again.
const rowNotUTF8 = `the file was likely saved as Excel's plain "CSV" (Windows-1252), not "CSV UTF-8": put this row, fixed, under the header row in a new file saved as "CSV UTF-8" and import that (importing the whole file again would send its other rows again)`

// Reader reads rows after the header.
type Reader struct {
	file      string
	src       io.ReadSeeker
	delimiter rune
	in        *bounded // csv's input
	csv       *csv.Reader
	base      int64 // where csv's input starts in src
	lineBase  int   // lines of src before csv's first line
	line      int   // the last line of src csv has read a record from
	header    []string
	number    int
	recordEnd int64 // the offset after the header or the last row returned
	// text holds the columns whose values must be UTF-8 text, those the
	// pipeline reads (Expect); nil: every column.
	text map[string]bool
}

// bounded is src for encoding/csv, which may not read past limit: it
// fails there with errRowTooLong, so a record never takes more memory
// than limit allows.
type bounded struct {
	src   io.Reader
	at    int64 // the offset in src of the next byte read
	limit int64
	hit   bool // Read failed at limit: encoding/csv may report another error
}

func (b *bounded) Read(p []byte) (int, error) {
	if b.at >= b.limit {
		b.hit = true
		return 0, errRowTooLong
	}
	if int64(len(p)) > b.limit-b.at {
		p = p[:b.limit-b.at]
	}
	n, err := b.src.Read(p)
	b.at += int64(n)
	return n, err
}

// bound lets csv read the record that starts at offset start, and
// MaxRowBytes of it plus one byte: a line break, or the end of the file.
func (r *Reader) bound(start int64) { r.in.limit, r.in.hit = start+MaxRowBytes+1, false }

// ended records the last line of record, just read.
func (r *Reader) ended(record []string) {
	last := len(record) - 1
	line, _ := r.csv.FieldPos(last)
	// A value goes on over lines only when quoted, each line break kept
	// in it as \n (CRLF too).
	r.line = r.lineBase + line + strings.Count(record[last], "\n")
}

// NewReader reads the header row. file names the input in messages. The
// input is read again from an earlier point after a row whose quote runs
// on over the lines after it (see Next), hence the Seeker.
func NewReader(src io.ReadSeeker, file string, delimiter rune) (*Reader, error) {
	r := &Reader{file: file, src: src, delimiter: delimiter}
	// A byte-order mark (Excel writes one) is not part of the first column
	// name; skipped before parsing, so a quoted first name still parses.
	// So is a second one, which a tool that re-saves such a file can add:
	// it was taken for part of "user_id", which the file then lacked.
	var bom [3]byte
	n, _ := io.ReadFull(src, bom[:])
	for next, m := bom, n; m == 3 && string(next[:]) == "\ufeff"; m, _ = io.ReadFull(src, next[:]) {
		r.base += 3
	}
	if n >= 2 && (bom[0] == 0xFF && bom[1] == 0xFE || bom[0] == 0xFE && bom[1] == 0xFF) {
		// Excel's "Unicode Text" is UTF-16: read as bytes, its CR LF
		// look like a lone CR, and it was told to change line endings (a
		// re-QA).
		return nil, fmt.Errorf("%s: the file is UTF-16 text (Excel's \"Unicode Text\"); %s", file, notUTF8)
	}
	if err := r.readFrom(r.base, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	r.bound(r.base)
	header, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the file is empty; a CSV source needs a header row naming the columns", file)
	}
	if r.in.hit || err != nil {
		// In a file whose lines end with a lone \r the header row runs
		// on into the rows, so a quote in them fails it too: the line
		// endings, not the quote, are what to fix.
		cr, crErr := r.crOnly(r.base)
		if crErr != nil {
			return nil, fmt.Errorf("%s: %w", file, crErr)
		}
		if cr {
			return nil, fmt.Errorf("%s: %s", file, crOnlyReason)
		}
	}
	if r.in.hit {
		return nil, fmt.Errorf("%s: cannot read the header row: it is longer than the %s a row may have; check that its quotes are closed", file, sizeText(MaxRowBytes))
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
			return nil, fmt.Errorf("%s: %s", file, crOnlyReason)
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
	r.ended(header)
	r.recordEnd = r.Offset()
	return r, nil
}

// crOnlyReason is why a file whose lines end with a lone \r cannot be read.
const crOnlyReason = `the line endings are CR only (old Mac or Excel "CSV (Macintosh)"), so the whole file reads as its header row; save it with LF or CRLF line endings`

// crOnly reports whether the line at offset at has a lone \r in its first
// MaxRowBytes: a header row too long to read may be the whole file of
// one whose lines end with \r alone.
func (r *Reader) crOnly(at int64) (bool, error) {
	if _, err := r.src.Seek(at, io.SeekStart); err != nil {
		return false, err
	}
	br := bufio.NewReader(r.src)
	afterCR := false
	for range MaxRowBytes {
		c, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if afterCR && c != '\n' {
			return true, nil
		}
		if c == '\n' {
			return false, nil
		}
		afterCR = c == '\r'
	}
	return false, nil
}

// readFrom parses src from byte offset at, whose line is lineBase+1.
func (r *Reader) readFrom(at int64, lineBase int) error {
	if _, err := r.src.Seek(at, io.SeekStart); err != nil {
		return err
	}
	r.in = &bounded{src: r.src, at: at}
	cr := csv.NewReader(r.in)
	if r.delimiter != 0 {
		cr.Comma = r.delimiter
	}
	cr.FieldsPerRecord = -1 // counted here, to name the row in the message
	r.csv, r.base, r.lineBase, r.line = cr, at, lineBase, lineBase
	return nil
}

// Expect checks the header row against what the pipeline reads of each
// row, before a row is read. A column that reads are Needed must be
// there: without it, every row would fail or send what it was not meant
// to, and a file whose header row is missing (its first row read as the
// header) or whose delimiter is not the pipeline's would lose its first
// row with no word of it. Only the columns the pipeline reads must hold
// UTF-8 text from then on (every column when it reads the event whole).
func (r *Reader) Expect(reads spec.EventReads) error {
	has := make(map[string]bool, len(r.header))
	for _, h := range r.header {
		has[h] = true
	}
	if !reads.Whole {
		r.text = make(map[string]bool, len(reads.Fields))
		for _, f := range reads.Fields {
			r.text[f] = true
		}
	}
	var missing, hints []string
	for _, n := range reads.Needed {
		if has[n.Name] {
			continue
		}
		missing = append(missing, fmt.Sprintf("%s, which the pipeline reads (%s)", n.Name, strings.Join(n.Places, ", ")))
		if near := nearColumn(n.Name, r.header); near != "" {
			hints = append(hints, fmt.Sprintf("its column %q may be meant for %s: rename it %s (a name must match exactly, letter case too)", near, n.Name, n.Name))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msg := "the header row has no column " + strings.Join(missing, ", nor ")
	switch {
	case len(hints) > 0:
		msg += "; " + strings.Join(hints, "; ")
	case len(r.header) == 1 && otherDelimiter(r.header[0], r.delimiter) != 0:
		d := otherDelimiter(r.header[0], r.delimiter)
		// Cut: in a file without its header row, this is a row of data
		// (a review), which goes to the log and /status.
		msg += fmt.Sprintf("; the header row is one column, %q: the file seems to separate its fields with %s, where the pipeline's source.delimiter is %s", cutText(r.header[0], 60), delimiterName(d), delimiterName(r.comma()))
	default:
		msg += fmt.Sprintf("; is the header row missing, or the delimiter not %s?", delimiterName(r.comma()))
	}
	return fmt.Errorf("%s:1: %s", r.file, msg)
}

// NearMisses says of each column the pipeline reads but does not need,
// missing from the header row though a column differs from it only in
// letter case (Tag for tag): read as missing in every row, it took its
// default with no word (a re-QA: TTL's values went unread).
func (r *Reader) NearMisses(reads spec.EventReads) []string {
	needed := map[string]bool{}
	for _, n := range reads.Needed {
		needed[n.Name] = true
	}
	var out []string
	for _, f := range reads.Fields {
		if needed[f] || slices.Contains(r.header, f) {
			continue
		}
		for _, h := range r.header {
			if strings.EqualFold(h, f) {
				out = append(out, fmt.Sprintf("%s:1: the header row's column %q may be meant for %s, which the pipeline reads: rename it %s (a name must match exactly, letter case too); as it is, every row reads %s as missing", r.file, h, f, f, f))
				break
			}
		}
	}
	return out
}

// nearColumn is the column of header that name was likely meant as: the
// same but for letter case, or a letter or two away.
func nearColumn(name string, header []string) string {
	for _, h := range header {
		if strings.EqualFold(h, name) {
			return h
		}
	}
	return diag.Closest(name, header)
}

// comma is the delimiter between fields.
func (r *Reader) comma() rune {
	if r.delimiter == 0 {
		return ','
	}
	return r.delimiter
}

// otherDelimiter is the delimiter a header row read as one column seems
// to use instead of d, or 0.
func otherDelimiter(header string, d rune) rune {
	for _, c := range []rune{',', ';', '\t', '|'} {
		if c != d && strings.ContainsRune(header, c) {
			return c
		}
	}
	return 0
}

// delimiterName names a delimiter as a user writes it.
func delimiterName(d rune) string {
	switch d {
	case ',':
		return "a comma"
	case ';':
		return "a semicolon"
	case '\t':
		return "a tab"
	case '|':
		return `"|"`
	}
	return fmt.Sprintf("%q", d)
}

// ReadOn makes Next read on from the end of the last row, once it has
// returned io.EOF and the input has grown since (a file still being
// written): rows go on being numbered after the last one.
func (r *Reader) ReadOn() error {
	at, line := r.Offset(), r.line
	if gap := at - r.recordEnd; gap > 0 {
		// Blank lines read past after the last row: counted, or the rows
		// after them were named a line or more early (a review).
		blank := make([]byte, gap)
		if _, err := r.src.Seek(r.recordEnd, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.ReadFull(r.src, blank); err != nil {
			return err
		}
		line += bytes.Count(blank, []byte("\n"))
	}
	return r.readFrom(at, line)
}

// Header returns the column names.
func (r *Reader) Header() []string { return r.header }

// Offset is how many bytes of the input the header and the rows returned
// so far take up: against the file's size, how far the import has read.
func (r *Reader) Offset() int64 { return r.base + r.csv.InputOffset() }

// Text is the broken row e as the file holds it, without its line break,
// at most max bytes of it (cut marks a longer one), for its dead letter:
// an inbox file is in done/ by the time someone reads it. It reads apart
// from the rows, "" when the input cannot be read so.
func (r *Reader) Text(e *RowError, max int) (text string, cut bool) {
	at, ok := r.src.(io.ReaderAt)
	if !ok || e.End <= e.Start {
		return "", false
	}
	n := e.End - e.Start
	if n > int64(max) {
		n, cut = int64(max), true
	}
	buf := make([]byte, n)
	got, _ := at.ReadAt(buf, e.Start)
	return strings.TrimRight(string(buf[:got]), "\r\n"), cut
}

// Next returns the next row, io.EOF after the last, or a *RowError for a
// row that is broken (the next call reads on).
//
// A quote that is opened and never closed makes encoding/csv read every
// line after it into the same field, to the end of the file: one broken
// row would swallow all the rows after it. So such a row is its first
// line only, and reading goes on from its second line. (A quote that a
// later stray quote closes is valid CSV, or an error no reader can undo:
// those rows stay as encoding/csv reads them.) A row longer than
// MaxRowBytes is broken too, and read past without being held (tooLong).
func (r *Reader) Next() (_ Row, err error) {
	start := r.Offset()
	defer func() {
		if !errors.Is(err, io.EOF) {
			r.recordEnd = r.Offset()
		}
		if re, ok := err.(*RowError); ok {
			re.Start, re.End = start, r.recordEnd
		}
	}()
	r.bound(start)
	record, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return Row{}, io.EOF
	}
	if r.in.hit {
		// A quote in the part read may have failed first: the row is
		// too long all the same, and encoding/csv is not at its end.
		return r.tooLong(start)
	}
	r.number++
	if err != nil {
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return Row{}, fmt.Errorf("%s: reading row %d: %w", r.file, r.number, err)
		}
		line := r.lineBase + pe.StartLine
		r.line = r.lineBase + pe.Line // encoding/csv reads on after it
		reason := parseReason(err, r.lineBase)
		if errors.Is(pe.Err, csv.ErrQuote) && pe.Line > pe.StartLine {
			cut, err := r.cutBack(start, line)
			if err != nil {
				return Row{}, fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
			}
			if cut {
				reason = runsOn
			}
		}
		return Row{}, &RowError{File: r.file, Number: r.number, Line: line, Reason: reason}
	}
	r.ended(record)
	line, _ := r.csv.FieldPos(0)
	line += r.lineBase
	if len(record) != len(r.header) {
		columns := "columns"
		if len(record) == 1 {
			columns = "column"
		}
		reason := fmt.Sprintf("has %d %s, the header has %d; check the delimiter and quoting of this row", len(record), columns, len(r.header))
		// A stray quote closed in another column: the rows between are
		// in this broken one, and the advice to put it right in a new
		// file lost them unless the lines were named (a re-QA).
		if over := r.runsOver(record, line); over != "" {
			reason += "; " + over
		}
		return Row{}, &RowError{File: r.file, Number: r.number, Line: line, Reason: reason}
	}
	values := make(map[string]any, len(record))
	for i, v := range record {
		// Excel's plain "CSV" on Windows is Windows-1252: its accented
		// letters would reach the peer as U+FFFD, with no word of it. A
		// column the pipeline does not read cannot reach the peer, so it
		// breaks no row (a surname in Latin-1 dead-lettered rows whose
		// tag went by user_id alone, a QA run); its bad bytes become
		// U+FFFD, which dead letters and the inbox can hold.
		if !utf8.ValidString(v) {
			if r.text != nil && !r.text[r.header[i]] {
				v = strings.ToValidUTF8(v, "\uFFFD")
			} else {
				fieldLine, col := r.csv.FieldPos(i)
				return Row{}, &RowError{File: r.file, Number: r.number, Line: line, Reason: fmt.Sprintf("column %d (%q, at line %d, character %d) is not UTF-8 text; %s", i+1, r.header[i], r.lineBase+fieldLine, col, rowNotUTF8)}
			}
		}
		values[r.header[i]] = v
	}
	return Row{Number: r.number, Line: line, Values: values, Warning: r.runsOver(record, line)}, nil
}

// runsOver says when a quoted value of record, a row that starts on line,
// runs over lines that look like rows of their own: as many delimiters as
// the header has. Valid CSV, it is most likely a stray opening quote that
// a later one closes, and the rows between were read into this one, with
// no error (a QA run: three rows never sent, and no word of it).
func (r *Reader) runsOver(record []string, line int) string {
	if len(r.header) < 2 {
		return ""
	}
	comma := string(r.comma())
	for i, v := range record {
		if !strings.Contains(v, "\n") {
			continue
		}
		rows := 0
		for _, l := range strings.Split(v, "\n")[1:] {
			if strings.Count(l, comma) == len(r.header)-1 {
				rows++
			}
		}
		if rows > 0 {
			column := fmt.Sprintf("column %d", i+1)
			if i < len(r.header) { // a broken row may have more
				column += fmt.Sprintf(" (%q)", r.header[i])
			}
			return fmt.Sprintf("its value in %s runs from line %d to line %d, and %d of those lines look like rows of their own: a stray quote? They were read into this row, not as rows; if they are rows, fix the quote and put them, under the header row, in a new file", column, line, r.line, rows)
		}
	}
	return ""
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
	x, err := r.scan(start)
	if err != nil || !x.open {
		if _, serr := r.src.Seek(was, io.SeekStart); err == nil {
			err = serr
		}
		return false, err
	}
	return true, r.readFrom(x.next, line)
}

// tooLong makes the record at offset start, which ran past MaxRowBytes,
// a broken row, and reads on after it: from its second line when a quote
// of it is still open at the end of the file, as Next does, or else from
// the line after its end, where encoding/csv would have gone on.
func (r *Reader) tooLong(start int64) (Row, error) {
	x, err := r.scan(start)
	if err != nil {
		return Row{}, fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
	}
	line := r.line + x.blank + 1
	if x.first > start && x.size <= MaxRowBytes {
		// The blank lines before it, which encoding/csv skips, made it
		// long: read it again without them.
		if err := r.readFrom(x.first, line-1); err != nil {
			return Row{}, fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
		}
		return r.Next()
	}
	r.number++
	var reason string
	switch {
	case x.open:
		err = r.readFrom(x.next, line)
		reason = runsOn
	case x.lines > 1:
		err = r.readFrom(x.end, line+x.lines-1)
		reason = fmt.Sprintf("the row runs over lines %d to %d (%s), more than the %s a row may have, and none of them is imported: a quote in it is likely closed only by a stray quote far below; check its quotes", line, line+x.lines-1, sizeText(x.size), sizeText(MaxRowBytes))
	default:
		err = r.readFrom(x.end, line)
		reason = fmt.Sprintf("the row is %s long, more than the %s a row may have; shorten its long value, or leave that column out of the file", sizeText(x.size), sizeText(MaxRowBytes))
	}
	if err != nil {
		return Row{}, fmt.Errorf("%s: reading on after row %d: %w", r.file, r.number, err)
	}
	return Row{}, &RowError{File: r.file, Number: r.number, Line: line, Reason: reason}
}

// extent is where a record lies in src.
type extent struct {
	blank int   // blank lines before it, which encoding/csv skips
	first int64 // where its first line begins
	next  int64 // where the line after its first begins
	end   int64 // where it ends: after its line break, or at the end of src
	size  int64 // its length, its last line break not counted
	lines int   // how many lines it takes up
	open  bool  // a quoted field of it is still open at the end of src
}

// scan finds the extent of the record at offset start as encoding/csv
// (without LazyQuotes) reads it, a buffer at a time: a record of any
// length takes no memory. It ends at a line break outside quotes, or at
// the end of the line where encoding/csv finds it broken.
func (r *Reader) scan(start int64) (extent, error) {
	var x extent
	if _, err := r.src.Seek(start, io.SeekStart); err != nil {
		return x, err
	}
	s := &scanner{br: bufio.NewReader(r.src), at: start}
	for {
		b, err := s.br.Peek(2)
		if err != nil && !errors.Is(err, io.EOF) {
			return x, err
		}
		n := 0
		switch {
		case len(b) > 0 && b[0] == '\n':
			n = 1
		case len(b) == 2 && b[0] == '\r' && b[1] == '\n':
			n = 2
		}
		if n == 0 {
			break
		}
		_, _ = s.br.Discard(n) // peeked
		s.at += int64(n)
		x.blank++
	}
	x.first = s.at
	delimiter := r.delimiter
	if delimiter == 0 {
		delimiter = ','
	}
	lead := string(delimiter)[0]
	fieldStart := true
record:
	for {
		c, ok, err := s.rune()
		if err != nil {
			return x, err
		}
		switch {
		case !ok || c == '\n':
			break record
		case c == delimiter:
			fieldStart = true
		case c != '"':
			fieldStart = false
			if err := s.plain(lead); err != nil {
				return x, err
			}
		case !fieldStart:
			// A quote inside a field: encoding/csv fails there and
			// goes on from the next line.
			if _, err := s.until('\n'); err != nil {
				return x, err
			}
			break record
		default:
			closed, err := s.quoted()
			if err != nil {
				return x, err
			}
			if !closed {
				x.open = true
				break record
			}
			c, ok, err := s.rune()
			if err != nil {
				return x, err
			}
			switch {
			case !ok || c == '\n':
				break record
			case c == delimiter:
				fieldStart = true
			default:
				// Text after the closing quote (or CRLF, which ends the
				// record at the same place).
				if _, err := s.until('\n'); err != nil {
					return x, err
				}
				break record
			}
		}
	}
	x.end, x.size, x.lines, x.next = s.at, s.at-x.first, s.breaks+1, s.next
	if s.atBreak && !x.open {
		x.size--
		x.lines--
	}
	if x.next == 0 {
		x.next = x.end // a record of one line, at the end of src
	}
	return x, nil
}

// scanner reads src for scan, counting what it reads.
type scanner struct {
	br      *bufio.Reader
	at      int64 // the offset of the next byte
	next    int64 // after the first line break read; 0 before it
	breaks  int   // line breaks read
	atBreak bool  // the last byte read is a line break
}

// read counts b, read from br.
func (s *scanner) read(b []byte) {
	if len(b) == 0 {
		return
	}
	if s.next == 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			s.next = s.at + int64(i) + 1
		}
	}
	s.breaks += bytes.Count(b, []byte{'\n'})
	s.at += int64(len(b))
	s.atBreak = b[len(b)-1] == '\n'
}

// plain reads on in a field not quoted, up to the next line break, quote
// or byte lead (the delimiter's first), and leaves that to be read: a
// huge value is read a buffer, not a character, at a time.
func (s *scanner) plain(lead byte) error {
	for {
		if _, err := s.br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		b, _ := s.br.Peek(s.br.Buffered())
		n := len(b)
		// The delimiter first, the nearest in a line of many fields: each
		// search goes no further than the stop found before it.
		for _, c := range [...]byte{lead, '"', '\n'} {
			if i := bytes.IndexByte(b[:n], c); i >= 0 {
				n = i
			}
		}
		if n == 0 {
			return nil
		}
		_, _ = s.br.Discard(n) // peeked
		s.at += int64(n)
		s.atBreak = false
		if n < len(b) {
			return nil
		}
	}
}

// rune reads one character; ok is false at the end of src.
func (s *scanner) rune() (c rune, ok bool, err error) {
	c, n, err := s.br.ReadRune()
	if errors.Is(err, io.EOF) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	s.at += int64(n)
	s.atBreak = c == '\n'
	if s.atBreak {
		s.breaks++
		if s.next == 0 {
			s.next = s.at
		}
	}
	return c, true, nil
}

// until reads up to the next byte c and past it; found is false at the
// end of src.
func (s *scanner) until(c byte) (found bool, err error) {
	for {
		b, err := s.br.ReadSlice(c)
		s.read(b)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return false, nil
		default:
			return false, err
		}
	}
}

// quoted reads a quoted field after its opening quote, through its
// closing one (a "" is a quote in the value); closed is false if src ends
// first.
func (s *scanner) quoted() (closed bool, err error) {
	for {
		found, err := s.until('"')
		if err != nil || !found {
			return false, err
		}
		if b, _ := s.br.Peek(1); len(b) == 0 || b[0] != '"' {
			return true, nil
		}
		_, _ = s.br.Discard(1) // peeked
		s.at++
		s.atBreak = false
	}
}

// sizeText is n bytes as a user reads it best.
func sizeText(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n < 10<<20:
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
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
		what = `a quoted field is not closed, or has text after its closing quote; end the field with " right before the next comma or the line's end, and write a " inside it as ""`
	default:
		what = pe.Err.Error()
	}
	return fmt.Sprintf("%s (line %d, character %d)", what, lineBase+pe.Line, pe.Column)
}

// cutText is s cut to at most n characters, marked where it was cut.
func cutText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
