package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors/braze"
	brazeemu "github.com/loyalty-connector/engine/connectors/braze/emulator"
	"github.com/loyalty-connector/engine/engine/delivery"
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
	// Never more than 10 in a second: one at once, then one every 100 ms.
	if took := clock.Now().Sub(t0); took != 2900*time.Millisecond {
		t.Fatalf("30 requests to a connection limited to 10/s took %v, want 2.9s", took)
	}

	documented := &spec.Connection{Name: "braze_default", Type: braze.REST}
	r.ensureGovernor(documented)
	g = r.governor(documented)
	// Spend the trigger pool until it holds a request back.
	for {
		if w, _ := g.Wait(context.Background(), "messaging"); w > 0 {
			break
		}
	}
	if w, _ := g.Wait(context.Background(), "users_track"); w != 0 {
		t.Fatalf("/users/track waited %v after the trigger pool was spent; its documented limit is its own", w)
	}
}

// Two folders may each name their Braze connection "braze", for two
// workspaces: each keeps its own limits and pauses.
func TestSameNamedConnectionsOfTwoFoldersKeepTheirOwnGovernors(t *testing.T) {
	r, clock, t0 := runnerOnAFakeClock(t)
	eu := &spec.Connection{Name: "braze", File: "eu/connections.yaml", Type: braze.REST, BaseURL: mustURL(t, "https://rest.fra-01.braze.eu"),
		Fields: map[string]string{"api_key": "eu-key"}, RateLimit: &spec.RateLimit{Requests: 10, Window: time.Second}}
	us := &spec.Connection{Name: "braze", File: "us/connections.yaml", Type: braze.REST, BaseURL: mustURL(t, "https://rest.iad-01.braze.com"),
		Fields: map[string]string{"api_key": "us-key"}}
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
	if took := clock.Now().Sub(t0); took != 2900*time.Millisecond {
		t.Fatalf("30 requests to the connection limited to 10/s took %v, want 2.9s", took)
	}
}

// Two folders' connections of one name to one workspace (one base URL,
// one key) count against its one set of limits, and a 429 to either
// pauses both: with a governor each, they went at twice Braze's limit and
// one ignored the other's 429s (a QA run). braze.md §1: limits are per
// workspace. A connection of another name keeps its own (a slower one
// for a bulk pipeline, whose rate_limit was taken by chance for both when
// the account alone decided, a QA run).
func TestConnectionsToOneAccountShareAGovernor(t *testing.T) {
	r, _, _ := runnerOnAFakeClock(t)
	base := mustURL(t, "https://rest.iad-01.braze.com")
	a := &spec.Connection{Name: "braze", File: "team-a/connections.yaml", Type: braze.REST, BaseURL: base, Fields: map[string]string{"api_key": "k"}}
	b := &spec.Connection{Name: "braze", File: "team-b/connections.yaml", Type: braze.REST, BaseURL: mustURL(t, "https://REST.iad-01.braze.com/"), Fields: map[string]string{"api_key": "k", "users_track_max_updates": "50"}}
	bulk := &spec.Connection{Name: "braze_bulk", File: "team-a/connections.yaml", Type: braze.REST, BaseURL: base, Fields: map[string]string{"api_key": "k"},
		RateLimit: &spec.RateLimit{Requests: 2, Window: time.Second}}
	for _, c := range []*spec.Connection{a, b, bulk} {
		r.ensureGovernor(c)
	}
	if r.governor(a) != r.governor(b) {
		t.Fatal("two folders' braze connections to one workspace (the host in another case, another setting) have governors of their own")
	}
	if r.governor(a) == r.governor(bulk) {
		t.Fatal("a connection of another name shares the governor, and its rate_limit")
	}
	r.governor(a).Observe("messaging", http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}})
	if until := r.governor(b).PausedUntil(); until.IsZero() {
		t.Error("a 429 to one connection did not pause the other of its workspace")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// braze.md §1: a broadcast has a window of its own, 250 calls a minute.
// What Braze says of that window (its x-ratelimit-* headers, its 429)
// holds back broadcasts only: recipient triggers, in the 250,000 an hour,
// and /users/track go on at their own pace.
func TestBroadcastAnswersPaceOnlyBroadcasts(t *testing.T) {
	r, clock, t0 := runnerOnAFakeClock(t)
	ctx := context.Background()
	seed, err := brazeemu.ReadSeed("../../examples/sandbox/braze.yaml")
	if err != nil {
		t.Fatal(err)
	}
	emu, err := brazeemu.New(seed, brazeemu.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	conn := &spec.Connection{Name: "braze", Type: braze.REST}
	// Another workspace (another key), so a governor of its own.
	control := &spec.Connection{Name: "told_nothing", Type: braze.REST, Fields: map[string]string{"api_key": "another"}}
	r.ensureGovernor(conn)
	r.ensureGovernor(control)
	g := r.governor(conn)
	trigger, _ := braze.REST.Endpoint("campaign_trigger")
	const broadcast = `{"campaign_id":"9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e","broadcast":true}`
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/campaigns/trigger/send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sandbox-braze-key")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		emu.Handler().ServeHTTP(rec, req)
		return rec
	}
	// sent goes as the lane sends: the pool named by the body.
	sent := func(body string) int {
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		pool := trigger.Pool(v)
		if _, err := g.Wait(ctx, pool); err != nil {
			t.Fatal(err)
		}
		rec := post(body)
		g.Observe(pool, rec.Code, rec.Header())
		return rec.Code
	}
	recipientTriggers := func(g *delivery.Governor) time.Duration {
		start := clock.Now()
		for range 140 {
			if _, err := g.Wait(ctx, "messaging"); err != nil {
				t.Fatal(err)
			}
		}
		return clock.Now().Sub(start)
	}
	first, second := recipientTriggers(r.governor(control)), recipientTriggers(r.governor(control))

	if code := sent(broadcast); code != http.StatusCreated {
		t.Fatalf("broadcast answered %d", code)
	}
	if took := recipientTriggers(g); took > first {
		t.Errorf("after a broadcast's answer 140 recipient triggers took %v, against %v told nothing", took, first)
	}
	// Spend the rest of the broadcast window behind the governor's back;
	// the next broadcast is answered 429.
	for n := 0; post(broadcast).Code != http.StatusTooManyRequests; n++ {
		if n > 250 {
			t.Fatal("no 429 past 250 broadcasts in a minute")
		}
	}
	if code := sent(broadcast); code != http.StatusTooManyRequests {
		t.Fatalf("broadcast past the window answered %d", code)
	}
	if until := g.PausedUntil(); until.After(clock.Now()) {
		t.Errorf("a broadcast's 429 paused the whole connection until %v", until)
	}
	if w, _ := g.Wait(ctx, "users_track"); w != 0 {
		t.Errorf("/users/track waited %v after a broadcast's 429", w)
	}
	if took := recipientTriggers(g); took > second {
		t.Errorf("after a broadcast's 429 140 recipient triggers took %v, against %v told nothing", took, second)
	}
	// Broadcasts wait for their window's reset, and then go.
	if code := sent(broadcast); code != http.StatusCreated || clock.Now().Before(t0.Add(time.Minute)) {
		t.Errorf("the next broadcast answered %d at %v, want 201 from %v", code, clock.Now(), t0.Add(time.Minute))
	}
}

// A connection's pause outlives the process: a runner started again on
// the same inbox inside a 429's Retry-After waits out the rest of it. A
// restart sent the queued requests at once, each answered 429 again. So
// does the pause of a pool a 429 holds back alone (Braze's broadcasts).
func TestAPauseOutlivesARestart(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	conn := &spec.Connection{Name: "braze", File: "connections.yaml", Type: braze.REST}
	runOnce := func(body func(r *Runner)) {
		runOn(t, dir, Options{Clock: clock}, func(r *Runner, _ *inbox.Store) { body(r) })
	}
	runOnce(func(r *Runner) {
		g := r.governor(conn)
		g.SetLimits(limitsOf(conn))
		if pause, _ := g.Observe("messaging", http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}}); pause != 30*time.Second {
			t.Fatal("no pause from a 429 with Retry-After: 30")
		}
		// A broadcast's 429 holds back broadcasts alone, and as long.
		g.Observe("broadcast", http.StatusTooManyRequests, http.Header{"Retry-After": {"50"}})
	})
	clock.mu.Lock()
	clock.t = t0.Add(10 * time.Second) // the restart
	clock.mu.Unlock()
	// Its folder named otherwise (an absolute path, where the first run
	// had a relative one): the pause, stored under the path, was lost.
	conn = &spec.Connection{Name: "braze", File: "/srv/engine/pipelines/connections.yaml", Type: braze.REST}
	runOnce(func(r *Runner) {
		g := r.governor(conn)
		until := g.PausedUntil()
		if until.Before(t0.Add(30*time.Second)) || until.After(t0.Add(32*time.Second)) {
			t.Fatalf("after a restart the connection is paused until %v; want 30 to 32 s after the 429", until.Sub(t0))
		}
		g.SetLimits(limitsOf(conn)) // as the lanes do when they start
		broadcasts := g.PoolsHeldUntil()["broadcast"]
		if broadcasts.Before(t0.Add(50*time.Second)) || broadcasts.After(t0.Add(52*time.Second)) {
			t.Fatalf("after a restart broadcasts are held until %v; want 50 to 52 s after their 429", broadcasts.Sub(t0))
		}
		clock.mu.Lock()
		clock.t = t0.Add(35 * time.Second) // the connection's pause is over
		clock.mu.Unlock()
		if d, held := g.Ready("broadcast"); d < 15*time.Second || !held {
			t.Fatalf("a broadcast could go %v after the connection's pause ended; want its own pause's end", d)
		}
		if d, _ := g.Ready("messaging"); d != 0 {
			t.Fatalf("a recipient trigger waits %v once the connection's pause is over", d)
		}
	})
	clock.mu.Lock()
	clock.t = t0.Add(40 * time.Second) // a restart after the pause
	clock.mu.Unlock()
	runOnce(func(r *Runner) {
		if until := r.governor(conn).PausedUntil(); until.After(clock.Now()) {
			t.Fatalf("a pause that had ended holds until %v", until)
		}
	})
}

// A pause is stored under the connection's name and place, not under a
// digest of its credentials: one in the inbox let whoever reads the data
// folder test password guesses offline (a review). A connection of that
// name and place restores it whatever key it sends (a rotated key of the
// workspace) and however its base_url is written; and a shorter pause of
// another key does not replace a longer one.
func TestAStoredPauseHoldsNoCredentialDigest(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	connWith := func(base, key string) *spec.Connection {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		return &spec.Connection{Name: "braze", File: "connections.yaml", Type: braze.REST, BaseURL: u, Fields: map[string]string{"api_key": key}}
	}
	first := connWith("https://REST.iad-01.braze.com:443/", "key-one")
	other := connWith("https://rest.iad-01.braze.com", "key-two")
	if first.GovernorKey() == other.GovernorKey() || first.PauseKey() != other.PauseKey() {
		t.Fatalf("keys: governor %q and %q, pause %q and %q; want two governors, one pause key", first.GovernorKey(), other.GovernorKey(), first.PauseKey(), other.PauseKey())
	}
	runOn(t, dir, Options{Clock: clock}, func(r *Runner, _ *inbox.Store) {
		one, two := r.governor(first), r.governor(other) // both before either pause
		one.Observe("messaging", http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}})
		two.Observe("messaging", http.StatusTooManyRequests, http.Header{"Retry-After": {"10"}})
	})
	raw, err := os.ReadFile(filepath.Join(dir, "inbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("pause:"+first.PauseKey())) {
		t.Fatal("setup: no pause stored under the connection's name and place")
	}
	for _, c := range []*spec.Connection{first, other} {
		if bytes.Contains(raw, []byte(c.Account())) {
			t.Errorf("inbox.db holds the account digest of the connection with %s", c.Fields["api_key"])
		}
	}
	clock.mu.Lock()
	clock.t = t0.Add(5 * time.Second) // the restart
	clock.mu.Unlock()
	rotated := connWith("https://rest.iad-01.braze.com/", "key-three")
	runOn(t, dir, Options{Clock: clock}, func(r *Runner, _ *inbox.Store) {
		if until := r.governor(rotated).PausedUntil(); until.Before(t0.Add(30 * time.Second)) {
			t.Errorf("after a restart with a rotated key the connection is paused until +%v; want the 30 s pause", until.Sub(t0))
		}
	})
}
