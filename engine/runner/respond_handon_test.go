package runner

import (
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
)

func cachedPipeline(respond string) *engine.Pipeline {
	return &engine.Pipeline{Name: "wallet", Parts: map[string]string{"respond": respond},
		Respond: &engine.Respond{Cache: &engine.ResponseCache{TTL: time.Minute, Stale: time.Hour}}}
}

// A lookup of a retired version that began after the running version
// stored its own answer for the key does not replace that answer with
// its own, which is only a stale copy for the running version: the next
// call missed and looked up again (a review).
func TestHandOnKeepsTheNewestVersionsOwnAnswer(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	r := &Runner{clock: clock}
	prev := newResponder(r, cachedPipeline("v1"))
	next := newResponder(r, cachedPipeline("v2"))
	next.takeOver(prev)
	if next.sameAnswers {
		t.Fatal("setup: the versions answer alike")
	}
	moveClock(clock, time.Second) // the running version answers the key itself
	next.mu.Lock()
	next.keep("k", &engine.Reply{Status: 200, Body: []byte(`{"v":2}`)}, false)
	next.mu.Unlock()
	moveClock(clock, time.Second) // a request the old version took starts its lookup
	began := clock.Now()
	moveClock(clock, time.Second) // and ends
	prev.mu.Lock()
	prev.keep("k", &engine.Reply{Status: 200, Body: []byte(`{"v":1}`)}, false)
	prev.handOn("k", &engine.Reply{Status: 200, Body: []byte(`{"v":1}`)}, began)
	prev.mu.Unlock()
	next.mu.Lock()
	e := next.cache["k"]
	next.mu.Unlock()
	if e.earlier || string(e.body) != `{"v":2}` {
		t.Errorf("the running version's own answer was replaced: %s (earlier: %v)", e.body, e.earlier)
	}
}

// A lookup of a retired version that fails passes its retry_wait (or
// SessionM's 404) on to the running version when that one looks up as it
// does, unless the running version got an answer of its own since the
// lookup began: the running version went on sending SessionM a lookup per
// request while it failed.
func TestHandOnFailure(t *testing.T) {
	const retryWait = 5 * time.Second
	tests := []struct {
		name         string
		nextRespond  string // "v1": only comments changed
		storedAfter  bool   // the running version stored its answer after the lookup began
		notFound     bool
		wantKept     bool
		wantWaitTill bool
	}{
		{"failure, same answers", "v1", false, false, true, true},
		{"404, same answers", "v1", false, true, false, false},
		{"failure, answers changed", "v2", false, false, true, false},
		{"404, answers changed", "v2", false, true, true, false},
		{"failure, own answer since", "v1", true, false, true, false},
		{"404, own answer since", "v1", true, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_000_000, 0)}
			r := &Runner{clock: clock}
			p1, p2 := cachedPipeline("v1"), cachedPipeline(tt.nextRespond)
			p1.Respond.Cache.RetryWait, p2.Respond.Cache.RetryWait = retryWait, retryWait
			prev := newResponder(r, p1)
			prev.mu.Lock()
			prev.keep("k", &engine.Reply{Status: 200, Body: []byte(`{}`)}, false)
			prev.mu.Unlock()
			next := newResponder(r, p2)
			next.takeOver(prev)
			moveClock(clock, time.Second)
			began := clock.Now()
			if tt.storedAfter {
				moveClock(clock, time.Second)
				next.mu.Lock()
				next.keep("k", &engine.Reply{Status: 200, Body: []byte(`{"own":true}`)}, false)
				next.mu.Unlock()
			}
			moveClock(clock, time.Second)
			prev.mu.Lock()
			prev.handOnFailure("k", began, tt.notFound)
			prev.mu.Unlock()
			next.mu.Lock()
			e := next.cache["k"]
			next.mu.Unlock()
			if (e != nil) != tt.wantKept {
				t.Fatalf("the running version's entry kept: %v, want %v", e != nil, tt.wantKept)
			}
			if e == nil {
				return
			}
			want := int64(0)
			if tt.wantWaitTill {
				want = clock.Now().Add(retryWait).UnixNano()
			}
			if got := e.lookupAfter.Load(); got != want {
				t.Errorf("lookupAfter %v, want %v", time.Unix(0, got), time.Unix(0, want))
			}
		})
	}
}
