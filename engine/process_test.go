package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/spec"
)

var testNow = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// stubCaller answers every lookup with one fixed response.
type stubCaller struct {
	status int
	body   string
	calls  []*Request
	mu     sync.Mutex
}

func (s *stubCaller) Call(_ context.Context, _ *Step, req *Request) (*Response, error) {
	s.mu.Lock()
	s.calls = append(s.calls, req)
	s.mu.Unlock()
	return &Response{Status: s.status, Body: []byte(s.body), From: "stub"}, nil
}

func walletCaller(t testing.TB) *stubCaller {
	t.Helper()
	body, err := os.ReadFile("../examples/fixtures/wallet.json")
	if err != nil {
		t.Fatal(err)
	}
	return &stubCaller{status: 200, body: string(body)}
}

func readEvent(t testing.TB, file string) any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonval.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEvaluateOfferIssued(t *testing.T) {
	pl := loadOne(t, "../pipelines/offer-issued-to-braze-campaign.yaml")
	caller := walletCaller(t)
	ev := &Event{Data: readEvent(t, "../examples/events/sessionm-offer-issued.json"), Request: &RequestInfo{Method: "POST", Path: "/hooks/sessionm/offers"}}
	out := pl.Evaluate(context.Background(), ev, caller, testNow)
	if out.Err != nil || !out.Passed {
		t.Fatalf("passed=%v err=%v", out.Passed, out.Err)
	}
	// the lookup: Connect's retailer_id comes from the connection
	if len(caller.calls) != 1 {
		t.Fatalf("%d lookups, want 1", len(caller.calls))
	}
	lookup := caller.calls[0]
	if got, want := string(lookup.Body), `{"culture":"es-ES","retailer_id":"8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b","user_id":"3c1d7e2a-32f5-11ef-b3e4-0242ac120002"}`; got != want {
		t.Errorf("lookup body\n got %s\nwant %s", got, want)
	}
	if got := lookup.Header.Get("Authorization"); got != "Basic c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0" {
		t.Errorf("lookup auth %q", got)
	}
	req := out.Request
	if req.Method != "POST" || req.URL != "http://127.0.0.1:8081/braze/campaigns/trigger/send" {
		t.Errorf("target %s %s", req.Method, req.URL)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer sandbox-braze-key" {
		t.Errorf("target auth %q", got)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	var body struct {
		CampaignID string `json:"campaign_id"`
		Recipients []struct {
			ExternalUserID    string         `json:"external_user_id"`
			TriggerProperties map[string]any `json:"trigger_properties"`
		} `json:"recipients"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.CampaignID != "9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e" || len(body.Recipients) != 1 || body.Recipients[0].ExternalUserID != "u-1001" {
		t.Errorf("body %s", req.Body)
	}
	props := body.Recipients[0].TriggerProperties
	// a lone {{ }} keeps its JSON type: the balance is a number
	if props["available_points"] != float64(1350) || props["offer_title"] != "20% off winter coats" {
		t.Errorf("trigger_properties %v", props)
	}
}

func TestEvaluateFilteredExplains(t *testing.T) {
	pl := loadOne(t, "../pipelines/offer-issued-to-braze-campaign.yaml")
	ev := &Event{Data: readEvent(t, "../examples/events/sessionm-points-awarded.json"), Request: &RequestInfo{}}
	caller := walletCaller(t)
	out := pl.Evaluate(context.Background(), ev, caller, testNow)
	if out.Passed || out.Err != nil || out.Request != nil {
		t.Fatalf("want filtered, got passed=%v err=%v", out.Passed, out.Err)
	}
	if want := `event.event_type == "offer_issued" is false (event.event_type is "points_awarded")`; out.FilterExplain != want {
		t.Errorf("explanation\n got %s\nwant %s", out.FilterExplain, want)
	}
	if len(caller.calls) != 0 {
		t.Errorf("a filtered event made %d lookups", len(caller.calls))
	}
}

// writePipeline writes a pipeline and the test connections into a folder
// and builds it.
func writePipeline(t *testing.T, yaml string) *Pipeline {
	t.Helper()
	dir := t.TempDir()
	conns, err := os.ReadFile("testdata/good/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), conns, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadOne(t, file)
}

// A secret in a filter is a string literal holding its value, whatever
// it holds: a quote in it neither breaks the expression nor changes its
// logic (the value here ends in || true).
func TestSecretInAFilterIsAString(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
filter: event.shared == "${secret:QUOTED_SECRET}"
target:
  connection: core
  endpoint: tags
  params: { user_id: u-1 }
  body: { tags: [a] }
`)
	for shared, pass := range map[string]bool{`Zq"Xy7 || true`: true, "other": false} {
		out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{"shared": shared}}, nil, testNow)
		if out.Err != nil || out.Passed != pass {
			t.Errorf("shared %q: passed %v (%v), want %v", shared, out.Passed, out.Err, pass)
		}
	}
}

func TestRequestPathsAreEscapedAndBounded(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
target:
  connection: core
  endpoint: tags
  params: { user_id: "{{ event.id }}" }
  body: { tags: [a] }
`)
	for _, tc := range []struct {
		id      any
		wantURL string
		wantErr string
	}{
		{id: "u-1", wantURL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/u-1/tags"},
		{id: "a/b?c#d", wantURL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/a%2Fb%3Fc%23d/tags"},
		{id: "https://evil.example.com", wantURL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/https:%2F%2Fevil.example.com/tags"},
		{id: 42, wantURL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/42/tags"},
		{id: "..", wantErr: `params user_id rendered "..", which is not allowed in a path`},
		{id: ".", wantErr: `params user_id rendered ".", which is not allowed in a path`},
		// Escaped, each is one segment, but a proxy that decodes %2F
		// would walk the path with the engine's credentials.
		{id: "../../other-app/users/victim", wantErr: `params user_id rendered "../../other-app/users/victim", which is not allowed in a path`},
		{id: "a/../b", wantErr: "not allowed in a path"},
		{id: "./u-1", wantErr: "not allowed in a path"},
		{id: "u-1/.", wantErr: "not allowed in a path"},
		{id: `..\admin`, wantErr: "not allowed in a path"},
		{id: "a/ .. /b", wantErr: "not allowed in a path"},
		// Dots that are not a whole part are names like any other.
		{id: "a..b/...", wantURL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/a..b%2F.../tags"},
		{id: "..u-1", wantURL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/..u-1/tags"},
		{id: nil, wantErr: "params user_id rendered empty"},
		{id: "  ", wantErr: "params user_id rendered empty"},
	} {
		out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{"id": tc.id}}, nil, testNow)
		switch {
		case tc.wantErr != "":
			if out.Err == nil || !strings.Contains(out.Err.Error(), tc.wantErr) {
				t.Errorf("id %v: error %v, want %q", tc.id, out.Err, tc.wantErr)
			}
		case out.Err != nil:
			t.Errorf("id %v: %v", tc.id, out.Err)
		case out.Request.URL != tc.wantURL:
			t.Errorf("id %v: url\n got %s\nwant %s", tc.id, out.Request.URL, tc.wantURL)
		}
	}
}

func TestRequestQueryHeadersAndRawBody(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in/{account}" }
target:
  connection: api
  method: PUT
  path: /accounts/{account}
  params: { account: "{{ request.params.account }}" }
  query: { q: "{{ event.q }}", page: "2" }
  headers: { X-Note: "{{ event.note }}" }
  body_template: '{"note": "{{ event.note | json_escape }}", "n": {{ event.n }}}'
`)
	ev := &Event{Data: map[string]any{"q": "a b&c=d", "note": `say "hi"`, "n": int64(3)}, Request: &RequestInfo{Params: map[string]string{"account": "acme"}}}
	out := pl.Evaluate(context.Background(), ev, nil, testNow)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	r := out.Request
	if want := "https://api.example.com/v2/accounts/acme?page=2&q=a+b%26c%3Dd"; r.URL != want {
		t.Errorf("url\n got %s\nwant %s", r.URL, want)
	}
	if r.Method != http.MethodPut || r.Header.Get("X-Note") != `say "hi"` || r.Header.Get("Authorization") != "Bearer test-api-token" {
		t.Errorf("method %s headers %v", r.Method, r.Header)
	}
	if want := `{"note": "say \"hi\"", "n": 3}`; string(r.Body) != want {
		t.Errorf("body\n got %s\nwant %s", r.Body, want)
	}

	// A header value cannot smuggle a second header.
	ev.Data.(map[string]any)["note"] = "x\r\nX-Evil: 1"
	out = pl.Evaluate(context.Background(), ev, nil, testNow)
	if out.Err == nil || !strings.Contains(out.Err.Error(), "line break") {
		t.Errorf("CRLF in a header: %v", out.Err)
	}

	// A body template that renders broken JSON fails with its position.
	ev.Data.(map[string]any)["note"] = "ok"
	ev.Data.(map[string]any)["n"] = nil
	out = pl.Evaluate(context.Background(), ev, nil, testNow)
	if out.Err == nil || !strings.Contains(out.Err.Error(), "not JSON: line 1, column 21") {
		t.Errorf("broken JSON: %v", out.Err)
	}
}

func TestBodyMustFitTheEndpoint(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
target:
  connection: braze
  endpoint: campaign_trigger
  body:
    campaign_id: "{{ event.campaign }}"
    recipients: "{{ event.recipients }}"
`)
	many := make([]any, 51)
	for i := range many {
		many[i] = map[string]any{"external_user_id": fmt.Sprint(i)}
	}
	out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{"recipients": many}}, nil, testNow)
	var be *BodyError
	if !errors.As(out.Err, &be) {
		t.Fatalf("want a body error, got %v", out.Err)
	}
	msg := be.Error()
	for _, want := range []string{`"campaign_id" is required (its template rendered nothing: is a variable missing?)`, "recipients: holds 51 items; the limit is 50"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if out.Request == nil || !strings.HasSuffix(out.Request.URL, "/campaigns/trigger/send") {
		t.Errorf("the request should be kept for display, got %+v", out.Request)
	}
}

// A body field whose template renders null (the event lacks it, or a
// name is misspelt) is left out, not sent as null: Braze takes a null
// attribute for "remove it", and a QA run's typo wiped every user's
// loyalty_points. A null written in the file is sent, and so is one
// inside a list.
func TestANullFieldIsLeftOutOfTheBody(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
target:
  connection: braze
  endpoint: users_track
  body:
    attributes:
      - external_id: "{{ event.user }}"
        loyalty_points: "{{ event.points.availble }}"
        last_award_at: "{{ event.occurred_at | date: '%Y-%m-%d' }}"
        tier: "{{ event.tier }}"
        nickname: null
        badges: ["{{ event.badge }}"]
`)
	out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{"user": "u-1", "tier": "gold", "points": map[string]any{"available": 5}}}, nil, testNow)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	want := `{"attributes":[{"badges":[null],"external_id":"u-1","nickname":null,"tier":"gold"}]}`
	if got := string(out.Request.Body); got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
}

// A field the connection can fill in (Connect's retailer_id), written in
// the file and rendered null, is not filled in: the connection's retailer
// stood in for the event's, and the offer went to another (a review). The
// note on a required field left out names that field only, at its place:
// a purchase that came whole without its time gets none.
func TestANullFieldWrittenIsNotFilledIn(t *testing.T) {
	offer := writePipeline(t, `
source: { type: http, path: "/in" }
target:
  connection: connect
  endpoint: issue_offer
  body:
    retailer_id: "{{ event.retailer }}"
    user_id: "{{ event.user }}"
    offer_id: o1
`)
	out := offer.Evaluate(context.Background(), &Event{Data: map[string]any{"user": "u-1"}}, nil, testNow)
	if out.Err == nil || !strings.Contains(out.Err.Error(), `"retailer_id" is required (its template rendered nothing: is a variable missing?)`) {
		t.Errorf("got %v; want retailer_id named as rendered nothing, not filled in from the connection", out.Err)
	}
	track := writePipeline(t, `
source: { type: http, path: "/in" }
target:
  connection: braze
  endpoint: users_track
  body:
    events:
      - external_id: u-1
        name: signup
        time: "{{ event.when }}"
    purchases: "{{ event.purchases }}"
`)
	out = track.Evaluate(context.Background(), &Event{Data: map[string]any{"purchases": []any{
		map[string]any{"external_id": "u-1", "product_id": "p", "currency": "EUR", "price": 1}}}}, nil, testNow)
	msg := fmt.Sprint(out.Err)
	if !strings.Contains(msg, `events[0]: "time" is required (its template rendered nothing: is a variable missing?)`) ||
		!strings.Contains(msg, `purchases[0]: "time" is required`) || strings.Contains(msg, `purchases[0]: "time" is required (its template`) {
		t.Errorf("got %s; want the note on events[0].time only", msg)
	}
}

func TestLookupErrorsStopTheEvent(t *testing.T) {
	pl := loadOne(t, "../pipelines/offer-issued-to-braze-campaign.yaml")
	ev := &Event{Data: readEvent(t, "../examples/events/sessionm-offer-issued.json")}
	caller := &stubCaller{status: 200, body: `{"status":"error","errors":{"code":"user_not_found"}}`}
	out := pl.Evaluate(context.Background(), ev, caller, testNow)
	if out.Err == nil || !strings.Contains(out.Err.Error(), "step wallet: sessionm answered status error: user_not_found") {
		t.Errorf("got %v", out.Err)
	}
	if out.Request != nil {
		t.Errorf("a failed lookup still produced a target request")
	}
}

// A lookup's if_not_found decides what a "not found" answer (404, or
// SessionM's user_not_found with any status) does: fail (the default: the
// event fails), continue (the step is null and the event goes on: a QA run
// found no way to fall back for a user SessionM does not know) or drop (as
// a false filter). Any other failure still fails the event.
func TestLookupIfNotFound(t *testing.T) {
	pipeline := func(ifNotFound string) *Pipeline {
		return writePipeline(t, `
source: { type: http, path: "/in" }
steps:
  - name: profile
    connection: core
    endpoint: get_user
    params: { user_id: "{{ event.user }}" }
`+ifNotFound+`
target:
  connection: braze
  endpoint: campaign_trigger
  body:
    campaign_id: c1
    recipients:
      - external_user_id: "{{ profile.user.external_id | default: event.user }}"
`)
	}
	ev := &Event{Data: map[string]any{"user": "u-9"}}
	notFound := &stubCaller{status: 404, body: `{"status":"error","errors":{"code":"user_not_found"}}`}
	for _, tc := range []struct {
		name, ifNotFound string
		caller           *stubCaller
		passed           bool
		err, explain     string
		body             string
	}{
		{"default", "", notFound, true, "step profile:", "", ""},
		{"fail", "    if_not_found: fail\n", notFound, true, "step profile:", "", ""},
		{"continue", "    if_not_found: continue\n", notFound, true, "", "", `{"campaign_id":"c1","recipients":[{"external_user_id":"u-9"}]}`},
		{"continue, SessionM's error in a 200", "    if_not_found: continue\n", &stubCaller{status: 200, body: `{"status":"error","errors":{"code":"user_not_found"}}`}, true, "", "", `{"campaign_id":"c1","recipients":[{"external_user_id":"u-9"}]}`},
		{"drop", "    if_not_found: drop\n", notFound, false, "", "step profile: ", ""},
		{"continue, another failure", "    if_not_found: continue\n", &stubCaller{status: 500, body: `{"status":"error"}`}, true, "step profile:", "", ""},
		// A proxy's or a wrong path's page is no answer from the peer.
		{"continue, a 404 that is not the peer's", "    if_not_found: continue\n", &stubCaller{status: 404, body: `<html>Not Found</html>`}, true, "step profile:", "", ""},
		{"drop, a 404 that is not the peer's", "    if_not_found: drop\n", &stubCaller{status: 404, body: `<html>Not Found</html>`}, true, "step profile:", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := pipeline(strings.ReplaceAll(tc.ifNotFound, `\n`, "\n")).Evaluate(context.Background(), ev, tc.caller, testNow)
			if out.Passed != tc.passed {
				t.Errorf("passed %v, want %v", out.Passed, tc.passed)
			}
			if (tc.err == "") != (out.Err == nil) || (out.Err != nil && !strings.Contains(out.Err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", out.Err, tc.err)
			}
			if !strings.HasPrefix(out.FilterExplain, tc.explain) || (tc.explain != "" && !strings.Contains(out.FilterExplain, "if_not_found: drop")) {
				t.Errorf("explanation %q, want one from %q", out.FilterExplain, tc.explain)
			}
			if tc.body != "" && (out.Request == nil || string(out.Request.Body) != tc.body) {
				t.Errorf("request %+v, want the body %s", out.Request, tc.body)
			}
		})
	}
}

// A 2xx from a read-only endpoint, which always answers JSON, whose body
// is not (a proxy's page, an empty 204) is a failed lookup, worth another
// try. Read as text, it failed in a later step, as the pipeline's fault.
func TestLookupAnswerThatIsNotJSON(t *testing.T) {
	pl := loadOne(t, "../pipelines/offer-issued-to-braze-campaign.yaml")
	ev := &Event{Data: readEvent(t, "../examples/events/sessionm-offer-issued.json")}
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, "<html><body>upstream proxy error</body></html>", "sessionm_connect answered HTTP 200 with a body that is not JSON, where get_user_offers answers JSON: <html><body>upstream proxy error</body></html>"},
		{204, "", "sessionm_connect answered HTTP 204 with a body that is not JSON, where get_user_offers answers JSON: (empty body)"},
		{200, `{"status":"ok","payload":`, "answered HTTP 200 with a body that is not JSON"},
		// JSON, but not SessionM's envelope: an empty wallet read from a
		// stub's {} was cached over the good copy (a QA run).
		{200, `{}`, `sessionm_connect answered HTTP 200 without SessionM's "status":"ok": {}`},
		{200, `null`, `answered HTTP 200 without SessionM's "status":"ok"`},
		{200, `{"status":"pending","payload":{"user_offers":[]}}`, `answered HTTP 200 without SessionM's "status":"ok"`},
		{200, `[1,2,3]`, `answered HTTP 200 without SessionM's "status":"ok"`},
	} {
		out := pl.Evaluate(context.Background(), ev, &stubCaller{status: tc.status, body: tc.body}, testNow)
		if out.Err == nil || !strings.Contains(out.Err.Error(), tc.want) {
			t.Errorf("%d %q: got %v, want %q", tc.status, tc.body, out.Err, tc.want)
			continue
		}
		if last := out.Steps[len(out.Steps)-1]; !spec.IsRetryable(last.Err) {
			t.Errorf("%d %q: the failure is not marked worth another try", tc.status, tc.body)
		}
	}
	// An endpoint that changes something acted on its 2xx: asked again,
	// it would issue the offer twice, so its step goes on with the text.
	dir := t.TempDir()
	conns, err := os.ReadFile("../pipelines/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "connections.yaml"), conns, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "issue.yaml")
	issue := `source: {type: http, path: /issue}
steps:
  - name: issued
    connection: sessionm_connect
    endpoint: issue_offer
    body: {user_id: "u-1", offer_id: "o-1"}
respond:
  body: {said: "{{ issued }}"}
`
	if err := os.WriteFile(file, []byte(issue), 0o600); err != nil {
		t.Fatal(err)
	}
	out := loadOne(t, file).Evaluate(context.Background(), &Event{Data: map[string]any{}}, &stubCaller{status: 200, body: "<html>ok</html>"}, testNow)
	if out.Err != nil || out.Reply == nil || !strings.Contains(string(out.Reply.Body), "<html>ok</html>") {
		t.Errorf("issue_offer answered 200 with HTML: %v, reply %+v; want the step to go on with the text", out.Err, out.Reply)
	}
}

func TestWalletRespondDropsExpiredAndRedeemedOffers(t *testing.T) {
	pl := loadOne(t, "../pipelines/wallet-for-connected-content.yaml")
	ev := &Event{Request: &RequestInfo{Method: "GET", Path: "/wallet/u-1", Params: map[string]string{"user_id": "u-1"}}}
	out := pl.Evaluate(context.Background(), ev, walletCaller(t), testNow)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	var body struct {
		AvailablePoints int `json:"available_points"`
		OfferCount      int `json:"offer_count"`
		Offers          []struct {
			Name string `json:"name"`
		} `json:"offers"`
	}
	if err := json.Unmarshal(out.Reply.Body, &body); err != nil {
		t.Fatalf("%v: %s", err, out.Reply.Body)
	}
	if body.AvailablePoints != 1350 || body.OfferCount != 1 || len(body.Offers) != 1 || body.Offers[0].Name != "20% off winter coats" {
		t.Errorf("reply %s", out.Reply.Body)
	}
	if out.Reply.Status != 200 || out.Reply.Header.Get("Content-Type") != "application/json" {
		t.Errorf("status %d headers %v", out.Reply.Status, out.Reply.Header)
	}
}

// One built pipeline (one parsed template, one compiled filter) serves
// many goroutines at once; each must get its own event's request.
func TestEvaluateConcurrently(t *testing.T) {
	pl := loadOne(t, "../pipelines/offer-issued-to-braze-campaign.yaml")
	base := readEvent(t, "../examples/events/sessionm-offer-issued.json")
	caller := walletCaller(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				data := deepCopy(base).(map[string]any)
				user := fmt.Sprintf("u-%d-%d", g, i)
				data["user"].(map[string]any)["external_id"] = user
				if i%3 == 0 {
					data["event_type"] = "points_awarded"
				}
				out := pl.Evaluate(context.Background(), &Event{Data: data}, caller, testNow)
				switch {
				case out.Err != nil:
					errs <- out.Err
					return
				case i%3 == 0 && out.Passed:
					errs <- fmt.Errorf("event %s should have been filtered", user)
					return
				case i%3 != 0 && !strings.Contains(string(out.Request.Body), `"external_user_id":"`+user+`"`):
					errs <- fmt.Errorf("event %s got body %s", user, out.Request.Body)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// BenchmarkF4FilterAndRender measures the per-event work of F4 without
// I/O: the filter, then rendering the Braze request (URL, headers, JSON
// body) with the wallet already looked up.
func BenchmarkF4FilterAndRender(b *testing.B) {
	pl := loadOne(b, "../pipelines/offer-issued-to-braze-campaign.yaml")
	event := readEvent(b, "../examples/events/sessionm-offer-issued.json")
	wallet := readEvent(b, "../examples/fixtures/wallet.json")
	ev := &Event{Data: event, Request: &RequestInfo{Method: "POST", Path: "/hooks/sessionm/offers"}}
	b.ReportAllocs()
	for b.Loop() {
		env := pl.Bindings(ev, testNow)
		ok, err := pl.Filter.Eval(env)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		env["wallet"] = wallet
		if _, err := pl.Target.Build(env); err != nil {
			b.Fatal(err)
		}
	}
}

// Step results have no static type: arithmetic, indexes and builtins on
// them compile, and work on the values each event gives.
func TestExprStepsOnStepResults(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
steps:
  - { name: a, expr: "1" }
  - { name: b, expr: "a + 1" }
  - { name: items, expr: "[1, 2, 3]" }
  - { name: doubled, expr: "map(items, # * 2)" }
  - { name: first, expr: "items[0]" }
target:
  connection: api
  method: POST
  path: /x
  body: { b: "{{ b }}", doubled: "{{ doubled }}", first: "{{ first }}" }
`)
	out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{}}, nil, testNow)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	if got, want := string(out.Request.Body), `{"b":2,"doubled":[2,4,6],"first":1}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}

// Filling Connect's retailer_id must not write into the event a body was
// made from; the target forwards the event unchanged.
func TestBodyDefaultsDoNotChangeTheEvent(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
steps:
  - name: wallet
    connection: connect
    endpoint: get_user_offers
    body: "{{ event }}"
target:
  connection: api
  method: POST
  path: /x
  body: "{{ event }}"
`)
	caller := walletCaller(t)
	out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{"user_id": "u-1"}}, caller, testNow)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	if got := string(caller.calls[0].Body); got != `{"retailer_id":"8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b","user_id":"u-1"}` {
		t.Errorf("lookup body %s", got)
	}
	if got := string(out.Request.Body); got != `{"user_id":"u-1"}` {
		t.Errorf("target body %s: the event was changed", got)
	}
}

// YAML merge keys work in bodies as they do anywhere in YAML.
func TestBodyMergeKeys(t *testing.T) {
	pl := writePipeline(t, `
source: { type: http, path: "/in" }
target:
  connection: braze
  endpoint: users_track
  body:
    attributes:
      - &base { external_id: "{{ event.id }}", source: engine }
      - <<: *base
        source: override
`)
	out := pl.Evaluate(context.Background(), &Event{Data: map[string]any{"id": "u-1"}}, nil, testNow)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	want := `{"attributes":[{"external_id":"u-1","source":"engine"},{"external_id":"u-1","source":"override"}]}`
	if got := string(out.Request.Body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

// connections.yml is read like connections.yaml.
func TestConnectionsYML(t *testing.T) {
	dir := t.TempDir()
	conns, _ := os.ReadFile("testdata/good/connections.yaml")
	os.WriteFile(filepath.Join(dir, "connections.yml"), conns, 0o644)
	os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("source: { type: http, path: /in }\ntarget: { connection: api, method: POST, path: /x }\n"), 0o644)
	l, _ := testLoader(t)
	proj := l.Load([]string{dir})
	if err := proj.Diagnostics.Err(); err != nil || len(proj.Pipelines) != 1 {
		t.Errorf("pipelines %d, problems %v", len(proj.Pipelines), err)
	}
}

// Headers and query are built per event only for pipelines that read
// them; each way of reading them (a path, the whole request, an alias, an
// expression, a name of the template's own that hides request) must still
// see them.
func TestRequestPartsBuiltForWhatIsRead(t *testing.T) {
	req := &RequestInfo{Method: "POST", Path: "/in/acme", Params: map[string]string{"account": "acme"},
		Query: url.Values{"page": {"2"}}, Headers: http.Header{"X-Tier": {"gold"}}}
	for _, tc := range []struct {
		name, filter, body string
		want, built        string // the rendered body; the parts of request bindings holds
	}{
		{name: "params only", body: `{{ request.params.account }}`, want: `{"v":"acme"}`, built: "method params path"},
		{name: "a header", body: `{{ request.headers.x-tier }}`, want: `{"v":"gold"}`, built: "headers method params path"},
		{name: "the query", body: `{{ request.query.page }}`, want: `{"v":"2"}`, built: "method params path query"},
		{name: "the whole request", body: `{{ request }}`, want: `{"v":{"headers":{"x-tier":"gold"},"method":"POST","params":{"account":"acme"},"path":"/in/acme","query":{"page":"2"}}}`, built: "headers method params path query"},
		{name: "through an alias", body: `{% assign h = request.headers %}{{ h["x-tier"] }}`, want: `{"v":"gold"}`, built: "headers method params path"},
		{name: "in the filter", filter: `request.headers["x-tier"] == "gold"`, body: `{{ request.method }}`, want: `{"v":"POST"}`, built: "headers method params path"},
		// A name of the template's own that hides request: what it read
		// of request is not seen path by path, so all of it is built.
		{name: "hidden by assign", body: `{% assign request = request.headers %}{{ request["x-tier"] }}`, want: `{"v":"gold"}`, built: "headers method params path query"},
		{name: "hidden by for", body: `{% for request in request.query %}{% endfor %}{{ request.headers.x-tier }}`, want: `{"v":"gold"}`, built: "headers method params path query"},
		{name: "hidden by let", filter: `let request = request.headers; request["x-tier"] == "gold"`, body: `{{ request.params.account }}`, want: `{"v":"acme"}`, built: "headers method params path query"},
		// The same for other bindings: now is set only for pipelines that read it.
		{name: "now hidden by assign", body: `{% assign now = now | date: "%Y" %}{{ now }}`, want: `{"v":"2026"}`, built: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filter := ""
			if tc.filter != "" {
				filter = "filter: '" + tc.filter + "'\n"
			}
			pl := writePipeline(t, "source: { type: http, path: \"/in/{account}\" }\n"+filter+`target:
  connection: api
  method: POST
  path: /x
  body: { v: '`+tc.body+`' }
`)
			ev := &Event{Data: map[string]any{}, Request: req}
			out := pl.Evaluate(context.Background(), ev, nil, testNow)
			if out.Err != nil || !out.Passed {
				t.Fatalf("passed %v, error %v", out.Passed, out.Err)
			}
			if string(out.Request.Body) != tc.want {
				t.Errorf("body %s, want %s", out.Request.Body, tc.want)
			}
			request, _ := pl.Bindings(ev, testNow)["request"].(map[string]any)
			got := slices.Sorted(maps.Keys(request))
			if strings.Join(got, " ") != tc.built {
				t.Errorf("request bindings hold %v, want %s", got, tc.built)
			}
		})
	}
}

// A synchronous pipeline answers 404 when its lookup was answered "not
// found" by status or by the connector's reading of the body, and only then.
func TestOutcomeLookupNotFound(t *testing.T) {
	failed := errors.New("failed")
	lookup := func(status int, err error) StepResult {
		return StepResult{Step: "wallet", Request: &Request{}, Response: &Response{Status: status}, Err: err}
	}
	tests := []struct {
		name string
		out  Outcome
		want bool
	}{
		{"answered", Outcome{Passed: true, Steps: []StepResult{lookup(200, nil)}}, false},
		{"404", Outcome{Passed: true, Steps: []StepResult{lookup(404, failed)}, Err: failed}, true},
		{"user_not_found under 200", Outcome{Passed: true, Steps: []StepResult{lookup(200, spec.NotFound(failed))}, Err: failed}, true},
		{"500", Outcome{Passed: true, Steps: []StepResult{lookup(500, failed)}, Err: failed}, false},
		{"no answer", Outcome{Passed: true, Steps: []StepResult{{Step: "wallet", Request: &Request{}, Err: failed}}, Err: failed}, false},
		{"an expr step after the lookup", Outcome{Passed: true, Steps: []StepResult{lookup(200, nil), {Step: "offers", Err: failed}}, Err: failed}, false},
		{"the respond template", Outcome{Passed: true, Steps: []StepResult{lookup(200, nil)}, Err: failed}, false},
		{"the filter", Outcome{Err: failed}, false},
	}
	for _, tt := range tests {
		if got := tt.out.LookupNotFound(); got != tt.want {
			t.Errorf("%s: LookupNotFound() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// max_body takes a size or a plain number of bytes, as YAML writes it
// unquoted: 4096 was refused as "must be a string".
func TestMaxBodyTakesANumberOfBytes(t *testing.T) {
	for value, want := range map[string]int64{"4096": 4096, `"4096"`: 4096, "4KB": 4096, "1 MB": 1 << 20} {
		pl := writePipeline(t, `
source: { type: http, path: "/in", max_body: `+value+` }
target:
  connection: core
  endpoint: tags
  params: { user_id: u-1 }
  body: { tags: [a] }
`)
		if pl.Source.MaxBody != want {
			t.Errorf("max_body %s: %d bytes, want %d", value, pl.Source.MaxBody, want)
		}
	}
}
