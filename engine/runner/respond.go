package runner

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/connected"
	"github.com/loyalty-connector/engine/engine/delivery"
)

// maxCached bounds the answers a synchronous pipeline keeps, and
// maxCachedBytes the memory they take (a wallet with many offers is
// large); past either the oldest are dropped.
const maxCached = 100_000

var maxCachedBytes = 64 << 20

// entryOverhead is what a cached answer takes besides its key, header and
// body: its cached struct (96 bytes) and its slot in the cache's map
// (key, pointer and control byte, about 40 bytes at the map's usual
// load). TestRespondCacheCountsItsMemory holds the count to the heap.
const entryOverhead = 136

// responder answers a synchronous pipeline (F3: a wallet for Braze
// Connected Content) within its deadline, from a cache when it has one.
type responder struct {
	r *Runner
	p *engine.Pipeline

	mu          sync.Mutex
	cache       map[string]*cached
	cachedBytes int // the sum of the cache's sizes
	inflight    map[string]*flight
	// slots holds a token per lookup under way (shared), at most
	// respond.cache.max_lookups. A lookup outlives a late caller, so
	// without a bound a slow SessionM held a connection and a goroutine
	// per distinct user for its whole timeout: the request rate times
	// 10 s, enough at a Braze send's rate to run out of descriptors.
	slots chan struct{}

	// warned limits the warnings of a failing SessionM to one a second
	// of each kind: Connected Content calls come at a send's rate, and
	// every one of them would log the same outage. One per pipeline name,
	// shared by its versions, so a stop writes what a version a reload
	// replaced or removed held back (its timer could write it after the
	// stop's last word, or never).
	warned *warnLimiter

	// next is the version that replaced this one (takeOver), to which a
	// lookup still under way hands its answer; sameAnswers: next answers
	// as this one does (only comments or layout changed).
	next        *responder
	sameAnswers bool
}

// cached is an answer as the cache keeps it: only what writing it takes,
// in copies of its own size. An engine.Reply also holds the decoded body,
// which no answer reads, and its body has room to spare.
type cached struct {
	status int
	header []headerField
	body   []byte
	stored time.Time
	// until: when it stops being right (respond.cache.until), after
	// which it is not served, fresh or stale; zero when it does not say.
	until time.Time
	size  int // what it takes in memory, key and map slot included
	// earlier: an answer of a version a reload replaced. It is never a
	// fresh hit, as this version may shape answers otherwise, but still
	// stands in when SessionM is slow or down.
	earlier bool
	// lookupAfter (Unix nanoseconds): a lookup for the key failed, and
	// until then the copy answers without another (RetryWait).
	lookupAfter atomic.Int64
}

// flight is one evaluation that concurrent requests for the same key
// share, so a cold cache does not send SessionM one lookup per request.
type flight struct {
	done  chan struct{}
	began time.Time
	reply *engine.Reply
	err   error
}

func newResponder(r *Runner, p *engine.Pipeline) *responder {
	rs := &responder{r: r, p: p, cache: map[string]*cached{}, inflight: map[string]*flight{}, warned: r.respondWarnings(p.Name)}
	if p.Respond != nil && p.Respond.Cache != nil {
		rs.slots = make(chan struct{}, cmp.Or(p.Respond.Cache.MaxLookups, engine.DefaultMaxLookups))
	}
	return rs
}

// takeOver keeps the answers prev, the version this one replaces, has
// cached, as stale copies only. A reload during a SessionM outage (a
// longer stale, a rotated token) emptied the cache, and every Connected
// Content call failed until SessionM came back.
//
// An edit of comments or layout only keeps them fresh: made stale-only,
// every user's next call was a lookup, and at 2,000 calls a second the
// bound of lookups was reached (a QA run).
func (rs *responder) takeOver(prev *responder) {
	prev.mu.Lock()
	defer prev.mu.Unlock()
	rs.sameAnswers = len(engine.ChangedParts(prev.p, rs.p)) == 0
	prev.next = rs
	for key, c := range prev.cache {
		kept := &cached{status: c.status, header: c.header, body: c.body, stored: c.stored, until: c.until, size: c.size,
			earlier: c.earlier || !rs.sameAnswers}
		if rs.sameAnswers {
			// A lookup that failed a moment ago failed for this version too.
			kept.lookupAfter.Store(c.lookupAfter.Load())
		}
		rs.cache[key] = kept
	}
	rs.cachedBytes = prev.cachedBytes
	// The lookups prev still has under way count toward the bound, so
	// a reload does not double it.
	if rs.slots != nil && prev.slots != nil && cap(rs.slots) == cap(prev.slots) {
		rs.slots = prev.slots
	}
}

func (rs *responder) serve(w http.ResponseWriter, req *http.Request, stored *storedEvent) {
	answer := &answerRecorder{ResponseWriter: w, code: http.StatusOK}
	w = answer
	defer func() {
		rs.r.metrics.answered.WithLabelValues(rs.p.Name, strconv.Itoa(answer.code), cmp.Or(answer.Header().Get("X-Cache"), "none")).Inc()
	}()
	ev, err := stored.event()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp := rs.p.Respond
	fail := func(err error, key string) {
		if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
			// The caller hung up (Braze's 2 s, a client's own timeout):
			// nothing failed here, and nobody reads an answer. Counted
			// as a 500, it set off alerts meant for the pipeline.
			rs.r.log.Debug("synchronous pipeline: the caller left before the answer", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key)
			answer.code = statusCallerLeft
			return
		}
		rs.fail(w, err, resp.Deadline, key)
	}
	c := resp.Cache
	if c == nil {
		if err := rs.pausedPast(rs.r.clock.Now().Add(resp.Deadline)); err != nil {
			fail(err, req.URL.Path)
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), resp.Deadline)
		defer cancel()
		reply, err := rs.evaluate(ctx, ev)
		if err != nil {
			fail(err, req.URL.Path)
			return
		}
		writeReply(w, reply, "")
		return
	}
	now := rs.r.clock.Now()
	key := rs.key(ev, req, stored.Data, now)
	rs.mu.Lock()
	entry := rs.cache[key]
	if entry != nil && !entry.until.IsZero() && !now.Before(entry.until) {
		// Wrong from now on (an offer it lists has expired): served
		// as a hit for its TTL, or stale for an hour while SessionM
		// failed, it showed an expired offer (a QA run).
		rs.forget(key)
		entry = nil
	}
	rs.mu.Unlock()
	if entry != nil && now.Sub(entry.stored) < c.TTL && !entry.earlier {
		entry.write(w, "hit", ageHeader(now, entry.stored), "")
		return
	}
	if entry != nil && now.Sub(entry.stored) < c.TTL+c.Stale && now.UnixNano() < entry.lookupAfter.Load() {
		// A lookup for the key failed a moment ago: asked again and
		// again, SessionM would get a lookup per request while it fails.
		rs.answerStale(w, entry, key, now, fmt.Sprintf("a lookup for this key failed or was late less than %s ago (respond.cache.retry_wait)", c.RetryWait))
		return
	}
	var reply *engine.Reply
	err = rs.pausedPast(now.Add(resp.Deadline))
	if err == nil {
		ctx, cancel := context.WithTimeout(req.Context(), resp.Deadline)
		defer cancel()
		reply, err = rs.shared(ctx, key, ev, entry != nil && now.Sub(entry.stored) < c.TTL+c.Stale)
	}
	if err == nil {
		writeReply(w, reply, "miss")
		return
	}
	if entry != nil && now.Sub(entry.stored) < c.TTL+c.Stale && staleCovers(err) {
		// SessionM is slow, down or has paused the connection: an older
		// answer beats none, and says what it is.
		if errors.Is(err, context.DeadlineExceeded) {
			// Late is failing too: every request for the key joined
			// the lookup under way and waited the whole deadline for
			// the stale copy (a QA run, SessionM at 3 s: p90 1.5 s).
			entry.lookupAfter.Store(rs.r.clock.Now().Add(c.RetryWait).UnixNano())
		}
		rs.answerStale(w, entry, key, now, rs.r.opts.Masker.String(err.Error()))
		return
	}
	fail(err, key)
}

// statusCallerLeft is what the metrics count for a caller that hung up
// before its answer, as nginx logs it: "client closed request".
const statusCallerLeft = 499

// answerStale answers with entry, an older answer, marked as such; why
// is the reason no fresh one could be had, for the log.
func (rs *responder) answerStale(w http.ResponseWriter, entry *cached, key string, now time.Time, why string) {
	rs.warn("answering from the cache", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "age", now.Sub(entry.stored).Round(time.Second), "error", why)
	entry.write(w, "stale", ageHeader(now, entry.stored), "110 - \"Response is Stale\"")
}

// answerRecorder keeps the status code of an answer, for the metrics.
type answerRecorder struct {
	http.ResponseWriter
	code int
}

func (a *answerRecorder) WriteHeader(code int) {
	a.code = code
	a.ResponseWriter.WriteHeader(code)
}

// shared evaluates once per key at a time and caches a 2xx answer. A
// lookup answered 404 drops what the cache holds for key: the peer says
// there is nothing to answer with, so no stale copy stands in for it.
//
// With a stale copy to stand in (haveStale), a caller does not wait on a
// lookup past that lookup's deadline: it failed its own callers, and a
// SessionM slower than deadline plus retry_wait held a busy user's
// callers the whole deadline again every few seconds (a QA run).
func (rs *responder) shared(ctx context.Context, key string, ev *engine.Event, haveStale bool) (*engine.Reply, error) {
	rs.mu.Lock()
	if f := rs.inflight[key]; f != nil {
		rs.mu.Unlock()
		// With a stale copy, a caller waits for the lookup under way
		// until the lookup's own deadline at most, not a whole one of its
		// own: one that joined 1.2 s into a lookup was answered at 2.7 s
		// (a re-QA).
		wait := time.Duration(math.MaxInt64)
		if haveStale {
			wait = f.began.Add(rs.p.Respond.Deadline).Sub(rs.r.clock.Now())
			if wait <= 0 {
				return nil, fmt.Errorf("the lookup for this key has been under way for %s, past the deadline: %w", rs.r.clock.Now().Sub(f.began).Round(time.Millisecond), context.DeadlineExceeded)
			}
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-f.done:
			return f.reply, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, fmt.Errorf("the lookup for this key was not answered within the deadline: %w", context.DeadlineExceeded)
		}
	}
	select {
	case rs.slots <- struct{}{}:
	default:
		rs.mu.Unlock()
		return nil, &busyError{lookups: cap(rs.slots)}
	}
	f := &flight{done: make(chan struct{}), began: rs.r.clock.Now()}
	rs.inflight[key] = f
	rs.mu.Unlock()

	// The evaluation is not bound to this caller's deadline alone: the
	// answer still fills the cache for the next caller when it is late.
	// Its own timeout bounds how long it holds its slot once its callers
	// are gone.
	evalCtx, cancel := context.WithTimeout(context.Background(), cmp.Or(rs.p.Delivery.Timeout, engine.DefaultTimeout))
	began := f.began
	go func() {
		defer cancel()
		f.reply, f.err = rs.evaluate(evalCtx, ev)
		<-rs.slots
		rs.mu.Lock()
		delete(rs.inflight, key)
		switch {
		case f.err == nil && f.reply.UntilErr != nil:
			// An older answer the cache holds stays, with its own
			// until: it was right when it came, and may stand in.
			rs.warn("an answer is not cached", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "error", f.reply.UntilErr)
		case f.err == nil && f.reply.Status >= 200 && f.reply.Status < 300:
			rs.keep(key, f.reply, false)
			rs.handOn(key, f.reply, began)
		case isNotFound(f.err):
			rs.forget(key)
			rs.handOnFailure(key, began, true)
		case staleCovers(f.err):
			if entry := rs.cache[key]; entry != nil {
				entry.lookupAfter.Store(rs.r.clock.Now().Add(rs.p.Respond.Cache.RetryWait).UnixNano())
			}
			rs.handOnFailure(key, began, false)
		}
		rs.mu.Unlock()
		close(f.done)
	}()
	select {
	case <-f.done:
		return f.reply, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handOn gives an answer that came after a reload replaced rs to the
// version running now, as the cache entries were when it took over: the
// lookup outlived its caller to fill the cache, and kept in the retired
// version's alone, it filled none (a QA run: the next failure of
// SessionM answered 502 where a stale copy would have stood in). Callers
// hold rs.mu; versions are locked oldest first, as takeOver does.
//
// It replaces what the version holds for key unless that is an answer of
// its own that came after this lookup began (a comment-only reload keeps
// the answers fresh, and one past its TTL, which is why this lookup ran,
// stood: a review).
func (rs *responder) handOn(key string, reply *engine.Reply, began time.Time) {
	rs.withNewest(func(newest *responder, earlier bool) {
		// Not over the newest version's own answer with one of
		// another version's, which is only a stale copy for it.
		if entry := newest.cache[key]; entry == nil || entry.earlier || (!earlier && entry.stored.Before(began)) {
			newest.keep(key, reply, earlier)
		}
	})
}

// handOnFailure tells the version running now of a lookup that failed
// after a reload replaced rs, when that version looks up as rs does
// (only comments or layout changed): SessionM's 404 drops its answer for
// key, another failure starts its retry_wait. Kept in the retired
// version alone, the running one sent SessionM a lookup per request
// while it failed. An answer the running version got after this lookup
// began is left alone. Callers hold rs.mu.
func (rs *responder) handOnFailure(key string, began time.Time, notFound bool) {
	rs.withNewest(func(newest *responder, earlier bool) {
		entry := newest.cache[key]
		if earlier || entry == nil || !entry.stored.Before(began) {
			return
		}
		if notFound {
			newest.forget(key)
			return
		}
		entry.lookupAfter.Store(rs.r.clock.Now().Add(newest.p.Respond.Cache.RetryWait).UnixNano())
	})
}

// withNewest calls do with the version that replaced rs last, locked,
// and whether any reload since rs changed how answers are made; it does
// nothing while rs is the version running. Callers hold rs.mu; versions
// are locked oldest first, as takeOver does.
func (rs *responder) withNewest(do func(newest *responder, earlier bool)) {
	earlier := false
	for next := rs.next; next != nil; {
		earlier = earlier || !next.sameAnswers
		next.mu.Lock()
		if next.next == nil {
			do(next, earlier)
			next.mu.Unlock()
			return
		}
		newer := next.next
		next.mu.Unlock()
		next = newer
	}
}

// keep caches reply under key, dropping the oldest answers while the
// cache is over its count or size; earlier marks an answer of a version
// a reload replaced. Callers hold rs.mu.
func (rs *responder) keep(key string, reply *engine.Reply, earlier bool) {
	if len(key)+len(reply.Body) > maxCachedBytes {
		return
	}
	now := rs.r.clock.Now()
	if !reply.Until.IsZero() && !now.Before(reply.Until) {
		return
	}
	c := &cached{status: reply.Status, body: bytes.Clone(reply.Body), stored: now, until: reply.Until, earlier: earlier}
	var headerBytes int
	c.header, headerBytes = compactHeader(reply.Header)
	// The key is copied too: a rendered one can sit in a larger buffer.
	key = strings.Clone(key)
	// cap: the body's copy takes its whole size class.
	c.size = entryOverhead + len(key) + headerBytes + cap(c.body)
	if c.size > maxCachedBytes {
		return
	}
	rs.forget(key)
	for len(rs.cache) > 0 && (len(rs.cache) >= maxCached || rs.cachedBytes+c.size > maxCachedBytes) {
		rs.evictOldest()
	}
	rs.cache[key] = c
	rs.cachedBytes += c.size
}

// headerField is one header of a cached answer.
type headerField struct {
	name   string
	values []string
}

// compactHeader copies h into two allocations, its fields and all their
// values, and says about how many bytes they take. An http.Header of one
// Content-Type takes some 400 bytes, more than a small wallet's body.
func compactHeader(h http.Header) ([]headerField, int) {
	if len(h) == 0 {
		return nil, 0
	}
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	fields, values := make([]headerField, 0, len(h)), make([]string, 0, n)
	size := cap(fields)*int(unsafe.Sizeof(headerField{})) + cap(values)*int(unsafe.Sizeof(""))
	for name, vs := range h {
		at := len(values)
		values = append(values, vs...)
		fields = append(fields, headerField{name, values[at:len(values):len(values)]})
		// Names and values are counted though most are the pipeline's
		// own strings, shared by every answer.
		size += len(name)
		for _, v := range vs {
			size += len(v)
		}
	}
	return fields, size
}

// forget drops key's answer, if the cache holds one. Callers hold rs.mu.
func (rs *responder) forget(key string) {
	if old := rs.cache[key]; old != nil {
		rs.cachedBytes -= old.size
		delete(rs.cache, key)
	}
}

// evictOldest drops the oldest tenth of the cache. Callers hold rs.mu.
func (rs *responder) evictOldest() {
	type aged struct {
		key string
		at  time.Time
	}
	all := make([]aged, 0, len(rs.cache))
	for k, c := range rs.cache {
		all = append(all, aged{k, c.stored})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	for _, a := range all[:max(1, len(all)/10)] {
		rs.cachedBytes -= rs.cache[a.key].size
		delete(rs.cache, a.key)
	}
}

// pausedError is a connection the lookups need that its peer paused (a
// 429 or Retry-After) until after the deadline: no lookup can go in time,
// so the route answers at once rather than wait out its deadline.
type pausedError struct {
	conn  string
	until time.Time
	cause error // the lookup whose answer paused it, if this request's
}

func (e *pausedError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%v; %s is paused until %s (the peer asked for it)", e.cause, e.conn, e.until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s is paused until %s (the peer asked for it); no lookup could go in time", e.conn, e.until.UTC().Format(time.RFC3339))
}

// Unwrap gives the lookup's error, whose caller text leaves out its URL.
func (e *pausedError) Unwrap() error { return e.cause }

// pausedPast returns a pausedError when a connection of the pipeline's
// lookups is paused until by or later. Every step runs, so one such
// connection is enough.
func (rs *responder) pausedPast(by time.Time) error {
	for _, st := range rs.p.Steps {
		if st.Call == nil {
			continue
		}
		if until := rs.r.governor(st.Call.Conn).PausedUntil(); !until.Before(by) {
			return &pausedError{conn: st.Call.Conn.Name, until: until}
		}
	}
	return nil
}

// notFoundError is a lookup its peer answered 404: F3's SessionM does not
// know the user. The route answers 404 too, which Braze's Connected
// Content renders as an empty string; a 502 would count toward Braze's
// unhealthy-host halt (braze.md §4, §5), which a send to a segment where
// many users have no SessionM profile could set off, stopping Connected
// Content to the engine for everyone.
type notFoundError struct{ err error }

func (e *notFoundError) Error() string { return e.err.Error() }
func (e *notFoundError) Unwrap() error { return e.err }

func isNotFound(err error) bool {
	var nf *notFoundError
	return errors.As(err, &nf)
}

// lookupError is a lookup that got no usable answer where trying again
// might: no answer or a cut one, none in time, or an answer a retry is
// for (408, 429, 5xx, a retry_error_codes code), as delivery.Classify
// reads it. Only these let a stale copy stand in: a refusal, a template
// or expr error or the filter says the same of the request however old
// the copy, and a copy would hide it.
type lookupError struct{ err error }

func (e *lookupError) Error() string { return e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// refusedError is a lookup its peer refused (another 4xx, a SessionM
// status:error): answered 502, as a failed lookup, but never from the
// cache.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// staleCovers says whether a stale copy may answer in err's stead: SessionM
// failed, was late, or has paused the connection, or the pipeline has as
// many lookups under way as it may.
func staleCovers(err error) bool {
	var failed *lookupError
	var paused *pausedError
	var busy *busyError
	return errors.As(err, &failed) || errors.As(err, &paused) || errors.As(err, &busy) || errors.Is(err, context.DeadlineExceeded)
}

// busyError is a request whose lookup could not start: the pipeline has
// respond.cache.max_lookups under way already, most of them late when
// it comes to that.
type busyError struct{ lookups int }

func (e *busyError) Error() string {
	return fmt.Sprintf("SessionM is slow: %d lookups are under way, the most this pipeline starts (respond.cache.max_lookups), none of them for this request", e.lookups)
}

// failedLookup says whether a step that failed is a lookup that got no
// usable answer, and might get one if tried again.
func failedLookup(st engine.StepResult) bool {
	if st.Request == nil || errors.As(st.Err, new(*engine.BodyError)) {
		return false // the request could not be made: a template's error
	}
	if st.Response == nil || errors.As(st.Err, new(*engine.CutAnswerError)) {
		return true
	}
	return delivery.Classify(st.Response.Status, nil, st.Err) == delivery.Retry
}

func (rs *responder) evaluate(ctx context.Context, ev *engine.Event) (reply *engine.Reply, err error) {
	// A panic here would end the engine when a shared evaluation has its
	// own goroutine, and leave the requests that share it waiting.
	defer func() {
		if v := recover(); v != nil {
			reply, err = nil, rs.r.caught(v, rs.p, ev.ID)
		}
	}()
	out := rs.p.Evaluate(ctx, ev, rs.r.lookups(), rs.r.clock.Now())
	switch {
	case out.Err != nil:
		// The step that failed is the last one run.
		if n := len(out.Steps); n > 0 {
			last := out.Steps[n-1]
			switch {
			case out.LookupNotFound():
				return nil, &notFoundError{out.Err}
			case last.Err != nil && failedLookup(last):
				// A 429 that paused the connection gets the answer the
				// requests after it get while the pause lasts: 503 and
				// when to come back, not a 502.
				if paused, ok := rs.pausedPast(rs.r.clock.Now()).(*pausedError); ok {
					paused.cause = out.Err
					return nil, paused
				}
				return nil, &lookupError{out.Err}
			case last.Err != nil && last.Response != nil:
				return nil, &refusedError{out.Err}
			}
		}
		return nil, out.Err
	case !out.Passed:
		return nil, engine.ErrFilterRefused
	}
	if n := len(out.Reply.Body); n > connected.MaxBody {
		// Braze inserts nothing from a Connected Content answer over its
		// limit: served as it was, a wallet of 5,000 offers (3 MB) left
		// the message blank, with nothing said here (a QA run).
		rs.warn("the answer is larger than Braze takes from Connected Content; Braze inserts nothing from it: keep fewer items or fields in respond.body",
			"pipeline", rs.p.Name, "version", rs.p.Version, "path", ev.Request.Path, "bytes", n, "limit", connected.MaxBody)
	}
	return out.Reply, nil
}

// key is the cache key: the configured template, or the request's method,
// escaped path and sorted query, the headers the pipeline reads and a
// hash of the body. The path stays escaped and each query
// value is encoded on its own, so two requests a route tells apart never
// share a key: /wallet/a%2Fb/c is not /wallet/a/b%2Fc, nor ?c=x,y ?c=x&c=y.
func (rs *responder) key(ev *engine.Event, req *http.Request, body []byte, now time.Time) string {
	if t := rs.p.Respond.Cache.Key; t != nil {
		if k, err := t.Render(rs.p.Bindings(ev, now)); err == nil {
			return k
		}
	}
	key := req.Method + " " + req.URL.EscapedPath()
	if q := req.URL.Query(); len(q) > 0 {
		key += "?" + q.Encode() // sorted by name, values in order
	}
	if ev.Request != nil {
		if h := rs.p.HeadersRead(ev.Request.Headers); h != "" {
			key += " headers:" + h
		}
	}
	// A body is part of the request too: Connected Content can POST one
	// ({"user_id": ...}) to a single path, and without it in the key one
	// user would be answered with another's cached wallet.
	if len(body) > 0 {
		sum := sha256.Sum256(body)
		key += " body:" + hex.EncodeToString(sum[:])
	}
	return key
}

func (rs *responder) fail(w http.ResponseWriter, err error, deadline time.Duration, key string) {
	msg := rs.r.opts.Masker.String(err.Error())
	shown := rs.r.opts.Masker.String(engine.CallerText(err)) // the log has msg
	var paused *pausedError
	var busy *busyError
	switch {
	case isInternal(err):
		// Logged with its stack already; the caller needs no more.
		writeError(w, http.StatusInternalServerError, "internal error in the engine; its log has the details")
	case errors.Is(err, engine.ErrFilterRefused):
		writeError(w, http.StatusNotFound, msg)
	case isNotFound(err):
		// Not a warning: a send to a segment meets many users without a
		// SessionM profile. The metrics count these answers.
		rs.r.log.Debug("synchronous pipeline: the lookup answered 404", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "error", msg)
		writeError(w, http.StatusNotFound, shown)
	case errors.As(err, &paused):
		// 503 and Retry-After, as for a full inbox: the engine will not
		// try before then. No lookup was late, so not 504.
		rs.warn("synchronous pipeline paused", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "error", msg)
		wait := paused.until.Sub(rs.r.clock.Now())
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		writeError(w, http.StatusServiceUnavailable, shown)
	case errors.As(err, &busy):
		// As for a pause: nothing was tried, and a slot frees when any
		// lookup under way ends.
		rs.warn("synchronous pipeline at its bound of lookups", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "error", msg)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, msg)
	case errors.Is(err, context.DeadlineExceeded):
		rs.warn("synchronous pipeline too slow", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "deadline", deadline)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("no answer within %s", deadline))
	case errors.As(err, new(*lookupError)), errors.As(err, new(*refusedError)):
		rs.warn("synchronous pipeline failed", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "error", msg)
		writeError(w, http.StatusBadGateway, shown)
	default:
		// The pipeline's own steps could not answer (an expr or a
		// template failed on what the lookups gave): 500, not 502, which
		// is SessionM's failure, and among those Braze lists as counting
		// toward halting a webhook host (braze.md §4; for Connected
		// Content, §5 says only "failures").
		rs.warn("synchronous pipeline failed", "pipeline", rs.p.Name, "version", rs.p.Version, "key", key, "error", msg)
		writeError(w, http.StatusInternalServerError, "the pipeline cannot answer: "+shown)
	}
}

// warn logs msg unless a line with it went out less than a second ago;
// the next one that goes out says how many were left out.
func (rs *responder) warn(msg string, args ...any) {
	rs.warned.log(msg, rs.r.clock.Now(), func(left int) {
		rs.r.log.Warn(msg, withLeftOut(args, left)...)
	})
}

func ageHeader(now, stored time.Time) string {
	return strconv.Itoa(int(now.Sub(stored).Seconds()))
}

// writeReply writes a reply just evaluated, with X-Cache when given.
func writeReply(w http.ResponseWriter, reply *engine.Reply, cache string) {
	for k, vs := range reply.Header {
		w.Header()[k] = vs
	}
	writeAnswer(w, reply.Status, reply.Body, cache, "", "")
}

// write writes a cached answer with X-Cache (hit or stale), Age, and
// Warning when given.
func (c *cached) write(w http.ResponseWriter, cache, age, warning string) {
	for _, f := range c.header {
		w.Header()[f.name] = f.values
	}
	writeAnswer(w, c.status, c.body, cache, age, warning)
}

func writeAnswer(w http.ResponseWriter, status int, body []byte, cache, age, warning string) {
	if cache != "" {
		w.Header().Set("X-Cache", cache)
	}
	if age != "" {
		w.Header().Set("Age", age)
	}
	if warning != "" {
		w.Header().Set("Warning", warning)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
