package connected

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/sandbox"
)

func TestLiveDoesNotFollowRedirects(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			target := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "target") })
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/moved", status)
			})
			out := NewClient(anyPort()).Do(t.Context(), Request{Method: http.MethodPost, URL: srv.URL, Body: []byte("a=1")}, Options{})
			if out.Response == nil {
				t.Fatalf("no answer: %s", out.Call.Error)
			}
			if out.Response.Status != status || out.Call.Status != status {
				t.Errorf("status %d (call %d); want the %d itself", out.Response.Status, out.Call.Status, status)
			}
			if loc := out.Response.Header.Get("Location"); loc != target.URL+"/moved" {
				t.Errorf("Location = %q", loc)
			}
			if n := target.hits.Load(); n != 0 {
				t.Errorf("the redirect target was requested %d times", n)
			}
		})
	}
}

// roundTripper records the URLs it is asked for and answers 200.
type roundTripper struct {
	mu   sync.Mutex
	urls []string
}

func (rt *roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, r.URL.String())
	rt.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
}

func TestLivePorts(t *testing.T) {
	tests := []struct {
		url     string
		anyPort bool
		port    string // the port refused; "" when the call is made
	}{
		{"http://api.example.com/points", false, ""},
		{"https://api.example.com/points", false, ""},
		{"http://api.example.com:80/points", false, ""},
		{"https://api.example.com:443/points", false, ""},
		{"http://api.example.com:8080/points", false, "8080"},
		{"https://api.example.com:8443/points", false, "8443"},
		{"http://127.0.0.1:8081/sessionm/connect", false, "8081"},
		{"http://api.example.com:8080/points", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			rt := &roundTripper{}
			l := NewLive(rt)
			l.AnyPort = tc.anyPort
			out := NewClient(l).Do(t.Context(), get(tc.url), Options{})
			if tc.port == "" {
				if out.Response == nil || len(rt.urls) != 1 {
					t.Fatalf("the call was not made (%s)", out.Call.Error)
				}
				return
			}
			if len(rt.urls) != 0 {
				t.Fatalf("a request was made: %v", rt.urls)
			}
			want := "Braze connects only to ports 80 and 443, not " + tc.port
			if out.Response != nil || out.Call.Error != want {
				t.Errorf("Call.Error = %q; want %q", out.Call.Error, want)
			}
		})
	}
}

// TestLivePortWithAServer points a call at a listening server on a port
// Braze refuses (8080 when it is free) and checks that nothing arrives.
func TestLivePortWithAServer(t *testing.T) {
	srv := &server{}
	srv.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { srv.hits.Add(1) }))
	if ln, err := net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		srv.Listener.Close()
		srv.Listener = ln
	} else {
		t.Logf("port 8080 is taken (%v); using %s", err, srv.Listener.Addr())
	}
	srv.Start()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	out := NewClient(NewLive(nil)).Do(t.Context(), get(srv.URL+"/points"), Options{Retry: true})
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("the server on port %s got %d requests", port, n)
	}
	if out.Response != nil || !strings.Contains(out.Call.Error, "ports 80 and 443, not "+port) {
		t.Errorf("Outcome = %+v; want the ports-80-and-443 message", out)
	}
	if out.Call.Attempts != 1 || out.Abort != "" {
		t.Errorf("Attempts = %d, Abort = %q; a refused port is not retried", out.Call.Attempts, out.Abort)
	}
}

func TestLiveSendsTheRequest(t *testing.T) {
	type seen struct {
		method, ctype, body string
	}
	got := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Get("Content-Type"), string(b)}
		w.Header().Set("X-Answer", "yes")
		io.WriteString(w, "done")
	})
	req := Request{Method: http.MethodPost, URL: srv.URL, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1}`)}
	out := NewClient(anyPort()).Do(t.Context(), req, Options{})
	if out.Response == nil || string(out.Response.Body) != "done" || out.Response.Header.Get("X-Answer") != "yes" {
		t.Fatalf("Outcome = %+v", out)
	}
	if s := <-got; s != (seen{"POST", "application/json", `{"a":1}`}) {
		t.Errorf("the server got %+v", s)
	}
}

// The sandbox's Connect credentials and tenant (examples/sandbox.env).
const (
	connectAuth = "c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0" // sandbox-connect:sandbox-secret
	retailerID  = "8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b"
	anaID       = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002"
)

func newSandboxFetcher(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	return NewSandbox(sb.Handler())
}

func TestSandbox(t *testing.T) {
	t.Parallel()
	offers := `{"retailer_id":"` + retailerID + `","user_id":"` + anaID + `","skip":0,"take":1000}`
	connect := http.Header{"Authorization": {"Basic " + connectAuth}, "Content-Type": {"application/json"}}
	core := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("sandbox-core-key:sandbox-core-secret"))}}
	tests := []struct {
		name   string
		req    Request
		status int
		has    string // in the body
		err    []string
	}{
		{"the sandbox's own Connect path", Request{Method: "POST", URL: "http://127.0.0.1:8081/sessionm/connect/offers/api/2.0/offers/get_user_offers", Header: connect, Body: []byte(offers)},
			200, `"available_points"`, nil},
		{"Connect on another host", Request{Method: "POST", URL: "https://connect.example.com/offers/api/2.0/offers/get_user_offers", Header: connect, Body: []byte(offers)},
			200, `"available_points"`, nil},
		{"Connect under a base path", Request{Method: "POST", URL: "https://tenant.example.com/v2/offers/api/2.0/offers/get_user_offers", Header: connect, Body: []byte(offers)},
			200, `"available_points"`, nil},
		{"Connect without credentials", Request{Method: "POST", URL: "https://connect.example.com/offers/api/2.0/offers/get_user_offers", Body: []byte(offers)},
			401, "invalid_auth_token", nil},
		{"Core on another host", Request{Method: "GET", URL: "https://api.example.com/priv/v1/apps/sandbox-core-key/users/" + anaID, Header: core},
			200, anaID, nil},
		{"the sandbox's own Core path with a query", Request{Method: "GET", URL: "http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/" + anaID + "?user[fields]=x", Header: core},
			200, anaID, nil},
		{"an unknown host and path", Request{Method: "GET", URL: "https://weather.example.com/today?city=Madrid"},
			0, "", []string{"https://weather.example.com/today?city=Madrid", "fixtures"}},
	}
	f := newSandboxFetcher(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.Fetch(t.Context(), tc.req)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("answered %d %s; want an error", resp.Status, resp.Body)
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not hold %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || !strings.Contains(string(resp.Body), tc.has) {
				t.Errorf("answer %d %.300s; want %d with %s", resp.Status, resp.Body, tc.status, tc.has)
			}
		})
	}
}

// TestSandboxThroughTheClient makes a tag's call as the preview does:
// :basic_auth with the sandbox's Connect credential.
func TestSandboxThroughTheClient(t *testing.T) {
	t.Parallel()
	raw, _ := base64.StdEncoding.DecodeString(connectAuth)
	user, pass, _ := strings.Cut(string(raw), ":")
	c := NewClient(newSandboxFetcher(t), WithCredentials(func(name string) (string, string, bool) {
		return user, pass, name == "sessionm_connect"
	}))
	req := Request{Method: "POST", URL: "https://connect.example.com/offers/api/2.0/offers/get_user_offers",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(`{"retailer_id":"` + retailerID + `","user_id":"` + anaID + `","skip":0,"take":1000}`)}
	out := c.Do(t.Context(), req, Options{BasicAuth: "sessionm_connect"})
	if out.Response == nil || out.Response.Status != 200 {
		t.Fatalf("Outcome = %+v", out)
	}
	var body struct {
		Status  string
		Payload map[string]any
	}
	if err := json.Unmarshal(out.Response.Body, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body.Payload["available_points"].(float64); body.Status != "ok" || !ok {
		t.Errorf("no payload.available_points in %.300s", out.Response.Body)
	}
	if out.Call.Millis <= 0 || out.Call.Attempts != 1 || out.Call.Bytes != len(out.Response.Body) {
		t.Errorf("Call = %+v", out.Call)
	}
}

// writeFixtures makes a fixtures folder: files by name.
func writeFixtures(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const fixturesIndex = `# answers, first match wins
- method: POST
  url: https://api.example.com/offers
  body_contains: '"tier":"gold"'
  file: gold.json
- method: post
  url: https://api.example.com/offers
  file: offers.json
- url: https://api.example.com/users/*
  file: user.json
  headers: {X-Source: fixture}
- url: https://api.example.com/users/42
  body: never reached
- url: https://api.example.com/exact
  body: exact
- url: https://api.example.com/text
  status: 201
  body: hello
- url: https://api.example.com/typed
  file: plain.json
  headers: {Content-Type: text/plain}
- url: https://api.example.com/gone
  status: 404
  body: '{"error":"not found"}'
- url: https://api.example.com/slow
  delay: 1s
  body: late
- url: https://api.example.com/big
  file: big.txt
- url: https://api.example.com/limit
  file: limit.txt
`

func TestFixtures(t *testing.T) {
	t.Parallel()
	dir := writeFixtures(t, map[string]string{
		FixturesFile:  fixturesIndex,
		"gold.json":   `{"offers":["gold"]}`,
		"offers.json": `{"offers":[]}`,
		"user.json":   `{"id":"any"}`,
		"plain.json":  `{}`,
		"big.txt":     strings.Repeat("x", MaxBody+1),
		"limit.txt":   strings.Repeat("x", MaxBody),
	})
	f, err := LoadFixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, FixturesFile)
	tests := []struct {
		name    string
		req     Request
		status  int
		body    string
		headers map[string]string // "" : the header is absent
		err     []string          // in Call.Error
	}{
		{"body_contains picks the first", Request{Method: "POST", URL: "https://api.example.com/offers", Body: []byte(`{"tier":"gold"}`)},
			200, `{"offers":["gold"]}`, map[string]string{"Content-Type": "application/json"}, nil},
		{"another body falls through", Request{Method: "POST", URL: "https://api.example.com/offers", Body: []byte(`{"tier":"silver"}`)},
			200, `{"offers":[]}`, nil, nil},
		{"the method must match", get("https://api.example.com/offers"),
			0, "", nil, []string{"no fixture answers GET https://api.example.com/offers", index}},
		{"a prefix matches", get("https://api.example.com/users/7?fields=all"),
			200, `{"id":"any"}`, map[string]string{"X-Source": "fixture", "Content-Type": "application/json"}, nil},
		{"the first match wins over a later exact one", get("https://api.example.com/users/42"),
			200, `{"id":"any"}`, nil, nil},
		{"the prefix needs its slash", get("https://api.example.com/users"),
			0, "", nil, []string{"no fixture answers GET https://api.example.com/users;", index}},
		{"an exact URL", get("https://api.example.com/exact"), 200, "exact", nil, nil},
		{"an exact URL does not match a query", get("https://api.example.com/exact?x=1"),
			0, "", nil, []string{"GET https://api.example.com/exact?x=1"}},
		{"status and inline body", get("https://api.example.com/text"),
			201, "hello", map[string]string{"Content-Type": ""}, nil},
		{"a header overrides the JSON content type", get("https://api.example.com/typed"),
			200, "{}", map[string]string{"Content-Type": "text/plain"}, nil},
		{"an inline JSON body has no content type", get("https://api.example.com/gone"),
			404, `{"error":"not found"}`, map[string]string{"Content-Type": ""}, nil},
		{"a delay past the timeout", get("https://api.example.com/slow"),
			0, "", nil, []string{"no answer within 150ms"}},
		{"a file of MaxBody+1 bytes", get("https://api.example.com/big"),
			0, "", nil, []string{"larger than Braze's"}},
		{"a file of MaxBody bytes", get("https://api.example.com/limit"),
			200, strings.Repeat("x", MaxBody), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Only the delayed fixture meets the short timeout: under -race on
			// a busy machine, reading the 1 MB file can take longer than it.
			timeout := 10 * time.Second
			if tc.req.URL == "https://api.example.com/slow" {
				timeout = 150 * time.Millisecond
			}
			out := NewClient(f, withTimeout(timeout)).Do(t.Context(), tc.req, Options{})
			if tc.err != nil {
				if out.Response != nil {
					t.Fatalf("answered %d %q; want an error", out.Response.Status, out.Response.Body)
				}
				for _, w := range tc.err {
					if !strings.Contains(out.Call.Error, w) {
						t.Errorf("Call.Error %q does not hold %q", out.Call.Error, w)
					}
				}
				return
			}
			if out.Response == nil {
				t.Fatalf("no answer: %s", out.Call.Error)
			}
			if out.Response.Status != tc.status || string(out.Response.Body) != tc.body {
				t.Errorf("answer %d %.80q; want %d %.80q", out.Response.Status, out.Response.Body, tc.status, tc.body)
			}
			for k, v := range tc.headers {
				if got := out.Response.Header.Get(k); got != v {
					t.Errorf("%s = %q; want %q", k, got, v)
				}
			}
		})
	}
}

func TestFixturesEmptyIndex(t *testing.T) {
	dir := writeFixtures(t, map[string]string{FixturesFile: "# nothing yet\n"})
	f, err := LoadFixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(t.Context(), get("https://api.example.com/x")); err == nil || !strings.Contains(err.Error(), "no fixture answers GET https://api.example.com/x") {
		t.Errorf("error = %v", err)
	}
}

func TestFixturesIndexErrors(t *testing.T) {
	tests := []struct {
		name  string
		index string
		want  []string // in the error, after "DIR/fixtures.yaml"
	}{
		{"unknown key", "- url: https://a.example/x\n  body: ok\n- url: https://a.example/y\n  colour: red\n  body: ok\n",
			[]string{":4:3: ", `"colour"`, "body_contains"}},
		{"a value of the wrong type", "- url: https://a.example/x\n  body: ok\n- url: https://a.example/y\n  status: lots\n  body: ok\n",
			[]string{":4:11: ", "lots", "expected a whole number, got text (lots)"}},
		{"a delay that is no duration", "- url: https://a.example/x\n  delay: soon\n  body: ok\n",
			[]string{":2:10: ", "soon"}},
		{"a delay without a unit", "- url: https://a.example/x\n  delay: 2\n  body: ok\n",
			[]string{":2:10: ", "expected a duration such as 2s or 300ms, got a number (2)"}},
		{"a misspelt key", "- url: https://a.example/x\n  stauts: 404\n  body: ok\n",
			[]string{":2:3: ", `did you mean "status"?`}},
		{"missing url", "- url: https://a.example/x\n  body: ok\n- method: GET\n  file: a.json\n",
			[]string{":3:3: the fixture needs a url"}},
		{"neither file nor body", "- url: https://a.example/x\n",
			[]string{":1:3: the fixture needs a file"}},
		{"missing file", "- url: https://a.example/x\n  file: nope.json\n",
			[]string{":1:3: ", "nope.json", "no such file"}},
		{"not a list", "url: https://a.example/x\nfile: a.json\n",
			[]string{":1:1: a list of fixtures is needed"}},
		{"a key given twice", "- url: https://a.example/x\n  body: ok\n  url: https://a.example/y\n",
			[]string{":3:3: url is given twice"}},
		{"an item that is no mapping", "- url: https://a.example/x\n  body: ok\n- https://a.example/y\n",
			[]string{":3:3: a fixture is a mapping"}},
		{"no YAML", "- url: [\n",
			[]string{"yaml:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFixtures(t, map[string]string{FixturesFile: tc.index, "a.json": "{}"})
			_, err := LoadFixtures(dir)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, filepath.Join(dir, FixturesFile)) {
				t.Errorf("error %q does not start with the index file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not hold %q", msg, w)
				}
			}
		})
	}
}

func TestFixturesWithoutIndex(t *testing.T) {
	_, err := LoadFixtures(t.TempDir())
	if err == nil {
		t.Fatal("no error for a folder without fixtures.yaml")
	}
	for _, w := range []string{FixturesFile, "a fixtures folder holds", "method, url and file"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not hold %q", err, w)
		}
	}
}

// TestFinalErrorsAreNotRetried: a failure the same call meets again is
// not retried by :retry, nor does it abort the message.
func TestFinalErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	big := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", MaxBody+1)) })
	dir := writeFixtures(t, map[string]string{FixturesFile: "- url: https://api.example.com/x\n  body: ok\n"})
	fixtures, err := LoadFixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fetcher Fetcher
		url     string
		err     string
	}{
		{"an oversized answer", anyPort(), big.URL, "larger than Braze's"},
		{"a refused port", NewLive(nil), "http://api.example.com:8080/x", "ports 80 and 443"},
		{"no fixture", fixtures, "https://api.example.com/y", "no fixture answers"},
		{"no sandbox endpoint", newSandboxFetcher(t), "https://weather.example.com/today", "the sandbox has no endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			waits := 0
			c := NewClient(tc.fetcher, withBackoff(func(context.Context, int) error { waits++; return nil }))
			out := c.Do(t.Context(), get(tc.url), Options{Retry: true})
			if out.Call.Attempts != 1 || waits != 0 {
				t.Errorf("Attempts = %d after %d waits; want 1", out.Call.Attempts, waits)
			}
			if out.Abort != "" || out.Response != nil {
				t.Errorf("Abort = %q, Response = %v; want nothing inserted and no abort", out.Abort, out.Response)
			}
			if !strings.Contains(out.Call.Error, tc.err) {
				t.Errorf("Call.Error = %q; want %q", out.Call.Error, tc.err)
			}
		})
	}
}
