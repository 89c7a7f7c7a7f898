package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/spec"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// fakeClock advances only when someone sleeps on it.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func TestTokenBucketPacesAPool(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Pools: map[string]Limit{"trigger": {Rate: 10, Burst: 2}}})
	var waits []time.Duration
	for range 5 {
		w, err := g.Wait(context.Background(), "trigger")
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	// Two go at once (the burst), then one every 100 ms.
	want := []time.Duration{0, 0, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	if w, _ := g.Wait(context.Background(), "users_track"); w != 0 {
		t.Fatal("a pool without a limit waited")
	}
	if g.Waited() != 300*time.Millisecond {
		t.Fatalf("waited %v in all", g.Waited())
	}
}

// Ready says when a request could go without taking a token, so a batch
// can keep filling until then: the bucket's wait, a pause's end.
func TestReadyTakesNothing(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Pools: map[string]Limit{"trigger": {Rate: 10, Burst: 1}}})
	for range 3 {
		if d, _ := g.Ready("trigger"); d != 0 {
			t.Fatalf("Ready with a token there: %v", d)
		}
	}
	if w, _ := g.Wait(context.Background(), "trigger"); w != 0 {
		t.Fatalf("the token Ready saw was gone: waited %v", w)
	}
	// A token's wait: a request already waiting for it goes first.
	if d, held := g.Ready("trigger"); d != 100*time.Millisecond || held {
		t.Fatalf("Ready after the token went: %v (held %v), want 100ms, not held", d, held)
	}
	// The peer's word holds every request alike.
	g.Observe("trigger", 200, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(t0.Add(2*time.Second).Unix(), 10)}})
	if d, held := g.Ready("trigger"); d != 2*time.Second || !held {
		t.Fatalf("Ready with the window spent: %v (held %v), want 2s, held", d, held)
	}
	g.PauseUntil(t0.Add(3 * time.Second))
	if d, held := g.Ready("users_track"); d != 3*time.Second || !held {
		t.Fatalf("Ready in a pause: %v (held %v), want 3s, held", d, held)
	}
}

// Interval is the time between tokens: the slower of the pool's rate,
// as the peer last said it, and the connection's; 0 while no rate is
// known.
func TestInterval(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Shared: Limit{Rate: 4, Burst: 1}, Pools: map[string]Limit{"trigger": {Rate: 10, Burst: 1}, "open": {}}})
	if d := g.Interval("trigger"); d != 250*time.Millisecond {
		t.Errorf("under the connection's 4/s: %v, want 250ms", d)
	}
	g.SetLimits(Limits{Pools: map[string]Limit{"trigger": {Rate: 10, Burst: 1}, "open": {}}})
	if d := g.Interval("trigger"); d != 100*time.Millisecond {
		t.Errorf("the pool's 10/s: %v, want 100ms", d)
	}
	if d := g.Interval("open"); d != 0 {
		t.Errorf("a pool with no rate: %v, want 0", d)
	}
	reset := strconv.FormatInt(t0.Add(10*time.Second).Unix(), 10)
	g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"5"}, "X-Ratelimit-Reset": {reset}})
	if d := g.Interval("trigger"); d != 2*time.Second {
		t.Errorf("the peer's 5 left for 10 s: %v, want 2s", d)
	}
	g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}})
	if d := g.Interval("trigger"); d != 0 {
		t.Errorf("a spent window: %v, want 0 (no rate known until the next one)", d)
	}
}

// A documented "n per window" never lets more than n go in any window of
// that length, on a clock that moves only when the governor waits; and n
// do fit in one window, so the limit is not paid for in throughput.
func TestPerWindowNeverExceedsTheWindow(t *testing.T) {
	tests := []struct {
		n      int
		window time.Duration
	}{
		// Braze's /users/track and broadcasts (braze.md §1); its 250,000
		// an hour is the same arithmetic, at 250,000 waits a window.
		{3000, 3 * time.Second},
		{250, time.Minute},
		{10, time.Second},
		{7, 3 * time.Second},
		{2, time.Minute},
		{1, time.Minute},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d per %v", tt.n, tt.window), func(t *testing.T) {
			c := &fakeClock{t: t0}
			g := NewGovernor(c, Limits{Pools: map[string]Limit{"p": PerWindow(tt.n, tt.window)}})
			// Every window from the first min(n, 1000) requests is checked.
			at := make([]time.Time, 0, tt.n+min(tt.n, 1000)+1)
			for range cap(at) {
				if _, err := g.Wait(context.Background(), "p"); err != nil {
					t.Fatal(err)
				}
				at = append(at, c.Now())
			}
			for i := 0; i+tt.n < len(at); i++ {
				if d := at[i+tt.n].Sub(at[i]); d < tt.window {
					t.Fatalf("%d requests within %v, from request %d at %v", tt.n+1, d, i, at[i].Sub(t0))
				}
			}
			if d := at[tt.n-1].Sub(at[0]); d >= tt.window {
				t.Fatalf("the first %d requests took %v, more than one window", tt.n, d)
			}
		})
	}
}

// The burst absorbs requests that come in clumps: a second's worth of the
// plain rate for long windows (Braze's 250,000 an hour, which batches of
// 50 recipients fill at once), a fiftieth of the window for short ones;
// the rate gives up at most a fiftieth for it.
func TestPerWindowBurst(t *testing.T) {
	tests := []struct {
		n         int
		window    time.Duration
		wantBurst int
	}{
		{250_000, time.Hour, 70},
		{250, time.Minute, 5},
		{3000, 3 * time.Second, 60},
		{10, time.Second, 1},
		{1, time.Minute, 1},
	}
	for _, tt := range tests {
		l := PerWindow(tt.n, tt.window)
		plain := float64(tt.n) / tt.window.Seconds()
		if l.Burst != tt.wantBurst || l.Rate < plain*0.98 || l.Rate > plain {
			t.Errorf("%d per %v: rate %.3f burst %d, want burst %d and a rate of %.3f less at most a fiftieth", tt.n, tt.window, l.Rate, l.Burst, tt.wantBurst, plain)
		}
	}
}

// A 429 or Retry-After pauses the whole connection: no request to any pool
// goes before the time given.
func TestPauseStopsEveryPool(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		pause  time.Duration
	}{
		{"Retry-After seconds on 429", 429, http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"Retry-After on 503", 503, http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{"Retry-After as a date", 429, http.Header{"Retry-After": {t0.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"429 with only x-ratelimit-reset", 429, http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(t0.Add(30*time.Second).Unix(), 10)}}, 30 * time.Second},
		{"429 with nothing", 429, http.Header{}, time.Second},
		{"200 pauses nothing", 200, http.Header{}, 0},
		// A 2xx took the request: its Retry-After (an async API's 202
		// saying when to poll) is no request to wait. It paused the
		// connection for as long (a QA run).
		{"Retry-After on 202", 202, http.Header{"Retry-After": {"600"}}, 0},
		{"Retry-After on 500", 500, http.Header{"Retry-After": {"4"}}, 4 * time.Second},
		{"garbage Retry-After", 503, http.Header{"Retry-After": {"soon"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{t: t0}
			g := NewGovernor(c, Limits{Pools: map[string]Limit{"trigger": {Rate: 1000, Burst: 10}}})
			if got, _ := g.Observe("trigger", tt.status, tt.header); got != tt.pause {
				t.Fatalf("pause %v, want %v", got, tt.pause)
			}
			w, _ := g.Wait(context.Background(), "users_track")
			if w != tt.pause {
				t.Fatalf("another pool waited %v, want %v", w, tt.pause)
			}
			if tt.pause > 0 && c.Now().Before(t0.Add(tt.pause)) {
				t.Fatal("a request went before the pause ended")
			}
		})
	}
}

func TestRemainingZeroBlocksThePoolUntilReset(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Pools: map[string]Limit{"trigger": {Rate: 1000, Burst: 10}}})
	h := http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(t0.Add(5*time.Second).Unix(), 10)}}
	g.Observe("trigger", 201, h)
	if w, _ := g.Wait(context.Background(), "users_track"); w != 0 {
		t.Fatal("another pool was blocked by trigger's window")
	}
	if w, _ := g.Wait(context.Background(), "trigger"); w != 5*time.Second {
		t.Fatalf("trigger waited %v, want until the reset", w)
	}
}

// When the peer's spent window resets, one request goes first and the
// rest wait for its answer (what the new window holds), up to probeWait:
// the tokens earned while blocked all went at once and overran a window
// smaller than the configured limit. The same when the connection's
// rate_limit paces it, and the pool has no rate of its own.
func TestAfterTheResetOneRequestGoesFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
	}{
		{"the pool's own limit", Limits{Pools: map[string]Limit{"trigger": PerWindow(250_000, time.Hour)}}},
		{"the connection's rate_limit", Limits{Shared: PerWindow(250_000, time.Hour), Pools: map[string]Limit{"trigger": {}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{t: t0}
			g := NewGovernor(c, tc.limits)
			reset := func(at time.Duration) string { return strconv.FormatInt(t0.Add(at).Unix(), 10) }
			g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset(5 * time.Second)}})
			if w, _ := g.Wait(context.Background(), "trigger"); w != 5*time.Second {
				t.Fatalf("the first request waited %v, want until the reset", w)
			}
			// No answer: the second waits for it, up to probeWait.
			if w, _ := g.Wait(context.Background(), "trigger"); w < probeWait {
				t.Fatalf("a second request went %v after the first, before its answer", w)
			}
			// With an answer, the next goes at once.
			g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"3"}, "X-Ratelimit-Reset": {reset(10 * time.Second)}})
			if w, _ := g.Wait(context.Background(), "trigger"); w > 20*time.Millisecond {
				t.Fatalf("after the answer a request waited %v", w)
			}
		})
	}
}

func TestWaitHonoursCancel(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{})
	g.Observe("x", 429, http.Header{"Retry-After": {"60"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Wait(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestClassify(t *testing.T) {
	envelope := errors.New("sessionm answered status error")
	tests := []struct {
		status   int
		err, env error
		want     Verdict
	}{
		{200, nil, nil, Delivered},
		{201, nil, nil, Delivered},
		{0, errors.New("connection refused"), nil, Retry},
		{408, nil, nil, Retry},
		{429, nil, nil, Retry},
		{500, nil, nil, Retry},
		{503, nil, nil, Retry},
		{400, nil, nil, Reject},
		{401, nil, nil, Reject},
		{404, nil, nil, Reject},
		{422, nil, nil, Reject},
		{302, nil, nil, Reject},
		{200, nil, envelope, Reject}, // sessionm.md §1: 200 with status:error
		// sessionm.md §7 (A): a code the connection lists is retried, under
		// any status; a wrapped mark counts too
		{200, nil, spec.Retryable(envelope), Retry},
		{422, nil, spec.Retryable(envelope), Retry},
		{200, nil, fmt.Errorf("lookup: %w", spec.Retryable(envelope)), Retry},
	}
	for _, tt := range tests {
		if got := Classify(tt.status, tt.err, tt.env); got != tt.want {
			t.Errorf("%d %v %v: %v, want %v", tt.status, tt.err, tt.env, got, tt.want)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	top := func() float64 { return 0.999999 }
	initial, maxWait := 500*time.Millisecond, 5*time.Minute
	for attempt, ceiling := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 4: 4 * time.Second, 10: 256 * time.Second, 11: maxWait, 100: maxWait} {
		got := Backoff(attempt, initial, maxWait, top)
		if got > ceiling || got < ceiling*99/100 {
			t.Errorf("attempt %d: %v, want just under %v", attempt, got, ceiling)
		}
	}
	if got := Backoff(3, initial, maxWait, func() float64 { return 0 }); got != 0 {
		t.Fatalf("jitter at 0: %v", got)
	}
	// With the real random source the waits spread over the range.
	low, high := 0, 0
	for range 1000 {
		if Backoff(4, initial, maxWait, nil) < 2*time.Second {
			low++
		} else {
			high++
		}
	}
	if low < 400 || high < 400 {
		t.Fatalf("waits not spread: %d below half, %d above", low, high)
	}
}

// x-ratelimit-remaining and -reset slow a pool live: 5 requests left for
// 10 s means one every 2 s, whatever the configured limit allows.
func TestRemainingSpreadsUntilReset(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Pools: map[string]Limit{"messaging": {Rate: 100, Burst: 10}}})
	g.Observe("messaging", 201, http.Header{"X-Ratelimit-Remaining": {"5"}, "X-Ratelimit-Reset": {strconv.FormatInt(t0.Add(10*time.Second).Unix(), 10)}})
	var waited time.Duration
	for range 6 {
		w, _ := g.Wait(context.Background(), "messaging")
		waited += w
	}
	// The 5 left go at once; the sixth waits for the slowed bucket.
	if waited < 1900*time.Millisecond || waited > 2100*time.Millisecond {
		t.Fatalf("six requests waited %v in all, want about 2s", waited)
	}
	// After the reset, one request goes first, and the others wait for
	// its answer: back at the configured rate with its burst, 24 went at
	// once into a window of 20 (QA).
	c.mu.Lock()
	c.t = t0.Add(11 * time.Second)
	c.mu.Unlock()
	if w, _ := g.Wait(context.Background(), "messaging"); w != 0 {
		t.Fatalf("the first request after the reset waited %v", w)
	}
	if w, _ := g.Wait(context.Background(), "messaging"); w < probeWait {
		t.Fatalf("a second request went %v after the first, before its answer", w)
	}
	// The answer says the new window is large: the configured rate is
	// back.
	g.Observe("messaging", 201, http.Header{"X-Ratelimit-Remaining": {"5000"}, "X-Ratelimit-Reset": {strconv.FormatInt(c.Now().Add(10*time.Second).Unix(), 10)}})
	before := g.Waited()
	for range 10 {
		g.Wait(context.Background(), "messaging")
	}
	if g.Waited()-before > 100*time.Millisecond {
		t.Fatalf("after the answer, ten requests waited %v", g.Waited()-before)
	}
}

// A window the peer's last answer left far from spent (more left than the
// limits let go at once) needs no first request after its reset: the
// engine was not at the peer's limit.
func TestAResetOfALooseWindowIsNotProbed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limits    Limits
		pool      string
		remaining string
	}{
		{"the pool's own limit", Limits{Pools: map[string]Limit{"messaging": {Rate: 10, Burst: 5}}}, "messaging", "5000"},
		// A Braze connection with a rate_limit: its pools have no rate of
		// their own. Probed, /users/track waited a round trip every 3 s.
		{"the connection's rate_limit", Limits{Shared: PerWindow(3000, 3*time.Second), Pools: map[string]Limit{"users_track": {}}}, "users_track", "2999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{t: t0}
			g := NewGovernor(c, tc.limits)
			g.Observe(tc.pool, 201, http.Header{"X-Ratelimit-Remaining": {tc.remaining}, "X-Ratelimit-Reset": {strconv.FormatInt(t0.Add(3*time.Second).Unix(), 10)}})
			c.mu.Lock()
			c.t = t0.Add(4 * time.Second)
			c.mu.Unlock()
			var waited time.Duration
			for range 3 {
				w, _ := g.Wait(context.Background(), tc.pool)
				waited += w
			}
			if waited != 0 {
				t.Fatalf("three requests within the burst after a loose window's reset waited %v", waited)
			}
		})
	}
}

// Both forms of Retry-After mean the same wait and get the same cap: a
// value past it is clamped, not dropped (which left a 429 paused for the
// default second only).
func TestRetryAfter(t *testing.T) {
	date := func(d time.Duration) string { return t0.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"30", 30 * time.Second},
		{" 1.5 ", 1500 * time.Millisecond},
		{date(30 * time.Second), 30 * time.Second},
		{"86400", 24 * time.Hour},
		{date(24 * time.Hour), 24 * time.Hour},
		{"86401", 24 * time.Hour},
		{date(24*time.Hour + time.Second), 24 * time.Hour},
		{"31536000", 24 * time.Hour}, // a year
		{date(365 * 24 * time.Hour), 24 * time.Hour},
		{"99999999999999999999999", 24 * time.Hour}, // beyond a Duration
		{strings.Repeat("9", 400), 24 * time.Hour},  // beyond a float64
		{"0.5", 500 * time.Millisecond},
		{"Mon, 01 Jan 9999 00:00:00 GMT", 24 * time.Hour},
		{"0", 0},
		{"-5", 0},
		{"NaN", 0},
		{date(-time.Second), 0},
		{"soon", 0},
		{"", 0},
		// Neither delay-seconds (digits) nor a date, though ParseFloat
		// reads them: Inf paused the connection for a day.
		{"Inf", 0},
		{"+Inf", 0},
		{"Infinity", 0},
		{"1e400", 0},
		{"1e2", 0},
		{"0x10", 0},
		{"0x1p4", 0},
		{"1_000", 0},
		{"+5", 0},
		{"-0", 0},
		{"3s", 0},
		{"1.", 0},
		{".5", 0},
		{"1.2.3", 0},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.value, t0); got != tt.want {
			t.Errorf("Retry-After %q: %v, want %v", tt.value, got, tt.want)
		}
	}
	// A 429 that asks for more than the cap pauses for the cap.
	g := NewGovernor(&fakeClock{t: t0}, Limits{})
	if got, _ := g.Observe("", 429, http.Header{"Retry-After": {"172800"}}); got != MaxPause || !g.PausedUntil().Equal(t0.Add(MaxPause)) {
		t.Fatalf("429 with Retry-After of two days: paused %v, until %v", got, g.PausedUntil())
	}
}

// A connection's shared limit paces all its pools together: at 10/s,
// thirty requests spread over three pools take three seconds, not one.
// A pool's spent window still blocks only that pool.
func TestSharedLimitPacesEveryPool(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Shared: Limit{Rate: 10, Burst: 1}, Pools: map[string]Limit{"messaging": {}, "users_track": {}, "": {}}})
	pools := []string{"messaging", "users_track", ""}
	for i := range 30 {
		if _, err := g.Wait(context.Background(), pools[i%3]); err != nil {
			t.Fatal(err)
		}
	}
	// The first goes at once, then one every 100 ms.
	if took := c.Now().Sub(t0); took != 2900*time.Millisecond {
		t.Fatalf("30 requests over three pools took %v at 10/s, want 2.9s", took)
	}
	now := c.Now()
	g.Observe("messaging", 201, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(now.Add(5*time.Second).Unix(), 10)}})
	if w, _ := g.Wait(context.Background(), "users_track"); w != 100*time.Millisecond {
		t.Fatalf("users_track waited %v, want only its turn in the shared bucket", w)
	}
	if w, _ := g.Wait(context.Background(), "messaging"); w < 4*time.Second {
		t.Fatalf("messaging waited %v, want until its window resets", w)
	}
}

// SetLimits changes a governor in place: the pause the peer asked for, a
// pool's spent window and the tokens already spent carry over.
func TestSetLimitsKeepsWhatThePeerSaid(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{Pools: map[string]Limit{"messaging": {Rate: 1, Burst: 1}, "users_track": {Rate: 1000, Burst: 10}}})
	if w, _ := g.Wait(context.Background(), "messaging"); w != 0 {
		t.Fatalf("first request waited %v", w)
	}
	g.SetLimits(Limits{Pools: map[string]Limit{"messaging": {Rate: 1, Burst: 1}, "users_track": {Rate: 1000, Burst: 10}}})
	if w, _ := g.Wait(context.Background(), "messaging"); w != time.Second {
		t.Fatalf("after the same limits were set again, the second request waited %v, want 1s: the spent token came back", w)
	}

	start := c.Now()
	g.Observe("users_track", 201, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(start.Add(60*time.Second).Unix(), 10)}})
	g.Observe("messaging", 429, http.Header{"Retry-After": {"30"}})
	g.SetLimits(Limits{Shared: Limit{Rate: 10, Burst: 1}})
	if !g.PausedUntil().Equal(start.Add(30 * time.Second)) {
		t.Fatalf("paused until %v after new limits, want %v", g.PausedUntil(), start.Add(30*time.Second))
	}
	if w, _ := g.Wait(context.Background(), "messaging"); w != 30*time.Second {
		t.Fatalf("messaging waited %v, want the 30s pause", w)
	}
	if w, _ := g.Wait(context.Background(), "users_track"); w != 30*time.Second {
		t.Fatalf("users_track waited %v more, want until its window resets 60s in", w)
	}
	// The new shared limit holds: one every 100 ms.
	if w, _ := g.Wait(context.Background(), "other"); w != 100*time.Millisecond {
		t.Fatalf("a request after the new limit waited %v, want 100ms", w)
	}
}

// A 429 to an Isolated pool (a narrower window inside the account's)
// holds back that pool only; a Retry-After on another status still
// pauses the whole connection.
func TestIsolatedPool429BlocksThatPoolOnly(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    http.Header
		connPause time.Duration // what the other pools wait
	}{
		{"429 with Retry-After", 429, http.Header{"Retry-After": {"20"}}, 0},
		{"429 with only x-ratelimit-reset", 429, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(t0.Add(20*time.Second).Unix(), 10)}}, 0},
		{"503 with Retry-After", 503, http.Header{"Retry-After": {"20"}}, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{t: t0}
			g := NewGovernor(c, Limits{Pools: map[string]Limit{
				"broadcast": {Rate: 100, Burst: 10, Isolated: true},
				"messaging": {Rate: 100, Burst: 10},
			}})
			if got, _ := g.Observe("broadcast", tt.status, tt.header); got != tt.connPause {
				t.Fatalf("Observe set a connection pause of %v, want %v", got, tt.connPause)
			}
			if w, _ := g.Wait(context.Background(), "messaging"); w != tt.connPause {
				t.Fatalf("another pool waited %v, want %v", w, tt.connPause)
			}
			if w, _ := g.Wait(context.Background(), "broadcast"); c.Now().Before(t0.Add(20 * time.Second)) {
				t.Fatalf("the pool went at %v after waiting %v, before the time given", c.Now(), w)
			}
		})
	}
}

// Queued counts the requests waiting for a token of the pool, and, under
// a connection's own rate_limit, those of its other pools; a request
// that leaves, with its token or cancelled, is no longer counted.
func TestQueuedCountsWaitingRequests(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared ", shared), func(t *testing.T) {
			limits := Limits{Pools: map[string]Limit{"a": {Rate: 1.0 / 3600, Burst: 1}, "b": {Rate: 1.0 / 3600, Burst: 1}}}
			if shared {
				limits.Shared = Limit{Rate: 1000, Burst: 1000}
			}
			g := NewGovernor(RealClock{}, limits)
			g.Wait(context.Background(), "a") // the burst
			g.Wait(context.Background(), "b")
			ctx, cancel := context.WithCancel(context.Background())
			var left sync.WaitGroup
			for _, pool := range []string{"a", "a", "b"} {
				left.Go(func() { g.Wait(ctx, pool) })
			}
			wantA := 2
			if shared {
				wantA = 3
			}
			deadline := time.Now().Add(5 * time.Second)
			for g.Queued("a") != wantA && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := g.Queued("a"); n != wantA {
				t.Errorf("Queued(a) = %d, want %d", n, wantA)
			}
			cancel()
			left.Wait()
			if n := g.Queued("a"); n != 0 {
				t.Errorf("Queued(a) = %d after every request left, want 0", n)
			}
		})
	}
}

func TestTurns(t *testing.T) {
	g := NewGovernor(&fakeClock{t: t0}, Limits{})
	first, second, other := new(int), new(int), new(int)
	g.HoldTurn(first, "trigger", t0.Add(time.Second))
	g.HoldTurn(second, "trigger", t0.Add(2*time.Second))
	g.HoldTurn(other, "track", t0)
	for _, tt := range []struct {
		owner any
		at    time.Time
		want  int
	}{
		{second, t0.Add(2 * time.Second), 1},
		{first, t0.Add(time.Second), 0},
		{new(int), time.Time{}, 2},
		{new(int), t0.Add(90 * time.Second), 2},
	} {
		if n := g.TurnsBefore(tt.owner, "trigger", tt.at); n != tt.want {
			t.Errorf("TurnsBefore(at %v) = %d, want %d", tt.at.Sub(t0), n, tt.want)
		}
	}
	g.DropTurn(first)
	if n := g.TurnsBefore(second, "trigger", t0.Add(2*time.Second)); n != 0 {
		t.Errorf("a dropped turn still counts: %d", n)
	}
}

// A burst of 429s answered together is one pause: each answer inside it
// extends it, and only an answer after its end begins another. The
// pauses metric counted every 429 (a QA run saw 3 for one burst).
func TestObserveSaysWhenAPauseBegins(t *testing.T) {
	c := &fakeClock{t: t0}
	g := NewGovernor(c, Limits{})
	retry := http.Header{"Retry-After": {"3"}}
	steps := []struct {
		after time.Duration // since t0
		want  bool
	}{
		{0, true},
		{0, false},
		{time.Millisecond, false},
		{2 * time.Second, false}, // extends it to 5 s
		{5 * time.Second, true},  // at its end: a new one
		{5*time.Second + time.Millisecond, false},
	}
	for i, s := range steps {
		c.t = t0.Add(s.after)
		if pause, began := g.Observe("", 429, retry); pause != 3*time.Second || began != s.want {
			t.Fatalf("answer %d at +%v: pause %v, began %v; want 3s, %v", i, s.after, pause, began, s.want)
		}
	}
	if _, began := g.Observe("", 200, http.Header{}); began {
		t.Fatal("a 200 began a pause")
	}
}

// Resume ends a pause and a spent window before their time, as an
// operator asks, and wakes a request waiting for them: it slept through a
// day's pause otherwise. What it ended is returned; the spent window's
// first request goes alone, as at its reset.
func TestResumeEndsPausesAndWakesWaiters(t *testing.T) {
	g := NewGovernor(RealClock{}, Limits{Pools: map[string]Limit{"messaging": {Rate: 100, Burst: 10}, "broadcast": {Rate: 1, Burst: 1, Isolated: true}}})
	now := time.Now()
	g.Observe("broadcast", 429, http.Header{"Retry-After": {"600"}})
	g.Observe("messaging", 201, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}})
	g.Observe("users_track", 503, http.Header{"Retry-After": {"3600"}})
	if from, until := g.Held(); until.Before(now.Add(59*time.Minute)) || from.Before(now.Add(9*time.Minute)) || from.After(now.Add(11*time.Minute)) {
		t.Fatalf("held from %v until %v; want from the broadcasts' 10 minutes to the hour's pause", from, until)
	}
	done := make(chan error, 1)
	go func() { _, err := g.Wait(context.Background(), "users_track"); done <- err }()
	for g.Queued("users_track") == 0 {
		time.Sleep(time.Millisecond)
	}
	paused, pools := g.Resume()
	if paused.Before(now.Add(59*time.Minute)) || len(pools) != 2 || pools["broadcast"].Before(now.Add(9*time.Minute)) || pools["messaging"].Before(now.Add(59*time.Minute)) {
		t.Errorf("Resume ended %v and %v; want the hour's pause, the broadcasts' 10 minutes and messaging's hour", paused, pools)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request waiting for the pause did not go after Resume")
	}
	if from, until := g.Held(); !from.IsZero() || !until.IsZero() {
		t.Errorf("held from %v until %v after Resume; want nothing", from, until)
	}
	for _, pool := range []string{"broadcast", "messaging"} {
		if d, held := g.Ready(pool); d != 0 || held {
			t.Errorf("%s could go in %v (held %v) after Resume; want now", pool, d, held)
		}
	}
	if _, err := g.Wait(context.Background(), "messaging"); err != nil {
		t.Fatal(err)
	}
	if d, _ := g.Ready("messaging"); d == 0 {
		t.Error("a second messaging request could go before the answer to the first after the spent window; want it to wait for that answer, as at a reset")
	}
	if paused, pools := g.Resume(); !paused.IsZero() || pools != nil {
		t.Errorf("a second Resume ended %v and %v; want nothing", paused, pools)
	}
}
