package emulator

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	seedPath   = "../../../examples/sandbox/sessionm.yaml"
	ana        = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002"
	sam        = "4d2e8f3b-32f5-11ef-b3e4-0242ac120002"
	claire     = "5e3f904c-32f5-11ef-a1c2-0242ac120003"
	sean       = "6f40a15d-32f5-11ef-b3e4-0242ac120002"
	retailer   = "8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b"
	coreBase   = "/priv/v1/apps/sandbox-core-key"
	offersBase = "/offers/api/2.0/offers"
	winter     = "1a2b3324-1da6-4e49-b921-afc386dabb60"
	coffee     = "2b3c4d5e-6f70-4811-9a2b-3c4d5e6f7081"
	doubleV1   = "4d5e6f70-8192-4a33-bc4d-5e6f708192a3"
	doubleV2   = "6f708192-a3b4-4c55-9e6f-708192a3b4c5"
	birthday   = "5e6f7081-92a3-4b44-8d5e-6f708192a3b4"
)

var (
	coreAuth    = "Basic " + base64.StdEncoding.EncodeToString([]byte("sandbox-core-key:sandbox-core-secret"))
	connectAuth = "Basic c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0" // examples/sandbox.env
	t0          = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
)

// clock is the injected clock; tests move it instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func shippedSeed(t testing.TB) Seed {
	t.Helper()
	s, err := ReadSeed(seedPath)
	if err != nil {
		t.Fatalf("shipped seed: %v", err)
	}
	return s
}

// newEmu builds an emulator on the shipped seed (changed by edit) with a
// clock at t0.
func newEmu(t testing.TB, opts Options, edit ...func(*Seed)) (*Emulator, *clock) {
	t.Helper()
	s := shippedSeed(t)
	for _, f := range edit {
		f(&s)
	}
	c := &clock{t: t0}
	opts.Now = c.Now
	e, err := New(s, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e, c
}

// req is one request; auth "" means the right credentials for the handler,
// "-" none, anything else the raw Authorization header.
type req struct {
	method, path, body, auth string
	header                   map[string]string
}

type resp struct {
	status int
	body   string
	header http.Header
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func serve(h http.Handler, defAuth string, q req) resp {
	var body io.Reader = http.NoBody
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	method := q.method
	if method == "" {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, q.path, body)
	switch q.auth {
	case "":
		r.Header.Set("Authorization", defAuth)
	case "-":
	default:
		r.Header.Set("Authorization", q.auth)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return resp{w.Code, w.Body.String(), w.Header()}
}

func core(e *Emulator, q req) resp    { return serve(e.Core(), coreAuth, q) }
func connect(e *Emulator, q req) resp { return serve(e.Connect(), connectAuth, q) }

// errorCode returns errors.code of an error envelope, failing the test when
// the body is not SessionM's envelope.
func errorCode(t testing.TB, r resp) string {
	t.Helper()
	m := r.json(t)
	if m["status"] != "error" {
		t.Fatalf("status = %v, want error; body %s", m["status"], r.body)
	}
	errs, ok := m["errors"].(map[string]any)
	if !ok {
		t.Fatalf("no errors object: %s", r.body)
	}
	code, _ := errs["code"].(string)
	if code == "" {
		t.Fatalf("no errors.code: %s", r.body)
	}
	return code
}

func tagsPath(user string) string   { return coreBase + "/users/" + user + "/tags" }
func extTagsPath(ext string) string { return coreBase + "/external/users/" + ext + "/tags" }
func getOffers(body string) req     { return req{path: offersBase + "/get_user_offers", body: body} }
func issue(body string) req         { return req{path: offersBase + "/acquisition/issue", body: body} }
func offersBody(extra string) string {
	return `{"retailer_id":"` + retailer + `","user_id":"` + ana + `"` + extra + `}`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
