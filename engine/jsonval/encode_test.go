package jsonval

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// stdJSON is what encoding/json writes without HTML escaping: the
// reference appendJSON must match byte for byte.
func stdJSON(t testing.TB, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, "", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f",
		"<b>&amp;</b>", "ünïcödé ✓ 🎉", "bad \xff utf8 \xc3", "line\u2028sep\u2029para", "12345678\"12345678",
		int64(0), int64(-42), int64(math.MaxInt64), 42, 1.5, -0.000001, 1e-7, 1e21, 123456789.125, float64(1 << 53),
		json.Number("12.50"),
		map[string]any{"b": 1.0, "a": []any{"x", nil, map[string]any{}}, "é": "v", "A": false},
		[]any{}, map[string]any{"k": map[string]any{"n": map[string]any{"d": int64(3)}}},
	} {
		got, err := Append(nil, v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		if want := stdJSON(t, v); string(got) != want {
			t.Errorf("%#v:\n got %s\nwant %s", v, got, want)
		}
	}
	if _, err := Append(nil, math.Inf(1)); err == nil {
		t.Error("infinity encoded without an error")
	}
}

// Random strings, mostly ASCII with some bytes that need escaping, exercise
// the eight-bytes-at-a-time path at every alignment.
func TestAppendStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcdefgh \"\\\n\x01\x7f\xc3\xa9\xe2\x80\xa8\xff<>&")
	for i := 0; i < 5000; i++ {
		n := r.IntN(40)
		b := make([]byte, n)
		for j := range b {
			if r.IntN(4) == 0 {
				b[j] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[j] = byte('a' + r.IntN(26))
			}
		}
		s := string(b)
		if got, want := string(appendString(nil, s)), stdJSON(t, s); got != want {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "abc", "12345678\"", "\xff\xfe", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), stdJSON(t, s); got != want {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}
