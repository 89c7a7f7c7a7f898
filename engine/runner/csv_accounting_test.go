package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
)

// wholeBackoff has retries wait their whole backoff, without jitter: a
// test that stops the engine while rows wait in the inbox has them all
// still there (with jitter, one could be retried, and delivered, first).
func wholeBackoff(o *runner.Options) { o.Random = func() float64 { return 1 } }

// leaveFiveRowsQueued imports file's 60 rows with the first 5 answered
// 503, and stops the engine while those wait in the inbox for a retry
// after backoff; it returns the sandbox's URL for the next run.
func leaveFiveRowsQueued(t *testing.T, data, file string, backoff time.Duration) string {
	t.Helper()
	h := start(t, setup{users: 100, dataDir: data, tweak: csvBackoff(backoff), opts: wholeBackoff})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":5}`)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	if d := h.store.Depth(csvPipeline); d != 5 {
		t.Fatalf("%d rows in the inbox, want 5", d)
	}
	sb := h.sbURL
	h.stop()
	return sb
}

// Rows an earlier run left in the inbox settle in this run (counted in
// Earlier); the file is then named twice (--csv F --csv F, or a --csv
// file that also sits in the inbox folder). The Earlier outcomes must
// stay in the summary.
func TestCSVEarlierOutcomesSurviveASecondImport(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 60, 0)
	sb := leaveFiveRowsQueued(t, data, file, 500*time.Millisecond)

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

// An import stopped half-way leaves rows in the inbox for their retry;
// the file is imported again, resuming after them. Those rows were read
// and sent by the first import, so they count in its record: they were
// counted in the second's, which then had more outcomes than rows sent.
func TestCSVRowsAStoppedImportLeftCountInIt(t *testing.T) {
	h := start(t, setup{users: 401, tweak: csvBackoff(time.Second), opts: wholeBackoff})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":5}`)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"20ms"}`)
	file := writeCSV(t, t.TempDir(), 400, 0)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := h.r.ImportCSV(ctx, csvPipeline, file)
		first <- err
	}()
	h.eventually("retries queued", func() bool { return h.store.Depth(csvPipeline) == 5 })
	cancel()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The rows in flight settle in the first import before the second
	// begins; the 5 retries wait for their second.
	h.eventually("the first import's rows settled or queued", func() bool {
		p := h.r.CSVImports()[0]
		return p.Done()+h.store.Depth(csvPipeline) == p.Queued
	})
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	h.control("DELETE", "/faults", "")
	h.drained()
	h.eventually("every row counted", func() bool {
		n := 0
		for _, p := range h.r.CSVImports() {
			n += p.Done()
		}
		return n >= 400
	})
	h.eachRowDeliveredOnce(400)
	ps := h.r.CSVImports()
	if len(ps) != 2 {
		t.Fatalf("records %+v; want two", ps)
	}
	for i, p := range ps {
		if p.Done() != p.Queued || p.Rows != p.Queued+p.Skipped+p.Broken || p.Earlier != (runner.RowOutcomes{}) {
			t.Errorf("import %d: %d rows read, %d sent, %d handled before, %d with an outcome, %+v from elsewhere; want every row sent to have one outcome here", i+1, p.Rows, p.Queued, p.Skipped, p.Done(), p.Earlier)
		}
	}
	if ps[0].Queued+ps[1].Queued != 400 {
		t.Errorf("%d and %d rows sent; want 400 in all", ps[0].Queued, ps[1].Queued)
	}
}

// oneAttempt has the CSV pipeline make one attempt per row, so a 5xx
// fault makes a dead letter that a replay can deliver.
func oneAttempt(p *engine.Pipeline) {
	if p.Name == csvPipeline {
		p.Delivery.Attempts = 1
	}
}

// importWithThreeDeadLetters imports 60 rows in one attempt each, the
// first three answered 503, so 57 are delivered and 3 dead-lettered.
func importWithThreeDeadLetters(t *testing.T) *harness {
	t.Helper()
	h := start(t, setup{users: 100, tweak: oneAttempt})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":3}`)
	file := writeCSV(t, t.TempDir(), 60, 0)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	if p := h.r.CSVImports()[0]; p.Delivered != 57 || p.Failed != 3 {
		t.Fatalf("progress %+v; the test needs 57 rows delivered and 3 dead-lettered", p)
	}
	return h
}

// The "CSV file imported" line counts the dead-lettered rows, as the
// summary at stop does: without them its figures did not add up to the
// rows sent.
func TestCSVImportedLogCountsDeadLetters(t *testing.T) {
	h, logs := debugLogs(t, setup{users: 100, tweak: oneAttempt})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":3}`)
	file := writeCSV(t, t.TempDir(), 60, 0)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	var imported map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line["msg"] == "CSV file imported" {
			imported = line
		}
	}
	if imported == nil {
		t.Fatalf("no \"CSV file imported\" line in:\n%s", logs)
	}
	for key, want := range map[string]float64{"sent": 60, "delivered": 57, "dead_lettered": 3} {
		if imported[key] != want {
			t.Errorf("%s = %v, want %v; line %v", key, imported[key], want, imported)
		}
	}
}

// replayAll replays every dead letter of the CSV pipeline through the
// admin listener, as curl -X POST .../dlq/{id}/replay does while the
// engine runs.
func (h *harness) replayAll() {
	h.t.Helper()
	dls, err := h.store.DeadLetters(inbox.DeadFilter{Pipeline: csvPipeline})
	if err != nil || len(dls) == 0 {
		h.t.Fatalf("no dead letters to replay (%v)", err)
	}
	admin := h.admin()
	for _, dl := range dls {
		if a := do(h.t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, dl.ID), "", nil); a.status != 200 {
			h.t.Fatalf("replay %d: %d %s", dl.ID, a.status, a.body)
		}
	}
}

// A row dead-lettered during an import and replayed while the engine
// runs has one outcome in the summary: its dead letter is taken back out
// and what became of the replay is counted instead. It was counted
// twice: 60 delivered and 3 dead-lettered of 60 rows sent.
func TestCSVReplayedDeadLetterIsCountedOnce(t *testing.T) {
	for _, tc := range []struct {
		name              string
		failAgain         bool
		delivered, failed int
	}{
		{"delivered", false, 60, 0},
		{"dead-lettered again", true, 57, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := importWithThreeDeadLetters(t)
			if tc.failAgain {
				h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":3}`)
			}
			requests := len(h.journal("/sessionm/core/*"))
			h.replayAll()
			h.drained()
			h.eventually("the replays answered", func() bool { return len(h.journal("/sessionm/core/*")) == requests+3 })
			h.eventually("the replays counted", func() bool {
				p := h.r.CSVImports()[0]
				return p.Done()+p.Earlier.Delivered+p.Earlier.Failed >= 60
			})
			ps := h.r.CSVImports()
			if p := ps[0]; len(ps) != 1 || p.Queued != 60 || p.Delivered != tc.delivered || p.Failed != tc.failed || p.Earlier != (runner.RowOutcomes{}) || !p.Settled() {
				t.Errorf("records %+v; want one: 60 sent, %d delivered, %d dead-lettered", ps, tc.delivered, tc.failed)
			}
		})
	}
}

// Past the bound on the dead letters noted, a replay counts apart: the
// first dead letter's replay replaces its count, the others' add to
// Earlier, and memory stays bounded.
func TestCSVReplayPastTheNotedDeadLettersCountsApart(t *testing.T) {
	runner.SetMaxCSVDeadNoted(t, 1)
	h := importWithThreeDeadLetters(t)
	h.replayAll()
	h.drained()
	h.eventually("the replays counted", func() bool {
		p := h.r.CSVImports()[0]
		return p.Delivered+p.Earlier.Delivered == 60
	})
	if p := h.r.CSVImports()[0]; p.Delivered != 58 || p.Failed != 2 || p.Earlier.Delivered != 2 {
		t.Errorf("progress %+v; want 58 delivered and 2 dead-lettered among the rows sent, 2 replays delivered apart", p)
	}
}

// A dead letter an earlier run made, replayed in this one, is a row from
// elsewhere: counted apart (Earlier), not as one this run sent.
func TestCSVReplayOfAnEarlierRunsDeadLetterCountsApart(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 60, 0)
	h := start(t, setup{users: 100, dataDir: data, tweak: oneAttempt})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":2}`)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	sb := h.sbURL
	h.stop()

	h2 := start(t, setup{users: 100, dataDir: data, sandbox: sb})
	if p, err := h2.r.ImportCSV(context.Background(), csvPipeline, file); err != nil || p.Skipped != 60 {
		t.Fatalf("second run's import: %+v %v; want the 60 rows handled before", p, err)
	}
	h2.replayAll()
	h2.drained()
	h2.eventually("the replayed rows counted", func() bool {
		p := h2.r.CSVImports()[0]
		return p.Delivered+p.Earlier.Delivered >= 2
	})
	h2.eachRowDeliveredOnce(60)
	ps := h2.r.CSVImports()
	if p := ps[0]; len(ps) != 1 || p.Queued != 0 || p.Done() != 0 || p.Earlier != (runner.RowOutcomes{Delivered: 2}) {
		t.Errorf("records %+v; want one: nothing sent, the 2 replayed rows delivered among the earlier run's", ps)
	}
}

// The last run left rows of a file in the inbox; the file was then
// replaced by another of the same name. Those rows are not the new
// file's: they count apart, in a record of their own, whether they settle
// before the new file's import begins or while it runs.
func TestCSVEarlierRowsOfAFileReplacedSinceCountApart(t *testing.T) {
	for _, tc := range []struct {
		name         string
		settleBefore bool
	}{
		{"settled before the new file's import", true},
		{"settled while it runs", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			file := writeCSV(t, t.TempDir(), 60, 0)
			sb := leaveFiveRowsQueued(t, data, file, 2*time.Second)

			// Same name, other content: 39 rows for other users.
			var b strings.Builder
			b.WriteString("user_id,tag\n")
			for i := 61; i <= 99; i++ {
				fmt.Fprintf(&b, "load-%06d,segment_%d\n", i, i)
			}
			if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			h2 := start(t, setup{users: 100, dataDir: data, sandbox: sb, tweak: csvBackoff(2 * time.Second), opts: wholeBackoff})
			if tc.settleBefore {
				h2.drained()
				h2.eventually("the earlier rows counted", func() bool { return len(h2.r.CSVImports()) == 1 })
			}
			p, err := h2.r.ImportCSV(context.Background(), csvPipeline, file)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.settleBefore && h2.store.Depth(csvPipeline) != 5 {
				t.Fatal("the earlier rows settled before the import ended; the test needs them to wait")
			}
			h2.drained()
			h2.eventually("the earlier rows counted", func() bool {
				n := 0
				for _, p := range h2.r.CSVImports() {
					n += p.Earlier.Delivered
				}
				return n == 5
			})
			for _, q := range h2.r.CSVImports() {
				if q.Started.Equal(p.Started) {
					p = q
				}
			}
			if p.Rows != 39 || p.Queued != 39 || p.Delivered != 39 || p.Skipped != 0 || p.Earlier != (runner.RowOutcomes{}) || !p.Settled() {
				t.Errorf("the new file's record %+v; want its 39 rows sent and delivered, nothing of the old file's", p)
			}
			if ps := h2.r.CSVImports(); len(ps) != 2 {
				t.Errorf("records %+v; want the new file's and one for the old file's rows", ps)
			}
		})
	}
}
