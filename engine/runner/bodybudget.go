package runner

import "sync"

// DefaultBodyMemory bounds the bytes of webhook bodies being read at once,
// in each of the two rooms (bodyRooms).
const DefaultBodyMemory = 32 << 20

// bodyRooms hold the webhook bodies being read. Each request takes its
// Content-Length (a body of unknown length, twice max_body: io.ReadAll
// grows its buffer by doubling) before it is read and gives it back when
// it is answered. Without them, a caller that needs no credentials to send
// a body (an HMAC route checks the signature only once the body is in; a
// route without auth) could open many connections announcing bodies of
// max_body and hold them all in memory at once: 10 connections of 33 MB
// took the engine to 776 MB. Such callers have a room of their own, so
// that filling it cannot keep out the bodies of callers a bearer token or
// Basic credentials let in before their bodies were read.
type bodyRooms struct {
	unchecked, checked bodyBudget
}

func newBodyRooms(size int64) bodyRooms {
	return bodyRooms{unchecked: bodyBudget{size: size, left: size}, checked: bodyBudget{size: size, left: size}}
}

// bodyBudget is one room.
type bodyBudget struct {
	mu         sync.Mutex
	size, left int64
}

// take reserves n bytes, or reports false at once when they are not free:
// waiting would let slow callers queue up behind each other. A body
// larger than the room takes all of it, so it still goes when the room is
// empty instead of being refused for ever. It returns what it took.
func (b *bodyBudget) take(n int64) (int64, bool) {
	n = min(n, b.size)
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return 0, false
	}
	b.left -= n
	return n, true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}
