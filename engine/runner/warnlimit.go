package runner

import (
	"sync"
	"time"
)

// warnLimiter lets one warning of each kind out a second: failures that
// come at a sender's rate (an outage met by every Connected Content call,
// a sender whose webhooks are all refused) would otherwise log the same
// line thousands of times. The next line that goes out says how many
// were left out.
type warnLimiter struct {
	mu     sync.Mutex
	warned map[string]*warning
}

type warning struct {
	last       time.Time
	suppressed int // lines left out since last
}

// allow reports whether a warning of kind may go out at now and, if so,
// how many of its kind were left out since the last one.
func (wl *warnLimiter) allow(kind string, now time.Time) (ok bool, leftOut int) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.warned == nil {
		wl.warned = map[string]*warning{}
	}
	wn := wl.warned[kind]
	if wn == nil {
		wn = &warning{}
		wl.warned[kind] = wn
	}
	if !wn.last.IsZero() && now.Sub(wn.last) < time.Second {
		wn.suppressed++
		return false, 0
	}
	leftOut = wn.suppressed
	wn.last, wn.suppressed = now, 0
	return true, leftOut
}
