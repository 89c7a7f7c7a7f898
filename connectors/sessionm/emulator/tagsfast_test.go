package emulator

import (
	"reflect"
	"strings"
	"testing"
)

// tagBodies: the first five are plain (the fast path reads them), the
// rest are for the full parser.
var tagBodies = []string{
	`{"tags":["braze_segment_export"],"ttl":2592000}`,
	`{"ttl":2592000,"tags":["a","b","a"]}`,
	` { "tags" : [ "vip" , "b" ] } `,
	"{\n\t\"tags\": [\"é ü\"],\r\n \"ttl\": 1}",
	`{"tags":["x"],"ttl":3153600000}`,
	`{"tags":["x"],"ttl":3153600001}`,
	`{"tags":["x"],"ttl":0}`, `{"tags":["x"],"ttl":012}`, `{"tags":["x"],"ttl":-5}`,
	`{"tags":["x"],"ttl":1.5}`, `{"tags":["x"],"ttl":1e3}`, `{"tags":["x"],"ttl":"20000"}`,
	`{"tags":["x"],"ttl":null}`, `{"tags":null}`, `{"tags":[]}`, `{"tags":[""]}`,
	`{"tags":["a\"b"]}`, `{"tags":["a\u0041"]}`, "{\"tags\":[\"a\x01\"]}", "{\"tags\":[\"\xff\"]}",
	`{"tags":["x"],"tags":["y"]}`, `{"tags":["x"],"other":1}`, `{"tags":["x"],}`, `{"tags":["x",]}`,
	`{"tags":["x"]} x`, `{"tags":["x"]`, `["x"]`, ``, `{}`, `{"tags":[1]}`, `{"tags":"x"}`,
	`{"tags":["x"] "ttl":1}`, `{"tags":["x"],"ttl":5x}`,
}

// Whatever the fast path reads, it reads as the full parser does, and it
// leaves every problem to the full parser.
func TestParseTagsFastAgreesWithFull(t *testing.T) {
	plain := map[string]bool{}
	for _, b := range tagBodies[:5] {
		plain[b] = true
	}
	for _, body := range append(tagBodies, `{"tags":[`+strings.Repeat(`"t",`, maxTagsPerCall)+`"t"]}`) {
		tags, ttl, ok := parseTagsFast([]byte(body))
		if ok != plain[body] {
			t.Errorf("%q: fast path took it: %v, want %v", body, ok, plain[body])
		}
		if !ok {
			continue
		}
		wantTags, wantTTL, problem := parseTagsFull([]byte(body))
		if problem != nil || !reflect.DeepEqual(tags, wantTags) || ttl != wantTTL {
			t.Errorf("%q: fast %q %d, full %q %d %v", body, tags, ttl, wantTags, wantTTL, problem)
		}
	}
}

func FuzzParseTagsFast(f *testing.F) {
	for _, b := range tagBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tags, ttl, ok := parseTagsFast(body)
		if !ok {
			return
		}
		wantTags, wantTTL, problem := parseTagsFull(body)
		if problem != nil || !reflect.DeepEqual(tags, wantTags) || ttl != wantTTL {
			t.Fatalf("%q: fast %q %d, full %q %d %v", body, tags, ttl, wantTags, wantTTL, problem)
		}
	})
}
