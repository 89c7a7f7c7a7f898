// Package h1client is the HTTP/1.1 client transport behind the engine's
// deliveries and lookups.
//
// net/http's Transport hands every request between three goroutines (the
// caller, the connection's writer and its reader), and on this project's
// 2-core machine that costs about 25 µs of CPU per request on top of the
// same exchange done in the caller's goroutine: a third of what the engine
// spends on a CSV row, which is one request. This transport writes the
// request and reads the answer (with net/http's own parser) in the
// caller's goroutine, over a pool of keep-alive connections per host, in
// plain HTTP or TLS. What it does not do itself (a proxy, a body of
// unknown length, trailers) goes to the Fallback transport unchanged.
//
// It speaks HTTP/1.1 only, also over TLS: one request per connection at a
// time, as most webhook relays do. Braze allows 250,000 trigger requests
// an hour and SessionM's calls are per user, so concurrent connections
// serve them as well as HTTP/2 would.
package h1client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the Transport's zero fields.
const (
	DefaultMaxIdlePerHost         = 64
	DefaultIdleTimeout            = 90 * time.Second
	DefaultDialTimeout            = 30 * time.Second
	DefaultMaxResponseHeaderBytes = 1 << 20
)

// Transport is an http.RoundTripper; the zero value is ready to use and
// sends proxied requests through http.DefaultTransport.
type Transport struct {
	// TLSClientConfig is used for https; nil means crypto/tls's defaults.
	// Its NextProtos is replaced by http/1.1.
	TLSClientConfig *tls.Config
	// Proxy picks a proxy as http.Transport's does; it is asked once per
	// scheme and host. A request it sends through a proxy goes to
	// Fallback. Nil: no proxy.
	Proxy func(*http.Request) (*url.URL, error)
	// Fallback carries what this transport leaves alone (nil:
	// http.DefaultTransport).
	Fallback http.RoundTripper
	// MaxIdlePerHost bounds the idle connections kept per host.
	MaxIdlePerHost int
	// IdleTimeout closes a connection left idle this long, before a
	// server's own idle timeout is likely to.
	IdleTimeout time.Duration
	// DialTimeout bounds a connection's dial and TLS handshake.
	DialTimeout time.Duration
	// MaxResponseHeaderBytes bounds an answer's status line and headers.
	MaxResponseHeaderBytes int64

	mu       sync.Mutex
	hosts    map[hostKey]*host
	sweeping bool // a timer will close connections idle too long
	closed   int  // CloseIdleConnections calls, so a connection busy during one is closed when it comes back
}

type hostKey struct{ scheme, host string }

// host is one scheme and host:port, with its idle connections.
type host struct {
	t         *Transport
	addr      string      // host:port to dial
	maxHeader int64       // MaxResponseHeaderBytes
	tls       *tls.Config // nil for plain HTTP
	proxied   bool        // Proxy chose a proxy: the Fallback sends everything
	idle      []*conn     // most recently used last
}

type conn struct {
	host      *host
	nc        net.Conn
	limit     headerLimit // between nc and br
	br        *bufio.Reader
	out       countingWriter // between bw and nc
	bw        *bufio.Writer
	tlsState  *tls.ConnectionState
	idleSince time.Time
	epoch     int // the Transport's closed count when dialled
	reused    bool
}

// RoundTrip sends req and reads the status and headers of its answer; the
// caller reads the body and closes it, which returns the connection to
// the pool when the body was read to its end.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	h, err := t.hostFor(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if h == nil || h.proxied || !sendsItself(req) {
		return t.fallback().RoundTrip(req)
	}
	target := req.URL.RequestURI() // once, for every attempt
	if err := checkRequest(req, target); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	// As net/http: a request whose context has ended is not sent. (A
	// cancelled stop would otherwise still reach the peer on an idle
	// connection, and be sent again after the restart.)
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c, err := t.getConn(ctx, h, attempt > 0)
		if err != nil {
			closeBody(req)
			return nil, contextError(ctx, err)
		}
		resp, sendAgain, err := c.roundTrip(ctx, req, target)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the server closed just after the check
		// in getConn fails before any answer; the request goes once more
		// on a new connection (not another idle one, which may be as
		// old).
		if sendAgain && c.reused && attempt == 0 && ctx.Err() == nil {
			if fresh, ok := rewind(req); ok {
				req = fresh
				continue
			}
		}
		closeBody(req)
		return nil, contextError(ctx, err)
	}
}

// CloseIdleConnections closes the idle connections; those in use are
// closed when their request ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	t.closed++
	var idle []*conn
	for _, h := range t.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	if ci, ok := t.fallback().(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func (t *Transport) fallback() http.RoundTripper {
	if t.Fallback != nil {
		return t.Fallback
	}
	return http.DefaultTransport
}

// hostFor finds or makes req's host; nil for a scheme this transport does
// not speak.
func (t *Transport) hostFor(req *http.Request) (*host, error) {
	u := req.URL
	if u == nil {
		return nil, errors.New("the request has no URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, nil
	}
	key := hostKey{u.Scheme, u.Host}
	t.mu.Lock()
	h := t.hosts[key]
	t.mu.Unlock()
	if h != nil {
		return h, nil
	}
	h, err := t.newHost(req)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if known := t.hosts[key]; known != nil {
		return known, nil
	}
	if t.hosts == nil {
		t.hosts = map[hostKey]*host{}
	}
	t.hosts[key] = h
	return h, nil
}

func (t *Transport) newHost(req *http.Request) (*host, error) {
	u := req.URL
	name := u.Hostname()
	if name == "" {
		return nil, fmt.Errorf("the URL %s has no host", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	h := &host{t: t, addr: net.JoinHostPort(name, port), maxHeader: t.MaxResponseHeaderBytes}
	if h.maxHeader <= 0 {
		h.maxHeader = DefaultMaxResponseHeaderBytes
	}
	if u.Scheme == "https" {
		cfg := &tls.Config{}
		if t.TLSClientConfig != nil {
			cfg = t.TLSClientConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = name
		}
		cfg.NextProtos = []string{"http/1.1"}
		h.tls = cfg
	}
	if t.Proxy != nil {
		proxy, err := t.Proxy(req)
		if err != nil {
			return nil, fmt.Errorf("choosing a proxy for %s: %w", u.Host, err)
		}
		h.proxied = proxy != nil
	}
	return h, nil
}

// sendsItself says whether req is one this transport writes: a body of
// known length and nothing that needs more of HTTP than that.
func sendsItself(req *http.Request) bool {
	if req.Method == http.MethodConnect || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.ContentLength > 0
}

// getConn takes h's most recently used idle connection that is still
// open, or dials a new one (always, when fresh).
func (t *Transport) getConn(ctx context.Context, h *host, fresh bool) (*conn, error) {
	idleTimeout := or(t.IdleTimeout, DefaultIdleTimeout)
	for !fresh {
		now := time.Now()
		t.mu.Lock()
		var c *conn
		if n := len(h.idle); n > 0 {
			c = h.idle[n-1]
			h.idle[n-1] = nil
			h.idle = h.idle[:n-1]
		}
		t.mu.Unlock()
		if c == nil {
			break
		}
		// A server closes connections idle past its own timeout (60 s
		// behind AWS load balancers) or when it restarts, and may send
		// a 408 first: net/http's reader goroutine sees that as it
		// happens, this transport asks the socket (one system call).
		if now.Sub(c.idleSince) > idleTimeout || !c.usable() {
			c.close()
			continue
		}
		c.reused = true
		return c, nil
	}
	t.mu.Lock()
	epoch := t.closed
	t.mu.Unlock()
	return t.dial(ctx, h, epoch)
}

func (t *Transport) dial(ctx context.Context, h *host, epoch int) (*conn, error) {
	dialCtx, cancel := context.WithTimeout(ctx, or(t.DialTimeout, DefaultDialTimeout))
	defer cancel()
	var dialer net.Dialer
	nc, err := dialer.DialContext(dialCtx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	c := &conn{host: h, epoch: epoch}
	if h.tls != nil {
		tc := tls.Client(nc, h.tls)
		if err := tc.HandshakeContext(dialCtx); err != nil {
			nc.Close()
			return nil, err
		}
		state := tc.ConnectionState()
		c.tlsState = &state
		nc = tc
	}
	c.nc = nc
	c.limit.r = nc
	c.br = bufio.NewReaderSize(&c.limit, 4096)
	c.out.w = nc
	c.bw = bufio.NewWriterSize(&c.out, 4096)
	return c, nil
}

// putIdle keeps c for the next request to its host, or closes it.
func (t *Transport) putIdle(c *conn) {
	now := time.Now()
	idleTimeout := or(t.IdleTimeout, DefaultIdleTimeout)
	maxIdle := t.MaxIdlePerHost
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdlePerHost
	}
	c.idleSince = now
	h := c.host
	var drop []*conn
	t.mu.Lock()
	// The oldest sit at the front; a pool that stays busy would never
	// reach them from the back.
	for len(h.idle) > 0 && now.Sub(h.idle[0].idleSince) > idleTimeout {
		drop = append(drop, h.idle[0])
		h.idle[0] = nil
		h.idle = h.idle[1:]
	}
	if c.epoch == t.closed && len(h.idle) < maxIdle {
		h.idle = append(h.idle, c)
		if !t.sweeping {
			t.sweeping = true
			time.AfterFunc(idleTimeout, t.sweep)
		}
	} else {
		drop = append(drop, c)
	}
	t.mu.Unlock()
	for _, d := range drop {
		d.close()
	}
}

// sweep closes the connections idle past IdleTimeout, so a host that is
// no longer called does not keep them (and their descriptors) for ever.
func (t *Transport) sweep() {
	idleTimeout := or(t.IdleTimeout, DefaultIdleTimeout)
	now := time.Now()
	var drop []*conn
	next := time.Duration(-1)
	t.mu.Lock()
	for _, h := range t.hosts {
		kept := h.idle[:0]
		for _, c := range h.idle {
			if left := idleTimeout - now.Sub(c.idleSince); left > 0 {
				kept = append(kept, c)
				if next < 0 || left < next {
					next = left
				}
			} else {
				drop = append(drop, c)
			}
		}
		clear(h.idle[len(kept):])
		h.idle = kept
	}
	t.sweeping = next >= 0
	if t.sweeping {
		time.AfterFunc(next, t.sweep)
	}
	t.mu.Unlock()
	for _, c := range drop {
		c.close()
	}
}

// roundTrip writes req on c and reads the answer's head. sendAgain says
// the request may go again on another connection: the server cannot have
// acted on it (no byte of it was written), or it is one net/http would
// send again too (a GET, or one with an Idempotency-Key).
func (c *conn) roundTrip(ctx context.Context, req *http.Request, target string) (resp *http.Response, sendAgain bool, err error) {
	stopWatch := c.watch(ctx)
	fail := func(err error, sendAgain bool) (*http.Response, bool, error) {
		if stopWatch != nil {
			stopWatch()
		}
		c.close()
		return nil, sendAgain, err
	}
	// The context may have ended since RoundTrip looked; watch's cut
	// then comes from another goroutine, maybe after the request left.
	if err := ctx.Err(); err != nil {
		return fail(err, false)
	}
	closeAfter := req.Close || hasToken(req.Header["Connection"], "close")
	c.out.n, c.out.err = 0, nil
	if err := c.writeRequest(req, target, closeAfter); err != nil {
		if be := (*bodyError)(nil); errors.As(err, &be) {
			return fail(err, false) // the same body fails again; no answer stands for it
		}
		// A server that refuses a request before reading all of it (a
		// 413 for a body too large) answers and closes; the answer is
		// worth more than the broken pipe.
		if ctx.Err() != nil || !c.answeredEarly(ctx) {
			return fail(err, c.out.n == 0 || replayable(req))
		}
		closeAfter = true
	}
	limit := c.host.maxHeader
	c.limit.left = limit
	c.limit.on = true
	if _, err := c.br.Peek(1); err != nil {
		if err == io.EOF {
			err = errors.New("the server closed the connection without answering")
		}
		return fail(err, replayable(req))
	}
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			if c.limit.left <= 0 {
				err = fmt.Errorf("the answer's headers are over %d bytes", limit)
			}
			return fail(err, false)
		}
		// 1xx answers (100 Continue, 103 Early Hints) come before the
		// real one. As net/http, they share the header limit with it,
		// which bounds how many may come (a count of five failed a
		// request the server had taken).
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	c.limit.on = false
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(fmt.Errorf("unexpected answer %q: this client takes no protocol switch", resp.Status), false)
	}
	resp.TLS = c.tlsState
	b := &body{c: c, ctx: ctx, rc: resp.Body, stopWatch: stopWatch, keep: !resp.Close && !closeAfter}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, false, nil
	}
	resp.Body = b
	return resp, false, nil
}

// watch cuts c's reads and writes when ctx ends, cancelled or past its
// deadline. The returned stop (nil when ctx cannot end) reports whether
// the connection is still clean: false once ctx has cut it. The deadline
// is not also set on the connection: that costs two timer changes per
// request, and an idle connection must keep none (see usable).
func (c *conn) watch(ctx context.Context) func() bool {
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
}

// answeredEarly says whether an answer waits on c after a failed write,
// looking for a moment at most.
func (c *conn) answeredEarly(ctx context.Context) bool {
	wait := time.Now().Add(100 * time.Millisecond)
	if deadline, ok := ctx.Deadline(); ok && deadline.Before(wait) {
		wait = deadline
	}
	c.nc.SetReadDeadline(wait) // the connection is closed after this exchange
	_, err := c.br.Peek(1)
	return err == nil
}

func (c *conn) writeRequest(req *http.Request, target string, closeAfter bool) error {
	hasBody := req.Body != nil && req.Body != http.NoBody
	if req.Body != nil {
		defer req.Body.Close()
	}
	w := c.bw
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	if req.Host != "" {
		w.WriteString(req.Host)
	} else {
		w.WriteString(req.URL.Host)
	}
	w.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	if user := req.URL.User; user != nil && req.Header["Authorization"] == nil {
		// As net/http: a URL's user and password are Basic credentials.
		password, _ := user.Password()
		w.WriteString("Authorization: Basic ")
		w.WriteString(base64.StdEncoding.EncodeToString([]byte(user.Username() + ":" + password)))
		w.WriteString("\r\n")
	}
	for name, values := range req.Header {
		if skippedHeaders[name] {
			continue
		}
		for _, v := range values {
			w.WriteString(name)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if closeAfter {
		w.WriteString("Connection: close\r\n")
	}
	if hasBody || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		var digits [20]byte
		w.Write(strconv.AppendInt(digits[:0], max(req.ContentLength, 0), 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if hasBody {
		n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
		if err != nil {
			if c.out.err != nil { // the connection failed, not the body
				return fmt.Errorf("sending the request body: %w", err)
			}
			return &bodyError{fmt.Errorf("reading the request body: %w", err)}
		}
		if n != req.ContentLength {
			return &bodyError{fmt.Errorf("the request body has %d bytes where its length says %d", n, req.ContentLength)}
		}
		// As net/http: a body longer than its length fails, and what is
		// past the length is never sent (nor is the rest, still buffered).
		var one [1]byte
		if k, _ := io.ReadFull(req.Body, one[:]); k > 0 {
			return &bodyError{fmt.Errorf("the request body is longer than its length, %d", req.ContentLength)}
		}
	}
	return w.Flush()
}

// replayable is net/http's rule for sending a request again after a
// kept-alive connection failed: a method without side effects, or a key
// the server uses to recognise a repeat.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

// hasToken says whether a comma-separated header holds token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// skippedHeaders are written from the request's fields, not its Header,
// as net/http does.
var skippedHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true, "Connection": true}

// checkRequest refuses what would let a header or the request line end
// early and start another: net/http's Transport refuses the same.
func checkRequest(req *http.Request, target string) error {
	if !IsToken(req.Method) && req.Method != "" {
		return fmt.Errorf("invalid method %q", req.Method)
	}
	if (req.Body == nil || req.Body == http.NoBody) && req.ContentLength > 0 {
		return fmt.Errorf("the request's ContentLength is %d, with no Body", req.ContentLength)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if strings.ContainsAny(host, " \t\r\n\x00/") {
		return fmt.Errorf("invalid Host %q", host)
	}
	// url.Parse refuses control characters, but a URL built by hand
	// (Opaque, RawQuery) keeps them.
	if strings.ContainsFunc(target, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("invalid request target %q: it holds a control character", target)
	}
	for name, values := range req.Header {
		if !IsToken(name) {
			return fmt.Errorf("invalid header name %q", name)
		}
		for _, v := range values {
			if ControlByte(v) >= 0 {
				return fmt.Errorf("invalid value for header %q: it holds a control character", name)
			}
		}
	}
	return nil
}

// IsToken reports whether s is an HTTP token (a method, a header name).
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// ControlByte finds the first byte a header value may not hold (a control
// character other than tab): its index, or -1.
func ControlByte(value string) int {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return i
		}
	}
	return -1
}

// body hands the connection back to the pool once the answer was read to
// its end, and closes it when the reader stops early.
type body struct {
	mu        sync.Mutex
	c         *conn
	ctx       context.Context
	rc        io.ReadCloser
	stopWatch func() bool
	keep      bool // neither side asked to close the connection
	done      bool
	err       error // what a Read after the end says

	cutMu    sync.Mutex // never held across I/O
	released bool       // the connection has left this body (pooled or closed)
	cut      bool       // Close cut a waiting Read
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.err = io.EOF
		b.finish(true)
	case err != nil:
		b.finish(false)
		if ctxErr := contextError(b.ctx, err); ctxErr != err {
			err = fmt.Errorf("reading the answer: %w", ctxErr)
		}
		b.err = err
	}
	return n, err
}

func (b *body) Close() error {
	if !b.mu.TryLock() {
		// A Read waits on the socket: end it, as net/http's Close does,
		// rather than wait for it; but only while the connection is
		// still this body's.
		b.cutMu.Lock()
		if !b.released {
			b.cut = true
			b.c.nc.SetReadDeadline(time.Unix(1, 0))
		}
		b.cutMu.Unlock()
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if !b.done {
		b.finish(false)
	}
	if b.err == nil || b.err == io.EOF {
		b.err = errors.New("read on closed response body")
	}
	return nil
}

// finish ends the exchange: the connection goes back to the pool when the
// answer was read whole and nothing cut it, else it is closed.
func (b *body) finish(whole bool) {
	b.done = true
	b.cutMu.Lock()
	b.released = true
	cut := b.cut
	b.cutMu.Unlock()
	clean := !cut && (b.stopWatch == nil || b.stopWatch())
	// Bytes past the answer were not asked for: the next request on this
	// connection would read them as its own answer.
	if whole && clean && b.keep && b.c.br.Buffered() == 0 {
		b.c.host.t.putIdle(b.c)
		return
	}
	b.c.close()
}

// close closes the socket. Over TLS it skips the close_notify alert that
// tls.Conn.Close writes: on a connection cut mid-request that write can
// wait 5 s for a peer that has stopped reading, and HTTP/1.1 framing
// needs no alert.
func (c *conn) close() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.NetConn().Close()
		return
	}
	c.nc.Close()
}

// usable says whether an idle connection may carry the next request: the
// server has not closed it nor sent anything on it since the last answer.
// Over TLS that includes records crypto/tls has already read from the
// socket, which only a read through it can see: one whose deadline has
// passed returns at once, and leaves the connection as it was.
func (c *conn) usable() bool {
	if c.tlsState != nil {
		c.nc.SetReadDeadline(time.Unix(1, 0))
		_, err := c.br.Peek(1)
		c.nc.SetReadDeadline(time.Time{})
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
	}
	return c.open()
}

// countingWriter counts the bytes that reached the connection.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error // the connection's write error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// bodyError is a request body that does not match its length or failed
// to read: the caller's fault, not the connection's.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// headerLimit counts the bytes read while an answer's head is read.
type headerLimit struct {
	r    io.Reader
	on   bool
	left int64
}

func (l *headerLimit) Read(p []byte) (int, error) {
	if !l.on {
		return l.r.Read(p)
	}
	if l.left <= 0 {
		return 0, errors.New("the answer's headers are too long")
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// rewind gives req a fresh copy of its body for a second send.
func rewind(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	fresh, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	closeBody(req)
	again := *req
	again.Body = fresh
	return &again, true
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// contextError reports a request cut by its context as the context's
// error, as net/http does, so callers can tell a timeout from a refusal.
// Only an ended context cuts a connection (watch), so a context that has
// not ended did not cause err: a dial's own timeout, say.
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

func or(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}
