package braze

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/spec"
)

func TestEndpoints(t *testing.T) {
	tests := []struct {
		endpoint string
		method   string
		path     string
		maxBatch int
	}{
		// braze.md §2: POST /campaigns/trigger/send, at most 50 recipients
		{"campaign_trigger", http.MethodPost, "/campaigns/trigger/send", 50},
		// braze.md §2: POST /canvas/trigger/send, at most 50 recipients
		{"canvas_trigger", http.MethodPost, "/canvas/trigger/send", 50},
		// braze.md §3: POST /users/track, 75 objects per array
		{"users_track", http.MethodPost, "/users/track", 75},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			e, ok := REST.Endpoint(tt.endpoint)
			if !ok {
				t.Fatalf("no endpoint %q (have %v)", tt.endpoint, REST.EndpointNames())
			}
			if e.Method != tt.method || e.Path != tt.path {
				t.Errorf("%s %s, want %s %s", e.Method, e.Path, tt.method, tt.path)
			}
			// braze.md §1: Content-Type: application/json on every call
			if e.ContentType != "application/json" {
				t.Errorf("ContentType = %q, want application/json", e.ContentType)
			}
			if e.MaxBatch != tt.maxBatch {
				t.Errorf("MaxBatch = %d, want %d", e.MaxBatch, tt.maxBatch)
			}
			if ph := spec.Placeholders(e.Path); len(ph) != 0 {
				t.Errorf("path placeholders %v, want none", ph)
			}
		})
	}
}

func TestAuthorizeAndSecrets(t *testing.T) {
	base, _ := url.Parse("https://rest.iad-01.braze.com")
	c := &spec.Connection{Name: "braze", Type: REST, BaseURL: base, Fields: map[string]string{"api_key": "rest-key-123"}}
	// braze.md §1 Authentication: Authorization: Bearer YOUR-REST-API-KEY
	got, err := c.Auth()
	want := spec.Auth{Header: "Authorization", Scheme: "Bearer", Credential: "rest-key-123"}
	if err != nil || got != want {
		t.Errorf("Auth() = %+v, %v; want %+v", got, err, want)
	}
	// braze.md §1 Authentication: the REST key is a credential
	if _, ok := c.Public()["api_key"]; ok {
		t.Error("Public() exposes the REST API key")
	}
}

func recipients(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"external_user_id": fmt.Sprintf("u%d", i)}
	}
	return out
}

// objects are n /users/track objects, with what an attributes, events
// and purchases object needs (the extra fields are custom attributes).
func objects(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"external_id": fmt.Sprintf("u%d", i), "first_name": "A",
			"name": "e", "time": "2026-11-30T10:00:00Z", "product_id": "p", "currency": "EUR", "price": 1.5}
	}
	return out
}

func TestBodies(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		body     map[string]any
		want     []string // substrings of each violation's "path: message"; nil = valid
	}{
		// braze.md §2 Top-level request + Recipient object: trigger_properties at both levels (campaign)
		{"campaign trigger_properties", "campaign_trigger", map[string]any{
			"campaign_id":        "c1",
			"trigger_properties": map[string]any{"offer_id": "o1", "point_award_amount": int64(100)},
			"recipients": []any{map[string]any{
				"external_user_id":   "u1",
				"trigger_properties": map[string]any{"offer_title": "10% off"},
				"attributes":         map[string]any{"email": "a@example.com"},
			}},
		}, nil},
		// braze.md §2 Top-level request: send_id, broadcast, audience, attachments {file_name, url}
		{"campaign other fields", "campaign_trigger", map[string]any{
			"campaign_id": "c1", "send_id": "s1", "broadcast": false, "audience": map[string]any{"AND": []any{}},
			"attachments": []any{map[string]any{"file_name": "a.pdf", "url": "https://x/a.pdf"}}, "recipients": recipients(1),
		}, nil},
		// braze.md §2 Top-level request: campaign_id required
		{"campaign id missing", "campaign_trigger", map[string]any{"broadcast": true}, []string{`"campaign_id" is required`}},
		// braze.md §2 Top-level request: context is Canvas only
		{"campaign rejects context", "campaign_trigger", map[string]any{"campaign_id": "c1", "context": map[string]any{}, "broadcast": true},
			[]string{`unknown field "context"`}},
		// braze.md §2 Top-level request: attachments need file_name and url
		{"attachment without url", "campaign_trigger", map[string]any{"campaign_id": "c1", "attachments": []any{map[string]any{"file_name": "a"}}, "recipients": recipients(1)},
			[]string{`attachments[0]: "url" is required`}},
		// braze.md §2 Top-level request: context (new name) for Canvas, at both levels
		{"canvas context", "canvas_trigger", map[string]any{
			"canvas_id": "cv1", "context": map[string]any{"k": "v"},
			"recipients": []any{map[string]any{"external_user_id": "u1", "context": map[string]any{"k": "w"}}},
		}, nil},
		// braze.md §2 Top-level request: canvas_entry_properties (old name) still accepted
		{"canvas canvas_entry_properties", "canvas_trigger", map[string]any{
			"canvas_id": "cv1", "canvas_entry_properties": map[string]any{"k": "v"},
			"recipients": []any{map[string]any{"user_alias": map[string]any{"alias_name": "n", "alias_label": "l"}, "canvas_entry_properties": map[string]any{}}},
		}, nil},
		// braze.md §2 Top-level request: canvas_id required
		{"canvas id missing", "canvas_trigger", map[string]any{"campaign_id": "c1", "broadcast": true},
			[]string{`"canvas_id" is required`, `unknown field "campaign_id"`}},
		// braze.md §2 Top-level request: trigger_properties is campaigns only
		{"canvas rejects trigger_properties", "canvas_trigger", map[string]any{"canvas_id": "cv1", "trigger_properties": map[string]any{}, "broadcast": true},
			[]string{`unknown field "trigger_properties"`}},
		// braze.md §2 Top-level request: send_id not listed for Canvas
		{"canvas rejects send_id", "canvas_trigger", map[string]any{"canvas_id": "cv1", "send_id": "s", "broadcast": true},
			[]string{`unknown field "send_id"`}},
		// braze.md §2 Top-level request: recipients max 50
		{"campaign 50 recipients", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": recipients(50)}, nil},
		{"campaign 51 recipients", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": recipients(51)},
			[]string{"recipients: holds 51 items; the limit is 50"}},
		{"canvas 51 recipients", "canvas_trigger", map[string]any{"canvas_id": "cv1", "recipients": recipients(51)},
			[]string{"recipients: holds 51 items; the limit is 50"}},
		// braze.md §2 Recipient object: user_alias {alias_name, alias_label}
		{"alias without label", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": []any{
			map[string]any{"external_user_id": "u0"},
			map[string]any{"user_alias": map[string]any{"alias_name": "n"}},
		}}, []string{`recipients[1].user_alias: "alias_label" is required`}},
		// braze.md §2 Recipient object: field names are fixed
		{"recipient misspelt field", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": []any{
			map[string]any{"emial": "a@x"},
		}}, []string{`recipients[0]: give exactly one of external_user_id, user_alias, email or braze_id; this recipient has none`, `recipients[0]: unknown field "emial"`}},
		// braze.md §2 Recipient object: send_to_existing_only is a bool
		{"send_to_existing_only as text", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": []any{
			map[string]any{"external_user_id": "u", "send_to_existing_only": "false"},
		}}, []string{"recipients[0].send_to_existing_only: must be a boolean"}},
		// braze.md §2 Recipient object: email with prioritization
		{"email with prioritization", "canvas_trigger", map[string]any{"canvas_id": "cv1", "recipients": []any{
			map[string]any{"email": "a@x", "prioritization": []any{"identified", "most_recently_updated"}},
		}}, nil},
		// braze.md §3: 75 objects per array
		{"users_track 75 attributes", "users_track", map[string]any{"attributes": objects(75), "events": objects(75), "purchases": objects(75)}, nil},
		{"users_track 76 attributes", "users_track", map[string]any{"attributes": objects(76)},
			[]string{"attributes: holds 76 items; the limit is 75"}},
		{"users_track 76 events", "users_track", map[string]any{"events": objects(76)},
			[]string{"events: holds 76 items; the limit is 75"}},
		{"users_track 76 purchases", "users_track", map[string]any{"purchases": objects(76)},
			[]string{"purchases: holds 76 items; the limit is 75"}},
		// braze.md §3: the arrays are attributes, events and purchases
		{"users_track misspelt array", "users_track", map[string]any{"atributes": objects(1)},
			[]string{`unknown field "atributes"; allowed: attributes, events, purchases; did you mean "attributes"?`}},
		// braze.md §2 Top-level request: broadcast, or recipients, never both
		{"broadcast with recipients", "campaign_trigger", map[string]any{"campaign_id": "c1", "broadcast": true, "recipients": recipients(1)},
			[]string{"'broadcast' cannot be true when 'recipients' are given"}},
		{"broadcast with attachments", "campaign_trigger", map[string]any{"campaign_id": "c1", "broadcast": true,
			"attachments": []any{map[string]any{"file_name": "a.pdf", "url": "https://x/a.pdf"}}},
			[]string{"'broadcast' cannot be true when 'attachments' are given"}},
		{"broadcast with empty recipients", "canvas_trigger", map[string]any{"canvas_id": "cv1", "broadcast": true, "recipients": []any{}}, nil},
		{"no recipients, no broadcast", "canvas_trigger", map[string]any{"canvas_id": "cv1", "broadcast": false, "recipients": []any{}},
			[]string{"no recipients: give 'recipients', or set 'broadcast' to true"}},
		// braze.md §2 Recipient object: exactly one identifier, and what each needs
		{"two identifiers", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": []any{
			map[string]any{"external_user_id": "u", "email": "a@x", "prioritization": []any{"identified"}},
		}}, []string{"recipients[0]: give exactly one of external_user_id, user_alias, email or braze_id; this recipient has external_user_id and email"}},
		{"email without prioritization", "canvas_trigger", map[string]any{"canvas_id": "cv1", "recipients": []any{
			map[string]any{"email": "a@x"},
		}}, []string{"recipients[0]: 'prioritization' is required when the recipient is identified by email"}},
		{"alias not existing only", "canvas_trigger", map[string]any{"canvas_id": "cv1", "recipients": []any{
			map[string]any{"user_alias": map[string]any{"alias_name": "n", "alias_label": "l"}, "send_to_existing_only": false, "attributes": map[string]any{}},
		}}, []string{"recipients[0]: 'send_to_existing_only' cannot be false for a user alias"}},
		{"not existing only without attributes", "canvas_trigger", map[string]any{"canvas_id": "cv1", "recipients": []any{
			map[string]any{"external_user_id": "u", "send_to_existing_only": false},
		}}, []string{"recipients[0]: 'send_to_existing_only' false needs 'attributes'"}},
		{"not existing only with attributes", "canvas_trigger", map[string]any{"canvas_id": "cv1", "recipients": []any{
			map[string]any{"external_user_id": "u", "send_to_existing_only": false, "attributes": map[string]any{"first_name": "A"}},
		}}, nil},
		// braze.md §3: each object names one user; events and purchases need their fields
		{"users_track object without a user", "users_track", map[string]any{"attributes": []any{map[string]any{"first_name": "A"}}},
			[]string{"attributes[0]: no user: give external_id, braze_id or user_alias (or email or phone)"}},
		{"users_track object by email", "users_track", map[string]any{"attributes": []any{map[string]any{"email": "a@x", "first_name": "A"}}}, nil},
		// An empty id names nobody; beside an external_id, an empty email
		// or phone is a profile field, which Braze takes (a re-QA).
		{"users_track object with an empty external_id", "users_track", map[string]any{"attributes": []any{map[string]any{"external_id": "", "first_name": "A"}}},
			[]string{"attributes[0]: 'external_id' is empty, so it names no user"}},
		{"users_track object by an empty email", "users_track", map[string]any{"attributes": []any{map[string]any{"email": " ", "first_name": "A"}}},
			[]string{"attributes[0]: 'email' is empty, so it names no user"}},
		{"users_track object with an empty phone beside its external_id", "users_track", map[string]any{"attributes": []any{map[string]any{"external_id": "u", "phone": "", "email": ""}}}, nil},
		{"users_track object by email with an empty phone", "users_track", map[string]any{"attributes": []any{map[string]any{"email": "a@x", "phone": ""}}}, nil},
		{"recipient with an empty external_user_id", "campaign_trigger", map[string]any{"campaign_id": "c1", "recipients": []any{map[string]any{"external_user_id": ""}}},
			[]string{"recipients[0]: 'external_user_id' is empty, so it names no user"}},
		{"users_track object with two users", "users_track", map[string]any{"attributes": []any{map[string]any{"external_id": "u", "braze_id": "b"}}},
			[]string{"attributes[0]: give only one of external_id, braze_id or user_alias; this object has external_id and braze_id"}},
		{"users_track event without time", "users_track", map[string]any{"events": []any{map[string]any{"external_id": "u", "name": "e"}}},
			[]string{`events[0]: "time" is required`}},
		{"users_track purchase without price", "users_track", map[string]any{"purchases": []any{
			map[string]any{"external_id": "u", "product_id": "p", "currency": "EUR", "time": "2026-11-30T10:00:00Z"}}},
			[]string{`purchases[0]: "price" is required`}},
		// braze.md §3: property names; time and event_name are reserved
		{"users_track event property named with $", "users_track", map[string]any{"events": []any{
			map[string]any{"external_id": "u", "name": "e", "time": "2026-11-30T10:00:00Z", "properties": map[string]any{"$amount": 5}}}},
			[]string{"events[0]: the property name '$amount' must not start with '$'"}},
		{"users_track purchase property time", "users_track", map[string]any{"purchases": []any{
			map[string]any{"external_id": "u", "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-11-30T10:00:00Z", "properties": map[string]any{"time": "x"}}}},
			[]string{"purchases[0]: the property name 'time' is reserved by Braze"}},
		// braze.md §3: each element is an object
		{"users_track element not object", "users_track", map[string]any{"events": []any{"signup"}},
			[]string{"events[0]: must be an object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := REST.Endpoint(tt.endpoint)
			if !ok {
				t.Fatalf("no endpoint %q", tt.endpoint)
			}
			got := e.Body.Validate(tt.body)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d violation(s) %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestResponseError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr bool
		want    []string
		notSent bool // the answer is a success that sent nothing
	}{
		// braze.md §3 Response: 201 {"message":"success", ...processed counts}
		{"201 users_track", 201, `{"message":"success","attributes_processed":1}`, false, nil, false},
		// braze.md §1 Response shapes: success with non-fatal errors is still a success
		{"200 success with minor errors", 200, `{"message":"success","errors":["minor"]}`, false, nil, false},
		// braze.md §2 Response: a paused or archived Canvas answers 201
		// with a notice and does not send
		{"201 paused canvas", 201, `{"notice":"The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect.","dispatch_id":"d","message":"success"}`, true,
			[]string{"sent nothing", "The Canvas is paused. Resume the Canvas"}, true},
		{"201 archived canvas", 201, `{"notice":"The Canvas is archived. Unarchive the Canvas to ensure trigger requests will take effect.","dispatch_id":"d","message":"success"}`, true,
			[]string{"The Canvas is archived."}, true},
		{"201 empty notice", 201, `{"notice":"","dispatch_id":"d","message":"success"}`, false, nil, false},
		// braze.md §1 Response shapes: 202 + queued (older pages)
		{"202 queued", 202, `{"message":"queued"}`, false, nil, false},
		// braze.md §1 Response shapes: fatal {"message": <fatal>, "errors": [<minor>]}
		{"400 message and errors", 400, `{"message":"Invalid Campaign ID","errors":["campaign abc not found","second"]}`, true,
			[]string{"400", "Invalid Campaign ID", "campaign abc not found", "second"}, false},
		// braze.md §1 Fatal status codes: 400 Max Input Length Exceeded
		{"400 message only", 400, `{"message":"Max Input Length Exceeded"}`, true,
			[]string{"HTTP 400", "Max Input Length Exceeded"}, false},
		// braze.md §1 Fatal status codes: 401 for a bad key
		{"401", 401, `{"message":"Invalid API key: xyz"}`, true, []string{"401", "Invalid API key: xyz"}, false},
		// braze.md §1: 429 bodies are unconfirmed; a non-JSON body is quoted
		{"429 non-JSON", 429, "Rate Limited", true, []string{"429", "Rate Limited"}, false},
		// braze.md §1 Fatal status codes: 5XX with no body
		{"503 empty", 503, "", true, []string{"503", "(empty body)"}, false},
		// braze.md §1 Response shapes: JSON without message falls back to the body
		{"500 JSON without message", 500, `{"error":"boom"}`, true, []string{"500", `{"error":"boom"}`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := REST.ResponseError(tt.status, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ResponseError(%d, %s) = %v, want error: %v", tt.status, tt.body, err, tt.wantErr)
			}
			for _, sub := range tt.want {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not contain %q", err, sub)
				}
			}
			var notSent *spec.NotSentError
			if errors.As(err, &notSent) != tt.notSent {
				t.Errorf("error %v (%T): not sent %v, want %v", err, err, !tt.notSent, tt.notSent)
			}
		})
	}
}

// The answers that hold for a request whatever recipients or objects it
// carries, so that a merged request is not sent again event by event.
func TestResponseErrorAboutTheWholeRequest(t *testing.T) {
	tests := []struct {
		status int
		body   string
		whole  bool
	}{
		// braze.md §1 Fatal status codes: the key
		{401, `{"message":"Invalid API key"}`, true},
		{403, `{"message":"Access Denied"}`, true},
		{404, `{"message":"Not Found"}`, true},
		// braze.md §1 Fatal status codes: campaign and variant problems
		{400, `{"message":"Invalid Campaign ID","errors":["no API-triggered campaign has id \"x\""]}`, true},
		{400, `{"message":"Invalid Canvas ID"}`, true},
		{400, `{"message":"Message Variant Unspecified"}`, true},
		{400, `{"message":"Invalid Message Variant"}`, true},
		{400, `{"message":"Mismatched Message Type"}`, true},
		// may be about one recipient or object
		{400, `{"message":"Bad Request","errors":["recipients[3]: 'external_user_id' must not be empty"]}`, false},
		{400, `{"message":"Max Input Length Exceeded"}`, false},
		{400, "Invalid Campaign ID", false}, // not Braze's envelope
		{413, `{"message":"Request Entity Too Large"}`, false},
		{429, `{"message":"Rate Limited"}`, false},
		{503, "", false},
	}
	for _, tt := range tests {
		err := REST.ResponseError(tt.status, []byte(tt.body))
		var whole *spec.WholeRequestError
		if err == nil || errors.As(err, &whole) != tt.whole {
			t.Errorf("ResponseError(%d, %s) = %v (%T); about the whole request: %v, want %v", tt.status, tt.body, err, err, !tt.whole, tt.whole)
		}
	}
}

// braze.md §1 Default rate limits: "MAU CY 24-25" contracts get 50
// updates per /users/track request combined; the connection says so with
// users_track_max_updates, and without it only 75 per array bound a request.
func TestUsersTrackMaxUpdates(t *testing.T) {
	e, _ := REST.Endpoint("users_track")
	for _, tt := range []struct {
		value string
		want  int
	}{{"", 0}, {"50", 50}, {"225", 225}} {
		c := &spec.Connection{Type: REST, Fields: map[string]string{"users_track_max_updates": tt.value}}
		if got := e.MaxTotal(c); got != tt.want {
			t.Errorf("users_track_max_updates %q: MaxTotal %d, want %d", tt.value, got, tt.want)
		}
	}
	f, _ := REST.Field("users_track_max_updates")
	for v, ok := range map[string]bool{"1": true, "50": true, "225": true, "0": false, "226": false, "fifty": false, "5.5": false} {
		if err := f.Check(v); (err == nil) != ok {
			t.Errorf("users_track_max_updates %q: %v", v, err)
		}
	}
}

func TestWebhookSource(t *testing.T) {
	// braze.md §4: webhook campaigns post to us; any body
	if WebhookSource.Kind != spec.HTTPSource || WebhookSource.DefaultMethod != http.MethodPost || WebhookSource.Event != nil {
		t.Errorf("WebhookSource = %+v, want an HTTP POST source of any shape", WebhookSource)
	}
}
