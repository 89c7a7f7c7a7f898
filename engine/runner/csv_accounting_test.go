package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/runner"
)

// wholeBackoff has retries wait their whole backoff, without jitter: a
// test that stops the engine while rows wait in the inbox has them all
// still there (with jitter, one could be retried, and delivered, first).
func wholeBackoff(o *runner.Options) { o.Random = func() float64 { return 1 } }

// Rows an earlier run left in the inbox settle in this run (counted in
// Earlier); the file is then named twice (--csv F --csv F, or a --csv
// file that also sits in the inbox folder). The Earlier outcomes must
// stay in the summary.
func TestCSVEarlierOutcomesSurviveASecondImport(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 60, 0)
	slow := csvBackoff(500 * time.Millisecond)
	h := start(t, setup{users: 100, dataDir: data, tweak: slow, opts: wholeBackoff})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":5}`)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	if d := h.store.Depth(csvPipeline); d != 5 {
		t.Fatalf("%d rows in the inbox, want 5", d)
	}
	sb := h.sbURL
	h.stop()

	h2 := start(t, setup{users: 100, dataDir: data, sandbox: sb})
	h2.drained() // the earlier run's 5 rows delivered now
	h2.eventually("earlier outcomes counted", func() bool {
		n := 0
		for _, p := range h2.r.CSVImports() {
			n += p.Earlier.Delivered
		}
		return n == 5
	})
	for i := 0; i < 2; i++ {
		if _, err := h2.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, p := range h2.r.CSVImports() {
		n += p.Earlier.Delivered
	}
	if n != 5 {
		t.Errorf("records show %d of the earlier run's rows delivered in this run; 5 were", n)
	}
}

// order_by with retries (rows wait in memory) across a reload.
func TestCSVOrderByRetriesAcrossAReloadAddUp(t *testing.T) {
	dir := copyPipelines(t)
	yaml := filepath.Join(dir, csvPipeline+".yaml")
	editFile(t, yaml, func(s string) string {
		return strings.Replace(s, "  concurrency: 32", "  concurrency: 4\n  order_by: \"{{ event.user_id }}\"", 1)
	})
	tweak := csvBackoff(300 * time.Millisecond)
	h := start(t, setup{users: 10, dirs: []string{dir}, tweak: tweak})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":0.3,"error_status":503,"count":30}`)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"10ms"}`)
	var b strings.Builder
	b.WriteString("user_id,tag\n")
	for i := 1; i <= 200; i++ {
		if i%50 == 0 {
			fmt.Fprintf(&b, ",filtered_%d\n", i)
			continue
		}
		if i%70 == 0 {
			b.WriteString("x,y,z\n")
			continue
		}
		fmt.Fprintf(&b, "load-%06d,segment_%d\n", i%3+1, i)
	}
	file := filepath.Join(t.TempDir(), "keyed.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	done := importInBackground(h, file)
	h.eventually("some rows delivered", func() bool { return len(h.journal("/sessionm/core/*")) >= 30 })
	editFile(t, yaml, func(s string) string { return strings.Replace(s, "concurrency: 4", "concurrency: 3", 1) })
	if rep := h.r.Apply(h.load()); changeOf(rep, csvPipeline).Result != "changed" {
		t.Fatalf("reload: %+v", rep)
	}
	awaitImport(t, h, done)
	h.drained()
	p := h.r.CSVImports()[0]
	if p.Rows != 200 || p.Rows != p.Queued+p.Broken+p.Skipped || p.Done() != p.Queued || !p.Settled() || p.Broken != 2 || p.Filtered != 4 {
		t.Errorf("summary does not add up: %+v", p)
	}
}

// The pipeline is removed while it imports a file and added back at once;
// the file is imported again (a --csv file that sits in the inbox folder:
// the re-added pipeline's watcher takes it) while the removed version
// still has requests in flight. The first import's record must settle.
func TestCSVPipelineRemovedAndReaddedWhileInFlightSettles(t *testing.T) {
	dir := copyPipelines(t)
	tweak := csvBackoff(2 * time.Second)
	h := start(t, setup{users: 401, dirs: []string{dir}, tweak: tweak})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":10}`)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"1s"}`)
	file := writeCSV(t, t.TempDir(), 400, 0)
	done := importInBackground(h, file)
	h.eventually("retries queued", func() bool { return h.store.Depth(csvPipeline) >= 10 })
	time.Sleep(200 * time.Millisecond) // the next rows are in flight
	yaml := filepath.Join(dir, csvPipeline+".yaml")
	raw, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(yaml); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), csvPipeline); c == nil || c.Result != "removed" {
		t.Fatal("not removed")
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("import: %v", err)
	}
	if err := os.WriteFile(yaml, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), csvPipeline); c == nil || c.Result != "added" {
		t.Fatalf("not added: %+v", c)
	}
	again := importInBackground(h, file)
	awaitImport(t, h, again)
	h.control("DELETE", "/faults", "")
	h.drained()
	h.eventually("the first import's record settled (else --until-done waits for it for ever)", func() bool { return h.r.CSVImports()[0].Settled() })
}

// The pipeline is removed while it imports a file that a second import
// (the inbox folder's watcher) waits to take: the first import's record
// must still settle once the removed version's requests end.
func TestCSVPipelineRemovedWhileASecondImportWaitsSettles(t *testing.T) {
	dir := copyPipelines(t)
	tweak := csvBackoff(time.Minute)
	h := start(t, setup{users: 401, dirs: []string{dir}, tweak: tweak})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":10}`)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"1s"}`)
	file := writeCSV(t, t.TempDir(), 400, 0)
	first := importInBackground(h, file)
	h.eventually("retries queued", func() bool { return h.store.Depth(csvPipeline) >= 10 })
	second := importInBackground(h, file) // waits for the first
	time.Sleep(200 * time.Millisecond)
	if err := os.Remove(filepath.Join(dir, csvPipeline+".yaml")); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), csvPipeline); c == nil || c.Result != "removed" {
		t.Fatal("not removed")
	}
	<-first
	<-second
	h.eventually("every record settled (else --until-done waits for ever)", func() bool {
		for _, p := range h.r.CSVImports() {
			if !p.Settled() {
				return false
			}
		}
		return true
	})
}
