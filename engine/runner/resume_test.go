package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/runner"
)

// resumed reads POST /connections/{name}/resume's answer.
type resumed struct {
	Resumed []struct {
		Connection       string            `json:"connection"`
		Files            []string          `json:"files"`
		PausedUntil      string            `json:"paused_until"`
		PoolsPausedUntil map[string]string `json:"pools_paused_until"`
		Warning          string            `json:"warning"`
	} `json:"resumed"`
}

// pausedOnce waits until the engine has taken the first pause of
// connection (engine_connection_pauses_total went up to 1).
func (h *harness) pausedOnce(connection string) {
	h.t.Helper()
	h.eventually("the pause after the 429", func() bool {
		return strings.Contains(do(h.t, "GET", h.engine.URL+"/metrics", "", nil).body, `engine_connection_pauses_total{connection="`+connection+`"} 1`)
	})
}

// postTag sends F1's webhook: tag for generated user.
func (h *harness) postTag(user int, tag string) {
	h.t.Helper()
	if a := h.post("/hooks/braze/tags/"+sessionmemu.GeneratedUserID(user), `{"tags":["`+tag+`"]}`, map[string]string{"Authorization": coreBasic}); a.status != 200 {
		h.t.Fatalf("webhook: %d %s", a.status, a.body)
	}
}

// tagPausedForAnHour sends F1's webhook (postTag) into one 429 from
// SessionM Core asking for an hour, and waits until the engine has taken
// the pause.
func (h *harness) tagPausedForAnHour(user int, tag string) {
	h.t.Helper()
	h.control("POST", "/faults", `{"emulator":"sessionm_core","path":"/sessionm/core/*","count":1,"throttle":{"for":"1h"}}`)
	h.postTag(user, tag)
	h.pausedOnce("sessionm_core")
}

func (h *harness) resume(adminURL, name string) resumed {
	h.t.Helper()
	a := do(h.t, "POST", adminURL+"/connections/"+name+"/resume", "", nil)
	var out resumed
	if a.status != 200 || json.Unmarshal([]byte(a.body), &out) != nil {
		h.t.Fatalf("resume %s: %d %s", name, a.status, a.body)
	}
	return out
}

// An operator ends a day's pause (a 429 with Retry-After: 3600, as a
// proxy might send by mistake) from the admin listener: the Braze batch
// kept open for it is sent, the retry of the event the 429 answered goes
// with it, and the pause's stored end is cleared, so a restart does not
// restore it. Before, a pause could only be waited through: it outlives
// restarts, for up to a day.
func TestResumeEndsABrazePauseEarly(t *testing.T) {
	h := start(t, setup{users: 20, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 50 * time.Millisecond }})
	admin := h.admin()
	event := func(i int) string { return generatedOffer(fmt.Sprintf("resume-%d", i), i, fmt.Sprintf("load-%06d", i)) }
	// One 429 (count 1): a peer that still refused after the resume
	// would pause the connection again.
	h.control("POST", "/faults", `{"emulator":"braze","count":1,"throttle":{"for":"1h"}}`)
	h.post("/hooks/sessionm/offers", event(0), map[string]string{"Authorization": hookAuth})
	h.pausedOnce("braze")
	for i := 1; i <= 10; i++ {
		h.post("/hooks/sessionm/offers", event(i), map[string]string{"Authorization": hookAuth})
	}
	time.Sleep(300 * time.Millisecond) // past their linger: the batch is held for the pause
	if n := len(h.journal("/braze/campaigns/trigger/send")); n != 1 {
		t.Fatalf("%d trigger requests before the resume; want the 429 alone", n)
	}
	if st := do(t, "GET", admin.URL+"/status", "", nil); !strings.Contains(st.body, `"target_paused_until"`) {
		t.Fatalf("/status shows no pause before the resume: %s", st.body)
	}
	got := h.resume(admin.URL, "braze")
	if len(got.Resumed) != 1 || got.Resumed[0].Connection != "braze" || len(got.Resumed[0].Files) != 1 || got.Resumed[0].Warning != "" {
		t.Fatalf("resume answered %+v; want the braze connection and its file, without a warning", got)
	}
	until, err := time.Parse(time.RFC3339Nano, got.Resumed[0].PausedUntil)
	if err != nil || until.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("resume says the pause ended was until %q; want about an hour from now", got.Resumed[0].PausedUntil)
	}
	h.drained()
	for i := range 11 {
		if n := len(h.messages(fmt.Sprintf("load-%06d", i))); n != 1 {
			t.Errorf("load-%06d got %d messages; want 1", i, n)
		}
	}
	if n := len(h.journal("/braze/campaigns/trigger/send")); n != 2 {
		t.Errorf("%d trigger requests; want the 429 and one batch of the 11 events", n)
	}
	if st := do(t, "GET", admin.URL+"/status", "", nil); strings.Contains(st.body, `paused_until"`) {
		t.Errorf("/status still shows a pause after the resume: %s", st.body)
	}
	for _, p := range h.load().Pipelines {
		if p.Target != nil && p.Target.Conn.Name == "braze" {
			var stored time.Time
			if found, err := h.store.Checkpoint("pause:"+p.Target.Conn.PauseKey(), &stored); err != nil || !found || stored.After(time.Now()) {
				t.Errorf("the stored pause is %v (found %v, %v) after the resume; want one that has ended, which a restart does not restore", stored, found, err)
			}
			break
		}
	}
}

// F1 has no batches: the retry of the event SessionM answered 429 waits in
// the lane, due a moment after the pause's end, and a resume sends it.
func TestResumeWakesARetryWaitingForThePause(t *testing.T) {
	h := start(t, setup{users: 3})
	admin := h.admin()
	h.tagPausedForAnHour(1, "after_resume")
	h.resume(admin.URL, "sessionm_core")
	h.drained()
	if got := h.tagsDelivered(); len(got) != 1 || got[0] != "after_resume" {
		t.Errorf("SessionM took %v; want the one event, once", got)
	}
}

// A restart inside a pause finds the event's retry stored at the pause's
// end, and the pause stored too: a resume sends it at once.
func TestResumeSendsARetryStoredInsideARestoredPause(t *testing.T) {
	dir := t.TempDir()
	first := start(t, setup{users: 3, dataDir: dir})
	first.tagPausedForAnHour(1, "after_resume")
	first.stop()

	h := start(t, setup{users: 3, dataDir: dir, sandbox: first.sbURL})
	admin := h.admin()
	time.Sleep(300 * time.Millisecond)
	if got := h.tagsDelivered(); len(got) != 0 {
		t.Fatalf("delivered %v inside the restored pause", got)
	}
	if got := h.resume(admin.URL, "sessionm_core"); len(got.Resumed) != 1 || got.Resumed[0].PausedUntil == "" {
		t.Fatalf("resume answered %+v; want sessionm_core's restored pause", got)
	}
	h.drained()
	if got := h.tagsDelivered(); len(got) != 1 || got[0] != "after_resume" {
		t.Errorf("SessionM took %v; want the one event, once", got)
	}
}

// A name no running pipeline uses is a 404 that lists the names in use;
// a connection that is not paused resumes with nothing to end.
func TestResumeNamesTheConnectionsInUse(t *testing.T) {
	h := start(t, setup{users: 1})
	admin := h.admin()
	a := do(t, "POST", admin.URL+"/connections/brazee/resume", "", nil)
	if a.status != 404 || !strings.Contains(a.body, `no running pipeline uses a connection named \"brazee\"; the running pipelines use braze, sessionm_connect, sessionm_core`) {
		t.Errorf("resume of an unknown name answered %d %s", a.status, a.body)
	}
	if a := do(t, "GET", admin.URL+"/connections/braze/resume", "", nil); a.status != 405 {
		t.Errorf("GET of the resume route answered %d; want 405", a.status)
	}
	got := h.resume(admin.URL, "sessionm_connect")
	if len(got.Resumed) != 1 || got.Resumed[0].PausedUntil != "" || got.Resumed[0].PoolsPausedUntil != nil {
		t.Errorf("resume of a connection that was not paused answered %+v; want it with nothing ended", got)
	}
}

// A stop right after a resume, inside the linger of the Braze batch the
// woken retry joined, leaves the event's stored next attempt at the ended
// pause's end: the next run knows the pause was ended, and sends it at
// once (it waited the hour, with no pause to show in /status and none a
// second resume could end: a review).
func TestAStopRightAfterAResumeLeavesNoRetryWaiting(t *testing.T) {
	dir := t.TempDir()
	first := start(t, setup{users: 5, dataDir: dir, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 2 * time.Second }})
	first.control("POST", "/faults", `{"emulator":"braze","count":1,"throttle":{"for":"1h"}}`)
	first.post("/hooks/sessionm/offers", generatedOffer("strand-0", 0, "load-000000"), map[string]string{"Authorization": hookAuth})
	first.pausedOnce("braze")
	if _, err := first.r.Resume("braze"); err != nil {
		t.Fatal(err)
	}
	first.stop()
	if len(first.journal("/braze/campaigns/trigger/send")) != 1 {
		t.Fatal("setup: the retry went before the stop")
	}

	h := start(t, setup{users: 5, dataDir: dir, sandbox: first.sbURL, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 20 * time.Millisecond }})
	h.drained()
	if n := len(h.messages("load-000000")); n != 1 {
		t.Errorf("load-000000 got %d messages; want 1", n)
	}
}

// A resume before the lanes read the inbox (engine run serves its admin
// routes before they start; a reload's new version reads it again) finds
// no retry in memory to wake: the stored one, due at the ended pause's
// end, goes at once when it is read.
func TestAResumeBeforeTheRetryIsReadSendsIt(t *testing.T) {
	dir := t.TempDir()
	first := start(t, setup{users: 3, dataDir: dir})
	first.tagPausedForAnHour(1, "after_resume")
	first.stop()

	h := start(t, setup{users: 3, dataDir: dir, sandbox: first.sbURL, beforeStart: func(r *runner.Runner) {
		if got, err := r.Resume("sessionm_core"); err != nil || len(got) != 1 || got[0].PausedUntil == "" {
			t.Errorf("resume before the start: %+v, %v; want the restored pause ended", got, err)
		}
	}})
	h.drained()
	if got := h.tagsDelivered(); len(got) != 1 || got[0] != "after_resume" {
		t.Errorf("SessionM took %v; want the one event, once", got)
	}
}

// A CSV row answered 429 waits for its retry in the inbox, and its pause
// is counted in engine_rate_limit_wait_seconds_total as it passes: a
// resume ends the count with the pause, where it went on to add the
// whole hour, an hour later (a review). One row: others would wait for
// the pause in the governor, which counts apart.
func TestAResumeEndsACSVRowsPauseAndItsCount(t *testing.T) {
	h := start(t, setup{users: 3})
	admin := h.admin()
	h.control("POST", "/faults", `{"emulator":"sessionm_core","path":"/sessionm/core/*","count":1,"throttle":{"for":"1h"}}`)
	file := writeCSV(t, t.TempDir(), 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	if _, err := h.r.ImportCSV(ctx, csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	if n := h.store.Depth(csvPipeline); n != 1 {
		t.Fatalf("setup: %d rows wait in the inbox; want the one answered 429", n)
	}
	h.resume(admin.URL, "sessionm_core")
	h.drained()
	if got := h.tagsDelivered(); len(got) != 1 {
		t.Errorf("SessionM took %v; want the one row", got)
	}
	h.eventually("the pause counted", func() bool {
		waited, _ := h.metric(`engine_rate_limit_wait_seconds_total\{connection="sessionm_core"\}`)
		return waited > 0
	})
	if waited, _ := h.metric(`engine_rate_limit_wait_seconds_total\{connection="sessionm_core"\}`); waited > time.Since(began).Seconds() {
		t.Errorf("engine_rate_limit_wait_seconds_total is %v; the row waited at most %v for the pause the resume ended", waited, time.Since(began))
	}
}

// A next attempt read from the inbox is sent at once only when it falls
// within the pause that was ended: a 5xx's backoff, stored for later, keeps
// its time when a restart (or a reload) reads it after a resume.
func TestAResumeKeepsABackoffOutsideThePause(t *testing.T) {
	dir := t.TempDir()
	s := setup{users: 3, dataDir: dir,
		tweak: func(p *engine.Pipeline) {
			p.Delivery.BackoffInitial, p.Delivery.BackoffMax = 20*time.Minute, 20*time.Minute
		},
		opts: func(o *runner.Options) { o.Random = func() float64 { return 1 } }}
	first := start(t, s)
	first.control("POST", "/faults", `{"emulator":"sessionm_core","path":"/sessionm/core/*","count":1,"error_ratio":1,"error_status":503}`)
	first.postTag(2, "backoff")
	first.eventually("the 503's retry", func() bool {
		recs, err := first.store.ReadAfter("braze-segment-to-sessionm-tags", 0, 10)
		return err == nil && len(recs) == 1 && recs[0].Attempts == 1
	})
	first.tagPausedForAnHour(1, "paused")
	first.stop()

	s.sandbox = first.sbURL
	s.beforeStart = func(r *runner.Runner) {
		if _, err := r.Resume("sessionm_core"); err != nil {
			t.Error(err)
		}
	}
	h := start(t, s)
	h.eventually("the paused event", func() bool { return slices.Contains(h.tagsDelivered(), "paused") })
	time.Sleep(300 * time.Millisecond)
	if got := h.tagsDelivered(); slices.Contains(got, "backoff") {
		t.Errorf("SessionM took %v; the 503's retry is due in 20 minutes, outside the pause that was ended", got)
	}
	if n := h.store.Depth("braze-segment-to-sessionm-tags"); n != 1 {
		t.Errorf("%d events queued; want the 503's, waiting for its retry", n)
	}
}
