package emulator

import (
	"time"
)

// Limit is a number of requests per fixed window.
type Limit struct {
	Requests int           `yaml:"requests"`
	Window   time.Duration `yaml:"window"`
}

// Limits are the rate limits the emulator enforces (braze.md §1 "Default
// rate limits"). Windows are fixed and aligned to the injected clock (the
// Unix epoch), which is enough to see X-RateLimit-* move and 429s happen.
type Limits struct {
	// Trigger is the pool shared by /campaigns/trigger/send and
	// /canvas/trigger/send when they name recipients: 250,000 per hour.
	Trigger Limit
	// Broadcast applies instead when a trigger call has broadcast: true
	// or an audience: 250 per minute (A: such a call counts against this
	// pool only).
	Broadcast Limit
	// UsersTrack is /users/track: 3,000 per 3 seconds.
	UsersTrack Limit
}

// DefaultLimits are the documented defaults (braze.md §1).
var DefaultLimits = Limits{
	Trigger:    Limit{Requests: 250_000, Window: time.Hour},
	Broadcast:  Limit{Requests: 250, Window: time.Minute},
	UsersTrack: Limit{Requests: 3_000, Window: 3 * time.Second},
}

type bucketID uint8

const (
	bTrigger bucketID = iota
	bBroadcast
	bUsersTrack
	nBuckets
)

type bucket struct {
	limit  int
	window int64 // nanoseconds
	start  int64 // Unix nanoseconds of the current window
	count  int
}

// rlState is what the X-RateLimit-* headers say about one request.
type rlState struct {
	limit, remaining int
	reset            int64 // Unix seconds
	retryAfter       int64 // seconds, for a 429
	exceeded         bool
}

// take counts a request (when consume is set) and reports the bucket's
// state. Called with Emulator.rlMu held.
func (b *bucket) take(now time.Time, consume bool) rlState {
	ns := now.UnixNano()
	start := ns - mod(ns, b.window)
	if start != b.start {
		b.start, b.count = start, 0
	}
	st := rlState{limit: b.limit}
	if consume {
		if b.count >= b.limit {
			st.exceeded = true
		} else {
			b.count++
		}
	}
	st.remaining = b.limit - b.count
	end := b.start + b.window
	st.reset = ceilDiv(end, int64(time.Second))
	st.retryAfter = ceilDiv(end-ns, int64(time.Second))
	if st.retryAfter < 1 {
		st.retryAfter = 1
	}
	return st
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}

// effectiveLimits layers the limits: documented defaults, then the seed's
// settings, then the non-zero fields of Options.Limits.
func effectiveLimits(seed SeedLimits, opt Limits) Limits {
	l := DefaultLimits
	pick := func(dst *Limit, fromSeed *Limit, fromOpt Limit) {
		if fromSeed != nil {
			*dst = *fromSeed
		}
		if fromOpt.Requests > 0 {
			dst.Requests = fromOpt.Requests
		}
		if fromOpt.Window > 0 {
			dst.Window = fromOpt.Window
		}
	}
	pick(&l.Trigger, seed.Trigger, opt.Trigger)
	pick(&l.Broadcast, seed.Broadcast, opt.Broadcast)
	pick(&l.UsersTrack, seed.UsersTrack, opt.UsersTrack)
	return l
}
