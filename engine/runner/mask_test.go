package runner_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/engine/secrets"
)

// A target's error body may quote the credential it was sent, far enough
// in that the excerpt kept of it cuts the secret in two. Neither half may
// reach the dead letter or the caller of a synchronous pipeline.
func TestCredentialEchoedInAnErrorIsMaskedBeforeItIsCut(t *testing.T) {
	const token = "tok-0123456789abcdefghijklmnopqrstuvwxyz"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		// The excerpt keeps 300 bytes: the cut falls inside the token.
		w.Write([]byte(strings.Repeat("a", 280) + r.Header.Get("Authorization")))
	}))
	defer api.Close()
	masker := &secrets.Masker{}
	env := map[string]string{"API_URL": api.URL, "API_TOKEN": token}
	loader, err := engine.NewLoader(connectors.Catalog(), secrets.NewResolver(secrets.LookupChain(env), "", masker))
	if err != nil {
		t.Fatal(err)
	}
	proj := loader.Load([]string{"testdata/echo-credential"})
	if proj.Diagnostics.HasErrors() {
		t.Fatal(proj.Diagnostics.Items())
	}
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := runner.New(runner.Options{Store: store, Pipelines: proj.Pipelines, Masker: masker})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	r.Start()
	defer r.Stop(5 * time.Second)
	holdsPartOfTheToken := func(s string) bool { return strings.Contains(s, token[:8]) }

	a := do(t, "GET", srv.URL+"/look", "", nil)
	if a.status != http.StatusBadGateway || !strings.Contains(a.body, "HTTP 400") {
		t.Fatalf("lookup answered %d %s, want 502 naming the target's 400", a.status, a.body)
	}
	if holdsPartOfTheToken(a.body) {
		t.Errorf("the caller's answer holds part of the token: %s", a.body)
	}

	if a := do(t, "POST", srv.URL+"/hooks/echo", `{"n":1}`, nil); a.status/100 != 2 {
		t.Fatalf("webhook answered %d %s", a.status, a.body)
	}
	var dead []inbox.DeadLetter
	for deadline := time.Now().Add(5 * time.Second); len(dead) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if dead, err = store.DeadLetters(inbox.DeadFilter{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(dead) != 1 || dead[0].Response == nil {
		t.Fatalf("dead letters: %+v, want the one rejected event with its response", dead)
	}
	for what, s := range map[string]string{"error": dead[0].Error, "response excerpt": dead[0].Response.Excerpt} {
		if holdsPartOfTheToken(s) || !strings.Contains(s, "Bearer "+secrets.Mask) {
			t.Errorf("dead letter %s = %q, want the token masked whole", what, s)
		}
	}
}
