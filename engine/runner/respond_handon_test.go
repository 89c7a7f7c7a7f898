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
