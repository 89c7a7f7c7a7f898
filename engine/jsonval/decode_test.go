package jsonval

import (
	"strings"
	"testing"
)

// Decode takes one JSON value and nothing after it but white space.
func TestDecodeRefusesWhatFollowsTheValue(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}]`:         "line 1, column 8: it does not end where the JSON value ends",
		`[1]]`:             "line 1, column 4: it does not end where the JSON value ends",
		`{"a":1}}`:         "line 1, column 8: it does not end where the JSON value ends",
		`{} {}`:            "line 1, column 4: more than one JSON value",
		"{\"a\":1}\n\n  }": "line 3, column 3: it does not end",
		`{"a":1`:           "not JSON",
		"{\"a\":1}\n":      "",
		` [1, 2] `:         "",
	} {
		_, err := Decode([]byte(in))
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}
