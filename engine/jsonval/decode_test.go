package jsonval

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
		"{\"a\":1}\f":      "line 1, column 8: it does not end",
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

// The single-pass parser gives what encoding/json gives, and refuses
// what it refuses.
func TestParseMatchesEncodingJSON(t *testing.T) {
	for _, in := range parseCases() {
		checkParse(t, []byte(in))
	}
}

func FuzzParseMatchesEncodingJSON(f *testing.F) {
	for _, in := range parseCases() {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, data) })
}

func checkParse(t *testing.T, data []byte) {
	t.Helper()
	got, ok := parse(data)
	want, err := decodeStandard(data)
	switch {
	case err != nil && ok:
		t.Fatalf("%q: parsed as %#v; encoding/json: %v", data, got, err)
	case err == nil && !ok:
		t.Fatalf("%q: refused; encoding/json: %#v", data, want)
	case err == nil && (!reflect.DeepEqual(got, want) || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want)):
		// DeepEqual tells int from float64; %#v tells -0.0 from 0.
		t.Fatalf("%q: %#v; encoding/json: %#v", data, got, want)
	}
}

func parseCases() []string {
	cases := []string{
		``, ` `, `null`, `true`, `false`, `tru`, `nul`, `truex`, `[true,false,null]`,
		`{}`, `[]`, ` { } `, `[ ]`, `{"a":[]}`, `{"a":{}}`, `[[[]]]`,
		`{"a":1,"a":2}`, `{"a" : 1 , "b":"x"}`, "{\n\t\"a\":\r\n1}",
		`{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`,
		`0`, `-0`, `-`, `01`, `1.`, `.5`, `1.5`, `-1.5e3`, `1e`, `1e+`, `1E-2`, `2e0`, `1.0`,
		`123456789012345678`, `-123456789012345678`, `999999999999999999`, `1234567890123456789`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
		`1e400`, `-1e400`, `4.9e-324`, `+1`, `0x10`, `1_000`, `NaN`, `Infinity`,
		`""`, `"a"`, `"a\"b"`, `"\\\/\b\f\n\r\t"`, `"\'"`, `"\x"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u12"`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`, `"\ud83d\`,
		"\"tab\there\"", "\"nl\nhere\"", "\"\x7f\"", `"é"`, "\"\xff\"", "\"a\xe9b\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"",
		`"unterminated`, `"a\`, "\xef\xbb\xbf{}", `{"a":1}]`, `{} {}`, `[1]x`, `{"a":"b"}` + "\n",
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
		strings.Repeat(`{"a":`, 50) + "1" + strings.Repeat("}", 50),
	}
	for _, name := range []string{"events/sessionm-offer-issued.json", "events/sessionm-points-awarded.json", "events/braze-webhook-tags.json", "fixtures/wallet.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			panic(err)
		}
		cases = append(cases, string(b))
	}
	return cases
}

// go test -bench Decode ./engine/jsonval: the parser against encoding/json
// on the F4 event and the wallet answer.
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"events/sessionm-offer-issued.json", "fixtures/wallet.json"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range []struct {
			name   string
			decode func([]byte) (any, error)
		}{{"parse", Decode}, {"encoding-json", decodeStandard}} {
			b.Run(filepath.Base(name)+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := d.decode(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A whole number past int64's range is kept as written, so it is sent as
// it came: as a float64, 12345678901234567891 went out as
// 12345678901234567000, and two such ids compared equal.
func TestWholeNumbersPastInt64AreKeptExactly(t *testing.T) {
	for _, text := range []string{"12345678901234567891", "-9223372036854775809", "123456789012345678901234567890"} {
		v, err := Decode([]byte(`{"n":` + text + `}`))
		if err != nil {
			t.Fatal(err)
		}
		out, err := Encode(v, 0)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != `{"n":`+text+`}` {
			t.Errorf("%s came back as %s", text, out)
		}
	}
	a, _ := Decode([]byte(`12345678901234567890`))
	b, _ := Decode([]byte(`12345678901234567891`))
	if a == b {
		t.Error("two ids past int64's range decode equal")
	}
	if f, _ := Decode([]byte(`1e19`)); f != 1e19 {
		t.Errorf("1e19 decoded as %#v, want a float64", f)
	}
}

// A number beyond float64's range is carried as written, as a whole
// number beyond int64's is: as ±Inf it could not be encoded again, and
// the event became a dead letter.
func TestNumbersOutOfRangeAreKeptAsWritten(t *testing.T) {
	for _, in := range []string{`{"n":1.0e400}`, `{"n":-2E+999}`, `{"n":12345678901234567891}`} {
		v, err := Decode([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := Append(nil, v)
		if err != nil || string(out) != in {
			t.Errorf("%s: encoded again as %s (%v)", in, out, err)
		}
	}
}
