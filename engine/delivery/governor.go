// Package delivery decides when a request may go and what to do with its
// answer: a governor per connection (token buckets per rate-limit pool, a
// pause for the whole connection after a 429 or Retry-After), backoff with
// full jitter, and the classification of outcomes (DESIGN §2).
package delivery

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Clock is time as the governor sees it; tests inject one so that waits
// need no sleeping.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Limit is a token bucket: Rate requests per second on average, up to
// Burst at once. A zero Rate means no limit.
type Limit struct {
	Rate  float64
	Burst int
	// Isolated: a 429 to this pool holds back this pool only, until the
	// time the peer gave (its window is a narrower one inside the
	// account's); any other 429 pauses the whole connection.
	Isolated bool
}

// PerWindow turns a documented "n requests per window" into a Limit that
// never lets more than n go in any window of that length. A bucket lets
// its burst go at once and one more each 1/rate after, so a window
// [t, t+window) holds at most burst + (rate×window − 1) requests: the rate
// is (n − burst + 1)/window, and what the burst takes the rate gives up.
// The burst is what the plain rate gives in a fiftieth of the window, or
// in a second if that is shorter: it absorbs requests that come in
// clumps (batches filling at once, a timer that wakes late) and costs the
// rate at most a fiftieth. A second's worth whatever the window let 3,000
// per 3 s release 4,000 in the first 3 s; a fiftieth of a second's worth
// held 250,000 an hour to one request at a time, every 14 ms, which cut
// F4's deliveries by a fifth.
func PerWindow(n int, window time.Duration) Limit {
	n = max(n, 1)
	span := min(time.Second, window/50)
	burst := min(n, max(1, int(math.Ceil(float64(n)*span.Seconds()/window.Seconds()))))
	return Limit{Rate: float64(n-burst+1) / window.Seconds(), Burst: burst}
}

// Limits pace a connection. Shared, when its Rate is set, is one bucket
// every request to the connection takes from, whatever its pool (the
// connection's rate_limit: "this many requests to this connection").
// Pools pace each pool on its own (a peer's documented limits per
// endpoint); a pool listed with a zero Limit has no pace of its own but
// still honours what the peer says of its window (x-ratelimit-*).
type Limits struct {
	Shared Limit
	Pools  map[string]Limit
}

// Governor paces one connection. Each endpoint names a pool (Braze's
// trigger endpoints share one, /users/track has its own); a pause applies
// to every pool of the connection, because a 429 or Retry-After from the
// peer speaks for the whole account (DESIGN §2), except a 429 to an
// Isolated pool, which speaks for that pool only.
type Governor struct {
	clock Clock

	mu          sync.Mutex
	pools       map[string]*bucket
	shared      *bucket // nil: no limit for the whole connection
	pausedUntil time.Time
	// pauseFirst is the end the current pause had when it began: the
	// retries of a burst's 429s are due from then to pausedUntil.
	pauseFirst time.Time
	waited     time.Duration // total time requests spent waiting, for metrics
	// onPause, when set, is told of each pause that extends the last, so
	// a pause can outlive the process (the runner stores it).
	onPause func(pool string, until time.Time)
	waiting map[string]int // requests in Wait, by pool
	// resumed is closed when an operator ends the pauses (Resume), so
	// that what waits for one goes at once; then replaced. Atomic: every
	// Wait reads it.
	resumed atomic.Pointer[chan struct{}]

	// turns are the times at which requests held back to fill up (Braze
	// batches) mean to go, by their owner, whatever pipeline holds them:
	// two pipelines on one connection take one pool's tokens.
	turnsMu sync.Mutex
	turns   map[any]turn
}

type turn struct {
	pool string
	at   time.Time
}

// Remember has fn told of each new end of a pause (a 429 or
// Retry-After), outside the governor's lock: of the connection, with
// pool "", or of an Isolated pool that a 429 held back alone.
func (g *Governor) Remember(fn func(pool string, until time.Time)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onPause = fn
}

// PauseUntil pauses the connection until t, as a Retry-After would: a
// pause an earlier run was told of, restored at the start.
func (g *Governor) PauseUntil(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.pausedUntil.After(g.clock.Now()) {
		g.pauseFirst = t
	}
	if t.After(g.pausedUntil) {
		g.pausedUntil = t
	}
}

// PausePoolUntil holds pool back until t, as a 429 to an Isolated pool
// does: such a pause an earlier run was told of, restored at the start.
func (g *Governor) PausePoolUntil(pool string, t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.pools[pool]
	if b == nil {
		// Its limit comes with SetLimits, which keeps what the peer said.
		b = newBucket(Limit{}, g.clock.Now())
		g.pools[pool] = b
	}
	if t.After(b.blockedUntil) {
		b.blockedUntil = t
	}
}

// PoolsHeldUntil lists the pools the peer holds back on their own (a 429
// to an Isolated pool, or a window spent: x-ratelimit-remaining 0), with
// when each may go again.
func (g *Governor) PoolsHeldUntil() map[string]time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	var out map[string]time.Time
	for name, b := range g.pools {
		if b.blockedUntil.After(now) {
			if out == nil {
				out = map[string]time.Time{}
			}
			out[name] = b.blockedUntil
		}
	}
	return out
}

type bucket struct {
	limit  Limit // a zero Rate: no limit of its own
	tokens float64
	last   time.Time
	// blockedUntil: the peer said this pool's window is spent
	// (x-ratelimit-remaining 0) until then.
	blockedUntil time.Time
	// liveRate, until liveUntil: what the peer says is left of its window
	// spread over the time to its reset, when that is below the limit.
	liveRate  float64
	liveUntil time.Time
	// liveTight: the peer's last word left no more of its window than
	// the limits let go at once, so its reset is probed (refill).
	liveTight bool
	// reopened: the spent window has reset and its first request has not
	// gone; probeUntil: it went, and the others wait for its answer (what
	// the new window holds) until then at most.
	reopened   bool
	probeUntil time.Time
}

// probeWait bounds how long a pool whose window reset waits for the
// answer of its first request before it goes on at its own pace.
const probeWait = time.Second

// rate is the bucket's rate now; 0 means no limit.
func (b *bucket) rate(now time.Time) float64 {
	if now.Before(b.liveUntil) && (b.limit.Rate == 0 || b.liveRate < b.limit.Rate) {
		return b.liveRate
	}
	return b.limit.Rate
}

// refill brings the tokens up to now and returns how long until one is
// there (0: one is).
func (b *bucket) refill(now time.Time) time.Duration {
	if now.Before(b.blockedUntil) {
		return b.blockedUntil.Sub(now)
	}
	if !b.blockedUntil.IsZero() {
		// The peer's window was spent until now. One request goes first,
		// and its answer says what the new window holds (x-ratelimit-
		// remaining, which Observe spreads to its reset); the burst
		// earned while blocked went at once, and overran a window
		// smaller than the configured limit (8 requests in a
		// millisecond where the peer took 4 per 5 s).
		b.blockedUntil, b.reopened = time.Time{}, true
		b.tokens, b.last = 0, now
	}
	if !b.liveUntil.IsZero() && !now.Before(b.liveUntil) {
		// The peer's window, whose rest the live rate spread to its
		// reset, has reset. Where it was nearly spent (no more left than
		// the limits let go at once), the engine was at the peer's limit,
		// and the new window is no larger than the last for all it knows:
		// as after a spent one, one request goes first and its answer
		// says what it holds. Back at the configured limit, with its
		// burst earned meanwhile, 24 requests went at once into a window
		// of 20 (QA: 4 answered 429, which pause the whole connection). A
		// window far from spent is not probed: that cost /users/track
		// (3 s windows) a round trip every 3 s (a review).
		tight := b.liveTight
		b.liveUntil, b.liveRate, b.liveTight = time.Time{}, 0, false
		if tight {
			b.reopened = true
			b.tokens, b.last = 0, now
		}
	}
	if now.Before(b.probeUntil) {
		return min(b.probeUntil.Sub(now), 10*time.Millisecond)
	}
	if b.reopened {
		return 0 // reserve sends it as the window's first
	}
	burst := float64(max(1, b.limit.Burst))
	rate := b.rate(now)
	if rate <= 0 {
		b.tokens, b.last = burst, now
		return 0
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		return 0
	}
	// Rounded up: a wait cut short would let the request go before its
	// token is there, which at a window's edge is one request too many.
	return time.Duration(math.Ceil((1 - b.tokens) / rate * float64(time.Second)))
}

// setLimit changes the limit in place: the tokens earned at the old rate
// are kept (up to the new burst), and so is what the peer said.
func (b *bucket) setLimit(l Limit, now time.Time) {
	b.refill(now)
	full := float64(max(1, l.Burst))
	if b.rate(now) <= 0 {
		b.tokens = full // it had no limit: as if never spent
	}
	b.limit = l
	b.tokens = min(b.tokens, full)
}

// NewGovernor returns a governor with the given limits; a pool not listed
// has no limit of its own (but still honours pauses and the shared limit).
func NewGovernor(clock Clock, limits Limits) *Governor {
	if clock == nil {
		clock = RealClock{}
	}
	g := &Governor{clock: clock, pools: map[string]*bucket{}, waiting: map[string]int{}, turns: map[any]turn{}}
	g.resumed.Store(new(make(chan struct{})))
	g.SetLimits(limits)
	return g
}

// SetLimits changes the governor's limits in place, as a reload of the
// connection does: a pause, a pool's spent window and the tokens left
// carry over, so the peer's word outlives the edit. A pool no longer
// listed keeps what the peer said of it, with no limit of its own.
func (g *Governor) SetLimits(limits Limits) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	for name, b := range g.pools {
		if _, ok := limits.Pools[name]; !ok {
			b.setLimit(Limit{}, now)
		}
	}
	for name, l := range limits.Pools {
		if b := g.pools[name]; b != nil {
			b.setLimit(l, now)
		} else {
			g.pools[name] = newBucket(l, now)
		}
	}
	switch {
	case limits.Shared.Rate <= 0:
		g.shared = nil
	case g.shared == nil:
		g.shared = newBucket(limits.Shared, now)
	default:
		g.shared.setLimit(limits.Shared, now)
	}
}

func newBucket(l Limit, now time.Time) *bucket {
	return &bucket{limit: l, tokens: float64(max(1, l.Burst)), last: now}
}

// Wait blocks until a request to pool may go. It returns how long it
// waited, or ctx's error.
func (g *Governor) Wait(ctx context.Context, pool string) (time.Duration, error) {
	// Read before the wait is worked out: a Resume in between still
	// wakes it, where it would sleep out the pause it ended.
	resumed := g.Resumed()
	d := g.reserve(pool)
	if d <= 0 {
		return 0, nil
	}
	g.mu.Lock()
	g.waiting[pool]++
	g.mu.Unlock()
	var total time.Duration
	var err error
	for d > 0 {
		from := g.clock.Now()
		if _, err = SleepUnless(ctx, g.clock, d, resumed); err != nil {
			break
		}
		total += min(d, g.clock.Now().Sub(from))
		resumed = g.Resumed()
		d = g.reserve(pool)
	}
	g.mu.Lock()
	g.waiting[pool]--
	if err == nil {
		g.waited += total
	}
	g.mu.Unlock()
	return total, err
}

// SleepUnless sleeps d on clock, or until wake is closed (woken), or ctx
// ends (its error).
func SleepUnless(ctx context.Context, clock Clock, d time.Duration, wake <-chan struct{}) (woken bool, err error) {
	sleep, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-wake:
			stop()
		case <-sleep.Done():
		}
	}()
	_ = clock.Sleep(sleep, d)
	if err := ctx.Err(); err != nil {
		return false, err
	}
	select {
	case <-wake:
		return true, nil
	default:
		return false, nil
	}
}

// Resumed is closed when an operator next ends the pauses (Resume).
func (g *Governor) Resumed() <-chan struct{} { return *g.resumed.Load() }

// Resume ends, now, what the peer asked the connection to wait for: its
// pause, and every pool it holds back (a 429 to an Isolated pool, a
// window it said was spent, whose first request then goes alone and its
// answer says what is left, as at the window's reset). It is an
// operator's call (the peer's limit was raised, or a broken Retry-After
// asked for a day) and returns what it ended: the pause's end (zero if
// none) and the pools' held, by pool. What waits in Wait goes at once.
func (g *Governor) Resume() (paused time.Time, pools map[string]time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	if g.pausedUntil.After(now) {
		paused = g.pausedUntil
	}
	g.pausedUntil = time.Time{}
	for name, b := range g.pools {
		if b.blockedUntil.After(now) {
			if pools == nil {
				pools = map[string]time.Time{}
			}
			pools[name] = b.blockedUntil
			b.blockedUntil = now // refill reopens the window: one request first
		}
	}
	close(*g.resumed.Swap(new(make(chan struct{}))))
	return paused, pools
}

// Held spans what the peer asked the connection, or any of its pools, to
// wait for now: from the earliest end (of a pause, the end it had when it
// began) to the latest (zero when nothing is held). A retry due in that
// span was held back by the peer.
func (g *Governor) Held() (from, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	add := func(first, last time.Time) {
		if !last.After(now) {
			return
		}
		if from.IsZero() || first.Before(from) {
			from = first
		}
		if last.After(until) {
			until = last
		}
	}
	add(g.pauseFirst, g.pausedUntil)
	for _, b := range g.pools {
		add(b.blockedUntil, b.blockedUntil)
	}
	return from, until
}

// Queued counts the requests waiting in Wait for a token that a request
// to pool would wait for too: those of pool, and, when the connection has
// a rate_limit of its own, those of its other pools.
func (g *Governor) Queued(pool string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shared == nil {
		return g.waiting[pool]
	}
	n := 0
	for _, k := range g.waiting {
		n += k
	}
	return n
}

// HoldTurn records that owner's request to pool means to go at at.
// A turn reserves nothing: the request still waits for its token.
func (g *Governor) HoldTurn(owner any, pool string, at time.Time) {
	g.turnsMu.Lock()
	g.turns[owner] = turn{pool: pool, at: at}
	g.turnsMu.Unlock()
}

// DropTurn forgets owner's turn, once its request has gone.
func (g *Governor) DropTurn(owner any) {
	g.turnsMu.Lock()
	delete(g.turns, owner)
	g.turnsMu.Unlock()
}

// TurnsBefore counts the turns to pool, of owners other than owner, that
// come before at (every one, when at is zero).
func (g *Governor) TurnsBefore(owner any, pool string, at time.Time) int {
	g.turnsMu.Lock()
	defer g.turnsMu.Unlock()
	n := 0
	for o, t := range g.turns {
		if o != owner && t.pool == pool && (at.IsZero() || t.at.Before(at)) {
			n++
		}
	}
	return n
}

// Ready says how long until a request to pool could go (0: now), taking
// nothing: a Braze batch waiting to be sent keeps filling meanwhile. held
// says the wait ends when the peer said (a pause, a spent window), for
// every request alike; otherwise it is a token's, which a request already
// waiting for one takes first.
func (g *Governor) Ready(pool string) (wait time.Duration, held bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	if now.Before(g.pausedUntil) {
		return g.pausedUntil.Sub(now), true
	}
	if b := g.pools[pool]; b != nil && now.Before(b.blockedUntil) {
		return b.blockedUntil.Sub(now), true
	}
	return g.untilReady(pool, now), false
}

// Interval is the time between two tokens of pool now: the slower of its
// own rate (as the peer last said it, x-ratelimit-*) and the connection's.
// It is 0 when neither paces the pool, or when the pool's window has just
// reset and the answer to its first request will say what the new one
// holds.
func (g *Governor) Interval(pool string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	var rate float64
	if b := g.pools[pool]; b != nil {
		if b.reopened || now.Before(b.probeUntil) || !b.blockedUntil.IsZero() {
			return 0
		}
		rate = b.rate(now)
	}
	if g.shared != nil {
		if r := g.shared.rate(now); r > 0 && (rate == 0 || r < rate) {
			rate = r
		}
	}
	if rate <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(float64(time.Second) / rate))
}

// untilReady is Ready; callers hold g.mu.
func (g *Governor) untilReady(pool string, now time.Time) time.Duration {
	if now.Before(g.pausedUntil) {
		return g.pausedUntil.Sub(now)
	}
	var d time.Duration
	if b := g.pools[pool]; b != nil {
		d = b.refill(now)
	}
	if g.shared != nil {
		d = max(d, g.shared.refill(now))
	}
	return d
}

// reserve takes a token (the pool's and the connection's) and returns 0,
// or returns how long to wait before asking again.
func (g *Governor) reserve(pool string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	d := g.untilReady(pool, now)
	b := g.pools[pool]
	if d > 0 {
		// A bucket is empty: take from neither, so a request waiting
		// for one does not spend the other's token in the meantime.
		return d
	}
	if b != nil && b.reopened {
		// The first request of a window that reset: the rest wait for
		// its answer, and the connection's bucket, full from the wait,
		// does not send them meanwhile.
		b.reopened, b.probeUntil = false, now.Add(probeWait)
		if g.shared != nil {
			g.shared.tokens = 0
		}
		return 0
	}
	if b != nil && b.rate(now) > 0 {
		b.tokens--
	}
	if g.shared != nil {
		g.shared.tokens--
	}
	return 0
}

// Observe feeds an answer back. A Retry-After (on any answer but a 2xx) or a 429
// pauses the whole connection until the time given, but a 429 to an
// Isolated pool blocks that pool only; x-ratelimit-remaining of 0 blocks
// the pool until x-ratelimit-reset, and a low remaining slows it so the
// rest lasts until the reset (braze.md §1). It returns the pause of the
// connection it set, if any, and whether a pause began with this answer:
// a burst of 429s answered at once is one pause, not one each. A pause of
// 0 that began is the Isolated pool's own (PoolsHeldUntil says its end).
func (g *Governor) Observe(pool string, status int, h http.Header) (pause time.Duration, began bool) {
	now := g.clock.Now()
	if status < 200 || status > 299 {
		// A 2xx took the request: a Retry-After on it (an async API's
		// 202 saying when to poll) asks for no wait.
		pause = RetryAfter(h.Get("Retry-After"), now)
	}
	if pause == 0 && status == http.StatusTooManyRequests {
		// A 429 without Retry-After: wait for the window's reset if the
		// peer gave one, else a second (A: nothing better is documented).
		if reset := rateLimitReset(h, now); reset > 0 {
			pause = reset
		} else {
			pause = time.Second
		}
	}
	var tell func(string, time.Time)
	var paused string // the pool, "" for the connection
	var until time.Time
	defer func() {
		if tell != nil {
			tell(paused, until)
		}
	}()
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.pools[pool]
	if pause > 0 && status == http.StatusTooManyRequests && b != nil && b.limit.Isolated {
		// The pool's own window is spent, not the account's: its
		// requests wait, the rest of the connection goes on.
		began = !b.blockedUntil.After(now)
		if u := now.Add(pause); u.After(b.blockedUntil) {
			b.blockedUntil = u
			tell, paused, until = g.onPause, pool, u
		}
		return 0, began
	}
	if pause > 0 {
		began = !g.pausedUntil.After(now)
		if began {
			g.pauseFirst = now.Add(pause)
		}
		if u := now.Add(pause); u.After(g.pausedUntil) {
			g.pausedUntil = u
			tell, until = g.onPause, u
		}
		return pause, began
	}
	if b != nil {
		b.probeUntil = time.Time{} // an answer: the pool's first after a reset, or a later one
	}
	remaining, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Ratelimit-Remaining")))
	reset := rateLimitReset(h, now)
	if b == nil || err != nil || reset <= 0 {
		return 0, false
	}
	if remaining <= 0 {
		b.blockedUntil = now.Add(reset)
		return 0, false
	}
	// What is left of the window, spread to its reset: the bucket never
	// spends in seconds what the peer allows until the window ends.
	b.liveRate, b.liveUntil = float64(remaining)/reset.Seconds(), now.Add(reset)
	atOnce := b.limit.Burst
	if g.shared != nil {
		atOnce = max(atOnce, g.shared.limit.Burst)
	}
	b.liveTight = remaining <= max(1, atOnce)
	b.tokens = min(b.tokens, float64(remaining))
	return 0, false
}

// PausedUntil is the end of the connection's current pause (zero or past
// when none).
func (g *Governor) PausedUntil() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pausedUntil
}

// Waited is the total time requests have waited for this connection.
func (g *Governor) Waited() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waited
}

// MaxPause caps the pause a Retry-After asks for, in either of its forms:
// a day, as for x-ratelimit-reset. A longer value is more likely a broken
// header than a plan, and one request a day to check costs nothing.
const MaxPause = 24 * time.Hour

// RetryAfter reads a Retry-After header: seconds or an HTTP date, clamped
// to MaxPause. Anything else, or a time already past, gives 0.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var wait time.Duration
	if delaySeconds(v) {
		// Digits only, so the one error is a value past float64's range.
		secs, _ := strconv.ParseFloat(v, 64)
		// Compared as seconds: a huge value would overflow a Duration.
		if secs >= MaxPause.Seconds() {
			return MaxPause
		}
		wait = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		wait = t.Sub(now) // saturates rather than overflows
	}
	return min(max(wait, 0), MaxPause)
}

// delaySeconds says whether v is Retry-After's delay-seconds: digits
// (RFC 9110 §10.2.3), or digits with a decimal part, not the RFC's but
// plain in meaning. ParseFloat alone also takes "Inf", "1e400", "0x1p4"
// and "1_000": a broken header paused the connection for a day.
func delaySeconds(v string) bool {
	whole, frac, dot := strings.Cut(v, ".")
	return digits(whole) && (!dot || digits(frac))
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// rateLimitReset reads x-ratelimit-reset (UTC epoch seconds, braze.md §1)
// as a duration from now.
func rateLimitReset(h http.Header, now time.Time) time.Duration {
	secs, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Ratelimit-Reset")), 10, 64)
	if err != nil {
		return 0
	}
	// Not clamped, unlike Retry-After: a reset over a day away is more
	// likely milliseconds sent as seconds than a window.
	if d := time.Unix(secs, 0).Sub(now); d > 0 && d <= MaxPause {
		return d
	}
	return 0
}
