package delivery

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// Verdict is what to do with an event after an attempt.
type Verdict int

const (
	// Delivered: the peer accepted it; ack.
	Delivered Verdict = iota
	// Retry: a network error, 408, 429 or 5xx; try again later.
	Retry
	// Reject: any other answer (a 4xx, SessionM's status:error); retrying
	// would get the same answer, so the event is dead-lettered at once.
	Reject
)

func (v Verdict) String() string {
	return [...]string{"delivered", "retry", "rejected"}[v]
}

// Classify judges one answer. err is a transport error (no answer);
// envelopeErr is the connector's reading of a 2xx body, which for SessionM
// can still say "status":"error" (sessionm.md §1).
func Classify(status int, err, envelopeErr error) Verdict {
	switch {
	case err != nil:
		return Retry
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return Retry
	case status >= 200 && status < 300 && envelopeErr == nil:
		return Delivered
	}
	return Reject
}

// Backoff is the wait before attempt number attempt+1 (attempt counts the
// attempts made, from 1): "full jitter", a random time between zero and
// initial×2^(attempt-1) capped at max, so retries of many events spread
// out instead of arriving together.
func Backoff(attempt int, initial, maxWait time.Duration, random func() float64) time.Duration {
	if random == nil {
		random = rand.Float64
	}
	ceiling := maxWait
	if attempt < 63 {
		if d := initial << (attempt - 1); d > 0 && d < maxWait {
			ceiling = d
		}
	}
	return time.Duration(random() * float64(ceiling))
}
