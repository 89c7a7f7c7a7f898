// Package connected makes the HTTP calls of Braze's {% connected_content %}
// tag for message previews, with Braze's rules (specs/braze.md §5): a 2 s
// timeout, a 1 MB response cap, no redirects, GET responses cached for
// 5 minutes by URL, POST responses cached only when asked, and :retry
// retrying failed calls before the message is aborted.
//
// Who answers is pluggable (Fetcher): the emulators in process (Sandbox),
// files (Fixtures), or the real endpoint (Live, only when asked for).
package connected

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/engine/delivery"
)

// Braze's limits for one call (specs/braze.md §5).
const (
	Timeout = 2 * time.Second
	MaxBody = 1 << 20

	DefaultCacheAge = 300 * time.Second   // GET responses, when :cache_max_age is not given
	MinCacheAge     = 300 * time.Second   // :cache_max_age is raised to this
	MaxCacheAge     = 14400 * time.Second // and lowered to this
	MaxRetries      = 5                   // :retry tries again this many times
)

// Request is one call as Braze would send it.
type Request struct {
	Method string // GET or POST
	URL    string
	Header http.Header
	Body   []byte
}

// Response is what the endpoint answered. A fetcher reads at most
// MaxBody+1 bytes of the body, so that an oversized answer is recognised
// without holding all of it.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Fetcher answers calls.
type Fetcher interface {
	Fetch(ctx context.Context, req Request) (Response, error)
}

// Options are the tag's options that decide how a call is made.
type Options struct {
	CacheMaxAge time.Duration // 0: not given
	NoCache     bool
	Retry       bool
	BasicAuth   string // the name of a stored credential
}

// Credentials looks up a stored credential by name (Braze keeps them
// under Settings > Connected Content; the preview takes them from the
// environment or the sandbox).
type Credentials func(name string) (user, password string, ok bool)

// Client makes calls through a Fetcher and keeps Braze's cache. One Client
// serves many renders (the cache is shared across users and campaigns, as
// Braze's is); it is safe for concurrent use.
type Client struct {
	fetcher     Fetcher
	credentials Credentials
	now         func() time.Time
	// sleep waits between retries; Braze backs off for minutes (the
	// message goes to the back of its queue), a preview for a moment.
	sleep   func(ctx context.Context, attempt int) error
	timeout time.Duration

	mu    sync.Mutex
	cache map[string]cacheEntry
}

type cacheEntry struct {
	resp    Response
	expires time.Time
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// WithCredentials gives :basic_auth its credentials.
func WithCredentials(creds Credentials) ClientOption {
	return func(c *Client) { c.credentials = creds }
}

// NewClient returns a client asking f.
func NewClient(f Fetcher, opts ...ClientOption) *Client {
	c := &Client{fetcher: f, now: time.Now, sleep: shortBackoff, timeout: Timeout, cache: map[string]cacheEntry{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// shortBackoff waits 50 ms, 100 ms, 200 ms... before each retry.
func shortBackoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(50 * time.Millisecond << (attempt - 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ClearCache forgets every cached response.
func (c *Client) ClearCache() {
	c.mu.Lock()
	c.cache = map[string]cacheEntry{}
	c.mu.Unlock()
}

// Call is the record of one {% connected_content %} call, for the preview's
// report.
type Call struct {
	Method   string `json:"method"`
	URL      string `json:"url"`
	Status   int    `json:"status,omitempty"`
	Bytes    int    `json:"bytes"`
	Cached   bool   `json:"cached"`
	Attempts int    `json:"attempts"`
	// Millis is the time spent, 0 for a cached answer.
	Millis float64 `json:"duration_ms"`
	// Error says why nothing was inserted, or why the message was aborted.
	Error string `json:"error,omitempty"`
}

// redacted is a URL as a preview shows it: a password written in it
// (https://user:pass@host) is not printed.
func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// Outcome is what a call gives the template.
type Outcome struct {
	// Response is set when the endpoint answered within the limits
	// (whatever its status: without :retry an error response renders
	// like any other).
	Response *Response
	// Abort is set when :retry gave up: Braze aborts the message.
	Abort string
	Call  Call
}

// Do makes one call with Braze's rules.
func (c *Client) Do(ctx context.Context, req Request, opts Options) Outcome {
	shown := redacted(req.URL)
	call := Call{Method: req.Method, URL: shown}
	// A copy: :basic_auth adds to it, and the caller's header may be
	// shared by other calls.
	req.Header = req.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	fail := func(msg string) Outcome {
		call.Error = msg
		return Outcome{Call: call}
	}
	if _, err := url.ParseRequestURI(req.URL); err != nil || !strings.HasPrefix(req.URL, "http://") && !strings.HasPrefix(req.URL, "https://") {
		return fail(fmt.Sprintf("%q is not an http:// or https:// URL", shown))
	}
	if opts.BasicAuth != "" {
		user, pass, ok := "", "", false
		if c.credentials != nil {
			user, pass, ok = c.credentials(opts.BasicAuth)
		}
		if !ok {
			// Braze: a deleted credential aborts the call.
			return fail(fmt.Sprintf("there is no credential named %q, so the call is not made (set %s=user:password)", opts.BasicAuth, CredentialEnv(opts.BasicAuth)))
		}
		r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		r.SetBasicAuth(user, pass)
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
	}
	age, cacheable := cachePolicy(req.Method, opts)
	if cacheable {
		if resp, ok := c.cached(req.URL); ok {
			call.Cached, call.Status, call.Bytes = true, resp.Status, len(resp.Body)
			return Outcome{Response: &resp, Call: call}
		}
	}
	start := time.Now()
	var resp Response
	var err error
	answered := 0 // attempts that ended before the preview stopped
	for {
		call.Attempts++
		resp, err = c.fetchOnce(ctx, req)
		if ctx.Err() == nil {
			answered++
		}
		if !opts.Retry || !failed(resp, err) || call.Attempts > MaxRetries || ctx.Err() != nil {
			break
		}
		if c.sleep(ctx, call.Attempts) != nil {
			break
		}
	}
	cut := ctx.Err() != nil && (err != nil || failed(resp, err))
	if cut {
		// stopped during or between attempts by the preview's own limit
		why := "the preview was stopped before an answer came"
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			why = "the preview's time ran out before an answer came"
		}
		resp, err = Response{}, finalError{errors.New(why)}
	}
	call.Millis = float64(time.Since(start).Microseconds()) / 1000
	out := Outcome{Call: call}
	if err == nil {
		out.Call.Status, out.Call.Bytes = resp.Status, len(resp.Body)
	}
	switch {
	case opts.Retry && failed(resp, err):
		reason := describeFailure(resp, err)
		out.Call.Error = reason
		out.Abort = fmt.Sprintf("connected_content %s failed %s (%s)", shown, times(call.Attempts), reason)
		return out
	case opts.Retry && cut && answered > 0:
		// Shown as sent with nothing inserted, a message Braze would
		// abort after its last try looked fine (a QA run: a 10 s preview
		// of an endpoint that times out). A call the preview had no time
		// left for at all is not said to fail: earlier calls took it.
		out.Call.Error = describeFailure(resp, err)
		out.Abort = fmt.Sprintf("connected_content %s failed %s, and then %s; Braze tries %d times in all and aborts the message if every try fails", shown, times(answered), out.Call.Error, MaxRetries+1)
		return out
	}
	if err != nil {
		out.Call.Error = describeFailure(resp, err)
		return out
	}
	if cacheable && resp.Status >= 200 && resp.Status < 300 {
		c.store(req.URL, resp, age)
	}
	out.Response = &resp
	return out
}

// CredentialEnv is the environment variable the preview reads the
// credential name from: BRAZE_CREDENTIAL_ + the name in capitals, other
// characters than letters and digits as _.
func CredentialEnv(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "BRAZE_CREDENTIAL_" + string(b)
}

// finalError is a failure the same call would meet again: one of Braze's
// rules (a refused port, an oversized answer) or a URL the preview has no
// answer for. :retry does not try it again, nor abort the message over
// it: nothing is inserted, as without :retry.
type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

var errTooLarge = finalError{fmt.Errorf("the response is larger than Braze's %d-byte limit", MaxBody)}

func (c *Client) fetchOnce(parent context.Context, req Request) (Response, error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	resp, err := c.fetcher.Fetch(ctx, req)
	if parent.Err() != nil {
		// the preview itself gave up (the playground bounds a render);
		// that is not Braze's timeout, nor a reason to abort
		return Response{}, finalError{fmt.Errorf("the preview stopped waiting for the answer (%v)", context.Cause(parent))}
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Response{}, fmt.Errorf("no answer within %s (Braze's timeout)", c.timeout)
	}
	if err != nil {
		return Response{}, err
	}
	if len(resp.Body) > MaxBody {
		return Response{}, errTooLarge
	}
	return resp, nil
}

// failed says whether :retry tries again. Braze retries a call that
// "fails" without saying which statuses count; this preview retries what
// the engine's own delivery retries (delivery.Classify: network errors,
// timeouts, 408, 429, 5xx) and treats every other answer, and a
// finalError, as final.
func failed(resp Response, err error) bool {
	if errors.As(err, new(finalError)) {
		return false
	}
	return delivery.Classify(resp.Status, err, nil) == delivery.Retry
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func describeFailure(resp Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d", resp.Status)
}

// cachePolicy applies Braze's rules: GET is cached for 5 minutes unless
// :no_cache; POST only when :cache_max_age is given; :cache_max_age is
// kept between 5 minutes and 4 hours.
func cachePolicy(method string, opts Options) (time.Duration, bool) {
	if opts.NoCache {
		return 0, false
	}
	age := opts.CacheMaxAge
	if age == 0 {
		if method == http.MethodPost {
			return 0, false
		}
		age = DefaultCacheAge
	}
	age, _ = ClampedCacheAge(age)
	return age, true
}

// ClampedCacheAge reports the age Braze uses for a :cache_max_age of d,
// and whether it differs from d.
func ClampedCacheAge(d time.Duration) (time.Duration, bool) {
	c := min(max(d, MinCacheAge), MaxCacheAge)
	return c, c != d
}

// The cache key is the URL alone (Braze: URL and workspace), so one
// cached answer serves every user whose call has the same URL, whatever
// the body of a POST.
func (c *Client) cached(u string) (Response, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache[u]
	if !ok {
		return Response{}, false
	}
	if !c.now().Before(e.expires) {
		delete(c.cache, u)
		return Response{}, false
	}
	return e.resp, true
}

func (c *Client) store(u string, resp Response, age time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[u] = cacheEntry{resp: resp, expires: c.now().Add(age)}
}
