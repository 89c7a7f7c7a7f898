package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	seedPath  = "../../../examples/sandbox/braze.yaml"
	key       = "sandbox-braze-key"
	trackOnly = "sandbox-braze-track-only"

	winterCampaign = "9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"
	springCampaign = "3e5a7c9e-1b2d-4f6a-8c0e-2d4f6a8c0e1b"
	stoppedCamp    = "4f6b8d0f-2c3e-4a7b-9d1f-3e5a7b9d1f2c"
	pointsCanvas   = "2c4e6a8b-1d3f-4a5b-9c7d-e1f2a3b4c5d6"
	pausedCanvas   = "5a7c9e1b-3d5f-4b8c-8e2a-4f6b8c0e2a3d"
	archivedCanvas = "6b8d0f2c-4e6a-4c9d-9f3b-5a7c9d1f3b4e"
	claireBrazeID  = "5f3e1a2b9c8d7e6f5a4b3c23"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 20, 14, 3, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newEmu builds an emulator from the shipped seed, changed by mutate.
func newEmu(t *testing.T, mutate func(*Seed), opts Options) (*Emulator, *clock) {
	t.Helper()
	seed, err := ReadSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&seed)
	}
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	e, err := New(seed, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r result) message() string { s, _ := r.body["message"].(string); return s }

// errorsText joins the "errors" entries for substring checks.
func (r result) errorsText() string {
	b, _ := json.Marshal(r.body["errors"])
	return string(b)
}

// call sends one request; auth "" sends no Authorization header.
func call(t *testing.T, h http.Handler, method, path, auth, body string, hdr ...string) result {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := result{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if err := json.Unmarshal(w.Body.Bytes(), &res.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return res
}

func post(t *testing.T, h http.Handler, path, body string) result {
	t.Helper()
	return call(t, h, http.MethodPost, path, key, body)
}

// delivery reads Deliveries(id) as its JSON shape.
func delivery(t *testing.T, e *Emulator, id string) map[string]any {
	t.Helper()
	d, ok := e.Deliveries(id)
	if !ok {
		t.Fatalf("Deliveries(%q): unknown", id)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func list(m map[string]any, k string) []any { l, _ := m[k].([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
