package connected

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is an httptest server that counts the requests it gets.
type server struct {
	*httptest.Server
	hits atomic.Int32
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	return newNumberingServer(t, func(_ int, w http.ResponseWriter, r *http.Request) { h(w, r) })
}

// newNumberingServer gives the handler the number of each request (1-based).
func newNumberingServer(t *testing.T, h func(n int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(int(s.hits.Add(1)), w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// anyPort is a Live fetcher that may reach httptest servers.
func anyPort() *Live {
	l := NewLive(nil)
	l.AnyPort = true
	return l
}

// slow answers body after d, or gives up when the client goes away (so
// that closing the server does not wait for it).
func slow(d time.Duration, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			io.WriteString(w, body)
		case <-r.Context().Done():
		}
	}
}

// clock is a settable clock for withClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// recorder is a Fetcher that answers 200 "ok" and records the calls.
type recorder struct {
	mu    sync.Mutex
	calls []Request
}

func (r *recorder) Fetch(_ context.Context, req Request) (Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, req)
	return Response{Status: http.StatusOK, Header: http.Header{}, Body: []byte("ok")}, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func get(u string) Request { return Request{Method: http.MethodGet, URL: u} }

func TestTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"no headers in time", slow(time.Second, "late")},
		{"the body is late", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(time.Second):
				io.WriteString(w, `true}`)
			case <-r.Context().Done():
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.handler)
			c := NewClient(anyPort(), withTimeout(150*time.Millisecond))
			start := time.Now()
			out := c.Do(t.Context(), get(srv.URL), Options{})
			if elapsed := time.Since(start); elapsed > 900*time.Millisecond {
				t.Errorf("the call took %s; the timeout is 150ms", elapsed)
			}
			if out.Response != nil {
				t.Errorf("Response = %d %q; want none (nothing is inserted)", out.Response.Status, out.Response.Body)
			}
			if out.Abort != "" {
				t.Errorf("Abort = %q without :retry", out.Abort)
			}
			if !strings.Contains(out.Call.Error, "no answer within 150ms") || !strings.Contains(out.Call.Error, "timeout") {
				t.Errorf("Call.Error = %q; want it to say the 150ms timeout", out.Call.Error)
			}
			if out.Call.Status != 0 || out.Call.Bytes != 0 || out.Call.Attempts != 1 {
				t.Errorf("Call = %+v; want no status, no bytes, 1 attempt", out.Call)
			}
			// A timed-out answer is not cached: the next call asks again.
			c.Do(t.Context(), get(srv.URL), Options{})
			if got := srv.hits.Load(); got != 2 {
				t.Errorf("server hit %d times after two calls; a timeout must not be cached", got)
			}
		})
	}
}

// TestDefaultTimeoutIsBrazes2s runs against real time: an answer after
// 1.5 s is in time, one after 2.3 s is not. The two run in parallel.
func TestDefaultTimeoutIsBrazes2s(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		delay  time.Duration
		answer bool
	}{
		{"answer after 1.5 s", 1500 * time.Millisecond, true},
		{"answer after 2.3 s", 2300 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, slow(tc.delay, "in time"))
			out := NewClient(anyPort()).Do(t.Context(), get(srv.URL), Options{})
			if tc.answer {
				if out.Response == nil || string(out.Response.Body) != "in time" || out.Call.Error != "" {
					t.Fatalf("Outcome = %+v; want the answer", out)
				}
				return
			}
			if out.Response != nil {
				t.Fatalf("Response = %q; want none after Braze's 2 s", out.Response.Body)
			}
			if !strings.Contains(out.Call.Error, "no answer within 2s") {
				t.Errorf("Call.Error = %q; want the 2s timeout", out.Call.Error)
			}
		})
	}
}

func TestSizeCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		size int
		ok   bool
	}{
		{"exactly MaxBody", MaxBody, true},
		{"MaxBody+1", MaxBody + 1, false},
		{"three times MaxBody", 3 * MaxBody, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Repeat("x", tc.size)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
			c := NewClient(anyPort())
			out := c.Do(t.Context(), get(srv.URL), Options{})
			if tc.ok {
				if out.Response == nil || len(out.Response.Body) != tc.size || out.Call.Bytes != tc.size || out.Call.Error != "" {
					t.Fatalf("Call = %+v; want the %d-byte answer", out.Call, tc.size)
				}
			} else {
				if out.Response != nil {
					t.Fatalf("Response of %d bytes; want none", len(out.Response.Body))
				}
				if want := fmt.Sprintf("larger than Braze's %d-byte limit", MaxBody); !strings.Contains(out.Call.Error, want) {
					t.Errorf("Call.Error = %q; want %q", out.Call.Error, want)
				}
			}
			// A GET in the limit is cached; an oversized one is not.
			again := c.Do(t.Context(), get(srv.URL), Options{})
			wantHits := int32(2)
			if tc.ok {
				wantHits = 1
			}
			if got := srv.hits.Load(); got != wantHits {
				t.Errorf("server hit %d times after two calls; want %d", got, wantHits)
			}
			if again.Call.Cached != tc.ok {
				t.Errorf("second call Cached = %v; want %v", again.Call.Cached, tc.ok)
			}
		})
	}
}

// cacheStep is one call of a cache scenario, at a time after the first.
type cacheStep struct {
	at     time.Duration
	method string
	path   string
	body   string
	opts   Options
	fetch  bool // the server is asked (else the answer comes from the cache)
	// from is the step (1-based) whose answer a cached step gets; 0: the
	// last step that fetched the same URL.
	from int
}

func TestCache(t *testing.T) {
	const age = time.Second
	tests := []struct {
		name   string
		status int
		steps  []cacheStep
	}{
		{"GET is cached for 300 s", 200, []cacheStep{
			{at: 0, fetch: true},
			{at: 299 * age},
			{at: 300 * age, fetch: true},
			{at: 301 * age},
		}},
		{"GET is cached by URL", 200, []cacheStep{
			{at: 0, fetch: true},
			{at: 1 * age, path: "/other", fetch: true},
			{at: 2 * age, path: "/?q=1", fetch: true},
			{at: 3 * age},
		}},
		{":no_cache is neither stored nor read", 200, []cacheStep{
			{at: 0, opts: Options{NoCache: true}, fetch: true},
			{at: 1 * age, opts: Options{NoCache: true}, fetch: true},
			{at: 2 * age, fetch: true}, // nothing was stored
			{at: 3 * age, opts: Options{NoCache: true}, fetch: true},
			{at: 4 * age, from: 3},
		}},
		{":no_cache wins over :cache_max_age", 200, []cacheStep{
			{at: 0, opts: Options{NoCache: true, CacheMaxAge: 600 * age}, fetch: true},
			{at: 1 * age, opts: Options{NoCache: true, CacheMaxAge: 600 * age}, fetch: true},
		}},
		{"POST is not cached by default", 200, []cacheStep{
			{at: 0, method: "POST", body: "a=1", fetch: true},
			{at: 1 * age, method: "POST", body: "a=1", fetch: true},
		}},
		{"POST with :cache_max_age is cached by URL alone", 200, []cacheStep{
			{at: 0, method: "POST", body: "a=1", opts: Options{CacheMaxAge: 600 * age}, fetch: true},
			{at: 1 * age, method: "POST", body: "a=2", opts: Options{CacheMaxAge: 600 * age}},
			{at: 599 * age, method: "POST", body: "a=3", opts: Options{CacheMaxAge: 600 * age}},
			{at: 600 * age, method: "POST", body: "a=4", opts: Options{CacheMaxAge: 600 * age}, fetch: true},
		}},
		{"POST without :cache_max_age does not read the cache", 200, []cacheStep{
			{at: 0, method: "POST", opts: Options{CacheMaxAge: 600 * age}, fetch: true},
			{at: 1 * age, method: "POST", fetch: true},
		}},
		{":cache_max_age below 300 s counts as 300 s", 200, []cacheStep{
			{at: 0, opts: Options{CacheMaxAge: 60 * age}, fetch: true},
			{at: 60 * age, opts: Options{CacheMaxAge: 60 * age}},
			{at: 299 * age, opts: Options{CacheMaxAge: 60 * age}},
			{at: 300 * age, opts: Options{CacheMaxAge: 60 * age}, fetch: true},
		}},
		{":cache_max_age above 14400 s counts as 14400 s", 200, []cacheStep{
			{at: 0, opts: Options{CacheMaxAge: 86400 * age}, fetch: true},
			{at: 14399 * age, opts: Options{CacheMaxAge: 86400 * age}},
			{at: 14400 * age, opts: Options{CacheMaxAge: 86400 * age}, fetch: true},
		}},
		{":cache_max_age in the range is kept", 200, []cacheStep{
			{at: 0, opts: Options{CacheMaxAge: 3600 * age}, fetch: true},
			{at: 3599 * age, opts: Options{CacheMaxAge: 3600 * age}},
			{at: 3600 * age, opts: Options{CacheMaxAge: 3600 * age}, fetch: true},
		}},
		{"500 is not cached", 500, []cacheStep{{at: 0, fetch: true}, {at: 1 * age, fetch: true}}},
		{"404 is not cached", 404, []cacheStep{{at: 0, fetch: true}, {at: 1 * age, fetch: true}}},
		{"201 is cached", 201, []cacheStep{{at: 0, fetch: true}, {at: 1 * age}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newNumberingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, "answer %d to %s %s", n, r.Method, body)
			})
			clk := newClock()
			start := clk.now()
			c := NewClient(anyPort(), withClock(clk.now))
			answers := make([]string, len(tc.steps))
			lastFetch := map[string]string{}
			for i, s := range tc.steps {
				clk.set(start.Add(s.at))
				req := Request{Method: cmp.Or(s.method, http.MethodGet), URL: srv.URL + cmp.Or(s.path, "/")}
				if s.body != "" {
					req.Body = []byte(s.body)
				}
				before := srv.hits.Load()
				out := c.Do(t.Context(), req, s.opts)
				if out.Response == nil {
					t.Fatalf("step %d (+%s): no answer: %s", i, s.at, out.Call.Error)
				}
				fetched := srv.hits.Load() != before
				if fetched != s.fetch || out.Call.Cached == s.fetch {
					t.Fatalf("step %d (+%s %s %s %+v): fetched %v, Cached %v; want fetched %v",
						i, s.at, req.Method, req.URL, s.opts, fetched, out.Call.Cached, s.fetch)
				}
				body := string(out.Response.Body)
				answers[i] = body
				if s.fetch {
					lastFetch[req.URL] = body
					continue
				}
				want := lastFetch[req.URL]
				if s.from > 0 {
					want = answers[s.from-1]
				}
				if body != want {
					t.Errorf("step %d: cached answer %q; want %q", i, body, want)
				}
			}
		})
	}
}

func TestClearCache(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := NewClient(anyPort())
	c.Do(t.Context(), get(srv.URL), Options{})
	if out := c.Do(t.Context(), get(srv.URL), Options{}); !out.Call.Cached {
		t.Fatalf("second GET not cached: %+v", out.Call)
	}
	c.ClearCache()
	if out := c.Do(t.Context(), get(srv.URL), Options{}); out.Call.Cached {
		t.Fatalf("GET after ClearCache still cached: %+v", out.Call)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("server hit %d times; want 2", got)
	}
}

func TestClampedCacheAge(t *testing.T) {
	tests := []struct {
		in, want time.Duration
		changed  bool
	}{
		{time.Second, 300 * time.Second, true},
		{299 * time.Second, 300 * time.Second, true},
		{300 * time.Second, 300 * time.Second, false},
		{time.Hour, time.Hour, false},
		{14400 * time.Second, 14400 * time.Second, false},
		{14401 * time.Second, 14400 * time.Second, true},
	}
	for _, tc := range tests {
		got, changed := ClampedCacheAge(tc.in)
		if got != tc.want || changed != tc.changed {
			t.Errorf("ClampedCacheAge(%s) = %s, %v; want %s, %v", tc.in, got, changed, tc.want, tc.changed)
		}
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int // answers in order; the last one repeats
		closed   bool  // the server is gone: a network error
		retry    bool
		attempts int
		status   int  // of the answer returned; 0: none
		abort    bool // Outcome.Abort is set
	}{
		{"two 503 then 200", []int{503, 503, 200}, false, true, 3, 200, false},
		{"always 503 aborts after 1+MaxRetries", []int{503}, false, true, 1 + MaxRetries, 0, true},
		{"five 500 then 200 is the last chance", []int{500, 500, 500, 500, 500, 200}, false, true, 6, 200, false},
		{"429 is retried", []int{429, 200}, false, true, 2, 200, false},
		{"408 is retried", []int{408, 200}, false, true, 2, 200, false},
		{"502 is retried", []int{502, 200}, false, true, 2, 200, false},
		{"400 is final", []int{400}, false, true, 1, 400, false},
		{"404 is final", []int{404}, false, true, 1, 404, false},
		{"a network error is retried", nil, true, true, 1 + MaxRetries, 0, true},
		{"without :retry a 503 is the answer", []int{503}, false, false, 1, 503, false},
		{"without :retry a network error inserts nothing", nil, true, false, 1, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newNumberingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				status := tc.statuses[min(n, len(tc.statuses))-1]
				w.WriteHeader(status)
				fmt.Fprintf(w, "attempt %d: %d", n, status)
			})
			if tc.closed {
				srv.Close()
			}
			var mu sync.Mutex
			var waits []int
			c := NewClient(anyPort(), withBackoff(func(_ context.Context, attempt int) error {
				mu.Lock()
				waits = append(waits, attempt)
				mu.Unlock()
				return nil
			}))
			u := srv.URL + "/points"
			out := c.Do(t.Context(), get(u), Options{Retry: tc.retry, NoCache: true})
			if out.Call.Attempts != tc.attempts {
				t.Errorf("Attempts = %d; want %d", out.Call.Attempts, tc.attempts)
			}
			if !tc.closed && int(srv.hits.Load()) != tc.attempts {
				t.Errorf("server hit %d times; want %d", srv.hits.Load(), tc.attempts)
			}
			if len(waits) != tc.attempts-1 {
				t.Errorf("backoff before retries %v; want one before each of the %d retries", waits, tc.attempts-1)
			}
			for i, w := range waits {
				if w != i+1 {
					t.Errorf("backoff %d was called with attempt %d", i, w)
				}
			}
			switch {
			case tc.status == 0 && out.Response != nil:
				t.Errorf("Response = %d %q; want none", out.Response.Status, out.Response.Body)
			case tc.status != 0 && out.Response == nil:
				t.Errorf("no Response (%s); want %d", out.Call.Error, tc.status)
			case tc.status != 0:
				if out.Response.Status != tc.status || out.Call.Status != tc.status {
					t.Errorf("status %d (call %d); want %d", out.Response.Status, out.Call.Status, tc.status)
				}
				if want := fmt.Sprintf("attempt %d: %d", tc.attempts, tc.status); string(out.Response.Body) != want {
					t.Errorf("body %q; want %q (the last attempt's)", out.Response.Body, want)
				}
			}
			if tc.abort {
				if !strings.Contains(out.Abort, u) || !strings.Contains(out.Abort, fmt.Sprintf("%d times", tc.attempts)) {
					t.Errorf("Abort = %q; want it to name %s and %d attempts", out.Abort, u, tc.attempts)
				}
				if out.Call.Error == "" {
					t.Error("Call.Error is empty for an aborted call")
				}
			} else if out.Abort != "" {
				t.Errorf("Abort = %q; want none", out.Abort)
			}
			if tc.closed && out.Call.Error == "" {
				t.Error("Call.Error is empty for a network error")
			}
		})
	}
}

func TestRetryAbortNamesTheStatus(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c := NewClient(anyPort(), withBackoff(func(context.Context, int) error { return nil }))
	out := c.Do(t.Context(), get(srv.URL), Options{Retry: true})
	if !strings.Contains(out.Abort, "HTTP 503") || out.Call.Error != "HTTP 503" || out.Call.Status != 503 {
		t.Errorf("Abort = %q, Call = %+v; want HTTP 503 named", out.Abort, out.Call)
	}
}

func TestRetryStopsWhenTheBackoffIsCancelled(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c := NewClient(anyPort(), withBackoff(func(context.Context, int) error { return context.Canceled }))
	out := c.Do(t.Context(), get(srv.URL), Options{Retry: true})
	if out.Call.Attempts != 1 || srv.hits.Load() != 1 {
		t.Errorf("Attempts = %d, hits %d; want 1 when the wait is cancelled", out.Call.Attempts, srv.hits.Load())
	}
}

func TestShortBackoff(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := shortBackoff(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("shortBackoff on a cancelled context = %v; want context.Canceled", err)
	}
	start := time.Now()
	if err := shortBackoff(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("the second retry waited %s; want 100ms", d)
	}
}

func TestBasicAuth(t *testing.T) {
	creds := func(name string) (string, string, bool) {
		if name == "loyalty_api" {
			return "api-user", "p@ss:word", true
		}
		return "", "", false
	}
	tests := []struct {
		name    string
		opts    []ClientOption
		cred    string
		auth    string // the Authorization header the server gets
		wantErr string
	}{
		{"known credential", []ClientOption{WithCredentials(creds)}, "loyalty_api",
			"Basic " + base64.StdEncoding.EncodeToString([]byte("api-user:p@ss:word")), ""},
		{"unknown credential", []ClientOption{WithCredentials(creds)}, "braze-deleted.v2",
			"", `no credential named "braze-deleted.v2"`},
		{"no credentials at all", nil, "loyalty_api", "", `no credential named "loyalty_api"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got atomic.Value
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { got.Store(r.Header.Get("Authorization")) })
			req := Request{Method: http.MethodGet, URL: srv.URL, Header: http.Header{"X-Caller": {"kept"}}}
			out := NewClient(anyPort(), tc.opts...).Do(t.Context(), req, Options{BasicAuth: tc.cred})
			if tc.wantErr != "" {
				if srv.hits.Load() != 0 {
					t.Fatalf("the call was made (%d requests) without its credential", srv.hits.Load())
				}
				if out.Response != nil || out.Call.Attempts != 0 {
					t.Errorf("Outcome = %+v; want no answer and no attempt", out)
				}
				env := CredentialEnv(tc.cred)
				if !strings.Contains(out.Call.Error, tc.wantErr) || !strings.Contains(out.Call.Error, env+"=") {
					t.Errorf("Call.Error = %q; want %q and the variable %s to set", out.Call.Error, tc.wantErr, env)
				}
				return
			}
			if out.Response == nil {
				t.Fatalf("no answer: %s", out.Call.Error)
			}
			if got.Load() != tc.auth {
				t.Errorf("Authorization = %q; want %q", got.Load(), tc.auth)
			}
			// The caller's request is not changed: its header may be
			// shared by other calls.
			if a := req.Header.Get("Authorization"); a != "" || len(req.Header) != 1 {
				t.Errorf("the caller's header was changed: %v", req.Header)
			}
		})
	}
}

// TestBasicAuthSharedHeader makes concurrent calls with one header map,
// as a caller reusing a request would; -race catches a write to it.
func TestBasicAuthSharedHeader(t *testing.T) {
	c := NewClient(&recorder{}, WithCredentials(func(string) (string, string, bool) { return "u", "p", true }))
	shared := http.Header{"Accept": {"*/*"}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := Request{Method: http.MethodGet, URL: fmt.Sprintf("https://api.example.com/%d", i), Header: shared}
			c.Do(t.Context(), req, Options{BasicAuth: "api"})
		}()
	}
	wg.Wait()
	if len(shared) != 1 {
		t.Errorf("the shared header was changed: %v", shared)
	}
}

func TestCredentialEnv(t *testing.T) {
	tests := map[string]string{
		"sessionm_connect": "BRAZE_CREDENTIAL_SESSIONM_CONNECT",
		"my-api.v2":        "BRAZE_CREDENTIAL_MY_API_V2",
		"Loyalty API 1":    "BRAZE_CREDENTIAL_LOYALTY_API_1",
	}
	for in, want := range tests {
		if got := CredentialEnv(in); got != want {
			t.Errorf("CredentialEnv(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestNotHTTP(t *testing.T) {
	for _, u := range []string{
		"",
		"ftp://files.example.com/points.json",
		"file:///etc/passwd",
		"mailto:ana@example.com",
		"javascript:alert(1)",
		"/api/points",
		"api.example.com/points",
		"http:api.example.com/points",
		"https//api.example.com",
	} {
		t.Run(u, func(t *testing.T) {
			rec := &recorder{}
			out := NewClient(rec).Do(t.Context(), get(u), Options{Retry: true})
			if rec.count() != 0 {
				t.Fatalf("%d requests made for %q", rec.count(), u)
			}
			if out.Response != nil || out.Abort != "" || out.Call.Attempts != 0 {
				t.Errorf("Outcome = %+v; want nothing", out)
			}
			if want := fmt.Sprintf("%q is not an http:// or https:// URL", u); out.Call.Error != want {
				t.Errorf("Call.Error = %q; want %q", out.Call.Error, want)
			}
		})
	}
}

func TestCallRecord(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"points":120}`)
	})
	c := NewClient(anyPort())
	req := Request{Method: http.MethodPost, URL: srv.URL + "/points", Body: []byte("a=1")}
	want := Call{Method: "POST", URL: srv.URL + "/points", Status: 201, Bytes: 14, Attempts: 1}

	first := c.Do(t.Context(), req, Options{CacheMaxAge: 600 * time.Second})
	if first.Call.Millis <= 0 {
		t.Errorf("Millis = %v for a real fetch; want > 0", first.Call.Millis)
	}
	got := first.Call
	got.Millis = 0
	if got != want {
		t.Errorf("Call = %+v; want %+v", got, want)
	}

	second := c.Do(t.Context(), req, Options{CacheMaxAge: 600 * time.Second})
	want.Attempts, want.Cached = 0, true
	if second.Call != want {
		t.Errorf("cached Call = %+v; want %+v (no attempt, 0 ms)", second.Call, want)
	}
}

// fetchFunc adapts a function to Fetcher.
type fetchFunc func(ctx context.Context, req Request) (Response, error)

func (f fetchFunc) Fetch(ctx context.Context, req Request) (Response, error) { return f(ctx, req) }

// When the preview's own deadline runs out (the playground bounds a
// render), the call reports that, not Braze's timeout. With :retry, a call
// that failed before it is shown aborting the message, saying so: shown
// sent with nothing inserted, a message Braze would abort looked fine (a
// QA run); one that had no answer at all before it is not said to fail
// (earlier calls took the preview's time).
func TestPreviewDeadlineIsNotBrazeTimeout(t *testing.T) {
	slow := fetchFunc(func(ctx context.Context, _ Request) (Response, error) {
		<-ctx.Done()
		return Response{}, ctx.Err()
	})
	failing := fetchFunc(func(context.Context, Request) (Response, error) { return Response{Status: 503}, nil })
	for name, tc := range map[string]struct {
		f     Fetcher
		abort string
	}{
		"during a call":    {slow, ""},
		"between attempts": {failing, "https://x.test/a failed once, and then the preview's time ran out before an answer came; Braze tries 6 times"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		c := NewClient(tc.f, withBackoff(func(ctx context.Context, _ int) error { <-ctx.Done(); return ctx.Err() }))
		out := c.Do(ctx, Request{Method: "GET", URL: "https://x.test/a"}, Options{Retry: true})
		cancel()
		if (tc.abort == "") != (out.Abort == "") || !strings.Contains(out.Abort, tc.abort) || out.Response != nil || out.Call.Error != "the preview's time ran out before an answer came" {
			t.Errorf("%s: %+v", name, out)
		}
	}
}

// Knobs for tests only: a clock for cache expiry, the wait before retry n
// (1-based), and Braze's 2 s timeout.
func withClock(now func() time.Time) ClientOption { return func(c *Client) { c.now = now } }

func withBackoff(sleep func(ctx context.Context, attempt int) error) ClientOption {
	return func(c *Client) { c.sleep = sleep }
}

func withTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// A password written in a connected_content URL is not shown in what the
// preview reports of the call, nor in the abort reason.
func TestCallURLHidesAPassword(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c := NewClient(anyPort(), withBackoff(func(context.Context, int) error { return nil }))
	withPassword := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1)
	out := c.Do(t.Context(), get(withPassword), Options{Retry: true})
	if out.Call.Attempts == 0 || strings.Contains(out.Call.URL, "s3cret") || strings.Contains(out.Abort, "s3cret") || !strings.Contains(out.Call.URL, "user:xxxxx@") {
		t.Errorf("Call = %+v, Abort = %q; want the password hidden", out.Call, out.Abort)
	}
	if out := c.Do(t.Context(), get("ftp://user:s3cret@example.com/"), Options{}); strings.Contains(out.Call.Error, "s3cret") {
		t.Errorf("refused URL shown as %q", out.Call.Error)
	}
}
