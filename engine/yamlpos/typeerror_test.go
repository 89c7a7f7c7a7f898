package yamlpos

import "testing"

func TestTypeProblem(t *testing.T) {
	for _, tc := range []struct{ msg, line, want string }{
		{"line 3: field colour not found in type engine.PipelineConfig", "3", `unknown key "colour"`},
		{"line 4: cannot unmarshal !!str `lots` into int", "4", "expected a whole number, got text (lots)"},
		{"line 5: cannot unmarshal !!seq into map[string]interface {}", "5", "expected a mapping, got a list"},
		{"line 6: cannot unmarshal !!map into []interface {}", "6", "expected a list, got a mapping"},
		{"line 7: cannot unmarshal !!str `x` into struct { N int }", "7", "expected a mapping, got text (x)"},
		{"line 8: cannot unmarshal !!str `1x` into time.Duration", "8", "expected a duration such as 2s or 300ms, got text (1x)"},
		{"something else", "", "something else"},
	} {
		line, got := TypeProblem(tc.msg)
		if line != tc.line || got != tc.want {
			t.Errorf("%q: line %q, %q; want %q, %q", tc.msg, line, got, tc.line, tc.want)
		}
	}
}
