package runner_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
)

const tagsPipeline = "braze-segment-to-sessionm-tags"

// copyPipelines copies the shipped pipelines into a folder a test may edit.
func copyPipelines(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("../../pipelines", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// editFile rewrites one pipeline file with edit applied.
func editFile(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(raw))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixedTag makes the tags pipeline send one fixed tag instead of the
// webhook's body, so a test can tell which version delivered an event.
func fixedTag(tag string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, `body: "{{ event }}"`, "body:\n    tags: ["+tag+"]", 1)
	}
}

func (h *harness) tagWebhook(user int, id string) answer {
	return h.post("/hooks/braze/tags/"+sessionmemu.GeneratedUserID(user), `{"tags":["as_sent"],"ttl":60}`,
		map[string]string{"Authorization": coreBasic, "Idempotency-Key": id})
}

// queueTagEvent sends user 1 a tag webhook and waits for its first,
// refused, try: SessionM Core answers 429 for a second, so the event is
// still queued for a while after.
func (h *harness) queueTagEvent(t *testing.T, id string) {
	t.Helper()
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","throttle":{"for":"1s"}}`)
	if a := h.tagWebhook(1, id); a.status != 200 {
		t.Fatal(a)
	}
	h.eventually("the event to be tried", func() bool { return len(h.journal("/sessionm/core/*")) > 0 })
}

func changeOf(rep runner.ReloadReport, pipeline string) *runner.PipelineChange {
	for i := range rep.Changes {
		if rep.Changes[i].Pipeline == pipeline {
			return &rep.Changes[i]
		}
	}
	return nil
}

func TestReloadSwapsOneVersion(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	before := h.r.Status()
	if a := h.tagWebhook(1, "e1"); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.drained()

	editFile(t, filepath.Join(dir, tagsPipeline+".yaml"), fixedTag("v2"))
	rep := h.r.Apply(h.load())
	c := changeOf(rep, tagsPipeline)
	if !rep.OK || c == nil || c.Result != "changed" || !slices.Equal(c.What, []string{"target changed"}) || c.Previous == c.Version {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Changes) != 1 {
		t.Fatalf("other pipelines were touched: %s", rep.Summary())
	}
	if a := h.tagWebhook(2, "e2"); a.status != 200 {
		t.Fatalf("webhook after the reload: %d %s", a.status, a.body)
	}
	h.drained()
	if h.tagCount(sessionmemu.GeneratedUserID(1), "as_sent") != 1 || h.tagCount(sessionmemu.GeneratedUserID(2), "v2") != 1 || h.tagCount(sessionmemu.GeneratedUserID(2), "as_sent") != 0 {
		t.Fatal("the event before the reload should carry its own tags, the one after it the new version's")
	}
	after := h.r.Status()
	if v := statusOf(after, tagsPipeline); v.Version != c.Version || v.Result != "changed" || v.State != "running" {
		t.Fatalf("status after the reload: %+v", v)
	}
	if statusOf(after, "offer-issued-to-braze-campaign").Version != statusOf(before, "offer-issued-to-braze-campaign").Version {
		t.Fatal("an unchanged pipeline got a new version")
	}

	// Nothing changed: nothing happens.
	if rep := h.r.Apply(h.load()); len(rep.Changes) != 0 || !rep.OK || rep.Summary() != "no change" {
		t.Fatalf("a reload with nothing changed: %+v", rep)
	}
}

// A .yml copy next to the running .yaml names the same pipeline: it took
// the pipeline's place, and the routes of the .yaml answered 404 (QA, a
// stray copy with another route). It is refused, and the .yaml goes on.
func TestReloadRefusesASecondFileOfOneName(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	running := statusOf(h.r.Status(), tagsPipeline).Version
	good, _ := os.ReadFile(filepath.Join(dir, tagsPipeline+".yaml"))
	copyFile := filepath.Join(dir, tagsPipeline+".yml")
	if err := os.WriteFile(copyFile, []byte(strings.NewReplacer("/hooks/braze/tags/", "/hooks/yml/", "/priv/v1/apps/", "/yml/priv/").Replace(string(good))), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := h.r.Apply(h.load())
	c := changeOf(rep, tagsPipeline)
	if rep.OK || c == nil || c.Result != "rejected" || c.Version != running || !strings.Contains(strings.Join(c.Problems, "\n"), copyFile+": ") || !strings.Contains(strings.Join(c.Problems, "\n"), "also names pipeline") {
		t.Fatalf("report %+v", rep)
	}
	if a := h.tagWebhook(1, "yml-1"); a.status != 200 {
		t.Fatalf("the running .yaml version stopped serving: %d %s", a.status, a.body)
	}
	if err := os.Remove(copyFile); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "restored" {
		t.Fatalf("after removing the copy: %+v", c)
	}
}

func statusOf(st runner.Status, name string) runner.PipelineStatus {
	for _, p := range st.Pipelines {
		if p.Name == name {
			return p
		}
	}
	return runner.PipelineStatus{}
}

// A broken edit of any kind leaves the running version serving, and says
// where the problem is; fixing the file brings the new version in.
func TestReloadRejectsBrokenEdits(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	file := filepath.Join(dir, tagsPipeline+".yaml")
	good, _ := os.ReadFile(file)
	running := statusOf(h.r.Status(), tagsPipeline).Version
	breaks := []struct {
		name, want string
		edit       func(string) string
	}{
		{"bad YAML", "braze-segment-to-sessionm-tags.yaml:", func(s string) string { return s + "\ntarget: [unclosed\n" }},
		{"bad expr", "filter", func(s string) string { return s + "\nfilter: event.tags ==\n" }},
		{"bad Liquid", "unknown filter", func(s string) string {
			return strings.Replace(s, "{{ request.params.user_id }}\"\n  # The", "{{ request.params.user_id | no_such_filter }}\"\n  # The", 1)
		}},
		{"unknown connection", "no_such_connection", func(s string) string {
			return strings.Replace(s, "connection: sessionm_core", "connection: no_such_connection", 1)
		}},
	}
	for i, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			editFile(t, file, func(string) string { return b.edit(string(good)) })
			rep := h.r.Apply(h.load())
			c := changeOf(rep, tagsPipeline)
			if rep.OK || c == nil || c.Result != "rejected" || c.Version != running || len(c.Problems) == 0 || !strings.Contains(strings.Join(c.Problems, "\n"), b.want) {
				t.Fatalf("report %+v", rep)
			}
			if !strings.Contains(c.Problems[0], file+":") {
				t.Errorf("the problem does not name the file and line: %q", c.Problems[0])
			}
			st := statusOf(h.r.Status(), tagsPipeline)
			if st.State != "rejected" || st.Version != running || len(st.Problems) == 0 {
				t.Fatalf("status %+v", st)
			}
			if a := h.tagWebhook(i+1, fmt.Sprint("b", i)); a.status != 200 {
				t.Fatalf("the running version stopped serving: %d %s", a.status, a.body)
			}
		})
	}
	h.drained()
	for i := range breaks {
		if h.tagCount(sessionmemu.GeneratedUserID(i+1), "as_sent") != 1 {
			t.Fatalf("event %d, sent while the file was broken, was not delivered by the running version", i)
		}
	}

	// The file as it was: the running version is accepted again.
	editFile(t, file, func(string) string { return string(good) })
	rep := h.r.Apply(h.load())
	if c := changeOf(rep, tagsPipeline); !rep.OK || c == nil || c.Result != "restored" {
		t.Fatalf("report after the fix: %+v", rep)
	}
	// Counted, and named in the metric's help as its other results are.
	m := do(t, "GET", h.engine.URL+"/metrics", "", nil).body
	for _, want := range []string{
		`engine_reload_total{pipeline="` + tagsPipeline + `",result="restored"} 1`,
		"# HELP engine_reload_total Pipeline changes a reload made or refused, by result: added, changed, removed, rejected, restored",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if st := statusOf(h.r.Status(), tagsPipeline); st.State != "running" || len(st.Problems) != 0 {
		t.Fatalf("status after the fix: %+v", st)
	}
	// A fix that changes it brings the new version in.
	editFile(t, file, fixedTag("fixed"))
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "changed" {
		t.Fatal("the fixed file did not bring its version in")
	}
}

// A new file that was rejected, and never ran, is reported removed when it
// is deleted: its entry leaves /status, and the log said "no change".
func TestReloadReportsARejectedFileGone(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 1})
	broken := filepath.Join(dir, "zz-broken.yaml")
	if err := os.WriteFile(broken, []byte("source: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), "zz-broken"); c == nil || c.Result != "rejected" {
		t.Fatalf("setup: the broken file was not rejected: %+v", c)
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	rep := h.r.Apply(h.load())
	if c := changeOf(rep, "zz-broken"); c == nil || c.Result != "removed" || rep.Summary() != "zz-broken: removed" {
		t.Fatalf("report after deleting the rejected file: %+v (%s)", rep, rep.Summary())
	}
	for _, p := range h.r.Status().Pipelines {
		if p.Name == "zz-broken" {
			t.Errorf("/status still lists the deleted file: %+v", p)
		}
	}
}

// A deleted file stops its pipeline; its queued events stay in the inbox
// and are reported. An added file starts serving.
func TestReloadRemovesAndAdds(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	h.queueTagEvent(t, "r1") // still queued when its file goes
	file := filepath.Join(dir, tagsPipeline+".yaml")
	raw, _ := os.ReadFile(file)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	rep := h.r.Apply(h.load())
	c := changeOf(rep, tagsPipeline)
	if c == nil || c.Result != "removed" || c.Queued != 1 || c.Words() != tagsPipeline+": removed; 1 undelivered event in the inbox, kept there (counted now; a line follows once its last requests end)" {
		t.Fatalf("report %+v (%s)", rep, rep.Summary())
	}
	if a := h.tagWebhook(2, "r2"); a.status != 404 {
		t.Fatalf("the removed pipeline's route: %d", a.status)
	}
	if h.store.Depth(tagsPipeline) != 1 {
		t.Fatal("the queued event of the removed pipeline is gone")
	}
	if st := statusOf(h.r.Status(), tagsPipeline); st.State != "not running" || st.Inbox != 1 {
		t.Fatalf("/status shows the removed pipeline's queue as %+v", st)
	}

	// Back under its name, the pipeline takes its queue up again.
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	rep = h.r.Apply(h.load())
	if c := changeOf(rep, tagsPipeline); c == nil || c.Result != "added" {
		t.Fatalf("report %+v", rep)
	}
	h.drained()
	if h.tagCount(sessionmemu.GeneratedUserID(1), "as_sent") != 1 {
		t.Fatal("the event queued before the removal was not delivered once the pipeline was back")
	}
}

// A removed pipeline keeps its counters, at their values, while the
// process lives: Prometheus reads a counter that vanishes and comes back
// as a reset, and engine_reload_total{result="removed"} is the record of
// the removal itself. engine_inbox_depth reads the inbox at each scrape,
// so it names a removed pipeline only while events of it are queued.
func TestRemovedPipelineKeepsItsCounters(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	if err := os.Remove(filepath.Join(dir, tagsPipeline+".yaml")); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "removed" {
		t.Fatal("not removed")
	}
	m := do(t, "GET", h.engine.URL+"/metrics", "", nil).body
	for _, want := range []string{
		`engine_events_received_total{pipeline="` + tagsPipeline + `"} 0`,
		`engine_events_retried_total{pipeline="` + tagsPipeline + `"} 0`,
		`engine_reload_total{pipeline="` + tagsPipeline + `",result="removed"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `engine_inbox_depth{pipeline="`+tagsPipeline+`"}`) {
		t.Errorf("engine_inbox_depth names the removed pipeline, which has nothing queued")
	}
}

// A queued pipeline changed to answer synchronously (target -> respond)
// has nothing left to deliver its queue with: the report says how many
// events stay in the inbox, and a version with a target delivers them.
func TestReloadToRespondKeepsTheQueue(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	h.queueTagEvent(t, "s1")
	file := filepath.Join(dir, tagsPipeline+".yaml")
	raw, _ := os.ReadFile(file)
	editFile(t, file, func(s string) string {
		return s[:strings.Index(s, "target:")] + "respond:\n  body: { ok: true }\n"
	})
	rep := h.r.Apply(h.load())
	c := changeOf(rep, tagsPipeline)
	if c == nil || c.Result != "changed" || c.Queued != 1 || !strings.HasSuffix(c.Words(), "; it no longer queues: 1 undelivered event in the inbox, kept there until a version with a target runs (counted now; a line follows once its last requests end)") {
		t.Fatalf("report %+v (%s)", rep, rep.Summary())
	}
	if h.store.Depth(tagsPipeline) != 1 {
		t.Fatal("the queued event is gone")
	}
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "changed" || c.Queued != 0 {
		t.Fatalf("back to a target: %+v", c)
	}
	h.drained()
	if h.tagCount(sessionmemu.GeneratedUserID(1), "as_sent") != 1 {
		t.Fatal("the event queued before the change was not delivered once a target was back")
	}
}

// A new version whose route collides with another pipeline's is refused;
// both running versions go on.
func TestReloadRefusesARouteCollision(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	// Break the tags pipeline's YAML (it keeps running), then give its
	// route to a new pipeline: the loader, which could not read the broken
	// file's routes, cannot see the collision; the runner must.
	tags := filepath.Join(dir, tagsPipeline+".yaml")
	raw, _ := os.ReadFile(tags)
	editFile(t, tags, func(s string) string { return s + "\ntarget: [unclosed\n" })
	if err := os.WriteFile(filepath.Join(dir, "copycat.yaml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := h.r.Apply(h.load())
	c := changeOf(rep, "copycat")
	if rep.OK || c == nil || c.Result != "rejected" || !strings.Contains(strings.Join(c.Problems, " "), `conflicts with POST /hooks/braze/tags/{user_id} of pipeline "`+tagsPipeline+`"`) {
		t.Fatalf("report %+v", rep)
	}
	// Where, and what to do: validate, which knows no running version,
	// finds nothing wrong with copycat.yaml.
	if want := filepath.Join(dir, "copycat.yaml") + ":11:7: source.path: "; !strings.HasPrefix(c.Problems[0], want) ||
		!strings.Contains(c.Problems[0], `held by the running version of "`+tagsPipeline+`", kept because its file has problems: fix them`) {
		t.Errorf("the refusal %q does not start with %q and say which running version holds the route", c.Problems[0], want)
	}
	if a := h.tagWebhook(1, "c1"); a.status != 200 {
		t.Fatalf("the route's running version stopped serving: %d", a.status)
	}
	if st := statusOf(h.r.Status(), "copycat"); st.State != "rejected" || st.Version != "" {
		t.Fatalf("status of the refused pipeline: %+v", st)
	}
}

// Webhooks keep flowing while a pipeline is swapped again and again: none
// is refused, and every accepted event is delivered exactly once.
func TestReloadUnderLoad(t *testing.T) {
	dir := copyPipelines(t)
	const users = 400
	h := start(t, setup{dirs: []string{dir}, users: users})
	file := filepath.Join(dir, tagsPipeline+".yaml")
	good, _ := os.ReadFile(file)

	var sent atomic.Int64
	var failures []string
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < users; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				a := h.tagWebhook(i, fmt.Sprint("load-", i))
				if a.status != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("user %d: %d %s", i, a.status, a.body))
					mu.Unlock()
				}
				sent.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for i := range 20 {
		switch i % 3 {
		case 0:
			editFile(t, file, fixedTag(fmt.Sprint("v", i)))
		case 1:
			editFile(t, file, func(string) string { return string(good) + "\nfilter: ==\n" }) // rejected
		case 2:
			editFile(t, file, func(string) string { return string(good) })
		}
		h.r.Apply(h.load())
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	close(stop)
	if len(failures) > 0 {
		t.Fatalf("%d webhooks refused during reloads, first: %s", len(failures), failures[0])
	}
	h.drained()
	// One tags request per user, whatever version sent it.
	counts := map[string]int{}
	for _, e := range h.journal("/sessionm/core/*") {
		if e["status"].(float64) == 200 {
			counts[e["path"].(string)]++
		}
	}
	for i := range users {
		if n := counts["/sessionm/core/priv/v1/apps/sandbox-core-key/users/"+sessionmemu.GeneratedUserID(i)+"/tags"]; n != 1 {
			t.Fatalf("user %d was tagged %d times, want exactly once (%d events sent)", i, n, sent.Load())
		}
	}
}

func adminServer(t *testing.T, h *harness, reload func() runner.ReloadReport) string {
	srv := httptest.NewServer(h.r.AdminHandler(reload))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The admin reload route answers the report.
func TestAdminReload(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	srv := adminServer(t, h, func() runner.ReloadReport { return h.r.Apply(h.load()) })
	editFile(t, filepath.Join(dir, tagsPipeline+".yaml"), fixedTag("v9"))
	a := do(t, "POST", srv+"/-/reload", "", nil)
	var rep runner.ReloadReport
	if err := json.Unmarshal([]byte(a.body), &rep); err != nil || a.status != 200 || changeOf(rep, tagsPipeline) == nil {
		t.Fatalf("POST /-/reload: %d %s", a.status, a.body)
	}
	editFile(t, filepath.Join(dir, tagsPipeline+".yaml"), func(s string) string { return s + "\nfilter: ==\n" })
	if a := do(t, "POST", srv+"/-/reload", "", nil); a.status != 422 || !strings.Contains(a.body, `"rejected"`) {
		t.Fatalf("POST /-/reload with a broken file: %d %s", a.status, a.body)
	}
	st := do(t, "GET", srv+"/status", "", nil)
	if !strings.Contains(st.body, `"state":"rejected"`) || !strings.Contains(st.body, `"last_reload"`) {
		t.Fatalf("status: %s", st.body)
	}
	m := do(t, "GET", h.engine.URL+"/metrics", "", nil).body
	for _, want := range []string{
		`engine_reload_total{pipeline="braze-segment-to-sessionm-tags",result="changed"} 1`,
		`engine_reload_total{pipeline="braze-segment-to-sessionm-tags",result="rejected"} 1`,
		"engine_config_last_reload_successful 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A reload that changes nothing answers an empty list of changes, in
// POST /-/reload and in the last reload of GET /status: clients iterate
// over it without a null check.
func TestAdminReloadWithNothingChanged(t *testing.T) {
	h := start(t, setup{dirs: []string{copyPipelines(t)}, users: 10})
	srv := adminServer(t, h, func() runner.ReloadReport { return h.r.Apply(h.load()) })
	if a := do(t, "POST", srv+"/-/reload", "", nil); a.status != 200 || !strings.Contains(a.body, `"changes":[]`) {
		t.Fatalf("POST /-/reload with nothing changed: %d %s", a.status, a.body)
	}
	if st := do(t, "GET", srv+"/status", "", nil); !strings.Contains(st.body, `"changes":[]`) {
		t.Fatalf("status after a reload that changed nothing: %s", st.body)
	}
}

// An event queued by one version and handled by the next says so: its
// dead letter has the version that handled it, its event the version that
// accepted it.
func TestReloadVersionsOnDeadLetters(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","throttle":{"for":"500ms"}}`)
	old := statusOf(h.r.Status(), tagsPipeline).Version
	// No such user in SessionM: once tried, the event is dead-lettered.
	if a := h.post("/hooks/braze/tags/no-such-user", `{"tags":["x"]}`, map[string]string{"Authorization": coreBasic}); a.status != 200 {
		t.Fatal(a)
	}
	h.eventually("the first attempt", func() bool { return len(h.journal("/sessionm/core/*")) > 0 })
	editFile(t, filepath.Join(dir, tagsPipeline+".yaml"), func(s string) string { return strings.Replace(s, "Braze segment", "Braze segments", 1) })
	c := changeOf(h.r.Apply(h.load()), tagsPipeline)
	if c == nil || c.Result != "changed" {
		t.Fatal("not reloaded")
	}
	h.drained()
	dls, err := h.store.DeadLetters(inbox.DeadFilter{Pipeline: tagsPipeline})
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v %v", dls, err)
	}
	var ev struct {
		AcceptedBy string `json:"accepted_by"`
	}
	_ = json.Unmarshal(dls[0].Event, &ev)
	if dls[0].Version != c.Version || ev.AcceptedBy != old {
		t.Fatalf("dead letter version %s (want %s), accepted by %s (want %s)", dls[0].Version, c.Version, ev.AcceptedBy, old)
	}
}

// A pipeline removed while its lane still has a request in flight, and
// added back at once, waits for that lane: the event is sent once.
func TestReloadRemoveAndReaddSendsOnce(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"1s","count":1}`)
	if a := h.tagWebhook(1, "x1"); a.status != 200 {
		t.Fatal(a)
	}
	time.Sleep(200 * time.Millisecond) // the request is in flight
	file := filepath.Join(dir, tagsPipeline+".yaml")
	raw, _ := os.ReadFile(file)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "removed" {
		t.Fatal("not removed")
	}
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "added" {
		t.Fatal("not added")
	}
	h.drained()
	time.Sleep(time.Second) // the slow first request is answered by now
	if n := len(h.journal("/sessionm/core/priv/v1/apps/sandbox-core-key/users/" + sessionmemu.GeneratedUserID(1) + "/tags")); n != 1 {
		t.Fatalf("the event was sent %d times, want 1", n)
	}
}

// A reload before Start (POST /-/reload can reach the admin listener
// first): the new version runs once started, and Stop returns.
func TestReloadBeforeStart(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10}) // for its loader and sandbox
	h.stop()
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := runner.New(runner.Options{Store: store, Pipelines: h.load().Pipelines, Masker: h.masker})
	if err != nil {
		t.Fatal(err)
	}
	editFile(t, filepath.Join(dir, tagsPipeline+".yaml"), fixedTag("v2"))
	if c := changeOf(r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "changed" {
		t.Fatal("not reloaded")
	}
	r.Start()
	h.eventually("the new version to run", func() bool { return statusOf(r.Status(), tagsPipeline).State == "running" })
	done := make(chan struct{})
	go func() { r.Stop(time.Second); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hangs")
	}
}

// A folder gone for a moment (swapped during a deploy) removes nothing.
func TestReloadFolderProblemRemovesNothing(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	rep := h.r.Apply(h.load())
	if rep.OK || len(rep.Problems) == 0 || changeOf(rep, tagsPipeline) != nil {
		t.Fatalf("report %+v", rep)
	}
	if statusOf(h.r.Status(), tagsPipeline).State != "running" {
		t.Fatalf("a pipeline was removed because of a folder problem: %+v", statusOf(h.r.Status(), tagsPipeline))
	}
}

// A rotated secret is a new pipeline at the next reload, though no file
// changed: the webhook's new token works and the old one no longer does.
func TestReloadPicksUpARotatedSecret(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "SESSIONM_WEBHOOK_TOKEN")
	if err := os.WriteFile(token, []byte("token-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, setup{secrets: dir})
	offer := func(id, bearer string) int {
		return h.post("/hooks/sessionm/offers", offerEvent(id, "u-1001"), map[string]string{"Authorization": "Bearer " + bearer}).status
	}
	if a, b := offer("rot-1", "token-a"), offer("rot-2", "token-b"); a != 200 || b != 401 {
		t.Fatalf("before the rotation: token-a %d, token-b %d", a, b)
	}
	if err := os.WriteFile(token, []byte("token-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := changeOf(h.r.Apply(h.load()), "offer-issued-to-braze-campaign")
	if c == nil || c.Result != "changed" || !slices.Contains(c.What, "a value from the environment or a secret changed") {
		t.Fatalf("reload after the rotation: %+v", c)
	}
	if a, b := offer("rot-3", "token-a"), offer("rot-4", "token-b"); a != 401 || b != 200 {
		t.Fatalf("after the rotation: token-a %d, token-b %d", a, b)
	}
	if rep := h.r.Apply(h.load()); len(rep.Changes) != 0 {
		t.Fatalf("a reload with nothing changed reports %+v", rep.Changes)
	}
}

// When a reload brings a second file for a route a running pipeline
// serves, the new or edited file is rejected, at its line, and the
// pipeline that was serving the route is not touched.
func TestRouteConflictBlamesTheFileThatChanged(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}})
	h.loader.Running = h.r.Running
	const offers = "offer-issued-to-braze-campaign"
	raw, err := os.ReadFile(filepath.Join(dir, offers+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, file string
		write      func(path string)
	}{
		{"a copy, named to load first", "a-copy", func(path string) { os.WriteFile(path, raw, 0o644) }},
		{"an edit", tagsPipeline, func(path string) {
			editFile(t, path, func(s string) string {
				return strings.Replace(s, "/hooks/braze/tags/{user_id}", "/hooks/sessionm/offers", 1)
			})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file+".yaml")
			tt.write(path)
			rep := h.r.Apply(h.load())
			if c := changeOf(rep, offers); c != nil {
				t.Errorf("the pipeline serving the route was reported: %+v", c)
			}
			c := changeOf(rep, tt.file)
			if c == nil || c.Result != "rejected" || len(c.Problems) != 1 || !strings.HasPrefix(c.Problems[0], path+":") ||
				!strings.Contains(c.Problems[0], "conflicts with POST /hooks/sessionm/offers of pipeline \""+offers+"\"") {
				t.Fatalf("the file that changed: %+v", c)
			}
			if a := h.post("/hooks/sessionm/offers", offerEvent("rc-"+tt.file, "u-1001"), map[string]string{"Authorization": hookAuth}); a.status != 200 {
				t.Fatalf("the route's pipeline answers %d %s", a.status, a.body)
			}
		})
	}
}

// A reload that changes a connection's limits keeps the connection's
// governor: the pause Braze asked for with a 429 holds for the new
// version's requests too, instead of a fresh governor sending at once.
func TestReloadKeepsAConnectionsPause(t *testing.T) {
	const pipeline = "offer-issued-to-braze-campaign"
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 2})
	// Two users, so that order_by does not hold the second event behind
	// the first.
	offer := func(i int) {
		t.Helper()
		body := strings.Replace(offerEvent(fmt.Sprintf("pause-%d", i), sessionmemu.GeneratedExternalID(i)), ana, sessionmemu.GeneratedUserID(i), 1)
		if a := h.post("/hooks/sessionm/offers", body, map[string]string{"Authorization": hookAuth}); a.status != 200 {
			t.Fatal(a)
		}
	}
	// Every Braze request gets 429 for 3 s from the first, with a
	// Retry-After pointing at the end of those 3 s.
	h.control("POST", "/faults", `{"emulator":"braze","throttle":{"for":"3s"}}`)
	offer(0)
	h.eventually("the first request to be refused", func() bool { return len(h.journal("/braze/*")) > 0 })

	editFile(t, filepath.Join(dir, "connections.yaml"), func(s string) string {
		return strings.Replace(s, "api_key: ${secret:BRAZE_API_KEY}", "api_key: ${secret:BRAZE_API_KEY}\n    rate_limit: 10/s", 1)
	})
	rep := h.r.Apply(h.load())
	if c := changeOf(rep, pipeline); !rep.OK || c == nil || c.Result != "changed" {
		t.Fatalf("report %+v", rep)
	}
	if st := statusOf(h.r.Status(), pipeline); st.PausedTo == "" {
		t.Errorf("after the reload the connection is not paused: %+v", st)
	}
	offer(1)
	h.drained()

	entries := h.journal("/braze/*")
	first, _ := time.Parse(time.RFC3339Nano, entries[0]["time"].(string))
	if entries[0]["status"].(float64) != 429 {
		t.Fatalf("the first request was answered %v, not 429", entries[0]["status"])
	}
	// The pause lasts about 3 s from the 429; 2 s leaves room for a slow
	// machine.
	for _, e := range entries[1:] {
		at, _ := time.Parse(time.RFC3339Nano, e["time"].(string))
		if at.Before(first.Add(2 * time.Second)) {
			t.Fatalf("a request went %v after the 429, inside the pause it asked for", at.Sub(first))
		}
	}
	for i := range 2 {
		if len(h.messages(sessionmemu.GeneratedExternalID(i))) != 1 {
			t.Fatalf("event %d was not delivered once the pause ended", i)
		}
	}
}

// A reload that adds a CSV pipeline on the inbox folder a running one
// watches rejects the new file, at its source.inbox, and leaves the
// running pipeline alone: both would otherwise take the folder's files
// by turns, each importing only those the other had not filed away.
// The runner refuses it too when the loader cannot see the conflict: the
// running pipeline's file is broken, so only its running version holds
// the folder.
func TestReloadRefusesASecondPipelineOnAnInboxFolder(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	h.loader.Running = h.r.Running
	segments := filepath.Join(dir, csvPipeline+".yaml")
	raw, err := os.ReadFile(segments)
	if err != nil {
		t.Fatal(err)
	}
	running := statusOf(h.r.Status(), csvPipeline)
	for _, tt := range []struct {
		name, file string
		at         string // where the problem is reported: the loader knows the line
		before     func()
	}{
		{"a copy, named to load first", "a-copy", ":10:10: source.inbox: ", func() {}},
		{"a copy while the running file is broken", "b-copy", ": source.inbox: ", func() {
			if err := os.Remove(filepath.Join(dir, "a-copy.yaml")); err != nil {
				t.Fatal(err)
			}
			editFile(t, segments, func(s string) string { return s + "\ntarget: [unclosed\n" })
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.before()
			path := filepath.Join(dir, tt.file+".yaml")
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			rep := h.r.Apply(h.load())
			c := changeOf(rep, tt.file)
			if rep.OK || c == nil || c.Result != "rejected" || len(c.Problems) != 1 || !strings.HasPrefix(c.Problems[0], path+tt.at) || !strings.Contains(c.Problems[0], `is also the inbox folder of pipeline "`+csvPipeline+`"`) ||
				!strings.Contains(c.Problems[0], "each inbox folder belongs to one pipeline") {
				t.Fatalf("the new file: %+v", rep)
			}
			if st := statusOf(h.r.Status(), tt.file); st.State != "rejected" || st.Version != "" {
				t.Errorf("status of the refused pipeline: %+v", st)
			}
			if st := statusOf(h.r.Status(), csvPipeline); st.Version != running.Version || h.r.Running(csvPipeline) == nil {
				t.Errorf("the running pipeline was touched: %+v", st)
			}
		})
	}
}

// Two running pipelines whose inbox folders became one after they were
// loaded (a link replaced a folder): the new load refuses the second
// file, whose running version is kept, and the reload ends. It looped for
// ever, naming the kept version, which it could only keep again, while
// holding the lock a stop needs.
func TestReloadEndsWhenKeptPipelinesShareAnInboxFolder(t *testing.T) {
	dir := copyPipelines(t)
	raw, err := os.ReadFile(filepath.Join(dir, csvPipeline+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(string(raw), "../inbox/segments", "../inbox/other", 1)
	if other == string(raw) {
		t.Fatal("setup: the CSV pipeline's inbox folder is not ../inbox/segments")
	}
	if err := os.WriteFile(filepath.Join(dir, "z-copy.yaml"), []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &runner.LockedBuffer{}
	h := start(t, setup{dirs: []string{dir}, users: 10, opts: func(o *runner.Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) }})
	h.loader.Running = h.r.Running
	inbox := filepath.Join(filepath.Dir(dir), "inbox")
	if err := os.MkdirAll(filepath.Join(inbox, "segments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(inbox, "other")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(inbox, "segments"), filepath.Join(inbox, "other")); err != nil {
		t.Fatal(err)
	}
	done := make(chan runner.ReloadReport, 1)
	go func() { done <- h.r.Apply(h.load()) }()
	select {
	case rep := <-done:
		if c := changeOf(rep, "z-copy"); c == nil || c.Result != "rejected" {
			t.Errorf("the second file: %+v", rep)
		}
		if h.r.Running("z-copy") == nil || h.r.Running(csvPipeline) == nil {
			t.Error("a running version was stopped")
		}
		if !strings.Contains(logs.String(), "two running pipelines share an inbox folder") {
			t.Errorf("nothing logged about the shared folder:\n%s", logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reload did not end")
	}
}

// A connections.yaml edit with a problem in a connection rejects every
// pipeline that uses it, as a broken pipeline file does: their running
// versions go on with the running connection, whose rate limit still
// paces them, and the problem, at its line in connections.yaml, is shown
// with each. Before, the connection was built with the setting in error
// left out and swapped in, dropping the limit. The file's other
// connections reload as usual.
func TestReloadRejectsABrokenConnection(t *testing.T) {
	dir := copyPipelines(t)
	conns := filepath.Join(dir, "connections.yaml")
	const coreLast, brazeLast = "api_secret: ${secret:SESSIONM_API_SECRET}\n", "api_key: ${secret:BRAZE_API_KEY}\n"
	// with adds line to sessionm_core (as line 13) and braze's timeout.
	with := func(line, brazeTimeout string) func(string) string {
		return func(s string) string {
			s = strings.Replace(s, coreLast, coreLast+"    "+line+"\n", 1)
			return strings.Replace(s, brazeLast, brazeLast+"    timeout: "+brazeTimeout+"\n", 1)
		}
	}
	shipped, err := os.ReadFile(conns)
	if err != nil {
		t.Fatal(err)
	}
	editFile(t, conns, with("rate_limit: 1/m", "10s"))
	h := start(t, setup{dirs: []string{dir}, users: 10})
	for i := range 3 {
		if a := h.tagWebhook(i+1, fmt.Sprint("paced-", i)); a.status != 200 {
			t.Fatal(a)
		}
	}
	// 1/m: one request now, the others a minute apart.
	h.eventually("the first event to be delivered", func() bool { return len(h.journal("/sessionm/core/*")) == 1 })
	onCore := []string{tagsPipeline, csvPipeline}
	onBraze := []string{"offer-issued-to-braze-campaign", "points-awarded-to-braze-canvas"}
	running := map[string]string{}
	for _, name := range onCore {
		running[name] = statusOf(h.r.Status(), name).Version
	}

	breaks := []struct{ name, line, want string }{
		{"a rate limit that does not parse", "rate_limit: 1 per m", `:13:17: connections.sessionm_core.rate_limit: "1 per m" is not a rate limit; write requests/period`},
		{"an unknown key", "rate_limt: 1/m", `:13:5: connections.sessionm_core.rate_limt: unknown key "rate_limt"`},
		{"a timeout that does not parse", "timeout: banana", `:13:14: connections.sessionm_core.timeout: "banana" is not a positive duration`},
	}
	for i, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			editFile(t, conns, func(string) string {
				return with(b.line, fmt.Sprintf("%ds", 20+i))(string(shipped))
			})
			rep := h.r.Apply(h.load())
			if rep.OK {
				t.Errorf("the reload is OK: %s", rep.Summary())
			}
			for _, name := range onCore {
				c := changeOf(rep, name)
				if c == nil || c.Result != "rejected" || c.Version != running[name] {
					t.Fatalf("%s: %+v; the report: %s", name, c, rep.Summary())
				}
				if !slices.ContainsFunc(c.Problems, func(p string) bool { return strings.HasPrefix(p, conns+":") && strings.Contains(p, b.want) }) {
					t.Errorf("%s: the problems do not hold connections.yaml's, %q: %q", name, b.want, c.Problems)
				}
				st := statusOf(h.r.Status(), name)
				if st.State != "rejected" || st.Version != running[name] || !slices.Equal(st.Problems, c.Problems) {
					t.Errorf("%s: status %+v", name, st)
				}
			}
			for _, name := range onBraze {
				if c := changeOf(rep, name); c == nil || c.Result != "changed" || !slices.Equal(c.What, []string{"connection braze changed"}) {
					t.Errorf("%s, on the braze connection, was not reloaded: %+v", name, c)
				}
			}
			m := do(t, "GET", h.engine.URL+"/metrics", "", nil).body
			if want := fmt.Sprintf(`engine_reload_total{pipeline="%s",result="rejected"} %d`, tagsPipeline, i+1); !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
			// Without its limit, the connection would send the waiting
			// events at once.
			time.Sleep(300 * time.Millisecond)
			if n := len(h.journal("/sessionm/core/*")); n != 1 {
				t.Fatalf("%d requests to SessionM Core: the running rate limit of 1/m was dropped", n)
			}
		})
	}

	// Fixed, with a faster limit: the new versions take over and send
	// the waiting events.
	editFile(t, conns, func(string) string { return with("rate_limit: 100/s", "10s")(string(shipped)) })
	rep := h.r.Apply(h.load())
	if c := changeOf(rep, tagsPipeline); !rep.OK || c == nil || c.Result != "changed" {
		t.Fatalf("report after the fix: %s", rep.Summary())
	}
	h.drained()
	if n := len(h.journal("/sessionm/core/*")); n != 3 {
		t.Fatalf("%d requests to SessionM Core after the fix, want 3", n)
	}
}

// A reload names the warnings of the files it added or changed, as
// validate and the start do, and does not repeat others: a route whose auth
// an edit removed, or a new file's route that takes some of another's
// requests, went unmentioned until the next restart.
func TestReloadShowsNewWarnings(t *testing.T) {
	dir := copyPipelines(t)
	// A warning of no pipeline at the start: a subfolder's files go unread.
	writeFile := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(filepath.Join(dir, "team-a", "x.yaml"), "description: unread\n")
	h := start(t, setup{dirs: []string{dir}, users: 10})
	h.loader.Running = h.r.Running // as engine run does: files that changed claim their routes last
	reload := func(what string, want ...string) {
		t.Helper()
		rep := h.r.Apply(h.load())
		if len(rep.Warnings) != len(want) {
			t.Fatalf("%s: warnings %q, want %d (%s)", what, rep.Warnings, len(want), rep.Summary())
		}
		for i, w := range want {
			if !strings.Contains(rep.Warnings[i], w) {
				t.Errorf("%s: warning %q lacks %q", what, rep.Warnings[i], w)
			}
		}
		if last := h.r.Status().LastReload; last == nil || !slices.Equal(last.Warnings, rep.Warnings) {
			t.Fatalf("%s: /status's last reload: %+v", what, last)
		}
	}
	reload("nothing changed")

	tags := filepath.Join(dir, tagsPipeline+".yaml")
	raw, _ := os.ReadFile(tags)
	auth := regexp.MustCompile(`(?s)\n  auth:.*?username_in_path: api_key\n`)
	if !auth.Match(raw) {
		t.Fatal("the tags pipeline's auth block moved: update this test")
	}
	editFile(t, tags, func(s string) string { return auth.ReplaceAllString(s, "\n") })
	reload("auth removed", tags+": warning: POST /hooks/braze/tags/{user_id} | /priv/v1/apps/{api_key}/users/{user_id}/tags: "+engine.OpenRouteWarning)

	// A new file whose route takes some of the tags pipeline's requests:
	// its overlap and its open route, not the tags pipeline's again.
	vip := strings.Replace(auth.ReplaceAllString(string(raw), "\n"),
		"    - /hooks/braze/tags/{user_id}\n    - /priv/v1/apps/{api_key}/users/{user_id}/tags\n", "    - /hooks/braze/tags/vip\n", 1)
	vip = strings.Replace(vip, `user_id: "{{ request.params.user_id }}"`, "user_id: "+sessionmemu.GeneratedUserID(1), 1)
	vip = strings.Replace(vip, `order_by: "{{ request.params.user_id }}"`, `order_by: "{{ 'all' }}"`, 1)
	vipFile := filepath.Join(dir, "vip-tags.yaml")
	writeFile(vipFile, vip)
	reload("a new file", vipFile+":11:7: warning: source.path[0]: POST /hooks/braze/tags/vip also takes requests of POST /hooks/braze/tags/{user_id}",
		vipFile+": warning: POST /hooks/braze/tags/vip: "+engine.OpenRouteWarning)

	// Nothing more: an edit elsewhere, no change, a file broken and put
	// back, the tags file's comment moving its overlap nowhere new.
	editFile(t, filepath.Join(dir, "offer-issued-to-braze-campaign.yaml"), func(s string) string { return s + "\n# a comment\n" })
	reload("an edit elsewhere")
	reload("no change")
	writeFile(vipFile, vip+"\nfilter: event.tags ==\n")
	reload("a broken file")
	writeFile(vipFile, vip)
	reload("the file put back")

	// A file read as a pipeline whatever its extension's case is one.
	upper := filepath.Join(dir, "upper.YAML")
	writeFile(upper, strings.Replace(vip, "/hooks/braze/tags/vip", "/hooks/braze/tags/upper", 1))
	upperWarnings := []string{upper + ":11:7: warning: source.path[0]: POST /hooks/braze/tags/upper also takes", upper + ": warning: POST /hooks/braze/tags/upper: " + engine.OpenRouteWarning}
	reload("a .YAML file", upperWarnings...)
	editFile(t, upper, func(s string) string { return s + "\n# edited\n" })
	reload("a .YAML file edited", upperWarnings...)

	// A new warning of no pipeline is shown once, and again when it
	// comes back after it was put right.
	unread := filepath.Join(dir, "team-b")
	writeFile(filepath.Join(unread, "y.yaml"), "description: unread\n")
	reload("a second unread folder", unread+": warning: holds .yaml files that are not read (y.yaml)")
	reload("no change again")
	if err := os.RemoveAll(unread); err != nil {
		t.Fatal(err)
	}
	reload("the folder gone")
	writeFile(filepath.Join(unread, "y.yaml"), "description: unread\n")
	reload("the folder back", unread+": warning: holds .yaml files that are not read (y.yaml)")
}

// A folder whose pipeline files all go while its connections.yaml stays
// keeps its pipelines running, as a folder left with nothing does: a
// checkout or sync half done is not a wish to stop them all. Loaded
// as a folder of connections alone, every pipeline was removed (a README
// walk-through). The files put back are no change.
func TestReloadKeepsAFolderLeftWithItsConnectionsOnly(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	before := h.r.Status()
	saved := map[string][]byte{}
	for _, p := range before.Pipelines {
		raw, err := os.ReadFile(p.File)
		if err != nil {
			t.Fatal(err)
		}
		saved[p.File] = raw
		if err := os.Remove(p.File); err != nil {
			t.Fatal(err)
		}
	}
	rep := h.r.Apply(h.load())
	if rep.OK || len(rep.Changes) != 0 || !slices.Contains(rep.Problems, dir+": the folder holds no .yaml pipeline files, only connections.yaml") ||
		!slices.Contains(rep.Problems, tagsPipeline+": not removed while the problems above stand") {
		t.Fatalf("report %+v (%s)", rep, rep.Summary())
	}
	if a := h.tagWebhook(1, "k1"); a.status != 200 {
		t.Fatalf("the running version stopped serving: %d %s", a.status, a.body)
	}
	if st := statusOf(h.r.Status(), tagsPipeline); st.State != "running" || st.Version != statusOf(before, tagsPipeline).Version {
		t.Fatalf("status: %+v", st)
	}
	h.drained()

	for file, raw := range saved {
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if rep := h.r.Apply(h.load()); !rep.OK || rep.Summary() != "no change" {
		t.Fatalf("the files put back: %+v (%s)", rep, rep.Summary())
	}

	// One pipeline file of the folder removed is a removal, as before.
	if err := os.Remove(filepath.Join(dir, tagsPipeline+".yaml")); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), tagsPipeline); c == nil || c.Result != "removed" {
		t.Fatalf("one file of several removed: %+v", c)
	}
}

// A broken file read as a pipeline whatever its extension's case is that
// pipeline's rejection, not a problem of the whole reload, which kept
// every removed pipeline running.
func TestReloadRejectsABrokenUppercaseFileAlone(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{dirs: []string{dir}, users: 10})
	if err := os.WriteFile(filepath.Join(dir, "Broken.YAML"), []byte("description: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, tagsPipeline+".yaml")); err != nil {
		t.Fatal(err)
	}
	rep := h.r.Apply(h.load())
	if c := changeOf(rep, "Broken"); c == nil || c.Result != "rejected" || len(rep.Problems) != 0 {
		t.Fatalf("report %+v (%s)", rep, rep.Summary())
	}
	if c := changeOf(rep, tagsPipeline); c == nil || c.Result != "removed" {
		t.Fatalf("the removed file's pipeline: %+v (%s)", c, rep.Summary())
	}
}

// A --connections FILE may have any name: a problem in it belongs to no
// pipeline, whatever it is called, and the pipelines it breaks keep their
// running versions. Named like a pipeline (staging.yaml), it showed in
// the reload's report and /status as a rejected pipeline "staging".
func TestAConnectionsFileOfAnyNameIsNoPipeline(t *testing.T) {
	dir := copyPipelines(t)
	os.Remove(filepath.Join(dir, "connections.yaml"))
	raw, err := os.ReadFile("../../pipelines/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for where, conns := range map[string]string{"elsewhere": filepath.Join(t.TempDir(), "staging.yaml"), "among the pipelines": filepath.Join(dir, "staging.yaml")} {
		t.Run(where, func(t *testing.T) {
			if err := os.WriteFile(conns, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(conns)
			h := start(t, setup{dirs: []string{dir}, conns: conns})
			if h.r.Running("offer-issued-to-braze-campaign") == nil || h.r.Running("staging") != nil {
				t.Fatal("want the pipelines of pipelines/ running, and no staging")
			}
			editFile(t, conns, func(s string) string { return s + "    bad_key: 1\n" }) // under braze
			rep := h.r.Apply(h.load())
			if c := changeOf(rep, "staging"); c != nil {
				t.Errorf("the connections file was reported as a pipeline: %+v", *c)
			}
			if len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "staging.yaml") {
				t.Errorf("the reload's own problems %q do not name staging.yaml", rep.Problems)
			}
			if c := changeOf(rep, "offer-issued-to-braze-campaign"); c == nil || c.Result != "rejected" {
				t.Errorf("a pipeline of the broken connection: %+v, want rejected (its running version goes on)", c)
			}
			if h.r.Running("offer-issued-to-braze-campaign") == nil {
				t.Error("the pipeline of the broken connection stopped; its running version goes on")
			}
		})
	}
}
