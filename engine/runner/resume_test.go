package runner_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine"
)

// resumed reads POST /connections/{name}/resume's answer.
type resumed struct {
	Resumed []struct {
		Connection       string            `json:"connection"`
		File             string            `json:"file"`
		PausedUntil      string            `json:"paused_until"`
		PoolsPausedUntil map[string]string `json:"pools_paused_until"`
		Warning          string            `json:"warning"`
	} `json:"resumed"`
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
	h.eventually("the pause after the 429", func() bool {
		return strings.Contains(do(t, "GET", h.engine.URL+"/metrics", "", nil).body, `engine_connection_pauses_total{connection="braze"} 1`)
	})
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
	if len(got.Resumed) != 1 || got.Resumed[0].Connection != "braze" || got.Resumed[0].Warning != "" {
		t.Fatalf("resume answered %+v; want the braze connection, without a warning", got)
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
	h.control("POST", "/faults", `{"emulator":"sessionm_core","path":"/sessionm/core/*","count":1,"throttle":{"for":"1h"}}`)
	if a := h.post("/hooks/braze/tags/"+sessionmemu.GeneratedUserID(1), `{"tags":["after_resume"]}`, map[string]string{"Authorization": coreBasic}); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.eventually("the 429", func() bool {
		return strings.Contains(do(t, "GET", h.engine.URL+"/metrics", "", nil).body, `engine_connection_pauses_total{connection="sessionm_core"} 1`)
	})
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
	first.control("POST", "/faults", `{"emulator":"sessionm_core","path":"/sessionm/core/*","count":1,"throttle":{"for":"1h"}}`)
	user := sessionmemu.GeneratedUserID(1)
	if a := first.post("/hooks/braze/tags/"+user, `{"tags":["after_resume"]}`, map[string]string{"Authorization": coreBasic}); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	first.eventually("the 429", func() bool {
		return strings.Contains(do(t, "GET", first.engine.URL+"/metrics", "", nil).body, `engine_connection_pauses_total{connection="sessionm_core"} 1`)
	})
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
