package runner

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func storedSamples() map[string]*storedEvent {
	return map[string]*storedEvent{
		"webhook": {
			ID: "evt-1", AcceptedBy: "f1@3a9c",
			Data: json.RawMessage(`{"tags":["vip"],"ttl":2592000,"é":"ü"}`),
			Request: &storedRequest{
				Method: "POST", Path: "/hooks/braze/tags/u-1",
				Params:  map[string]string{"user_id": "u-1", "empty": ""},
				Query:   url.Values{"a": {"1", "2"}, "b": {""}},
				Headers: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {"evt-1"}},
			},
		},
		"webhook without body, params or query": {
			ID: "", AcceptedBy: "v", Request: &storedRequest{Method: "GET", Path: "/"},
		},
		"csv row": {
			ID: "0123456789abcdef:7", AcceptedBy: "f2@1",
			Row: &storedRow{File: "/data/segment.csv", Number: 7, Line: 9, Values: map[string]any{"user_id": "u-7", "tag": "", "multi\nline": "a,b"}},
		},
		"csv row without values": {
			Row: &storedRow{File: "x.csv", Number: 1, Values: map[string]any{}},
		},
		"data only": {ID: "x", Data: json.RawMessage(`[1,2,3]`)},
		"nothing":   {},
	}
}

// Every kind of stored event reads back as it was written, in the binary
// form, and its JSON form (what dead letters keep) reads back the same.
func TestStoredEventRoundTrip(t *testing.T) {
	for name, in := range storedSamples() {
		t.Run(name, func(t *testing.T) {
			payload, err := encodeStored(in)
			if err != nil {
				t.Fatal(err)
			}
			if payload[0] != storedBinaryV1 {
				t.Fatalf("payload starts with %q, want the binary form", payload[0])
			}
			got, err := decodeStored(payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalized(got), normalized(in)) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, in)
			}
			asJSON := storedJSON(payload)
			want, _ := json.Marshal(in)
			if !jsonEqual(t, asJSON, want) {
				t.Fatalf("storedJSON = %s, want %s", asJSON, want)
			}
			fromJSON, err := decodeStored(asJSON)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalized(fromJSON), normalized(in)) {
				t.Fatalf("decoded from JSON\n%#v\nwant\n%#v", fromJSON, in)
			}
		})
	}
}

// normalized treats an empty map like a missing one: JSON drops empty
// params, query and headers (omitempty), and so may the binary form.
func normalized(s *storedEvent) *storedEvent {
	c := *s
	if len(c.Data) == 0 {
		c.Data = nil
	}
	if r := c.Request; r != nil {
		rc := *r
		if len(rc.Params) == 0 {
			rc.Params = nil
		}
		if len(rc.Query) == 0 {
			rc.Query = nil
		}
		if len(rc.Headers) == 0 {
			rc.Headers = nil
		}
		c.Request = &rc
	}
	return &c
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("not JSON: %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// Inboxes written before the binary form (JSON payloads) and replayed dead
// letters still decode.
func TestStoredEventReadsJSON(t *testing.T) {
	old := []byte(`{"id":"evt-9","accepted_by":"f1@1","data":{"tags":["a"]},"request":{"method":"POST","path":"/hooks/x","params":{"user_id":"u-9"}}}`)
	got, err := decodeStored(old)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "evt-9" || got.Request.Params["user_id"] != "u-9" || string(got.Data) != `{"tags":["a"]}` {
		t.Fatalf("decoded %+v", got)
	}
	if !bytes.Equal(storedJSON(old), old) {
		t.Fatalf("storedJSON changed a JSON payload")
	}
}

// A row value that is not text (no CSV file makes one, but nothing stops
// a caller) is kept exactly by falling back to JSON.
func TestStoredEventNonTextRowFallsBackToJSON(t *testing.T) {
	in := &storedEvent{ID: "r", Row: &storedRow{File: "f", Number: 1, Values: map[string]any{"n": 3.5, "s": "x"}}}
	payload, err := encodeStored(in)
	if err != nil {
		t.Fatal(err)
	}
	if payload[0] != '{' {
		t.Fatalf("payload %q, want JSON", payload)
	}
	got, err := decodeStored(payload)
	if err != nil || got.Row.Values["n"] != 3.5 || got.Row.Values["s"] != "x" {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

// A damaged payload is an error, never a panic or a huge allocation, at
// whatever byte it was cut; storedJSON hands it back unchanged.
func TestStoredEventDamaged(t *testing.T) {
	for name, in := range storedSamples() {
		payload, _ := encodeStored(in)
		for n := 1; n < len(payload); n++ {
			if _, err := decodeStored(payload[:n]); err == nil {
				t.Errorf("%s cut to %d of %d bytes: decoded without an error", name, n, len(payload))
			}
		}
		if _, err := decodeStored(append(payload[:len(payload):len(payload)], 0)); err == nil {
			t.Errorf("%s with a byte too many: decoded without an error", name)
		}
	}
	huge := []byte{storedBinaryV1, 0, 0, hasRow, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := decodeStored(huge); err == nil {
		t.Error("a row claiming 4 billion values decoded without an error")
	}
	if got := storedJSON(huge); !bytes.Equal(got, huge) {
		t.Errorf("storedJSON of a damaged payload = %q", got)
	}
}

func FuzzDecodeStored(f *testing.F) {
	for _, in := range storedSamples() {
		payload, _ := encodeStored(in)
		f.Add(payload)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := decodeStored(payload)
		if err != nil || payload[0] != storedBinaryV1 {
			return
		}
		// The first encoding may replace invalid UTF-8; from then on an
		// event reads back exactly as written.
		once := roundTrip(t, s)
		if twice := roundTrip(t, once); !reflect.DeepEqual(normalized(once), normalized(twice)) {
			t.Fatalf("re-encoded event differs:\n%#v\n%#v", once, twice)
		}
	})
}

func BenchmarkStoredEventCSVRow(b *testing.B) {
	in := &storedEvent{ID: "0123456789abcdef:7", AcceptedBy: "f2@1",
		Row: &storedRow{File: "/data/segment.csv", Number: 7, Line: 9, Values: map[string]any{
			"external_id": "load-000007", "user_id": "load-000007", "first_name": "Ana", "email": "ana@example.com", "tag": "vip"}}}
	b.Run("binary", func(b *testing.B) {
		for b.Loop() {
			p, _ := encodeStored(in)
			if _, err := decodeStored(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			p, _ := json.Marshal(in)
			if _, err := decodeStored(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A payload with parts this version does not know is refused, not half read.
func TestStoredEventUnknownFlags(t *testing.T) {
	if _, err := decodeStored([]byte{storedBinaryV1, 0, 0, 0x08}); err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Fatalf("err = %v", err)
	}
}

// Invalid UTF-8 in headers, params, query values and CSV cells reaches
// templates as the JSON form gave it: each bad byte as U+FFFD.
func TestStoredEventInvalidUTF8(t *testing.T) {
	in := &storedEvent{ID: "a\xffb", Request: &storedRequest{Method: "GET", Path: "/x\xfe",
		Params: map[string]string{"p": "\xff\xffz"}, Query: url.Values{"q": {"ok", "\xc3"}}, Headers: http.Header{"X": {"\x80"}}}}
	row := &storedEvent{Row: &storedRow{File: "f", Number: 1, Values: map[string]any{"c\xff": "v\xff"}}}
	for _, ev := range []*storedEvent{in, row} {
		viaJSON, _ := json.Marshal(ev)
		want, err := decodeStored(viaJSON)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := encodeStored(ev)
		got, err := decodeStored(payload)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalized(got), normalized(want)) {
			t.Fatalf("binary form gives\n%#v\nJSON gave\n%#v", got, want)
		}
	}
}

// A body that is not JSON (no route stores one) still makes a JSON dead
// letter: the body as a string.
func TestStoredJSONWithABodyThatIsNotJSON(t *testing.T) {
	payload, _ := encodeStored(&storedEvent{ID: "x", Data: json.RawMessage(`{"a":1}]`)})
	var got struct {
		ID   string `json:"id"`
		Data string `json:"data"`
	}
	if err := json.Unmarshal(storedJSON(payload), &got); err != nil || got.ID != "x" || got.Data != `{"a":1}]` {
		t.Fatalf("storedJSON = %s: %v", storedJSON(payload), err)
	}
}

func roundTrip(t *testing.T, s *storedEvent) *storedEvent {
	t.Helper()
	payload, err := encodeStored(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeStored(payload)
	if err != nil {
		t.Fatal(err)
	}
	return back
}
