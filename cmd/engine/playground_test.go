package main

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/preview"
	"github.com/loyalty-connector/engine/examples"
)

// newTestPlayground is the playground's handler with the sandbox answering
// Connected Content and the built-in examples, as engine playground
// serves it by default.
func newTestPlayground(t testing.TB) http.Handler {
	t.Helper()
	p, closePreview, err := preview.Setup(preview.Mode{Name: "sandbox"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closePreview)
	exs, _ := loadExamples(examples.Templates)
	return newPlaygroundHandler(p, nil, nil, exs, false)
}

// serve sends one request to h, addressed as the browser addresses it,
// and returns the recorded answer.
func serve(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = "127.0.0.1:8090"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPlaygroundServesPageAndStaticFiles(t *testing.T) {
	h := newTestPlayground(t)
	for _, tt := range []struct{ path, contentType, contains string }{
		{"/", "text/html", `id="template"`},
		{"/static/app.js", "javascript", "/api/render"},
		{"/static/style.css", "text/css", "#output"},
	} {
		rec := serve(h, "GET", tt.path, "")
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", tt.path, rec.Code)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, tt.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.contentType)
		}
		if !strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("GET %s: no %q in the body", tt.path, tt.contains)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "script-src 'self' 'unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q, want scripts from 'self' only", tt.path, csp)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tt.path, got)
		}
	}
	if rec := serve(h, "GET", "/static/missing.js", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /static/missing.js: %d, want 404", rec.Code)
	}
}

// The page must work without a network and load nothing from elsewhere.
func TestPlaygroundStaticFilesNameNoExternalURL(t *testing.T) {
	err := fs.WalkDir(playgroundFiles, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(playgroundFiles, path)
		if err != nil {
			return err
		}
		for _, scheme := range []string{"http://", "https://"} {
			if i := strings.Index(string(b), scheme); i >= 0 {
				t.Errorf("%s names an external URL: %q", path, string(b)[i:min(i+60, len(b))])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPlaygroundListsExamples(t *testing.T) {
	rec := serve(newTestPlayground(t), "GET", "/api/examples", "")
	var got []playgroundExample
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET /api/examples: %v\n%s", err, rec.Body)
	}
	raw, err := fs.ReadFile(examples.Templates, "templates/index.json")
	if err != nil {
		t.Fatal(err)
	}
	var index []playgroundExample
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	listed := map[string]playgroundExample{}
	for _, ex := range got {
		listed[ex.Name] = ex
	}
	for _, ex := range index {
		if _, ok := listed[ex.Name]; !ok {
			t.Logf("index.json's %q is not listed (its files are missing)", ex.Name)
		}
	}
	wallet, ok := listed["partner-wallet"]
	if !ok {
		t.Fatalf("no partner-wallet among %d examples", len(got))
	}
	if !strings.Contains(wallet.Template, "connected_content") || !strings.Contains(wallet.User, `"Ana"`) || !strings.Contains(wallet.Trigger, "offer_id") {
		t.Errorf("partner-wallet does not carry its files' text: %+v", wallet)
	}
}

// renderExample is a render request for the built-in example name, as
// the page sends it after choosing the example.
func renderExample(t *testing.T, name string) map[string]string {
	t.Helper()
	exs, _ := loadExamples(examples.Templates)
	for _, ex := range exs {
		if ex.Name == name {
			return map[string]string{"template": ex.Template, "user": ex.User, "trigger": ex.Trigger}
		}
	}
	t.Fatalf("no example %q among %d", name, len(exs))
	return nil
}

func postRender(t *testing.T, h http.Handler, req map[string]string) preview.Result {
	t.Helper()
	body, _ := json.Marshal(req)
	rec := serve(h, "POST", "/api/render", string(body))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /api/render: %d %s", rec.Code, rec.Body)
	}
	var res preview.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatalf("POST /api/render: %v\n%s", err, rec.Body)
	}
	return res
}

func TestPlaygroundRendersPartnerWallet(t *testing.T) {
	res := postRender(t, newTestPlayground(t), renderExample(t, "partner-wallet"))
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if !strings.Contains(res.Output, "You have 1350 points") {
		t.Errorf("output without Ana's 1350 sandbox points:\n%s", res.Output)
	}
	if len(res.Calls) != 1 || res.Calls[0].Status != http.StatusOK {
		t.Errorf("connected_content calls %+v, want one answered 200", res.Calls)
	}
}

func TestPlaygroundShowsAnAbortedMessage(t *testing.T) {
	req := renderExample(t, "offer-push")
	req["trigger"] = ""
	res := postRender(t, newTestPlayground(t), req)
	if !res.Aborted || res.AbortReason != "no offer_title in the trigger properties" || len(res.Errors) > 0 {
		t.Errorf("aborted %v, reason %q, errors %v; want offer-push's abort_message without its trigger properties", res.Aborted, res.AbortReason, res.Errors)
	}
}

func TestPlaygroundNamesTheEditorWhoseJSONIsWrong(t *testing.T) {
	h := newTestPlayground(t)
	for _, tt := range []struct{ editor, text, want string }{
		{"user", "{\n  \"first_name\": \"Ana\",\n}", "line 3"},
		{"trigger", `["not", "an", "object"]`, "JSON object"},
		{"event", `{"amount": 1} {"amount": 2}`, "more than one"},
	} {
		res := postRender(t, h, map[string]string{"template": "Hi {{${first_name}}}", tt.editor: tt.text})
		if len(res.Errors) != 1 || res.Errors[0].File != tt.editor || !strings.Contains(res.Errors[0].Message, tt.want) {
			t.Errorf("%s %q: errors %+v, want one in %q saying %q", tt.editor, tt.text, res.Errors, tt.editor, tt.want)
		}
		if res.Output != "" {
			t.Errorf("%s %q: rendered %q anyway", tt.editor, tt.text, res.Output)
		}
	}
}

func TestPlaygroundRefusesOversizeRequests(t *testing.T) {
	body, _ := json.Marshal(map[string]string{"template": strings.Repeat("x", maxRenderBody)})
	rec := serve(newTestPlayground(t), "POST", "/api/render", string(body))
	var answer struct{ Error string }
	if rec.Code != http.StatusRequestEntityTooLarge || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer.Error == "" {
		t.Errorf("%d %s, want 413 with a JSON error", rec.Code, rec.Body)
	}
}

// A request that is not the page's shape is refused in words, without Go
// type names.
func TestPlaygroundRefusesAMalformedRequest(t *testing.T) {
	h := newTestPlayground(t)
	for body, want := range map[string]string{
		`{"template":5}`:  "template: expected a string, got a JSON number",
		`{"template":"x"`: "unexpected EOF",
	} {
		rec := serve(h, "POST", "/api/render", body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) || strings.Contains(rec.Body.String(), "Go struct") {
			t.Errorf("%s: %d %s, want 400 with %q", body, rec.Code, rec.Body, want)
		}
	}
}

func TestPlaygroundClearsTheConnectedContentCache(t *testing.T) {
	h := newTestPlayground(t)
	req := renderExample(t, "partner-wallet")
	// A POST is cached only when :cache_max_age asks for it.
	req["template"] = strings.Replace(req["template"], ":save wallet", ":cache_max_age 300 :save wallet", 1)
	cached := func() bool {
		res := postRender(t, h, req)
		if len(res.Calls) != 1 {
			t.Fatalf("calls %+v, want one", res.Calls)
		}
		return res.Calls[0].Cached
	}
	if cached() || !cached() {
		t.Fatal("the second preview did not use the first one's answer")
	}
	if rec := serve(h, "POST", "/api/cache/clear", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("POST /api/cache/clear: %d %s", rec.Code, rec.Body)
	}
	if cached() {
		t.Error("after clearing the cache the answer was still cached")
	}
}

// Another site open in the browser must not drive the playground, by a
// form post or through a DNS name pointed at 127.0.0.1.
func TestPlaygroundRefusesOtherSites(t *testing.T) {
	h := newTestPlayground(t)
	crossSite := httptest.NewRequest("POST", "/api/render", strings.NewReader(`{"template":"x"}`))
	crossSite.Header.Set("Sec-Fetch-Site", "cross-site")
	crossSite.Header.Set("Origin", "http://attacker.test")
	crossSite.Host = "127.0.0.1:8090"
	rebound := httptest.NewRequest("GET", "/api/examples", nil)
	rebound.Host = "attacker.test:8090"
	for name, req := range map[string]*http.Request{"cross-site POST": crossSite, "DNS rebinding": rebound} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, rec.Code)
		}
	}
}

func TestPlaygroundRefusesRemoteAddrWithoutAllowRemote(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8090", ":8090", "192.0.2.1:8090", "example.com:8090"} {
		_, stderr, code := runEngine("playground", "--addr", addr)
		if code != exitUsage || !strings.Contains(stderr, "--allow-remote") {
			t.Errorf("--addr %s: code %d, %q; want 2 and a word about --allow-remote", addr, code, stderr)
		}
	}
	_, stderr, code := runEngine("playground", "--addr", "8090")
	if code != exitUsage || !strings.Contains(stderr, "host:port") {
		t.Errorf("--addr 8090: code %d, %q; want 2 and host:port", code, stderr)
	}
	// Reached from elsewhere, live calls would lend this machine's
	// credentials to any host a template names.
	t.Setenv("BRAZE_CREDENTIAL_SESSIONM_CONNECT", "user:password")
	_, stderr, code = runEngine("playground", "--addr", "0.0.0.0:0", "--allow-remote", "--connected-content", "live")
	if code != exitUsage || !strings.Contains(stderr, "BRAZE_CREDENTIAL_* credentials to any host") {
		t.Errorf("--allow-remote with live and a credential set: code %d, %q; want 2 and why", code, stderr)
	}
}

func TestPlaygroundConnectedContentFlag(t *testing.T) {
	if _, stderr, code := runEngine("playground", "--connected-content", "fixtures"); code != exitUsage || !strings.Contains(stderr, "fixtures needs a folder") {
		t.Errorf("--connected-content fixtures: code %d, %q", code, stderr)
	}
	// "fixtures DIR" as two words reaches the fixtures loader.
	if _, stderr, code := runEngine("playground", "--connected-content", "fixtures", "--addr", "127.0.0.1:0"); code != exitUsage || !strings.Contains(stderr, "fixtures needs a folder") {
		t.Fatalf("a forgotten fixtures folder before a flag: %d %s", code, stderr)
	}
	if _, stderr, code := runEngine("playground", "--connected-content", "fixtures", "no/such/dir"); code != exitUsage || !strings.Contains(stderr, "no/such/dir/fixtures.yaml") {
		t.Errorf("--connected-content fixtures no/such/dir: code %d, %q", code, stderr)
	}
}

// --vars gives every render of the playground more top-level variables,
// as engine render's does: the fixtures of the README's example need
// endpoint_connect, which the page had no way to set (a QA run). The
// user's attributes win over them.
func TestPlaygroundVarsReachEveryRender(t *testing.T) {
	p, closePreview, err := preview.Setup(preview.Mode{Name: "sandbox"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closePreview)
	h := newPlaygroundHandler(p, nil, map[string]any{"endpoint_connect": "https://connect.test", "first_name": "Var"}, nil, false)
	res := postRender(t, h, map[string]string{"template": "{{endpoint_connect}} {{${first_name}}}", "user": `{"first_name":"Ana"}`})
	if len(res.Errors) > 0 || res.Output != "https://connect.test Ana" {
		t.Errorf("output %q, errors %v; want the --vars value and the user's name", res.Output, res.Errors)
	}
}
