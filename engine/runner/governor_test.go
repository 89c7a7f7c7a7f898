package runner

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors/braze"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/spec"
)

// fakeClock moves only when someone sleeps on it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(max(d, 0))
	return ctx.Err()
}

// runnerOnAFakeClock is a runner with no pipelines on a clock that moves
// only when waited on, from t0.
func runnerOnAFakeClock(t *testing.T) (r *Runner, clock *fakeClock, t0 time.Time) {
	t.Helper()
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock = &fakeClock{t: t0}
	if r, err = New(Options{Store: store, Clock: clock}); err != nil {
		t.Fatal(err)
	}
	return r, clock, t0
}

// A connection's rate_limit bounds all requests to it, whichever endpoint
// they go to; Braze's documented limits, when there is none, stay per
// endpoint pool as Braze documents them.
func TestRateLimitIsPerConnection(t *testing.T) {
	r, clock, t0 := runnerOnAFakeClock(t)
	// Triggers, /users/track and a raw call: three pools, one account.
	pools := []string{"messaging", "users_track", ""}

	limited := &spec.Connection{Name: "braze", Type: braze.REST, RateLimit: &spec.RateLimit{Requests: 10, Window: time.Second}}
	r.ensureGovernor(limited)
	g := r.governor(limited)
	for i := range 30 {
		if _, err := g.Wait(context.Background(), pools[i%3]); err != nil {
			t.Fatal(err)
		}
	}
	// A burst of 10, then one every 100 ms: the other 20 take 2 s.
	if took := clock.Now().Sub(t0); took != 2*time.Second {
		t.Fatalf("30 requests to a connection limited to 10/s took %v, want 2s", took)
	}

	documented := &spec.Connection{Name: "braze_default", Type: braze.REST}
	r.ensureGovernor(documented)
	g = r.governor(documented)
	from := clock.Now()
	for range 70 { // the trigger pool's burst at 250,000/h
		g.Wait(context.Background(), "messaging")
	}
	if w, _ := g.Wait(context.Background(), "users_track"); w != 0 || !clock.Now().Equal(from) {
		t.Fatalf("/users/track waited %v after the trigger pool's burst; its documented limit is its own", w)
	}
}

// Two folders may each name their Braze connection "braze", for two
// workspaces: each keeps its own limits and pauses.
func TestSameNamedConnectionsOfTwoFoldersKeepTheirOwnGovernors(t *testing.T) {
	r, clock, t0 := runnerOnAFakeClock(t)
	eu := &spec.Connection{Name: "braze", File: "eu/connections.yaml", Type: braze.REST, RateLimit: &spec.RateLimit{Requests: 10, Window: time.Second}}
	us := &spec.Connection{Name: "braze", File: "us/connections.yaml", Type: braze.REST}
	r.ensureGovernor(eu)
	r.ensureGovernor(us) // set last, as a reload may
	if r.governor(eu) == r.governor(us) {
		t.Fatal("the two folders' braze connections share a governor")
	}
	for range 30 {
		if _, err := r.governor(eu).Wait(context.Background(), "messaging"); err != nil {
			t.Fatal(err)
		}
	}
	if took := clock.Now().Sub(t0); took != 2*time.Second {
		t.Fatalf("30 requests to the connection limited to 10/s took %v, want 2s", took)
	}
}
