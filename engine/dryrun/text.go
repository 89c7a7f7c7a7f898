package dryrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/engine/secrets"
)

// WriteText prints a report for people, secrets masked.
func (rep *Report) WriteText(w io.Writer, m *secrets.Masker) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline  %s (version %s)\n", rep.Pipeline, rep.Version)
	fmt.Fprintf(&b, "input     %s\n", rep.Input)
	rep.writeBody(&b, "", m)
	_, err := io.WriteString(w, m.String(b.String()))
	return err
}

func (rep *Report) writeBody(b *strings.Builder, indent string, m *secrets.Masker) {
	switch {
	case rep.Filtered:
		if rep.Response != nil { // a synchronous pipeline answers all the same
			fmt.Fprintf(b, "%sfilter    false: nothing would be sent, and engine run answers with the response below\n", indent)
		} else {
			fmt.Fprintf(b, "%sfilter    false: the event is dropped, nothing would be sent\n", indent)
		}
		if rep.FilterExplain != "" {
			fmt.Fprintf(b, "%s          because %s\n", indent, rep.FilterExplain)
		}
	case len(rep.Errors) == 0 || len(rep.Lookups) > 0 || len(rep.Requests) > 0:
		fmt.Fprintf(b, "%sfilter    passed\n", indent)
	}
	for _, l := range rep.Lookups {
		if l.Request == nil {
			if l.Error == "" {
				fmt.Fprintf(b, "%sstep      %s = %s\n", indent, l.Step, compact(l.Value, 300, m))
			} else {
				fmt.Fprintf(b, "%sstep      %s failed\n", indent, l.Step)
			}
			continue
		}
		fmt.Fprintf(b, "%slookup    %s\n", indent, l.Step)
		writeRequest(b, indent+"  ", l.Request)
		if r := l.Response; r != nil {
			fmt.Fprintf(b, "%s  response %d from %s:\n", indent, r.Status, r.From)
			fmt.Fprintf(b, "%s  %s\n", indent, compact(r.Body, 400, m))
		}
		if l.Error != "" {
			fmt.Fprintf(b, "%s  failed: %s\n", indent, l.Error)
		}
	}
	for _, r := range rep.Requests {
		fmt.Fprintf(b, "%srequest   (not sent)\n", indent)
		writeRequest(b, indent+"  ", &r)
	}
	if r := rep.Response; r != nil {
		fmt.Fprintf(b, "%sresponse  %d\n", indent, r.Status)
		writeHeaders(b, indent+"  ", r.Headers)
		writeJSONBody(b, indent+"  ", r.Body)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(b, "%serror     %s\n", indent, e)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(b, "%swarning   %s\n", indent, w)
	}
}

func writeRequest(b *strings.Builder, indent string, r *HTTPRequest) {
	fmt.Fprintf(b, "%s%s %s\n", indent, r.Method, r.URL)
	writeHeaders(b, indent, r.Headers)
	writeJSONBody(b, indent, r.Body)
}

func writeHeaders(b *strings.Builder, indent string, h map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(h)) {
		fmt.Fprintf(b, "%s%s: %s\n", indent, name, h[name])
	}
}

func writeJSONBody(b *strings.Builder, indent string, body any) {
	if body == nil {
		return
	}
	b.WriteString("\n")
	text, isText := body.(string)
	if !isText {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
		text = buf.String()
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(indent + line + "\n")
	}
	b.WriteString("\n")
}

// compact prints a value as one line of JSON, secrets masked, cut at max
// bytes.
func compact(v any, max int, m *secrets.Masker) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return m.String(fmt.Sprint(v))
	}
	// Masked before it is cut: a secret across the cut would no longer be
	// whole, and its first part would be printed (a security review).
	s := m.String(strings.TrimSpace(buf.String()))
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// WriteText prints a CSV report for people, secrets masked.
func (rep *CSVReport) WriteText(w io.Writer, m *secrets.Masker) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline  %s (version %s)\n", rep.Pipeline, rep.Version)
	fmt.Fprintf(&b, "input     %s\n", rep.File)
	for _, w := range rep.Warnings {
		fmt.Fprintf(&b, "warning   %s\n", w)
	}
	requests, filtered, failed := 0, 0, 0
	for _, row := range rep.Rows {
		fmt.Fprintf(&b, "\nrow %d (line %d)\n", row.Row.Number, row.Row.Line)
		row.writeBody(&b, "  ", m)
		requests += len(row.Requests)
		if row.Filtered {
			filtered++
		}
		if len(row.Errors) > 0 {
			failed++
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(&b, "error     %s\n", e)
	}
	counts := fmt.Sprintf("%s (not sent), %d filtered out, %d with errors", plural(requests, "request"), filtered, failed)
	// A file that fails as a whole leaves no row in error, yet the
	// command exits 1: the last line says so rather than "0 with errors".
	switch {
	case len(rep.Errors) == 0:
		fmt.Fprintf(&b, "\n%s: %s\n", plural(len(rep.Rows), "row"), counts)
	case len(rep.Rows) == 0:
		fmt.Fprintf(&b, "\nno rows: the file could not be read (the error above says why), so nothing would be sent\n")
	default:
		fmt.Fprintf(&b, "\n%s, then the file could not be read on (the error above says why): %s\n", plural(len(rep.Rows), "row"), counts)
	}
	_, err := io.WriteString(w, m.String(b.String()))
	return err
}

// plural counts n things: "1 row", "2 rows".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Failed reports whether any row or the file itself had errors.
func (rep *CSVReport) Failed() bool {
	if len(rep.Errors) > 0 {
		return true
	}
	for _, r := range rep.Rows {
		if len(r.Errors) > 0 {
			return true
		}
	}
	return false
}
