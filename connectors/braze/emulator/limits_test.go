package emulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unlimited lifts every rate limit, for tests that send thousands of calls.
var unlimited = Options{Limits: Limits{
	Trigger: Limit{Requests: 1 << 30}, Broadcast: Limit{Requests: 1 << 30}, UsersTrack: Limit{Requests: 1 << 30},
}}

// send posts body to path with the full key and returns the status, without
// decoding the answer.
func send(t testing.TB, h http.Handler, path, body string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// Per-user histories keep their newest 1,000 entries and count the dropped
// ones (A, emulator.go): they grew without bound under load tests before.
func TestHistoryCaps(t *testing.T) {
	e, _ := newEmu(t, nil, unlimited)
	h := e.Handler()

	// messages: 1,005 broadcasts to all users (a Canvas without segment)
	for i := range maxHistory + 5 {
		if s := send(t, h, "/canvas/trigger/send", fmt.Sprintf(`{"canvas_id":"%s","broadcast":true,"context":{"n":%d}}`, pointsCanvas, i)); s != 201 {
			t.Fatalf("broadcast %d: %d", i, s)
		}
	}
	// events and purchases: 14 calls of 75 for u-1001 (1,050 each)
	for c := range 14 {
		var evs, ps []string
		for i := range MaxTrackObjects {
			n := c*MaxTrackObjects + i
			evs = append(evs, fmt.Sprintf(`{"external_id":"u-1001","name":"e%d","time":"2026-01-01T00:00:00Z"}`, n))
			ps = append(ps, fmt.Sprintf(`{"external_id":"u-1001","product_id":"p%d","currency":"EUR","price":1,"time":"2026-01-01T00:00:00Z"}`, n))
		}
		if s := send(t, h, "/users/track", `{"events":[`+strings.Join(evs, ",")+`],"purchases":[`+strings.Join(ps, ",")+`]}`); s != 201 {
			t.Fatalf("track %d: %d", c, s)
		}
	}
	// not_sent: 1,002 triggers of a stopped campaign to u-1001
	for range maxHistory + 2 {
		send(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+stoppedCamp+`","recipients":[{"external_user_id":"u-1001"}]}`)
	}
	d := delivery(t, e, "u-1001")
	for _, c := range []struct {
		list, dropped string
		n             float64
		first, last   string // a field of the oldest and newest entry kept
		field         string
	}{
		{"messages", "messages_dropped", 5, "5", fmt.Sprint(maxHistory + 4), "n"},
		{"events", "events_dropped", 50, "e50", "e1049", "name"},
		{"purchases", "purchases_dropped", 50, "p50", "p1049", "product_id"},
		{"not_sent", "not_sent_dropped", 2, "", "", ""},
	} {
		l := list(d, c.list)
		if len(l) != maxHistory || d[c.dropped] != c.n {
			t.Errorf("%s: %d kept, %v dropped; want %d and %v", c.list, len(l), d[c.dropped], maxHistory, c.n)
			continue
		}
		if c.field == "" {
			continue
		}
		get := func(v any) string {
			m := obj(v)
			if c.list == "messages" {
				m = obj(m["properties"])
			}
			return fmt.Sprint(m[c.field])
		}
		if get(l[0]) != c.first || get(l[len(l)-1]) != c.last {
			t.Errorf("%s: oldest kept %s, newest %s; want %s and %s", c.list, get(l[0]), get(l[len(l)-1]), c.first, c.last)
		}
	}
	// nothing dropped: no *_dropped keys
	d2 := delivery(t, e, "u-1002")
	for _, k := range []string{"events_dropped", "purchases_dropped", "not_sent_dropped"} {
		if _, ok := d2[k]; ok {
			t.Errorf("u-1002 has %s: %v", k, d2[k])
		}
	}

	// an unknown identifier's not_sent records are capped too, and so is
	// the list once the user exists and gets records of its own
	for range maxHistory + 1 {
		send(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","recipients":[{"external_user_id":"ghost"}]}`)
	}
	if d := delivery(t, e, "ghost"); len(list(d, "not_sent")) != maxHistory || d["not_sent_dropped"] != 1.0 || d["exists"] != false {
		t.Errorf("ghost: %d not_sent, dropped %v", len(list(d, "not_sent")), d["not_sent_dropped"])
	}
	send(t, h, "/users/track", `{"attributes":[{"external_id":"ghost","first_name":"Boo"}]}`)
	for range 5 {
		send(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+stoppedCamp+`","recipients":[{"external_user_id":"ghost"}]}`)
	}
	d = delivery(t, e, "ghost")
	ns := list(d, "not_sent")
	if len(ns) != maxHistory || d["not_sent_dropped"] != 6.0 || !strings.Contains(fmt.Sprint(obj(ns[len(ns)-1])["reason"]), "stopped") {
		t.Errorf("ghost after creation: %d not_sent, dropped %v", len(ns), d["not_sent_dropped"])
	}
}

// The store remembers not_sent records for at most maxMissing unknown
// identifiers, forgetting the one recorded first.
func TestMissingBound(t *testing.T) {
	seed, err := ReadSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(&seed)
	ns := NotSent{Reason: "x"}
	for i := range maxMissing + 5 {
		s.noteMissing(fmt.Sprintf("id-%d", i), ns)
		if i == 10 {
			s.noteMissing("id-0", ns) // a known identifier is not new: nothing forgotten
		}
	}
	if len(s.missing) != maxMissing || len(s.missingOrder)-s.missingHead != maxMissing {
		t.Fatalf("%d identifiers, %d in order", len(s.missing), len(s.missingOrder)-s.missingHead)
	}
	for i := range 5 {
		if s.missing[fmt.Sprintf("id-%d", i)] != nil {
			t.Errorf("id-%d kept", i)
		}
	}
	if m := s.missing["id-5"]; m == nil || m.notSent.len() != 1 {
		t.Errorf("id-5: %+v", m)
	}
	// the order list is compacted, not grown forever
	for i := range 3 * maxMissing {
		s.noteMissing(fmt.Sprintf("more-%d", i), ns)
	}
	if len(s.missing) != maxMissing || cap(s.missingOrder) > 4*maxMissing {
		t.Errorf("%d identifiers, order list of cap %d", len(s.missing), cap(s.missingOrder))
	}
}

// A broadcast that records nothing (a paused Canvas) visits no user, and
// one to users whose lists are full allocates nothing per user.
func TestBroadcastAllocations(t *testing.T) {
	const pausedAll = "paused-all-users"
	e, _ := newEmu(t, func(s *Seed) {
		s.Settings.GeneratedUsers = 100_000
		s.Canvases = append(s.Canvases, Canvas{ID: pausedAll, Name: "Paused, everyone", Status: "paused"})
	}, unlimited)
	h := e.Handler()
	paused := `{"canvas_id":"` + pausedAll + `","broadcast":true}`
	if a := testing.AllocsPerRun(3, func() { send(t, h, "/canvas/trigger/send", paused) }); a > 500 {
		t.Errorf("a paused broadcast to 100,004 users made %.0f allocations", a)
	}
	if n := len(e.AllDeliveries().([]Delivery)); n != 0 {
		t.Errorf("a paused broadcast touched %d users", n)
	}

	e, _ = newEmu(t, func(s *Seed) { s.Settings.GeneratedUsers = 1000 }, unlimited)
	h = e.Handler()
	active := `{"canvas_id":"` + pointsCanvas + `","broadcast":true}`
	for range maxHistory {
		send(t, h, "/canvas/trigger/send", active)
	}
	if a := testing.AllocsPerRun(3, func() { send(t, h, "/canvas/trigger/send", active) }); a > 500 {
		t.Errorf("a broadcast to 1,004 users with full lists made %.0f allocations", a)
	}
	if d := delivery(t, e, "load-000999"); len(list(d, "messages")) != maxHistory || d["messages_dropped"] != 4.0 {
		t.Errorf("load-000999: %d messages, %v dropped", len(list(d, "messages")), d["messages_dropped"])
	}
}

// The time-zone cache keeps valid names only, at most maxTZCache: names
// come from clients.
func TestTimeZoneCache(t *testing.T) {
	tzCache.Lock()
	saved := tzCache.valid
	tzCache.valid = nil
	tzCache.Unlock()
	t.Cleanup(func() {
		tzCache.Lock()
		tzCache.valid = saved
		tzCache.Unlock()
	})
	size := func() int {
		tzCache.RLock()
		defer tzCache.RUnlock()
		return len(tzCache.valid)
	}
	for i := range 2000 {
		if validTimeZone(fmt.Sprintf("Mars/Crater_%d", i)) {
			t.Fatal("an invalid zone is valid")
		}
	}
	for _, bad := range []string{"", "Local", "../etc/passwd", "europe/madrid"} {
		if validTimeZone(bad) {
			t.Errorf("%q is valid", bad)
		}
	}
	if n := size(); n != 0 {
		t.Fatalf("%d invalid names cached", n)
	}
	for range 2 {
		for _, ok := range []string{"Europe/Madrid", "America/Chicago", "UTC", "Etc/GMT+5"} {
			if !validTimeZone(ok) {
				t.Errorf("%q is invalid", ok)
			}
		}
	}
	if n := size(); n != 4 {
		t.Fatalf("%d names cached, want 4", n)
	}
	// full: valid names are still answered, and not added
	tzCache.Lock()
	for i := len(tzCache.valid); i < maxTZCache; i++ {
		tzCache.valid[fmt.Sprintf("filler/%d", i)] = struct{}{}
	}
	tzCache.Unlock()
	if !validTimeZone("Asia/Tokyo") || size() != maxTZCache {
		t.Fatalf("full cache: %d names", size())
	}
}

// The Options assumptions are reachable from the seed's settings, for
// sandbox users without Go; a non-zero Options field wins.
func TestSettingsFromSeed(t *testing.T) {
	campaign := `{"campaign_id":"` + winterCampaign + `","trigger_properties":{"p":"` + strings.Repeat("x", 100) + `"},"recipients":[{"external_user_id":"u-1001"}]}`
	plain := func(h http.Handler, body string) int {
		req := httptest.NewRequest(http.MethodPost, "/campaigns/trigger/send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "text/plain")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	tests := []struct {
		name  string
		set   Settings
		opts  Options
		check func(h http.Handler) int
		want  int
	}{
		{"campaign_success_status", Settings{CampaignSuccessStatus: 200}, Options{}, func(h http.Handler) int { return send(t, h, "/campaigns/trigger/send", okCampaign) }, 200},
		{"CampaignSuccessStatus wins", Settings{CampaignSuccessStatus: 200}, Options{CampaignSuccessStatus: 202}, func(h http.Handler) int { return send(t, h, "/campaigns/trigger/send", okCampaign) }, 202},
		{"content_type_status 415", Settings{ContentTypeStatus: 415}, Options{}, func(h http.Handler) int { return plain(h, okCampaign) }, 415},
		{"content_type_status -1", Settings{ContentTypeStatus: -1}, Options{}, func(h http.Handler) int { return plain(h, okCampaign) }, 201},
		{"ContentTypeStatus wins", Settings{ContentTypeStatus: -1}, Options{ContentTypeStatus: 415}, func(h http.Handler) int { return plain(h, okCampaign) }, 415},
		{"properties_max_bytes", Settings{PropertiesMaxBytes: 50}, Options{}, func(h http.Handler) int { return send(t, h, "/campaigns/trigger/send", campaign) }, 400},
		{"PropertiesMaxBytes wins", Settings{PropertiesMaxBytes: 50}, Options{PropertiesMaxBytes: 500}, func(h http.Handler) int { return send(t, h, "/campaigns/trigger/send", campaign) }, 201},
		{"max_body", Settings{MaxBody: 100}, Options{}, func(h http.Handler) int { return send(t, h, "/campaigns/trigger/send", campaign) }, 413},
		{"MaxBody wins", Settings{MaxBody: 100}, Options{MaxBody: 1000}, func(h http.Handler) int { return send(t, h, "/campaigns/trigger/send", campaign) }, 201},
		{"defaults", Settings{}, Options{}, func(h http.Handler) int { return plain(h, okCampaign) }, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, func(s *Seed) {
				s.Settings.CampaignSuccessStatus = tt.set.CampaignSuccessStatus
				s.Settings.ContentTypeStatus = tt.set.ContentTypeStatus
				s.Settings.PropertiesMaxBytes = tt.set.PropertiesMaxBytes
				s.Settings.MaxBody = tt.set.MaxBody
			}, tt.opts)
			if got := tt.check(e.Handler()); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}

	// the keys read from YAML, and are checked
	const keys = "settings:\n  api_keys:\n    - {key: k, permissions: [users.track]}\n"
	s, err := ParseSeed("x.yaml", []byte(keys+"  campaign_success_status: 200\n  content_type_status: 415\n  properties_max_bytes: 1024\n  max_body: 4096\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Settings; st.CampaignSuccessStatus != 200 || st.ContentTypeStatus != 415 || st.PropertiesMaxBytes != 1024 || st.MaxBody != 4096 {
		t.Fatalf("settings %+v", st)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"  campaign_success_status: 404\n", "x.yaml:4: settings.campaign_success_status: must be a success status"},
		{"  content_type_status: 200\n", "x.yaml:4: settings.content_type_status: must be a 4xx status"},
		{"  properties_max_bytes: -1\n", "x.yaml:4: settings.properties_max_bytes: must be a number of bytes"},
		{"  max_body: -5\n", "x.yaml:4: settings.max_body: must be a number of bytes"},
	} {
		if _, err := ParseSeed("x.yaml", []byte(keys+bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
	// the shipped seed writes every key down with its default
	src, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"campaign_success_status: 0", "content_type_status: 0", "properties_max_bytes: 0", "max_body: 0"} {
		if !strings.Contains(string(src), "\n  "+k+"\n") {
			t.Errorf("examples/sandbox/braze.yaml does not document settings.%s", k)
		}
	}
}

// RateLimitHeaders reports the pool an answer to the path would report,
// without counting a request (braze.md §1: every response carries them).
func TestRateLimitHeaders(t *testing.T) {
	e, clk := newEmu(t, nil, Options{Limits: Limits{
		Trigger:    Limit{Requests: 10, Window: time.Minute},
		Broadcast:  Limit{Requests: 5},
		UsersTrack: Limit{Requests: 7, Window: 3 * time.Second},
	}})
	h := e.Handler()
	send(t, h, "/campaigns/trigger/send", okCampaign)
	send(t, h, "/campaigns/trigger/send", okCampaign)
	send(t, h, "/users/track", `{"attributes":[]}`)
	minuteEnd := strconv.FormatInt(clk.Now().Truncate(time.Minute).Add(time.Minute).Unix(), 10)
	trackEnd := strconv.FormatInt(clk.Now().Truncate(3*time.Second).Add(3*time.Second).Unix(), 10)
	for _, tt := range []struct {
		path, limit, remaining, reset string
	}{
		{"/campaigns/trigger/send", "10", "8", minuteEnd},
		{"/canvas/trigger/send", "10", "8", minuteEnd},
		{"/users/track", "7", "6", trackEnd},
		{"/nope", "10", "8", minuteEnd},
		{"", "10", "8", minuteEnd},
	} {
		for range 3 { // asking again counts nothing
			got := e.RateLimitHeaders(tt.path)
			if got.Get("X-RateLimit-Limit") != tt.limit || got.Get("X-RateLimit-Remaining") != tt.remaining || got.Get("X-RateLimit-Reset") != tt.reset || len(got) != 3 {
				t.Fatalf("%q: %v; want %s %s %s", tt.path, got, tt.limit, tt.remaining, tt.reset)
			}
			if _, ok := got["X-Ratelimit-Limit"]; !ok {
				t.Fatalf("%q: header names not canonical: %v", tt.path, got)
			}
		}
	}
	// the same headers as the emulator's own answers: a 404 counts nothing
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/nope", nil))
	want := e.RateLimitHeaders("/nope")
	for k := range want {
		if w.Header().Get(k) != want.Get(k) {
			t.Errorf("%s: answer %q, RateLimitHeaders %q", k, w.Header().Get(k), want.Get(k))
		}
	}
	// the next real call is the third of the window
	if r := post(t, h, "/campaigns/trigger/send", okCampaign); r.header.Get("X-RateLimit-Remaining") != "7" {
		t.Errorf("remaining after RateLimitHeaders: %s", r.header.Get("X-RateLimit-Remaining"))
	}
	// a new window shows in the headers without a request
	clk.Advance(time.Minute)
	if got := e.RateLimitHeaders("/campaigns/trigger/send"); got.Get("X-RateLimit-Remaining") != "10" {
		t.Errorf("next window: %v", got)
	}
}

// Seed errors keep naming file:line now that engine/yamlpos parses the
// file and finds the lines.
func TestSeedErrorLines(t *testing.T) {
	const keys = "settings:\n  api_keys:\n    - {key: k, permissions: [users.track]}\n"
	dir := t.TempDir()
	for i, tt := range []struct{ yaml, want string }{
		{"settings: {api_keys: [}\n", ":1: invalid YAML"},
		{keys + "users:\n  - external_id: a\n    attributes:\n      interests:\n        - 1\n      country: Spain\n", `:9: users[0].attributes.country: 'country' must be`},
		{keys + "segments:\n  - id: s\n    name: S\n    external_ids:\n      - nobody\n", `:8: segments[0].external_ids[0]: no user has external_id "nobody"`},
		{keys + "users:\n  - external_id: a\n    attributes: {\"odd name\": 1, \"$x\": 2}\n", `:6: users[0].attributes["$x"]: attribute name '$x' must not start with '$'`},
		{keys + "---\nusers: []\n", ":4: a pipeline file holds one YAML document"},
	} {
		path := filepath.Join(dir, fmt.Sprintf("s%d.yaml", i))
		if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSeed(path); err == nil || !strings.Contains(err.Error(), path+tt.want) {
			t.Errorf("%q: %v, want %q", tt.yaml, err, tt.want)
		}
	}
}
