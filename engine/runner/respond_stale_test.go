package runner_test

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/sandbox"
)

// A stale copy stands in only when SessionM fails (no answer, a late
// one, 5xx, 429); a request the pipeline refuses or cannot answer is
// answered as without a cache. Every error but a 404 served the copy: one
// the new version's filter refuses, one its expr cannot compute, one
// SessionM refuses. A 200 that is not JSON is SessionM failing: it was
// read as text, and the pipeline failed on it without the stale copy.
func TestSynchronousStaleOnlyWhenSessionMFails(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var answer atomic.Int32 // the status SessionM Connect answers; 0: the emulator's
	var page atomic.Bool    // SessionM Connect answers 200 with a proxy's HTML page
	var code atomic.Value   // the error code SessionM Connect answers with a status
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if page.Load() && strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><body>upstream proxy error</body></html>")
			return
		}
		if status := int(answer.Load()); status != 0 && strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"status":"error","errors":{"code":%q,"message":"culture is not one the retailer has"}}`, code.Load())
			return
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dir := copyPipelines(t)
	file := filepath.Join(dir, "wallet-for-connected-content.yaml")
	h := start(t, setup{dirs: []string{dir}, sandbox: srv.URL, tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache.TTL = time.Nanosecond // every answer is stale at once
			p.Respond.Cache.RetryWait = time.Nanosecond
		}
	}})
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("first: %d %v %s", a.status, a.header, a.body)
	}
	reload := func(edit func(string) string) {
		t.Helper()
		editFile(t, file, edit)
		if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != "changed" {
			t.Fatalf("not reloaded: %+v", c)
		}
	}
	for _, tt := range []struct {
		name   string
		status int32  // SessionM's
		code   string // its error code (validation when "")
		html   bool   // SessionM's answer is a 200 HTML page
		edit   func(string) string
		want   int
		body   string
		stale  bool
	}{
		{name: "SessionM answers 503", status: 503, want: 200, stale: true},
		// The code, not SessionM's words, which can quote the request.
		{name: "SessionM refuses the request (400)", status: 400, want: 502, body: `"step wallet: sessionm_connect answered HTTP 400: validation"`},
		// SessionM's documented way of answering an error (sessionm.md
		// §1): pipelines/connections.yaml retries its internal error.
		{name: "SessionM answers 200 with status:error internal_server_error", status: 200, code: "internal_server_error", want: 200, stale: true},
		{name: "SessionM answers 200 with status:error validation", status: 200, want: 502, body: `"step wallet: sessionm_connect answered status error: validation"`},
		// Not JSON: a proxy's page, no wallet, so a failure of SessionM's.
		{name: "SessionM answers 200 with an HTML page", html: true, want: 200, stale: true},
		{name: "the new version's filter refuses the request",
			edit: func(s string) string {
				return strings.Replace(s, "\nsource:", "\nfilter: request.params.user_id != \""+ana+"\"\nsource:", 1)
			},
			want: 404, body: "filter refused"},
		{name: "the new version's expr fails",
			edit: func(s string) string {
				s = strings.Replace(s, "\nfilter: request.params.user_id != \""+ana+"\"", "", 1)
				return strings.Replace(s, "\nrespond:", "\n  - name: broken\n    expr: date(request.params.user_id)\nrespond:", 1)
			},
			// 500, not 502: the pipeline failed, not SessionM.
			want: 500, body: "the pipeline cannot answer: step broken"},
		// Last: the 429 pauses the connection a while.
		{name: "SessionM answers 429", status: 429, want: 200, stale: true},
	} {
		answer.Store(tt.status)
		page.Store(tt.html)
		code.Store(cmp.Or(tt.code, "validation"))
		if tt.edit != nil {
			reload(tt.edit)
		}
		a := h.wallet(ana)
		if cache := a.header.Get("X-Cache"); a.status != tt.want || (cache == "stale") != tt.stale || !strings.Contains(a.body, tt.body) {
			t.Errorf("%s: %d (X-Cache %q) %s; want %d, stale: %v", tt.name, a.status, cache, a.body, tt.want, tt.stale)
		}
	}
}

// After a lookup for a key fails, its stale copy answers for
// respond.cache.retry_wait without another lookup: a caller asking again
// and again sent a failing SessionM a lookup per request.
func TestStaleCopyWaitsBeforeTheNextLookup(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	var lookups atomic.Int32
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			lookups.Add(1)
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// Long enough for ten requests answered from memory, even under -race
	// on a loaded machine.
	const wait = 2 * time.Second
	h := start(t, setup{sandbox: srv.URL, tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache.TTL = time.Nanosecond
			p.Respond.Cache.RetryWait = wait
		}
	}})
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("first: %d %v %s", a.status, a.header, a.body)
	}
	failing.Store(true)
	for i := range 10 {
		if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" {
			t.Fatalf("request %d while SessionM fails: %d %v %s", i+1, a.status, a.header, a.body)
		}
	}
	// One lookup failed; the nine requests after it waited.
	if n := lookups.Load(); n != 2 {
		t.Errorf("%d lookups for 10 requests within retry_wait; want 2 (the first answer and one that failed)", n)
	}
	time.Sleep(wait)
	failing.Store(false)
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Errorf("after retry_wait: %d %v %s; want a fresh answer", a.status, a.header, a.body)
	}
}

// An answer is not served past respond.cache.until, fresh or stale: the
// wallet pipeline's answer listed an offer that had expired since, as a
// hit for its TTL and as a stale copy for an hour while SessionM failed
// (a QA run).
func TestCachedAnswerEndsWhenAnOfferItListsExpires(t *testing.T) {
	const soon = 1500 * time.Millisecond
	expires := time.Now().Add(soon).UTC().Truncate(time.Millisecond)
	wallet := `{"status":"ok","payload":{"available_points":10,"total_points":10,"user_offers":[` +
		`{"offer_id":"o-soon","user_offer_id":"u-soon","name":"ends soon","is_redeemable":true,"expiration_date":"` + expires.Format(time.RFC3339Nano) + `","redeem_date":null},` +
		`{"offer_id":"o-later","user_offer_id":"u-later","name":"ends later","is_redeemable":true,"expiration_date":"2099-12-31T23:59:59Z","redeem_date":null}]}}`
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, wallet)
	}))
	t.Cleanup(srv.Close)
	h := start(t, setup{sandbox: srv.URL})
	first := h.wallet(ana)
	if first.status != 200 || first.header.Get("X-Cache") != "miss" || !strings.Contains(first.body, "o-soon") {
		t.Fatalf("first: %d %v %s", first.status, first.header, first.body)
	}
	if a := h.wallet(ana); a.header.Get("X-Cache") != "hit" {
		t.Fatalf("before the offer expires: %d %v %s; want a hit", a.status, a.header, a.body)
	}
	failing.Store(true)
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	// Within its TTL and its stale time, but wrong: SessionM is down, so
	// there is no right answer to give.
	if a := h.wallet(ana); a.status != 502 || strings.Contains(a.body, "o-soon") {
		t.Errorf("after the offer expired, SessionM down: %d (X-Cache %q) %s; want 502", a.status, a.header.Get("X-Cache"), a.body)
	}
	failing.Store(false)
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" || strings.Contains(a.body, "o-soon") || !strings.Contains(a.body, "o-later") {
		t.Errorf("after the offer expired: %d (X-Cache %q) %s; want a new answer without it", a.status, a.header.Get("X-Cache"), a.body)
	}
}

// slowConnect is the sandbox's emulators, with SessionM Connect's
// lookups delayed by delay, or answered 503 while failing.
func slowConnect(t *testing.T) (url string, delay *atomic.Int64, failing *atomic.Bool) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	delay, failing = new(atomic.Int64), new(atomic.Bool)
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			time.Sleep(time.Duration(delay.Load()))
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, delay, failing
}

// cachedWallet starts the engine with the wallet pipeline answering within
// deadline, each answer stale at once and a failed or late lookup waiting
// retryWait, in front of a SessionM Connect whose answers take delay (0
// at first), and caches ana's wallet.
func cachedWallet(t *testing.T, deadline, retryWait time.Duration) (*harness, *atomic.Int64) {
	t.Helper()
	url, delay, _ := slowConnect(t)
	h := start(t, setup{sandbox: url, tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Deadline = deadline
			p.Respond.Cache.TTL = time.Nanosecond
			p.Respond.Cache.RetryWait = retryWait
		}
	}})
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("first: %d %v %s", a.status, a.header, a.body)
	}
	return h, delay
}

// A lookup still under way when a reload replaces the pipeline hands its
// answer to the new version's cache: kept in the retired version's alone,
// it filled none, and the next failure of SessionM answered 502 where the
// stale copy would have stood in (a QA run). An edit of comments only
// keeps the answers fresh: made stale-only, every user's next call was a
// lookup.
func TestReloadKeepsTheCacheFilling(t *testing.T) {
	const sam = "4d2e8f3b-32f5-11ef-b3e4-0242ac120002"
	for _, tt := range []struct {
		name  string
		edit  func(string) string
		cache string // the answer after the reload, SessionM up
	}{
		{"a comment", func(s string) string { return s + "# a comment\n" }, "hit"},
		{"the answer's shape", func(s string) string {
			return strings.Replace(s, `offer_count: "{{ offers | size }}"`, `count: "{{ offers | size }}"`, 1)
		}, "miss"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, delay, failing := slowConnect(t)
			dir := copyPipelines(t)
			file := filepath.Join(dir, "wallet-for-connected-content.yaml")
			h := start(t, setup{dirs: []string{dir}, sandbox: url, tweak: func(p *engine.Pipeline) {
				if p.Respond != nil {
					p.Respond.Cache.RetryWait = time.Nanosecond
				}
			}})
			// Ana's answer is cached before the reload; Sam's lookup is
			// under way across it.
			if a := h.wallet(ana); a.status != 200 {
				t.Fatalf("setup: %d %s", a.status, a.body)
			}
			delay.Store(int64(600 * time.Millisecond))
			late := make(chan answer)
			go func() { late <- h.wallet(sam) }()
			time.Sleep(200 * time.Millisecond)
			editFile(t, file, tt.edit)
			if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != "changed" {
				t.Fatalf("not reloaded: %+v", c)
			}
			if a := <-late; a.status != 200 || a.header.Get("X-Cache") != "miss" {
				t.Fatalf("the lookup across the reload: %d %v %s", a.status, a.header, a.body)
			}
			delay.Store(0)
			if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != tt.cache {
				t.Errorf("after the reload: %d (X-Cache %q); want %s", a.status, a.header.Get("X-Cache"), tt.cache)
			}
			failing.Store(true)
			if a := h.wallet(sam); a.status != 200 || a.header.Get("X-Cache") == "miss" {
				t.Errorf("SessionM down, for the user whose lookup crossed the reload: %d (X-Cache %q) %s; want the cached copy",
					a.status, a.header.Get("X-Cache"), a.body)
			}
		})
	}
}

// A caller that hangs up before its answer (Braze's 2 s, a client's own
// timeout) is no failure of the pipeline: it counted as a 500, which set
// off alerts meant for the pipeline, and logged a warning (a QA run).
func TestCallerLeavingIsNotA500(t *testing.T) {
	url, delay, _ := slowConnect(t)
	h := start(t, setup{sandbox: url})
	delay.Store(int64(time.Second))
	client := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("GET", h.engine.URL+"/wallet/"+ana, nil)
	req.Header.Set("Authorization", "Bearer sandbox-wallet-token")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("setup: answered %d within 200 ms, with SessionM taking a second", resp.StatusCode)
	}
	h.eventually("the answer counted", func() bool {
		n, _ := h.metric(`engine_respond_answers_total\{cache="none",code="499",pipeline="wallet-for-connected-content"\}`)
		return n == 1
	})
	if n, _ := h.metric(`engine_respond_answers_total\{cache="none",code="500",pipeline="wallet-for-connected-content"\}`); n != 0 {
		t.Errorf("%v answers counted as 500", n)
	}
}

// A late lookup counts as a failed one for retry_wait: while SessionM was
// slow, every request for a key joined the lookup under way and waited
// the whole deadline for the stale copy (a QA run: p90 1.5 s).
func TestLateLookupWaitsBeforeTheNext(t *testing.T) {
	h, delay := cachedWallet(t, 300*time.Millisecond, time.Minute)
	delay.Store(int64(2 * time.Second))
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" {
		t.Fatalf("late: %d %v %s; want the stale copy", a.status, a.header, a.body)
	}
	began := time.Now()
	for i := range 5 {
		if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" {
			t.Fatalf("request %d after the late lookup: %d %v %s", i+1, a.status, a.header, a.body)
		}
	}
	// At once, not a deadline each (1.5 s for five).
	if took := time.Since(began); took > time.Second {
		t.Errorf("five requests after a late lookup took %v; the stale copy should answer at once", took)
	}
}

// After retry_wait, a caller with a stale copy does not wait on a lookup
// already late: with SessionM slower than deadline plus retry_wait, a
// busy user's callers waited the whole deadline again every few seconds
// (a QA run, SessionM at 30 s).
func TestStaleCopyDoesNotWaitOnALateLookup(t *testing.T) {
	h, delay := cachedWallet(t, time.Second, 100*time.Millisecond)
	delay.Store(int64(5 * time.Second))
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" {
		t.Fatalf("late: %d %v %s; want the stale copy", a.status, a.header, a.body)
	}
	time.Sleep(200 * time.Millisecond) // past retry_wait; the lookup is still under way
	began := time.Now()
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" {
		t.Fatalf("after retry_wait: %d %v %s; want the stale copy", a.status, a.header, a.body)
	}
	// At once, not after another second's deadline.
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Errorf("the stale copy came after %v, waiting on the late lookup", took)
	}
}

// A lookup under way across a comment-only reload replaces the answer the
// new version carried over fresh, when that one is older than the lookup:
// it stood, past its TTL (which is why the lookup ran), and the next
// failure of SessionM had only it (a review).
func TestReloadHandsOnOverAnOlderAnswer(t *testing.T) {
	url, delay, failing := slowConnect(t)
	dir := copyPipelines(t)
	file := filepath.Join(dir, "wallet-for-connected-content.yaml")
	h := start(t, setup{dirs: []string{dir}, sandbox: url, tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache.TTL = 300 * time.Millisecond
			p.Respond.Cache.Stale = 900 * time.Millisecond
			p.Respond.Cache.RetryWait = time.Nanosecond
		}
	}})
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("setup: %d %s", a.status, a.body)
	}
	time.Sleep(400 * time.Millisecond) // past its TTL: the next call looks up
	delay.Store(int64(600 * time.Millisecond))
	late := make(chan answer)
	go func() { late <- h.wallet(ana) }()
	time.Sleep(200 * time.Millisecond)
	editFile(t, file, func(s string) string { return s + "# a comment\n" })
	if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != "changed" {
		t.Fatalf("not reloaded: %+v", c)
	}
	if a := <-late; a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("the lookup across the reload: %d %v %s", a.status, a.header, a.body)
	}
	delay.Store(0)
	failing.Store(true)
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "hit" {
		t.Errorf("right after the lookup across the reload: %d (X-Cache %q, Age %q) %s; want a hit", a.status, a.header.Get("X-Cache"), a.header.Get("Age"), a.body)
	}
}

// A version a reload refused (its route collides with a running one's)
// is not handed the running version's answers: linked before the refusal,
// it got a copy of each, in a cache nobody read (a review).
func TestRefusedVersionIsNotHandedAnswers(t *testing.T) {
	dir := copyPipelines(t)
	wallet := filepath.Join(dir, "wallet-for-connected-content.yaml")
	raw, err := os.ReadFile(wallet)
	if err != nil {
		t.Fatal(err)
	}
	copycat := filepath.Join(dir, "copycat.yaml")
	if err := os.WriteFile(copycat, []byte(strings.Replace(string(raw), "path: /wallet/{user_id}", "path: /wallet2/{user_id}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, setup{dirs: []string{dir}})
	// copycat's file breaks (its running version goes on, on /wallet2);
	// the wallet's new version takes /wallet2 too, and is refused.
	editFile(t, copycat, func(s string) string { return s + "\nrespond: [unclosed\n" })
	editFile(t, wallet, func(s string) string {
		return strings.Replace(s, "path: /wallet/{user_id}", "path: /wallet2/{user_id}", 1)
	})
	if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != "rejected" {
		t.Fatalf("setup: the wallet's change %+v; want it rejected", c)
	}
	if a := h.wallet(ana); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if h.r.HandsOnToAnother("wallet-for-connected-content") {
		t.Error("the running version hands its answers to the refused one")
	}
}

// An answer over the 1 MB Braze takes from Connected Content is served (it
// is the pipeline's), and the log says Braze inserts nothing from it: a
// wallet of 5,000 offers left the message blank, with nothing said (a QA
// run).
func TestOversizedAnswerIsWarnedAbout(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	emulators := sb.Handler()
	offers := make([]string, 3000)
	for i := range offers {
		offers[i] = fmt.Sprintf(`{"offer_id":"o-%d","user_offer_id":"uo-%d","name":"Offer %d","description":%q,"is_redeemable":true,"expiration_date":"2099-01-01T00:00:00Z"}`, i, i, i, strings.Repeat("a fine offer ", 30))
	}
	wallet := `{"status":"ok","payload":{"available_points":1,"total_points":1,"user_offers":[` + strings.Join(offers, ",") + `]}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, wallet)
			return
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	logs := &runner.LockedBuffer{}
	// Not the deadline's test: under -race on a loaded machine, the
	// shipped 1,500 ms passed while this 1.5 MB wallet was read (a 504).
	long := func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Deadline = time.Minute
		}
	}
	h := start(t, setup{sandbox: srv.URL, opts: jsonLogTo(logs), tweak: long})
	if a := h.wallet(ana); a.status != 200 || len(a.body) <= 1<<20 {
		t.Fatalf("%d, %d bytes; want an answer over 1 MiB", a.status, len(a.body))
	}
	h.eventually("the warning", func() bool {
		return strings.Contains(logs.String(), "larger than Braze takes from Connected Content")
	})
}

// A caller with a stale copy that joins a lookup under way waits until
// that lookup's deadline, not a whole deadline of its own: one that
// joined 1.2 s into a lookup was answered at 2.7 s (a re-QA).
func TestJoinerWaitsUntilTheLookupsDeadline(t *testing.T) {
	h, delay := cachedWallet(t, time.Second, time.Nanosecond)
	delay.Store(int64(5 * time.Second))
	first := make(chan answer, 1)
	go func() { first <- h.wallet(ana) }()
	time.Sleep(600 * time.Millisecond)
	began := time.Now()
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" {
		t.Fatalf("joiner: %d %v %s; want the stale copy", a.status, a.header, a.body)
	}
	// About 0.4 s, when the lookup's deadline passes; not 1 s.
	if took := time.Since(began); took > 800*time.Millisecond {
		t.Errorf("the joiner waited %v", took)
	}
	if a := <-first; a.header.Get("X-Cache") != "stale" {
		t.Errorf("first caller: %d %v", a.status, a.header)
	}
}
