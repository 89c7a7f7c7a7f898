package runner_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// SessionM documents no retry rule, so 200 + "status":"error" is final by
// default (A, sessionm.md §7). A connection's retry_error_codes makes the
// listed codes transient: the event is retried and delivered once SessionM
// recovers, while the same answers on a connection without the setting
// dead-letter the event at once.
func TestSessionMRetryErrorCodes(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n <= 2 { // as real SessionM answers an internal error (sessionm.md §1, O, S10)
			fmt.Fprint(w, `{"status":"error","errors":{"code":"internal_server_error","message":"internal server error"}}`)
			return
		}
		fmt.Fprint(w, `{"status":"ok","tags":{"x":{"count":1}}}`)
	}))
	defer fake.Close()
	count := func(path string) int { mu.Lock(); defer mu.Unlock(); return seen[path] }

	dir := t.TempDir()
	files := map[string]string{
		"connections.yaml": `connections:
  retrying:
    type: sessionm_core
    base_url: ` + fake.URL + `
    api_key: k
    api_secret: ${secret:SESSIONM_API_SECRET}
    retry_error_codes: INTERNAL_SERVER_ERROR, rate_limited
  strict:
    type: sessionm_core
    base_url: ` + fake.URL + `
    api_key: k
    api_secret: ${secret:SESSIONM_API_SECRET}
`,
	}
	for _, conn := range []string{"retrying", "strict"} {
		files[conn+".yaml"] = `source:
  type: http
  path: /hooks/` + conn + `/{user_id}
  auth:
    basic:
      username: ${env:SESSIONM_API_KEY}
      password: ${secret:SESSIONM_API_SECRET}
target:
  connection: ` + conn + `
  endpoint: tags
  params: { user_id: "{{ request.params.user_id }}" }
  body: { tags: [x] }
delivery: { attempts: 5 }
`
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, setup{dirs: []string{dir}})
	for _, conn := range []string{"retrying", "strict"} {
		if a := h.post("/hooks/"+conn+"/u-"+conn, `{}`, map[string]string{"Authorization": coreBasic}); a.status/100 != 2 {
			t.Fatalf("%s: %d %s", conn, a.status, a.body)
		}
	}
	h.drained()
	if n := count("/priv/v1/apps/k/users/u-retrying/tags"); n != 3 {
		t.Errorf("retrying connection: %d requests, want 2 errors and the success", n)
	}
	if n := count("/priv/v1/apps/k/users/u-strict/tags"); n != 1 {
		t.Errorf("strict connection: %d requests, want 1", n)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	var got []string
	for _, dl := range dls {
		got = append(got, fmt.Sprintf("%s: %s after %d attempt(s): %s", dl.Pipeline, dl.Reason, dl.Attempts, dl.Error))
	}
	if len(dls) != 1 || dls[0].Pipeline != "strict" || dls[0].Reason != "rejected" || dls[0].Attempts != 1 || !strings.Contains(dls[0].Error, "internal_server_error") {
		t.Fatalf("dead letters %q, want the strict connection's event only, rejected at once", got)
	}
}
