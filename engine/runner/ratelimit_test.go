package runner_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	brazeemu "github.com/loyalty-connector/engine/connectors/braze/emulator"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/sandbox"
)

// broadcastPipeline triggers the campaign of the event for its whole
// segment: a broadcast, which braze.md §1 limits to 250 calls a minute.
const broadcastPipeline = `description: test broadcast, the campaign's whole segment
source:
  type: http
  path: /hooks/broadcast
target:
  connection: braze
  endpoint: campaign_trigger
  body:
    campaign_id: "{{ event.campaign_id }}"
    broadcast: true
`

// pipelinesWith is a folder with testdata/pipelines' connections and the
// given pipeline files.
func pipelinesWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["connections.yaml"] = mustFile(t, "testdata/pipelines/connections.yaml")
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSandbox serves a sandbox with the given Braze options.
func startSandbox(t *testing.T, opts brazeemu.Options) string {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3, Braze: opts})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// A broadcast's answer speaks of the broadcast window only: with that
// window spent (x-ratelimit-remaining 0 until the hour), the recipient
// triggers of the same connection are still delivered at once.
func TestBroadcastWindowDoesNotHoldRecipientTriggers(t *testing.T) {
	sb := startSandbox(t, brazeemu.Options{Limits: brazeemu.Limits{Broadcast: brazeemu.Limit{Requests: 1, Window: time.Hour}}})
	h := start(t, setup{sandbox: sb, dirs: []string{pipelinesWith(t, map[string]string{
		"broadcast.yaml":    broadcastPipeline,
		"any-campaign.yaml": mustFile(t, "testdata/pipelines/any-campaign.yaml"),
	})}})
	h.post("/hooks/broadcast", fmt.Sprintf(`{"campaign_id":%q}`, winter), nil)
	h.drained()
	if e := h.journal("/braze/campaigns/*"); len(e) != 1 || e[0]["status"].(float64) != 201 {
		t.Fatalf("the broadcast: %v", e)
	}
	// /status says broadcasts are held, and until when; not the
	// connection.
	var status struct {
		Pipelines []struct {
			Name     string
			PausedTo string            `json:"target_paused_until"`
			Pools    map[string]string `json:"target_pools_paused_until"`
		}
	}
	if a := do(t, "GET", h.admin().URL+"/status", "", nil); json.Unmarshal([]byte(a.body), &status) != nil {
		t.Fatalf("/status: %d %s", a.status, a.body)
	}
	found := false
	for _, p := range status.Pipelines {
		if p.Name != "broadcast" {
			continue
		}
		found = true
		if p.Pools["broadcast"] == "" || p.PausedTo != "" {
			t.Errorf("/status of the broadcast pipeline: connection paused until %q, pools %v; want broadcasts held, the connection not", p.PausedTo, p.Pools)
		}
	}
	if !found {
		t.Errorf("/status has no broadcast pipeline: %+v", status)
	}
	for i := range 5 {
		h.post("/hooks/campaign", fmt.Sprintf(`{"campaign_id":%q,"user":"u-100%d","n":%d,"note":"x"}`, winter, i+1, i), nil)
	}
	h.drained()
	for _, e := range h.journal("/braze/campaigns/*") {
		if e["status"].(float64) != 201 {
			t.Errorf("a trigger answered %v", e["status"])
		}
	}
}

// A 429 to a lookup pauses its connection, and /status says so for the
// pipelines whose steps use it: only the target's pause was shown, and
// events piled up with no reason given (a QA run).
func TestStatusShowsAPausedLookupConnection(t *testing.T) {
	h := start(t, setup{})
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","throttle":{"for":"2s"}}`)
	h.post("/hooks/sessionm/offers", offerEvent("lookup-paused", "u-1001"), map[string]string{"Authorization": hookAuth})
	var paused map[string]string
	h.eventually("/status naming the paused lookup connection", func() bool {
		var status struct {
			Pipelines []struct {
				Name    string
				Lookups map[string]string `json:"lookups_paused_until"`
			}
		}
		if a := do(t, "GET", h.admin().URL+"/status", "", nil); json.Unmarshal([]byte(a.body), &status) != nil {
			t.Fatalf("/status: %d %s", a.status, a.body)
		}
		for _, p := range status.Pipelines {
			if p.Name == "offer-issued-to-braze-campaign" {
				paused = p.Lookups
			}
		}
		return paused["sessionm_connect"] != ""
	})
	if _, err := time.Parse(time.RFC3339, paused["sessionm_connect"]); err != nil || len(paused) != 1 {
		t.Errorf("lookups_paused_until %v; want sessionm_connect's time only", paused)
	}
	h.drained()
	if n := len(h.messages("u-1001")); n != 1 {
		t.Errorf("u-1001 got %d messages after the pause, want 1", n)
	}
}

// arrival is one request as the peer saw it: when it came, on the real
// clock, and what it was answered.
type arrival struct {
	at     time.Time
	path   string
	status int
	header http.Header
}

// arrivals records every request to a handler.
type arrivals struct {
	mu   sync.Mutex
	list []arrival
}

func (a *arrivals) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		a.mu.Lock()
		a.list = append(a.list, arrival{at, r.URL.Path, rec.status, w.Header().Clone()})
		a.mu.Unlock()
	})
}

func (a *arrivals) all() []arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]arrival(nil), a.list...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// braze.md §1 documents x-ratelimit-* on every answer, reset in UTC epoch
// seconds, and no Retry-After. A 429 with only those pauses the whole
// connection until the reset: the trigger refused and a /users/track
// request queued meanwhile both wait for it, and then go.
func TestBrazeResetAlonePausesTheConnection(t *testing.T) {
	// Braze's clock stands still just before reset, the end of its
	// 1-second window, until the real clock gets there: the window's one
	// request spent, every trigger until reset is answered 429.
	var reset atomic.Int64
	reset.Store(time.Now().Add(time.Hour).UnixNano())
	brazeNow := func() time.Time {
		r := time.Unix(0, reset.Load())
		if now := time.Now(); now.Before(r) {
			return r.Add(-time.Millisecond)
		}
		return time.Now()
	}
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3, Braze: brazeemu.Options{
		Now:            brazeNow,
		OmitRetryAfter: true,
		Limits:         brazeemu.Limits{Trigger: brazeemu.Limit{Requests: 1, Window: time.Second}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var seen arrivals
	srv := httptest.NewServer(seen.wrap(sb.Handler()))
	t.Cleanup(srv.Close)
	h := start(t, setup{sandbox: srv.URL, dirs: []string{"testdata/pipelines"}})

	r := time.Now().Truncate(time.Second).Add(3 * time.Second)
	reset.Store(r.UnixNano())
	trigger := fmt.Sprintf(`{"campaign_id":%q,"user":"u-1001","n":1,"note":"x"}`, winter)
	spend := do(t, "POST", srv.URL+"/braze/campaigns/trigger/send", fmt.Sprintf(`{"campaign_id":%q,"recipients":[{"external_user_id":"u-1002"}]}`, winter),
		map[string]string{"Authorization": "Bearer sandbox-braze-key", "Content-Type": "application/json"})
	if spend.status != 201 {
		t.Fatalf("spending the window: %d %s", spend.status, spend.body)
	}
	h.post("/hooks/campaign", trigger, nil)
	var refused arrival
	h.eventually("the engine's trigger answered 429", func() bool {
		for _, a := range seen.all()[1:] {
			if a.status == http.StatusTooManyRequests {
				refused = a
				return true
			}
		}
		return false
	})
	if refused.header.Get("Retry-After") != "" || refused.header.Get("X-Ratelimit-Reset") != fmt.Sprint(r.Unix()) {
		t.Fatalf("429 with Retry-After %q, x-ratelimit-reset %q; want none and %d", refused.header.Get("Retry-After"), refused.header.Get("X-Ratelimit-Reset"), r.Unix())
	}
	track := `{"user":"u-1001","country":"ES","n":1}`
	mac := hmac.New(sha256.New, []byte("sandbox-wallet-token"))
	mac.Write([]byte(track))
	h.post("/hooks/track", track, map[string]string{"X-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))})
	h.drained()

	var delivered []string
	for _, a := range seen.all() {
		if !a.at.After(refused.at) || !strings.HasPrefix(a.path, "/braze/") {
			continue
		}
		if a.at.Before(r) {
			t.Errorf("%s went at %v, inside the pause until %v", a.path, a.at, r)
		}
		if a.status == 201 {
			delivered = append(delivered, a.path)
		}
	}
	if got := strings.Join(delivered, " "); !strings.Contains(got, "/braze/campaigns/trigger/send") || !strings.Contains(got, "/braze/users/track") {
		t.Fatalf("delivered after the pause: %v; want the trigger and /users/track", delivered)
	}
}

// A 429 to a broadcast holds back broadcasts alone, and the log says so:
// a day's Retry-After to one was logged only as "will retry" (a review).
// It is no pause of the connection, which engine_connection_pauses_total
// counts.
func TestABroadcastPauseIsLogged(t *testing.T) {
	logs := &runner.LockedBuffer{}
	h := start(t, setup{dirs: []string{pipelinesWith(t, map[string]string{"broadcast.yaml": broadcastPipeline})},
		opts: func(o *runner.Options) {
			o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}})
	h.control("POST", "/faults", `{"path":"/braze/campaigns/*","throttle":{"for":"1s"}}`)
	h.post("/hooks/broadcast", fmt.Sprintf(`{"campaign_id":%q}`, winter), nil)
	h.drained()
	if e := h.journal("/braze/campaigns/*"); len(e) < 2 || e[0]["status"] != 429.0 || e[len(e)-1]["status"] != 201.0 {
		t.Fatalf("setup: the broadcast's requests: %v; want a 429, then a 201", e)
	}
	lines, _ := runner.LinesOf(logs.String(), "connection's pool paused: its peer answered 429 for this kind of request alone; only these wait, the rest of the connection goes on")
	if lines != 1 || !strings.Contains(logs.String(), `"connection":"braze","pool":"broadcast","status":429,"until":"`) {
		t.Errorf("%d lines about the broadcasts' pause; want one naming the connection, the pool, the status and the end:\n%s", lines, logs)
	}
	if pauses, _ := h.metric(`engine_connection_pauses_total\{connection="braze"\}`); pauses != 0 {
		t.Errorf("engine_connection_pauses_total{connection=\"braze\"} is %v; a broadcasts' pause is not the connection's", pauses)
	}
	if strings.Contains(logs.String(), "connection paused:") {
		t.Errorf("the connection was said paused:\n%s", logs)
	}
}
