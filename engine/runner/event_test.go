package runner

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/spec"
	dto "github.com/prometheus/client_model/go"
)

// The caller's credentials never reach the inbox, whatever the header is
// called.
func TestStoredRequestDropsCredentials(t *testing.T) {
	req := httptest.NewRequest("POST", "/hooks/x?a=1", nil)
	for _, h := range []string{"Authorization", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Webhook-Secret", "X-Hub-Signature-256", "Proxy-Authorization",
		"X-Api-Pass", "X-Passwd", "X-Credential", "X-Session-Id", "X-Sig", "X-Client-Jwt",
		"Passphrase", "X-Bearer", "X-Pwd", "X-Shopify-Hmac-Sha256", "X-Passcode", "X-Otp", "X-Csrf", "X-Xsrf"} {
		req.Header.Set(h, "s3cret")
	}
	req.Header.Set("Idempotency-Key", "evt-1")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Passthrough", "kept")
	req.Header.Set("X-Design", "kept")
	req.Header.Set("X-Footprint", "kept") // "otp" inside a word
	got := newStoredRequest(req, nil, nil).Headers
	if len(got) != 5 || got.Get("Idempotency-Key") != "evt-1" || got.Get("Content-Type") == "" || got.Get("X-Design") != "kept" || got.Get("X-Footprint") != "kept" {
		t.Fatalf("stored headers %v", got)
	}
}

// The accept answer, written by hand, decodes to what senders read, for
// ids that need escaping too.
func TestWriteAccepted(t *testing.T) {
	for _, tc := range []struct {
		id        string
		duplicate bool
	}{
		{"campaign-1-user-2", false},
		{`quote " backslash \ tab 	 <&> é`, true},
		{"", false},
	} {
		rec := httptest.NewRecorder()
		writeAccepted(rec, tc.id, tc.duplicate)
		var got struct {
			Accepted  *bool  `json:"accepted"`
			EventID   string `json:"event_id"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Accepted == nil || !*got.Accepted || got.EventID != tc.id || got.Duplicate != tc.duplicate {
			t.Errorf("%q: answer %s (%v)", tc.id, rec.Body.String(), err)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || rec.Code != 200 {
			t.Errorf("%q: %d %s", tc.id, rec.Code, ct)
		}
		if strings.Contains(rec.Body.String(), "duplicate") != tc.duplicate {
			t.Errorf("%q: duplicate shown only for a repeat: %s", tc.id, rec.Body.String())
		}
	}
}

func TestEventLabel(t *testing.T) {
	for _, tc := range []struct {
		it   *item
		want string
	}{
		{&item{stored: &storedEvent{ID: "ab12:3", Row: &storedRow{File: "/in/segments/spring.csv", Number: 3}}}, "spring.csv row 3 (ab12:3)"},
		{&item{stored: &storedEvent{ID: "evt-1"}, rec: inbox.Record{Seq: 9}, pipeline: "p"}, "evt-1"},
		// Without an id: the one its sender was answered (http.go).
		{&item{stored: &storedEvent{}, rec: inbox.Record{Seq: 9}, pipeline: "p"}, "p#9"},
		// Damaged, or not decoded yet: the inbox's copy of its id.
		{&item{stored: &storedEvent{}, rec: inbox.Record{Seq: 9, ID: "evt-2"}, pipeline: "p"}, "evt-2"},
		{&item{rec: inbox.Record{Seq: 9, ID: "evt-2"}, pipeline: "p"}, "evt-2"},
		{&item{rec: inbox.Record{Seq: 9}, pipeline: "p"}, "p#9"},
	} {
		if got := eventLabel(tc.it).LogValue().String(); got != tc.want {
			t.Errorf("label %q, want %q", got, tc.want)
		}
	}
}

// The line that says a webhook could not be stored names its event, as
// the other lines about an event do, so the sender's id finds it.
func TestStoreFailureLogNamesTheEvent(t *testing.T) {
	proj := loaderFor(t, "http://127.0.0.1:1").Load([]string{"../../pipelines"})
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder // the handler runs on this goroutine
	// A clock that stands still: the six webhooks below come within one
	// second however slow the machine.
	clock := &fakeClock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	r, err := New(Options{Store: store, Pipelines: proj.Pipelines, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	store.Close() // every write fails, as on a full disk
	post := func(id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/hooks/sessionm/offers", strings.NewReader(`{"event_id":"`+id+`","event_type":"offer_issued"}`))
		req.Header.Set("Authorization", "Bearer sandbox-sessionm-webhook-token")
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, req)
		return rec
	}
	rec := post("e-17")
	if rec.Code != 503 {
		t.Fatalf("setup: %d %s, want 503", rec.Code, rec.Body)
	}
	var line struct{ Msg, Event, Error string }
	if err := json.Unmarshal([]byte(logs.String()), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if !strings.Contains(line.Msg, "cannot store the event") || line.Event != "e-17" || line.Error == "" {
		t.Fatalf("logged %+v; want the line to name event e-17 and the error", line)
	}
	// The disk stays full: the next webhooks add no line of their own
	// within the second, but are counted.
	for i := range 5 {
		if rec := post(fmt.Sprint("e-", 18+i)); rec.Code != 503 {
			t.Fatalf("with the inbox closed: %d %s, want 503", rec.Code, rec.Body)
		}
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines after 6 failed stores in a second; want 1:\n%s", n, logs.String())
	}
	var m dto.Metric
	if err := r.metrics.refused.WithLabelValues("offer-issued-to-braze-campaign", "store_failed").Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 6 {
		t.Errorf("engine_webhooks_refused_total{reason=store_failed} = %v, want 6", got)
	}
}

// What a Braze webhook's headers cost at accept time.
func BenchmarkStoredRequest(b *testing.B) {
	req := httptest.NewRequest("POST", "/hooks/braze/tags/u-1", nil)
	for name, v := range map[string]string{"Authorization": "Basic abc", "Content-Type": "application/json", "User-Agent": "Braze Sender 75e404755ae1270441f07eb238f0faf25e44dfdc", "Idempotency-Key": "campaign-1-user-2", "Accept-Encoding": "gzip", "Content-Length": "34"} {
		req.Header.Set(name, v)
	}
	params := map[string]string{"user_id": "u-1"}
	b.ReportAllocs()
	for b.Loop() {
		if s := newStoredRequest(req, params, nil); len(s.Headers) != 5 {
			b.Fatalf("%d headers kept", len(s.Headers))
		}
	}
}

// The dedupe id: a SessionM event's own event_id first; on an HMAC route
// an id of the route and the signed body (TestHMACEventIDFollowsTheRoute);
// else the Idempotency-Key header.
func TestEventID(t *testing.T) {
	source := func(typ string, auth *engine.InboundAuth) *engine.Pipeline {
		return &engine.Pipeline{Source: engine.Source{Type: &spec.SourceType{Name: typ}, Auth: auth}}
	}
	hmacAuth := &engine.InboundAuth{HMAC: &engine.HMACAuth{Header: "X-Signature", Secret: "s"}}
	body := `{"event_id":"evt-1","user_id":"u-1"}`
	tests := []struct {
		name string
		p    *engine.Pipeline
		url  string
		key  string
		body string
		want string
	}{
		{"sessionm: the envelope's id over the header", source("sessionm_event", nil), "/hooks/x", "key-1", body, "evt-1"},
		{"sessionm on an HMAC route: the signed id", source("sessionm_event", hmacAuth), "/hooks/x", "replay-2", body, "evt-1"},
		{"sessionm without event_id: the header", source("sessionm_event", nil), "/hooks/x", "key-1", `{"user_id":"u-1"}`, "key-1"},
		{"sessionm with an empty event_id: the header", source("sessionm_event", nil), "/hooks/x", "key-1", `{"event_id":"","user_id":"u-1"}`, "key-1"},
		{"braze webhook: the header", source("braze_webhook", nil), "/hooks/x", " key-1 ", body, "key-1"},
		{"nothing to go by", source("http", nil), "/hooks/x", "", body, ""},
		// The README's Braze header, sent as written: the same for every
		// event of the campaign, so no id.
		{"braze webhook: an unrendered header", source("braze_webhook", nil), "/hooks/x", "{{campaign.${dispatch_id}}}-{{${user_id}}}", body, ""},
		{"braze webhook: a half-rendered header", source("braze_webhook", nil), "/hooks/x", "d-1-${user_id}", body, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tt.url, nil)
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			if got := eventID(tt.p, req, nil, []byte(tt.body)); got != tt.want {
				t.Errorf("eventID = %q, want %q", got, tt.want)
			}
		})
	}
}

// On an HMAC route one signed body is one event per pipeline and user: the
// unsigned header, query and spelling of the path do not make another
// (a replay with ?r=2 or /u%2D1 is a repeat), while another user's path
// does, and a path value with a slash is not taken for two values.
func TestHMACEventIDFollowsTheRoute(t *testing.T) {
	p := &engine.Pipeline{Name: "signed", Source: engine.Source{Type: &spec.SourceType{Name: "http"}, Auth: &engine.InboundAuth{HMAC: &engine.HMACAuth{Header: "X-Signature", Secret: "s"}}}}
	body := []byte(`{"tags":["vip"]}`)
	var got string
	mux := http.NewServeMux()
	for _, pattern := range []string{"POST /hooks/tags/{user_id}", "POST /hooks/pair/{a}/{b}", "POST /hooks/other/{user_id}", "POST /hooks/tree/"} {
		mux.HandleFunc(pattern, func(_ http.ResponseWriter, req *http.Request) {
			params := map[string]string{}
			for _, name := range spec.Placeholders(strings.TrimPrefix(pattern, "POST ")) {
				params[name] = req.PathValue(name)
			}
			got = eventID(p, req, params, body)
		})
	}
	id := func(url, key string) string {
		req := httptest.NewRequest("POST", url, nil)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		got = ""
		mux.ServeHTTP(httptest.NewRecorder(), req)
		if got == "" {
			t.Fatalf("%s did not reach a route", url)
		}
		return got
	}
	first := id("/hooks/tags/u-1", "")
	for _, repeat := range []struct{ url, key string }{{"/hooks/tags/u-1", "replay-2"}, {"/hooks/tags/u-1?r=2", ""}, {"/hooks/tags/u%2D1", ""}} {
		if id(repeat.url, repeat.key) != first {
			t.Errorf("%s (key %q) is another event; want a repeat of /hooks/tags/u-1", repeat.url, repeat.key)
		}
	}
	if id("/hooks/tags/u-2", "") == first {
		t.Error("another user's path is a repeat; want another event")
	}
	if id("/hooks/pair/x%2Fy/z", "") == id("/hooks/pair/x/y%2Fz", "") {
		t.Error("a=x/y b=z and a=x b=y/z are one event")
	}
	// The same pipeline's other path: a repeat, not a new event.
	if id("/hooks/other/u-1", "") != first {
		t.Error("the body sent to the pipeline's other path for the same user is another event")
	}
	// A path ending in / serves those below it, which the id tells apart.
	if id("/hooks/tree/user-1", "") == id("/hooks/tree/user-2", "") {
		t.Error("two paths below /hooks/tree/ are one event")
	}
}

// Inbound credentials: the bearer scheme in any case, and an auth with no
// credential (which building refuses) keeps the route closed. A Basic user
// name that a path placeholder must repeat (SessionM's /apps/{api_key}/)
// is checked on the paths that have it.
func TestAuthorized(t *testing.T) {
	bearer := &engine.InboundAuth{Bearer: "t0ken"}
	keyInPath := &engine.InboundAuth{Basic: &engine.BasicAuth{Username: "key", Password: "secret", UsernameInPath: "api_key"}}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("key:secret"))
	tests := []struct {
		name          string
		auth          *engine.InboundAuth
		authorization string
		apiKey        string // the {api_key} of the path ("": a path without it)
		want          bool
	}{
		{"open route", nil, "", "", true},
		{"bearer", bearer, "Bearer t0ken", "", true},
		{"bearer, scheme in lower case", bearer, "bearer t0ken", "", true},
		{"bearer, wrong token", bearer, "Bearer t0ken2", "", false},
		{"bearer, another scheme", bearer, "Basic t0ken", "", false},
		{"bearer, none sent", bearer, "", "", false},
		{"auth without a credential", &engine.InboundAuth{}, "", "", false},
		{"basic, the user's key in the path", keyInPath, basic, "key", true},
		{"basic, another app's key in the path", keyInPath, basic, "other", false},
		{"basic, a path without the key", keyInPath, basic, "", true},
		{"basic, the key in the path but no credentials", keyInPath, "", "key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/hooks/x", nil)
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			if tt.apiKey != "" {
				req.SetPathValue("api_key", tt.apiKey)
			}
			if got := authorized(tt.auth, req, nil); got != tt.want {
				t.Errorf("authorized = %v, want %v", got, tt.want)
			}
		})
	}
}
