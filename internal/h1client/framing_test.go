package h1client

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A body longer than its ContentLength fails, as with net/http, and no
// byte past the length is sent: they reached the server, which read them
// as a request of its own, and the caller was told all went well.
func TestBytesPastContentLengthAreNotSent(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	target := rawAnswers(t, func(c net.Conn, _ int, req *http.Request) bool {
		mu.Lock()
		seen = append(seen, req.Method+" "+req.RequestURI)
		mu.Unlock()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	body := `{"a":1}` + "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat(" ", 5000)
	req, _ := http.NewRequest(http.MethodPost, target+"/event", strings.NewReader(body))
	req.ContentLength = int64(len(`{"a":1}`))
	resp, err := (&Transport{}).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		t.Errorf("no error for a body of %d bytes declared as %d", len(body), req.ContentLength)
	}
	for _, s := range seen {
		if strings.Contains(s, "/smuggled") {
			t.Errorf("the server read %q: the bytes past ContentLength were sent", seen)
		}
	}
}

// A request with a ContentLength and no Body is refused at once, as
// net/http does: its header promised a body that never came, and it hung
// until its deadline.
func TestContentLengthWithoutABodyIsRefused(t *testing.T) {
	target := rawAnswers(t, func(c net.Conn, _ int, _ *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	req.ContentLength = 10
	start := time.Now()
	resp, err := (&Transport{}).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || time.Since(start) > 500*time.Millisecond {
		t.Errorf("after %s: %v; want an immediate refusal, as net/http's %q",
			time.Since(start).Round(time.Millisecond), err, "http: Request.ContentLength=10 with nil Body")
	}
}

// A status below 100 is a final answer, as for net/http: taken for an
// interim one, it left the request waiting for another until its
// deadline, and the event was sent again.
func TestAStatusBelow100IsFinal(t *testing.T) {
	target := rawAnswers(t, func(c net.Conn, _ int, _ *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 099 Odd\r\nContent-Length: 3\r\n\r\nabc")
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader("event"))
	resp, err := (&Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatalf("error %v; net/http returns the 099 answer", err)
	}
	resp.Body.Close()
}

// Six interim answers (103 Early Hints) before the final one: the 200
// counts, as with net/http, which bounds 1xx answers by header bytes only.
// A count of five failed the request after the server had acted on it.
func TestSixInterimAnswersThenTheFinalOne(t *testing.T) {
	target := rawAnswers(t, func(c net.Conn, _ int, _ *http.Request) bool {
		io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 6)+"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader("event"))
	resp, err := (&Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatalf("error %v; net/http returns the 200", err)
	}
	resp.Body.Close()
}

// After a cut body (or Close), the next Read fails again, as with
// net/http ("read on closed response body"): it said io.EOF, so a reader
// that read again after an error saw the cut body end cleanly.
func TestAReadAfterACutIsNotEOF(t *testing.T) {
	target := rawServer(t, func(c net.Conn, _ int) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		time.Sleep(time.Second)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	resp, err := (&Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	if _, err := io.ReadAtLeast(resp.Body, buf, 100); err == nil {
		t.Fatal("the cut was not reported")
	}
	if _, err := resp.Body.Read(buf); err == io.EOF {
		t.Error("Read after the cut: io.EOF, as if the 7 of 100 bytes were the whole body")
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == io.EOF {
		t.Error("Read after Close: io.EOF")
	}
}

// Close on an answer already read to its end, while another call on the
// body holds its lock for a moment (a Read returning EOF again, a second
// Close: here the test holds the lock to fix the interleaving), leaves
// the connection alone: it set a past read deadline on it, though the
// pool had given it to another request, which was written and then
// failed with "i/o timeout" while the server had it.
func TestCloseOfAFinishedBodyDoesNotCutTheNextRequest(t *testing.T) {
	var posts atomic.Int64
	target := rawAnswers(t, func(c net.Conn, _ int, req *http.Request) bool {
		if req.Method == http.MethodPost {
			posts.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	client := &http.Client{Transport: &Transport{}}
	first, err := client.Get(target + "/lookup")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(first.Body) // EOF: the connection is back in the pool
	b := first.Body.(*body)
	b.mu.Lock() // as a concurrent Read or Close would, for a moment
	result := make(chan error, 1)
	go func() {
		resp, err := client.Post(target+"/event", "application/json", strings.NewReader(`{"e":1}`))
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		result <- err
	}()
	for posts.Load() == 0 { // the POST went out on the pooled connection
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { first.Body.Close(); close(closed) }() // TryLock fails: SetReadDeadline(past)
	time.Sleep(20 * time.Millisecond)
	b.mu.Unlock()
	<-closed
	if err := <-result; err != nil {
		t.Errorf("the server has the POST (%d) but the caller got: %v", posts.Load(), err)
	}
}
