package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSenderSpeaksHTTP checks what a net/http server receives from the
// load generator's own client, that the answer is read whole, and that the
// connection is kept between requests.
func TestSenderSpeaksHTTP(t *testing.T) {
	type got struct {
		method, path, host, key, auth, contentType string
		body                                       string
	}
	seen := make(chan got, 4)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- got{r.Method, r.URL.Path, r.Host, r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(strings.Repeat("x", 10000))) // more than one read buffer
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	h := http.Header{}
	h.Set("Authorization", "Bearer t")
	h.Set("Content-Type", "application/json")
	s, err := newSender(srv.URL, h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for i, key := range []string{"run-1", ""} {
		status, err := s.post("/hooks/a%20b", key, []byte(`{"n":1}`))
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("request %d: status %d, error %v", i, status, err)
		}
		g := <-seen
		want := got{"POST", "/hooks/a b", strings.TrimPrefix(srv.URL, "http://"), key, "Bearer t", "application/json", `{"n":1}`}
		if g != want {
			t.Errorf("request %d: the server saw %+v, want %+v", i, g, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for two requests, want one kept alive", n)
	}
}

// TestSenderRedials checks that a connection the server closes, or one
// that answers something other than HTTP, is an error for that request
// only: the next request dials again.
func TestSenderRedials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
		"not http at all\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
	}
	go func() {
		for _, answer := range answers {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err == nil {
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, answer)
			}
			c.Close()
		}
	}()
	s, err := newSender("http://"+ln.Addr().String(), http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if status, err := s.post("/", "", []byte("{}")); err != nil || status != 200 {
		t.Fatalf("first request: status %d, error %v", status, err)
	}
	if s.conn != nil {
		t.Error("the connection the server closed is still held")
	}
	if _, err := s.post("/", "", []byte("{}")); err == nil {
		t.Error("a malformed answer was not an error")
	}
	if status, err := s.post("/", "", []byte("{}")); err != nil || status != 503 {
		t.Errorf("third request: status %d, error %v; want 503 on a new connection", status, err)
	}
}

func TestSenderRefusesABrokenRequestLine(t *testing.T) {
	s, err := newSender("http://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.post("/a b", "", nil); err == nil || !strings.Contains(err.Error(), "path") {
		t.Errorf("a path with a space: error %v, want one naming the path", err)
	}
	if _, err := s.post("/", "k\r\nX: y", nil); err == nil {
		t.Error("an idempotency key with a line break was sent")
	}
}

func TestNewSenderRefusesOtherSchemes(t *testing.T) {
	for _, base := range []string{"https://127.0.0.1:1", "127.0.0.1:1", "http://"} {
		if _, err := newSender(base, nil); err == nil {
			t.Errorf("newSender(%q) did not fail", base)
		}
	}
}

func TestNewSenderRefusesAHeaderWithALineBreak(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer t\r\nX-Evil: 1"}}
	if _, err := newSender("http://127.0.0.1:1", h); err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Errorf("error %v, want one naming the header", err)
	}
}
