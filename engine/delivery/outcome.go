package delivery

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/loyalty-connector/engine/engine/spec"
)

// Verdict is what to do with an event after an attempt.
type Verdict int

const (
	// Delivered: the peer accepted it; ack.
	Delivered Verdict = iota
	// Retry: a network error, 408, 429 or 5xx, or an answer the
	// connection marked spec.Retryable; try again later.
	Retry
	// Reject: any other answer (a 4xx, SessionM's status:error); retrying
	// would get the same answer, so the event is dead-lettered at once.
	Reject
)

func (v Verdict) String() string {
	return [...]string{"delivered", "retry", "rejected"}[v]
}

// Classify judges one answer. err is a transport error (no answer);
// envelopeErr is the connector's reading of the answer, which for SessionM
// can say "status":"error" under a 2xx (sessionm.md §1).
//
// Neither peer documents what is worth retrying for SessionM: the rule
// here is assumed (A, sessionm.md §7): 5xx and 429 are retried, other
// 4xx and 200 + "status":"error" are not, unless the connection marks
// the error spec.Retryable (SessionM's retry_error_codes setting).
func Classify(status int, err, envelopeErr error) Verdict {
	switch {
	case err != nil:
		return Retry
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return Retry
	case envelopeErr == nil && status >= 200 && status < 300:
		return Delivered
	case envelopeErr != nil && spec.IsRetryable(envelopeErr):
		return Retry
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
