package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/internal/h1client"
)

func TestHTTPCaller(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 2048)))
			return
		case "/echo":
			w.Header().Set("X-Auth", r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusNotFound)
		}
		body := make([]byte, 64)
		n, _ := r.Body.Read(body)
		w.Write(body[:n])
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	req := func(url string) *Request {
		return &Request{Method: "POST", URL: url, Header: http.Header{"Authorization": {"Basic abc"}}, Body: []byte(`{"a":1}`)}
	}
	c := HTTPCaller{Timeout: 50 * time.Millisecond, MaxResponse: 1024}

	resp, err := c.Call(context.Background(), nil, req(srv.URL+"/echo"))
	if err != nil || resp.Status != 404 || string(resp.Body) != `{"a":1}` || resp.Header.Get("X-Auth") != "Basic abc" {
		t.Fatalf("echo: %+v %v; a 404 is an answer, not an error", resp, err)
	}
	if !strings.HasPrefix(resp.From, "POST http://127.0.0.1:") {
		t.Fatalf("from %q", resp.From)
	}
	withPassword := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/echo"
	if resp, err := c.Call(context.Background(), nil, req(withPassword)); err != nil || strings.Contains(resp.From, "hunter2") || !strings.Contains(resp.From, "user:xxxxx@") {
		t.Fatalf("from %q (%v): a password in the URL must not show", resp.From, err)
	}
	for _, tt := range []struct{ url, want string }{
		{srv.URL + "/slow", "no answer within 50ms"},
		{srv.URL + "/big", "the answer is over 1024 bytes"},
		{closed.URL + "/x", "connection refused"},
	} {
		if _, err := c.Call(context.Background(), nil, req(tt.url)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.url, err, tt.want)
		}
	}
}

// A failure stays a failure when masking the body changes what it says,
// and its words are masked.
func TestResponseErrorMaskedKeepsTheFailure(t *testing.T) {
	masker := &secrets.Masker{}
	masker.Add("tok-123")
	failsOnTheToken := func(status int, body []byte) error {
		if bytes.Contains(body, []byte("tok-123")) {
			return fmt.Errorf("refused: %s", body)
		}
		return nil
	}
	c := &Call{Conn: &spec.Connection{Type: &spec.ConnectionType{ResponseError: failsOnTheToken}}, masker: masker}
	err := c.ResponseError(200, []byte(`{"status":tok-123}`))
	if err == nil || strings.Contains(err.Error(), "tok-123") {
		t.Fatalf("error %v; want the failure, with the token masked", err)
	}
	if err := c.ResponseError(200, []byte(`{"status":"ok"}`)); err != nil {
		t.Fatalf("a success reads as %v", err)
	}
	// ... and a failure worth retrying stays one.
	c.readAnswer = func(status int, body []byte) error {
		if err := failsOnTheToken(status, body); err != nil {
			return spec.Retryable(err)
		}
		return nil
	}
	if err := c.ResponseError(200, []byte(`{"status":tok-123}`)); err == nil || !spec.IsRetryable(err) || strings.Contains(err.Error(), "tok-123") {
		t.Fatalf("error %v; want a retryable failure, with the token masked", err)
	}
	// ... and so do an answer that was not acted on and a refusal of the
	// whole request, which the batcher tells apart.
	for _, kind := range []struct {
		name string
		wrap func(error) error
		is   func(error) bool
	}{
		{"not sent", func(err error) error { return &spec.NotSentError{Msg: err.Error()} },
			func(err error) bool { return errors.As(err, new(*spec.NotSentError)) }},
		{"whole request", func(err error) error { return &spec.WholeRequestError{Err: err} },
			func(err error) bool { return errors.As(err, new(*spec.WholeRequestError)) }},
	} {
		c.readAnswer = func(status int, body []byte) error {
			if err := failsOnTheToken(status, body); err != nil {
				return kind.wrap(err)
			}
			return nil
		}
		if err := c.ResponseError(200, []byte(`{"status":tok-123}`)); err == nil || !kind.is(err) || strings.Contains(err.Error(), "tok-123") {
			t.Errorf("%s: error %v (%T); want the same kind, with the token masked", kind.name, err, err)
		}
	}
}

// An answer whose status line and headers came but whose body did not
// come whole still says what the peer made of the request: Call returns
// its status and headers with a *CutAnswerError, which says once why the
// body is not whole (h1client's own error already begins "reading the
// answer"), over either transport.
func TestHTTPCallerKeepsTheHeadOfACutAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		switch r.URL.Path {
		case "/late":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"dispatch_id":`))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/reset":
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			buf.WriteString("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 100\r\n\r\n{\"message\":")
			buf.Flush()
			conn.Close()
		case "/big":
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(strings.Repeat("x", 2048)))
		}
	}))
	defer srv.Close()
	for _, transport := range []struct {
		name   string
		client *http.Client
	}{
		{"net/http", nil},
		{"h1client", &http.Client{Transport: &h1client.Transport{}}},
	} {
		c := HTTPCaller{Client: transport.client, Timeout: 200 * time.Millisecond, MaxResponse: 1024}
		for _, tt := range []struct {
			path     string
			status   int
			tooLarge bool
			want     string
		}{
			{"/late", 201, false, "HTTP 201, but the rest of its body did not come within 200ms, the connection's timeout"},
			{"/reset", 429, false, "HTTP 429, but its body was cut: "},
			{"/big", 200, true, "HTTP 200, but the answer is over 1024 bytes"},
		} {
			resp, err := c.Call(context.Background(), nil, &Request{Method: "POST", URL: srv.URL + tt.path})
			var cut *CutAnswerError
			if !errors.As(err, &cut) || resp == nil {
				t.Errorf("%s %s: %v (%T), response %+v; want a CutAnswerError and the head", transport.name, tt.path, err, err, resp)
				continue
			}
			if resp.Status != tt.status || resp.Header.Get("Retry-After") != "7" || cut.Status != tt.status || cut.TooLarge != tt.tooLarge {
				t.Errorf("%s %s: status %d, Retry-After %q, %+v", transport.name, tt.path, resp.Status, resp.Header.Get("Retry-After"), cut)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "reading the answer") || !strings.HasPrefix(msg, "POST "+srv.URL+tt.path+": ") {
				t.Errorf("%s %s: %q, want %q once, after the request", transport.name, tt.path, msg, tt.want)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s %s: the connection's own timeout is a failure, not the caller's deadline (a synchronous pipeline's 504)", transport.name, tt.path)
			}
		}
		// The caller's deadline stays DeadlineExceeded.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		resp, err := c.Call(ctx, nil, &Request{Method: "GET", URL: srv.URL + "/late"})
		cancel()
		if resp == nil || resp.Status != 201 || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "reading the answer") {
			t.Errorf("%s: the caller's deadline mid-body: %+v, %v", transport.name, resp, err)
		}
	}
}

// An HTTPCaller given no client (engine dry-run --sandbox's) reports a
// redirect as the answer, as engine run's client does: followed, it
// carried the request's credential headers to whatever host the peer
// named.
func TestHTTPCallerWithoutClientDoesNotFollowRedirects(t *testing.T) {
	reached := make(chan string, 1)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- r.Header.Get("X-Api-Key"):
		default:
		}
	}))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusFound)
	}))
	defer redirecting.Close()

	for _, method := range []string{"GET", "POST"} {
		req := &Request{Method: method, URL: redirecting.URL + "/lookup", Header: http.Header{"X-Api-Key": {"k3y"}}}
		resp, err := HTTPCaller{}.Call(context.Background(), nil, req)
		if err != nil || resp.Status != http.StatusFound || resp.Header.Get("Location") != elsewhere.URL+"/steal" {
			t.Errorf("%s: %+v %v; want the 302 as the answer", method, resp, err)
		}
		select {
		case key := <-reached:
			t.Fatalf("%s: the redirect was followed to another server, with X-Api-Key %q", method, key)
		default:
		}
	}
}
