// Package diag holds the problems found in pipeline files, each tied to a
// file, a line, a column and a path inside the document, so that every
// command reports them in the same "file:line:col: path: message" form.
package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity tells whether a problem stops a pipeline from being built.
type Severity int

const (
	Error Severity = iota
	Warning
)

// Diagnostic is one problem in one file.
type Diagnostic struct {
	File     string
	Line     int // 1-based; 0 when unknown
	Column   int // 1-based; 0 when unknown
	Path     string
	Message  string
	Severity Severity
}

func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
		if d.Column > 0 {
			fmt.Fprintf(&b, ":%d", d.Column)
		}
	}
	b.WriteString(": ")
	if d.Severity == Warning {
		b.WriteString("warning: ")
	}
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// List collects diagnostics; its zero value is ready to use.
type List struct {
	items []Diagnostic
}

// Add appends d.
func (l *List) Add(d Diagnostic) { l.items = append(l.items, d) }

// Append appends every diagnostic of other.
func (l *List) Append(other List) { l.items = append(l.items, other.items...) }

// Items returns the diagnostics sorted by file, line and column, without
// duplicates (two checks may find the same fault).
func (l *List) Items() []Diagnostic {
	out := slices.Clone(l.items)
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
		)
	})
	return slices.Compact(out)
}

// HasErrors reports whether any diagnostic is an error (not a warning).
func (l *List) HasErrors() bool { return l.Errors() > 0 }

// Errors counts the diagnostics that are errors.
func (l *List) Errors() int {
	n := 0
	for _, d := range l.Items() {
		if d.Severity == Error {
			n++
		}
	}
	return n
}

// Len counts all diagnostics.
func (l *List) Len() int { return len(l.items) }

// Error joins the errors into one error, or returns nil when there are none.
func (l *List) Err() error {
	if !l.HasErrors() {
		return nil
	}
	return Problems(l.Items())
}

// Problems is a list of diagnostics used as an error value.
type Problems []Diagnostic

func (p Problems) Error() string {
	lines := make([]string, 0, len(p))
	for _, d := range p {
		if d.Severity == Error {
			lines = append(lines, d.String())
		}
	}
	return strings.Join(lines, "\n")
}

// Suggest returns `; did you mean "x"?` for the candidate closest to name
// (one edit away for short names, two for longer ones), or "" when none is
// close.
func Suggest(name string, candidates []string) string {
	best := Closest(name, candidates)
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// Closest returns the candidate Suggest would name, or "" when none is
// close or name is one of them.
func Closest(name string, candidates []string) string {
	best, bestDist := "", min(2, max(1, len(name)/3))+1
	for _, c := range candidates {
		d := editDistance(name, c)
		if d < bestDist || (d == bestDist && best != "" && c < best) {
			best, bestDist = c, d
		}
	}
	if best == name {
		return ""
	}
	return best
}

// editDistance counts the edits between a and b: a letter added, removed
// or changed, or two neighbours swapped (optimal string alignment). A swap
// counts one because it is the typo people make most ("endfi", "defualt"),
// and short names allow only one edit.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// LineCol turns a byte offset of src into a 1-based line and column
// (columns count characters).
func LineCol(src string, offset int) (line, col int) {
	offset = min(max(offset, 0), len(src))
	before := src[:offset]
	line = strings.Count(before, "\n") + 1
	col = len([]rune(before[strings.LastIndexByte(before, '\n')+1:])) + 1
	return line, col
}
