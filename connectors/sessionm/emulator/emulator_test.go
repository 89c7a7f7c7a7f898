package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestShippedSeedLoads(t *testing.T) {
	s := shippedSeed(t)
	e, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// contract: the users of examples/ (Ana es-ES, Sam, Seán, Claire without external id)
	want := map[string]string{ana: "u-1001", sam: "u-1002", sean: "u-1004", claire: ""}
	if len(s.Users) != len(want) {
		t.Fatalf("%d users", len(s.Users))
	}
	for _, u := range s.Users {
		if ext, ok := want[u.ID]; !ok || ext != u.ExternalID {
			t.Errorf("user %s external id %q", u.ID, u.ExternalID)
		}
	}
	// contract: credentials are those of examples/sandbox.env
	env, err := readEnv("../../../examples/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range e.Banner() {
		if env[b.Name] != b.Value {
			t.Errorf("banner %s = %q, sandbox.env has %q", b.Name, b.Value, env[b.Name])
		}
	}
}

func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env, nil
}

func TestBanner(t *testing.T) {
	e, _ := newEmu(t, Options{})
	want := []BannerLine{
		{"SESSIONM_API_KEY", "sandbox-core-key"},
		{"SESSIONM_API_SECRET", "sandbox-core-secret"},
		{"SESSIONM_CONNECT_AUTH", "c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0"},
		{"SESSIONM_RETAILER_ID", retailer},
	}
	if got := e.Banner(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Banner() = %v", got)
	}
}

func TestErrorBody(t *testing.T) {
	tests := []struct {
		status        int
		code, message string
		want          string
	}{
		// sessionm.md §7 (A): 429 with code rate_limited (a default message is added)
		{429, "rate_limited", "", `{"status":"error","errors":{"code":"rate_limited","message":"too many requests; retry after the Retry-After delay"}}`},
		// sessionm.md §1 (O): the observed internal error body
		{500, "internal_server_error", "", `{"status":"error","errors":{"code":"internal_server_error","message":"internal server error"}}`},
		{503, "not_available", "down for \"maintenance\"", `{"status":"error","errors":{"code":"not_available","message":"down for \"maintenance\""}}`},
		{400, "custom_code", "", `{"status":"error","errors":{"code":"custom_code"}}`},
		// an empty code is the one the emulator answers with that status (A)
		{429, "", "", `{"status":"error","errors":{"code":"rate_limited","message":"too many requests; retry after the Retry-After delay"}}`},
		{500, "", "", `{"status":"error","errors":{"code":"internal_server_error","message":"internal server error"}}`},
		{502, "", "", `{"status":"error","errors":{"code":"internal_server_error","message":"internal server error"}}`},
		{503, "", "", `{"status":"error","errors":{"code":"not_available","message":"service not available"}}`},
		{404, "", "", `{"status":"error","errors":{"code":"not_found","message":"not found"}}`},
		{401, "", "", `{"status":"error","errors":{"code":"invalid_auth_token","message":"invalid or missing authorization"}}`},
		{422, "", "bad", `{"status":"error","errors":{"code":"validation","message":"bad"}}`},
		{400, "", "", `{"status":"error","errors":{"code":"argument_error","message":"invalid request"}}`},
	}
	for _, tt := range tests {
		if got := string(ErrorBody(tt.status, tt.code, tt.message)); got != tt.want {
			t.Errorf("ErrorBody(%d, %q, %q) = %s", tt.status, tt.code, tt.message, got)
		}
	}
}

func TestDeliveries(t *testing.T) {
	e, c := newEmu(t, Options{}, func(s *Seed) { s.Settings.GeneratedUsers = 100_000 })
	// task 5: nothing changed yet → empty list
	if all := e.AllDeliveries().([]Delivery); len(all) != 0 {
		t.Fatalf("AllDeliveries at start: %v", all)
	}
	// task 5: Deliveries takes the SessionM id, the external id or the email; the seed wallet shows
	for _, who := range []string{ana, "u-1001", "ana.garcia@example.com"} {
		d, ok := e.Deliveries(who)
		if !ok {
			t.Fatalf("Deliveries(%q) not found", who)
		}
		dd := d.(Delivery)
		if dd.UserID != ana || *dd.ExternalID != "u-1001" || len(dd.Wallet) != 3 || len(dd.Tags) != 0 ||
			dd.Wallet[0].UserOfferID != "7e4d2c1b-0a9f-4e8d-b7c6-a5b4c3d2e1f0" || dd.Wallet[0].Name != "20% off winter coats" {
			t.Fatalf("Deliveries(%q) = %+v", who, dd)
		}
	}
	if _, ok := e.Deliveries("nobody"); ok {
		t.Fatal("unknown user found")
	}
	if d, ok := e.Deliveries("load-000042"); !ok || d.(Delivery).UserID != GeneratedUserID(42) || len(d.(Delivery).Wallet) != 0 {
		t.Fatalf("generated user: %v %v", d, ok)
	}

	core(e, req{path: tagsPath(sam), body: `{"tags":["a","a2"]}`})
	core(e, req{path: tagsPath(sam), body: `{"tags":["a"]}`})
	core(e, req{path: tagsPath(sam), body: `{"tags":["soon"],"ttl":60}`})
	core(e, req{path: extTagsPath("load-000007"), body: `{"tags":["load"],"ttl":3600}`})
	connect(e, issue(offersBody(`,"offer_id":"`+winter+`"`)))
	c.Advance(time.Minute) // "soon" expires: only live tags are shown

	all := e.AllDeliveries().([]Delivery)
	if len(all) != 3 || all[0].UserID != ana || all[1].UserID != sam || all[2].UserID != GeneratedUserID(7) {
		t.Fatalf("AllDeliveries: %+v", all)
	}
	if !reflect.DeepEqual(all[1].Tags, map[string]TagState{"a": {Count: 2}, "a2": {Count: 1}}) {
		t.Fatalf("sam's tags: %+v", all[1].Tags)
	}
	if all[2].Tags["load"].ExpiresAt != "2026-11-29 11:00:00" || *all[2].ExternalID != "load-000007" {
		t.Fatalf("generated: %+v", all[2])
	}
	if len(all[0].Wallet) != 4 || all[0].Wallet[3].OfferID != winter || all[0].Wallet[3].AcquireDate != "2026-11-29T10:00:00Z" {
		t.Fatalf("ana's wallet: %+v", all[0].Wallet)
	}
	// the JSON shape the sandbox serves
	data, _ := json.Marshal(all[1])
	if !strings.Contains(string(data), `"tags":{"a":{"count":2},"a2":{"count":1}},"wallet":[{"user_offer_id":"0b7a5f4e-3d2c-4b1a-8f9e-d8c7b6a5e4f3"`) {
		t.Fatalf("JSON: %s", data)
	}

	// Reset: back to the seed
	e.Reset()
	if all := e.AllDeliveries().([]Delivery); len(all) != 0 {
		t.Fatalf("after Reset: %+v", all)
	}
	if d, _ := e.Deliveries(sean); !reflect.DeepEqual(d.(Delivery).Tags, map[string]TagState{"vip": {Count: 2}}) {
		t.Fatalf("seeded tags after Reset: %+v", d)
	}
	if d, _ := e.Deliveries(ana); len(d.(Delivery).Wallet) != 3 {
		t.Fatalf("wallet after Reset: %+v", d)
	}
}

func TestRateLimit(t *testing.T) {
	// sessionm.md §7 (A): token bucket per api key, 429 rate_limited with Retry-After
	e, c := newEmu(t, Options{RateLimit: 2})
	q := req{path: tagsPath(ana), body: `{"tags":["a"]}`}
	for i := range 2 {
		if r := core(e, q); r.status != 200 {
			t.Fatalf("call %d: %d", i, r.status)
		}
	}
	r := core(e, q)
	if r.status != 429 || errorCode(t, r) != "rate_limited" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("third call: %d %s %v", r.status, r.body, r.header)
	}
	// Connect has its own bucket
	if r := connect(e, getOffers(offersBody(""))); r.status != 200 {
		t.Fatalf("connect: %d", r.status)
	}
	c.Advance(500 * time.Millisecond) // one token back at 2/s
	if r := core(e, q); r.status != 200 {
		t.Fatalf("after refill: %d %s", r.status, r.body)
	}
	if r := core(e, q); r.status != 429 {
		t.Fatalf("bucket not empty: %d", r.status)
	}
	// a limited call changed nothing: 3 counted calls
	if d, _ := e.Deliveries(ana); d.(Delivery).Tags["a"].Count != 3 {
		t.Fatalf("count %+v", d)
	}
	e.Reset() // Reset refills the buckets
	if r := core(e, q); r.status != 200 {
		t.Fatalf("after Reset: %d", r.status)
	}
	// off by default
	e2, _ := newEmu(t, Options{})
	for range 50 {
		if r := core(e2, q); r.status != 200 {
			t.Fatalf("limited by default: %d", r.status)
		}
	}
	// a burst bigger than the rate
	e3, _ := newEmu(t, Options{RateLimit: 1, RateBurst: 5})
	for i := range 5 {
		if r := core(e3, q); r.status != 200 {
			t.Fatalf("burst call %d: %d", i, r.status)
		}
	}
	if r := core(e3, q); r.status != 429 {
		t.Fatalf("after burst: %d", r.status)
	}
}

func TestIdempotency(t *testing.T) {
	key := map[string]string{"Idempotency-Key": "k1"}
	tests := []struct {
		name  string
		opts  Options
		calls []req
		want  int // count of tag "a" afterwards
		last  int // status of the last call
	}{
		// sessionm.md §7 (A): a repeated key answers the stored response without effect
		{"repeat replays", Options{Idempotency: true}, []req{
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
		}, 1, 200},
		// sessionm.md §7 (C): without a key every counter POST increments
		{"no key increments", Options{Idempotency: true}, []req{
			{path: tagsPath(ana), body: `{"tags":["a"]}`},
			{path: tagsPath(ana), body: `{"tags":["a"]}`},
		}, 2, 200},
		// sessionm.md §7 (A): off by default, the header is ignored
		{"off by default", Options{}, []req{
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
		}, 2, 200},
		// sessionm.md §7 (A): the same key with another body is refused
		{"other body", Options{Idempotency: true}, []req{
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
			{path: tagsPath(ana), body: `{"tags":["a","b"]}`, header: key},
		}, 1, 422},
		// keys are per path: another user is another request
		{"other path", Options{Idempotency: true}, []req{
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
			{path: tagsPath(sam), body: `{"tags":["a"]}`, header: key},
		}, 1, 200},
		// stored responses are bounded; the oldest key is forgotten
		{"capacity", Options{Idempotency: true, IdempotencyKeys: 1}, []req{
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: map[string]string{"Idempotency-Key": "k2"}},
			{path: tagsPath(ana), body: `{"tags":["a"]}`, header: key},
		}, 3, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, tt.opts)
			var first, r resp
			for i, q := range tt.calls {
				r = core(e, q)
				if i == 0 {
					first = r
				}
			}
			if r.status != tt.last {
				t.Fatalf("last status %d, want %d: %s", r.status, tt.last, r.body)
			}
			if tt.name == "repeat replays" && (r.body != first.body || r.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "") {
				t.Fatalf("replay %s %v differs from %s", r.body, r.header, first.body)
			}
			if d, _ := e.Deliveries(ana); d.(Delivery).Tags["a"].Count != tt.want {
				t.Fatalf("count %d, want %d", d.(Delivery).Tags["a"].Count, tt.want)
			}
		})
	}
	// Connect: a repeated issue returns the same user_offer_id and issues once
	e, _ := newEmu(t, Options{Idempotency: true})
	q := issue(offersBody(`,"offer_id":"` + winter + `"`))
	q.header = key
	a, b := connect(e, q), connect(e, q)
	if a.body != b.body {
		t.Fatalf("issue replay differs:\n%s\n%s", a.body, b.body)
	}
	if d, _ := e.Deliveries(ana); len(d.(Delivery).Wallet) != 4 {
		t.Fatalf("issued %d times", len(d.(Delivery).Wallet)-3)
	}
}

func TestMaxBody(t *testing.T) {
	e, _ := newEmu(t, Options{MaxBody: 64})
	big := `{"tags":["` + strings.Repeat("x", 100) + `"]}`
	// contract: bigger bodies get the API's error shape with 413, with or without Content-Length
	for _, hideLength := range []bool{false, true} {
		var body io.Reader = strings.NewReader(big)
		if hideLength {
			body = io.MultiReader(body)
		}
		r := httptest.NewRequest("POST", tagsPath(ana), body)
		if hideLength {
			r.ContentLength = -1
		}
		r.Header.Set("Authorization", coreAuth)
		w := httptest.NewRecorder()
		e.Core().ServeHTTP(w, r)
		res := resp{w.Code, w.Body.String(), w.Header()}
		if res.status != 413 || errorCode(t, res) != "request_too_large" {
			t.Fatalf("hidden length %v: %d %s", hideLength, res.status, res.body)
		}
	}
	if r := connect(e, getOffers(offersBody(`,"culture":"`+strings.Repeat("x", 100)+`"`))); r.status != 413 {
		t.Fatalf("connect: %d", r.status)
	}
	if r := core(e, req{path: tagsPath(ana), body: `{"tags":["a"]}`}); r.status != 200 {
		t.Fatalf("small body: %d", r.status)
	}
	// the default is 1 MiB
	e2, _ := newEmu(t, Options{})
	huge := `{"tags":["a"],"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	if r := core(e2, req{path: tagsPath(ana), body: huge}); r.status != 413 {
		t.Fatalf("default limit: %d", r.status)
	}
}

// The Options assumptions are reachable from the seed's settings, for
// sandbox users without Go (rate_limit, rate_burst, idempotency, max_body);
// a non-zero Options field wins.
func TestSettingsFromSeed(t *testing.T) {
	tag := req{path: tagsPath(ana), body: `{"tags":["a"]}`}
	limited := func(s *Seed) { s.Settings.RateLimit, s.Settings.RateBurst = 1, 2 }
	calls := func(e *Emulator, n int) (statuses []int) {
		for range n {
			statuses = append(statuses, core(e, tag).status)
		}
		return statuses
	}
	// sessionm.md §7 (A): rate_limit 1/s with a burst of 2 from the seed
	e, c := newEmu(t, Options{}, limited)
	if got := calls(e, 3); got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("seed rate_limit: %v", got)
	}
	c.Advance(time.Second)
	if got := calls(e, 2); got[0] != 200 || got[1] != 429 {
		t.Fatalf("seed rate_limit after 1 s: %v", got)
	}
	// Options win: a higher rate (a token back after 10 ms, with the
	// seed's burst), and a bigger burst
	e, c = newEmu(t, Options{RateLimit: 100}, limited)
	calls(e, 3)
	c.Advance(10 * time.Millisecond)
	if got := calls(e, 2); got[0] != 200 || got[1] != 429 {
		t.Fatalf("Options.RateLimit does not win: %v", got)
	}
	e, _ = newEmu(t, Options{RateBurst: 3}, limited)
	if got := calls(e, 4); got[2] != 200 || got[3] != 429 {
		t.Fatalf("Options.RateBurst does not win: %v", got)
	}

	// sessionm.md §7 (A): idempotency from the seed
	e, _ = newEmu(t, Options{}, func(s *Seed) { s.Settings.Idempotency = true })
	q := tag
	q.header = map[string]string{"Idempotency-Key": "k"}
	core(e, q)
	if r := core(e, q); r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("seed idempotency: %v %s", r.header, r.body)
	}

	// max_body from the seed; Options.MaxBody wins
	big := req{path: tagsPath(ana), body: `{"tags":["` + strings.Repeat("x", 200) + `"]}`}
	e, _ = newEmu(t, Options{}, func(s *Seed) { s.Settings.MaxBody = 100 })
	if r := core(e, big); r.status != 413 || !strings.Contains(r.body, "larger than 100 bytes") {
		t.Fatalf("seed max_body: %d %s", r.status, r.body)
	}
	e, _ = newEmu(t, Options{MaxBody: 1000}, func(s *Seed) { s.Settings.MaxBody = 100 })
	if r := core(e, big); r.status != 200 {
		t.Fatalf("Options.MaxBody does not win: %d %s", r.status, r.body)
	}

	// the keys read from YAML
	s, err := ParseSeed("x.yaml", []byte(minimalSeed+"  rate_limit: 2.5\n  rate_burst: 4\n  idempotency: true\n  max_body: 2048\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Settings; st.RateLimit != 2.5 || st.RateBurst != 4 || !st.Idempotency || st.MaxBody != 2048 {
		t.Fatalf("settings %+v", st)
	}
	// the shipped seed writes every key down with its default
	if st := shippedSeed(t).Settings; st.RateLimit != 0 || st.RateBurst != 0 || st.Idempotency || st.MaxBody != 0 || st.IncludeRedeemed || st.ConnectDatetimeFormat != "iso" {
		t.Fatalf("shipped settings %+v", st)
	}
	src, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rate_limit:", "rate_burst:", "idempotency:", "max_body:", "include_redeemed:", "errors_as_200:", "connect_datetime_format:"} {
		if !strings.Contains(string(src), "\n  "+k) {
			t.Errorf("examples/sandbox/sessionm.yaml does not document settings.%s", k)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection reset") }

// contract: malformed requests get the envelope, never a panic, and the
// handler keeps serving.
func TestMalformed(t *testing.T) {
	e, _ := newEmu(t, Options{}, func(s *Seed) { s.Settings.GeneratedUsers = 10 })
	bodies := []string{
		"", " ", "null", "true", "0", `"x"`, "[]", "{", "}", "{}", "[{}]", `{"a":}`, "\xff\xfe\x00", "{\"tags\":[\"\xff\"]}",
		`{"tags":{}}`, `{"tags":[[]]}`, `{"tags":[{}]}`, `{"tags":[null,1,true]}`, `{"tags":["a"],"ttl":[]}`, `{"tags":["a"],"ttl":{}}`,
		`{"tags":["a"],"ttl":"1"}`, `{"tags":["a"],"ttl":99999999999999999999999}`, `{"tags":["a"],"ttl":-0}`,
		`{"user":null}`, `{"user":[]}`, `{"user":{"email":[]}}`, `{"user":{"phone_numbers":[1]}}`, `{"user":{"user_profile":"x"}}`,
		`{"retailer_id":null,"user_id":null}`, `{"retailer_id":[],"user_id":{}}`, `{"retailer_id":"` + retailer + `","user_id":5}`,
		`{"retailer_id":"` + retailer + `","user_id":"` + ana + `","skip":1e3}`,
		`{"retailer_id":"` + retailer + `","user_id":"` + ana + `","take":99999999999999999999}`,
		`{"retailer_id":"` + retailer + `","user_id":"` + ana + `","offer_id":["x"]}`,
		`{"retailer_id":"` + retailer + `","user_id":"` + ana + `","offer_id":"x","quantity":-9223372036854775808}`,
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		`{"tags":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		`{"tags":["a"]}{"tags":["b"]}`,
	}
	targets := []struct {
		h      func(*Emulator, req) resp
		method string
		path   string
	}{
		{core, "POST", tagsPath(ana)},
		{core, "POST", extTagsPath("load-000001")},
		{core, "POST", coreBase + "/users"},
		{core, "PUT", coreBase + "/users/" + ana},
		{connect, "POST", offersBase + "/get_user_offers"},
		{connect, "POST", offersBase + "/acquisition/issue"},
	}
	for _, tg := range targets {
		for i, b := range bodies {
			r := tg.h(e, req{method: tg.method, path: tg.path, body: b})
			if r.status == 200 {
				continue // a few bodies are valid for some endpoint ({"retailer_id":...,"skip":1e3} is not)
			}
			if r.status < 400 || r.status >= 500 {
				t.Errorf("%s %s body %d: status %d", tg.method, tg.path, i, r.status)
			}
			errorCode(t, r)
		}
	}
	// a body that fails while being read
	r := httptest.NewRequest("POST", tagsPath(ana), errReader{})
	r.Header.Set("Authorization", coreAuth)
	w := httptest.NewRecorder()
	e.Core().ServeHTTP(w, r)
	if w.Code != 422 || !strings.Contains(w.Body.String(), `"argument_error"`) {
		t.Errorf("read error: %d %s", w.Code, w.Body.String())
	}
	// odd paths and methods
	for _, q := range []req{
		{method: "GET", path: "/priv/v1/apps/a%2Fb/users/x"},
		{method: "GET", path: coreBase + "/users/%2F"},
		{method: "OPTIONS", path: tagsPath(ana)},
		{method: "HEAD", path: coreBase + "/users/" + ana},
		{method: "GET", path: coreBase + "//users"},
		{method: "GET", path: coreBase + "/users/" + ana + "/tags/extra"},
	} {
		if r := core(e, q); r.status < 400 || r.status >= 500 {
			t.Errorf("%s %s: %d", q.method, q.path, r.status)
		}
	}
	// still serving
	if r := core(e, req{path: tagsPath(ana), body: `{"tags":["after"]}`}); r.status != 200 {
		t.Fatalf("after the storm: %d %s", r.status, r.body)
	}
	if r := connect(e, getOffers(offersBody(""))); r.status != 200 {
		t.Fatalf("connect after the storm: %d", r.status)
	}
}

// Handlers are safe for concurrent use (run with -race); counts add up.
func TestConcurrent(t *testing.T) {
	e, _ := newEmu(t, Options{RateLimit: 1e9, Idempotency: true}, func(s *Seed) { s.Settings.GeneratedUsers = 1000 })
	const workers, each = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				core(e, req{path: tagsPath(ana), body: `{"tags":["hot"]}`})
				core(e, req{path: extTagsPath(GeneratedExternalID(w*each + i)), body: `{"tags":["x"],"ttl":60}`})
				if i%10 == 0 {
					connect(e, issue(offersBody(`,"offer_id":"`+winter+`"`)))
					connect(e, getOffers(offersBody("")))
					core(e, req{method: "PUT", path: coreBase + "/users/" + sam, body: fmt.Sprintf(`{"user":{"first_name":"S%d"}}`, i)})
					e.Deliveries(ana)
					e.AllDeliveries()
				}
			}
		}()
	}
	wg.Wait()
	d, _ := e.Deliveries(ana)
	if got := d.(Delivery).Tags["hot"].Count; got != workers*each {
		t.Fatalf("count %d, want %d", got, workers*each)
	}
	if got := len(d.(Delivery).Wallet); got != 3+workers*each/10 {
		t.Fatalf("wallet %d", got)
	}
	if got := len(e.AllDeliveries().([]Delivery)); got != 1+workers*each {
		t.Fatalf("AllDeliveries %d", got)
	}
}

// The engine's load test posts ~10,000 tag requests/s to Core; this
// measures the handler alone.
func BenchmarkTagPost(b *testing.B) {
	e, _ := newEmu(b, Options{}, func(s *Seed) { s.Settings.GeneratedUsers = 100_000 })
	h := e.Core()
	var n sync.Mutex
	next := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		for pb.Next() {
			n.Lock()
			i := next % 100_000
			next++
			n.Unlock()
			r := httptest.NewRequest("POST", tagsPath(GeneratedUserID(i)), strings.NewReader(`{"tags":["braze_test","spring_promo"],"ttl":2592000}`))
			r.Header.Set("Authorization", coreAuth)
			h.ServeHTTP(w, r)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}

type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }
