package runner

import (
	"sync"
	"time"
)

// warnLimiter lets one line of each kind out a second: failures that come
// at a sender's rate (an outage met by every Connected Content call, a
// sender whose webhooks are all refused) would otherwise log the same line
// thousands of times. The next line that goes out says how many were left
// out; when none comes, the last one left out goes out a second after the
// first was held back, or when the engine stops, with the count of the
// others: held for a next line that never came, the count of a burst was
// lost (a QA run).
type warnLimiter struct {
	mu     sync.Mutex
	warned map[string]*warning
}

type warning struct {
	last       time.Time
	suppressed int         // lines left out since last
	latest     func(int)   // the last of them, to write if no line comes
	latestAt   time.Time   // its time
	timer      *time.Timer // writes latest
	round      int         // counts timers, so a late one writes nothing of a later round
}

// log writes a line of kind, by calling emit with how many lines of its
// kind were left out since the last one, unless one went out less than a
// second before now.
func (wl *warnLimiter) log(kind string, now time.Time, emit func(leftOut int)) {
	wl.mu.Lock()
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
		wn.latest, wn.latestAt = emit, now
		if wn.timer == nil {
			wn.round++
			round := wn.round
			wn.timer = time.AfterFunc(time.Second, func() { wl.flush(kind, round) })
		}
		wl.mu.Unlock()
		return
	}
	leftOut := wn.suppressed
	wn.last, wn.suppressed, wn.latest = now, 0, nil
	if wn.timer != nil {
		wn.timer.Stop()
		wn.timer = nil
	}
	wl.mu.Unlock()
	emit(leftOut)
}

// flush writes the last line of kind left out, with how many others were,
// unless round is not the timer's now (0: any, for a stop).
func (wl *warnLimiter) flush(kind string, round int) {
	wl.mu.Lock()
	wn := wl.warned[kind]
	if round != 0 && round != wn.round {
		wl.mu.Unlock()
		return // a line went out meanwhile, and another timer holds this round
	}
	latest, others := wn.latest, wn.suppressed-1
	wn.suppressed, wn.latest = 0, nil
	if latest != nil {
		// The line written is the latest held back: the next second
		// starts at its time.
		wn.last = wn.latestAt
	}
	if wn.timer != nil {
		wn.timer.Stop()
		wn.timer = nil
	}
	wl.mu.Unlock()
	if latest != nil {
		latest(others)
	}
}

// flushAll writes what every kind holds back, for a stop.
func (wl *warnLimiter) flushAll() {
	wl.mu.Lock()
	kinds := make([]string, 0, len(wl.warned))
	for kind, wn := range wl.warned {
		if wn.latest != nil {
			kinds = append(kinds, kind)
		}
	}
	wl.mu.Unlock()
	for _, kind := range kinds {
		wl.flush(kind, 0)
	}
}
