package dryrun

import (
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/secrets"
)

// The last line of a CSV dry run counts what happened, in words that
// agree with the numbers, and says why when the file itself failed (the
// command then exits 1 with no row in error).
func TestCSVSummaryLine(t *testing.T) {
	row := func(requests int, filtered bool, errs ...string) *Report {
		return &Report{Row: &Row{1, 2}, Requests: make([]HTTPRequest, requests), Filtered: filtered, Errors: errs}
	}
	tests := []struct {
		name   string
		rows   []*Report
		errors []string
		want   string
	}{
		{"no rows", nil, nil, "0 rows: 0 requests (not sent), 0 filtered out, 0 with errors"},
		{"one of each", []*Report{row(1, false)}, nil, "1 row: 1 request (not sent), 0 filtered out, 0 with errors"},
		{"several", []*Report{row(1, false), row(0, true), row(0, false, "broken")}, nil, "3 rows: 1 request (not sent), 1 filtered out, 1 with errors"},
		{"two requests in one row", []*Report{row(2, false)}, nil, "1 row: 2 requests (not sent), 0 filtered out, 0 with errors"},
		{"file not read", nil, []string{"x.csv: the line endings are CR only"}, "no rows: the file could not be read (the error above says why), so nothing would be sent"},
		{"file failed after rows", []*Report{row(1, false)}, []string{"x.csv: reading row 2: boom"}, "1 row, then the file could not be read on (the error above says why): 1 request (not sent), 0 filtered out, 0 with errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &CSVReport{Pipeline: "p", Version: "v", File: "x.csv", Rows: tt.rows, Errors: tt.errors}
			var b strings.Builder
			if err := rep.WriteText(&b, nil); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
			if got := lines[len(lines)-1]; got != tt.want {
				t.Errorf("summary line\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// A filtered event of a pipeline that answers is not dropped unanswered:
// the text says what engine run answers, and still why the filter refused.
func TestFilteredEventText(t *testing.T) {
	for _, tt := range []struct {
		name     string
		response *HTTPReply
		want     []string
	}{
		{"queued pipeline", nil, []string{"filter    false: the event is dropped, nothing would be sent\n", "          because user is blocked\n"}},
		{"respond pipeline", notFound("refused"), []string{"filter    false: nothing would be sent, and engine run answers with the response below\n", "          because user is blocked\n", "response  404\n", `"error": "refused"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := &Report{Pipeline: "p", Version: "v", Filtered: true, FilterExplain: "user is blocked", Response: tt.response}
			var b strings.Builder
			if err := rep.WriteText(&b, nil); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("no %q in\n%s", w, b.String())
				}
			}
		})
	}
}

// A value cut short for the text is masked first: a secret across the cut
// was no longer whole, and its first part was printed (a security review).
// For each length of the text before it, no part of the secret shows.
func TestCutValuesAreMaskedFirst(t *testing.T) {
	const secret = "PartnerKey-777"
	m := &secrets.Masker{}
	m.Add(secret)
	for n := 250; n < 420; n++ {
		note := strings.Repeat("a", n)
		rep := &Report{Pipeline: "p", Version: "v", Lookups: []Lookup{
			{Step: "creds", Value: map[string]any{"note": note, "key": secret}},
			{Step: "token", Request: &HTTPRequest{Method: "GET", URL: "http://x/t"}, Response: &LookupResponse{Status: 200, From: "f.json", Body: map[string]any{"echo": note, "key": secret}}},
		}}
		var b strings.Builder
		if err := rep.WriteText(&b, m); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), secret[:5]) {
			t.Fatalf("a note of %d bytes: part of the secret printed:\n%s", n, b.String())
		}
	}
}
