package runner_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/sandbox"
)

// cutFirstLookup is a sandbox whose first Connect request (a wallet
// lookup) gets the head of an answer and a cut body; lookups counts the
// Connect requests.
func cutFirstLookup(t *testing.T, status int, header http.Header) (url string, lookups *atomic.Int32) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	lookups = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sessionm/connect/") && lookups.Add(1) == 1 {
			runner.CutAnswer(t, w, r, "reset", status, header)
			return
		}
		sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, lookups
}

// F3: a 429 whose body was cut pauses the connection as a whole one
// does, so this and the next Connected Content call are answered 503,
// the next at once instead of asking again; and the answer says what
// happened without the lookup's URL.
func TestCutLookup429PausesTheConnection(t *testing.T) {
	url, lookups := cutFirstLookup(t, http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}})
	h := start(t, setup{sandbox: url})
	first := h.wallet(ana)
	if first.status != http.StatusServiceUnavailable || first.header.Get("Retry-After") == "" || !strings.Contains(first.body, "HTTP 429, but its body was cut") ||
		strings.Contains(first.body, url) || strings.Contains(first.body, "reading the answer") {
		t.Fatalf("first call: %d %s", first.status, first.body)
	}
	second := h.wallet(ana)
	if second.status != http.StatusServiceUnavailable || second.header.Get("Retry-After") == "" || lookups.Load() != 1 {
		t.Fatalf("second call: %d %s (Retry-After %q), after %d lookups; want 503 from the pause, and no lookup",
			second.status, second.body, second.header.Get("Retry-After"), lookups.Load())
	}
}

// F3: a 404 whose body was cut is answered 404, judged by its status, and
// its body does not show the lookup's URL either, whose path can hold an
// API key no masker knows (SessionM Core's).
func TestCut404LookupAnswerHidesTheURL(t *testing.T) {
	url, _ := cutFirstLookup(t, http.StatusNotFound, http.Header{})
	h := start(t, setup{sandbox: url})
	a := h.wallet(ana)
	if a.status != http.StatusNotFound || strings.Contains(a.body, url) || !strings.Contains(a.body, "HTTP 404, but its body was cut") {
		t.Errorf("cut 404: %d %s; want 404 without the URL", a.status, a.body)
	}
}

// F4: a wallet lookup answered 200 whose body was cut has no wallet to
// render: it is asked again, not dead-lettered as a refusal, and the
// campaign goes once.
func TestCutLookupAnswerIsAskedAgain(t *testing.T) {
	url, lookups := cutFirstLookup(t, http.StatusOK, http.Header{})
	h := start(t, setup{sandbox: url})
	if a := h.post("/hooks/sessionm/offers", offerEvent("cut-1", "u-1001"), map[string]string{"Authorization": hookAuth}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 0 || lookups.Load() != 2 || len(h.journal("/braze/campaigns/*")) != 1 {
		t.Fatalf("%d lookups, %d campaign triggers, dead letters %+v; want 2, 1 and none", lookups.Load(), len(h.journal("/braze/campaigns/*")), dls)
	}
}
