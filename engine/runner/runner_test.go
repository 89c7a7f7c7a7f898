package runner_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/internal/ids"
	"github.com/loyalty-connector/engine/sandbox"
)

const (
	ana      = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002"
	winter   = "9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"
	hookAuth = "Bearer sandbox-sessionm-webhook-token"
)

var coreBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte("sandbox-core-key:sandbox-core-secret"))

// harness is the engine's runner on a real inbox in a temporary folder,
// talking over loopback HTTP to the sandbox's emulators.
type harness struct {
	t      *testing.T
	sbURL  string
	engine *httptest.Server
	store  *inbox.Store
	r      *runner.Runner
	masker *secrets.Masker
	loader *engine.Loader
	dirs   []string
	tweak  func(p *engine.Pipeline)
}

type setup struct {
	dirs    []string
	dataDir string
	users   int    // generated users in the sandbox
	sandbox string // an existing sandbox to reuse (a restart test)
	secrets string // --secrets-dir
	conns   string // --connections
	tweak   func(p *engine.Pipeline)
	opts    func(o *runner.Options)
	inbox   inbox.Options
	// beforeStart runs once the runner is built, before its lanes start
	// (engine run serves its admin routes by then).
	beforeStart func(r *runner.Runner)
}

func start(t *testing.T, s setup) *harness {
	t.Helper()
	h := &harness{t: t, sbURL: s.sandbox}
	if h.sbURL == "" {
		sb, err := sandbox.New(sandbox.Options{RandSeed: 3, GeneratedUsers: s.users})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(sb.Handler())
		t.Cleanup(srv.Close)
		h.sbURL = srv.URL
	}
	settings := map[string]string{
		"SESSIONM_CORE_URL":    h.sbURL + "/sessionm/core",
		"SESSIONM_CONNECT_URL": h.sbURL + "/sessionm/connect",
		"BRAZE_REST_URL":       h.sbURL + "/braze",
	}
	rest, err := secrets.ReadEnvFile("../../examples/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	h.masker = &secrets.Masker{}
	loader, err := engine.NewLoader(connectors.Catalog(), secrets.NewResolver(secrets.LookupChain(settings, rest), s.secrets, h.masker))
	if err != nil {
		t.Fatal(err)
	}
	loader.ConnectionsFile = s.conns
	if len(s.dirs) == 0 {
		s.dirs = []string{"../../pipelines"}
	}
	h.loader, h.dirs, h.tweak = loader, s.dirs, s.tweak
	proj := h.load()
	if proj.Diagnostics.HasErrors() {
		t.Fatalf("pipelines: %v", proj.Diagnostics.Items())
	}
	if s.dataDir == "" {
		s.dataDir = t.TempDir()
	}
	h.store, err = inbox.Open(s.dataDir, s.inbox)
	if err != nil {
		t.Fatal(err)
	}
	opts := runner.Options{Store: h.store, Pipelines: proj.Pipelines, Masker: h.masker, Warned: proj.Warnings(h.masker.String)}
	if s.opts != nil {
		s.opts(&opts)
	}
	h.r, err = runner.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.engine = httptest.NewServer(h.r.Handler())
	if s.beforeStart != nil {
		s.beforeStart(h.r)
	}
	h.r.Start()
	t.Cleanup(h.stop)
	return h
}

// load reads the pipelines as they are on disk now.
// inboxAt has the CSV pipeline watch folder as its inbox.
func inboxAt(folder string) func(*engine.Pipeline) {
	return func(p *engine.Pipeline) {
		if p.Name == csvPipeline {
			p.Source.Inbox = folder
		}
	}
}

// jsonLogTo has the runner log JSON lines to logs.
func jsonLogTo(logs *runner.LockedBuffer) func(*runner.Options) {
	return func(o *runner.Options) { o.Logger = slog.New(slog.NewJSONHandler(logs, nil)) }
}

func (h *harness) load() *engine.Project {
	proj := h.loader.Load(h.dirs)
	for _, p := range proj.Pipelines {
		// Fast retries, short lingers: the tests wait for outcomes, not
		// for the production defaults.
		p.Delivery.BackoffInitial, p.Delivery.BackoffMax = 5*time.Millisecond, 40*time.Millisecond
		if h.tweak != nil {
			h.tweak(p)
		}
	}
	return proj
}

var stopped sync.Map

func (h *harness) stop() {
	if _, done := stopped.LoadOrStore(h, true); done {
		return
	}
	h.engine.Close()
	h.r.Stop(5 * time.Second)
	h.store.Close()
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, body string, header map[string]string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (h *harness) post(path, body string, header map[string]string) answer {
	return do(h.t, "POST", h.engine.URL+path, body, header)
}

// eventually polls cond until it holds or 10 s pass.
// wallet asks the F3 route for user's wallet, as Braze's Connected
// Content does.
func (h *harness) wallet(user string) answer {
	h.t.Helper()
	return do(h.t, "GET", h.engine.URL+"/wallet/"+user, "", map[string]string{"Authorization": "Bearer sandbox-wallet-token"})
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	// Generous: it costs a passing test nothing, and CI's machine, with
	// other packages' tests beside, is slower than this one.
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) drained() {
	h.t.Helper()
	h.eventually("an empty inbox", func() bool { return len(h.store.Pipelines()) == 0 })
}

func (h *harness) control(method, path, body string) map[string]any {
	h.t.Helper()
	a := do(h.t, method, h.sbURL+"/_sandbox"+path, body, nil)
	var m map[string]any
	if a.body != "" {
		if err := json.Unmarshal([]byte(a.body), &m); err != nil {
			h.t.Fatalf("control %s: %d %s", path, a.status, a.body)
		}
	}
	return m
}

// admin serves the runner's admin routes for the rest of the test.
func (h *harness) admin() *httptest.Server {
	srv := httptest.NewServer(h.r.AdminHandler(nil))
	h.t.Cleanup(srv.Close)
	return srv
}

func (h *harness) journal(path string) []map[string]any {
	h.t.Helper()
	var out []map[string]any
	for _, e := range h.control("GET", "/requests?limit=0&path="+path, "")["requests"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func (h *harness) messages(user string) []any {
	h.t.Helper()
	d := h.control("GET", "/deliveries?user="+user, "")
	if br, ok := d["braze"].(map[string]any); ok {
		if msgs, ok := br["messages"].([]any); ok {
			return msgs
		}
	}
	return nil
}

// sent is one request the engine sent, as its HTTP client saw it: when
// it left, when its answer came back, and the answer.
type sent struct {
	path       string
	left, back time.Time
	status     int // 0: no answer
	header     http.Header
}

// sendLog is an HTTP transport that records every request the engine
// sends. It times them in the engine's process, on the monotonic clock
// the governor reads: a time the sandbox took would include the trip
// over loopback, which under -race on a loaded machine is tens of
// milliseconds.
type sendLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	list []sent
}

func newSendLog() *sendLog {
	return &sendLog{next: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// client is for runner.Options.Client.
func (l *sendLog) client() *http.Client { return &http.Client{Transport: l} }

func (l *sendLog) RoundTrip(req *http.Request) (*http.Response, error) {
	left := time.Now()
	resp, err := l.next.RoundTrip(req)
	s := sent{path: req.URL.Path, left: left, back: time.Now()}
	if err == nil {
		s.status, s.header = resp.StatusCode, resp.Header.Clone()
	}
	l.mu.Lock()
	l.list = append(l.list, s)
	l.mu.Unlock()
	return resp, err
}

// to lists the requests whose path starts with prefix.
func (l *sendLog) to(prefix string) []sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sent
	for _, s := range l.list {
		if strings.HasPrefix(s.path, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// pauseEnd is the time a 429 asks the engine to wait for: its
// Retry-After (whole seconds, as the sandbox sends it) counted from when
// the answer came back, else its x-ratelimit-reset. The governor counts
// from when it reads the answer, a little later, so its pause ends no
// sooner than this.
func pauseEnd(t *testing.T, s sent) time.Time {
	t.Helper()
	if v := s.header.Get("Retry-After"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 1 {
			t.Fatalf("a 429 with Retry-After %q; the sandbox sends whole seconds", v)
		}
		return s.back.Add(time.Duration(secs) * time.Second)
	}
	reset, err := strconv.ParseInt(s.header.Get("X-Ratelimit-Reset"), 10, 64)
	if err != nil {
		t.Fatalf("a 429 with neither Retry-After nor x-ratelimit-reset: %v", s.header)
	}
	return time.Unix(reset, 0)
}

// checkPauses fails the test if a request to prefix left while a 429
// had paused the connection: from the time the 429 came back to the time
// it asked for. A request the governor let go just before the engine read
// the 429 cannot know of it, yet may leave after the answer came back;
// inFlight is how long after it such a request may still leave (0 when
// nothing else can be on its way). It returns the 429s seen.
func (l *sendLog) checkPauses(t *testing.T, prefix string, inFlight time.Duration) (refused int) {
	t.Helper()
	reqs := l.to(prefix)
	var inside []string
	for _, r := range reqs {
		if r.status != http.StatusTooManyRequests {
			continue
		}
		refused++
		end := pauseEnd(t, r)
		for _, o := range reqs {
			if !o.left.Before(r.back.Add(inFlight)) && o.left.Before(end) {
				inside = append(inside, fmt.Sprintf("one (answered %d) left %v after a 429 came back, inside its pause of %v (Retry-After %q)",
					o.status, o.left.Sub(r.back).Round(time.Millisecond), end.Sub(r.back).Round(time.Millisecond), r.header.Get("Retry-After")))
			}
		}
	}
	if len(inside) > 0 {
		t.Errorf("requests sent to %s inside a pause: %d; %s", prefix, len(inside), strings.Join(inside[:min(len(inside), 3)], "; "))
	}
	return refused
}

// tagsDelivered is the first tag of each tags request SessionM Core
// accepted, in the order it took them.
func (h *harness) tagsDelivered() []string {
	h.t.Helper()
	var order []string
	for _, e := range h.journal("/sessionm/core/*") {
		if e["status"].(float64) == 200 {
			var body struct{ Tags []string }
			if err := json.Unmarshal([]byte(e["body"].(string)), &body); err != nil || len(body.Tags) == 0 {
				h.t.Fatalf("a tags request without tags: %s", e["body"])
			}
			order = append(order, body.Tags[0])
		}
	}
	return order
}

func mustFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// postAtOnce posts n events to path at the same time, event i as event(i)
// gives it, and waits for every answer, each of which must be 200.
func (h *harness) postAtOnce(n int, path string, event func(i int) (body string, header map[string]string)) {
	h.t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, header := event(i)
			if a := h.post(path, body, header); a.status != 200 {
				h.t.Errorf("event %d: %d %s", i, a.status, a.body)
			}
		}()
	}
	wg.Wait()
}

// generatedOffer is offerEvent for the sandbox's generated user i, known
// to Braze as external.
func generatedOffer(id string, i int, external string) string {
	return strings.Replace(offerEvent(id, external), ana, ids.GeneratedSessionMID(i), 1)
}

func offerEvent(id, user string) string {
	return fmt.Sprintf(`{"event_id":%q,"event_type":"offer_issued","user":{"id":%q,"external_id":%q},
	  "campaign":{"name":"Winter","braze_campaign_id":%q},"offer":{"offer_id":"o-1","name":"Coat"}}`, id, ana, user, winter)
}

// SessionM events without a user or a campaign (points for a purchase,
// an offer issued outside a campaign) are dropped by the shipped
// pipelines' filters: not dead-lettered, and nothing is sent.
func TestShippedFiltersDropEventsWithoutUserOrCampaign(t *testing.T) {
	h := start(t, setup{})
	user := `"user":{"id":"` + ana + `","external_id":"u-1001"}`
	campaign := `"campaign":{"braze_campaign_id":"` + winter + `","braze_canvas_id":"c-1"}`
	events := map[string][]string{
		"/hooks/sessionm/points": {
			`{"event_id":"p-1","event_type":"points_awarded",` + user + `,"points":{"amount":5}}`,
			`{"event_id":"p-2","event_type":"points_awarded",` + campaign + `,"points":{"amount":5}}`,
			`{"event_id":"p-3","event_type":"points_awarded","user":{"id":"` + ana + `"},` + campaign + `}`,
		},
		"/hooks/sessionm/offers": {
			`{"event_id":"o-1","event_type":"offer_issued",` + user + `,"offer":{"offer_id":"o-1"}}`,
			`{"event_id":"o-2","event_type":"offer_issued",` + campaign + `,"offer":{"offer_id":"o-1"}}`,
			`{"event_id":"o-3","event_type":"offer_issued",` + user + `,"campaign":{"name":"no Braze id"}}`,
		},
	}
	for path, bodies := range events {
		for _, body := range bodies {
			if a := h.post(path, body, map[string]string{"Authorization": hookAuth}); a.status != 200 {
				t.Fatalf("%s %s: %d %s", path, body, a.status, a.body)
			}
		}
	}
	h.drained()
	dls, err := h.store.DeadLetters(inbox.DeadFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dls {
		t.Errorf("%s: dead letter %q: %s", dl.Pipeline, dl.Reason, dl.Error)
	}
	if sent := h.journal("/braze/*"); len(sent) != 0 {
		t.Errorf("%d requests reached Braze", len(sent))
	}
	metrics := do(t, "GET", h.engine.URL+"/metrics", "", nil).body
	for _, want := range []string{
		`engine_events_handled_total{outcome="filtered",pipeline="offer-issued-to-braze-campaign"} 3`,
		`engine_events_handled_total{outcome="filtered",pipeline="points-awarded-to-braze-canvas"} 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestWebhookIsStoredThenDelivered(t *testing.T) {
	h := start(t, setup{})
	a := h.post("/hooks/sessionm/offers", mustFile(t, "../../examples/events/sessionm-offer-issued.json"), map[string]string{"Authorization": hookAuth})
	if a.status != 200 || !strings.Contains(a.body, `"event_id":"5f0c2a8e-8a3b-11ef-9a51-0242ac120002"`) {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.eventually("the campaign message", func() bool { return len(h.messages("u-1001")) == 1 })
	// A repeat of the same event (a sender's retry) is recognised.
	a = h.post("/hooks/sessionm/offers", mustFile(t, "../../examples/events/sessionm-offer-issued.json"), map[string]string{"Authorization": hookAuth})
	if a.status != 200 || !strings.Contains(a.body, `"duplicate":true`) {
		t.Fatalf("repeat: %d %s", a.status, a.body)
	}
	h.drained()
	if n := len(h.messages("u-1001")); n != 1 {
		t.Fatalf("u-1001 got %d messages; a repeated event must be delivered once", n)
	}
	// The lookup went to SessionM Connect, the trigger to Braze.
	if len(h.journal("/sessionm/connect/*")) != 1 || len(h.journal("/braze/campaigns/trigger/send")) != 1 {
		t.Fatal("journal does not show one lookup and one trigger")
	}
}

// F1 on SessionM's own tag path, as an existing Braze webhook calls it
// with only the host changed: the app key in the path must be the Basic
// user's, as SessionM requires; another app's key is refused, not sent on
// under this app's credentials.
func TestSessionMPathNeedsTheCredentialsKey(t *testing.T) {
	h := start(t, setup{})
	for _, tt := range []struct {
		key    string
		status int
	}{
		{"sandbox-core-key", 200},
		{"another-app-key", 401},
	} {
		path := "/priv/v1/apps/" + tt.key + "/users/" + ana + "/tags"
		if a := h.post(path, `{"tags":["by_`+tt.key+`"]}`, map[string]string{"Authorization": coreBasic}); a.status != tt.status {
			t.Errorf("%s: %d %s, want %d", path, a.status, a.body, tt.status)
		}
	}
	h.drained()
	if h.tagCount(ana, "by_sandbox-core-key") != 1 || h.tagCount(ana, "by_another-app-key") != 0 {
		t.Error("want the tag of the right key delivered and the other not")
	}
}

// On an HMAC route the dedupe id covers the URL: the same signed body for
// two users is two events, and the same request again is a repeat.
func TestHMACRouteTellsUsersApartByTheURL(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, tweak: func(p *engine.Pipeline) {
		if p.Name == "ordered-tags" {
			p.Source.Auth = &engine.InboundAuth{HMAC: &engine.HMACAuth{Header: "X-Signature", Secret: "s", Prefix: "sha256="}}
		}
	}})
	body := `{"tags":["vip"]}`
	mac := hmac.New(sha256.New, []byte("s"))
	mac.Write([]byte(body))
	signature := map[string]string{"X-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))}
	sam := "4d2e8f3b-32f5-11ef-b3e4-0242ac120002"
	for _, user := range []string{ana, sam, ana} {
		if a := h.post("/hooks/tags/"+user, body, signature); a.status != 200 {
			t.Fatalf("webhook for %s: %d %s", user, a.status, a.body)
		}
	}
	h.drained()
	if a, s := h.tagCount(ana, "vip"), h.tagCount(sam, "vip"); a != 1 || s != 1 {
		t.Fatalf("vip tags: ana %d, sam %d; want one each (another user's event is not a repeat, the same request is)", a, s)
	}
}

func TestInboundChecks(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, tweak: func(p *engine.Pipeline) { p.Source.MaxBody = 256 }})
	sign := func(body string) string {
		mac := hmac.New(sha256.New, []byte("sandbox-wallet-token"))
		mac.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	good := `{"user":"u-1001","country":"ES","n":1}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string
		status int
		want   string
	}{
		{"no such route", "POST", "/hooks/sessionm/offers", "{}", nil, 404, "not found"}, // not in this folder
		{"basic ok", "POST", "/hooks/tags/" + ana, `{"tags":["a"]}`, map[string]string{"Authorization": coreBasic}, 200, `"accepted":true`},
		{"basic wrong password", "POST", "/hooks/tags/" + ana, `{"tags":["a"]}`, map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("sandbox-core-key:nope"))}, 401, "wrong credentials"},
		{"hmac ok", "POST", "/hooks/track", good, map[string]string{"X-Signature": sign(good)}, 200, `"accepted":true`},
		{"hmac replayed under a new Idempotency-Key", "POST", "/hooks/track", good, map[string]string{"X-Signature": sign(good), "Idempotency-Key": "replay-1"}, 200, `"duplicate":true`},
		{"hmac of another body", "POST", "/hooks/track", good, map[string]string{"X-Signature": sign(good + " ")}, 401, "wrong credentials"},
		{"hmac missing", "POST", "/hooks/track", good, nil, 401, "wrong credentials"},
		// Without its header the signature cannot pass: refused before the
		// body is read, or its size looked at.
		{"hmac missing is refused before the body", "POST", "/hooks/track", strings.Repeat("x", 2<<20), nil, 401, "wrong credentials"},
		{"not JSON", "POST", "/hooks/tags/" + ana, `{"tags":`, map[string]string{"Authorization": coreBasic}, 400, "the body is not JSON: line 1"},
		{"not UTF-8", "POST", "/hooks/tags/" + ana, "{\"tags\":[\"caf\xe9\"]}", map[string]string{"Authorization": coreBasic}, 400, "byte 14 is not part of a UTF-8 character"},
		{"Latin-1 before the JSON", "POST", "/hooks/tags/" + ana, "\xff{\"tags\":[\"a\"]}", map[string]string{"Authorization": coreBasic}, 400, "the body is not UTF-8 (byte 1 is not part of a UTF-8 character)"},
		{"UTF-16 with its mark", "POST", "/hooks/tags/" + ana, "\xff\xfe{\x00}\x00", map[string]string{"Authorization": coreBasic}, 400, "it starts with a UTF-16 byte-order mark"},
		{"UTF-16 without its mark", "POST", "/hooks/tags/" + ana, "{\x00}\x00", map[string]string{"Authorization": coreBasic}, 400, "NUL bytes among its first, as UTF-16 text does"},
		{"no body", "POST", "/hooks/tags/" + ana, "", map[string]string{"Authorization": coreBasic}, 400, "the body is empty"},
		{"a byte-order mark", "POST", "/hooks/tags/" + ana, "\xEF\xBB\xBF{\"tags\":[\"a\"]}", map[string]string{"Authorization": coreBasic}, 400, "the body is not JSON: it starts with a UTF-8 byte-order mark"},
		{"a bracket after the JSON", "POST", "/hooks/tags/" + ana, `{"tags":["a"]}]`, map[string]string{"Authorization": coreBasic}, 400, "does not end where the JSON value ends"},
		{"two JSON values", "POST", "/hooks/tags/" + ana, `{"tags":["a"]} {}`, map[string]string{"Authorization": coreBasic}, 400, "more than one JSON value"},
		{"wrong credentials are refused before the body is read", "POST", "/hooks/tags/" + ana, strings.Repeat("x", 1000), map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("x:y"))}, 401, "wrong credentials"},
		{"too big", "POST", "/hooks/tags/" + ana, `{"tags":["` + strings.Repeat("x", 300) + `"]}`, map[string]string{"Authorization": coreBasic}, 413, "limit of 256 bytes"},
		{"id too long", "POST", "/hooks/tags/" + ana, `{"tags":["a"]}`, map[string]string{"Authorization": coreBasic, "Idempotency-Key": strings.Repeat("k", 1025)}, 400, "at most 1024 are taken"},
		{"wrong method", "GET", "/hooks/tags/" + ana, "", nil, 405, ""},
		{"health", "GET", "/healthz", "", nil, 200, "ok"},
		{"ready", "GET", "/readyz", "", nil, 200, "ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, h.engine.URL+tt.path, tt.body, tt.header)
			if a.status != tt.status || !strings.Contains(a.body, tt.want) {
				t.Fatalf("%d %s; want %d %q", a.status, a.body, tt.status, tt.want)
			}
		})
	}
	h.drained()
	// Credentials are not stored with the event.
	for _, e := range h.journal("/sessionm/core/*") {
		if strings.Contains(e["body"].(string), "Authorization") {
			t.Fatal("the caller's credentials reached the target")
		}
	}
}

// Two Authorization or Idempotency-Key headers are refused: which one
// counts would be a guess, and a proxy in front that checked the other
// would let the caller through on it.
func TestATwiceGivenHeaderIsRefused(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}})
	for _, tt := range []struct{ name, first, second string }{
		{"Authorization", coreBasic, "Basic " + base64.StdEncoding.EncodeToString([]byte("x:y"))},
		{"Idempotency-Key", "k-1", "k-2"},
	} {
		req, _ := http.NewRequest("POST", h.engine.URL+"/hooks/tags/"+ana, strings.NewReader(`{"tags":["a"]}`))
		req.Header.Set("Authorization", coreBasic)
		req.Header.Del(tt.name)
		req.Header.Add(tt.name, tt.first)
		req.Header.Add(tt.name, tt.second)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "the request has 2 " + tt.name + " headers; send one"; resp.StatusCode != 400 || !strings.Contains(string(body), want) {
			t.Errorf("two %s headers: %d %s; want 400 and %q", tt.name, resp.StatusCode, body, want)
		}
	}
}

// The header an HMAC route checks the signature in is not kept with the
// event, whatever it is called: a template that reads it finds nothing,
// and no dead letter holds a signature that is valid for the body.
func TestHMACSignatureHeaderIsNotKept(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"connections.yaml", "track.yaml"} {
		raw, err := os.ReadFile(filepath.Join("testdata/pipelines", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	editFile(t, filepath.Join(dir, "track.yaml"), func(s string) string {
		s = strings.Replace(s, "header: X-Signature", "header: X-Checksum", 1) // named like no credential
		return strings.Replace(s, `last_n: "{{ event.n }}"`, `last_n: "{{ event.n }}"
        seen: "[{{ request.headers.x-checksum }}]"`, 1)
	})
	h := start(t, setup{dirs: []string{dir}})
	body := `{"user":"u-1001","country":"ES","n":1}`
	mac := hmac.New(sha256.New, []byte("sandbox-wallet-token"))
	mac.Write([]byte(body))
	signature := hex.EncodeToString(mac.Sum(nil))
	if a := h.post("/hooks/track", body, map[string]string{"X-Checksum": "sha256=" + signature}); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.drained()
	sent := h.journal("/braze/users/track")
	if len(sent) != 1 {
		t.Fatalf("%d requests to users/track; want 1", len(sent))
	}
	if b := sent[0]["body"].(string); strings.Contains(b, signature) || !strings.Contains(b, `"seen":"[]"`) {
		t.Fatalf("the template read the signature header: %s", b)
	}
}

// Bodies being read share a room: while one caller holds a body half sent
// (an HMAC route reads it whole before it can check the signature), a
// body that does not fit the room left is refused with 503 and
// Retry-After at once, not read; once the first is answered, it fits.
// Callers checked before the body have a room of their own. A body
// announced over max_body is refused before it is read.
func TestBodiesBeingReadAreBounded(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, tweak: func(p *engine.Pipeline) { p.Source.MaxBody = 600 },
		opts: func(o *runner.Options) { o.BodyMemory = 1000 }})
	body := `{"user":"u-1001","country":"ES","n":1}` + strings.Repeat(" ", 500)
	// A signature, wrong: a request without one is refused before its
	// body is read.
	wrongSignature := map[string]string{"X-Signature": "sha256=00"}
	// The held request asks for 100 Continue, which the server sends once
	// the handler starts reading the body, after it took the body's room:
	// the room is held for sure before the next request comes. Sent at
	// once with its first bytes, the held request came on a new
	// connection, and on a busy machine the next, on a kept-alive one,
	// took the room first each time for 10 s (a stress run).
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.engine.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	answer := bufio.NewReader(conn)
	fmt.Fprintf(conn, "POST /hooks/track HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Signature: sha256=00\r\nExpect: 100-continue\r\n\r\n", len(body))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := answer.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("the held request: %q %v; want 100 Continue", line, err)
	}
	if blank, err := answer.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("the held request's 100 Continue ends with %q %v", blank, err)
	}
	conn.SetReadDeadline(time.Time{})
	fmt.Fprint(conn, body[:10])
	if a := do(t, "POST", h.engine.URL+"/hooks/track", body, wrongSignature); a.status != 503 || !strings.Contains(a.body, "too many request bodies") { // 538 + 538 > 1000
		t.Errorf("a body that does not fit the room left: %d %s, want 503", a.status, a.body)
	}
	if a := do(t, "POST", h.engine.URL+"/hooks/track", body[:400], wrongSignature); a.status != 401 {
		t.Errorf("a body that fits the room left: %d %s, want 401 (its signature is wrong)", a.status, a.body)
	}
	// Callers checked before their bodies are read have a room of their
	// own: the unchecked ones cannot keep them out.
	if a := h.post("/hooks/tags/"+ana, `{"tags":["a"]}`+strings.Repeat(" ", 500), map[string]string{"Authorization": coreBasic}); a.status != 200 {
		t.Errorf("a Basic route's body while the other room is full: %d %s, want 200", a.status, a.body)
	}
	fmt.Fprint(conn, body[10:])
	status, err := answer.ReadString('\n')
	if err != nil || !strings.Contains(status, "401") {
		t.Fatalf("the held request: %q %v", status, err)
	}
	if a := do(t, "POST", h.engine.URL+"/hooks/track", body, wrongSignature); a.status != 401 {
		t.Errorf("after the first was answered: %d %s, want 401", a.status, a.body)
	}
	// A body of unknown length needs more than the whole room (twice
	// max_body): it takes all of it rather than being refused for ever.
	chunked, err := http.NewRequest("POST", h.engine.URL+"/hooks/track", io.NopCloser(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	chunked.ContentLength = -1
	chunked.Header.Set("X-Signature", wrongSignature["X-Signature"])
	if resp, err := http.DefaultClient.Do(chunked); err != nil || resp.StatusCode != 401 {
		t.Errorf("a chunked body in an empty room: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	if a := do(t, "POST", h.engine.URL+"/hooks/track", strings.Repeat(" ", 700), wrongSignature); a.status != 413 {
		t.Errorf("a body over max_body: %d %s, want 413", a.status, a.body)
	}
	if v, _ := h.metric(`engine_events_refused_total{pipeline="track",reason="busy"}`); v < 1 {
		t.Errorf("engine_events_refused_total{reason=busy} = %v", v)
	}
}

// A secret in a route's path (a capability URL) is masked in /status.
func TestStatusMasksSecretsInRoutes(t *testing.T) {
	masker := &secrets.Masker{}
	masker.Add("s3cr3t-path")
	h := start(t, setup{dirs: []string{"testdata/pipelines"},
		tweak: func(p *engine.Pipeline) {
			if p.Name == "track" {
				p.Source.Paths = []string{"/hooks/s3cr3t-path"}
			}
		},
		opts: func(o *runner.Options) { o.Masker = masker }})
	admin := h.admin()
	st := do(t, "GET", admin.URL+"/status", "", nil)
	if strings.Contains(st.body, "s3cr3t") || !strings.Contains(st.body, `"POST /hooks/****"`) {
		t.Errorf("/status: %s", st.body)
	}
}

// A 401 names the scheme the route wants (RFC 9110 §11.6.1: it must carry
// a challenge): a caller with an HMAC route is not told to send a bearer
// token.
func TestUnauthorizedChallengeNamesTheRouteAuth(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, tweak: func(p *engine.Pipeline) {
		if p.Name == "any-campaign" {
			p.Source.Auth = &engine.InboundAuth{Bearer: "t"}
		}
	}})
	tests := []struct {
		auth string
		path string
		want string
	}{
		{"bearer", "/hooks/campaign", `Bearer realm="engine"`},
		{"basic", "/hooks/tags/" + ana, `Basic realm="engine"`},
		{"hmac", "/hooks/track", `Signature realm="engine", header="X-Signature"`},
	}
	for _, tt := range tests {
		t.Run(tt.auth, func(t *testing.T) {
			a := do(t, "POST", h.engine.URL+tt.path, `{}`, nil)
			if got := a.header.Values("WWW-Authenticate"); a.status != 401 || len(got) != 1 || got[0] != tt.want {
				t.Fatalf("%d, WWW-Authenticate %q; want 401 and %q", a.status, got, tt.want)
			}
		})
	}
}

func TestBackpressure(t *testing.T) {
	h := start(t, setup{opts: func(o *runner.Options) { o.MaxInbox = 2 }})
	// Braze answers slowly, so events pile up in the inbox.
	h.control("POST", "/faults", `{"emulator":"braze","latency":"1s"}`)
	statuses := map[int]int{}
	accepted := ""
	for i := range 6 {
		id := fmt.Sprintf("bp-%d", i)
		a := h.post("/hooks/sessionm/offers", offerEvent(id, "u-1001"), map[string]string{"Authorization": hookAuth})
		statuses[a.status]++
		if a.status == 503 && a.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		if a.status == 200 && accepted == "" {
			accepted = id
		}
	}
	if statuses[503] == 0 || statuses[200] == 0 {
		t.Fatalf("statuses %v: want some accepted and some 503 once the inbox is full", statuses)
	}
	// A sender's retry of an event the full inbox holds is a repeat, not
	// told to try again.
	a := h.post("/hooks/sessionm/offers", offerEvent(accepted, "u-1001"), map[string]string{"Authorization": hookAuth})
	if a.status != 200 || !strings.Contains(a.body, `"duplicate":true`) {
		t.Fatalf("a repeat of %s while the inbox is full: %d %s; want 200 and duplicate", accepted, a.status, a.body)
	}
	if n := h.r.Depth("offer-issued-to-braze-campaign"); n < 2 {
		t.Fatalf("the inbox held %d events after the repeat; the test needs it full (2)", n)
	}
	h.drained()
	if n := len(h.messages("u-1001")); n != statuses[200] {
		t.Fatalf("%d messages for %d accepted events", n, statuses[200])
	}
}

// Concurrent webhooks keep to --max-inbox too: checked against the depth
// alone, those on their way into the inbox all passed (a QA run: 239 held
// with a limit of 50, from 1,000 senders).
func TestBackpressureUnderConcurrency(t *testing.T) {
	const limit, senders = 5, 64
	h := start(t, setup{opts: func(o *runner.Options) { o.MaxInbox = limit }})
	// Braze answers slowly, so the accepted events stay in the inbox
	// while the others arrive.
	h.control("POST", "/faults", `{"emulator":"braze","latency":"1s"}`)
	var wg sync.WaitGroup
	var accepted, refused atomic.Int32
	for i := range senders {
		wg.Go(func() {
			a := h.post("/hooks/sessionm/offers", offerEvent(fmt.Sprintf("bpc-%d", i), "u-1001"), map[string]string{"Authorization": hookAuth})
			switch a.status {
			case 200:
				accepted.Add(1)
			case 503:
				refused.Add(1)
			default:
				t.Errorf("%d %s", a.status, a.body)
			}
		})
	}
	wg.Wait()
	if n := accepted.Load(); n == 0 || n > limit || n+refused.Load() != senders {
		t.Fatalf("%d accepted and %d refused of %d concurrent webhooks with --max-inbox %d", n, refused.Load(), senders, limit)
	}
	h.drained()
	if n := len(h.messages("u-1001")); n != int(accepted.Load()) {
		t.Fatalf("%d messages for %d accepted events", n, accepted.Load())
	}
}

// Copies of one event sent at once (a Braze retry storm) are repeats, not
// more events: counted as on their way into the inbox, 39 of 50 were told
// "inbox full" at --max-inbox 10 with one event queued (a QA run).
func TestConcurrentRepeatsDoNotFillTheInbox(t *testing.T) {
	const limit, copies = 3, 40
	h := start(t, setup{opts: func(o *runner.Options) { o.MaxInbox = limit }})
	h.control("POST", "/faults", `{"emulator":"braze","latency":"1s"}`)
	for round := range 3 {
		var wg sync.WaitGroup
		var stored, repeats atomic.Int32
		id := fmt.Sprintf("storm-%d", round)
		for range copies {
			wg.Go(func() {
				a := h.post("/hooks/sessionm/offers", offerEvent(id, "u-1001"), map[string]string{"Authorization": hookAuth})
				switch {
				case a.status == 200 && strings.Contains(a.body, `"duplicate":true`):
					repeats.Add(1)
				case a.status == 200:
					stored.Add(1)
				default:
					t.Errorf("copy of %s: %d %s; want 200", id, a.status, a.body)
				}
			})
		}
		wg.Wait()
		if stored.Load() != 1 || repeats.Load() != copies-1 {
			t.Fatalf("%s: %d stored, %d repeats of %d copies; want 1 and the rest repeats", id, stored.Load(), repeats.Load(), copies)
		}
	}
	h.drained()
	if n := len(h.messages("u-1001")); n != 3 {
		t.Fatalf("%d messages for 3 events", n)
	}
}

// Copies of many events at once keep to the limit: a copy let through
// uncounted while its first was refused was stored over it (a re-QA:
// 1,397 held at 300).
func TestCopiesOfManyEventsKeepToTheLimit(t *testing.T) {
	const limit = 100
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 600, opts: func(o *runner.Options) { o.MaxInbox = limit }})
	h.control("POST", "/faults", `{"emulator":"braze","latency":"1s"}`)
	var wg sync.WaitGroup
	var accepted sync.Map
	for i := range 600 {
		for range 4 {
			wg.Go(func() {
				id := fmt.Sprintf("many-%d", i)
				body := fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d}`, winter, i, i)
				if a := h.post("/hooks/campaign", body, map[string]string{"Idempotency-Key": id}); a.status == 200 {
					accepted.Store(i, true)
				}
			})
		}
	}
	wg.Wait()
	if n := h.r.Depth("any-campaign"); n > limit {
		t.Fatalf("the inbox holds %d events with --max-inbox %d", n, limit)
	}
	h.control("DELETE", "/faults", "")
	h.drained()
	for i := range 600 {
		_, ok := accepted.Load(i)
		if got, want := len(h.messages(fmt.Sprintf("load-%06d", i))), map[bool]int{true: 1}[ok]; got != want {
			t.Errorf("load-%06d got %d messages; want %d", i, got, want)
		}
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	h := start(t, setup{})
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1,"count":2}`)
	h.post("/hooks/sessionm/offers", offerEvent("r-1", "u-1002"), map[string]string{"Authorization": hookAuth})
	h.drained()
	if n := len(h.messages("u-1002")); n != 1 {
		t.Fatalf("u-1002 got %d messages after two 503s", n)
	}
	if n := len(h.journal("/braze/campaigns/trigger/send")); n != 3 {
		t.Fatalf("%d trigger requests, want 2 failures and 1 success", n)
	}
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Fatalf("dead letters %+v", dls)
	}
}

func TestDeadLetters(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) { p.Delivery.Attempts = 3 }})
	// A campaign Braze does not know: 400, dead-lettered at once.
	bad := strings.Replace(offerEvent("dl-1", "u-1001"), winter, "no-such-campaign", 1)
	h.post("/hooks/sessionm/offers", bad, map[string]string{"Authorization": hookAuth})
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 {
		t.Fatalf("dead letters %+v", dls)
	}
	dl := dls[0]
	if dl.Reason != "rejected" || dl.Attempts != 1 || dl.Response.Status != 400 || !strings.Contains(dl.Response.Excerpt, "Invalid Campaign ID") ||
		dl.EventID != "dl-1" || dl.Pipeline != "offer-issued-to-braze-campaign" || dl.Version == "" || !strings.Contains(string(dl.Event), "no-such-campaign") {
		t.Fatalf("dead letter %+v", dl)
	}
	if dl.Request.Headers["Authorization"] != "Bearer ****" || strings.Contains(fmt.Sprint(dl), "sandbox-braze-key") {
		t.Fatalf("the dead letter shows the credential: %+v", dl.Request)
	}
	// The inbox keeps events in a binary form; the dead letter has the
	// event as a JSON object people can read (and replay can queue).
	var kept struct {
		ID   string         `json:"id"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(dl.Event, &kept); err != nil || kept.ID != "dl-1" || kept.Data["offer"] == nil {
		t.Fatalf("dead letter event %s: %v", dl.Event, err)
	}

	// Braze down for good: retried up to delivery.attempts, then dead.
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1}`)
	h.post("/hooks/sessionm/offers", offerEvent("dl-2", "u-1002"), map[string]string{"Authorization": hookAuth})
	h.drained()
	dls, _ = h.store.DeadLetters(inbox.DeadFilter{Reason: "attempts_exhausted"})
	if len(dls) != 1 || dls[0].Attempts != 3 || dls[0].Response.Status != 503 {
		t.Fatalf("exhausted: %+v", dls)
	}
	if n := len(h.journal("/braze/campaigns/trigger/send")); n != 4 {
		t.Fatalf("%d trigger requests, want 1 + 3", n)
	}

	// A refusal the emulators are told to give (a fault's 4xx): dead at
	// once, with the emulator's error shape in the excerpt.
	h.control("DELETE", "/faults", "")
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1,"error_status":422,"count":1}`)
	h.post("/hooks/sessionm/offers", offerEvent("dl-4", "u-1003"), map[string]string{"Authorization": hookAuth})
	h.drained()
	if dls, _ = h.store.DeadLetters(inbox.DeadFilter{Reason: "rejected"}); len(dls) != 2 || dls[1].EventID != "dl-4" || dls[1].Attempts != 1 ||
		dls[1].Response.Status != 422 || !strings.Contains(dls[1].Response.Excerpt, "unprocessable_entity") {
		t.Fatalf("a fault's 422: %+v", dls)
	}

	// A lookup SessionM refuses (unknown user) is dead-lettered too.
	unknown := strings.Replace(offerEvent("dl-3", "u-1001"), ana, "00000000-0000-0000-0000-00000000dead", 1)
	h.post("/hooks/sessionm/offers", unknown, map[string]string{"Authorization": hookAuth})
	h.drained()
	if dls, _ = h.store.DeadLetters(inbox.DeadFilter{Reason: "lookup_rejected"}); len(dls) != 1 || !strings.Contains(dls[0].Error, "user_not_found") {
		t.Fatalf("lookup: %+v", dls)
	}
}

// A dead letter of an event sent without an id names it as its sender was
// answered (<pipeline>#<n>), and keeps that name when it is replayed and
// dead again: queued again, it had got a new number, and its dead letter
// had no id at all.
func TestDeadLetterOfAnEventWithoutAnIDKeepsItsName(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}})
	refuse := func() {
		h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":422,"count":1}`)
	}
	refuse()
	a := h.post("/hooks/tags/"+ana, `{"tags":["a"]}`, map[string]string{"Authorization": coreBasic})
	var answer struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(a.body), &answer); err != nil || !strings.Contains(answer.EventID, "#") {
		t.Fatalf("answer %d %s (%v); want an event id <pipeline>#<n>", a.status, a.body, err)
	}
	named := func(round string) uint64 {
		t.Helper()
		h.drained()
		dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
		if len(dls) != 1 || dls[0].EventID != answer.EventID || !strings.Contains(string(dls[0].Event), `"id":"`+answer.EventID+`"`) {
			t.Fatalf("%s: dead letters %+v; want one named %s", round, dls, answer.EventID)
		}
		return dls[0].ID
	}
	id := named("first")
	refuse()
	admin := h.admin()
	if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, id), "", nil); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	named("after a replay")
}

// A 429 with Retry-After pauses the whole connection: nothing goes to
// Braze before the time it gave, neither the refused event's retry nor
// the events of other users queued meanwhile, and all are delivered after.
// pauseBraze has Braze answer 429 for a burst of the given length from
// its next request, sends it the offer event first, and returns once the
// engine has taken the pause (engine_connection_pauses_total went up).
func (h *harness) pauseBraze(burst, first string) {
	h.t.Helper()
	h.control("POST", "/faults", `{"emulator":"braze","throttle":{"for":"`+burst+`"}}`)
	h.post("/hooks/sessionm/offers", first, map[string]string{"Authorization": hookAuth})
	h.eventually("the pause after the 429", func() bool {
		return strings.Contains(do(h.t, "GET", h.engine.URL+"/metrics", "", nil).body, `engine_connection_pauses_total{connection="braze"} 1`)
	})
}

func TestRetryAfterPausesTheConnection(t *testing.T) {
	log := newSendLog()
	h := start(t, setup{users: 3,
		tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 20 * time.Millisecond },
		opts:  func(o *runner.Options) { o.Client = log.client() }})
	// One burst: the first request is refused with Retry-After: 2, and
	// a request sent after those two seconds is let through. Two, not
	// one: a governor that ignored Retry-After would pause for the
	// default second (A), and its requests would land inside the pause.
	event := func(i int) string { return generatedOffer(fmt.Sprintf("p-%d", i), i, fmt.Sprintf("load-%06d", i)) }
	// The other users' events come once the engine has read the 429 (the
	// counter goes up after the governor took the pause): none of their
	// requests can be on its way already, so any that goes inside the
	// pause is one the engine sent knowing of it.
	h.pauseBraze("2s", event(0))
	for i := 1; i < 3; i++ {
		h.post("/hooks/sessionm/offers", event(i), map[string]string{"Authorization": hookAuth})
	}
	h.drained()
	// No allowance for requests on their way (see above), nor for the
	// clock: the log and the governor read the same monotonic clock.
	if n := log.checkPauses(t, "/braze/", 0); n != 1 {
		t.Errorf("%d requests were answered 429; want the first only", n)
	}
	for i := range 3 {
		if n := len(h.messages(fmt.Sprintf("load-%06d", i))); n != 1 {
			t.Errorf("load-%06d got %d messages; want 1", i, n)
		}
	}
}

// Events that come while the connection is paused wait in one open batch
// until the pause ends, rather than each linger's batch waiting apart: at
// the end of a pause several small requests went where one carried them.
// The event the 429 answered joins them.
func TestBatchesFillWhileTheConnectionIsPaused(t *testing.T) {
	h := start(t, setup{users: 50, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 100 * time.Millisecond }})
	event := func(i int) string { return generatedOffer(fmt.Sprintf("fill-%d", i), i, fmt.Sprintf("load-%06d", i)) }
	h.pauseBraze("3s", event(0))
	// Four groups, each past the linger of the one before, all inside the
	// pause.
	for group := range 4 {
		for i := 1 + group*10; i <= 10+group*10; i++ {
			h.post("/hooks/sessionm/offers", event(i), map[string]string{"Authorization": hookAuth})
		}
		time.Sleep(150 * time.Millisecond)
	}
	h.drained()
	sent := h.journal("/braze/campaigns/trigger/send")
	// The first 429, then the 40 in one request with the first event's
	// retry, which comes back a linger before the pause ends to join
	// them: back at its end, it went alone a linger later.
	if len(sent) != 2 {
		t.Errorf("%d trigger requests for 41 events and one 429; want 2", len(sent))
	}
	for i := range 41 {
		if n := len(h.messages(fmt.Sprintf("load-%06d", i))); n != 1 {
			t.Errorf("load-%06d got %d messages; want 1", i, n)
		}
	}
}

// Events that come while the connection's rate limit has no room wait in
// one open batch until a request could go, as in a pause: closed at its
// linger, each batch waited for its token apart, and under a limit of 1
// request a second a steady stream went a few events to a request while
// a backlog grew.
func TestBatchesFillWhileTheRateLimitHasNoRoom(t *testing.T) {
	h := start(t, setup{users: 50, tweak: func(p *engine.Pipeline) {
		p.Delivery.Linger = 20 * time.Millisecond
		if p.Target != nil && p.Target.Conn.Name == "braze" {
			p.Target.Conn.RateLimit = &spec.RateLimit{Requests: 1, Window: 2 * time.Second}
		}
	}})
	event := func(i int) string { return generatedOffer(fmt.Sprintf("rate-%d", i), i, fmt.Sprintf("load-%06d", i)) }
	// The first request takes the one token; the next is there 2 s later.
	h.post("/hooks/sessionm/offers", event(0), map[string]string{"Authorization": hookAuth})
	h.eventually("the first request", func() bool { return len(h.journal("/braze/campaigns/trigger/send")) == 1 })
	// Four groups, each past the linger of the one before, all before the
	// next token.
	for group := range 4 {
		for i := 1 + group*10; i <= 10+group*10; i++ {
			h.post("/hooks/sessionm/offers", event(i), map[string]string{"Authorization": hookAuth})
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.drained()
	if sent := h.journal("/braze/campaigns/trigger/send"); len(sent) != 2 {
		t.Errorf("%d trigger requests for 1 event and then 40 within one token's wait; want 2", len(sent))
	}
	// The batch waited for the token from its linger on, in the batcher
	// rather than in the governor; it was not counted at all.
	if waited, _ := h.metric(`engine_rate_limit_wait_seconds_total\{connection="braze"\}`); waited < 1.5 || waited > 2.5 {
		t.Errorf("engine_rate_limit_wait_seconds_total is %v; the batch waited about 1.9 s for the next token", waited)
	}
	for i := range 41 {
		if n := len(h.messages(fmt.Sprintf("load-%06d", i))); n != 1 {
			t.Errorf("load-%06d got %d messages; want 1", i, n)
		}
	}
}

// Under a rate limit, batches of several campaigns that share the pool
// take turns at the tokens: one closed at its token's time then waited in
// the governor behind the other's, while the next batch of its campaign
// began, so each request carried one token's wait of events where it
// could carry two (a QA run under Braze's window of 20 requests per 10 s
// averaged 23 recipients a request, 30 of them with 1-5). A batch now
// takes a turn a token after the other waiting batches' and stays open
// until it comes.
func TestBatchesOfSeveralCampaignsFillUnderARateLimit(t *testing.T) {
	// Two pipelines on one connection take turns at the same tokens
	// (Braze's campaign and Canvas triggers share a pool): each counting
	// its own batches only, they took the same turns and sent smaller
	// requests.
	for _, pipelines := range []int{1, 2} {
		t.Run(fmt.Sprint(pipelines, " pipelines"), func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range []string{"connections.yaml", "any-campaign.yaml"} {
				raw, err := os.ReadFile(filepath.Join("testdata/pipelines", name))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, name), raw, 0o644)
				if name == "any-campaign.yaml" && pipelines == 2 {
					os.WriteFile(filepath.Join(dir, "any-campaign-too.yaml"), bytes.Replace(raw, []byte("/hooks/campaign"), []byte("/hooks/campaign-too"), 1), 0o644)
				}
			}
			batchesFillUnderARateLimit(t, dir, pipelines)
		})
	}
}

func batchesFillUnderARateLimit(t *testing.T, dir string, pipelines int) {
	// The stream, the linger and the token's window are drawn out by
	// pace, which keeps their ratios. At 200 events a second (pace 1) a
	// busy machine took the 400 posts in 3.4-6.7 s, not 2: no backlog
	// grew, and 13-20 requests went (a stress run). 100 a second it kept
	// up with.
	const pace = 2
	h := start(t, setup{dirs: []string{dir}, users: 400, tweak: func(p *engine.Pipeline) {
		p.Delivery.Linger = 20 * pace * time.Millisecond
		if p.Target != nil && p.Target.Conn.Name == "braze" {
			p.Target.Conn.RateLimit = &spec.RateLimit{Requests: 1, Window: 400 * pace * time.Millisecond}
		}
	}})
	// Four campaigns: two the emulator runs, two it does not know, whose
	// requests it refuses (their events are dead letters), which makes
	// no difference to how they are batched. With two pipelines, each
	// sends two of them.
	campaigns := []string{winter, "3e5a7c9e-1b2d-4f6a-8c0e-2d4f6a8c0e1b", "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"}
	paths := []string{"/hooks/campaign", "/hooks/campaign-too"}[:pipelines]
	// 200 events a second for 2 s (at pace 1), a quarter to each
	// campaign, where 2.5 requests a second carry at most 125: a backlog
	// grows. Each group goes on the clock, not after the one before is
	// answered, which on a busy machine slowed the stream until no
	// backlog grew.
	var groups sync.WaitGroup
	began := time.Now()
	for group := range 20 {
		for half, path := range paths {
			groups.Go(func() {
				h.postAtOnce(20/pipelines, path, func(i int) (string, map[string]string) {
					n := group*20 + half*(20/pipelines) + i
					campaign := campaigns[(i%(4/pipelines))+half*(4/pipelines)]
					return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d}`, campaign, n, n), nil
				})
			})
		}
		time.Sleep(100 * pace * time.Millisecond)
	}
	groups.Wait()
	stream := time.Since(began)
	// What is left goes a token's wait apart: some 8 s, or 17 s with
	// batches that each carry one token's events (21 requests).
	for deadline := time.Now().Add(60 * time.Second); len(h.store.Pipelines()) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("events still unsent a minute after the stream; %d requests so far", len(h.journal("/braze/campaigns/trigger/send")))
		}
	}
	sent := h.journal("/braze/campaigns/trigger/send")
	recipients := 0
	for _, e := range sent {
		recipients += strings.Count(e["body"].(string), `"external_user_id"`)
	}
	if recipients != 400 {
		t.Fatalf("setup: %d recipients in %d requests; want the 400 events once each", recipients, len(sent))
	}
	// Each campaign has a turn every 1.6 s (at pace 1), 80 events' worth
	// at any pace. Holding a batch for one token only gave 21 requests of
	// 19 on average; turns give 11 or 12 (the first few small, as the
	// stream starts, and the last ones with what is left of each
	// campaign). Turns counted per pipeline gave two pipelines 13
	// requests of 30.8 here (11 of 36.4 counted on the connection);
	// TestBatchTurnsAreTheConnections tells the two apart for sure.
	if mean := float64(recipients) / float64(len(sent)); mean < 30 {
		t.Errorf("%d requests, %.1f recipients each on average; want 30 or more (the stream took %v)", len(sent), mean, stream)
	}
}

func TestBrazeBatching(t *testing.T) {
	// The posts all come within the linger, which closes a batch that
	// has not filled up: within the pipeline's 200 ms a busy machine
	// took 29 of them, and the largest request had 29 recipients (a
	// stress run). A batch that fills up goes at once, so only the last
	// one waits the 3 s.
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 200, tweak: func(p *engine.Pipeline) {
		p.Delivery.Linger = 3 * time.Second
	}})
	const n = 120
	h.postAtOnce(n, "/hooks/campaign", func(i int) (string, map[string]string) {
		if i == 7 { // Braze refuses trigger properties over 50 KB
			return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d,"note":%q}`, winter, i, i, strings.Repeat("x", 60<<10)), nil
		}
		return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d,"note":"<b>Winter & co</b>"}`, winter, i, i), nil
	})
	h.drained()
	total := 0
	for i := range n {
		total += len(h.messages(fmt.Sprintf("load-%06d", i)))
	}
	if total != n-1 {
		t.Fatalf("%d messages delivered, want %d (all but the bad one)", total, n-1)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 || !strings.Contains(string(dls[0].Event), `"n":7`) || dls[0].Reason != "rejected" {
		t.Fatalf("dead letters %+v; want only the event with the large note, refused by Braze", dls)
	}
	// The first requests carried many recipients; the refused batch was
	// then narrowed by halves (each alone: 50 requests or so). A merged
	// body is encoded as a single event's is: "<" and "&" reach Braze as
	// written.
	maxRecipients := 0
	reqs := h.journal("/braze/campaigns/trigger/send")
	if len(reqs) > 20 {
		t.Errorf("%d trigger requests for %d events, one of them refused; want the refused batch narrowed by halves", len(reqs), n)
	}
	for _, e := range reqs {
		text := e["body"].(string)
		var body struct{ Recipients []any }
		json.Unmarshal([]byte(text), &body)
		maxRecipients = max(maxRecipients, len(body.Recipients))
		if len(body.Recipients) > 1 && !strings.Contains(text, `"note":"<b>Winter & co</b>"`) {
			t.Fatalf("a batch of %d encoded the note otherwise: %.300s", len(body.Recipients), text)
		}
	}
	if maxRecipients < 40 {
		t.Fatalf("the largest request had %d recipients", maxRecipients)
	}
}

// Several refused events in merged requests: narrowing by halves finds
// each, every other event's message goes out once, and it costs at most
// two requests per batch more than sending each refused batch's events
// alone.
func TestRefusedBatchesWithSeveralBadEvents(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 200})
	const n = 150
	bad := map[int]bool{3: true, 4: true, 41: true, 77: true, 78: true, 120: true, 149: true}
	h.postAtOnce(n, "/hooks/campaign", func(i int) (string, map[string]string) {
		note := ""
		if bad[i] {
			note = strings.Repeat("x", 60<<10) // Braze refuses trigger properties over 50 KB
		}
		return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d,"note":%q}`, winter, i, i, note), nil
	})
	h.drained()
	for i := range n {
		if got, want := len(h.messages(fmt.Sprintf("load-%06d", i))), map[bool]int{false: 1}[bad[i]]; got != want {
			t.Errorf("load-%06d got %d messages, want %d", i, got, want)
		}
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	dead := map[int]bool{}
	for _, dl := range dls {
		var ev struct{ Data struct{ N int } }
		if err := json.Unmarshal(dl.Event, &ev); err != nil {
			t.Fatal(err)
		}
		dead[ev.Data.N] = true
	}
	if !maps.Equal(dead, bad) || len(dls) != len(bad) {
		t.Errorf("dead letters for events %v (%d); want %v", slices.Sorted(maps.Keys(dead)), len(dls), slices.Sorted(maps.Keys(bad)))
	}
	if reqs := len(h.journal("/braze/campaigns/trigger/send")); reqs > n+3*(n/50+1) {
		t.Errorf("%d trigger requests for %d events", reqs, n)
	}
}

func TestUsersTrackPacking(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 100})
	sign := func(body string) string {
		mac := hmac.New(sha256.New, []byte("sandbox-wallet-token"))
		mac.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	h.postAtOnce(100, "/hooks/track", func(i int) (string, map[string]string) {
		country := "ES"
		if i == 42 {
			country = "Spain" // not ISO-3166: Braze refuses this one object
		}
		body := fmt.Sprintf(`{"user":"load-%06d","country":%q,"n":%d}`, i, country, i)
		return body, map[string]string{"X-Signature": sign(body)}
	})
	h.drained()
	reqs := h.journal("/braze/users/track")
	if len(reqs) > 4 {
		t.Fatalf("%d requests for 100 objects; want them packed by 75", len(reqs))
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 || !strings.Contains(string(dls[0].Event), `"n":42`) || !strings.Contains(dls[0].Error, "country") {
		t.Fatalf("dead letters %+v; want only event 42, for its country", dls)
	}
}

// Braze accepts a merged trigger request whose one recipient has a country
// it cannot store, with a minor error about that recipient: every message
// went out, so no event is dead-lettered (a replay would send it twice).
func TestTriggerMinorErrorsStillCountAsDelivered(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/trigger-attributes"}, users: 20})
	const n = 10
	h.postAtOnce(n, "/hooks/campaign-country", func(i int) (string, map[string]string) {
		country := "ES"
		if i == 3 {
			country = "Spain" // not ISO-3166
		}
		return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","country":%q}`, winter, i, country), nil
	})
	h.drained()
	country := func(user string) any {
		braze, _ := h.control("GET", "/deliveries?user="+user, "")["braze"].(map[string]any)
		attributes, _ := braze["attributes"].(map[string]any)
		return attributes["country"]
	}
	if good, bad := country("load-000002"), country("load-000003"); good != "ES" || bad == "Spain" {
		t.Fatalf("countries %v and %v: Braze should have stored ES and refused Spain (the minor error)", good, bad)
	}
	if requests := len(h.journal("/braze/campaigns/trigger/send")); requests >= n {
		t.Fatalf("%d requests for %d events: the test needs them merged", requests, n)
	}
	for i := range n {
		if got := len(h.messages(fmt.Sprintf("load-%06d", i))); got != 1 {
			t.Errorf("load-%06d got %d messages, want 1", i, got)
		}
	}
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Fatalf("%d dead letters (first: %s); Braze sent every message", len(dls), dls[0].Error)
	}
}

// Events accepted but not delivered when the engine stops are delivered
// by the next engine on the same data folder.
func TestRestartDeliversWhatWasLeft(t *testing.T) {
	data := t.TempDir()
	h := start(t, setup{dataDir: data})
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1}`) // Braze is down
	for i := range 5 {
		h.post("/hooks/sessionm/offers", offerEvent(fmt.Sprintf("rs-%d", i), "u-1001"), map[string]string{"Authorization": hookAuth})
	}
	h.stop()
	h.control("DELETE", "/faults", "")
	h2 := start(t, setup{dataDir: data, sandbox: h.sbURL})
	h2.drained()
	if n := len(h2.messages("u-1001")); n != 5 {
		t.Fatalf("%d of 5 events delivered after the restart", n)
	}
}

func TestOrderedRetriesKeepOrder(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}})
	h.control("POST", "/faults", `{"emulator":"sessionm_core","error_ratio":1,"count":2}`)
	for i := range 5 {
		body := fmt.Sprintf(`{"tags":["step_%d"]}`, i)
		if a := h.post("/hooks/tags/"+ana, body, map[string]string{"Authorization": coreBasic}); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	h.drained()
	order := h.tagsDelivered()
	if strings.Join(order, ",") != "step_0,step_1,step_2,step_3,step_4" {
		t.Fatalf("delivered in order %v", order)
	}
}

func TestSynchronousPipeline(t *testing.T) {
	h := start(t, setup{})
	a := h.wallet(ana)
	var reply map[string]any
	if a.status != 200 || json.Unmarshal([]byte(a.body), &reply) != nil || reply["available_points"] != 1350.0 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	a = h.wallet("nobody")
	if a.status != 404 || !strings.Contains(a.body, "user_not_found") {
		t.Fatalf("unknown user: %d %s", a.status, a.body)
	}
	if !bytes.Contains([]byte(a.body), []byte("error")) {
		t.Fatal("no error field")
	}
}

// F3, a user SessionM does not know: 404, which Braze renders as an empty
// string, where a 502 would count toward Braze's unhealthy-host halt of
// Connected Content to the engine (braze.md §4, §5) when a send reaches
// many users without a SessionM profile. The 404 is SessionM's answer, not
// a failure: it is not cached, and it stands over a stale copy, which it
// drops.
func TestSynchronousUnknownUserIs404(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// gone makes SessionM Connect answer as it does for a user it does
	// not know (sessionm.md §1), for a user it knew a moment ago.
	var gone atomic.Bool
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() && strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			// SessionM's words can quote the request, API key and all.
			io.WriteString(w, `{"status":"error","errors":{"code":"user_not_found","message":"no user for GET `+r.URL.Path+`"}}`)
			return
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h := start(t, setup{sandbox: srv.URL, tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache.TTL = 100 * time.Millisecond
		}
	}})
	for i := range 2 {
		a := h.wallet("nobody")
		if a.status != 404 || !strings.Contains(a.body, `"error":"step wallet: sessionm_connect answered HTTP 404: user_not_found"`) ||
			strings.Contains(a.body, "http:") || strings.Contains(a.body, "/sessionm/") || strings.Contains(a.body, "c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0") {
			t.Fatalf("unknown user, request %d: %d %s; want 404 with the reason and neither URL, SessionM's words nor credentials", i+1, a.status, a.body)
		}
	}
	if n := len(h.journal("/sessionm/connect/*")); n != 2 {
		t.Fatalf("%d lookups for two requests for an unknown user; want 2, a 404 is not cached", n)
	}
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("first: %d %v %s", a.status, a.header, a.body)
	}
	time.Sleep(150 * time.Millisecond) // past the TTL
	gone.Store(true)
	if a := h.wallet(ana); a.status != 404 || a.header.Get("X-Cache") != "" {
		t.Fatalf("a cached user SessionM no longer knows: %d %v %s; want 404, not the stale copy", a.status, a.header, a.body)
	}
	gone.Store(false)
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","error_ratio":1}`)
	if a := h.wallet(ana); a.status != 502 {
		t.Fatalf("SessionM down after it said the user is gone: %d %v %s; want 502, the stale copy dropped", a.status, a.header, a.body)
	}
}

// With errors as 200 (sessionm.md §1, C: HTTP 200 with status error), an
// unknown user is still unknown: 404, not 502.
func TestSynchronousUnknownUserAs200Is404(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sessionm/connect/") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"error","errors":{"code":"user_not_found","message":"no user with that id"}}`)
			return
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h := start(t, setup{sandbox: srv.URL})
	if a := h.wallet("nobody"); a.status != 404 || !strings.Contains(a.body, "user_not_found") {
		t.Fatalf("unknown user: %d %s; want 404 with the reason", a.status, a.body)
	}
}

// F3's cache: a fresh answer needs no lookup; when SessionM fails or is
// late, an older answer stands in, marked stale; with none, 504 or 502.
func TestSynchronousCache(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache.TTL = 100 * time.Millisecond
			p.Respond.Deadline = 200 * time.Millisecond
		}
	}})
	wallet := h.wallet
	if a := wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("first: %d %v", a.status, a.header)
	}
	if a := wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "hit" {
		t.Fatalf("second: %d %v", a.status, a.header)
	}
	if n := len(h.journal("/sessionm/connect/*")); n != 1 {
		t.Fatalf("%d lookups for two requests inside the TTL", n)
	}
	time.Sleep(150 * time.Millisecond) // past the TTL
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","error_ratio":1}`)
	a := wallet(ana)
	if a.status != 200 || a.header.Get("X-Cache") != "stale" || a.header.Get("Warning") == "" || !strings.Contains(a.body, `"available_points":1350`) {
		t.Fatalf("SessionM down: %d %v %s", a.status, a.header, a.body)
	}
	if a := wallet("4d2e8f3b-32f5-11ef-b3e4-0242ac120002"); a.status != 502 {
		t.Fatalf("SessionM down, nothing cached: %d %s", a.status, a.body)
	}
	// With no answer at all the caller hears so, without the lookup's URL
	// (a SessionM Core path holds the API key).
	h.control("DELETE", "/faults", "")
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","drop_ratio":1}`)
	if a := wallet("4d2e8f3b-32f5-11ef-b3e4-0242ac120002"); a.status != 502 || !strings.Contains(a.body, "step wallet: no answer from sessionm_connect: ") || strings.Contains(a.body, "http") {
		t.Fatalf("SessionM cuts the connection, nothing cached: %d %s", a.status, a.body)
	}
	h.control("DELETE", "/faults", "")
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","latency":"500ms"}`)
	start := time.Now()
	a = wallet(ana)
	if a.header.Get("X-Cache") != "stale" || time.Since(start) > 450*time.Millisecond {
		t.Fatalf("SessionM slow: %d %v after %v; want the stale copy at the deadline", a.status, a.header, time.Since(start))
	}
	if a := wallet("6f40a15d-32f5-11ef-b3e4-0242ac120002"); a.status != 504 || !strings.Contains(a.body, "no answer within 200ms") {
		t.Fatalf("SessionM slow, nothing cached: %d %s", a.status, a.body)
	}
}

// While SessionM has paused the connection (a 429 with Retry-After) past
// the deadline, no lookup can go in time: F3 answers at once, from the
// cache when it can, else 503 with Retry-After, rather than waiting out
// its deadline to say the same.
func TestSynchronousPausePastTheDeadlineAnswersAtOnce(t *testing.T) {
	const (
		sam    = "4d2e8f3b-32f5-11ef-b3e4-0242ac120002"
		claire = "6f40a15d-32f5-11ef-b3e4-0242ac120002"
	)
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			h := start(t, setup{tweak: func(p *engine.Pipeline) {
				if p.Respond != nil {
					p.Respond.Deadline = 3 * time.Second
					if cached {
						p.Respond.Cache.TTL = 100 * time.Millisecond
					} else {
						p.Respond.Cache = nil
					}
				}
			}})
			if a := h.wallet(ana); a.status != 200 {
				t.Fatalf("first: %d %s", a.status, a.body)
			}
			time.Sleep(150 * time.Millisecond) // past the TTL
			h.control("POST", "/faults", `{"emulator":"sessionm_connect","throttle":{"for":"30s"}}`)
			// The lookup that meets the 429 is answered as the ones after
			// it: 503 and when to come back.
			if a := h.wallet(sam); a.status != 503 || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "429") || !strings.Contains(a.body, "sessionm_connect is paused until") {
				t.Fatalf("the lookup SessionM answers 429: %d %v %s", a.status, a.header, a.body)
			}
			lookups := len(h.journal("/sessionm/connect/*"))
			check := func(user string, want func(a answer) bool) {
				t.Helper()
				began := time.Now()
				a := h.wallet(user)
				if took := time.Since(began); took > time.Second || !want(a) {
					t.Fatalf("%s while paused: %d %v %s after %v", user, a.status, a.header, a.body, took.Round(time.Millisecond))
				}
			}
			if cached {
				check(ana, func(a answer) bool {
					return a.status == 200 && a.header.Get("X-Cache") == "stale" && a.header.Get("Warning") != ""
				})
			}
			check(claire, func(a answer) bool {
				retry, _ := strconv.Atoi(a.header.Get("Retry-After"))
				return a.status == 503 && retry > 0 && retry <= 30 && strings.Contains(a.body, "sessionm_connect is paused until")
			})
			if n := len(h.journal("/sessionm/connect/*")); n != lookups {
				t.Fatalf("%d lookups went to SessionM while it had paused the connection", n-lookups)
			}
		})
	}
}

// Without a cache, the caller of a synchronous pipeline hears 504 when the
// deadline passes, whether the lookup was late or held back by the
// connection's rate limit.
func TestUncachedLateAnswersAre504(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache = nil
			p.Respond.Deadline = 200 * time.Millisecond
			p.Steps[0].Call.Conn.RateLimit = &spec.RateLimit{Requests: 1, Window: time.Minute}
		}
	}})
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","latency":"1s"}`)
	if a := h.wallet(ana); a.status != 504 || !strings.Contains(a.body, "no answer within 200ms") {
		t.Fatalf("a late lookup: %d %s", a.status, a.body)
	}
	h.control("DELETE", "/faults", "")
	if a := h.wallet(ana); a.status != 504 || strings.Contains(a.body, "stopping") {
		t.Fatalf("a lookup the rate limit (1 a minute, spent) holds back: %d %s", a.status, a.body)
	}
}

// A lookup that runs out its connection's own timeout, before the
// caller's deadline, failed: 502, naming that timeout.
func TestUncachedLookupPastItsConnectionTimeoutIs502(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) {
		if p.Respond != nil {
			p.Respond.Cache = nil
			p.Respond.Deadline = 3 * time.Second
			p.Steps[0].Call.Conn.Timeout = 100 * time.Millisecond
		}
	}})
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","latency":"1s"}`)
	a := h.wallet(ana)
	if a.status != 502 || !strings.Contains(a.body, "no answer within 100ms, the connection's timeout") {
		t.Fatalf("%d %s", a.status, a.body)
	}
}

func TestMetrics(t *testing.T) {
	h := start(t, setup{})
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1,"count":1}`)
	h.post("/hooks/sessionm/offers", offerEvent("m-1", "u-1001"), map[string]string{"Authorization": hookAuth})
	h.post("/hooks/sessionm/offers", offerEvent("m-1", "u-1001"), map[string]string{"Authorization": hookAuth})
	h.post("/hooks/sessionm/offers", "{}", nil)
	for range 2 {
		h.wallet(ana)
	}
	h.drained()
	a := do(t, "GET", h.engine.URL+"/metrics", "", nil)
	for _, want := range []string{
		`engine_events_received_total{pipeline="offer-issued-to-braze-campaign"} 1`,
		`engine_events_duplicate_total{pipeline="offer-issued-to-braze-campaign"} 1`,
		`engine_events_refused_total{pipeline="offer-issued-to-braze-campaign",reason="unauthorized"} 1`,
		`engine_events_retried_total{pipeline="offer-issued-to-braze-campaign"} 1`,
		`engine_events_handled_total{outcome="delivered",pipeline="offer-issued-to-braze-campaign"} 1`,
		`engine_inbox_depth{pipeline="offer-issued-to-braze-campaign"} 0`,
		"engine_dead_letters 0",
		`engine_request_duration_seconds_count{code="503",connection="braze",endpoint="campaign_trigger"} 1`,
		`engine_request_duration_seconds_count{code="201",connection="braze",endpoint="campaign_trigger"} 1`,
		`engine_request_duration_seconds_count{code="200",connection="sessionm_connect",endpoint="get_user_offers"} 3`, // two offer events, one wallet miss
		`engine_batch_events_count{pipeline="offer-issued-to-braze-campaign"} 2`,
		`engine_accept_duration_seconds_count{pipeline="offer-issued-to-braze-campaign"} 2`,
		`engine_respond_answers_total{cache="miss",code="200",pipeline="wallet-for-connected-content"} 1`,
		`engine_respond_answers_total{cache="hit",code="200",pipeline="wallet-for-connected-content"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAdminReplaysDeadLetters(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) { p.Delivery.Attempts = 1 }})
	admin := h.admin()
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1}`)
	h.post("/hooks/sessionm/offers", offerEvent("a-1", "u-1001"), map[string]string{"Authorization": hookAuth})
	h.drained()
	a := do(t, "GET", admin.URL+"/dlq?reason=attempts_exhausted", "", nil)
	var dls []inbox.DeadLetter
	if err := json.Unmarshal([]byte(a.body), &dls); err != nil || len(dls) != 1 {
		t.Fatalf("GET /dlq: %s", a.body)
	}
	// One dead letter in full, as engine dlq show reads it.
	a = do(t, "GET", fmt.Sprintf("%s/dlq/%d", admin.URL, dls[0].ID), "", nil)
	var one inbox.DeadLetter
	if err := json.Unmarshal([]byte(a.body), &one); a.status != 200 || err != nil || one.ID != dls[0].ID || one.EventID != "a-1" || one.Request == nil {
		t.Fatalf("GET /dlq/%d: %d %s", dls[0].ID, a.status, a.body)
	}
	h.control("DELETE", "/faults", "")
	a = do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, dls[0].ID), "", nil)
	if a.status != 200 || !strings.Contains(a.body, `"pipeline":"offer-issued-to-braze-campaign"`) {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	h.eventually("the replayed event delivered", func() bool { return len(h.messages("u-1001")) == 1 })
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/dlq/1/replay", 404},
		{"DELETE", "/dlq/1", 404},
		{"GET", "/dlq/1", 404},
		{"GET", "/dlq/x", 400},
		{"POST", "/dlq/x/replay", 400},
		{"GET", "/dlq?since=yesterday", 400},
	} {
		if a := do(t, tt.method, admin.URL+tt.path, "", nil); a.status != tt.status {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, a.status, a.body)
		}
	}
	a = do(t, "GET", admin.URL+"/status", "", nil)
	if !strings.Contains(a.body, `"name":"offer-issued-to-braze-campaign"`) || !strings.Contains(a.body, `"ready":true`) {
		t.Fatalf("status: %s", a.body)
	}
}

// Under 30% 503s and 429 bursts every event ends delivered once or
// dead-lettered with its reason, and no request leaves for Braze while
// the connection is paused by a 429's Retry-After.
func TestFaultStorm(t *testing.T) {
	const attempts = 6
	log := newSendLog()
	h := start(t, setup{users: 300, tweak: func(p *engine.Pipeline) {
		p.Delivery.Attempts = attempts
		p.Delivery.Linger = 20 * time.Millisecond
	}, opts: func(o *runner.Options) { o.Client = log.client() }})
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":0.3}`)
	h.control("POST", "/faults", `{"emulator":"braze","throttle":{"for":"2s","every":"5s"}}`)
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","error_ratio":0.3}`)
	const n = 200
	user := func(i int) string { return fmt.Sprintf("load-%06d", i) }
	h.postAtOnce(n, "/hooks/sessionm/offers", func(i int) (string, map[string]string) {
		return generatedOffer(fmt.Sprintf("storm-%d", i), i, user(i)), map[string]string{"Authorization": hookAuth}
	})
	deadline := time.Now().Add(60 * time.Second)
	for len(h.store.Pipelines()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := h.store.Pipelines(); len(left) > 0 {
		t.Fatalf("still queued after a minute: %v", left)
	}

	// Each event on its own: one message to its user, or one dead letter
	// and no message. Every fault here is one to retry, so a dead letter
	// says the attempts ran out, and what the last one got.
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	dead := map[string][]inbox.DeadLetter{}
	for _, dl := range dls {
		dead[dl.EventID] = append(dead[dl.EventID], dl)
	}
	delivered := 0
	for i := range n {
		id := fmt.Sprintf("storm-%d", i)
		msgs, dl := len(h.messages(user(i))), dead[id]
		delete(dead, id)
		switch {
		case msgs == 1 && len(dl) == 0:
			delivered++
		case msgs == 0 && len(dl) == 1:
			if dl[0].Reason != "attempts_exhausted" || dl[0].Attempts != attempts || dl[0].Error == "" {
				t.Errorf("event %s: dead letter %q after %d attempts (%q); want attempts_exhausted after %d, with the last error",
					id, dl[0].Reason, dl[0].Attempts, dl[0].Error, attempts)
			}
		default:
			t.Errorf("event %s: %d messages to %s and %d dead letters; want one message or one dead letter", id, msgs, user(i), len(dl))
		}
	}
	for id, dl := range dead {
		t.Errorf("%d dead letters for %q, an event never sent", len(dl), id)
	}
	t.Logf("%d delivered, %d dead-lettered", delivered, len(dls))

	// Sixteen workers send at once, so a request the governor let go just
	// before the engine read a 429 may leave just after the answer came
	// back. Only a few instructions lie between the governor and the
	// transport, both ways (let go, then sent; answer back, then read);
	// inFlight allows for a goroutine waiting a scheduler tick or two
	// there, on two busy cores under -race. A governor that ignored the
	// pause would send all through it, and the storm's pauses last one or
	// two seconds. No allowance for the clock: the log and the governor
	// read the same monotonic clock, and the governor counts from later.
	const inFlight = 20 * time.Millisecond
	if log.checkPauses(t, "/braze/", inFlight) == 0 {
		t.Fatal("no 429 was seen")
	}
}

// A connection's rate_limit replaces the documented limits: with 5/s (no
// more than 5 in any second) fifteen requests take two seconds or more.
func TestConnectionRateLimit(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 20, tweak: func(p *engine.Pipeline) {
		if p.Target != nil && p.Target.Conn.Name == "sessionm_core" {
			p.Target.Conn.RateLimit = &spec.RateLimit{Requests: 5, Window: time.Second}
		}
	}})
	for i := range 15 {
		h.post("/hooks/tags/"+ids.GeneratedSessionMID(i), `{"tags":["x"]}`, map[string]string{"Authorization": coreBasic})
	}
	h.drained()
	entries := h.journal("/sessionm/core/*")
	first, _ := time.Parse(time.RFC3339Nano, entries[0]["time"].(string))
	last, _ := time.Parse(time.RFC3339Nano, entries[len(entries)-1]["time"].(string))
	if len(entries) != 15 || last.Sub(first) < 1900*time.Millisecond {
		t.Fatalf("%d requests over %v; 5/s allows fifteen in no less than 2s", len(entries), last.Sub(first))
	}
}

// order_by holds through batching and retries: a user's second event
// waits for the first, even when the first's batch is refused for a while.
func TestOrderKeptThroughBatchRetries(t *testing.T) {
	h := start(t, setup{tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 20 * time.Millisecond }})
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1,"count":2}`)
	for i := range 3 {
		body := strings.Replace(offerEvent(fmt.Sprintf("ord-%d", i), "u-1001"), `"offer_id":"o-1"`, fmt.Sprintf(`"offer_id":"o-%d"`, i), 1)
		h.post("/hooks/sessionm/offers", body, map[string]string{"Authorization": hookAuth})
	}
	h.drained()
	var got []string
	for _, m := range h.messages("u-1001") {
		got = append(got, m.(map[string]any)["properties"].(map[string]any)["offer_id"].(string))
	}
	if strings.Join(got, ",") != "o-0,o-1,o-2" {
		t.Fatalf("u-1001 got offers in the order %v", got)
	}
}

// A key whose events keep failing delays only itself.
func TestFailingKeyDoesNotStallOthers(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 200, tweak: func(p *engine.Pipeline) {
		p.Delivery.BackoffInitial, p.Delivery.BackoffMax = 3*time.Second, 3*time.Second
	}})
	bad := ids.GeneratedSessionMID(0)
	h.control("POST", "/faults", `{"path":"/sessionm/core/priv/v1/apps/sandbox-core-key/users/`+bad+`/tags","error_ratio":1}`)
	for range 20 {
		h.post("/hooks/tags/"+bad, `{"tags":["x"]}`, map[string]string{"Authorization": coreBasic})
	}
	began := time.Now()
	for i := 1; i <= 100; i++ {
		h.post("/hooks/tags/"+ids.GeneratedSessionMID(i), `{"tags":["y"]}`, map[string]string{"Authorization": coreBasic})
	}
	h.eventually("the 100 healthy events", func() bool { return len(h.journal("/sessionm/core/*")) >= 101 })
	if took := time.Since(began); took > 2500*time.Millisecond {
		t.Fatalf("healthy events took %v while one key was failing; they waited for its retries", took)
	}
	if d := h.store.Depth("ordered-tags"); d < 19 {
		t.Fatalf("depth %d: the failing key's later events should still wait behind its first", d)
	}
}

// The members of a batch answered 429 are retried together, not one after
// another (F4 is ordered by user and batched).
func TestBatchRetriesTogether(t *testing.T) {
	h := start(t, setup{users: 50, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 100 * time.Millisecond }})
	h.control("POST", "/faults", `{"emulator":"braze","throttle":{"for":"1s"},"count":1}`)
	h.postAtOnce(20, "/hooks/sessionm/offers", func(i int) (string, map[string]string) {
		return generatedOffer(fmt.Sprintf("b-%d", i), i, fmt.Sprintf("load-%06d", i)), map[string]string{"Authorization": hookAuth}
	})
	began := time.Now()
	h.drained()
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("a refused batch of 20 took %v to deliver", took)
	}
	if n := len(h.journal("/braze/campaigns/trigger/send")); n > 4 {
		t.Fatalf("%d trigger requests for 20 events after one 429; the retries should batch again", n)
	}
}

// A stored event that cannot be read (a damaged payload) becomes a dead
// letter that keeps its bytes as text; it does not stop the lane.
func TestDamagedStoredEventIsDeadLettered(t *testing.T) {
	dir := t.TempDir()
	store, err := inbox.Open(dir, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(tagsPipeline, inbox.NewEvent{ID: "broken", Payload: []byte{0x01, 0x05, 'a'}}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	h := start(t, setup{dataDir: dir})
	h.eventually("the damaged event dead-lettered", func() bool {
		dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "damaged"})
		return len(dls) == 1
	})
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "damaged"})
	var text string
	if err := json.Unmarshal(dls[0].Event, &text); err != nil || !strings.Contains(text, "a") || !strings.Contains(dls[0].Error, "ends too early") {
		t.Fatalf("dead letter %+v (event %s): %v", dls[0], dls[0].Event, err)
	}
	h.drained()
}

// Events an earlier version stored (as JSON, before the binary form) are
// delivered by this one from the same data folder.
func TestEventsStoredAsJSONByAnEarlierVersionAreDelivered(t *testing.T) {
	dir := t.TempDir()
	store, err := inbox.Open(dir, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := `{"id":"old-1","accepted_by":"0123456789ab","data":{"tags":["stored_as_json"],"ttl":2592000},` +
		`"request":{"method":"POST","path":"/hooks/braze/tags/` + ana + `","params":{"user_id":"` + ana + `"},"headers":{"Content-Type":["application/json"]}}}`
	if _, err := store.Append(tagsPipeline, inbox.NewEvent{ID: "old-1", Payload: []byte(old)}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	h := start(t, setup{dataDir: dir})
	h.eventually("the JSON-stored event delivered", func() bool { return h.tagCount("u-1001", "stored_as_json") == 1 })
	h.drained()
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Fatalf("dead letters %+v", dls)
	}
}

// A reload of a synchronous pipeline keeps its cached answers, as stale
// copies only: the new version answers afresh while SessionM answers, and
// the older answer stands in when it does not. The cache was emptied, so
// lengthening `stale` during a SessionM outage broke every wallet call.
func TestSynchronousCacheOutlivesAReload(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}})
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("first: %d %v", a.status, a.header)
	}
	editFile(t, filepath.Join(dir, "wallet-for-connected-content.yaml"), func(s string) string {
		return strings.Replace(s, "stale: 1h", "stale: 6h", 1)
	})
	if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != "changed" {
		t.Fatal("not reloaded")
	}
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "miss" {
		t.Fatalf("after the reload, SessionM up: %d %v; want the new version's own answer", a.status, a.header)
	}
	if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c != nil {
		t.Fatalf("an unchanged file reloaded: %+v", c)
	}
	editFile(t, filepath.Join(dir, "wallet-for-connected-content.yaml"), func(s string) string {
		return strings.Replace(s, "stale: 6h", "stale: 12h", 1)
	})
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","error_ratio":1}`)
	if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != "changed" {
		t.Fatal("not reloaded")
	}
	if a := h.wallet(ana); a.status != 200 || a.header.Get("X-Cache") != "stale" || !strings.Contains(a.body, `"available_points":1350`) {
		t.Fatalf("after a reload, SessionM down: %d %v %s; want the cached answer, stale", a.status, a.header, a.body)
	}
}

// A key with an empty part, as {{campaign.${dispatch_id}}}-{{${user_id}}}
// renders for a user with no external id, is shared by every such user:
// the engine warns once, naming ${braze_id}.
func TestIdempotencyKeyWithAnEmptyPartWarns(t *testing.T) {
	var logs runner.LockedBuffer
	h := start(t, setup{users: 10, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}})
	for user := 1; user <= 2; user++ {
		if a := h.tagWebhook(user, "dispatch-7-"); a.status != 200 {
			t.Fatalf("user %d: %d %s", user, a.status, a.body)
		}
	}
	if a := h.tagWebhook(3, "dispatch-7-u-3"); a.status != 200 {
		t.Fatal(a)
	}
	if n := strings.Count(logs.String(), "has an empty part"); n != 1 || !strings.Contains(logs.String(), "${braze_id}") {
		t.Errorf("%d warnings about an empty part; want 1 naming ${braze_id}:\n%s", n, logs.String())
	}
}

// Webhooks whose Idempotency-Key arrives as template text (a sender that
// does not render Liquid in headers) are each taken, and the engine says
// so once. They shared one key, so all but the first were dropped as
// repeats, without a word.
func TestUnrenderedIdempotencyKeyIsNoID(t *testing.T) {
	var logs runner.LockedBuffer
	h := start(t, setup{users: 10, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}})
	for user := 1; user <= 3; user++ {
		if a := h.tagWebhook(user, "{{campaign.${dispatch_id}}}-{{${user_id}}}"); a.status != 200 || strings.Contains(a.body, "duplicate") {
			t.Fatalf("user %d: %d %s", user, a.status, a.body)
		}
	}
	h.drained()
	for user := 1; user <= 3; user++ {
		if n := h.tagCount(sessionmemu.GeneratedUserID(user), "as_sent"); n != 1 {
			t.Errorf("user %d tagged %d times", user, n)
		}
	}
	if n := strings.Count(logs.String(), "holds template text"); n != 1 {
		t.Errorf("%d warnings about the key; want 1:\n%s", n, logs.String())
	}
}

// A bulk replay that queued the events but could not remove their dead
// letters (a full disk) left the events undelivered until a restart, and
// the natural retry once the disk had room sent each of them twice (a QA
// run: 1,000). The events go out at once; the dead letters are removed as
// soon as the disk has room, and a replay meanwhile replays nothing.
func TestBulkReplayOnAFullDiskSendsEachEventOnce(t *testing.T) {
	var full, fullJournal atomic.Bool
	fault := func(write string) error {
		switch {
		case write == inbox.FaultReplayRemoval && full.Load():
			return errors.New("write inbox.db: no space left on device")
		case write == inbox.FaultAppend && fullJournal.Load():
			return errors.New("write journal: no space left on device")
		}
		return nil
	}
	h := start(t, setup{users: 5, tweak: func(p *engine.Pipeline) { p.Delivery.Attempts = 1 }, inbox: inbox.Options{Fault: fault}})
	admin := h.admin()
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1}`)
	for i := range 3 {
		h.post("/hooks/sessionm/offers", generatedOffer(fmt.Sprintf("full-%d", i), i, fmt.Sprintf("load-%06d", i)), map[string]string{"Authorization": hookAuth})
	}
	h.drained()
	h.control("DELETE", "/faults", "")
	// With the events unqueued, the replay stops and says why; the dead
	// letters are not "cannot be replayed".
	fullJournal.Store(true)
	a := do(t, "POST", admin.URL+"/dlq/replay?all=true", "", nil)
	if a.status != 500 || !strings.Contains(a.body, "replayed 0 of the 3 selected, then: 3 of them could not be queued again (they stay dead letters): write journal: no space left on device") {
		t.Errorf("the replay with a full journal: %d %s", a.status, a.body)
	}
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 3 {
		t.Fatalf("%d dead letters after the replay that queued none; want 3", len(dls))
	}
	fullJournal.Store(false)
	full.Store(true)
	a = do(t, "POST", admin.URL+"/dlq/replay?all=true", "", nil)
	if a.status != 500 || !strings.Contains(a.body, "replayed 3 of the 3 selected") || !strings.Contains(a.body, "replays none until then") {
		t.Errorf("the replay on a full disk: %d %s", a.status, a.body)
	}
	for i := range 3 {
		user := fmt.Sprintf("load-%06d", i)
		h.eventually(user+"'s replayed message, with the disk still full", func() bool { return len(h.messages(user)) == 1 })
	}
	// Asked again while the disk is full: nothing is replayed.
	if a := do(t, "POST", admin.URL+"/dlq/replay?all=true", "", nil); a.status != 500 || !strings.Contains(a.body, "nothing is replayed until they are") {
		t.Errorf("a second replay on a full disk: %d %s", a.status, a.body)
	}
	full.Store(false)
	h.eventually("the dead letters removed once the disk has room", func() bool {
		dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
		return len(dls) == 0
	})
	if a := do(t, "POST", admin.URL+"/dlq/replay?all=true", "", nil); a.status != 200 || !strings.Contains(a.body, `"done":0`) {
		t.Errorf("a replay once the disk has room: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", admin.URL+"/status", "", nil); !strings.Contains(a.body, `"dead_letters":0`) {
		t.Errorf("/status: %s", a.body)
	}
	h.drained()
	for i := range 3 {
		if n := len(h.messages(fmt.Sprintf("load-%06d", i))); n != 1 {
			t.Errorf("load-%06d got %d messages; want 1", i, n)
		}
	}
}

// While the inbox cannot remove delivered events (a full disk), a lane
// hands out only so many more: each would be sent again by a restart
// before the disk has room, and the feeder went on through the whole
// backlog (a QA run: 5,881 events). Once removals work, the rest goes out,
// each event once.
func TestDeliveryPausesWhileRemovalsFail(t *testing.T) {
	var full atomic.Bool
	full.Store(true)
	fault := func(write string) error {
		if write == inbox.FaultAck && full.Load() {
			return errors.New("write inbox.db: no space left on device")
		}
		return nil
	}
	const n = 2000
	h := start(t, setup{users: 21, inbox: inbox.Options{Fault: fault}})
	// 20 users, SessionM slow at first: most events wait behind their
	// order_by key, and went out that way (a QA run).
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"500ms"}`)
	for i := range n {
		a := h.post("/hooks/braze/tags/"+sessionmemu.GeneratedUserID(i%20), fmt.Sprintf(`{"tags":["paused_%d"]}`, i), map[string]string{"Authorization": coreBasic})
		if a.status != 200 {
			t.Fatalf("webhook %d: %d %s", i, a.status, a.body)
		}
	}
	h.control("DELETE", "/faults", "")
	time.Sleep(1500 * time.Millisecond)
	held := len(h.tagsDelivered())
	time.Sleep(1500 * time.Millisecond)
	t.Logf("%d delivered while removals fail", held)
	// Those delivered before the first removal failed went out: a few
	// hundred at this speed.
	if now := len(h.tagsDelivered()); now != held || now > n/2 {
		t.Errorf("%d then %d of %d delivered while removals fail; want delivery held after a few hundred", held, now, n)
	}
	full.Store(false)
	h.drained()
	if got := len(h.tagsDelivered()); got != n {
		t.Errorf("%d delivered once removals work; want each of %d once", got, n)
	}
}

// The admin listener replays and drops dead letters in bulk, as engine
// dlq --all does with the engine stopped: one id a request took a quarter
// of an hour for 300,000 (a QA run). all=true is asked for, so that a bare
// request acts on nothing; what cannot be replayed is counted and stays.
func TestAdminReplaysAndDropsDeadLettersInBulk(t *testing.T) {
	h := start(t, setup{users: 5, tweak: func(p *engine.Pipeline) { p.Delivery.Attempts = 1 }})
	admin := h.admin()
	h.control("POST", "/faults", `{"emulator":"braze","error_ratio":1}`)
	for i := range 4 {
		h.post("/hooks/sessionm/offers", generatedOffer(fmt.Sprintf("bulk-%d", i), i, fmt.Sprintf("load-%06d", i)), map[string]string{"Authorization": hookAuth})
	}
	h.drained()
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 4 {
		t.Fatalf("setup: %d dead letters, want 4", len(dls))
	}
	// A dead letter no replay can take: a broken CSV row's.
	if _, err := h.store.DeadLetter(csvPipeline, 0, inbox.DeadLetter{EventID: "abc:1", Event: []byte(`{"line":"x"}`), Reason: "csv_row", Error: "broken"}); err != nil {
		t.Fatal(err)
	}
	h.control("DELETE", "/faults", "")
	// How many are stored, without listing them.
	if a := do(t, "GET", admin.URL+"/status", "", nil); !strings.Contains(a.body, `"dead_letters":5`) {
		t.Errorf("/status does not count 5 dead letters: %s", a.body)
	}
	if a := do(t, "GET", h.engine.URL+"/metrics", "", nil); !strings.Contains(a.body, "\nengine_dead_letters 5\n") {
		t.Errorf("/metrics does not count 5 dead letters")
	}
	for _, tt := range []struct{ method, path, want string }{
		{"POST", "/dlq/replay", "say so with all=true"},
		{"POST", "/dlq/replay?all=yes", "not all=yes"},
		{"DELETE", "/dlq?pipline=x&all=true", "unknown parameter pipline="},
		{"POST", "/dlq/replay?all=true&limit=3", "unknown parameter limit="},
		{"DELETE", "/dlq?all=true&pipeline=", "pipeline= is empty; give a value, or leave it out"},
	} {
		if a := do(t, tt.method, admin.URL+tt.path, "", nil); a.status != 400 || !strings.Contains(a.body, tt.want) {
			t.Errorf("%s %s: %d %s; want 400 with %q", tt.method, tt.path, a.status, a.body, tt.want)
		}
	}
	// The bulk replay's path with another method: the route is there, for
	// POST (the mux took "replay" for a dead letter id: 400, or listed the
	// methods of /dlq/{id} too).
	for _, method := range []string{"GET", "DELETE", "PUT", "PATCH"} {
		if a := do(t, method, admin.URL+"/dlq/replay?all=true", "", nil); a.status != 405 || a.header.Get("Allow") != "POST" || !strings.Contains(a.body, "use POST") {
			t.Errorf("%s /dlq/replay: %d %v %s; want 405, Allow: POST", method, a.status, a.header, a.body)
		}
	}
	// A pipeline no dead letter has, and none runs: a typo, said so.
	if a := do(t, "POST", admin.URL+"/dlq/replay?all=true&pipeline=nope", "", nil); a.status != 200 || !strings.Contains(a.header.Get("X-Note"), `no pipeline called "nope"`) || !strings.Contains(a.body, `"done":0`) {
		t.Errorf("replay of pipeline=nope: %d %v %s", a.status, a.header, a.body)
	}
	a := do(t, "POST", admin.URL+"/dlq/replay?all=true", "", nil)
	var res struct {
		Done       int            `json:"done"`
		ByPipeline map[string]int `json:"by_pipeline"`
		Skipped    int            `json:"skipped"`
		SkippedWhy map[string]int `json:"skipped_why"`
	}
	if err := json.Unmarshal([]byte(a.body), &res); a.status != 200 || err != nil || res.Done != 4 || res.ByPipeline["offer-issued-to-braze-campaign"] != 4 || res.Skipped != 1 {
		t.Fatalf("POST /dlq/replay?all=true: %d %s", a.status, a.body)
	}
	// What to do instead, as dlq replay says it: a new file of the fixed
	// rows, not the whole file again, which would resend its good rows.
	csvWhy := "csv_row: a broken row cannot be replayed: put the fixed row, under the header row, in a new file and import that (importing the whole file again would send its other rows again); drop this dead letter when done"
	if len(res.SkippedWhy) != 1 || res.SkippedWhy[csvWhy] != 1 {
		t.Errorf("skipped_why: %v; want %q: 1", res.SkippedWhy, csvWhy)
	}
	for i := range 4 {
		user := fmt.Sprintf("load-%06d", i)
		h.eventually(user+"'s replayed message", func() bool { return len(h.messages(user)) == 1 })
	}
	left, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(left) != 1 || left[0].Reason != "csv_row" {
		t.Fatalf("left after the replay: %+v; want the csv_row one", left)
	}
	a = do(t, "DELETE", admin.URL+"/dlq?all=true&reason=csv_row", "", nil)
	if err := json.Unmarshal([]byte(a.body), &res); a.status != 200 || err != nil || res.Done != 1 {
		t.Fatalf("DELETE /dlq?all=true&reason=csv_row: %d %s", a.status, a.body)
	}
	if left, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(left) != 0 {
		t.Fatalf("left after the drop: %+v", left)
	}
	if a := do(t, "GET", admin.URL+"/status", "", nil); !strings.Contains(a.body, `"dead_letters":0`) {
		t.Errorf("/status after every dead letter went: %s", a.body)
	}
}

// Braze's minor errors tend to come with every event (an attribute it
// cannot store): they are warned a line a second, not a line each.
func TestMinorErrorsAreWarnedALineASecond(t *testing.T) {
	logs := &runner.LockedBuffer{}
	h := start(t, setup{dirs: []string{"testdata/trigger-attributes"}, users: 30, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}})
	const n = 30
	began := time.Now()
	h.postAtOnce(n, "/hooks/campaign-country", func(i int) (string, map[string]string) {
		return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","country":"Spain"}`, winter, i), nil
	})
	h.drained()
	lines, _ := runner.LinesOf(logs.String(), "delivered; braze reported minor errors")
	// One line, then one a second at most while they went on.
	if most := 1 + int(time.Since(began)/time.Second); lines < 1 || lines > most {
		t.Errorf("%d lines for %d events with minor errors; want 1 to %d:\n%s", lines, n, most, logs)
	}
}
