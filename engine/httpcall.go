package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// DefaultMaxResponse bounds how much of a lookup's response is read; a
// wallet is a few kilobytes, and a runaway peer must not fill memory.
const DefaultMaxResponse = 4 << 20

// NoAnswerError is a request that got no answer at all (refused, cut,
// late). Its message names the request, for the log and dead letters; an
// answer to an outside caller says only Err, since the URL can hold an API
// key (SessionM Core's paths do).
type NoAnswerError struct {
	Method, URL string // the URL with any password redacted
	Err         error
	Conn        string // the connection, when the step that called it says
}

func (e *NoAnswerError) Error() string { return e.Method + " " + e.URL + ": " + e.Err.Error() }
func (e *NoAnswerError) Unwrap() error { return e.Err }

// CutAnswerError is an answer whose status line and headers came but whose
// body did not come whole: the connection was cut or timed out while it
// was read, or the body is over the size limit (TooLarge). The peer has
// had the request and said what it made of it, so the Response returned
// with it holds the status and headers, which are worth acting on (a 2xx
// was acted on, a 429 says when to come back), and the part of the body
// that came, which is not to be read as the answer.
type CutAnswerError struct {
	Method, URL string // the URL with any password redacted
	Status      int
	TooLarge    bool // over the limit, which the same request meets again
	Err         error
	Conn        string // the connection, when the step that called it says
}

func (e *CutAnswerError) Error() string { return e.Method + " " + e.URL + ": " + e.Detail() }

// Detail is the error without the request, for an outside caller (the
// URL can hold an API key).
func (e *CutAnswerError) Detail() string {
	if e.Conn != "" {
		return fmt.Sprintf("%s answered HTTP %d, but %s", e.Conn, e.Status, e.Err)
	}
	return fmt.Sprintf("HTTP %d, but %s", e.Status, e.Err)
}

func (e *CutAnswerError) Unwrap() error { return e.Err }

// ownWords is an error the engine words itself, naming no address, so a
// synchronous pipeline's caller is told it as it is (CallerText).
type ownWords struct{ error }

func (o ownWords) Unwrap() error { return o.error }

func (c HTTPCaller) timeoutFrom() string {
	if c.TimeoutFrom == "" {
		return "the connection's timeout"
	}
	return c.TimeoutFrom
}

// NoRedirects is the redirect policy of every client the engine calls
// APIs with: a peer that redirects is answering something else, and
// following it would carry the request, with its credential headers
// (X-Api-Key and the like, which net/http forwards to another host), to
// a host no connection names. The 3xx itself is the answer.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// noRedirectClient is the client of an HTTPCaller given none:
// http.DefaultClient's transport, but redirects are not followed.
var noRedirectClient = &http.Client{CheckRedirect: NoRedirects}

// HTTPCaller performs lookups over HTTP.
type HTTPCaller struct {
	Client *http.Client // nil: http.DefaultTransport, redirects not followed (NoRedirects)
	// Timeout bounds one request (10 s when 0).
	Timeout time.Duration
	// TimeoutFrom names the setting Timeout comes from in errors, so a
	// user raises the one that counts ("the connection's timeout" when
	// empty).
	TimeoutFrom string
	// MaxResponse bounds the body read (DefaultMaxResponse when 0).
	MaxResponse int64
}

// Call sends req and reads the answer, whatever its status: the
// connection's ResponseError decides what counts as a failure. No answer
// is a *NoAnswerError and a nil Response; an answer whose body could not
// be read whole is a *CutAnswerError with a Response that holds its status
// and headers.
func (c HTTPCaller) Call(ctx context.Context, step *Step, req *Request) (*Response, error) {
	client := c.Client
	if client == nil {
		client = noRedirectClient
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	limit := c.MaxResponse
	if limit == 0 {
		limit = DefaultMaxResponse
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	// Not a copy: net/http only reads it, and Build gave each request
	// its own.
	hreq.Header = req.Header
	resp, err := client.Do(hreq)
	if err != nil {
		// The caller's deadline stays DeadlineExceeded, so a synchronous
		// pipeline answers 504; the connection's own timeout is a failed
		// lookup (502), and says so.
		switch {
		case !errors.Is(err, context.DeadlineExceeded):
		case caller.Err() != nil:
			err = ownWords{fmt.Errorf("no answer in the time the caller had left: %w", context.DeadlineExceeded)}
		default:
			err = ownWords{fmt.Errorf("no answer within %s, %s", timeout, c.timeoutFrom())}
		}
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, &NoAnswerError{Method: req.Method, URL: hreq.URL.Redacted(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	var cut error
	switch {
	case err != nil:
		// Said in the answer's own words: h1client's error begins with
		// "reading the answer" already. The timeouts read as above, so
		// a synchronous pipeline tells its caller's deadline (504) from
		// a lookup that failed (502).
		switch {
		case errors.Is(err, context.DeadlineExceeded) && caller.Err() != nil:
			err = fmt.Errorf("the rest of its body did not come in the time the caller had left: %w", context.DeadlineExceeded)
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("the rest of its body did not come within %s, %s", timeout, c.timeoutFrom())
		case errors.Is(err, context.Canceled):
			err = fmt.Errorf("its body was cut: %w", context.Canceled)
		default:
			err = fmt.Errorf("its body was cut: %w", err)
		}
		cut = &CutAnswerError{Method: req.Method, URL: hreq.URL.Redacted(), Status: resp.StatusCode, Err: err}
	case int64(len(data)) > limit:
		data = data[:limit]
		cut = &CutAnswerError{Method: req.Method, URL: hreq.URL.Redacted(), Status: resp.StatusCode, TooLarge: true,
			Err: fmt.Errorf("the answer is over %d bytes", limit)}
	}
	from := req.URL
	if hreq.URL.User != nil {
		from = hreq.URL.Redacted() // rebuilt only when there is a password to hide: it costs a percent of a delivery
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: data, From: req.Method + " " + from}
	if cut != nil {
		return out, cut
	}
	return out, nil
}
