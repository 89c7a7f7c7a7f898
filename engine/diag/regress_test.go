package diag

import "testing"

func TestErrorsCountsEachProblemOnce(t *testing.T) {
	var l List
	d := Diagnostic{File: "f.yaml", Line: 1, Column: 2, Message: "m"}
	l.Add(d)
	l.Add(d)
	l.Add(Diagnostic{File: "f.yaml", Line: 3, Message: "w", Severity: Warning})
	if l.Errors() != 1 || len(l.Items()) != 2 {
		t.Errorf("Errors() = %d, Items() = %d; want 1 and 2", l.Errors(), len(l.Items()))
	}
}
