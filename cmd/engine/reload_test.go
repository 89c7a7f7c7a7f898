package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/engine/secrets"
)

// copyDir copies the files of src (not its folders) into a new folder.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	copyFiles(t, src, dst)
	return dst
}

// copyFiles copies the files of src (not its folders) into dst, which it
// creates if need be.
func copyFiles(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
}

// copyFile copies the file from to the path to.
func copyFile(t testing.TB, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// adminOf is the admin address an engine run printed in its banner.
func adminOf(t testing.TB, e *engineRun) string {
	t.Helper()
	m := regexp.MustCompile(`admin on (http://[0-9.:]+)`).FindStringSubmatch(e.stdout.String())
	if m == nil {
		t.Fatalf("%s printed no admin address", e.name)
	}
	return m[1]
}

type statusAnswer struct {
	Pipelines []struct {
		Name     string   `json:"name"`
		Version  string   `json:"version"`
		State    string   `json:"state"`
		Problems []string `json:"problems"`
	} `json:"pipelines"`
}

// startReloading starts an engine that reloads on SIGHUP only, and
// returns it, its admin address, a client for it and the version of
// ordered-tags it runs.
func (h *crashHarness) startReloading(t *testing.T) (e *engineRun, admin string, client *http.Client, running string) {
	t.Helper()
	h.flags = []string{"--admin-addr", "127.0.0.1:0", "--watch=false", "--rescan", "0"}
	e = h.startEngine(0)
	admin = adminOf(t, e)
	client = &http.Client{Timeout: 5 * time.Second}
	st, err := fetchStatus(client, admin)
	if err != nil {
		t.Fatal(err)
	}
	running, _ = st.versionOf("ordered-tags")
	return e, admin, client, running
}

func fetchStatus(client *http.Client, admin string) (statusAnswer, error) {
	var st statusAnswer
	resp, err := client.Get(admin + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// versionOf is the running version of pipeline ("" when none runs) and
// its state.
func (st statusAnswer) versionOf(pipeline string) (version, state string) {
	for _, p := range st.Pipelines {
		if p.Name == pipeline {
			return p.Version, p.State
		}
	}
	return "", ""
}

// writeAtomically saves content the way editors do: a new file, renamed
// over the old one.
func writeAtomically(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderWebhookLoad edits the pipeline files 50 times (rewrite,
// rename-save, break, fix, add, delete, connections.yaml) while webhooks
// arrive as fast as 16 senders go: no webhook may be refused or go
// unanswered, and every accepted event must reach SessionM exactly once.
func TestReloadUnderWebhookLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes under load")
	}
	h := newCrashHarness(t, crashUsers)
	h.pipelines = copyDir(t, crashPipelines)
	// A deletion is reloaded as quickly as an edit: extra.yaml is gone
	// for 0.9 s at a time, and at the default --removal-quiet every
	// reload would wait for it to come back.
	h.flags = []string{"--admin-addr", "127.0.0.1:0", "--reload-quiet", "50ms", "--removal-quiet", "50ms"}
	e := h.startEngine(0)
	admin := adminOf(t, e)
	client := &http.Client{Timeout: 5 * time.Second}

	tags := filepath.Join(h.pipelines, "ordered-tags.yaml")
	extra := filepath.Join(h.pipelines, "extra.yaml")
	conns := filepath.Join(h.pipelines, "connections.yaml")
	rawTags, _ := os.ReadFile(tags)
	rawConns, _ := os.ReadFile(conns)
	good := string(rawTags)
	withDescription := func(i int) string {
		return strings.Replace(good, "description: test counter tags in order per user", fmt.Sprintf("description: edit %d", i), 1)
	}
	ops := []struct {
		name string
		do   func(i int)
	}{
		{"rewrite", func(i int) { _ = os.WriteFile(tags, []byte(withDescription(i)), 0o644) }},
		{"rename-save", func(i int) {
			writeAtomically(t, tags, strings.Replace(withDescription(i), "attempts: 3", "attempts: 4", 1))
		}},
		{"break", func(i int) { _ = os.WriteFile(tags, []byte(withDescription(i)+"\nfilter: event.tags ==\n"), 0o644) }},
		{"fix", func(i int) { writeAtomically(t, tags, withDescription(i)) }},
		{"add", func(i int) {
			_ = os.WriteFile(extra, []byte(strings.Replace(good, "/hooks/tags/{user_id}", "/hooks/extra/{user_id}", 1)), 0o644)
		}},
		{"delete", func(i int) { _ = os.Remove(extra) }},
		{"connections", func(i int) { _ = os.WriteFile(conns, []byte(fmt.Sprintf("%s\n# edit %d\n", rawConns, i)), 0o644) }},
	}

	led, load, _ := startLoad(t, e.base, e.exited, 300, 300, 0)
	began, startCount := time.Now(), led.acceptedCount()
	versions := map[string]bool{}
	for i := range 50 {
		op := ops[i%len(ops)]
		op.do(i)
		time.Sleep(150 * time.Millisecond) // past --reload-quiet and the build
		if st, err := fetchStatus(client, admin); err == nil {
			v, _ := st.versionOf("ordered-tags")
			versions[v] = true
		}
		if e.done() {
			break
		}
	}
	elapsed, during := time.Since(began), led.acceptedCount()-startCount
	load.halt()
	rate := float64(during) / elapsed.Seconds()
	t.Logf("50 edits in %v; %d events accepted meanwhile (%.0f/s); %d versions of ordered-tags seen", elapsed.Round(time.Millisecond), during, rate, len(versions))

	if n := len(led.unanswered()); n > 0 {
		t.Errorf("%d webhooks were refused or unanswered during the reloads (%s), e.g. %v", n, led.why(), firstN(led.unanswered(), 10))
	}
	if len(versions) < 10 {
		t.Errorf("only %d versions of ordered-tags ran; the edits were not reloaded", len(versions))
	}
	if rate < 1000 {
		t.Logf("note: fewer than 1,000 events/s during the edits on this machine")
	}
	stderr := e.stderr.String()
	for _, want := range []string{"ordered-tags: description changed", "ordered-tags: rejected, 1 problem", "extra: added", "extra: removed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no reload log line says %q", want)
		}
	}
	h.checkDelivered(e, led, 0)
}

// TestReloadKeepsTheRunningVersion: a broken edit is shown in /status
// with file:line:col and the old version goes on; the fix brings the new
// one in; SIGHUP reloads too.
func TestReloadKeepsTheRunningVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, 10)
	h.pipelines = copyDir(t, crashPipelines)
	e, admin, client, running := h.startReloading(t)

	tags := filepath.Join(h.pipelines, "ordered-tags.yaml")
	raw, _ := os.ReadFile(tags)
	if err := os.WriteFile(tags, append(raw, "\nfilter: event.tags ==\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	// --watch=false: only SIGHUP (or POST /-/reload) reloads.
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejection in /status", func() bool {
		st, err := fetchStatus(client, admin)
		if err != nil {
			return false
		}
		for _, p := range st.Pipelines {
			if p.Name == "ordered-tags" && p.State == "rejected" {
				if p.Version != running || len(p.Problems) != 1 || !strings.Contains(p.Problems[0], tags+":19:") {
					t.Fatalf("status of the rejected file: %+v", p)
				}
				return true
			}
		}
		return false
	})
	led := newLedger()
	if err := led.send(newSenderClient(t), e.base, 1); err != nil || led.acceptedCount() != 1 {
		t.Fatalf("the running version does not serve: %v (%s)", err, led.why())
	}

	if err := os.WriteFile(tags, []byte(strings.Replace(string(raw), "attempts: 3", "attempts: 5", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(admin+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		OK      bool `json:"ok"`
		Changes []struct {
			Pipeline, Result string
			What             []string
		} `json:"changes"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if resp.StatusCode != 200 || !rep.OK || len(rep.Changes) != 1 || rep.Changes[0].Result != "changed" || !slices.Equal(rep.Changes[0].What, []string{"delivery changed"}) {
		t.Fatalf("POST /-/reload after the fix: %d %+v", resp.StatusCode, rep)
	}
	h.checkDelivered(e, led, 0)
}

// A connections.yaml edit that breaks a connection while engine run runs
// (QA's case: rate_limit: 1/m changed to "1 per m", or misspelled) rejects
// the pipelines on it: they go on with the running connection, so events
// held back by its rate limit stay held, /status shows the problem at its
// line, and the log line names it once. Before, the connection was built
// without the setting and the waiting events were sent at once.
func TestReloadKeepsTheRunningConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, 10)
	h.pipelines = copyDir(t, crashPipelines)
	conns := filepath.Join(h.pipelines, "connections.yaml")
	raw, err := os.ReadFile(conns)
	if err != nil {
		t.Fatal(err)
	}
	const coreLast = "api_secret: ${secret:SESSIONM_API_SECRET}\n"
	withCore := func(line string) string {
		return strings.Replace(string(raw), coreLast, coreLast+"    "+line+"\n", 1)
	}
	if err := os.WriteFile(conns, []byte(withCore("rate_limit: 1/m")), 0o644); err != nil {
		t.Fatal(err)
	}
	e, admin, client, running := h.startReloading(t)
	led := newLedger()
	for k := 1; k <= 3; k++ {
		if err := led.send(newSenderClient(t), e.base, k); err != nil || led.acceptedCount() != k {
			t.Fatalf("webhook %d: %v (%s)", k, err, led.why())
		}
	}
	coreRequests := func() int {
		resp, err := client.Get(h.sandbox + "/_sandbox/requests?limit=0&path=/sessionm/core/*")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var j struct{ Requests []any }
		if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
			t.Fatal(err)
		}
		return len(j.Requests)
	}
	waitFor(t, "the first event to be delivered", func() bool { return coreRequests() == 1 })

	for i, tt := range []struct{ line, want string }{
		{"rate_limit: 1 per m", conns + `:13:17: connections.sessionm_core.rate_limit: "1 per m" is not a rate limit; write requests/period`},
		{"rate_limt: 1/m", conns + `:13:5: connections.sessionm_core.rate_limt: unknown key "rate_limt"`},
	} {
		if err := os.WriteFile(conns, []byte(withCore(tt.line)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reload's log line", func() bool {
			return strings.Count(e.stderr.String(), "reloaded, with files rejected") == i+1
		})
		var line string
		for _, l := range strings.Split(e.stderr.String(), "\n") {
			if strings.Contains(l, "reloaded, with files rejected") {
				line = l // the last
			}
		}
		var problems string
		if m := regexp.MustCompile(`problems=("(?:[^"\\]|\\.)*")`).FindStringSubmatch(line); m != nil {
			problems, _ = strconv.Unquote(m[1])
		}
		if !strings.Contains(line, "ordered-tags: rejected") || strings.Contains(line, "connection sessionm_core changed") || strings.Count(problems, tt.want) != 1 {
			t.Errorf("%s: the log line does not reject ordered-tags, naming the problem once (%q) in its problems: %s", tt.line, tt.want, line)
		}
		st, err := fetchStatus(client, admin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Pipelines {
			if p.Name == "ordered-tags" && (p.State != "rejected" || p.Version != running || !slices.ContainsFunc(p.Problems, func(s string) bool { return strings.Contains(s, tt.want) })) {
				t.Errorf("%s: status of ordered-tags: %+v", tt.line, p)
			}
		}
		// Without its 1/m, the connection would send the two waiting
		// events at once.
		time.Sleep(300 * time.Millisecond)
		if n := coreRequests(); n != 1 {
			t.Fatalf("%s: %d requests to SessionM Core: the running rate limit was dropped", tt.line, n)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: it costs a passing test nothing, and CI's machine, with
	// other packages' tests beside, is slower than this one.
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkReloadLatency measures how long a saved edit takes to become the
// running version (file written to /status showing the new version),
// with the default --reload-quiet of 100 ms, while the engine runs with its
// in-process sandbox. It reports the median and p99.
//
//	go test -run '^$' -bench ReloadLatency -benchtime 100x ./cmd/engine
func BenchmarkReloadLatency(b *testing.B) {
	bin := buildEngine(b)
	dir := copyDir(b, "pipelines")
	data := b.TempDir()
	c := startChild(b, "engine run", bin, "run", "--sandbox", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data", data, "--log-level", "warn", dir)
	if !c.stdout.waitFor("Stop with Ctrl-C.", c.exited, 30*time.Second) {
		b.Fatalf("engine run did not start: %v", c.exitErr())
	}
	admin := adminOf(b, &engineRun{child: c})
	client := &http.Client{Timeout: 5 * time.Second}
	file := filepath.Join(dir, "offer-issued-to-braze-campaign.yaml")
	raw, _ := os.ReadFile(file)
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		before, err := fetchStatus(client, admin)
		if err != nil {
			b.Fatal(err)
		}
		old, _ := before.versionOf("offer-issued-to-braze-campaign")
		content := fmt.Sprintf("# edit %d\n%s", i, raw)
		written := time.Now()
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		for {
			st, err := fetchStatus(client, admin)
			if err != nil {
				b.Fatal(err)
			}
			if v, state := st.versionOf("offer-issued-to-braze-campaign"); v != old && state == "running" {
				break
			}
			if time.Since(written) > 10*time.Second {
				b.Fatalf("edit %d was not live after 10 s", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took = append(took, time.Since(written))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[(len(took)*99+99)/100-1].Microseconds())/1000, "p99-ms")
}

// A negative --reload-quiet or --rescan is a usage error, found before
// anything starts: the --addr no one can listen on would fail later, with
// exit 1.
func TestRunRejectsNegativeReloadTimes(t *testing.T) {
	for _, tt := range []struct{ flag, want string }{
		{"--reload-quiet", "--reload-quiet is -1s; it is how long changed files must be left alone"},
		{"--rescan", "--rescan is -1s; it is how often the folders are rescanned, 0 for never"},
	} {
		_, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--data", t.TempDir(), "--addr", "127.0.0.1:-1", "--admin-addr", "",
			tt.flag, "-1s", "pipelines/")
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s -1s: code %d, %q; want 2 and %q", tt.flag, code, stderr, tt.want)
		}
	}
}

// A reload waits for the most recently changed file.
func TestUnsettled(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	const quiet = 100 * time.Millisecond
	for _, tt := range []struct {
		name    string
		changed map[string]time.Time
		want    time.Duration
	}{
		{"nothing changed", map[string]time.Time{}, 0},
		{"all quiet", map[string]time.Time{"a.yaml": now.Add(-150 * time.Millisecond), "b.yaml": now.Add(-quiet)}, 0},
		{"one still busy", map[string]time.Time{
			"a.yaml": now.Add(-150 * time.Millisecond), // quiet long enough
			"b.yaml": now.Add(-40 * time.Millisecond),  // 60 ms to go
			"c.yaml": now.Add(-90 * time.Millisecond),  // 10 ms to go
		}, 60 * time.Millisecond},
		{"just changed", map[string]time.Time{"a.yaml": now}, quiet},
	} {
		if got := unsettled(tt.changed, quiet, 0, now, nil); got != tt.want {
			t.Errorf("%s: wait %v, want %v", tt.name, got, tt.want)
		}
	}
	// A file that is gone waits for goneQuiet, the others for quiet.
	gone := func(file string) bool { return file == "gone.yaml" }
	changed := map[string]time.Time{"gone.yaml": now.Add(-500 * time.Millisecond), "here.yaml": now.Add(-50 * time.Millisecond)}
	if got := unsettled(changed, quiet, 2*time.Second, now, gone); got != 1500*time.Millisecond {
		t.Errorf("a file gone for 500 ms with a removal quiet of 2 s: wait %v, want 1.5s", got)
	}
	changed["gone.yaml"] = now.Add(-3 * time.Second)
	if got := unsettled(changed, quiet, 2*time.Second, now, gone); got != 50*time.Millisecond {
		t.Errorf("a file gone for 3 s beside one changed 50 ms ago: wait %v, want 50ms", got)
	}
}

// The fingerprint changes with any pipeline file's content, name or
// presence, and not with files a load does not read.
func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	loader := &engine.Loader{}
	fp := func(paths ...string) string { return fingerprint(loader.Inputs(paths)) }
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "x: 1")
	base := fp(dir)
	write("notes.txt", "not read")
	write(".a.yaml.swp", "an editor's")
	if fp(dir) != base {
		t.Fatal("files a load does not read changed the fingerprint")
	}
	for _, change := range []func(){
		func() { write("a.yaml", "x: 2") },
		func() { write("b.yml", "y: 1") },
		func() { os.Rename(filepath.Join(dir, "b.yml"), filepath.Join(dir, "c.yml")) },
		func() { os.Remove(filepath.Join(dir, "c.yml")); write("a.yaml", "x: 1") },
	} {
		before := fp(dir)
		change()
		if fp(dir) == before {
			t.Fatal("a change left the fingerprint as it was")
		}
	}
	if fp(dir) != base {
		t.Fatal("the same files gave another fingerprint")
	}
	if got := watchedFolders([]string{dir, filepath.Join(dir, "a.yaml"), dir + "/"}); !slices.Equal(got, []string{dir}) {
		t.Fatalf("watched folders %v", got)
	}
}

// A pipeline named as a file reads the connections.yaml next to it (or the
// --connections file), and secrets from --secrets-dir: editing one of
// those changes the fingerprint, so the watcher and the rescan reload it.
func TestFingerprintCoversConnectionsFiles(t *testing.T) {
	dir, other, secretsDir := t.TempDir(), t.TempDir(), t.TempDir()
	pipeline := filepath.Join(dir, "a.yaml")
	for _, f := range []string{pipeline, filepath.Join(dir, "connections.yaml"), filepath.Join(other, "conns.yaml"), filepath.Join(secretsDir, "API_TOKEN")} {
		if err := os.WriteFile(f, []byte("x: 1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		loader *engine.Loader
		edit   string
	}{
		{&engine.Loader{}, filepath.Join(dir, "connections.yaml")},
		{&engine.Loader{ConnectionsFile: filepath.Join(other, "conns.yaml")}, filepath.Join(other, "conns.yaml")},
		{&engine.Loader{Resolver: secrets.NewResolver(nil, secretsDir, &secrets.Masker{})}, filepath.Join(secretsDir, "API_TOKEN")},
	} {
		before := fingerprint(tt.loader.Inputs([]string{pipeline}))
		if err := os.WriteFile(tt.edit, []byte("x: 2"), 0o644); err != nil {
			t.Fatal(err)
		}
		if fingerprint(tt.loader.Inputs([]string{pipeline})) == before {
			t.Errorf("editing %s left the fingerprint of %s as it was", tt.edit, pipeline)
		}
		if got := watchedFolders(slices.Concat([]string{pipeline}, tt.loader.Inputs([]string{pipeline}))); !slices.Contains(got, filepath.Dir(tt.edit)) {
			t.Errorf("watched folders %v leave out %s", got, filepath.Dir(tt.edit))
		}
	}
}

// recorder is an applier that keeps the files each reload read.
type recorder struct {
	mu    sync.Mutex
	reads [][]string
}

func (r *recorder) Apply(proj *engine.Project) runner.ReloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, slices.Clone(proj.Files))
	return runner.ReloadReport{At: time.Now(), OK: true}
}

// read is the files of each reload so far, oldest first.
func (r *recorder) read() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads)
}

// startReloader watches paths (with the sandbox settings) until the test
// ends; its reloads go to the recorder and its log to the buffer.
func startReloader(t *testing.T, quiet, rescan time.Duration, paths ...string) (*recorder, *syncBuffer) {
	t.Helper()
	return startReloaderWith(t, configFlags{envFiles: listFlag{"examples/sandbox.env"}}, quiet, rescan, paths...)
}

func startReloaderWith(t *testing.T, cf configFlags, quiet, rescan time.Duration, paths ...string) (*recorder, *syncBuffer) {
	t.Helper()
	return startTunedReloader(t, cf, func(rl *reloader) { rl.quiet, rl.rescan = quiet, rescan }, paths...)
}

// startTunedReloader is startReloaderWith with its times set by tune.
func startTunedReloader(t *testing.T, cf configFlags, tune func(*reloader), paths ...string) (*recorder, *syncBuffer) {
	t.Helper()
	loader, _, err := cf.loader()
	if err != nil {
		t.Fatal(err)
	}
	rec, log := &recorder{}, newSyncBuffer()
	rl := &reloader{paths: paths, loader: loader, runner: rec, log: slog.New(slog.NewTextHandler(log, nil)),
		watch: true, last: fingerprint(loader.Inputs(paths))}
	tune(rl)
	ctx, cancel := context.WithCancel(context.Background())
	if err := rl.run(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); rl.stopped.Wait() })
	return rec, log
}

// A reload that was asked for (SIGHUP, POST /-/reload) writes its log
// line even when nothing changed, so whoever asked sees it was done; a
// rescan that finds nothing new writes none, or the log would fill.
func TestReloadLogsNoChangeWhenAsked(t *testing.T) {
	for _, tt := range []struct {
		trigger string
		force   bool
		want    string // "" for no log line
	}{
		{"SIGHUP", true, `msg=reloaded trigger=SIGHUP changes="no change"`},
		{"POST /-/reload", true, `msg=reloaded trigger="POST /-/reload" changes="no change"`},
		{"rescan", false, ""},
		{"file change", false, ""},
	} {
		t.Run(tt.trigger, func(t *testing.T) {
			cf := configFlags{envFiles: listFlag{"examples/sandbox.env"}}
			loader, _, err := cf.loader()
			if err != nil {
				t.Fatal(err)
			}
			paths := []string{"pipelines/"}
			var log bytes.Buffer
			rl := &reloader{paths: paths, loader: loader, runner: &recorder{}, log: slog.New(slog.NewTextHandler(&log, nil)),
				last: fingerprint(loader.Inputs(paths))}
			rl.reload(tt.trigger, tt.force)
			lines := strings.Count(log.String(), "\n")
			switch {
			case tt.want == "" && lines != 0:
				t.Errorf("logged %q, want nothing", log.String())
			case tt.want != "" && (lines != 1 || !strings.Contains(log.String(), tt.want)):
				t.Errorf("logged %q, want one line with %q", log.String(), tt.want)
			}
		})
	}
}

// A secret file rewritten, as a rotation does, is reloaded like an edit.
func TestReloadFollowsTheSecretsFolder(t *testing.T) {
	secretsDir := t.TempDir()
	token := filepath.Join(secretsDir, "SESSIONM_WEBHOOK_TOKEN")
	if err := os.WriteFile(token, []byte("token-a"), 0o600); err != nil {
		t.Fatal(err)
	}
	cf := configFlags{envFiles: listFlag{"examples/sandbox.env"}, secretsDir: secretsDir}
	rec, _ := startReloaderWith(t, cf, 50*time.Millisecond, 0, copyDir(t, "pipelines"))
	if err := os.WriteFile(token, []byte("token-b"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload of the rotated secret", func() bool { return len(rec.read()) > 0 })
}

// A file the loader does not read, written without pause next to the
// pipelines (a log), does not hold an edit's reload back; nor does a
// --secrets-dir that is not there stop the watching.
func TestReloadPassesOverFilesItDoesNotRead(t *testing.T) {
	dir := copyDir(t, "pipelines")
	cf := configFlags{envFiles: listFlag{"examples/sandbox.env"}, secretsDir: filepath.Join(t.TempDir(), "no", "such")}
	rec, _ := startReloaderWith(t, cf, 100*time.Millisecond, 0, dir)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				f, err := os.OpenFile(filepath.Join(dir, "engine.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err == nil {
					f.WriteString("a log line\n")
					f.Close()
				}
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	f, err := os.OpenFile(filepath.Join(dir, "offer-issued-to-braze-campaign.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = f.WriteString("# an edit\n"); f.Close() != nil || err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the edit's reload while a log is written", func() bool { return len(rec.read()) > 0 })
}

// A file moved away and back within the quiet period, while another file's
// change settles, is not read as deleted: its pipeline would be removed
// and its webhooks answered 404 until the next reload.
func TestReloadWaitsForEveryChangedFile(t *testing.T) {
	// Wide margins: the machine may be busy (a helper's stress run named
	// 1 s, with a 0.4 s margin, the next likely flake).
	const quiet = 2 * time.Second
	dir := copyDir(t, "pipelines")
	edited := filepath.Join(dir, "offer-issued-to-braze-campaign.yaml")
	moved := filepath.Join(dir, "braze-segment-to-sessionm-tags.yaml")
	away := filepath.Join(t.TempDir(), "away.yaml")
	rec, log := startReloader(t, quiet, 0, dir)

	f, err := os.OpenFile(edited, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("# an edit\n")
	if f.Close(); err != nil {
		t.Fatal(err)
	}
	// The edited file is quiet at 2 s; the moved one is away from 1 s to
	// 2.2 s, less than the quiet period.
	time.Sleep(quiet / 2)
	if err := os.Rename(moved, away); err != nil {
		t.Fatal(err)
	}
	time.Sleep(quiet * 6 / 10)
	if err := os.Rename(away, moved); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload of the edit", func() bool { return len(rec.read()) > 0 })
	for i, files := range rec.read() {
		if !slices.Contains(files, moved) {
			t.Errorf("reload %d read %s without %s, away for less than --reload-quiet: %v\n%s", i+1, dir, filepath.Base(moved), files, log)
		}
	}
}

// A deleted file is reloaded as deleted only once it has stayed gone for
// --removal-quiet: rm then cp (a deploy script, a checkout) on a busy
// machine left gaps longer than --reload-quiet, and the pipeline was
// removed, its webhooks answered 404, until the file was read again.
func TestReloadWaitsLongerForADeletedFile(t *testing.T) {
	// Wide margins, for a busy machine: the file is away for 1 s, five
	// times --reload-quiet and a fifth of --removal-quiet.
	const quiet, goneQuiet, away = 200 * time.Millisecond, 5 * time.Second, time.Second
	dir := copyDir(t, "pipelines")
	deleted := filepath.Join(dir, "braze-segment-to-sessionm-tags.yaml")
	raw, err := os.ReadFile(deleted)
	if err != nil {
		t.Fatal(err)
	}
	cf := configFlags{envFiles: listFlag{"examples/sandbox.env"}}
	rec, log := startTunedReloader(t, cf, func(rl *reloader) { rl.quiet, rl.goneQuiet = quiet, goneQuiet }, dir)

	if err := os.Remove(deleted); err != nil {
		t.Fatal(err)
	}
	time.Sleep(away)
	// Written back changed, so that there is a reload to wait for.
	if err := os.WriteFile(deleted, append(raw, "# written back\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload of the file written back", func() bool { return len(rec.read()) > 0 })
	for i, files := range rec.read() {
		if !slices.Contains(files, deleted) {
			t.Errorf("reload %d read %s without %s, gone for %v of --removal-quiet %v\n%s", i+1, dir, filepath.Base(deleted), away, goneQuiet, log)
		}
	}

	// Gone for good: read as deleted, once --removal-quiet is over.
	reloads := len(rec.read())
	removedAt := time.Now()
	if err := os.Remove(deleted); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload without the deleted file", func() bool { return len(rec.read()) > reloads })
	if took := time.Since(removedAt); took < goneQuiet {
		t.Errorf("the deleted file was reloaded as deleted after %v, before --removal-quiet %v", took, goneQuiet)
	}
	if files := rec.read()[reloads]; slices.Contains(files, deleted) {
		t.Errorf("the reload after the deletion read %s: %v", filepath.Base(deleted), files)
	}
}

// A pipeline folder deleted and made again, renamed and replaced, or
// swapped behind a symlink is watched again: later edits are reloaded at
// once, not at the next --rescan (0 here: never).
func TestReloadWatchesAReplacedFolderAgain(t *testing.T) {
	swapLink := func(t *testing.T, link string) (old string) {
		old, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(copyDir(t, "pipelines"), link+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".new", link); err != nil {
			t.Fatal(err)
		}
		return old
	}
	for _, tt := range []struct {
		name   string
		linked bool // the folder named is a symlink to the pipelines
		rescan time.Duration
		swap   func(t *testing.T, path string, log *syncBuffer)
	}{
		{"rm -rf and cp -r", false, 0, func(t *testing.T, path string, _ *syncBuffer) {
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			copyFiles(t, "pipelines", path)
		}},
		{"renamed and another moved in", false, 0, func(t *testing.T, path string, _ *syncBuffer) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(copyDir(t, "pipelines"), path); err != nil {
				t.Fatal(err)
			}
		}},
		{"gone for a while", false, 0, func(t *testing.T, path string, log *syncBuffer) {
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			if !log.waitFor("a pipeline folder is gone", nil, 10*time.Second) {
				t.Fatalf("no warning that the watch is lost:\n%s", log)
			}
			copyFiles(t, "pipelines", path)
		}},
		{"symlink swapped, the old folder deleted", true, 0, func(t *testing.T, path string, _ *syncBuffer) {
			if err := os.RemoveAll(swapLink(t, path)); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink swapped, the old folder kept", true, 200 * time.Millisecond, func(t *testing.T, path string, _ *syncBuffer) {
			swapLink(t, path) // no notice: the rescan finds it
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p")
			if tt.linked {
				if err := os.Symlink(copyDir(t, "pipelines"), path); err != nil {
					t.Fatal(err)
				}
			} else {
				copyFiles(t, "pipelines", path)
			}
			rec, log := startReloader(t, 100*time.Millisecond, tt.rescan, path)
			tt.swap(t, path, log)
			if !log.waitFor("watching the pipeline folder again", nil, 10*time.Second) {
				t.Fatalf("the folder was not watched again:\n%s", log)
			}
			extra := filepath.Join(path, "extra.yaml")
			if err := os.WriteFile(extra, []byte("name: extra\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a reload of a file added after the swap", func() bool {
				reads := rec.read()
				return len(reads) > 0 && slices.Contains(reads[len(reads)-1], extra)
			})
		})
	}
}

// A Kubernetes ConfigMap volume: the folder named holds x.yaml -> ..data/x.yaml,
// and an update swaps the ..data symlink to a new timestamped folder (rename
// of ..data_tmp over ..data), then removes the old folder. No .yaml name is
// touched, so the reloader must treat ..data as a change (as the secrets
// folder does). With --rescan 0 the update is never reloaded.
func TestReloadFollowsAConfigMapUpdate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	v1 := filepath.Join(dir, "..2026_01_01_00_00_00.1")
	copyFiles(t, "pipelines", v1)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Base(v1), filepath.Join(dir, "..data")))
	entries, err := os.ReadDir(v1)
	must(err)
	for _, e := range entries {
		must(os.Symlink(filepath.Join("..data", e.Name()), filepath.Join(dir, e.Name())))
	}
	rec, log := startReloader(t, 50*time.Millisecond, 0, dir)

	v2 := filepath.Join(dir, "..2026_01_01_00_01_00.2")
	copyFiles(t, "pipelines", v2)
	f := filepath.Join(v2, "offer-issued-to-braze-campaign.yaml")
	raw, err := os.ReadFile(f)
	must(err)
	must(os.WriteFile(f, append(raw, []byte("# v2\n")...), 0o644))
	must(os.Symlink(filepath.Base(v2), filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(os.RemoveAll(v1))

	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if len(rec.read()) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("a ConfigMap update (..data swapped) was not reloaded within 3 s (--rescan 0):\n%s", log)
}

// applyFunc makes a func an applier.
type applyFunc func(*engine.Project) runner.ReloadReport

func (f applyFunc) Apply(proj *engine.Project) runner.ReloadReport { return f(proj) }

// Each warning a reload names is a log line of its own, as a route
// without auth is at the start: with --log-format json, one object each.
func TestReloadLogsItsWarnings(t *testing.T) {
	cf := configFlags{envFiles: listFlag{"examples/sandbox.env"}}
	loader, _, err := cf.loader()
	if err != nil {
		t.Fatal(err)
	}
	warnings := []string{"p.yaml: warning: POST /x: " + engine.OpenRouteWarning, "q.yaml:3:5: warning: steps[0].name: odd"}
	paths := []string{"pipelines/"}
	var log bytes.Buffer
	rl := &reloader{paths: paths, loader: loader, log: slog.New(slog.NewJSONHandler(&log, nil)), last: fingerprint(loader.Inputs(paths)),
		runner: applyFunc(func(*engine.Project) runner.ReloadReport {
			return runner.ReloadReport{At: time.Now(), OK: true, Warnings: warnings}
		})}
	rl.reload("SIGHUP", true)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var entry struct{ Level, Msg, Warning string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if entry.Level == "WARN" && entry.Msg == "a reloaded file has a warning" {
			got = append(got, entry.Warning)
		}
	}
	if !slices.Equal(got, warnings) {
		t.Fatalf("logged %q, want a line for each of %q", log.String(), warnings)
	}
}
