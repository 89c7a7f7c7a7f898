package runner

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/jsonval"
)

func TestLeaveOutDelivered(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		delivered map[string][]string
		wantLeft  bool
		wantBody  string // when something is left
	}{
		{"the taken event goes, the attribute stays",
			`{"attributes":[{"external_id":"u1","country":"XX"}],"events":[{"external_id":"u1","name":"a"}]}`,
			map[string][]string{"events": {`{"name":"a","external_id":"u1"}`}},
			true, `{"attributes":[{"country":"XX","external_id":"u1"}]}`},
		{"everything taken: nothing to send",
			`{"events":[{"external_id":"u1","name":"a"}],"purchases":[{"external_id":"u1","product_id":"p","price":1.5}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"a"}`}, "purchases": {`{"external_id":"u1","product_id":"p","price":1.5}`}},
			false, ""},
		{"rendered otherwise now: sent",
			`{"events":[{"external_id":"u1","name":"b"}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"a"}`}},
			true, `{"events":[{"external_id":"u1","name":"b"}]}`},
		{"two alike, one taken: one goes",
			`{"events":[{"external_id":"u1","name":"a"},{"external_id":"u1","name":"a"}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"a"}`}},
			true, `{"events":[{"external_id":"u1","name":"a"}]}`},
		{"kept as a dead letter's JSON, with <, > and & escaped",
			`{"attributes":[{"external_id":"u1","x":1}],"events":[{"external_id":"u1","name":"<a> & b"}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"\u003ca\u003e \u0026 b"}`}},
			true, `{"attributes":[{"external_id":"u1","x":1}]}`},
		{"the same object in another array: sent",
			`{"attributes":[{"external_id":"u1"}]}`,
			map[string][]string{"events": {`{"external_id":"u1"}`}},
			true, `{"attributes":[{"external_id":"u1"}]}`},
		// Braze applied the fields of an attributes object but the one its
		// error named: the increment it applied must not go again (a QA
		// run: 5 points became 10), the fixed field goes.
		{"applied in part: only the fields rendered otherwise go",
			`{"attributes":[{"external_id":"u1","points":{"inc":5},"country":"ES"}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"external_id":"u1","points":{"inc":5},"country":"Spain"}`}},
			true, `{"attributes":[{"external_id":"u1","country":"ES"}]}`},
		{"applied in part, rendered the same: nothing to send",
			`{"attributes":[{"external_id":"u1","points":{"inc":5},"_update_existing_only":true}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"external_id":"u1","points":{"inc":5},"_update_existing_only":true}`}},
			false, ""},
		{"applied in part for another user: sent whole",
			`{"attributes":[{"external_id":"u2","points":{"inc":5}}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"external_id":"u1","points":{"inc":5}}`}},
			true, `{"attributes":[{"external_id":"u2","points":{"inc":5}}]}`},
		{"one applied in part serves one object",
			`{"attributes":[{"external_id":"u1","points":{"inc":5}},{"external_id":"u1","points":{"inc":5}}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"external_id":"u1","points":{"inc":5},"country":"Spain"}`}},
			true, `{"attributes":[{"external_id":"u1","points":{"inc":5}}]}`},
		// Braze took the whole attributes object, and the pipeline was
		// edited before the replay: what renders the same was applied, the
		// increment among it (a QA run: a renamed field sent it again).
		{"taken whole, a field renamed since: only that field goes",
			`{"attributes":[{"external_id":"u1","visits":{"inc":1},"labels":{"add":["qa"]}}],"events":[{"external_id":"u1","name":"b"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1},"tags":{"add":["qa"]}}`}},
			true, `{"attributes":[{"external_id":"u1","labels":{"add":["qa"]}}],"events":[{"external_id":"u1","name":"b"}]}`},
		{"taken whole, rendered otherwise for another user: sent whole",
			`{"attributes":[{"external_id":"u2","visits":{"inc":1}}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1}}`}},
			true, `{"attributes":[{"external_id":"u2","visits":{"inc":1}}]}`},
		{"one taken whole, one taken in part, both edited",
			`{"attributes":[{"external_id":"u1","visits":{"inc":1},"tier":"gold"},{"external_id":"u1","points":{"inc":5},"country":"ES"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1}}`}, "attributes" + inPartSuffix: {`{"external_id":"u1","points":{"inc":5},"country":"Spain"}`}},
			true, `{"attributes":[{"external_id":"u1","tier":"gold"},{"external_id":"u1","country":"ES"}]}`},
		{"two of one user in another order: each matched by what it shares",
			`{"attributes":[{"external_id":"u1","points":{"inc":5},"country":"ES"},{"external_id":"u1","visits":{"inc":1},"tier":"gold"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1}}`}, "attributes" + inPartSuffix: {`{"external_id":"u1","points":{"inc":5},"country":"Spain"}`}},
			true, `{"attributes":[{"external_id":"u1","country":"ES"},{"external_id":"u1","tier":"gold"}]}`},
		// What Braze applied of a user spread over several objects (after a
		// replay or two) is matched field by field: matched whole to the
		// object sharing the most, the rest went again (a re-QA).
		{"applied over two objects: every field found",
			`{"attributes":[{"external_id":"u1","visits":{"inc":1},"level":"gold","country":"ES"}],"events":[{"external_id":"u1","name":"x"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","tier":"gold","visits":{"inc":1}}`, `{"external_id":"u1","country":"ES","level":"gold"}`}},
			true, `{"events":[{"external_id":"u1","name":"x"}]}`},
		{"an earlier object sharing nothing does not take the match",
			`{"attributes":[{"external_id":"u1","level":"gold"},{"external_id":"u1","visits":{"inc":1},"tier":"gold"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1}}`}},
			true, `{"attributes":[{"external_id":"u1","level":"gold"},{"external_id":"u1","tier":"gold"}]}`},
		{"one taken whole, one of which Braze applied nothing",
			`{"attributes":[{"external_id":"u1","country":"ES"},{"external_id":"u1","visits":{"inc":1},"level":"gold"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","tier":"gold","visits":{"inc":1}}`}, "attributes" + inPartSuffix: {`{"external_id":"u1"}`}},
			true, `{"attributes":[{"external_id":"u1","country":"ES"},{"external_id":"u1","level":"gold"}]}`},
		{"an increment applied once, sent twice now: one goes",
			`{"attributes":[{"external_id":"u1","visits":{"inc":1}},{"external_id":"u1","visits":{"inc":1},"tier":"gold"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1},"level":"x"}`}},
			true, `{"attributes":[{"external_id":"u1","visits":{"inc":1},"tier":"gold"}]}`},
		// An event's time rendered from 'now' renders otherwise at the
		// replay: the event Braze took is still the one (a re-QA).
		{"an event taken, its time rendered again: not sent",
			`{"attributes":[{"external_id":"u1","country":"ES"}],"events":[{"external_id":"u1","name":"visit","time":"2026-12-01T10:05:00Z"}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"visit","time":"2026-12-01T10:00:00Z"}`}},
			true, `{"attributes":[{"external_id":"u1","country":"ES"}]}`},
		{"an event taken, another one of the same name now: sent",
			`{"events":[{"external_id":"u1","name":"visit","time":"2026-12-01T10:05:00Z","properties":{"shop":"b"}}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"visit","time":"2026-12-01T10:00:00Z","properties":{"shop":"a"}}`}},
			true, `{"events":[{"external_id":"u1","name":"visit","time":"2026-12-01T10:05:00Z","properties":{"shop":"b"}}]}`},
		{"two events of a name, the one Braze took matched as rendered first",
			`{"events":[{"external_id":"u1","name":"visit","time":"2026-11-19T08:00:00Z"},{"external_id":"u1","name":"visit","time":"2026-11-20T10:00:00Z"}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"visit","time":"2026-11-20T10:00:00Z"}`}},
			true, `{"events":[{"external_id":"u1","name":"visit","time":"2026-11-19T08:00:00Z"}]}`},
		{"by email, a phone removed since: the applied inc stays out",
			`{"attributes":[{"email":"a@example.com","visits":{"inc":1},"country":"ES"}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"email":"a@example.com","phone":"+15550001","visits":{"inc":1}}`}},
			true, `{"attributes":[{"email":"a@example.com","country":"ES"}]}`},
		{"by email, written in another case now: the same user",
			`{"attributes":[{"email":"ana@example.com","visits":{"inc":1},"country":"ES"}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"email":"Ana@Example.com","visits":{"inc":1}}`}},
			true, `{"attributes":[{"email":"ana@example.com","country":"ES"}]}`},
		{"two events of a name, the one Braze took with its time written otherwise now",
			`{"events":[{"external_id":"u1","name":"visit","time":"2023-11-14T22:13:20Z"},{"external_id":"u1","name":"visit","time":"2026-11-20T10:00:00Z"}]}`,
			map[string][]string{"events": {`{"external_id":"u1","name":"visit","time":"2026-11-20T10:00:00.000Z"}`}},
			true, `{"events":[{"external_id":"u1","name":"visit","time":"2023-11-14T22:13:20Z"}]}`},
		{"an event by email, the email in another case now: not sent",
			`{"events":[{"email":"QA@EXAMPLE.COM","name":"a","time":"2026-11-20T10:00:00Z"},{"email":"QA@EXAMPLE.COM","name":"b","time":"2026-11-20T10:00:00Z"}]}`,
			map[string][]string{"events": {`{"email":"qa@example.com","name":"a","time":"2026-11-20T10:00:00Z"}`}},
			true, `{"events":[{"email":"QA@EXAMPLE.COM","name":"b","time":"2026-11-20T10:00:00Z"}]}`},
		{"by phone, written otherwise now: the applied inc stays out",
			`{"attributes":[{"phone":"+1 555-0104","visits":{"inc":5},"country":"ES"}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"phone":"+15550104","visits":{"inc":5}}`}},
			true, `{"attributes":[{"phone":"+1 555-0104","country":"ES"}]}`},
		{"an external_id is compared as it is",
			`{"attributes":[{"external_id":"u-1","visits":{"inc":1}}]}`,
			map[string][]string{"attributes" + inPartSuffix: {`{"external_id":"u1","visits":{"inc":1},"x":1}`}},
			true, `{"attributes":[{"external_id":"u-1","visits":{"inc":1}}]}`},
		// Beside an external_id, email and phone are profile fields: an
		// email added by an edit sent the applied inc again (a re-QA).
		{"an email added beside the external_id: only it goes",
			`{"attributes":[{"external_id":"u1","email":"a@example.com","visits":{"inc":1}}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1},"phone":""}`}},
			true, `{"attributes":[{"external_id":"u1","email":"a@example.com"}]}`},
		{"named by email alone: the email says whose it is",
			`{"attributes":[{"email":"a@example.com","visits":{"inc":1},"tier":"gold"}]}`,
			map[string][]string{"attributes": {`{"email":"a@example.com","visits":{"inc":1}}`}},
			true, `{"attributes":[{"email":"a@example.com","tier":"gold"}]}`},
		{"by email, another user's: sent whole",
			`{"attributes":[{"email":"b@example.com","visits":{"inc":1}}]}`,
			map[string][]string{"attributes": {`{"email":"a@example.com","visits":{"inc":1},"x":1}`}},
			true, `{"attributes":[{"email":"b@example.com","visits":{"inc":1}}]}`},
		{"_update_existing_only added since: the applied inc stays out",
			`{"attributes":[{"external_id":"u1","_update_existing_only":true,"visits":{"inc":1},"tier":"gold"}]}`,
			map[string][]string{"attributes": {`{"external_id":"u1","visits":{"inc":1}}`}},
			true, `{"attributes":[{"external_id":"u1","_update_existing_only":true,"tier":"gold"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value, err := jsonval.Decode([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req := &engine.Request{Body: []byte(tt.body), Value: value}
			delivered := map[string][]json.RawMessage{}
			for array, objects := range tt.delivered {
				for _, o := range objects {
					delivered[array] = append(delivered[array], json.RawMessage(o))
				}
			}
			if left := leaveOutDelivered(req, delivered); left != tt.wantLeft {
				t.Fatalf("left %v, want %v", left, tt.wantLeft)
			}
			if !tt.wantLeft {
				return
			}
			if canonicalJSON(req.Body) != canonicalJSON([]byte(tt.wantBody)) {
				t.Errorf("body %s, want %s", req.Body, tt.wantBody)
			}
			if got, _ := jsonval.Encode(req.Value, 0); string(got) != canonicalJSON(req.Body) {
				t.Errorf("value %s and body %s differ", got, req.Body)
			}
		})
	}
}

// Objects are noted as taken only when every error names one of the
// request's objects: otherwise what Braze refused is unknown, and a replay
// must send them all.
func TestNoteDelivered(t *testing.T) {
	body := map[string]any{"attributes": []any{map[string]any{"external_id": "u1", "visits": map[string]any{"inc": 1}}}, "events": []any{map[string]any{"external_id": "u1", "name": "a"}}}
	attributeRefused := []any{map[string]any{"input_array": "attributes", "index": 0}}
	tests := []struct {
		name    string
		errs    []any
		inPart  []string // the arrays Braze applies in part
		events  int      // events noted as delivered
		applied int      // attributes noted as applied in part
		known   bool     // what Braze took is known
	}{
		{"the attribute refused", attributeRefused, nil, 1, 0, true},
		{"the attribute applied in part", attributeRefused, []string{"attributes"}, 1, 1, true},
		// About who the object is for: Braze applied none of it.
		// Of its only field refused, nothing but its user is left: no
		// entry, which replays piled up (a re-QA).
		{"the attribute's one field refused", []any{map[string]any{"input_array": "attributes", "index": 0, "type": "'visits' must be a number"}}, []string{"attributes"}, 1, 0, true},
		{"the attribute's user refused", []any{map[string]any{"input_array": "attributes", "index": 0, "type": "'_update_existing_only' must be true or false"}}, []string{"attributes"}, 1, 0, true},
		{"every object refused", []any{map[string]any{"input_array": "attributes", "index": 0}, map[string]any{"input_array": "events", "index": 0}}, nil, 0, 0, true},
		{"an unknown array", []any{map[string]any{"input_array": "purchase", "index": 0}}, []string{"attributes"}, 0, 0, false},
		{"an index past the list", []any{map[string]any{"input_array": "attributes", "index": 3}}, []string{"attributes"}, 0, 0, false},
		{"an error about no object", []any{"something went wrong"}, nil, 0, 0, false},
		{"an object without an index", []any{map[string]any{"input_array": "attributes", "type": "x"}}, nil, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := &item{stored: &storedEvent{}}
			known, inPart := noteDelivered(it, body, tt.errs, tt.inPart)
			if got := len(it.stored.Delivered["events"]); got != tt.events || len(it.stored.Delivered["attributes"]) != 0 || len(it.stored.Delivered["attributes"+inPartSuffix]) != tt.applied {
				t.Errorf("noted %v", it.stored.Delivered)
			}
			if known != tt.known || inPart != (tt.applied > 0) {
				t.Errorf("known %v, in part %v; want %v, %v", known, inPart, tt.known, tt.applied > 0)
			}
		})
	}
}

// Braze's errors that name no object by a numeric index are kept, as the
// whole request's: dropped, an event whose request Braze refused in part
// was acked as delivered.
func TestMinorErrorsKeepThoseWithoutAnIndex(t *testing.T) {
	own := func(array string, index int) (int, bool) { return index, true }
	body := []byte(`{"message":"success","errors":[{"type":"bad","input_array":"attributes"},{"type":"odd","input_array":"events","index":"0"},"plain",{"type":"ok","input_array":"events","index":0}]}`)
	texts, errs := minorErrors(body, own)
	if len(texts) != 4 || len(errs) != 4 || texts[2] != "plain" || texts[3] != "events[0]: ok" {
		t.Fatalf("texts %q, errs %v", texts, errs)
	}
}

// An error that names an object no member of a merged request holds (an
// index past the request's, an array it did not send) is no event's to
// dead-letter, and was dropped without a word; it is returned to be
// logged. Errors without an index are every member's, not unclaimed.
func TestUnclaimedErrorsOfAMergedRequest(t *testing.T) {
	members := []*member{
		{start: map[string]int{"attributes": 0, "events": 0}, size: map[string]int{"attributes": 1, "events": 2}},
		{start: map[string]int{"attributes": 1, "events": 2}, size: map[string]int{"attributes": 1, "events": 0}},
	}
	body := []byte(`{"message":"success","errors":[` +
		`{"type":"a","input_array":"attributes","index":1},` + // the second member's
		`{"type":"b","input_array":"events","index":1},` + // the first's
		`{"type":"c","input_array":"attributes","index":7},` + // past the request
		`{"type":"d","input_array":"events","index":-1},` +
		`{"type":"e","input_array":"purchases","index":0},` + // not sent
		`"plain"]}`)
	got := unclaimedErrors(body, members)
	want := []string{"attributes[7]: c", "events[-1]: d", "purchases[0]: e"}
	if !slices.Equal(got, want) {
		t.Errorf("unclaimed %q, want %q", got, want)
	}
}

// Beside an external_id an email is a profile field: Braze applied the
// rest of an object whose error quotes it, and a replay must not send its
// inc again (a re-QA); where the email names the user, none was applied.
func TestAppliedPartOfAnObjectWhoseEmailIsRefused(t *testing.T) {
	says := []string{"'email' is not a valid email address"}
	part, ok := appliedPart(map[string]any{"external_id": "u1", "email": "", "visits": map[string]any{"inc": 1}}, says)
	if got, _ := jsonval.Encode(part, 0); !ok || string(got) != `{"external_id":"u1","visits":{"inc":1}}` {
		t.Errorf("applied %s, %v; want all but the email", got, ok)
	}
	if part, ok := appliedPart(map[string]any{"email": "nope", "visits": map[string]any{"inc": 1}}, says); ok {
		t.Errorf("applied %v; want none: the email names the user", part)
	}
	// Beside an email, a phone is a profile field too.
	part, ok = appliedPart(map[string]any{"email": "a@x", "phone": 15550002, "visits": map[string]any{"inc": 1}}, []string{"'phone' must be a string"})
	if got, _ := jsonval.Encode(part, 0); !ok || string(got) != `{"email":"a@x","visits":{"inc":1}}` {
		t.Errorf("applied %s, %v; want all but the phone", got, ok)
	}
}
