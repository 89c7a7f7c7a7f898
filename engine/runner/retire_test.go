package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/spec"
)

// campaignCalls is a Braze stand-in that records each campaign trigger it
// takes (its campaign, and whether the edited version rendered it) and
// answers after delay.
type campaignCalls struct {
	mu    sync.Mutex
	calls []campaignCall
	delay time.Duration
}

type campaignCall struct {
	campaign string
	edited   bool
	at       time.Time
}

func (c *campaignCalls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		CampaignID string `json:"campaign_id"`
	}
	_ = json.Unmarshal(raw, &body)
	c.mu.Lock()
	c.calls = append(c.calls, campaignCall{body.CampaignID, strings.Contains(string(raw), `"edited"`), time.Now()})
	c.mu.Unlock()
	time.Sleep(c.delay)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"dispatch_id":"d1","message":"success"}`)
}

func (c *campaignCalls) snapshot() []campaignCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]campaignCall(nil), c.calls...)
}

// campaignProject loads testdata/pipelines, the campaign pipeline edited
// (its requests then say "edited") when edited is set, with Braze paced
// at one request a second.
func campaignProject(t *testing.T, brazeURL string, edited bool) *engine.Project {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("testdata/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("testdata/pipelines", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "any-campaign.yaml" && edited {
			raw = []byte(strings.Replace(string(raw), `note: "{{ event.note }}"`, `note: "edited"`, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proj := loaderFor(t, brazeURL).Load([]string{dir})
	for _, p := range proj.Pipelines {
		p.Delivery.Linger = time.Millisecond
		if p.Target != nil && p.Target.Conn.Name == "braze" {
			p.Target.Conn.RateLimit = &spec.RateLimit{Requests: 1, Window: time.Second}
		}
	}
	return proj
}

// campaignRun starts a runner of campaignProject against a Braze stand-in
// that answers after delay, and posts one webhook per campaign.
func campaignRun(t *testing.T, delay time.Duration, campaigns ...string) (braze *campaignCalls, brazeURL string, r *Runner, store *inbox.Store) {
	t.Helper()
	braze = &campaignCalls{delay: delay}
	srv := httptest.NewServer(braze)
	t.Cleanup(srv.Close)
	r, store = startRunner(t, campaignProject(t, srv.URL, false).Pipelines)
	hooks := httptest.NewServer(r.Handler())
	t.Cleanup(hooks.Close)
	for _, campaign := range campaigns {
		resp, err := http.Post(hooks.URL+"/hooks/campaign", "application/json", strings.NewReader(`{"campaign_id":"`+campaign+`","user":"u-1","n":1,"note":"first"}`))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	return braze, srv.URL, r, store
}

// A reload stops the replaced version's requests that wait for the
// connection's rate limit: the new version sends their events. The old
// version sent them as the limit let them go, through its whole grace,
// and one that left late in it was cut on the wire while Braze had it,
// and sent again by the new version: a campaign message sent twice.
func TestReloadHandsRequestsWaitingForTheRateLimitToTheNewVersion(t *testing.T) {
	braze, brazeURL, r, store := campaignRun(t, 50*time.Millisecond, "c1", "c2", "c3", "c4")
	waitUntil(t, "the first campaign sent", func() bool { return len(braze.snapshot()) >= 1 })
	if rep := r.Apply(campaignProject(t, brazeURL, true)); !strings.Contains(rep.Summary(), "changed") {
		t.Fatalf("reload: %s", rep.Summary())
	}
	reloaded := time.Now()
	waitUntil(t, "every campaign sent", func() bool { return len(braze.snapshot()) >= 4 && store.Depth("any-campaign") == 0 })
	time.Sleep(1500 * time.Millisecond) // a request sent twice would arrive by now
	sent := map[string]int{}
	for _, c := range braze.snapshot() {
		sent[c.campaign]++
		if c.at.After(reloaded) && !c.edited {
			t.Errorf("campaign %s was sent by the replaced version %v after the reload", c.campaign, c.at.Sub(reloaded).Round(time.Millisecond))
		}
	}
	for _, campaign := range []string{"c1", "c2", "c3", "c4"} {
		if sent[campaign] != 1 {
			t.Errorf("campaign %s sent %d times", campaign, sent[campaign])
		}
	}
}

// A replaced version's request on the wire is given its own timeout to
// end, however short the reload's grace: cut while the peer had it, its
// event was sent again by the new version.
func TestReloadLetsARequestOnTheWireEnd(t *testing.T) {
	defer func(was time.Duration) { retireGrace = was }(retireGrace)
	retireGrace = 20 * time.Millisecond
	braze, brazeURL, r, store := campaignRun(t, 300*time.Millisecond, "c1")
	waitUntil(t, "the request on the wire", func() bool { return len(braze.snapshot()) == 1 })
	r.Apply(campaignProject(t, brazeURL, true))
	waitUntil(t, "the event delivered", func() bool { return store.Depth("any-campaign") == 0 })
	time.Sleep(500 * time.Millisecond) // a second request would arrive by now
	if n := len(braze.snapshot()); n != 1 {
		t.Fatalf("Braze took the one event's request %d times across the reload", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A merged campaign trigger is refused (400) while a reload replaces its
// version: the old version does not send the members alone, the new one
// does. The old one sent them one after the other through the reload's
// grace, and the one on the wire when the grace ended was cut, and its
// event sent again by the new version.
func TestReloadSendsNoMemberOfARefusedBatchAlone(t *testing.T) {
	defer func(was time.Duration) { retireGrace = was }(retireGrace)
	retireGrace = 20 * time.Millisecond
	var mu sync.Mutex
	got := map[string]int{}
	merged := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Recipients []struct {
				ID string `json:"external_user_id"`
			} `json:"recipients"`
		}
		_ = json.Unmarshal(raw, &body)
		if len(body.Recipients) > 1 {
			select {
			case merged <- struct{}{}:
			default:
			}
			time.Sleep(100 * time.Millisecond)
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"message":"Invalid recipient"}`)
			return
		}
		mu.Lock()
		got[body.Recipients[0].ID]++
		mu.Unlock()
		time.Sleep(600 * time.Millisecond)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"dispatch_id":"d1","message":"success"}`)
	}))
	defer srv.Close()
	// Requests merge (a linger), unpaced, each answered within a second.
	project := func(edited bool) *engine.Project {
		proj := campaignProject(t, srv.URL, edited)
		for _, p := range proj.Pipelines {
			p.Delivery.Linger = 150 * time.Millisecond
			p.Delivery.Timeout = time.Second
			if p.Target != nil {
				p.Target.Conn.RateLimit = nil
			}
		}
		return proj
	}
	r, store := startRunner(t, project(false).Pipelines)
	hooks := httptest.NewServer(r.Handler())
	defer hooks.Close()
	users := []string{"u-1", "u-2", "u-3", "u-4", "u-5", "u-6"}
	for _, u := range users {
		resp, err := http.Post(hooks.URL+"/hooks/campaign", "application/json", strings.NewReader(`{"campaign_id":"c1","user":"`+u+`","n":1,"note":"x"}`))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	select {
	case <-merged:
	case <-time.After(5 * time.Second):
		t.Fatal("no merged request")
	}
	if rep := r.Apply(project(true)); !strings.Contains(rep.Summary(), "changed") {
		t.Fatalf("reload: %s", rep.Summary())
	}
	waitUntil(t, "every event handled", func() bool { return store.Depth("any-campaign") == 0 })
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, u := range users {
		if got[u] != 1 {
			t.Errorf("%s got the campaign %d times", u, got[u])
		}
	}
}

// A stop whose grace runs out with a request on the wire says so once, as
// a stop. Stop retired each lane with its own clock of the same grace,
// which also warned that "a replaced version" was abandoned: nothing was
// replaced, and an operator went looking for a reload.
func TestStopPastItsGraceWarnsOnlyOfTheStop(t *testing.T) {
	braze := &campaignCalls{delay: 3 * time.Second}
	srv := httptest.NewServer(braze)
	defer srv.Close()
	logs := &LockedBuffer{}
	r, _ := startRunnerWith(t, Options{
		Pipelines: campaignProject(t, srv.URL, false).Pipelines,
		Logger:    slog.New(slog.NewJSONHandler(logs, nil)),
	})
	hooks := httptest.NewServer(r.Handler())
	defer hooks.Close()
	resp, err := http.Post(hooks.URL+"/hooks/campaign", "application/json", strings.NewReader(`{"campaign_id":"c1","user":"u-1","n":1,"note":"x"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	waitUntil(t, "the request on the wire", func() bool { return len(braze.snapshot()) == 1 })
	r.Stop(100 * time.Millisecond)
	out := logs.String()
	if !strings.Contains(out, "stopping: requests on the wire were cut") || !strings.Contains(out, `"events":"any-campaign 1"`) {
		t.Errorf("no warning that the stop cut the request on the wire:\n%s", out)
	}
	if got := r.CutByStop(); got["any-campaign"] != 1 {
		t.Errorf("cut by the stop: %v, want any-campaign 1", got)
	}
	if strings.Contains(out, "replaced version") {
		t.Errorf("a stop warned of a replaced version:\n%s", out)
	}
}

// A stop with no grace and nothing on the wire warns of nothing: it said
// in-flight deliveries did not finish in time when there were none.
func TestStopWithNoGraceAndNothingOnTheWire(t *testing.T) {
	logs := &LockedBuffer{}
	r, _ := startRunnerWith(t, Options{
		Pipelines: campaignProject(t, "http://127.0.0.1:1", false).Pipelines,
		Logger:    slog.New(slog.NewJSONHandler(logs, nil)),
	})
	r.Stop(0)
	if strings.Contains(logs.String(), `"level":"WARN"`) || len(r.CutByStop()) > 0 {
		t.Errorf("cut %v; log:\n%s", r.CutByStop(), logs.String())
	}
}

// Removed while a request of it is on the wire, a pipeline's reload line
// counts the inbox as it was then; once its last request is answered, a
// line says what it really left there. An event its old route stores
// after that is named in a warning: no version delivers it.
func TestRemovedPipelineReportsWhatItLeft(t *testing.T) {
	braze := &campaignCalls{delay: 300 * time.Millisecond}
	srv := httptest.NewServer(braze)
	defer srv.Close()
	logs := &LockedBuffer{}
	proj := campaignProject(t, srv.URL, false)
	r, store := startRunnerWith(t, Options{Pipelines: proj.Pipelines, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	hooks := httptest.NewServer(r.Handler())
	defer hooks.Close()
	for _, campaign := range []string{"c1", "c2", "c3"} {
		resp, err := http.Post(hooks.URL+"/hooks/campaign", "application/json", strings.NewReader(`{"campaign_id":"`+campaign+`","user":"u-1","n":1,"note":"x"}`))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	waitUntil(t, "the first request on the wire", func() bool { return len(braze.snapshot()) == 1 })
	var kept []*engine.Pipeline
	var removed *engine.Pipeline
	for _, p := range proj.Pipelines {
		if p.Name == "any-campaign" {
			removed = p
		} else {
			kept = append(kept, p)
		}
	}
	rep := r.Apply(&engine.Project{Pipelines: kept, Files: proj.Files})
	i := slices.IndexFunc(rep.Changes, func(c PipelineChange) bool { return c.Pipeline == "any-campaign" })
	if i < 0 || rep.Changes[i].Result != "removed" || rep.Changes[i].Queued != 3 {
		t.Fatalf("reload %+v", rep)
	}
	waitUntil(t, "the line once its last request is done", func() bool { return strings.Contains(logs.String(), "has finished its last requests") })
	left := store.Depth("any-campaign")
	if want := fmt.Sprintf(`"pipeline":"any-campaign","queued":%d`, left); left != 2 || !strings.Contains(logs.String(), want) {
		t.Errorf("%d left in the inbox; log:\n%s\nwant %s", left, logs.String(), want)
	}
	r.warnIfStranded(removed, "late-1")
	if !strings.Contains(logs.String(), `"msg":"an event was stored as its pipeline was removed`) || !strings.Contains(logs.String(), `"event":"late-1"`) {
		t.Errorf("no warning of the stranded event:\n%s", logs.String())
	}
}

// Changed while a request of it is on the wire (its new version waits for
// the old one), then removed: one line says what it left, once the old
// version's request is answered. The waiting version, which never ran,
// reported at once, and the old one again later.
func TestChangedThenRemovedPipelineReportsOnce(t *testing.T) {
	braze := &campaignCalls{delay: time.Second}
	srv := httptest.NewServer(braze)
	defer srv.Close()
	logs := &LockedBuffer{}
	r, store := startRunnerWith(t, Options{Pipelines: campaignProject(t, srv.URL, false).Pipelines, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	hooks := httptest.NewServer(r.Handler())
	defer hooks.Close()
	for _, campaign := range []string{"c1", "c2"} {
		resp, err := http.Post(hooks.URL+"/hooks/campaign", "application/json", strings.NewReader(`{"campaign_id":"`+campaign+`","user":"u-1","n":1,"note":"x"}`))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	waitUntil(t, "the first request on the wire", func() bool { return len(braze.snapshot()) == 1 })
	r.Apply(campaignProject(t, srv.URL, true))
	var kept []*engine.Pipeline
	for _, p := range campaignProject(t, srv.URL, true).Pipelines {
		if p.Name != "any-campaign" {
			kept = append(kept, p)
		}
	}
	r.Apply(&engine.Project{Pipelines: kept})
	time.Sleep(200 * time.Millisecond) // a line reported at once would be out by now
	if strings.Contains(logs.String(), "has finished its last requests") {
		t.Fatalf("reported before the old version's request was answered:\n%s", logs.String())
	}
	waitUntil(t, "the line once the old version is done", func() bool { return strings.Contains(logs.String(), "has finished its last requests") })
	time.Sleep(100 * time.Millisecond) // a second line would come now
	if n := strings.Count(logs.String(), "has finished its last requests"); n != 1 || !strings.Contains(logs.String(), fmt.Sprintf(`"queued":%d`, store.Depth("any-campaign"))) {
		t.Errorf("%d lines; inbox %d; log:\n%s", n, store.Depth("any-campaign"), logs.String())
	}
}
