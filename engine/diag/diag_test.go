package diag

import (
	"errors"
	"reflect"
	"testing"
)

func TestDiagnosticString(t *testing.T) {
	tests := []struct {
		name string
		d    Diagnostic
		want string
	}{
		{"full", Diagnostic{File: "p.yaml", Line: 3, Column: 7, Path: "steps[0].body", Message: "bad"}, "p.yaml:3:7: steps[0].body: bad"},
		{"no column", Diagnostic{File: "p.yaml", Line: 3, Path: "filter", Message: "bad"}, "p.yaml:3: filter: bad"},
		{"column without line is dropped", Diagnostic{File: "p.yaml", Column: 7, Message: "bad"}, "p.yaml: bad"},
		{"no position, no path", Diagnostic{File: "p.yaml", Message: "bad"}, "p.yaml: bad"},
		{"no path", Diagnostic{File: "p.yaml", Line: 1, Column: 1, Message: "bad"}, "p.yaml:1:1: bad"},
		{"warning", Diagnostic{File: "p.yaml", Line: 2, Column: 4, Path: "a.b", Message: "odd", Severity: Warning}, "p.yaml:2:4: warning: a.b: odd"},
		{"warning without path", Diagnostic{File: "c.yaml", Message: "odd", Severity: Warning}, "c.yaml: warning: odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListItemsSortedAndDeduplicated(t *testing.T) {
	a1 := Diagnostic{File: "a.yaml", Line: 1, Column: 5, Message: "first"}
	a2 := Diagnostic{File: "a.yaml", Line: 2, Column: 1, Message: "second"}
	a2b := Diagnostic{File: "a.yaml", Line: 2, Column: 3, Message: "third"}
	a2w := Diagnostic{File: "a.yaml", Line: 2, Column: 3, Message: "other", Severity: Warning}
	b0 := Diagnostic{File: "b.yaml", Message: "whole file"}
	b9 := Diagnostic{File: "b.yaml", Line: 9, Column: 1, Message: "late"}

	var l List
	for _, d := range []Diagnostic{b9, a2b, a1, b0, a2, a1, a2b, a2w} {
		l.Add(d)
	}
	got := l.Items()
	// same position keeps insertion order (stable sort); exact duplicates go
	want := []Diagnostic{a1, a2, a2b, a2w, b0, b9}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Items() =\n%v\nwant\n%v", got, want)
	}
	if l.Len() != 8 {
		t.Errorf("Len() = %d, want 8 (duplicates are only dropped by Items)", l.Len())
	}
	// Items does not reorder the list itself.
	again := l.Items()
	if !reflect.DeepEqual(again, want) {
		t.Errorf("second Items() differs: %v", again)
	}
}

func TestListErrors(t *testing.T) {
	e1 := Diagnostic{File: "p.yaml", Line: 4, Column: 2, Path: "target", Message: "missing connection"}
	e2 := Diagnostic{File: "p.yaml", Line: 1, Column: 1, Message: "unknown key"}
	w := Diagnostic{File: "p.yaml", Line: 2, Column: 1, Message: "deprecated", Severity: Warning}

	tests := []struct {
		name    string
		add     []Diagnostic
		errors  int    // -1: not checked
		wantErr string // "" means Err() is nil
	}{
		{"empty", nil, 0, ""},
		{"warnings only", []Diagnostic{w}, 0, ""},
		{"errors and warnings", []Diagnostic{e1, w, e2}, 2, "p.yaml:1:1: unknown key\np.yaml:4:2: target: missing connection"},
		{"duplicate errors once", []Diagnostic{e1, e1}, -1, "p.yaml:4:2: target: missing connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l List
			for _, d := range tt.add {
				l.Add(d)
			}
			if tt.errors >= 0 && (l.Errors() != tt.errors || l.HasErrors() != (tt.errors > 0)) {
				t.Errorf("Errors() = %d, HasErrors() = %v; want %d", l.Errors(), l.HasErrors(), tt.errors)
			}
			err := l.Err()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Err() = nil, want %q", tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Err() =\n%s\nwant\n%s", err, tt.wantErr)
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Err() is %T, not Problems", err)
			}
			// the Problems value keeps the warnings; only its text omits them
			if len(ps) != len(l.Items()) {
				t.Errorf("Problems holds %d diagnostics, want %d", len(ps), len(l.Items()))
			}
		})
	}
}

func TestListAppend(t *testing.T) {
	var a, b List
	a.Add(Diagnostic{File: "x", Line: 2, Message: "m2"})
	b.Add(Diagnostic{File: "x", Line: 1, Message: "m1"})
	b.Add(Diagnostic{File: "x", Line: 3, Message: "m3", Severity: Warning})
	a.Append(b)
	if a.Len() != 3 || a.Errors() != 2 {
		t.Fatalf("after Append: Len=%d Errors=%d, want 3 and 2", a.Len(), a.Errors())
	}
	var msgs []string
	for _, d := range a.Items() {
		msgs = append(msgs, d.Message)
	}
	if !reflect.DeepEqual(msgs, []string{"m1", "m2", "m3"}) {
		t.Errorf("Items after Append = %q", msgs)
	}
	if b.Len() != 2 {
		t.Errorf("Append changed its argument: Len=%d", b.Len())
	}
}

func TestProblemsError(t *testing.T) {
	p := Problems{
		{File: "a", Line: 1, Message: "warn", Severity: Warning},
		{File: "a", Line: 2, Column: 3, Message: "err"},
	}
	if got := p.Error(); got != "a:2:3: err" {
		t.Errorf("Error() = %q, want only the error line", got)
	}
}

func TestSuggest(t *testing.T) {
	candidates := []string{"event", "request", "pipeline", "upcase", "default", "if", "in"}
	tests := []struct {
		name  string
		in    string
		cands []string
		want  string
	}{
		{"one edit", "evnt", candidates, `; did you mean "event"?`},
		{"transposition in a long name", "defualt", candidates, `; did you mean "default"?`},
		{"two edits on a long name", "reqeust", candidates, `; did you mean "request"?`},
		{"missing letter", "upcas", candidates, `; did you mean "upcase"?`},
		{"short name one edit", "iff", candidates, `; did you mean "if"?`},
		{"transposition in a short name", "endfi", []string{"endif", "endfor"}, `; did you mean "endif"?`},
		{"transposition in a command", "vlaidate", []string{"validate", "run"}, `; did you mean "validate"?`},
		{"tie broken alphabetically", "ix", []string{"in", "if"}, `; did you mean "if"?`},
		{"far name", "foo", candidates, ""},
		{"two edits on a short name", "evxxt", []string{"event"}, ""},
		{"three edits on a long name", "pipexxxe", []string{"pipeline"}, ""},
		{"exact name", "event", candidates, ""},
		{"no candidates", "event", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Suggest(tt.in, tt.cands); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"event", "evnt", 1},
		{"default", "defualt", 1}, // swapped letters are one edit
		{"endif", "endfi", 1},
		{"ab", "ba", 1},
		{"abc", "ca", 3},
		{"same", "same", 0},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
