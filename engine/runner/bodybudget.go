package runner

import "sync"

// DefaultBodyMemory bounds the bytes of webhook bodies being read at once,
// across every route.
const DefaultBodyMemory = 64 << 20

// bodyBudget is the room for webhook bodies being read. Each request takes
// its Content-Length (a body of unknown length, the route's max_body)
// before it is read and gives it back when it is answered. Without it, a
// caller that needs no credentials to send a body (an HMAC route checks
// the signature only once the body is in; a route without auth) could
// open many connections announcing bodies of max_body and hold them all
// in memory at once: 10 connections of 33 MB took the engine to 776 MB.
type bodyBudget struct {
	mu   sync.Mutex
	left int64
}

// take reserves n bytes, or reports false at once when they are not free:
// waiting would let slow callers queue up behind each other.
func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}
