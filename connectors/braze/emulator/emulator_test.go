package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/internal/ids"
)

const okCampaign = `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001"}]}`

func TestShippedSeed(t *testing.T) {
	seed, err := ReadSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(seed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// examples/sandbox.env: BRAZE_API_KEY=sandbox-braze-key
	if b := e.Banner(); len(b) == 0 || b[0].Name != "BRAZE_API_KEY" || b[0].Value != "sandbox-braze-key" {
		t.Errorf("banner %+v", b)
	}
	users := e.Users()
	if len(users) != 4 {
		t.Fatalf("%d users", len(users))
	}
	// examples/csv/braze-segment-export.csv: Ana, with the attributes under
	// their Liquid names (braze.md §6)
	ana := users[0]
	if ana.ExternalID != "u-1001" || ana.BrazeID != "5f3e1a2b9c8d7e6f5a4b3c21" || ana.Attributes["email_address"] != "ana.garcia@example.com" ||
		ana.Attributes["city"] != "Madrid" || ana.Attributes["date_of_birth"] != "1990-05-14" || ana.Attributes["language"] != "es" ||
		ana.CustomAttributes["sessionm_user_id"] != "3c1d7e2a-32f5-11ef-b3e4-0242ac120002" || ana.CustomAttributes["available_points"] != float64(1350) {
		t.Errorf("Ana %+v", ana)
	}
	if l := ana.Liquid(); l["user_id"] != "u-1001" || obj(l["custom_attribute"])["loyalty_tier"] != "Silver" || l["first_name"] != "Ana" {
		t.Errorf("Liquid scope %v", l)
	}
	// Claire has no external id
	if users[2].ExternalID != "" || users[2].Attributes["first_name"] != "Claire" || len(users[2].Aliases) != 1 {
		t.Errorf("Claire %+v", users[2])
	}
	for name, want := range map[string]int{"All users": 4, "Loyalty members": 3, "Spring promo": 3, "2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f": 3} {
		got, ok := e.Segment(name)
		if !ok || len(got) != want {
			t.Errorf("Segment(%q) = %d users, %v; want %d", name, len(got), ok, want)
		}
	}
	if _, ok := e.Segment("nope"); ok {
		t.Errorf("unknown segment found")
	}
	// the event examples name seeded ids
	for _, f := range []string{"sessionm-offer-issued.json", "sessionm-points-awarded.json"} {
		b, err := os.ReadFile(filepath.Join("../../../examples/events", f))
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Campaign struct {
				Campaign string `json:"braze_campaign_id"`
				Canvas   string `json:"braze_canvas_id"`
			} `json:"campaign"`
		}
		_ = json.Unmarshal(b, &ev)
		if id := ev.Campaign.Campaign; id != "" && e.camps[id] == nil {
			t.Errorf("%s: campaign %s is not seeded", f, id)
		}
		if id := ev.Campaign.Canvas; id != "" && e.canvs[id] == nil {
			t.Errorf("%s: canvas %s is not seeded", f, id)
		}
	}
}

func TestSeedErrors(t *testing.T) {
	const keys = "settings:\n  api_keys:\n    - {key: k, permissions: [users.track]}\n"
	tests := []struct{ name, yaml, want string }{
		{"empty", "", "seed file is empty"},
		{"unknown key", keys + "usres: []\n", `:4: unknown key "usres"`},
		{"unknown nested key", keys + "users:\n  - external_id: a\n    frist_name: x\n", `:6: unknown key "frist_name"`},
		{"wrong kind", keys + "users: 3\n", ":4: expected a list, got a number (3)"},
		{"no keys", "users: []\n", "settings.api_keys: at least one API key"},
		{"unknown permission", "settings:\n  api_keys:\n    - key: k\n      permissions: [campaign.trigger.send]\n", `:4: settings.api_keys[0].permissions[0]: unknown permission "campaign.trigger.send"`},
		{"duplicate external id", keys + "users:\n  - external_id: a\n  - external_id: a\n", `:6: users[1].external_id: external_id "a" is used twice`},
		{"bad attribute", keys + "users:\n  - external_id: a\n    attributes:\n      country: Spain\n", `:7: users[0].attributes.country: 'country' must be`},
		{"identifier in attributes", keys + "users:\n  - external_id: a\n    attributes: {external_id: b}\n", "is an identifier"},
		{"user without id", keys + "users:\n  - attributes: {first_name: x}\n", "users[0]: a user needs"},
		{"dangling segment", keys + "campaigns:\n  - {id: c1, segment: nope}\n", `campaigns[0].segment: no segment is named "nope"`},
		{"segment member", keys + "segments:\n  - {id: s1, name: S, external_ids: [ghost]}\n", `no user has external_id "ghost"`},
		{"bad status", keys + "canvases:\n  - {id: c1, status: stopped}\n", `unknown status "stopped"`},
		{"duplicate canvas", keys + "canvases:\n  - {id: c1}\n  - {id: c1}\n", `id "c1" is used twice`},
		{"bad window", keys[:len(keys)-1] + "\n  limits:\n    users_track: {requests: 5, window: soon}\n", ":5: expected a duration such as 2s or 300ms, got text (soon)"},
		{"zero requests", keys[:len(keys)-1] + "\n  limits:\n    users_track: {requests: 0, window: 1s}\n", "requests must be at least 1"},
		{"generated collision", "settings:\n  generated_users: 5\n  api_keys: [{key: k}]\nusers:\n  - external_id: load-000003\n", "collides with a generated user"},
		{"quoted key", "settings:\n  api_keys: [{key: '\"k\"'}]\n", "must not contain quotes"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("seed%d.yaml", i))
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSeed(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "emulator.") || strings.Contains(err.Error(), "[]") {
				t.Errorf("error names a Go type: %v", err)
			}
		})
	}
	// ParseSeed names the file it was given; unquoted YAML dates stay dates
	if _, err := ParseSeed("built-in braze.yaml", []byte("users: 1\n")); err == nil || !strings.HasPrefix(err.Error(), "built-in braze.yaml:1: ") {
		t.Errorf("ParseSeed error %v", err)
	}
	s, err := ParseSeed("x.yaml", []byte(keys+"users:\n  - external_id: a\n    attributes: {dob: 1990-05-14, seen: 2026-01-01T10:00:00Z}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := New(s, Options{}); err != nil || e.Users()[0].Attributes["date_of_birth"] != "1990-05-14" || e.Users()[0].CustomAttributes["seen"] != "2026-01-01T10:00:00Z" {
		t.Errorf("dates from YAML: %v %+v", err, e.Users())
	}
	// New checks a Seed built in code the same way
	if _, err := New(Seed{}, Options{}); err == nil || !strings.Contains(err.Error(), "api_keys") {
		t.Errorf("New(empty seed): %v", err)
	}
}

func TestAuth(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	tests := []struct {
		name, path, auth string
		status           int
		message          string
	}{
		// braze.md §1: invalid, missing or quoted key → 401
		{"missing", "/campaigns/trigger/send", "", 401, msgUnauthorized},
		{"unknown key", "/campaigns/trigger/send", "Bearer nope", 401, msgUnauthorized},
		{"quoted key", "/campaigns/trigger/send", `Bearer "sandbox-braze-key"`, 401, msgUnauthorized},
		{"basic scheme", "/users/track", "Basic c2FuZGJveC1icmF6ZS1rZXk6", 401, msgUnauthorized},
		{"bare key", "/users/track", "sandbox-braze-key", 401, msgUnauthorized},
		// braze.md §1: 403 Access Denied for a key without the permission
		{"no campaign permission", "/campaigns/trigger/send", "Bearer " + trackOnly, 403, "Access Denied"},
		{"no canvas permission", "/canvas/trigger/send", "Bearer " + trackOnly, 403, "Access Denied"},
		{"permission", "/users/track", "Bearer " + trackOnly, 201, "success"},
		{"lower-case scheme", "/users/track", "bearer " + key, 201, "success"},
	}
	body := map[string]string{
		"/campaigns/trigger/send": okCampaign,
		"/canvas/trigger/send":    `{"canvas_id":"` + pointsCanvas + `","recipients":[{"external_user_id":"u-1001"}]}`,
		"/users/track":            `{"attributes":[{"external_id":"u-1001","x":1}]}`,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, h, http.MethodPost, tt.path, "", body[tt.path], "Authorization", tt.auth)
			if r.status != tt.status || r.message() != tt.message {
				t.Errorf("got %d %s, want %d %q", r.status, r.raw, tt.status, tt.message)
			}
		})
	}
}

func TestRoutesAndBodies(t *testing.T) {
	e, _ := newEmu(t, nil, Options{MaxBody: 2048})
	h := e.Handler()
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		message                  string
	}{
		// braze.md §1: 404 for an invalid URL
		{"unknown route", "POST", "/messages/send", okCampaign, nil, 404, msgNotFound},
		{"trailing slash", "POST", "/users/track/", `{}`, nil, 404, msgNotFound},
		{"wrong method", "GET", "/users/track", "", nil, 405, "Method Not Allowed"},
		{"put", "PUT", "/campaigns/trigger/send", okCampaign, nil, 405, "Method Not Allowed"},
		// braze.md §1: Content-Type: application/json (A: 400 otherwise)
		{"text body", "POST", "/campaigns/trigger/send", okCampaign, []string{"Content-Type", "text/plain"}, 400, msgBadRequest},
		{"no content type", "POST", "/users/track", `{"attributes":[]}`, []string{"Content-Type", ""}, 400, msgBadRequest},
		{"json with charset", "POST", "/campaigns/trigger/send", okCampaign, []string{"Content-Type", "application/json; charset=utf-8"}, 201, "success"},
		// body over MaxBody → 413 in Braze's shape
		{"too large", "POST", "/users/track", `{"attributes":[{"external_id":"u-1001","x":"` + strings.Repeat("y", 3000) + `"}]}`, nil, 413, msgTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, h, tt.method, tt.path, key, tt.body, tt.hdr...)
			if r.status != tt.status || r.message() != tt.message {
				t.Fatalf("got %d %s, want %d %q", r.status, r.raw, tt.status, tt.message)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
		})
	}
	// ContentTypeStatus switches the answer (A)
	e2, _ := newEmu(t, nil, Options{ContentTypeStatus: http.StatusUnsupportedMediaType})
	if r := call(t, e2.Handler(), "POST", "/users/track", key, `{"attributes":[]}`, "Content-Type", "text/plain"); r.status != 415 {
		t.Errorf("ContentTypeStatus 415: got %d", r.status)
	}
	e3, _ := newEmu(t, nil, Options{ContentTypeStatus: -1})
	if r := call(t, e3.Handler(), "POST", "/users/track", key, `{"attributes":[]}`, "Content-Type", "text/plain"); r.status != 201 {
		t.Errorf("ContentTypeStatus -1: got %d", r.status)
	}
}

func TestMalformedBodies(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	bodies := []string{
		``, `null`, `[]`, `"x"`, `42`, `{`, `{"campaign_id":}`, `{"a":1}{"b":2}`, `{"campaign_id":"` + winterCampaign + `"`,
		"\x00\x01", `{"recipients":[null]}`, `{"recipients":[[]]}`, `{"recipients":null,"broadcast":null}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":null,"braze_id":null}]}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"user_alias":"x"}]}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"user_alias":{"alias_name":1,"alias_label":[]}}]}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"email":"a@b","prioritization":"identified"}]}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"email":"a@b","prioritization":[1]}]}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001","attributes":[1]}]}`,
		`{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001","trigger_properties":"x"}]}`,
		`{"canvas_id":"` + pointsCanvas + `","recipients":[{"external_user_id":"u-1001","context":1}]}`,
		`{"canvas_id":["x"]}`, `{"attributes":"x"}`, `{"events":[1,"x",null,[]]}`, `{"purchases":{"a":1}}`,
		`{"attributes":[{"external_id":"u-1","user_alias":{"alias_name":"a"}}]}`,
		`{"events":[{"external_id":"u-1","name":"e","time":"2026-01-01T00:00:00Z","properties":[1]}]}`,
		`{"purchases":[{"external_id":"u-1","product_id":"p","currency":1,"price":1,"time":"2026-01-01T00:00:00Z"}]}`,
		`{"purchases":[{"external_id":"u-1","product_id":"p","currency":"EUR","price":1e400,"time":"2026-01-01T00:00:00Z"}]}`,
		`{"attributes":[{"external_id":"u-1","_update_existing_only":"yes"}]}`,
		`{"attributes":[{"external_id":"u-1","x":{"inc":1,"add":[1]}}]}`,
		`{"attributes":[{"external_id":"u-1","x":{"add":"a"}}]}`,
		`{"attributes":[{"external_id":"u-1","current_location":{"longitude":"x"}}]}`,
		`{"attributes":[{"external_id":"u-1","x":1e400,"y":{"inc":1e400}}]}`,
		`{"events":[{"external_id":"u-1","name":"e","time":"2026-01-01T00:00:00Z","properties":{"n":1e400}}]}`,
		`{"campaign_id":"` + winterCampaign + `","trigger_properties":{"n":-1e400},"recipients":[{"external_user_id":"u-1001"}]}`,
		`{"canvas_id":"` + pointsCanvas + `","recipients":[{"external_user_id":"u-1001","send_to_existing_only":false,"attributes":{"n":1e999}}]}`,
		`{"attributes":[{"external_id":"\ud800","first_name":"\u0000\"x"}]}`,
	}
	for _, path := range []string{"/campaigns/trigger/send", "/canvas/trigger/send", "/users/track"} {
		for _, b := range bodies {
			r := call(t, h, http.MethodPost, path, key, b)
			if r.status != 400 && r.status != 201 {
				t.Errorf("%s %q: status %d %s", path, b, r.status, r.raw)
			}
			if r.message() == "" {
				t.Errorf("%s %q: no message: %s", path, b, r.raw)
			}
			if r.status == 400 && r.body["errors"] == nil {
				t.Errorf("%s %q: a fatal answer without errors: %s", path, b, r.raw)
			}
			if strings.Contains(r.raw, "Go ") || strings.Contains(r.raw, "map[") || strings.Contains(r.raw, "json.") || strings.Contains(r.raw, "interface") {
				t.Errorf("%s %q: answer shows Go internals: %s", path, b, r.raw)
			}
		}
	}
	// still serving
	if r := post(t, h, "/campaigns/trigger/send", okCampaign); r.status != 201 {
		t.Fatalf("after malformed bodies: %d %s", r.status, r.raw)
	}
}

func TestRateLimits(t *testing.T) {
	e, clk := newEmu(t, nil, Options{Limits: Limits{
		Trigger:    Limit{Requests: 3, Window: time.Minute},
		Broadcast:  Limit{Requests: 1},
		UsersTrack: Limit{Requests: 2, Window: 3 * time.Second},
	}})
	h := e.Handler()
	hdr := func(r result) (int, int, int64) {
		l, _ := strconv.Atoi(r.header.Get("X-RateLimit-Limit"))
		rem, _ := strconv.Atoi(r.header.Get("X-RateLimit-Remaining"))
		reset, _ := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
		return l, rem, reset
	}
	minuteEnd := clk.Now().Truncate(time.Minute).Add(time.Minute).Unix()
	// braze.md §1: every response carries X-RateLimit-*; reset in UTC epoch seconds
	steps := []struct {
		name, path, auth, body string
		status, limit, remain  int
		reset                  int64
	}{
		{"401 carries headers, counts nothing", "/campaigns/trigger/send", "nope", okCampaign, 401, 3, 3, minuteEnd},
		{"404 carries headers", "/nope", key, `{}`, 404, 3, 3, minuteEnd},
		{"first", "/campaigns/trigger/send", key, okCampaign, 201, 3, 2, minuteEnd},
		{"canvas shares the pool", "/canvas/trigger/send", key, `{"canvas_id":"` + pointsCanvas + `","recipients":[{"external_user_id":"u-1001"}]}`, 201, 3, 1, minuteEnd},
		{"errors count too", "/campaigns/trigger/send", key, `{}`, 400, 3, 0, minuteEnd},
		// braze.md §1: 429 over the limit
		{"over", "/campaigns/trigger/send", key, okCampaign, 429, 3, 0, minuteEnd},
		// braze.md §1, §2: broadcast calls have their own 250/min pool (here 1, window from the seed: 1m)
		{"broadcast pool", "/campaigns/trigger/send", key, `{"campaign_id":"` + winterCampaign + `","broadcast":true}`, 201, 1, 0, minuteEnd},
		{"broadcast over", "/canvas/trigger/send", key, `{"canvas_id":"` + pointsCanvas + `","broadcast":true}`, 429, 1, 0, minuteEnd},
		// a Connected Audience is a broadcast's target too, recipients or not (A)
		{"audience counts as a broadcast", "/campaigns/trigger/send", key, `{"campaign_id":"` + winterCampaign + `","audience":{"AND":[]},"recipients":[{"external_user_id":"u-1001"}]}`, 429, 1, 0, minuteEnd},
		{"users/track pool", "/users/track", key, `{"attributes":[]}`, 201, 2, 1, 0},
	}
	for _, s := range steps {
		r := call(t, h, http.MethodPost, s.path, s.auth, s.body)
		l, rem, reset := hdr(r)
		if r.status != s.status || l != s.limit || rem != s.remain || (s.reset != 0 && reset != s.reset) {
			t.Errorf("%s: %d limit %d remaining %d reset %d; want %d %d %d %d (%s)", s.name, r.status, l, rem, reset, s.status, s.limit, s.remain, s.reset, r.raw)
		}
		if r.status == 429 {
			ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
			if want := int(minuteEnd - clk.Now().Unix()); ra != want || r.message() != msgRateLimited {
				t.Errorf("%s: Retry-After %d, want %d; %s", s.name, ra, want, r.raw)
			}
		}
	}
	// the header names, as written on the wire
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/nope", nil))
	for _, k := range []string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} {
		if _, ok := w.Header()[k]; !ok {
			t.Errorf("header %s missing: %v", k, w.Header())
		}
	}
	// a new window lets calls through again
	clk.Advance(time.Minute)
	if r := post(t, h, "/campaigns/trigger/send", okCampaign); r.status != 201 {
		t.Errorf("next window: %d", r.status)
	}
	// users/track: 2 per 3 s
	post(t, h, "/users/track", `{"attributes":[]}`)
	post(t, h, "/users/track", `{"attributes":[]}`)
	if r := post(t, h, "/users/track", `{"attributes":[]}`); r.status != 429 {
		t.Errorf("users/track third call in the window: %d", r.status)
	}
	// Reset clears the counters
	e.Reset()
	if r := post(t, h, "/users/track", `{"attributes":[]}`); r.status != 201 {
		t.Errorf("after Reset: %d", r.status)
	}
}

// braze.md §1 documents x-ratelimit-* on every answer and not whether a
// 429 adds Retry-After (A): it does unless the seed or Options say not.
func TestRetryAfterOn429IsASetting(t *testing.T) {
	no, yes := false, true
	tests := []struct {
		name       string
		seed       *bool
		omit       bool
		retryAfter bool
	}{
		{"default", nil, false, true},
		{"settings.retry_after: false", &no, false, false},
		{"settings.retry_after: true", &yes, false, true},
		{"Options.OmitRetryAfter", nil, true, false},
		{"Options win over the seed", &yes, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, clk := newEmu(t, func(s *Seed) { s.Settings.RetryAfter = tt.seed },
				Options{OmitRetryAfter: tt.omit, Limits: Limits{Trigger: Limit{Requests: 1, Window: time.Minute}}})
			post(t, e.Handler(), "/campaigns/trigger/send", okCampaign)
			r := post(t, e.Handler(), "/campaigns/trigger/send", okCampaign)
			if r.status != 429 {
				t.Fatalf("second call in a window of 1: %d", r.status)
			}
			reset := strconv.FormatInt(clk.Now().Truncate(time.Minute).Add(time.Minute).Unix(), 10)
			if r.header.Get("X-RateLimit-Reset") != reset || r.header.Get("X-RateLimit-Remaining") != "0" {
				t.Errorf("x-ratelimit-remaining %q, -reset %q; want 0, %s", r.header.Get("X-RateLimit-Remaining"), r.header.Get("X-RateLimit-Reset"), reset)
			}
			if _, got := r.header["Retry-After"]; got != tt.retryAfter {
				t.Errorf("Retry-After %q, want it: %v", r.header.Get("Retry-After"), tt.retryAfter)
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	// braze.md §1: 250,000/h trigger pool, 250/min broadcasts, 3,000 per 3 s for /users/track
	e, _ := newEmu(t, func(s *Seed) { s.Settings.Limits = SeedLimits{} }, Options{})
	for path, want := range map[string]string{"/campaigns/trigger/send": "250000", "/users/track": "3000"} {
		r := call(t, e.Handler(), "POST", path, key, `{}`)
		if got := r.header.Get("X-RateLimit-Limit"); got != want {
			t.Errorf("%s limit %s, want %s", path, got, want)
		}
	}
	r := post(t, e.Handler(), "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","broadcast":true}`)
	if got := r.header.Get("X-RateLimit-Limit"); got != "250" {
		t.Errorf("broadcast limit %s", got)
	}
}

func TestGeneratedUsers(t *testing.T) {
	e, _ := newEmu(t, func(s *Seed) { s.Settings.GeneratedUsers = 100_000 }, Options{})
	h := e.Handler()
	// generated users exist without costing state
	if d := delivery(t, e, "load-000042"); d["exists"] != true || obj(d["attributes"])["email"] != "load-000042@example.com" {
		t.Errorf("load-000042 %v", d)
	}
	if _, ok := e.Deliveries("load-100000"); ok {
		t.Errorf("load-100000 exists with 100000 generated users (0..99999)")
	}
	if n := len(e.AllDeliveries().([]Delivery)); n != 0 {
		t.Errorf("AllDeliveries has %d entries before any call", n)
	}
	var rs []string
	for i := 0; i < 50; i++ {
		rs = append(rs, fmt.Sprintf(`{"external_user_id":"load-%06d","trigger_properties":{"i":%d}}`, i*1000, i))
	}
	r := post(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","recipients":[`+strings.Join(rs, ",")+`]}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	attrs := `{"attributes":` + objects(75, `{"external_id":"load-%06d","points":{"inc":1}}`) + `}`
	if r := post(t, h, "/users/track", attrs); r.body["attributes_processed"] != float64(75) {
		t.Fatalf("%s", r.raw)
	}
	all := e.AllDeliveries().([]Delivery)
	if len(all) != 124 { // 50 messaged + 75 tracked, load-000000 in both
		t.Errorf("AllDeliveries has %d users, want 124", len(all))
	}
	d := delivery(t, e, "load-049000")
	if m := list(d, "messages"); len(m) != 1 || obj(obj(m[0])["properties"])["i"] != float64(49) {
		t.Errorf("load-049000 %v", d)
	}
	if d := delivery(t, e, ids.GeneratedBrazeID(42)); d["external_id"] != "load-000042" {
		t.Errorf("by braze id %v", d)
	}
	if d := delivery(t, e, "load-000077@example.com"); d["external_id"] != "load-000077" {
		t.Errorf("by email %v", d)
	}
	if u := e.Users(); len(u) != 100_004 || u[4].ExternalID != "load-000000" || u[4].CustomAttributes["sessionm_user_id"] != "00000000-32f5-11ef-8000-000000000000" {
		t.Errorf("Users: %d, first generated %+v", len(u), u[4])
	}
	if u, _ := e.Segment("All users"); len(u) != 100_004 {
		t.Errorf("All users: %d", len(u))
	}
}

func TestBroadcastToGenerated(t *testing.T) {
	e, _ := newEmu(t, func(s *Seed) { s.Settings.GeneratedUsers = 1000 }, Options{})
	r := post(t, e.Handler(), "/canvas/trigger/send", `{"canvas_id":"`+pointsCanvas+`","broadcast":true,"context":{"k":"v"}}`)
	if r.status != 201 {
		t.Fatalf("%s", r.raw)
	}
	if n := len(e.AllDeliveries().([]Delivery)); n != 1004 {
		t.Errorf("broadcast reached %d users, want 1004", n)
	}
}

func TestReset(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	post(t, h, "/campaigns/trigger/send", okCampaign)
	post(t, h, "/users/track", `{"attributes":[{"external_id":"u-7","first_name":"x"},{"external_id":"u-1002","first_name":"Samuel"}]}`)
	e.Reset()
	if n := len(e.AllDeliveries().([]Delivery)); n != 0 {
		t.Errorf("%d deliveries after Reset", n)
	}
	if _, ok := e.Deliveries("u-7"); ok {
		t.Errorf("created user survived Reset")
	}
	if d := delivery(t, e, "u-1002"); obj(d["attributes"])["first_name"] != "Sam" {
		t.Errorf("u-1002 after Reset %v", d)
	}
}

func TestNotSentBeforeCreation(t *testing.T) {
	// a trigger for an unknown user, then /users/track creates the user:
	// Deliveries shows the earlier not_sent record on the user
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	post(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","recipients":[{"external_user_id":"u-8"}]}`)
	post(t, h, "/users/track", `{"attributes":[{"external_id":"u-8","first_name":"Late"}]}`)
	d := delivery(t, e, "u-8")
	if d["exists"] != true || len(list(d, "not_sent")) != 1 {
		t.Errorf("u-8 %v", d)
	}
	if n := len(e.AllDeliveries().([]Delivery)); n != 1 {
		t.Errorf("AllDeliveries lists u-8 %d times", n)
	}
}

func TestErrorBody(t *testing.T) {
	// braze.md §1: fatal {"message": ..., "errors": [...]}
	tests := []struct {
		status        int
		code, message string
		want          string
	}{
		{429, "", "Rate Limited", `{"message":"Rate Limited"}`},
		{503, "injected", "", `{"message":"Service Unavailable","errors":["injected"]}`},
	}
	for _, tt := range tests {
		if got := string(ErrorBody(tt.status, tt.code, tt.message)); got != tt.want {
			t.Errorf("ErrorBody(%d, %q, %q) = %s, want %s", tt.status, tt.code, tt.message, got, tt.want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	e, _ := newEmu(t, func(s *Seed) { s.Settings.GeneratedUsers = 2000 }, Options{})
	h := e.Handler()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				var rs []string
				for j := 0; j < 50; j++ {
					rs = append(rs, fmt.Sprintf(`{"external_user_id":"load-%06d","trigger_properties":{"g":%d}}`, (g*50+j)%2000, g))
				}
				req := httptest.NewRequest("POST", "/campaigns/trigger/send", strings.NewReader(`{"campaign_id":"`+winterCampaign+`","recipients":[`+strings.Join(rs, ",")+`]}`))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 201 {
					t.Errorf("status %d %s", w.Code, w.Body)
					return
				}
				req = httptest.NewRequest("POST", "/users/track", strings.NewReader(`{"attributes":[{"external_id":"load-000001","n":{"inc":1}}],"events":[{"external_id":"u-1001","name":"e","time":"2026-01-01T00:00:00Z"}]}`))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				w = httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if i%10 == 0 {
					_, _ = json.Marshal(e.AllDeliveries())
				}
				_, _ = e.Deliveries("load-000001")
			}
		}(g)
	}
	wg.Wait()
	if got := obj(delivery(t, e, "load-000001")["attributes"])["n"]; got != float64(200) {
		t.Errorf("n = %v after 200 increments", got)
	}
}

// FuzzHandler: no body makes the handler panic or answer outside Braze's
// envelope.
func FuzzHandler(f *testing.F) {
	for _, b := range []string{okCampaign, `{"attributes":[{"external_id":"u-1001","x":{"inc":1}}]}`,
		`{"canvas_id":"` + pointsCanvas + `","broadcast":true,"context":{"a":[1,{"b":null}]}}`,
		`{"events":[{"external_id":"u-1","name":"e","time":"2026-01-01T00:00:00Z","properties":{"a":"b"}}],"purchases":[{"email":"x@y.z","product_id":"p","currency":"EUR","price":1,"time":"2026-01-01"}]}`} {
		for _, p := range []uint8{0, 1, 2} {
			f.Add(p, b)
		}
	}
	seed, err := ReadSeed(seedPath)
	if err != nil {
		f.Fatal(err)
	}
	seed.Settings.GeneratedUsers = 100
	e, err := New(seed, Options{Limits: Limits{Trigger: Limit{Requests: 1 << 30}, Broadcast: Limit{Requests: 1 << 30}, UsersTrack: Limit{Requests: 1 << 30}}})
	if err != nil {
		f.Fatal(err)
	}
	paths := []string{"/campaigns/trigger/send", "/canvas/trigger/send", "/users/track"}
	f.Fuzz(func(t *testing.T, p uint8, body string) {
		req := httptest.NewRequest("POST", paths[int(p)%3], strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.Handler().ServeHTTP(w, req)
		var env map[string]any
		if json.Unmarshal(w.Body.Bytes(), &env) != nil || env["message"] == nil {
			t.Fatalf("%d %q for %q", w.Code, w.Body, body)
		}
		if w.Code != 201 && w.Code != 400 {
			t.Fatalf("status %d for %q", w.Code, body)
		}
	})
}
