package runner

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Every line of a kind is either written or counted in a written line's
// left_out, whether a next line comes (the count rides on it), none comes
// (the last held back goes out a second later) or the engine stops
// (flushAll).
func TestWarnLimiterAccountsForEveryLine(t *testing.T) {
	var wl warnLimiter
	var mu sync.Mutex
	var written []string // "name:left_out"
	line := func(name string) func(int) {
		return func(left int) {
			mu.Lock()
			defer mu.Unlock()
			written = append(written, name+":"+strconv.Itoa(left))
		}
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(written)
	}
	t0 := time.Unix(1_000_000, 0)
	wl.log("k", t0, line("a"))
	for i, name := range []string{"b", "c", "d"} {
		wl.log("k", t0.Add(time.Duration(i+1)*100*time.Millisecond), line(name))
	}
	wl.log("other", t0, line("x")) // another kind is not held back
	if w := got(); !slices.Equal(w, []string{"a:0", "x:0"}) {
		t.Fatalf("at once: %v", w)
	}
	// No next line: d, the last held back, goes out a second after b was
	// held back, saying b and c were left out.
	deadline := time.Now().Add(5 * time.Second)
	for len(got()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if w := got(); !slices.Equal(w, []string{"a:0", "x:0", "d:2"}) {
		t.Fatalf("a second after: %v", w)
	}
	// That line's second started at d's time: e, over a second after d,
	// goes out; f and g are held back, and the stop writes g, counting f.
	wl.log("k", t0.Add(1500*time.Millisecond), line("e"))
	wl.log("k", t0.Add(2100*time.Millisecond), line("f"))
	wl.log("k", t0.Add(2200*time.Millisecond), line("g"))
	wl.flushAll()
	if w := got(); !slices.Equal(w, []string{"a:0", "x:0", "d:2", "e:0", "g:1"}) {
		t.Fatalf("then: %v", w)
	}
	time.Sleep(1200 * time.Millisecond) // no timer left to write anything twice
	if w := got(); len(w) != 5 {
		t.Fatalf("after the stop: %v", w)
	}
}
