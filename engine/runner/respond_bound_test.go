package runner_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/sandbox"
)

// A cached synchronous pipeline's lookups outlive late callers, to fill
// the cache, so each held a connection to SessionM for its timeout: with
// SessionM slow, one per distinct user a second times 10 s. They are now
// bounded (respond.cache.max_lookups): past the bound a request whose key
// has no lookup under way is answered at once, from the cache or 503.
func TestSynchronousLookupsAreBounded(t *testing.T) {
	const bound, deadline, timeout = 4, 800 * time.Millisecond, 2500 * time.Millisecond
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// While hold is set SessionM Connect does not answer: a lookup ends
	// when the engine gives up on it. now counts the lookups at SessionM,
	// most the most at once.
	var hold atomic.Bool
	var now, most atomic.Int32
	ended := make(chan struct{})
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() && strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			n := now.Add(1)
			defer now.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			// Read to the end, so the server sees the engine hang up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-ended:
			}
			return
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(ended) })
	dir := copyPipelines(t)
	editFile(t, filepath.Join(dir, "wallet-for-connected-content.yaml"), func(s string) string {
		return strings.Replace(s, "    stale: 1h\n", fmt.Sprintf("    stale: 1h\n    max_lookups: %d\n", bound), 1)
	})
	h := start(t, setup{dirs: []string{dir}, sandbox: srv.URL, tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			if p.Respond.Cache.MaxLookups != bound {
				t.Fatalf("respond.cache.max_lookups read as %d; want %d", p.Respond.Cache.MaxLookups, bound)
			}
			p.Respond.Cache.TTL = time.Nanosecond // every answer is stale at once
			p.Respond.Deadline = deadline
			p.Delivery.Timeout = timeout // how long a lookup outlives its callers
		}
	}})
	if a := h.wallet(ana); a.status != 200 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	hold.Store(true)

	// Three times the bound of users at once: the bound's worth of
	// lookups go and are late; the others are answered at once.
	type result struct {
		a    answer
		took time.Duration
	}
	var next atomic.Int32
	user := func() string { return fmt.Sprintf("slow-user-%04d", next.Add(1)) }
	ask := func(user string) result {
		began := time.Now()
		a := h.wallet(user)
		return result{a, time.Since(began)}
	}
	began := time.Now()
	results := make([]result, 3*bound)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = ask(user()) })
	}
	wg.Wait()
	late, refused := 0, 0
	for _, r := range results {
		switch {
		case r.a.status == 504:
			late++
		case r.a.status == 503 && r.a.header.Get("Retry-After") == "1" && strings.Contains(r.a.body, "respond.cache.max_lookups") && r.took < deadline/2:
			refused++
		default:
			t.Errorf("a user over the bound: %d %v %s after %v; want 504, or 503 with Retry-After: 1 at once", r.a.status, r.a.header, r.a.body, r.took)
		}
	}
	if late != bound || refused != 2*bound {
		t.Errorf("%d late and %d refused of %d; want %d late, the bound", late, refused, len(results), bound)
	}
	if n := most.Load(); n > bound {
		t.Errorf("%d lookups at SessionM at once; the bound is %d", n, bound)
	}

	// Their callers have gone; the lookups hold their slots. A user with
	// a cached answer gets it, stale, at once; one without, 503.
	if r := ask(ana); r.a.status != 200 || r.a.header.Get("X-Cache") != "stale" || r.took > deadline/2 {
		t.Errorf("a cached user while the lookups are all under way: %d %v after %v; want the stale copy at once", r.a.status, r.a.header, r.took)
	}
	if r := ask(user()); r.a.status != 503 || r.took > deadline/2 {
		t.Errorf("a new user while the lookups are all under way: %d %s after %v; want 503 at once", r.a.status, r.a.body, r.took)
	}
	// The metrics count them as answers with no cache, and the stale one.
	if n, _ := h.metric(`engine_respond_answers_total\{cache="none",code="503",pipeline="wallet-for-connected-content"\}`); n != float64(refused+1) {
		t.Errorf("%v answers 503 counted; want %d", n, refused+1)
	}
	if n, _ := h.metric(`engine_respond_answers_total\{cache="stale",code="200",pipeline="wallet-for-connected-content"\}`); n != 1 {
		t.Errorf("%v stale answers counted; want 1", n)
	}
	if time.Since(began) > timeout {
		t.Fatalf("the test took %v, past the lookups' timeout (%v): the machine is too slow for it", time.Since(began), timeout)
	}

	// The lookups end at their timeout, and their slots with them.
	h.eventually("the late lookups to end", func() bool { return now.Load() == 0 })
	h.eventually("a lookup to start again", func() bool { return ask(user()).a.status != 503 })
	if took := time.Since(began); took < timeout || took > timeout+deadline+2*time.Second {
		t.Errorf("a lookup could start %v after the first ones; want just after their timeout (%v)", took.Round(time.Millisecond), timeout)
	}
	if n := most.Load(); n > bound {
		t.Errorf("%d lookups at SessionM at once; the bound is %d", n, bound)
	}
}
