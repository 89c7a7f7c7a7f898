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
