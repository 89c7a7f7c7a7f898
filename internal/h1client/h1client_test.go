package h1client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer serves handler, over TLS when asked (offering HTTP/2
// too), and counts the connections it accepted.
func countingServer(t *testing.T, useTLS bool, handler http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	if useTLS {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

// echoServer answers each request with its method, path and body, and
// counts the connections it accepted.
func echoServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	return countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-User-Agent", r.UserAgent())
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), data)
	})
}

func post(t *testing.T, client *http.Client, target, body string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Post(target, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, string(data)
}

func TestKeepsOneConnectionForSequentialRequests(t *testing.T) {
	srv, conns := echoServer(t)
	client := &http.Client{Transport: &Transport{}}
	for i := range 50 {
		resp, got := post(t, client, srv.URL+"/tags?i="+strconv.Itoa(i), "body "+strconv.Itoa(i))
		if want := fmt.Sprintf("POST /tags?i=%d body %d", i, i); got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
		if resp.Header.Get("X-Proto") != "HTTP/1.1" || resp.Header.Get("X-User-Agent") != "Go-http-client/1.1" {
			t.Fatalf("server saw %s with User-Agent %q", resp.Header.Get("X-Proto"), resp.Header.Get("X-User-Agent"))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("50 requests in a row opened %d connections, want 1", n)
	}
}

func TestConcurrentRequestsGetTheirOwnAnswers(t *testing.T) {
	srv, conns := echoServer(t)
	client := &http.Client{Transport: &Transport{MaxIdlePerHost: 16}}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := range 100 {
				body := fmt.Sprintf("worker %d request %d", w, i)
				resp, err := client.Post(srv.URL+"/x", "text/plain", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				data, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(data) != "POST /x "+body {
					errs <- fmt.Errorf("answer %q (%v), want the echo of %q", data, err, body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := conns.Load(); n > 16 {
		t.Fatalf("16 senders opened %d connections, want at most 16", n)
	}
}

func TestAnAnswerNotReadToItsEndClosesItsConnection(t *testing.T) {
	srv, conns := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(bytes.Repeat([]byte("x"), 100_000))
			return
		}
		io.WriteString(w, "small")
	})
	client := &http.Client{Transport: &Transport{}}
	resp, err := client.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, part); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Were the connection kept, this request would read the rest of
	// the big answer as its own.
	for range 3 {
		resp, err = client.Get(srv.URL + "/small")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(data) != "small" {
			t.Fatalf("answer %q, want small", data)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the cut one closed, the next one kept", n)
	}
}

func TestConnectionCloseIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name         string
		serverCloses bool
		clientCloses bool
		inHeader     bool // the request's Header, as a connection's YAML headers would
	}{
		{"server says close", true, false, false},
		{"request says close", false, true, false},
		{"request header says close", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
				if tc.serverCloses {
					w.Header().Set("Connection", "close")
				}
				if r.Close != tc.clientCloses {
					t.Errorf("the request's Close is %v, want %v", r.Close, tc.clientCloses)
				}
				io.WriteString(w, "ok")
			})
			client := &http.Client{Transport: &Transport{}}
			for range 3 {
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				if tc.inHeader {
					req.Header.Set("Connection", "close")
				} else {
					req.Close = tc.clientCloses
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if n := conns.Load(); n != 3 {
				t.Fatalf("%d connections for 3 requests, want 3", n)
			}
		})
	}
}

// rawServer accepts connections and gives each to serve.
func rawServer(t *testing.T, serve func(c net.Conn, connIndex int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, i)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// rawAnswers is a rawServer that reads request after request on each
// connection, the body included, and lets answer write what it likes;
// answer returns false to close the connection.
func rawAnswers(t *testing.T, answer func(c net.Conn, connIndex int, req *http.Request) bool) string {
	return rawServer(t, func(c net.Conn, connIndex int) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if !answer(c, connIndex, req) {
				return
			}
		}
	})
}

func TestAConnectionTheServerClosedWhileIdleIsReplacedUnseen(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	closed := make(chan struct{}, 10)
	// Each connection serves one request, then the server closes it
	// without saying so, as a server's idle timeout does.
	target := rawServer(t, func(c net.Conn, _ int) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		data, _ := io.ReadAll(req.Body)
		mu.Lock()
		bodies = append(bodies, string(data))
		mu.Unlock()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed <- struct{}{}
	})
	client := &http.Client{Transport: &Transport{}}
	for i := range 3 {
		if _, got := post(t, client, target, "event "+strconv.Itoa(i)); got != "ok" {
			t.Fatalf("answer %q, want ok", got)
		}
		<-closed
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"event 0", "event 1", "event 2"}; fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Fatalf("the server got %q, want %q: each request once", bodies, want)
	}
}

func TestAFreshConnectionCutBeforeAnAnswerIsAnError(t *testing.T) {
	var requests atomic.Int64
	target := rawServer(t, func(c net.Conn, _ int) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			requests.Add(1)
		}
	})
	client := &http.Client{Transport: &Transport{}}
	_, err := client.Post(target, "text/plain", strings.NewReader("event"))
	if err == nil {
		t.Fatal("a connection closed without an answer gave no error")
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("the server got %d requests, want 1: a new connection's failure is not sent again", n)
	}
}

func TestTheContextBoundsTheWholeExchange(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	target := rawServer(t, func(c net.Conn, _ int) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/half" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		}
		<-release
	})
	client := &http.Client{Transport: &Transport{}}
	for _, tc := range []struct {
		name, path string
		cancel     bool
		want       error
	}{
		{"no answer before the deadline", "/none", false, context.DeadlineExceeded},
		{"cancelled while waiting", "/none", true, context.Canceled},
		{"half a body before the deadline", "/half", false, context.DeadlineExceeded},
		{"cancelled while reading the body", "/half", true, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if tc.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target+tc.path, nil)
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHeadersThatWouldSplitTheRequestAreRefused(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer srv.Close()
	client := &http.Client{Transport: &Transport{}}
	for _, header := range []http.Header{
		{"X-Note": {"a\r\nX-Injected: 1"}},
		{"X-Note": {"nul\x00"}},
		{"Bad Name": {"x"}},
		{"X:Colon": {"x"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		req.Header = header
		if _, err := client.Do(req); err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("header %q: error %v, want it refused as invalid", header, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the server got %d requests, want none", n)
	}
}

func TestTLSKeepsItsConnection(t *testing.T) {
	srv, conns := countingServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig
	client := &http.Client{Transport: &Transport{TLSClientConfig: roots}}
	for range 5 {
		resp, got := post(t, client, srv.URL, "x")
		if got != "HTTP/1.1" || resp.TLS == nil || !resp.TLS.HandshakeComplete {
			t.Fatalf("answer %q over %+v, want HTTP/1.1 over TLS", got, resp.TLS)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d TLS connections for 5 requests, want 1", n)
	}
	client = &http.Client{Transport: &Transport{}}
	if _, err := client.Get(srv.URL); err == nil {
		t.Fatal("a certificate no root vouches for was accepted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestWhatItDoesNotSendGoesToTheFallback(t *testing.T) {
	srv, conns := echoServer(t)
	var fallback []string
	transport := &Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			if r.URL.Path == "/via-proxy" {
				return url.Parse("http://proxy.invalid:3128")
			}
			return nil, nil
		},
		Fallback: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			fallback = append(fallback, r.URL.Path)
			return &http.Response{StatusCode: 299, Body: http.NoBody, Request: r}, nil
		}),
	}
	client := &http.Client{Transport: transport}
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte("streamed")); pw.Close() }()
	streamed, _ := http.NewRequest(http.MethodPost, srv.URL+"/unknown-length", pr)
	for _, req := range []*http.Request{streamed, mustRequest(t, srv.URL+"/unknown-length")} {
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if want := []string{"/unknown-length"}; fmt.Sprint(fallback) != fmt.Sprint(want) {
		t.Fatalf("fallback got %q, want %q", fallback, want)
	}
	// The proxy is chosen once per host, so a second host is needed to see
	// it.
	proxied := &Transport{Proxy: transport.Proxy, Fallback: transport.Fallback}
	resp, err := (&http.Client{Transport: proxied}).Get(srv.URL + "/via-proxy")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 299 || conns.Load() != 1 {
		t.Fatalf("the proxied request got %d with %d direct connections, want the fallback's 299 and only the first client's connection", resp.StatusCode, conns.Load())
	}
}

func mustRequest(t *testing.T, target string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader("known"))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAnswersOfEveryShapeAreReadAndTheConnectionKept(t *testing.T) {
	target := rawAnswers(t, func(c net.Conn, connIndex int, req *http.Request) bool {
		switch req.URL.Path {
		case "/chunked":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
		case "/no-content":
			io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		case "/continue":
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
		case "/head":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
		case "/conn":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", connIndex)
		}
		return true
	})
	client := &http.Client{Transport: &Transport{}}
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/conn", "0"},
		{"GET", "/chunked", "abcde"},
		{"POST", "/no-content", ""},
		{"GET", "/continue", "done"},
		{"HEAD", "/head", ""},
		{"GET", "/conn", "0"},
	} {
		req, _ := http.NewRequest(tc.method, target+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(data) != tc.want {
			t.Fatalf("%s %s: %q (%v), want %q", tc.method, tc.path, data, err, tc.want)
		}
	}
}

func TestAnswerHeadersAreBounded(t *testing.T) {
	target := rawServer(t, func(c net.Conn, _ int) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("y", 1000) + "\r\n"
		for range 200 {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	client := &http.Client{Transport: &Transport{MaxResponseHeaderBytes: 64 << 10}}
	_, err := client.Get(target)
	if err == nil || !strings.Contains(err.Error(), "headers are over 65536 bytes") {
		t.Fatalf("error %v, want the header limit named", err)
	}
}

func TestCloseIdleConnectionsClosesThemAll(t *testing.T) {
	srv, conns := echoServer(t)
	transport := &Transport{}
	client := &http.Client{Transport: transport}
	post(t, client, srv.URL, "a")
	// A connection busy during the call is closed when it comes back.
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
	io.ReadAll(resp.Body)
	resp.Body.Close()
	post(t, client, srv.URL, "b")
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: one before the call, one after", n)
	}
}

// BenchmarkRoundTrip compares this transport with net/http's on the
// engine's usual exchange: a small JSON post with a timeout to a loopback
// server, from 64 goroutines.
//
//	go test -run '^$' -bench RoundTrip ./internal/h1client
func BenchmarkRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	body := []byte(`{"tags":["bench"],"ttl":2592000}`)
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
	}{
		{"h1client", &Transport{}},
		{"net-http", &http.Transport{MaxIdleConnsPerHost: 64}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := &http.Client{Transport: tc.transport}
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// As engine.HTTPCaller: a timeout per request.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						cancel()
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					cancel()
				}
			})
			client.CloseIdleConnections()
		})
	}
}

func TestAURLsUserAndPasswordAreBasicCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		fmt.Fprintf(w, "%v %s %s", ok, user, password)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &Transport{}}
	withUser := strings.Replace(srv.URL, "http://", "http://api-key:s%3Acret@", 1)
	if _, got := post(t, client, withUser, ""); got != "true api-key s:cret" {
		t.Fatalf("the server saw %q, want the URL's credentials", got)
	}
	req, _ := http.NewRequest(http.MethodGet, withUser, nil)
	req.SetBasicAuth("header", "wins")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(data) != "true header wins" {
		t.Fatalf("the server saw %q, want the Authorization header's credentials", data)
	}
}

func TestBytesPastAnAnswerAreNotTakenForTheNextOne(t *testing.T) {
	target := rawAnswers(t, func(c net.Conn, connIndex int, req *http.Request) bool {
		if req.URL.Path == "/extra" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
		} else {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", connIndex)
		}
		return true
	})
	expectExtraIgnored(t, &http.Client{Transport: &Transport{}}, target)
}

// expectExtraIgnored asks target's /extra, whose answer is followed by
// another nobody asked for, then /conn, which must be answered by a new
// connection (the second, "1") rather than read from the old one.
func expectExtraIgnored(t *testing.T, client *http.Client, target string) {
	t.Helper()
	for _, tc := range []struct{ path, want string }{{"/extra", "ok"}, {"/conn", "1"}} {
		resp, err := client.Get(target + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(data) != tc.want {
			t.Fatalf("GET %s: %q, want %q", tc.path, data, tc.want)
		}
	}
}

// heldRequests sends n requests at once to target, so that the pool ends
// up with n idle connections; serve must answer only once n are in.
func heldRequests(t *testing.T, client *http.Client, target string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := client.Post(target, "text/plain", strings.NewReader("held "+strconv.Itoa(i)))
			if err != nil {
				t.Error(err)
				return
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
}

// firstAnswered serves a connection's first request, holding the answer
// on the first n connections until n first requests have arrived, then
// gives the connection to after.
func firstAnswered(n int, after func(c net.Conn, br *bufio.Reader)) func(net.Conn, int) {
	var arrived sync.WaitGroup
	arrived.Add(n)
	return func(c net.Conn, connIndex int) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if connIndex < n {
			arrived.Done()
			arrived.Wait()
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		after(c, br)
	}
}

func TestIdleConnectionsTheServerClosedAreNotUsed(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	record := func(br *bufio.Reader, answer func()) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			data, _ := io.ReadAll(req.Body)
			mu.Lock()
			seen[string(data)]++
			mu.Unlock()
			answer()
		}
	}
	// After its first answer each of the first four connections says it
	// is done (FIN) but goes on reading: a request sent on one would
	// reach the server, get no answer, and be sent again on a new
	// connection. Later connections answer everything.
	var closed sync.WaitGroup // each of the four has sent its FIN
	closed.Add(4)
	closing := firstAnswered(4, func(c net.Conn, br *bufio.Reader) {
		c.(*net.TCPConn).CloseWrite()
		closed.Done()
		record(br, func() {})
	})
	target := rawServer(t, func(c net.Conn, connIndex int) {
		if connIndex < 4 {
			closing(c, connIndex)
			return
		}
		record(bufio.NewReader(c), func() { io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") })
	})
	client := &http.Client{Transport: &Transport{}}
	heldRequests(t, client, target, 4)
	// The FIN follows the answer: on a loaded machine the client could
	// take a connection back before it arrives, which no check can see.
	closed.Wait()
	for i := range 4 {
		if _, got := post(t, client, target, "event "+strconv.Itoa(i)); got != "ok" {
			t.Fatalf("answer %q, want ok", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for body, n := range seen {
		if n != 1 {
			t.Errorf("the server got %q %d times, want once: it was sent on a connection the server had closed", body, n)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("the server got %d distinct requests after the first four, want 4", len(seen))
	}
}

func TestARequestCutOnAKeptConnectionGoesAgainOnlyWhereNetHTTPWould(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		header    http.Header
		sentAgain bool
	}{
		{"GET", http.MethodGet, nil, true},
		{"POST with an Idempotency-Key", http.MethodPost, http.Header{"Idempotency-Key": {"k-1"}}, true},
		{"POST", http.MethodPost, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each connection answers its first request; a second one is
			// read and the connection closed, as by a server that fell
			// over just then. Three such connections wait in the pool.
			var cut atomic.Int64
			target := rawServer(t, firstAnswered(3, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err == nil {
					cut.Add(1)
				}
			}))
			client := &http.Client{Transport: &Transport{}}
			heldRequests(t, client, target, 3)
			req, _ := http.NewRequest(tc.method, target, strings.NewReader("event"))
			maps.Copy(req.Header, tc.header)
			resp, err := client.Do(req)
			if tc.sentAgain {
				// The second attempt must go on a new connection, not on
				// another of the three.
				if err != nil {
					t.Fatalf("a request cut on a kept connection failed: %v", err)
				}
				resp.Body.Close()
			} else if err == nil || !strings.Contains(err.Error(), "closed the connection without answering") {
				t.Fatalf("error %v, want the cut reported: the server may have acted on it", err)
			}
			if n := cut.Load(); n != 1 {
				t.Fatalf("%d requests cut, want 1", n)
			}
		})
	}
}

func TestAnAnswerSentOnAnIdleConnectionIsNotTakenForTheNextOne(t *testing.T) {
	firstRead, timedOut := make(chan struct{}), make(chan struct{})
	target := rawAnswers(t, func(c net.Conn, connIndex int, _ *http.Request) bool {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn %d", connIndex)
		if connIndex != 0 {
			return true
		}
		// Some servers say 408 when they time an idle connection out.
		<-firstRead
		io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		close(timedOut)
		return false
	})
	client := &http.Client{Transport: &Transport{}}
	if _, got := post(t, client, target, "first"); got != "conn 0" {
		t.Fatalf("answer %q, want conn 0", got)
	}
	close(firstRead)
	<-timedOut
	resp, got := post(t, client, target, "second")
	if resp.StatusCode != http.StatusOK || got != "conn 1" {
		t.Fatalf("answer %d %q, want 200 from a new connection", resp.StatusCode, got)
	}
}

func TestIdleConnectionsAreClosedAfterTheIdleTimeout(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: &Transport{IdleTimeout: 50 * time.Millisecond}}
	post(t, client, srv.URL, "x")
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection idle 100 times its IdleTimeout is still open, with no request to the host since")
	}
}

func TestAnAnswerSentBeforeTheWholeBodyWasReadIsReturned(t *testing.T) {
	target := rawServer(t, func(c net.Conn, _ int) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large")
		c.(*net.TCPConn).CloseWrite()
		time.Sleep(100 * time.Millisecond) // then the close cuts the client's write short
	})
	client := &http.Client{Transport: &Transport{}}
	resp, err := client.Post(target, "application/json", strings.NewReader(strings.Repeat("x", 16<<20)))
	if err != nil {
		t.Fatalf("error %v, want the server's 413", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(data) != "too large" {
		t.Fatalf("answer %d %q, want 413 too large", resp.StatusCode, data)
	}
}

func TestContextErrorNeverWaits(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	later, cancel3 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel3()
	onlyCancellable, cancel4 := context.WithCancel(context.Background())
	defer cancel4()
	dialTimeout := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"past its deadline", expired, context.DeadlineExceeded},
		// The dial's own timeout, shorter than the caller's.
		{"deadline an hour away", later, dialTimeout},
		{"no deadline", onlyCancellable, dialTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- contextError(tc.ctx, dialTimeout) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("contextError waited for the context")
			}
		})
	}
}

func TestAnswersStayWithTheirRequestsUnderCancellation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		if r.URL.Query().Get("split") == "1" {
			w.Header().Set("Content-Length", strconv.Itoa(len(id)*2))
			io.WriteString(w, id)
			w.(http.Flusher).Flush()
			time.Sleep(d)
			io.WriteString(w, id)
			return
		}
		time.Sleep(d)
		io.WriteString(w, id+id)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &Transport{MaxIdlePerHost: 8}}
	var wg sync.WaitGroup
	var answered atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 150 {
				id := fmt.Sprintf("g%di%d", g, i)
				d := time.Duration((g*7+i*13)%5) * time.Millisecond
				timeout := time.Duration((g+i)%6) * time.Millisecond
				if timeout == 0 {
					timeout = time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				if i%3 == 0 {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(d/2, cancel)
				}
				target := fmt.Sprintf("%s/?id=%s&d=%s&split=%d", srv.URL, id, d, i%2)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(id))
				if resp, err := client.Do(req); err == nil {
					data, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil {
						answered.Add(1)
						if string(data) != id+id {
							t.Errorf("%s got %q, another request's answer", id, data)
						}
					}
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if answered.Load() == 0 {
		t.Fatal("no request was answered: the test checked nothing")
	}
}

// Every engine request carries a context.WithTimeout (HTTPCaller); a kept
// connection must not be taken for dead once that deadline has passed.
func TestAConnectionIsKeptPastItsLastRequestsTimeout(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			srv, conns := countingServer(t, useTLS, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			})
			var cfg *tls.Config
			if useTLS {
				cfg = srv.Client().Transport.(*http.Transport).TLSClientConfig
			}
			client := &http.Client{Transport: &Transport{TLSClientConfig: cfg}}
			for range 5 {
				// as engine.HTTPCaller: a timeout per request
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				time.Sleep(200 * time.Millisecond) // a quiet moment, far below the 90 s idle timeout
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("5 requests 200 ms apart opened %d connections, want 1", n)
			}
		})
	}
}

// holdConn gathers what TLS writes while held, so two records leave in
// one TCP segment (as they do when a server writes twice in a row).
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		return h.buf.Write(p)
	}
	return h.Conn.Write(p)
}

func (h *holdConn) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	h.Conn.Write(h.buf.Bytes())
}

// The TLS twin of TestBytesPastAnAnswerAreNotTakenForTheNextOne: the extra
// bytes sit in crypto/tls's own buffer, which neither br.Buffered() nor a
// peek at the socket sees.
func TestBytesPastAnAnswerOverTLSAreNotTakenForTheNextOne(t *testing.T) {
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	srvCfg := cert.TLS.Clone()
	clientCfg := cert.Client().Transport.(*http.Transport).TLSClientConfig
	cert.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for i := 0; ; i++ {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func(i int) {
				hc := &holdConn{Conn: raw}
				c := tls.Server(hc, srvCfg)
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.URL.Path == "/extra" {
						hc.mu.Lock()
						hc.hold = true
						hc.mu.Unlock()
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
						hc.release()
						continue
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", i)
				}
			}(i)
		}
	}()
	target := "https://" + ln.Addr().String()
	expectExtraIgnored(t, &http.Client{Transport: &Transport{TLSClientConfig: clientCfg}}, target)
}

func TestARequestWhoseContextHasEndedIsNotSent(t *testing.T) {
	const idle = 8
	var got atomic.Int64
	var arrived sync.WaitGroup
	arrived.Add(idle)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/held" {
			arrived.Done()
			arrived.Wait()
		} else {
			got.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	client := &http.Client{Transport: &Transport{}}
	heldRequests(t, client, srv.URL+"/held", idle) // idle connections, ready to take a request
	for range 20 {
		// As the engine's stop, when its grace has run out.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/event", strings.NewReader(`{"event":1}`))
		if _, err := client.Do(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	}
	// Were one sent, its answer would show it arrived.
	if _, answer := post(t, client, srv.URL+"/after", "x"); answer != "ok" {
		t.Fatalf("answer %q", answer)
	}
	if n := got.Load(); n != 1 {
		t.Fatalf("the server got %d requests, want only the last: %d were sent after their context ended", n, n-1)
	}
}

func TestAWriteThePeerDoesNotReadEndsAtTheDeadline(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[useTLS], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			certs := httptest.NewTLSServer(http.NotFoundHandler())
			serverTLS := certs.TLS.Clone()
			clientTLS := certs.Client().Transport.(*http.Transport).TLSClientConfig
			certs.Close()
			hold := make(chan struct{})
			defer close(hold)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.(*net.TCPConn).SetReadBuffer(8 << 10)
					go func() {
						defer c.Close()
						if useTLS && tls.Server(c, serverTLS).Handshake() != nil {
							return
						}
						<-hold // and read nothing more
					}()
				}
			}()
			scheme := map[bool]string{false: "http://", true: "https://"}[useTLS]
			client := &http.Client{Transport: &Transport{TLSClientConfig: clientTLS}}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			// More than the socket buffers hold, so the write blocks; over
			// TLS, tls.Conn.Close would then wait 5 s to write its alert.
			body := strings.Repeat("x", 32<<20)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, scheme+ln.Addr().String(), strings.NewReader(body))
			start := time.Now()
			_, err = client.Do(req)
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("took %s past a 300 ms deadline", took)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestARequestTargetWithAControlCharacterIsRefused(t *testing.T) {
	var requests atomic.Int64
	target := rawAnswers(t, func(c net.Conn, _ int, _ *http.Request) bool {
		requests.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	u, _ := url.Parse(target)
	for _, built := range []*url.URL{
		{Scheme: "http", Host: u.Host, Opaque: "/a HTTP/1.1\r\nHost: x\r\n\r\nDELETE /smuggled"},
		{Scheme: "http", Host: u.Host, Path: "/a", RawQuery: "q=1\r\nX-Injected: 1"},
	} {
		req := &http.Request{Method: http.MethodGet, URL: built, Header: http.Header{}}
		if _, err := (&Transport{}).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("%q: error %v, want the control character refused", built.RequestURI(), err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the server read %d requests, want none", n)
	}
}

func TestClosingTheAnswerEndsAReadWaitingOnIt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: &Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, len("partial"))
	if _, err := io.ReadFull(resp.Body, part); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10)) // waits: the rest never comes
		ended <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the read start waiting
	go resp.Body.Close()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the cut read returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting read")
	}
}
