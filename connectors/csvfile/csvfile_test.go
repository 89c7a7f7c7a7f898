package csvfile

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/spec"
)

func TestNewReaderHeader(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		delim   rune
		want    []string
		wantErr string // substring; "" = no error
	}{
		{"empty file", "", 0, nil, "export.csv: the file is empty"},
		{"only blank lines", "\n\n", 0, nil, "the file is empty"},
		{"plain header", "user_id,email\nu1,a@x\n", 0, []string{"user_id", "email"}, ""},
		{"names trimmed", " user_id , email \n", 0, []string{"user_id", "email"}, ""},
		// braze.md §8: exports may start with a UTF-8 BOM
		{"BOM stripped from first header", "\ufeffuser_id,email\n", 0, []string{"user_id", "email"}, ""},
		{"two BOMs stripped (a file re-saved by a tool that adds one)", "\ufeff\ufeffuser_id,email\n", 0, []string{"user_id", "email"}, ""},
		{"a BOM alone", "\ufeff", 0, nil, "export.csv: the file is empty"},
		{"duplicate column", "user_id,email,user_id\n", 0, nil, `export.csv:1: the header row names column "user_id" twice`},
		{"duplicate after trimming", "email, email\n", 0, nil, `names column "email" twice`},
		{"unnamed middle column", "user_id,,email\n", 0, nil, "export.csv:1: column 2 of the header row has no name"},
		{"blank column name", "user_id,  \n", 0, nil, "column 2 of the header row has no name"},
		{"broken header", "user_id,em\"ail\n", 0, nil, "export.csv: cannot read the header row: a \" inside a field that does not start with one; quote the whole field and write inner quotes as \"\" (line 1, character 11)"},
		{"header not UTF-8", "user_id,caf\xe9\n", 0, nil, `export.csv:1: column 2 of the header row is not UTF-8 text; the file is not UTF-8: save it as CSV UTF-8`},
		// Excel's "Unicode Text": its CR LF, read as bytes, looked like a lone CR.
		{"UTF-16 little-endian", "\xff\xfeu\x00i\x00d\x00\r\x00\n\x00", 0, nil, `export.csv: the file is UTF-16 text (Excel's "Unicode Text"); the file is not UTF-8: save it as CSV UTF-8`},
		{"UTF-16 big-endian", "\xfe\xff\x00u\x00i\x00d\x00\n", 0, nil, `the file is UTF-16 text`},
		// encoding/csv ends rows at \n only: the header would be the
		// whole file.
		{"CR-only line endings", "user_id,tag\ru1,vip\ru2,gold\r", 0, nil, "export.csv: the line endings are CR only (old Mac or Excel \"CSV (Macintosh)\"), so the whole file reads as its header row; save it with LF or CRLF line endings"},
		{"CR-only line endings, one column", "user_id\ru1\r", 0, nil, "export.csv: the line endings are CR only"},
		{"CR-only line endings, header only", "user_id,tag\r", 0, []string{"user_id", "tag"}, ""},
		// A quote after a lone \r is a parse error in the one long line:
		// the line endings, not the quote, are what to fix.
		{"CR-only line endings, quoted values", "user_id\r\"u-1\"\r", 0, nil, "export.csv: the line endings are CR only"},
		{"CR-only line endings, quoted names", "\"user_id\",\"tag\"\r\"u1\",\"vip\"\r", 0, nil, "export.csv: the line endings are CR only"},
		{"CR-only line endings, quoted header only", "\"user_id\",\"tag\"\r", 0, []string{"user_id", "tag"}, ""},
		{"broken header, CRLF", "user_id,em\"ail\r\nu1,a\r\n", 0, nil, "export.csv: cannot read the header row: a \" inside a field that does not start with one"},
		{"CR-only line endings, over a row's bound", "user_id,tag\r" + strings.Repeat("u1,vip\r", MaxRowBytes/7+1), 0, nil, "export.csv: the line endings are CR only"},
		{"header over a row's bound", "user_id,\"tag\n" + strings.Repeat("u1,vip\n", MaxRowBytes/7+1), 0, nil, "export.csv: cannot read the header row: it is longer than the 1 MiB a row may have; check that its quotes are closed"},
		{"header just under a row's bound", "user_id," + strings.Repeat("t", MaxRowBytes-8) + "\nu1,vip\n", 0, []string{"user_id", strings.Repeat("t", MaxRowBytes-8)}, ""},
		{"CRLF line endings", "user_id,tag\r\nu1,vip\r\n", 0, []string{"user_id", "tag"}, ""},
		{"line break in a quoted name", "\"user\nid\",tag\n", 0, nil, "export.csv:1: column 1 of the header row has a line break in its name"},
		{"semicolon delimiter", "user_id;email\n", ';', []string{"user_id", "email"}, ""},
		{"comma kept in a name with ';'", "a,b;c\n", ';', []string{"a,b", "c"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "export.csv", tt.delim)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewReader error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader error = %v", err)
			}
			if got := r.Header(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Header() = %q, want %q", got, tt.want)
			}
		})
	}
}

// step is one expected result of Next: a row, or a *RowError whose Reason
// contains reason.
type step struct {
	number int
	line   int
	values map[string]any // for rows
	reason string         // for errors; "" means a row is expected
}

func TestNext(t *testing.T) {
	tests := []struct {
		name  string
		input string
		delim rune
		want  []step
	}{
		{"values keyed by column name", "user_id,email\nu1,a@x\nu2,b@x\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"user_id": "u1", "email": "a@x"}},
			{number: 2, line: 3, values: map[string]any{"user_id": "u2", "email": "b@x"}},
		}},
		{"BOM header key", "\ufeffuser_id,tag\nu1,vip\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"user_id": "u1", "tag": "vip"}},
		}},
		{"header only", "a,b\n", 0, nil},
		{"no trailing newline, CRLF", "a,b\r\n1,2\r\n3,4", 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "1", "b": "2"}},
			{number: 2, line: 3, values: map[string]any{"a": "3", "b": "4"}},
		}},
		{"blank lines skipped but counted", "a\n\n1\n\n\n2\n", 0, []step{
			{number: 1, line: 3, values: map[string]any{"a": "1"}},
			{number: 2, line: 6, values: map[string]any{"a": "2"}},
		}},
		{"wrong column counts", "a,b\n1\n2,3\n4,5,6\n", 0, []step{
			{number: 1, line: 2, reason: "has 1 column, the header has 2"},
			{number: 2, line: 3, values: map[string]any{"a": "2", "b": "3"}},
			{number: 3, line: 4, reason: "has 3 columns, the header has 2"},
		}},
		{"one-column header", "a\n1,2\n", 0, []step{
			{number: 1, line: 2, reason: "has 2 columns, the header has 1;"},
		}},
		{"multi-line quoted field shifts lines", "id,note\n1,\"line one\nline two\"\n2,x\n3\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"id": "1", "note": "line one\nline two"}},
			{number: 2, line: 4, values: map[string]any{"id": "2", "note": "x"}},
			{number: 3, line: 5, reason: "has 1 column, the header has 2"},
		}},
		{"multi-line first field", "note,id\n\"a\nb\nc\",1\n\"d\",2\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"note": "a\nb\nc", "id": "1"}},
			{number: 2, line: 5, values: map[string]any{"note": "d", "id": "2"}},
		}},
		{"bare quote, reading goes on", "a,b\n1,x\"y\n2,3\n", 0, []step{
			{number: 1, line: 2, reason: `a " inside a field that does not start with one; quote the whole field and write inner quotes as "" (line 2, character 4)`},
			{number: 2, line: 3, values: map[string]any{"a": "2", "b": "3"}},
		}},
		{"bare quote after a multi-line row", "a,b\n1,\"p\nq\"\n2,x\"y\n3,z\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "1", "b": "p\nq"}},
			{number: 2, line: 4, reason: `a " inside a field that does not start with one`},
			{number: 3, line: 5, values: map[string]any{"a": "3", "b": "z"}},
		}},
		{"quote error on a later line of the row", "a,b\n1,\"p\nq\"x\n2,3\n", 0, []step{
			{number: 1, line: 2, reason: `a quoted field is not closed, or has text after its closing quote; end the field with " right before the next comma or the line's end, and write a " inside it as "" (line 3, character 2)`},
			{number: 2, line: 4, values: map[string]any{"a": "2", "b": "3"}},
		}},
		// A quote never closed would swallow every row after it: the row
		// is its first line, and the lines after it are rows again.
		{"a quote never closed does not swallow the rows after it", "a,b\n1,\"x\n2,y\n3,z\n", 0, []step{
			{number: 1, line: 2, reason: "a quote in this row is never closed, so the row would run on to the end of the file"},
			{number: 2, line: 3, values: map[string]any{"a": "2", "b": "y"}},
			{number: 3, line: 4, values: map[string]any{"a": "3", "b": "z"}},
		}},
		{"blank lines before a quote never closed, CRLF", "a,b\r\n\r\n\n1,\"x\r\n2,y\r\n", 0, []step{
			{number: 1, line: 4, reason: "never closed"},
			{number: 2, line: 5, values: map[string]any{"a": "2", "b": "y"}},
		}},
		{"a quote never closed, no final line break, '£' delimiter", "a£b\n1£\"x\n2£y", '£', []step{
			{number: 1, line: 2, reason: "never closed"},
			{number: 2, line: 3, values: map[string]any{"a": "2", "b": "y"}},
		}},
		{"an escaped quote does not close the field", "a,b\n1,\"x\"\"\n2,y\n", 0, []step{
			{number: 1, line: 2, reason: "never closed"},
			{number: 2, line: 3, values: map[string]any{"a": "2", "b": "y"}},
		}},
		// A quoted field that is closed is one field, whatever is wrong with
		// its row: the text inside it never becomes rows.
		{"closed multi-line field, extra column", "a,b\nu1,\"vip\nu2,gold\n\",extra\nu3,z\n", 0, []step{
			{number: 1, line: 2, reason: "has 3 columns, the header has 2"},
			{number: 2, line: 5, values: map[string]any{"a": "u3", "b": "z"}},
		}},
		{"closed multi-line field, text after it", "a,b\nu1,\"vip\nu2,gold\n\"x\nu3,z\n", 0, []step{
			{number: 1, line: 2, reason: "has text after its closing quote"},
			{number: 2, line: 5, values: map[string]any{"a": "u3", "b": "z"}},
		}},
		// A stray quote that closes an earlier one is CSV no reader can
		// undo: one broken row; after a quote never closed, lines are still
		// counted from the top.
		{"a quote closed by a stray one, then one never closed", "a,b\n1,\"x\n2,y\n3,\"z\"q\n4,\"q\n5,w\n", 0, []step{
			{number: 1, line: 2, reason: `write a " inside it as "" (line 4, character`},
			{number: 2, line: 5, reason: "never closed"},
			{number: 3, line: 6, values: map[string]any{"a": "5", "b": "w"}},
		}},
		{"semicolon delimiter", "user_id;amount\nu1;2,50\n", ';', []step{
			{number: 1, line: 2, values: map[string]any{"user_id": "u1", "amount": "2,50"}},
		}},
		{"comma data under ';' is one column", "a;b\n1,2\n", ';', []step{
			{number: 1, line: 2, reason: "has 1 column, the header has 2; check the delimiter"},
		}},
		{"quoted delimiter and escaped quote", "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "x,y", "b": `say "hi"`}},
		}},
		// Windows-1252, as Excel's plain "CSV" on Windows writes it: é is
		// \xe9, which is not UTF-8.
		{"a value not UTF-8", "a,b\nu1,caf\xe9\nu2,caf\u00e9\n", 0, []step{
			{number: 1, line: 2, reason: `column 2 ("b", at line 2, character 4) is not UTF-8 text; the file was likely saved as Excel's plain "CSV" (Windows-1252), not "CSV UTF-8": put this row, fixed, under the header row in a new file saved as "CSV UTF-8" and import that (importing the whole file again would send its other rows again)`},
			{number: 2, line: 3, values: map[string]any{"a": "u2", "b": "café"}},
		}},
		{"a multi-line value not UTF-8", "a,b\nu1,\"x\ny\x92s\"\nu2,z\n", 0, []step{
			{number: 1, line: 2, reason: `column 2 ("b", at line 2, character 4) is not UTF-8 text`},
			{number: 2, line: 4, values: map[string]any{"a": "u2", "b": "z"}},
		}},
		{"values not trimmed", "a,b\n 1 , 2 \n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": " 1 ", "b": " 2 "}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "in.csv", tt.delim)
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			for i, w := range tt.want {
				row, err := r.Next()
				if w.reason == "" {
					if err != nil {
						t.Fatalf("Next #%d: error %v, want row %+v", i+1, err, w)
					}
					if row.Number != w.number || row.Line != w.line || !reflect.DeepEqual(row.Values, w.values) {
						t.Errorf("Next #%d = %+v, want Number %d Line %d Values %v", i+1, row, w.number, w.line, w.values)
					}
					continue
				}
				var re *RowError
				if !errors.As(err, &re) {
					t.Fatalf("Next #%d: got row %+v, err %v; want *RowError", i+1, row, err)
				}
				if re.File != "in.csv" || re.Number != w.number || re.Line != w.line || !strings.Contains(re.Reason, w.reason) {
					t.Errorf("Next #%d error = %+v, want File in.csv Number %d Line %d Reason containing %q", i+1, re, w.number, w.line, w.reason)
				}
			}
			for range 2 {
				if row, err := r.Next(); err != io.EOF {
					t.Fatalf("after the last row: Next() = %+v, %v; want io.EOF", row, err)
				}
			}
		})
	}
}

func TestRowErrorMessage(t *testing.T) {
	tests := []struct {
		err  RowError
		want string
	}{
		{RowError{File: "segment.csv", Number: 3, Line: 5, Reason: "has 1 column, the header has 2"},
			"segment.csv:5: row 3: has 1 column, the header has 2"},
		{RowError{File: "a.csv", Number: 1, Line: 2, Reason: "x"}, "a.csv:2: row 1: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestSource(t *testing.T) {
	if Source.Name != "csv" || Source.Event != nil {
		t.Errorf("Source = %+v, want name csv and any event shape", Source)
	}
}

// A broken quote in a row's first field, and a byte-order mark before a
// quoted header, used to crash or fail the whole file.
func TestFirstFieldQuoteAndBOM(t *testing.T) {
	r, err := NewReader(strings.NewReader("a,b\nx\"y,1\n\"abc\"d,1\n2,3\n"), "f.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"f.csv:2: row 1: a \" inside a field", "f.csv:3: row 2: a quoted field is not closed"} {
		_, err := r.Next()
		var re *RowError
		if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("row %d: got %v, want an error starting %q", i+1, err, want)
		}
	}
	row, err := r.Next()
	if err != nil || row.Values["a"] != "2" || row.Number != 3 {
		t.Errorf("reading did not go on: %+v %v", row, err)
	}
	r, err = NewReader(strings.NewReader("\ufeff\"user_id\",email\nu1,a\n"), "f.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); len(h) != 2 || h[0] != "user_id" {
		t.Errorf("header %q", h)
	}
}

// Files larger than encoding/csv's read-ahead: checking a broken row's
// quotes reads the file from elsewhere, and parsing must go on from where
// it was, whether or not the row is cut back.
func TestBrokenRowsInALargeFile(t *testing.T) {
	for _, broken := range []string{
		"u-x,\"vip\nu-y,gold\n\"x\n", // closed, text after it: one broken row of three lines
		"u-x,\"vip\n",                // never closed: its first line only
	} {
		var b strings.Builder
		b.WriteString("user_id,tag\n")
		for i := range 300 {
			fmt.Fprintf(&b, "u-%03d,tag-%03d\n", i, i)
		}
		b.WriteString(broken)
		for i := 300; i < 600; i++ {
			fmt.Fprintf(&b, "u-%03d,tag-%03d\n", i, i)
		}
		r, err := NewReader(strings.NewReader(b.String()), "big.csv", 0)
		if err != nil {
			t.Fatal(err)
		}
		var good []string
		broke := 0
		for {
			row, err := r.Next()
			if err == io.EOF {
				break
			}
			var re *RowError
			if errors.As(err, &re) {
				broke++
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			good = append(good, row.Values["user_id"].(string))
		}
		if broke != 1 || len(good) != 600 || good[299] != "u-299" || good[300] != "u-300" || good[599] != "u-599" {
			t.Errorf("%q in the middle: %d broken, %d good rows (want 1 and u-000 to u-599)", broken, broke, len(good))
		}
	}
}

// Offset is where the rows returned so far end, from the top of the input:
// a byte-order mark and rows cut back after a quote never closed included.
func TestOffset(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []int64 // after the header, then after each Next
	}{
		{"LF", "a,b\n1,2\n33,44\n", []int64{4, 8, 14, 14}},
		{"CRLF, no final line break", "a,b\r\n1,2\r\n3,4", []int64{5, 10, 13, 13}},
		{"byte-order mark", "\ufeffa,b\n1,2\n", []int64{7, 11, 11}},
		{"a broken row", "a,b\n1\n2,3\n", []int64{4, 6, 10, 10}},
		{"a quote never closed", "a,b\n1,\"x\n2,y\n", []int64{4, 9, 13, 13}},
		{"blank lines", "a,b\n\n\n1,2\n\n", []int64{4, 10, 11}},
		{"a row over the bound", "a,b\n1," + strings.Repeat("x", MaxRowBytes) + "\n2,3\n", []int64{4, 4 + MaxRowBytes + 3, 4 + MaxRowBytes + 7, 4 + MaxRowBytes + 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "in.csv", 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for {
				got = append(got, r.Offset())
				if _, err := r.Next(); errors.Is(err, io.EOF) {
					got = append(got, r.Offset())
					break
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("offsets %v, want %v (of %d bytes)", got, tt.want, len(tt.input))
			}
		})
	}
}

// rows is n rows "u<i>,v<i>\n" from i = from on: the rows after a long
// one, to check that reading goes on with the right numbers.
func rows(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "u%d,v%d\n", i, i)
	}
	return b.String()
}

// A row longer than MaxRowBytes is a broken row, and reading goes on at
// the right place with the right row and line numbers.
func TestLongRows(t *testing.T) {
	long := strings.Repeat("x", MaxRowBytes)
	lines := strings.Repeat("y\n", MaxRowBytes)
	tests := []struct {
		name  string
		input string
		delim rune
		want  []step
		// then rows "u<i>,v<i>" up to i = upTo, one a line from line
		// on, numbered on from the last step
		upTo, line int
	}{
		{"a quote never closed, then MBs of rows", "a,b\n0,\"x\n" + rows(1, 200000), 0, []step{
			{number: 1, line: 2, reason: "a quote in this row is never closed, so the row would run on to the end of the file; this line alone is taken as the broken row, and the lines after it are read as rows of their own"},
		}, 200000, 3},
		{"a quote never closed after a long first line", "a,b\n0,\"" + long + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "never closed"},
		}, 3, 3},
		{"one huge value", "a,b\n0," + long + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "the row is 1048578 bytes long, more than the 1 MiB a row may have; shorten its long value, or leave that column out of the file"},
		}, 3, 3},
		{"one huge quoted value", "a,b\n0,\"" + long + long + long + "\"\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "the row is 3145732 bytes long"},
		}, 3, 3},
		{"a huge value at the end, no final line break", "a,b\n" + rows(1, 2) + "0," + long, 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "u1", "b": "v1"}},
			{number: 2, line: 3, values: map[string]any{"a": "u2", "b": "v2"}},
			{number: 3, line: 4, reason: "the row is 1048578 bytes long"},
		}, 0, 0},
		{"a quoted field closed far below", "a,b\n0,\"" + lines + "\"\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "the row runs over lines 2 to 1048578 (2097156 bytes), more than the 1 MiB a row may have, and none of them is imported: a quote in it is likely closed only by a stray quote far below"},
		}, 3, 1048579},
		{"a quoted field closed far below, then text", "a,b\n0,\"" + lines + "\"x,\"y\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "runs over lines 2 to 1048578"},
		}, 3, 1048579},
		{"many fields", "a,b\n0" + strings.Repeat(",a", MaxRowBytes/2) + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "the row is 1048577 bytes long"},
		}, 3, 3},
		{"'£' delimiter, a huge value of '©' (its first byte is the same)", "a£b\n0£" + strings.Repeat("©", MaxRowBytes/2) + "\nu1£v1\n", '£', []step{
			{number: 1, line: 2, reason: "the row is 1048579 bytes long"},
		}, 1, 3},
		{"a bare quote in a huge value", "a,b\n0,x\"" + long + ",\"y\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "the row is 1048583 bytes long"},
		}, 3, 3},
		{"CRLF, '£' delimiter", "a£b\r\n0£\"" + long + "\"£\"z\r\n\"\r\n" + strings.ReplaceAll(strings.ReplaceAll(rows(1, 3), ",", "£"), "\n", "\r\n"), '£', []step{
			{number: 1, line: 2, reason: "the row runs over lines 2 to 3"},
		}, 3, 4},
		{"just under the bound", "a,b\n0," + long[2:] + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "0", "b": long[2:]}},
		}, 3, 3},
		{"just under the bound, CRLF", "a,b\r\n0," + long[3:] + "\r\n1,2\r\n", 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "0", "b": long[3:]}},
			{number: 2, line: 3, values: map[string]any{"a": "1", "b": "2"}},
		}, 0, 0},
		{"just under the bound at the end, no final line break", "a,b\n" + rows(1, 1) + "0," + long[2:], 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "u1", "b": "v1"}},
			{number: 2, line: 3, values: map[string]any{"a": "0", "b": long[2:]}},
		}, 0, 0},
		{"just over the bound at the end, no final line break", "a,b\n" + rows(1, 1) + "0," + long[1:], 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "u1", "b": "v1"}},
			{number: 2, line: 3, reason: "the row is 1048577 bytes long"},
		}, 0, 0},
		{"blank lines over the bound before a row", "a,b\n" + strings.Repeat("\r\n", MaxRowBytes) + rows(1, 3), 0, nil, 3, 1048578},
		{"blank lines before a long row", "a,b\n\n\n0," + long + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 4, reason: "the row is 1048578 bytes long"},
		}, 3, 5},
		// Lines are still counted from the top after other broken rows.
		{"after a multi-line row", "a,b\n1,\"p\nq\"\n0," + long + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, values: map[string]any{"a": "1", "b": "p\nq"}},
			{number: 2, line: 4, reason: "the row is 1048578 bytes long"},
		}, 3, 5},
		{"after a broken multi-line row", "a,b\n1,\"p\nq\"x\n0," + long + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "has text after its closing quote"},
			{number: 2, line: 4, reason: "the row is 1048578 bytes long"},
		}, 3, 5},
		{"after a quote never closed", "a,b\n1,\"p\n0," + long + "\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "never closed"},
			{number: 2, line: 3, reason: "the row is 1048578 bytes long"},
		}, 3, 4},
		{"two long rows", "a,b\n0," + long + "\n0,\"" + lines + "\"\n" + rows(1, 3), 0, []step{
			{number: 1, line: 2, reason: "the row is 1048578 bytes long"},
			{number: 2, line: 3, reason: "runs over lines 3 to 1048579"},
		}, 3, 1048580},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "in.csv", tt.delim)
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			number := 0
			for i, w := range tt.want {
				row, err := r.Next()
				number = w.number
				if w.reason == "" {
					if err != nil {
						t.Fatalf("Next #%d: error %v, want row %d", i+1, err, w.number)
					}
					if row.Number != w.number || row.Line != w.line || !reflect.DeepEqual(row.Values, w.values) {
						t.Errorf("Next #%d = row %d, line %d, %d values; want row %d, line %d", i+1, row.Number, row.Line, len(row.Values), w.number, w.line)
					}
					continue
				}
				var re *RowError
				if !errors.As(err, &re) {
					t.Fatalf("Next #%d: got row %d, err %v; want *RowError", i+1, row.Number, err)
				}
				if re.Number != w.number || re.Line != w.line || !strings.Contains(re.Reason, w.reason) {
					t.Errorf("Next #%d error = %v, want row %d, line %d, a reason containing %q", i+1, re, w.number, w.line, w.reason)
				}
				if len(re.Error()) > 500 {
					t.Errorf("Next #%d error is %d bytes long", i+1, len(re.Error()))
				}
			}
			for i := 1; i <= tt.upTo; i++ {
				row, err := r.Next()
				number++
				line := tt.line + i - 1
				if err != nil || row.Number != number || row.Line != line || row.Values["a"] != fmt.Sprint("u", i) || row.Values["b"] != fmt.Sprint("v", i) {
					t.Fatalf("row u%d: got row %d, line %d, %v, err %v; want row %d, line %d", i, row.Number, row.Line, row.Values, err, number, line)
				}
			}
			if row, err := r.Next(); err != io.EOF {
				t.Fatalf("after the last row: Next() = row %d, %v; want io.EOF", row.Number, err)
			}
		})
	}
}

// A row over the bound is read past a buffer at a time: reading a file of
// 50 MB that is nearly all one broken row allocates a few MB, not the
// row, which encoding/csv alone holds several times over.
func TestLongRowMemory(t *testing.T) {
	const size = 50 << 20
	tests := []struct {
		name   string
		input  string
		reason string
		next   int // the line of the row after it
	}{
		{"one huge value", "a,b\n0," + strings.Repeat("x", size) + "\n1,2\n", "is 50 MiB long", 3},
		{"a quoted field closed far below", "a,b\n0,\"" + strings.Repeat("y\n", size/2) + "\"\n1,2\n", "runs over lines 2 to 26214402", 26214403},
		{"a quote never closed", "a,b\n0,\"\n" + strings.Repeat("y,z\n", size/4), "never closed", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "in.csv", 0)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = r.Next()
			runtime.ReadMemStats(&after)
			var re *RowError
			if !errors.As(err, &re) || re.Line != 2 || !strings.Contains(re.Reason, tt.reason) {
				t.Fatalf("Next() error = %v, want a row error at line 2 containing %q", err, tt.reason)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*MaxRowBytes {
				t.Errorf("reading past the row allocated %d MiB, for a file of %d MiB", alloc>>20, len(tt.input)>>20)
			}
			row, err := r.Next()
			if err != nil || row.Line != tt.next {
				t.Errorf("the row after it: %+v, %v; want one at line %d", row, err, tt.next)
			}
		})
	}
}

// The header row is checked against what the pipeline needs before a row
// is read: a file without its header row read its first row as the header
// (that row was never sent nor dead-lettered) and dead-lettered the others
// as template errors (a QA run).
func TestExpect(t *testing.T) {
	f2 := spec.EventReads{Fields: []string{"tag", "ttl", "user_id"}, Needed: []spec.FieldNeed{{Name: "user_id", Places: []string{"filter", "target.params.external_id"}}}}
	tests := []struct {
		name    string
		input   string
		delim   rune
		reads   spec.EventReads
		wantErr string // the whole error; "" = none
	}{
		{"the columns needed", "user_id,tag\nu1,vip\n", 0, f2, ""},
		{"an optional column missing", "user_id\nu1\n", 0, f2, ""},
		{"no column needed", "a,b\n1,2\n", 0, spec.EventReads{Fields: []string{"tag"}}, ""},
		{"no header row", "u-1001,vip,3600\nu-1002,gold,60\n", 0, f2,
			"export.csv:1: the header row has no column user_id, which the pipeline reads (filter, target.params.external_id); is the header row missing, or the delimiter not a comma?"},
		{"another delimiter", "user_id;tag;ttl\nu1;vip;60\n", 0, f2,
			`export.csv:1: the header row has no column user_id, which the pipeline reads (filter, target.params.external_id); the header row is one column, "user_id;tag;ttl": the file seems to separate its fields with a semicolon, where the pipeline's source.delimiter is a comma`},
		// a data row in place of the header is quoted cut: personal data
		{"a long first line", "u-1001;" + strings.Repeat("x", 100) + "\n", 0, f2,
			`the header row is one column, "u-1001;` + strings.Repeat("x", 53) + `…": the file seems`},
		{"a comma where the pipeline says ;", "user_id,tag\nu1,vip\n", ';', f2,
			`the file seems to separate its fields with a comma, where the pipeline's source.delimiter is a semicolon`},
		{"a name in another case, spaces trimmed", " User_ID ,tag\nu1,vip\n", 0, f2,
			`export.csv:1: the header row has no column user_id, which the pipeline reads (filter, target.params.external_id); its column "User_ID" may be meant for user_id: rename it user_id (a name must match exactly, letter case too)`},
		{"a misspelt name", "user_di,tag\nu1,vip\n", 0, f2, `its column "user_di" may be meant for user_id`},
		{"several missing", "a,b\n1,2\n", 0, spec.EventReads{Fields: []string{"tag", "user_id"}, Needed: []spec.FieldNeed{{Name: "tag", Places: []string{"target.body.tags[0]"}}, {Name: "user_id", Places: []string{"target.params.external_id"}}}},
			"export.csv:1: the header row has no column tag, which the pipeline reads (target.body.tags[0]), nor user_id, which the pipeline reads (target.params.external_id); is the header row missing, or the delimiter not a comma?"},
		{"the event read whole still needs its named columns", "a\n1\n", 0, spec.EventReads{Whole: true, Fields: []string{"user_id"}, Needed: []spec.FieldNeed{{Name: "user_id", Places: []string{"target.params.external_id"}}}},
			"the header row has no column user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), "export.csv", tt.delim)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Expect(tt.reads)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Expect: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Expect: %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}

// A column the pipeline reads but does not need, present in another
// letter case, is warned about: read as missing in every row, it took its
// default with no word (a re-QA: Tag and TTL).
func TestNearMisses(t *testing.T) {
	f2 := spec.EventReads{Fields: []string{"tag", "ttl", "user_id"}, Needed: []spec.FieldNeed{{Name: "user_id", Places: []string{"target.params.external_id"}}}}
	for _, tt := range []struct {
		header string
		want   []string
	}{
		{"user_id,tag,ttl", nil},
		{"user_id", nil},
		{"user_id,Tag,TTL", []string{
			`export.csv:1: the header row's column "Tag" may be meant for tag, which the pipeline reads: rename it tag (a name must match exactly, letter case too); as it is, every row reads tag as missing`,
			`export.csv:1: the header row's column "TTL" may be meant for ttl`}},
		{"User_ID,tag", nil}, // needed: Expect refuses the file
	} {
		r, err := NewReader(strings.NewReader(tt.header+"\n"), "export.csv", 0)
		if err != nil {
			t.Fatal(err)
		}
		got := r.NearMisses(f2)
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %q, want %d", tt.header, got, len(tt.want))
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tt.want[i]) {
				t.Errorf("%s: %q, want %q", tt.header, got[i], tt.want[i])
			}
		}
	}
}

// Only the columns the pipeline reads must be UTF-8 text: a surname in
// Latin-1 (an export saved as Excel's plain "CSV") dead-lettered rows of a
// pipeline that reads user_id and tag alone, and the advice, to import the
// file again once fixed, sent its good rows again (a QA run).
func TestNotUTF8OnlyWhereRead(t *testing.T) {
	input := "user_id,last_name,tag\nu1,Garc\xeda,vip\nu2,Lee,caf\xe9\nu3,Se\xe1n,gold\n"
	tests := []struct {
		name  string
		reads spec.EventReads
		want  []step
	}{
		{"a column not read", spec.EventReads{Fields: []string{"tag", "user_id"}}, []step{
			{number: 1, line: 2, values: map[string]any{"user_id": "u1", "last_name": "Garc\ufffda", "tag": "vip"}},
			{number: 2, line: 3, reason: `column 3 ("tag", at line 3, character 8) is not UTF-8 text; the file was likely saved as Excel's plain "CSV" (Windows-1252), not "CSV UTF-8": put this row, fixed, under the header row in a new file saved as "CSV UTF-8" and import that (importing the whole file again would send its other rows again)`},
			{number: 3, line: 4, values: map[string]any{"user_id": "u3", "last_name": "Se\ufffdn", "tag": "gold"}},
		}},
		{"the event read whole", spec.EventReads{Whole: true, Fields: []string{"user_id"}}, []step{
			{number: 1, line: 2, reason: `column 2 ("last_name", at line 2, character 4) is not UTF-8 text`},
			{number: 2, line: 3, reason: `column 3 ("tag", at line 3, character 8) is not UTF-8 text`},
			{number: 3, line: 4, reason: `column 2 ("last_name", at line 4, character 4) is not UTF-8 text`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(input), "export.csv", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Expect(tt.reads); err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				row, err := r.Next()
				var re *RowError
				switch {
				case want.reason != "":
					if !errors.As(err, &re) || re.Number != want.number || re.Line != want.line || !strings.Contains(re.Reason, want.reason) {
						t.Errorf("step %d: %+v, %v; want row %d (line %d) broken: %s", i, row, err, want.number, want.line, want.reason)
					}
				case err != nil || row.Number != want.number || row.Line != want.line || !reflect.DeepEqual(row.Values, want.values):
					t.Errorf("step %d: %+v, %v; want %+v", i, row, err, want)
				}
			}
			if _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("after the rows: %v, want io.EOF", err)
			}
		})
	}
}

// growing is input that a test appends to between reads.
type growing struct {
	data []byte
	at   int64
}

func (g *growing) Read(p []byte) (int, error) {
	if g.at >= int64(len(g.data)) {
		return 0, io.EOF
	}
	n := copy(p, g.data[g.at:])
	g.at += int64(n)
	return n, nil
}

func (g *growing) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += g.at
	case io.SeekEnd:
		off += int64(len(g.data))
	}
	g.at = off
	return off, nil
}

// A quoted value that runs over lines that look like rows (a stray
// opening quote a later one closes) is valid CSV, read as one row, with a
// warning naming its lines: the rows between were lost with no word (a
// QA run). A value over lines that do not look like rows has none.
func TestRowRunningOverRowsIsWarned(t *testing.T) {
	r, err := NewReader(strings.NewReader("user_id,first_name\nu-1004,\"Doe\nload-000001,ok\nload-000002,ok\nload-000003,x\"\nload-000004,ok\nu-1005,\"two\nlines\"\n"), "x.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	want := `its value in column 2 ("first_name") runs from line 2 to line 5, and 3 of those lines look like rows of their own: a stray quote?`
	if err != nil || row.Number != 1 || !strings.HasPrefix(row.Warning, want) {
		t.Fatalf("row %+v, %v; want row 1 warned: %s", row, err, want)
	}
	for _, id := range []string{"load-000004", "u-1005"} {
		row, err = r.Next()
		if err != nil || row.Values["user_id"] != id || row.Warning != "" {
			t.Fatalf("row %+v, %v; want %s without a warning", row, err, id)
		}
	}
}

// A stray quote closed in another column makes a broken row of every line
// between: its error names them, or the advice to put the row right in a
// new file lost the rows between (a re-QA: 102 rows, one line named).
func TestBrokenRowRunningOverRowsNamesItsLines(t *testing.T) {
	r, err := NewReader(strings.NewReader("user_id,tag\nload-000010,\"t7g\nload-000011,t7g\nload-000012,t7g\nload-000013,t7g\",x\nload-000014,t7g\n"), "x.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	want := `x.csv:2: row 1: has 3 columns, the header has 2; check the delimiter and quoting of this row; its value in column 2 ("tag") runs from line 2 to line 5, and 3 of those lines look like rows of their own: a stray quote?`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("%v; want %s", err, want)
	}
	// Past the header's columns, the column has no name.
	r, err = NewReader(strings.NewReader("user_id,tag\nload-000010,t7g,\"x\nload-000011,t7g\nload-000012,t7g\"\n"), "x.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = r.Next(); err == nil || !strings.Contains(err.Error(), "; its value in column 3 runs from line 2 to line 4, and 2 of those lines") {
		t.Fatalf("%v; want column 3 named by number", err)
	}
	if row, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the broken row: %+v %v; want the end", row, err)
	}
}

// Blank lines read past at the end before the file grew count: the rows
// after them are named at their own lines (a review saw line 3 for a row
// on line 4).
func TestReadOnCountsBlankLinesBeforeTheGrowth(t *testing.T) {
	in := &growing{data: []byte("user_id,tag\nu1,a\n\n")}
	r, err := NewReader(in, "x.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next: %v; want io.EOF", err)
	}
	in.data = append(in.data, "u2,b\n"...)
	if err := r.ReadOn(); err != nil {
		t.Fatal(err)
	}
	if row, err := r.Next(); err != nil || row.Line != 4 || row.Values["user_id"] != "u2" {
		t.Fatalf("row %+v %v; want u2 at line 4", row, err)
	}
}

// A file that grows after the reader reached its end is read on from the
// row after the last, numbered after it, with its lines counted on.
func TestReadOnAfterTheInputGrew(t *testing.T) {
	in := &growing{data: []byte("user_id,tag\nu1,a\n\nu2,b\n")}
	r, err := NewReader(in, "x.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next: %v; want io.EOF", err)
	}
	in.data = append(in.data, "u3,c\nu4,d,extra\n"...)
	if err := r.ReadOn(); err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	if err != nil || row.Number != 3 || row.Line != 5 || row.Values["user_id"] != "u3" {
		t.Fatalf("row %+v %v; want row 3, line 5, u3", row, err)
	}
	var re *RowError
	if _, err := r.Next(); !errors.As(err, &re) || re.Number != 4 || re.Line != 6 {
		t.Fatalf("%v; want row 4 at line 6 broken", err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next: %v; want io.EOF", err)
	}
	if r.Offset() != int64(len(in.data)) {
		t.Fatalf("offset %d of %d", r.Offset(), len(in.data))
	}
}
