package emulator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// step is one request of a scenario, after moving the clock by advance.
type step struct {
	advance time.Duration
	q       req
	status  int
	body    string // exact answer, when set
	has     []string
}

func runSteps(t *testing.T, e *Emulator, c *clock, h func(*Emulator, req) resp, steps []step) {
	t.Helper()
	for i, s := range steps {
		c.Advance(s.advance)
		r := h(e, s.q)
		if r.status != s.status {
			t.Fatalf("step %d %s %s: status %d, want %d; body %s", i, s.q.method, s.q.path, r.status, s.status, r.body)
		}
		if s.body != "" && r.body != s.body {
			t.Fatalf("step %d: body\n got %s\nwant %s", i, r.body, s.body)
		}
		for _, sub := range s.has {
			if !strings.Contains(r.body, sub) {
				t.Fatalf("step %d: body %s lacks %s", i, r.body, sub)
			}
		}
		if r.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("step %d: Content-Type %q", i, r.header.Get("Content-Type"))
		}
	}
}

func post(path, body string, status int, want string) step {
	return step{q: req{path: path, body: body}, status: status, body: want}
}

func TestTags(t *testing.T) {
	ok := http.StatusOK
	tests := []struct {
		name  string
		steps []step
	}{
		// sessionm.md §2 (C): a counter tag is created with count 1
		{"counter tag starts at 1", []step{
			post(tagsPath(ana), `{"tags":["cart_abandoner"]}`, ok, `{"status":"ok","tags":{"cart_abandoner":{"count":1}}}`),
		}},
		// sessionm.md §2 (C): each POST without ttl increments the count
		{"each POST without ttl increments", []step{
			post(tagsPath(ana), `{"tags":["cart_abandoner"]}`, ok, ""),
			post(tagsPath(ana), `{"tags":["cart_abandoner"]}`, ok, ""),
			post(tagsPath(ana), `{"tags":["cart_abandoner"]}`, ok, `{"status":"ok","tags":{"cart_abandoner":{"count":3}}}`),
		}},
		// sessionm.md §2 (C): several tags in one call
		{"several tags per call", []step{
			post(tagsPath(ana), `{"tags":["a","b"]}`, ok, `{"status":"ok","tags":{"a":{"count":1},"b":{"count":1}}}`),
		}},
		// sessionm.md §2 (C field, I unit seconds; A body): ttl makes an expiring tag, Core time format
		{"ttl seconds give expires_at", []step{
			post(tagsPath(ana), `{"tags":["braze_test"],"ttl":20000}`, ok, `{"status":"ok","tags":{"braze_test":{"expires_at":"2026-11-29 15:33:20"}}}`),
		}},
		// sessionm.md §2 (A): re-POSTing an expiring tag resets the TTL from now
		{"re-POST resets the expiry", []step{
			post(tagsPath(ana), `{"tags":["t"],"ttl":100}`, ok, ""),
			{advance: 50 * time.Second, q: req{path: tagsPath(ana), body: `{"tags":["t"],"ttl":100}`}, status: ok,
				body: `{"status":"ok","tags":{"t":{"expires_at":"2026-11-29 10:02:30"}}}`},
		}},
		// sessionm.md §2 (C): an expiring tag disappears when its TTL runs out
		{"expired tags disappear", []step{
			post(tagsPath(ana), `{"tags":["short"],"ttl":60}`, ok, ""),
			post(tagsPath(ana), `{"tags":["kept"]}`, ok, ""),
			{advance: 60 * time.Second, q: req{method: "GET", path: tagsPath(ana)}, status: ok, body: `{"status":"ok","tags":{"kept":{"count":1}}}`},
			post(tagsPath(ana), `{"tags":["other"],"ttl":60}`, ok, `{"status":"ok","tags":{"kept":{"count":1},"other":{"expires_at":"2026-11-29 10:02:00"}}}`),
		}},
		// sessionm.md §2 (C: count or ttl, never both; A: the later call decides) counter posted with ttl becomes expiring
		{"counter then ttl becomes expiring", []step{
			post(tagsPath(ana), `{"tags":["x"]}`, ok, ""),
			post(tagsPath(ana), `{"tags":["x"]}`, ok, ""),
			post(tagsPath(ana), `{"tags":["x"],"ttl":10}`, ok, `{"status":"ok","tags":{"x":{"expires_at":"2026-11-29 10:00:10"}}}`),
		}},
		// sessionm.md §2 (A): an expiring tag posted without ttl becomes a counter at 1
		{"expiring then no ttl becomes counter", []step{
			post(tagsPath(ana), `{"tags":["x"],"ttl":10}`, ok, ""),
			post(tagsPath(ana), `{"tags":["x"]}`, ok, `{"status":"ok","tags":{"x":{"count":1}}}`),
		}},
		// sessionm.md §2 (A): the answer lists all the user's tags, in creation order
		{"answer holds all tags", []step{
			post(tagsPath(ana), `{"tags":["b"],"ttl":3600}`, ok, ""),
			post(tagsPath(ana), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"b":{"expires_at":"2026-11-29 11:00:00"},"a":{"count":1}}}`),
		}},
		// sessionm.md §2 (A): a name repeated in one call counts once
		{"duplicate names in one call", []step{
			post(tagsPath(ana), `{"tags":["a","a"]}`, ok, `{"status":"ok","tags":{"a":{"count":1}}}`),
		}},
		// sessionm.md §2 (C): the external-id path reaches the same user
		{"external id path shares state", []step{
			post(extTagsPath("u-1001"), `{"tags":["a"]}`, ok, ""),
			post(tagsPath(ana), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"a":{"count":2}}}`),
			{q: req{method: "GET", path: extTagsPath("u-1001")}, status: ok, body: `{"status":"ok","tags":{"a":{"count":2}}}`},
		}},
		// sessionm.md §2 (C), seed: Seán starts with vip count 2
		{"seeded counter tag increments", []step{
			post(extTagsPath("u-1004"), `{"tags":["vip"]}`, ok, `{"status":"ok","tags":{"vip":{"count":3}}}`),
		}},
		// sessionm.md §2 (C): Claire has no external id; the SessionM id works
		{"user without external id", []step{
			post(tagsPath(claire), `{"tags":["fr"]}`, ok, `{"status":"ok","tags":{"fr":{"count":1}}}`),
		}},
		// sessionm.md §2 (A): GET of a user without tags
		{"GET with no tags", []step{
			{q: req{method: "GET", path: tagsPath(sam)}, status: ok, body: `{"status":"ok","tags":{}}`},
		}},
		// sessionm.md §2 (C): ttl null is no ttl
		{"ttl null is a counter", []step{
			post(tagsPath(ana), `{"tags":["a"],"ttl":null}`, ok, `{"status":"ok","tags":{"a":{"count":1}}}`),
		}},
		// sessionm.md §2: tag names are JSON strings; escapes round-trip
		{"unicode and escapes", []step{
			post(tagsPath(ana), `{"tags":["caf\u00e9","q\"uote"]}`, ok, `{"status":"ok","tags":{"café":{"count":1},"q\"uote":{"count":1}}}`),
		}},
		// sessionm.md §2 (C): the customer must exist
		{"unknown user id", []step{
			post(tagsPath("00000000-0000-0000-0000-000000000001"), `{"tags":["a"]}`, 404,
				`{"status":"error","errors":{"code":"user_not_found","message":"no user with user id \"00000000-0000-0000-0000-000000000001\""}}`),
		}},
		// sessionm.md §2 (C): the customer must exist, by external id; an id is not an external id
		{"unknown external id", []step{
			post(extTagsPath("u-9999"), `{"tags":["a"]}`, 404, ""),
			post(extTagsPath(ana), `{"tags":["a"]}`, 404, ""),
			{q: req{method: "GET", path: tagsPath("nobody")}, status: 404, has: []string{`"user_not_found"`}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c := newEmu(t, Options{})
			runSteps(t, e, c, core, tt.steps)
		})
	}
}

func TestTagValidation(t *testing.T) {
	tests := []struct {
		name, body string
		code       string
		has        string
	}{
		// sessionm.md §2 (C): tags is required, one or more
		{"missing tags", `{"ttl":5}`, "validation", `"tag":{"tags":"can't be blank"}`},
		{"empty list", `{"tags":[]}`, "validation", `"tags":"can't be blank"`},
		{"null tags", `{"tags":null}`, "validation", `"tags":"can't be blank"`},
		{"tags not a list", `{"tags":"a"}`, "validation", `"tags":"must be a list of strings"`},
		{"tags an object", `{"tags":{"a":1}}`, "validation", `"tags":"must be a list of strings"`},
		// sessionm.md §2 (C): tags are strings
		{"non-string tag", `{"tags":["a",1]}`, "validation", `"tags[1]":"must be a string"`},
		{"null tag", `{"tags":[null]}`, "validation", `"tags[0]":"must be a string"`},
		{"empty tag", `{"tags":[""]}`, "validation", `"tags[0]":"can't be blank"`},
		// sessionm.md §2 (C field, I seconds; A strictness): ttl is a positive integer
		{"ttl zero", `{"tags":["a"],"ttl":0}`, "validation", `"ttl":"must be a positive integer (seconds)"`},
		{"ttl negative", `{"tags":["a"],"ttl":-5}`, "validation", `"ttl":"must be a positive integer (seconds)"`},
		{"ttl fraction", `{"tags":["a"],"ttl":1.5}`, "validation", `"ttl":"must be a positive integer (seconds)"`},
		{"ttl string", `{"tags":["a"],"ttl":"20000"}`, "validation", `"ttl":"must be a positive integer (seconds)"`},
		{"ttl bool", `{"tags":["a"],"ttl":true}`, "validation", `"ttl"`},
		{"ttl too big", `{"tags":["a"],"ttl":99999999999}`, "validation", `"ttl":"must be at most`},
		{"ttl overflow", `{"tags":["a"],"ttl":1e400}`, "validation", `"ttl":"must be a positive integer (seconds)"`},
		{"both wrong", `{"tags":[],"ttl":-1}`, "validation", `"ttl":"must be a positive integer (seconds)"`},
		// sessionm.md §1 (C codes, A status): unreadable bodies are argument_error
		{"bad JSON", `{"tags":["a"]`, "argument_error", `not valid JSON`},
		{"array body", `["a"]`, "argument_error", `must be a JSON object`},
		{"empty body", ``, "argument_error", `empty`},
		{"trailing garbage", `{"tags":["a"]} x`, "argument_error", `not valid JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{})
			r := core(e, req{path: tagsPath(ana), body: tt.body})
			if r.status != 422 {
				t.Fatalf("status %d, want 422: %s", r.status, r.body)
			}
			if code := errorCode(t, r); code != tt.code {
				t.Fatalf("code %q, want %q: %s", code, tt.code, r.body)
			}
			if !strings.Contains(r.body, tt.has) {
				t.Fatalf("body %s lacks %s", r.body, tt.has)
			}
			// a refused call changes nothing
			if d, _ := e.Deliveries(ana); len(d.(Delivery).Tags) != 0 {
				t.Fatalf("tags changed: %+v", d)
			}
		})
	}
}

func TestCoreAuth(t *testing.T) {
	basic := func(u, p string) string { return "Basic " + b64(u+":"+p) }
	tests := []struct {
		name, path, auth string
		status           int
		code             string
	}{
		// sessionm.md §1 (C): Basic base64(api_key:api_secret)
		{"right credentials", tagsPath(ana), "", 200, ""},
		{"scheme without case", tagsPath(ana), "basic " + b64("sandbox-core-key:sandbox-core-secret"), 200, ""},
		{"no Authorization", tagsPath(ana), "-", 401, "invalid_auth_token"},
		{"wrong secret", tagsPath(ana), basic("sandbox-core-key", "nope"), 401, "invalid_auth_token"},
		{"bearer", tagsPath(ana), "Bearer sandbox-core-secret", 401, "invalid_auth_token"},
		{"garbage base64", tagsPath(ana), "Basic !!!", 401, "invalid_auth_token"},
		// sessionm.md §1 (C): the api key in the path is the Basic user name
		{"user name differs from path key", tagsPath(ana), basic("other-key", "sandbox-core-secret"), 401, "invalid_auth_token"},
		{"unknown path key", "/priv/v1/apps/other-key/users/" + ana + "/tags", basic("other-key", "sandbox-core-secret"), 401, "invalid_api_key"},
		{"unknown path key, right header", "/priv/v1/apps/other-key/users/" + ana + "/tags", "", 401, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{})
			r := core(e, req{path: tt.path, body: `{"tags":["a"]}`, auth: tt.auth})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				if code := errorCode(t, r); code != tt.code {
					t.Fatalf("code %q, want %q", code, tt.code)
				}
				if d, _ := e.Deliveries(ana); len(d.(Delivery).Tags) != 0 {
					t.Fatal("a refused call changed tags")
				}
			}
		})
	}
}

func TestCoreRoutes(t *testing.T) {
	tests := []struct {
		name   string
		q      req
		status int
		code   string
		allow  string
	}{
		// contract: unknown route → 404 in the API's envelope
		{"unknown endpoint", req{method: "GET", path: coreBase + "/users/" + ana + "/campaigns"}, 404, "not_found", ""},
		{"other api version", req{method: "GET", path: "/priv/v2/apps/sandbox-core-key/users/" + ana}, 404, "not_found", ""},
		{"root", req{method: "GET", path: "/"}, 404, "not_found", ""},
		{"trailing slash", req{path: tagsPath(ana) + "/", body: `{"tags":["a"]}`}, 404, "not_found", ""},
		{"no key", req{method: "GET", path: "/priv/v1/apps/"}, 404, "not_found", ""},
		// contract: wrong method on a known route → 405 with Allow
		{"DELETE tags", req{method: "DELETE", path: tagsPath(ana)}, 405, "method_not_allowed", "GET, POST"},
		{"GET /users", req{method: "GET", path: coreBase + "/users"}, 405, "method_not_allowed", "POST"},
		{"POST user", req{method: "POST", path: coreBase + "/users/" + ana, body: "{}"}, 405, "method_not_allowed", "GET, PUT"},
		{"PATCH external user", req{method: "PATCH", path: coreBase + "/external/users/u-1001"}, 405, "method_not_allowed", "GET, PUT"},
		// an escaped slash stays inside one path segment
		{"escaped slash in id", req{method: "GET", path: coreBase + "/external/users/u-1001%2Fx"}, 404, "user_not_found", ""},
		{"escaped id finds the user", req{method: "GET", path: coreBase + "/external/users/u%2D1001"}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{})
			r := core(e, tt.q)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" && errorCode(t, r) != tt.code {
				t.Fatalf("code: %s", r.body)
			}
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestErrorsAs200(t *testing.T) {
	for _, viaSeed := range []bool{false, true} {
		opts := Options{ErrorsAs200: !viaSeed}
		e, _ := newEmu(t, opts, func(s *Seed) { s.Settings.ErrorsAs200 = viaSeed })
		tests := []struct {
			q      req
			status int
			code   string
		}{
			// sessionm.md §1 (C, S4): 200 may carry "status":"error"; 401 and
			// 404 are documented statuses and keep them. A: the rest is 200.
			{req{path: tagsPath("nobody"), body: `{"tags":["a"]}`}, 404, "user_not_found"},
			{req{path: tagsPath(ana), body: `{"tags":["a"]}`, auth: "-"}, 401, "invalid_auth_token"},
			{req{path: tagsPath(ana), body: `{}`}, 200, "validation"},
			{req{method: "DELETE", path: tagsPath(ana)}, 200, "method_not_allowed"},
			{req{method: "GET", path: "/nowhere"}, 404, "not_found"},
		}
		for _, tt := range tests {
			r := core(e, tt.q)
			if r.status != tt.status || errorCode(t, r) != tt.code {
				t.Errorf("seed switch %v, %s %s: %d %s, want %d with %s", viaSeed, tt.q.method, tt.q.path, r.status, r.body, tt.status, tt.code)
			}
		}
		r := connect(e, getOffers(`{"retailer_id":"`+retailer+`","user_id":"nobody"}`))
		if r.status != 404 || errorCode(t, r) != "user_not_found" {
			t.Errorf("connect: %d %s, want 404 user_not_found", r.status, r.body)
		}
		r = connect(e, getOffers(`{"retailer_id":"00000000-0000-0000-0000-000000000000","user_id":"`+ana+`"}`))
		if r.status != 200 || errorCode(t, r) != "access_denied" {
			t.Errorf("connect, wrong retailer: %d %s, want 200 access_denied", r.status, r.body)
		}
		// sessionm.md §7 (A): rate_limited is ours, and a 200 would make a
		// client drop what it should retry. The bucket holds one request.
		limited, _ := newEmu(t, Options{ErrorsAs200: !viaSeed, RateLimit: 1, RateBurst: 1}, func(s *Seed) { s.Settings.ErrorsAs200 = viaSeed })
		tag := req{path: tagsPath(ana), body: `{"tags":["a"]}`}
		if r := core(limited, tag); r.status != 200 {
			t.Fatalf("first tag: %d %s", r.status, r.body)
		}
		if r := core(limited, tag); r.status != 429 || errorCode(t, r) != "rate_limited" || r.header.Get("Retry-After") == "" {
			t.Errorf("seed switch %v, over the rate limit: %d %s, want 429 rate_limited with Retry-After", viaSeed, r.status, r.body)
		}
	}
}

// Every error code the emulator answers, with errors_as_200 on: only the
// statuses SessionM documents (401, 404, 500; sessionm.md §1, C) and our
// 429 stay.
func TestErrorsAs200EveryCode(t *testing.T) {
	e, _ := newEmu(t, Options{ErrorsAs200: true})
	keep := map[int]bool{401: true, 404: true, 429: true, 500: true}
	for code, status := range codeStatus {
		w := httptest.NewRecorder()
		e.send(w, errReply(&apiError{code: code}))
		want := 200
		if keep[status] {
			want = status
		}
		if w.Code != want {
			t.Errorf("%s (%d without the switch): HTTP %d, want %d", code, status, w.Code, want)
		}
	}
}

var v1UserID = regexp.MustCompile(`^[0-9a-f]{8}-32f5-11ef-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestUsers(t *testing.T) {
	e, c := newEmu(t, Options{})
	// sessionm.md §3 (O): GET /users/:id → {"status":"ok","user":{...}} with the observed fields, opted_in and activated first
	r := core(e, req{method: "GET", path: coreBase + "/users/" + ana})
	if r.status != 200 || !strings.HasPrefix(r.body, `{"status":"ok","user":{"opted_in":true,"activated":true,"id":"`+ana+`"`) {
		t.Fatalf("GET user: %d %s", r.status, r.body)
	}
	u := r.json(t)["user"].(map[string]any)
	for _, k := range []string{"id", "external_id", "opted_in", "activated", "email", "first_name", "last_name", "dob", "address", "city", "zip", "state", "country", "dma",
		"available_points", "test_points", "unclaimed_achievement_count", "tier_points", "proxy_ids", "created_at", "updated_at", "registered_at",
		"suspended", "test_account", "account_status", "profile_photo_url", "referrer_code", "tier_levels", "phone_numbers"} {
		if _, ok := u[k]; !ok {
			t.Errorf("user object lacks %q", k)
		}
	}
	if u["external_id"] != "u-1001" || u["first_name"] != "Ana" || u["last_name"] != "García" || u["available_points"] != 1350.0 ||
		u["created_at"] != "2024-03-02 10:15:00" || u["account_status"] != "good" {
		t.Errorf("seeded values: %v", u)
	}
	if _, ok := u["user_profile"]; ok {
		t.Error("user_profile without user[user_profile]=true")
	}
	tl := u["tier_levels"].([]any)[0].(map[string]any)
	if tl["tier_overview"].(map[string]any)["name"] != "Silver" || tl["next_tier_overview"].(map[string]any)["name"] != "Gold" ||
		!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`).MatchString(tl["join_date"].(string)) {
		t.Errorf("tier_levels: %v", tl)
	}
	// sessionm.md §3 (O): query flags user[user_profile]=true and show_identifiers=true
	r = core(e, req{method: "GET", path: coreBase + "/external/users/u-1001?user%5Buser_profile%5D=true&show_identifiers=true"})
	u = r.json(t)["user"].(map[string]any)
	if u["id"] != ana || u["user_profile"].(map[string]any)["culture"] != "es-ES" || u["identifiers"] == nil {
		t.Errorf("flags: %s", r.body)
	}
	// sessionm.md §3 (O): Claire has no external id → null; no phones → null
	u = core(e, req{method: "GET", path: coreBase + "/users/" + claire}).json(t)["user"].(map[string]any)
	if u["external_id"] != nil || u["phone_numbers"] != nil || len(u["tier_levels"].([]any)) != 0 {
		t.Errorf("claire: %v", u)
	}
	// sessionm.md §1 (C) / §3: unknown user
	if r := core(e, req{method: "GET", path: coreBase + "/users/nobody"}); r.status != 404 || errorCode(t, r) != "user_not_found" {
		t.Errorf("unknown: %d %s", r.status, r.body)
	}

	// sessionm.md §3 (C/O): POST /users creates a user with a v1-shaped id and Core timestamps
	c.Advance(time.Hour)
	r = core(e, req{path: coreBase + "/users", body: `{"user":{"email":"new@example.com","external_id":"u-2000","first_name":"Nia","opted_in":false,"user_profile":{"tier":"x"},"phone_numbers":[{"phone_number":"+1555"}]}}`})
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	u = r.json(t)["user"].(map[string]any)
	id, _ := u["id"].(string)
	if !v1UserID.MatchString(id) || u["created_at"] != "2026-11-29 11:00:00" || u["opted_in"] != false || u["activated"] != true ||
		u["user_profile"].(map[string]any)["tier"] != "x" || u["phone_numbers"].([]any)[0].(map[string]any)["phone_type"] != "mobile" {
		t.Fatalf("created: %s", r.body)
	}
	if r := core(e, req{path: extTagsPath("u-2000"), body: `{"tags":["new"]}`}); r.status != 200 {
		t.Fatalf("tags on a created user: %s", r.body)
	}
	if r := core(e, req{method: "GET", path: coreBase + "/users/" + id}); r.status != 200 {
		t.Fatalf("GET created: %s", r.body)
	}

	// sessionm.md §3 (O): PUT changes given fields, replaces lists wholesale ([] clears → null), echoes the user
	r = core(e, req{method: "PUT", path: coreBase + "/users/" + ana, body: `{"user":{"first_name":"Anita","phone_numbers":[],"user_profile":{"language":null,"vip":true}}}`})
	u = r.json(t)["user"].(map[string]any)
	if r.status != 200 || u["first_name"] != "Anita" || u["last_name"] != "García" || u["phone_numbers"] != nil ||
		u["user_profile"].(map[string]any)["vip"] != true || u["user_profile"].(map[string]any)["language"] != nil || u["updated_at"] != "2026-11-29 11:00:00" {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	// PUT may move the external id; the old one is free, the new one finds the user
	if r := core(e, req{method: "PUT", path: coreBase + "/external/users/u-1001", body: `{"user":{"external_id":"u-1001b"}}`}); r.status != 200 {
		t.Fatalf("PUT external id: %s", r.body)
	}
	if r := core(e, req{method: "GET", path: coreBase + "/external/users/u-1001"}); r.status != 404 {
		t.Fatalf("old external id still found: %s", r.body)
	}
	if r := core(e, req{method: "GET", path: coreBase + "/external/users/u-1001b"}); r.status != 200 {
		t.Fatalf("new external id: %s", r.body)
	}

	// Reset forgets created users and changes
	e.Reset()
	if r := core(e, req{method: "GET", path: coreBase + "/users/" + id}); r.status != 404 {
		t.Fatalf("created user survived Reset: %s", r.body)
	}
	if u := core(e, req{method: "GET", path: coreBase + "/external/users/u-1001"}).json(t)["user"].(map[string]any); u["first_name"] != "Ana" {
		t.Fatalf("PUT survived Reset: %v", u)
	}
}

func TestUserValidation(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		code, want               string
	}{
		// sessionm.md §1 (O): {"status":"error","errors":{"user":{"email":"Email Already In Use"},"code":"validation"}}
		{"email in use", "POST", "/users", `{"user":{"email":"ana.garcia@example.com"}}`, "validation", `"user":{"email":"Email Already In Use"}`},
		{"email in use, other case", "POST", "/users", `{"user":{"email":"Ana.Garcia@Example.com"}}`, "validation", `Email Already In Use`},
		{"email in use by PUT", "PUT", "/users/" + sam, `{"user":{"email":"ana.garcia@example.com"}}`, "validation", `Email Already In Use`},
		// sessionm.md §1 (O): {"user":{"state":"not a valid state"},"code":"validation"}
		{"US state", "POST", "/users", `{"user":{"email":"x@example.com","country":"US","state":"ZZ"}}`, "validation", `"state":"not a valid state"`},
		// sessionm.md §3 (A): email required, external_id unique, dob a date, typed fields
		{"no email", "POST", "/users", `{"user":{"first_name":"x"}}`, "validation", `"email":"can't be blank"`},
		{"bad email", "POST", "/users", `{"user":{"email":"nope"}}`, "validation", `"email":"is not a valid email"`},
		{"external id in use", "POST", "/users", `{"user":{"email":"x@example.com","external_id":"u-1002"}}`, "validation", `"external_id":"External ID Already In Use"`},
		{"dob", "POST", "/users", `{"user":{"email":"x@example.com","dob":"14/05/1990"}}`, "validation", `"dob":"not a valid date"`},
		{"wrong type", "POST", "/users", `{"user":{"email":"x@example.com","first_name":5,"opted_in":"yes"}}`, "validation", `"first_name":"must be a string","opted_in":"must be true or false"`},
		{"profile not object", "POST", "/users", `{"user":{"email":"x@example.com","user_profile":[1]}}`, "validation", `"user_profile":"must be an object"`},
		{"phones not list", "POST", "/users", `{"user":{"email":"x@example.com","phone_numbers":"+1"}}`, "validation", `"phone_numbers"`},
		{"user not object", "POST", "/users", `{"user":"x"}`, "validation", `"user":{"user":"must be an object"}`},
		// sessionm.md §1 (C): MISSING_DATA
		{"no user key", "POST", "/users", `{"email":"x@example.com"}`, "missing_data", `user is required`},
		{"bad JSON", "POST", "/users", `{"user":`, "argument_error", `not valid JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{})
			r := core(e, req{method: tt.method, path: coreBase + tt.path, body: tt.body})
			if r.status != 422 || errorCode(t, r) != tt.code || !strings.Contains(r.body, tt.want) {
				t.Fatalf("%d %s; want 422 %s with %s", r.status, r.body, tt.code, tt.want)
			}
		})
	}
}

func TestGeneratedUsers(t *testing.T) {
	e, _ := newEmu(t, Options{}, func(s *Seed) { s.Settings.GeneratedUsers = 100_000 })
	last := GeneratedUserID(99_999)
	if last != "0001869f-32f5-11ef-8000-00000001869f" || GeneratedExternalID(7) != "load-000007" {
		t.Fatalf("ids: %s %s", last, GeneratedExternalID(7))
	}
	// contract: generated users answer by SessionM id and by external id load-%06d
	runSteps(t, e, &clock{}, core, []step{
		post(tagsPath(last), `{"tags":["a"]}`, 200, `{"status":"ok","tags":{"a":{"count":1}}}`),
		post(extTagsPath("load-099999"), `{"tags":["a"]}`, 200, `{"status":"ok","tags":{"a":{"count":2}}}`),
		post(extTagsPath("load-100000"), `{"tags":["a"]}`, 404, ""),
		post(tagsPath(GeneratedUserID(100_000)), `{"tags":["a"]}`, 404, ""),
		post(extTagsPath("load-00007"), `{"tags":["a"]}`, 404, ""),
		post(tagsPath(strings.ToUpper(last)), `{"tags":["a"]}`, 404, ""),
		{q: req{method: "GET", path: coreBase + "/users/" + GeneratedUserID(0)}, status: 200, has: []string{`"external_id":"load-000000"`, `"email":"load-000000@example.com"`}},
	})
	// contract: generated users start with an empty wallet and no tags
	r := connect(e, getOffers(`{"retailer_id":"`+retailer+`","user_id":"`+GeneratedUserID(5)+`"}`))
	if r.status != 200 || !strings.Contains(r.body, `"user_offers":[],"total_records":0`) {
		t.Fatalf("generated wallet: %s", r.body)
	}
	// their email is taken
	if r := core(e, req{path: coreBase + "/users", body: `{"user":{"email":"load-000003@example.com"}}`}); r.status != 422 {
		t.Fatalf("generated email free: %s", r.body)
	}
	// a PUT that moves a generated user's external id frees the old one
	core(e, req{method: "PUT", path: coreBase + "/external/users/load-000003", body: `{"user":{"external_id":"moved-3"}}`})
	if r := core(e, req{method: "GET", path: coreBase + "/external/users/load-000003"}); r.status != 404 {
		t.Fatalf("moved external id still answers: %s", r.body)
	}
	if r := core(e, req{method: "GET", path: coreBase + "/external/users/moved-3"}); r.status != 200 || !strings.Contains(r.body, GeneratedUserID(3)) {
		t.Fatalf("moved-3: %s", r.body)
	}
}

// tagsBody is {"tags":[...]} with n names from format (one %d).
func tagsBody(n int, format string) string {
	var b strings.Builder
	b.WriteString(`{"tags":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"`+format+`"`, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// One call takes at most 1,000 tags (A, doc.go §2): an 800 KB body of
// 110,000 tags once held the lock for 96 s; now it is a 422 found before
// the lock is taken.
func TestTagsPerCallCap(t *testing.T) {
	e, _ := newEmu(t, Options{})
	huge := tagsBody(110_000, "%x")
	if len(huge) > 1<<20 {
		t.Fatalf("test body is %d bytes, over the default body limit", len(huge))
	}
	for _, tt := range []struct {
		body string
		want string
	}{
		{huge, `{"status":"error","errors":{"code":"validation","message":"tags: at most 1000 tags per call, not 110000","tag":{"tags":"at most 1000 tags per call, not 110000"}}}`},
		{tagsBody(1001, "t%d"), `{"status":"error","errors":{"code":"validation","message":"tags: at most 1000 tags per call, not 1001","tag":{"tags":"at most 1000 tags per call, not 1001"}}}`},
	} {
		start := time.Now()
		r := core(e, req{path: tagsPath(ana), body: tt.body})
		if r.status != 422 || r.body != tt.want {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("refusing took %v", d)
		}
	}
	if d, _ := e.Deliveries(ana); len(d.(Delivery).Tags) != 0 {
		t.Fatalf("a refused call changed tags: %d", len(d.(Delivery).Tags))
	}
	// 1,000 names are accepted; a repeated name still counts once
	body := strings.Replace(tagsBody(1000, "t%d"), `"t999"`, `"t0"`, 1)
	if r := core(e, req{path: tagsPath(ana), body: body}); r.status != 200 || !strings.Contains(r.body, `"t998":{"count":1}}}`) {
		t.Fatalf("1000 tags: %d %.200s", r.status, r.body)
	}
	d, _ := e.Deliveries(ana)
	if tags := d.(Delivery).Tags; len(tags) != 999 || tags["t0"].Count != 1 {
		t.Fatalf("%d tags, t0 %+v", len(tags), tags["t0"])
	}
}

// manyTags is a seed of n counter tags.
func manyTags(n int) map[string]SeedTag {
	many := map[string]SeedTag{}
	for i := range n {
		many[fmt.Sprintf("old%06d", i)] = SeedTag{Count: 1}
	}
	return many
}

// A user with 100,000 tags takes 10 calls of 1,000 new names, and expiry
// keeps the tag index right. BenchmarkTagsOnALargeUser measures the cost.
func TestTagsScale(t *testing.T) {
	e, c := newEmu(t, Options{}, func(s *Seed) { s.Users[0].Tags = manyTags(100_000) })
	for call := range 10 {
		r := core(e, req{path: tagsPath(ana), body: tagsBody(1000, fmt.Sprintf("new%02d-%%d", call))})
		if r.status != 200 {
			t.Fatalf("call %d: %d %.200s", call, r.status, r.body)
		}
	}
	d, _ := e.Deliveries(ana)
	if n := len(d.(Delivery).Tags); n != 110_000 {
		t.Fatalf("%d tags, want 110000", n)
	}

	// pruning expired tags rebuilds the index: counters found after it
	runSteps(t, e, c, core, []step{
		post(tagsPath(sam), `{"tags":["x","y","z"],"ttl":60}`, 200, ""),
		post(tagsPath(sam), `{"tags":["c1","c2"]}`, 200, ""),
		{advance: 61 * time.Second, q: req{path: tagsPath(sam), body: `{"tags":["c2","y"]}`}, status: 200,
			body: `{"status":"ok","tags":{"c1":{"count":1},"c2":{"count":2},"y":{"count":1}}}`},
		post(tagsPath(sam), `{"tags":["c1","y","c1"]}`, 200, `{"status":"ok","tags":{"c1":{"count":2},"c2":{"count":2},"y":{"count":2}}}`),
	})
	// Reset restores the seed's tags and their index
	e.Reset()
	runSteps(t, e, c, core, []step{
		post(tagsPath(sean), `{"tags":["vip"]}`, 200, `{"status":"ok","tags":{"vip":{"count":3}}}`),
	})
}

// Tags are found by name in a map, not by scanning the user's tags for
// every name: a call of 1,000 new names on a user with 100,000 tags did
// 10⁸ string comparisons under the lock before (0.8 s); now it is linear.
func BenchmarkTagsOnALargeUser(b *testing.B) {
	e, _ := newEmu(b, Options{}, func(s *Seed) { s.Users[0].Tags = manyTags(100_000) })
	b.ResetTimer()
	for call := range b.N {
		r := core(e, req{path: tagsPath(ana), body: tagsBody(1000, fmt.Sprintf("new%06d-%%d", call))})
		if r.status != 200 {
			b.Fatalf("call %d: %d %.200s", call, r.status, r.body)
		}
	}
}

// sessionm.md §2, §8: the tag answer and the TTL reset on re-POST are
// assumed, so the seed switches them (tag_response, tag_ttl_on_repost);
// the defaults are the rows of TestTags.
func TestTagSettings(t *testing.T) {
	ok := http.StatusOK
	tests := []struct {
		name  string
		edit  func(*Settings)
		steps []step
	}{
		{"keep: a re-POST leaves the expiry", func(s *Settings) { s.TagTTLOnRepost = "keep" }, []step{
			post(tagsPath(ana), `{"tags":["t"],"ttl":100}`, ok, ""),
			{advance: 50 * time.Second, q: req{path: tagsPath(ana), body: `{"tags":["t","u"],"ttl":100}`}, status: ok,
				body: `{"status":"ok","tags":{"t":{"expires_at":"2026-11-29 10:01:40"},"u":{"expires_at":"2026-11-29 10:02:30"}}}`},
			// once it expired, the next POST starts a new one
			{advance: 60 * time.Second, q: req{path: tagsPath(ana), body: `{"tags":["t"],"ttl":100}`}, status: ok,
				has: []string{`"t":{"expires_at":"2026-11-29 10:03:30"}`}},
		}},
		{"keep: a counter posted with ttl still becomes expiring", func(s *Settings) { s.TagTTLOnRepost = "keep" }, []step{
			post(tagsPath(ana), `{"tags":["x"]}`, ok, ""),
			post(tagsPath(ana), `{"tags":["x"],"ttl":10}`, ok, `{"status":"ok","tags":{"x":{"expires_at":"2026-11-29 10:00:10"}}}`),
		}},
		{"reset named", func(s *Settings) { s.TagTTLOnRepost = "reset" }, []step{
			post(tagsPath(ana), `{"tags":["t"],"ttl":100}`, ok, ""),
			{advance: 50 * time.Second, q: req{path: tagsPath(ana), body: `{"tags":["t"],"ttl":100}`}, status: ok,
				body: `{"status":"ok","tags":{"t":{"expires_at":"2026-11-29 10:02:30"}}}`},
		}},
		{"status: the bare envelope, tags still counted", func(s *Settings) { s.TagResponse = "status" }, []step{
			post(tagsPath(ana), `{"tags":["a"]}`, ok, `{"status":"ok"}`),
			post(extTagsPath("u-1001"), `{"tags":["a"],"ttl":60}`, ok, `{"status":"ok"}`),
			post(extTagsPath("u-1001"), `{"tags":["b"]}`, ok, `{"status":"ok"}`),
			// errors keep their envelope
			post(tagsPath(ana), `{"tags":[]}`, 422, ""),
			// GET is the only way to read tags, so it keeps them
			{q: req{method: "GET", path: tagsPath(ana)}, status: ok,
				body: `{"status":"ok","tags":{"a":{"expires_at":"2026-11-29 10:01:00"},"b":{"count":1}}}`},
		}},
		{"tags named", func(s *Settings) { s.TagResponse = "tags" }, []step{
			post(tagsPath(ana), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"a":{"count":1}}}`),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c := newEmu(t, Options{}, func(s *Seed) { tt.edit(&s.Settings) })
			runSteps(t, e, c, core, tt.steps)
		})
	}
	// the keys read from YAML; the shipped seed keeps the defaults
	s, err := ParseSeed("x.yaml", []byte(minimalSeed+"  tag_ttl_on_repost: keep\n  tag_response: status\n"))
	if err != nil || s.Settings.TagTTLOnRepost != "keep" || s.Settings.TagResponse != "status" {
		t.Fatalf("from YAML: %v %+v", err, s.Settings)
	}
	if set := shippedSeed(t).Settings; (set.TagTTLOnRepost != "" && set.TagTTLOnRepost != "reset") || (set.TagResponse != "" && set.TagResponse != "tags") {
		t.Errorf("the shipped seed changes a default: %+v", set)
	}
}

// sessionm.md §2 (O): "One SessionM user can hold several external-id
// mappings. The REST API returns the most recently updated one." The seed's
// external_ids adds mappings beside external_id; each reaches the user.
func TestSeveralExternalIDs(t *testing.T) {
	ok := http.StatusOK
	e, c := newEmu(t, Options{}, func(s *Seed) {
		s.Users[0].ExternalIDs = []string{"crm-77", "pos-4411"} // Ana, external_id u-1001
	})
	runSteps(t, e, c, core, []step{
		post(extTagsPath("crm-77"), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"a":{"count":1}}}`),
		post(extTagsPath("pos-4411"), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"a":{"count":2}}}`),
		post(extTagsPath("u-1001"), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"a":{"count":3}}}`),
		{q: req{method: "GET", path: tagsPath(ana)}, status: ok, body: `{"status":"ok","tags":{"a":{"count":3}}}`},
		// the user object answers one external_id, the seed's external_id
		{q: req{method: "GET", path: coreBase + "/external/users/pos-4411?show_identifiers=true"}, status: ok,
			has: []string{`"id":"` + ana + `"`, `"external_id":"u-1001","email"`,
				`"identifiers":[{"external_id":"u-1001","external_id_type":"default"},{"external_id":"crm-77","external_id_type":"default"},{"external_id":"pos-4411","external_id_type":"default"}]`}},
		// a mapping is still unique per tenant
		{q: req{method: "PUT", path: coreBase + "/users/" + sam, body: `{"user":{"external_id":"crm-77"}}`}, status: 422,
			has: []string{`"external_id":"External ID Already In Use"`}},
	})
	// Deliveries finds the user by any mapping
	if d, found := e.Deliveries("pos-4411"); !found || d.(Delivery).UserID != ana {
		t.Errorf("Deliveries(pos-4411) = %+v, %v", d, found)
	}

	// A PUT of external_id replaces the mapping the API answers (A); the
	// others stay.
	runSteps(t, e, c, core, []step{
		{q: req{method: "PUT", path: coreBase + "/users/" + ana, body: `{"user":{"external_id":"crm-77"}}`}, status: ok, has: []string{`"external_id":"crm-77"`}},
		post(extTagsPath("pos-4411"), `{"tags":["a"]}`, ok, `{"status":"ok","tags":{"a":{"count":4}}}`),
		post(extTagsPath("u-1001"), `{"tags":["a"]}`, 404, ""),
		{q: req{method: "GET", path: coreBase + "/users/" + ana + "?show_identifiers=true"}, status: ok,
			has: []string{`"identifiers":[{"external_id":"crm-77","external_id_type":"default"},{"external_id":"pos-4411","external_id_type":"default"}]`}},
	})

	// the shipped seed gives Seán a second mapping
	e3, c3 := newEmu(t, Options{})
	runSteps(t, e3, c3, core, []step{
		post(extTagsPath("pos-88120"), `{"tags":["vip"]}`, ok, `{"status":"ok","tags":{"vip":{"count":3}}}`),
	})

	// A PUT that empties external_id drops the answered mapping; the API
	// still answers one of the user's mappings, the next one, as a seed
	// with external_ids alone does (A: which one SessionM promotes is not
	// public).
	seanExt := coreBase + "/external/users/pos-88120"
	runSteps(t, e3, c3, core, []step{
		{q: req{method: "PUT", path: seanExt, body: `{"user":{"external_id":""}}`}, status: ok, has: []string{`"external_id":"pos-88120"`}},
		{q: req{method: "GET", path: seanExt + "?show_identifiers=true"}, status: ok,
			has: []string{`"external_id":"pos-88120","email"`, `"identifiers":[{"external_id":"pos-88120","external_id_type":"default"}]`}},
		{q: req{method: "GET", path: coreBase + "/external/users/u-1004"}, status: 404},
		// with no mapping left, external_id is null
		{q: req{method: "PUT", path: seanExt, body: `{"user":{"external_id":""}}`}, status: ok, has: []string{`"external_id":null`}},
		{q: req{method: "GET", path: seanExt}, status: 404},
	})

	// from YAML: external_ids alone, the first is the one answered
	s, err := ParseSeed("x.yaml", []byte(minimalSeed+"users:\n  - id: "+ana+"\n    email: a@example.com\n    external_ids: [crm-1, pos-2]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := serve(e2.Core(), "Basic "+base64.StdEncoding.EncodeToString([]byte("k:s")), req{method: "GET", path: "/priv/v1/apps/k/external/users/pos-2"})
	if r.status != ok || !strings.Contains(r.body, `"external_id":"crm-1"`) {
		t.Errorf("GET by the second mapping: %d %s", r.status, r.body)
	}
}
