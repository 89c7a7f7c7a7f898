package jsonval

import (
	"encoding/json"
	"testing"
)

// standardStringMember is what StringMember stands in for.
func standardStringMember(data []byte) (string, bool) {
	var env struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(data, &env) != nil || env.EventID == "" {
		return "", false
	}
	return env.EventID, true
}

func memberCases() []string {
	return []string{
		`{"event_id":"e-1"}`, `{"a":1,"event_id":"e-1","b":[1,{"event_id":"inner"}]}`,
		`{"event_id":"e-1","event_id":"e-2"}`, `{"event_id":"e-1","event_id":null}`, `{"event_id":null}`,
		`{"event_id":""}`, `{"event_id":5}`, `{"event_id":"e-1","event_id":5}`, `{"event_id":["e"]}`,
		`{"EVENT_ID":"upper"}`, `{"Event_Id":"mixed"}`, `{"event_\u0069d":"escaped"}`, `{"event_\u0130d":"dotted capital I"}`,
		"{\"event_\u0131d\":\"dotless i\"}", "{\"\u212avent_id\":\"kelvin\"}", `{"eventid":"x"}`, `{"event_id ":"x"}`,
		`{"event_id":"a\"b\\c\u00e9\ud83d\ude00"}`, "{\"event_id\":\"\xff\"}", `{"x":"}\"{","event_id":"after a tricky string"}`,
		`{"x":{"y":[1,2,{"z":"]"}]},"event_id":"after nesting"}`, `{ "event_id" : "spaces" , "n" : -1.5e3 }`,
		`{"t":true,"f":false,"n":null,"event_id":"after literals"}`, `[]`, `["event_id"]`, `"event_id"`, `null`, `1`, `{}`,
	}
}

func TestStringMemberMatchesEncodingJSON(t *testing.T) {
	for _, in := range memberCases() {
		checkStringMember(t, []byte(in))
	}
}

func FuzzStringMemberMatchesEncodingJSON(f *testing.F) {
	for _, in := range memberCases() {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if json.Valid(data) {
			checkStringMember(t, data)
		}
	})
}

func checkStringMember(t *testing.T, data []byte) {
	t.Helper()
	got, ok := StringMember(data, "event_id")
	want, wantOK := standardStringMember(data)
	if got != want || ok != wantOK {
		t.Fatalf("%q: %q %v; encoding/json: %q %v", data, got, ok, want, wantOK)
	}
}

func BenchmarkStringMember(b *testing.B) {
	event := []byte(`{"event_id":"9b2f1c2e-7a43-4c1e-9d2a-2f1e8c7b6a55","event_type":"offer_issued","occurred_at":"2026-05-01T10:00:00Z","user":{"id":"4d2e8f3b-32f5-11ef-b3e4-0242ac120002","external_id":"u-1001"},"offer":{"id":"of-77","title":"Double points weekend","expires_at":"2026-06-01T00:00:00Z","points":500},"campaign":{"id":"c-9","name":"Spring"}}`)
	b.Run("StringMember", func(b *testing.B) {
		for b.Loop() {
			StringMember(event, "event_id")
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			standardStringMember(event)
		}
	})
}
