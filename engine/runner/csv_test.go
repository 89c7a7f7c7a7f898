package runner_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
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

	"github.com/loyalty-connector/engine/connectors/csvfile"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/sandbox"
)

const csvPipeline = "segment-csv-to-sessionm-tags"

// writeCSV writes n rows for generated users; row broken (1-based, 0 for
// none) has one column too many.
func writeCSV(t *testing.T, dir string, n, broken int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("user_id,tag\n")
	for i := 1; i <= n; i++ {
		if i == broken {
			b.WriteString("load-000001,too,many\n")
			continue
		}
		fmt.Fprintf(&b, "load-%06d,segment_%d\n", i, i)
	}
	path := filepath.Join(dir, "segment.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// importText imports a file of text, named name, and waits until the
// inbox is drained.
func (h *harness) importText(name, text string) (file string, p runner.CSVProgress) {
	h.t.Helper()
	file = filepath.Join(h.t.TempDir(), name)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil {
		h.t.Fatal(err)
	}
	h.drained()
	return file, p
}

// csvBackoff has the CSV pipeline wait d before each retry.
func csvBackoff(d time.Duration) func(*engine.Pipeline) {
	return func(p *engine.Pipeline) {
		if p.Name == csvPipeline {
			p.Delivery.BackoffInitial, p.Delivery.BackoffMax = d, d
		}
	}
}

func (h *harness) tagCount(user, tag string) int {
	h.t.Helper()
	d := h.control("GET", "/deliveries?user="+user, "")
	sm, _ := d["sessionm"].(map[string]any)
	tags, _ := sm["tags"].(map[string]any)
	if t, ok := tags[tag].(map[string]any); ok {
		if c, ok := t["count"].(float64); ok {
			return int(c)
		}
		return 1 // an expiring tag
	}
	return 0
}

func TestCSVImport(t *testing.T) {
	h := start(t, setup{users: 400})
	file := writeCSV(t, t.TempDir(), 300, 150)
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil {
		t.Fatal(err)
	}
	if p.Queued != 299 || p.Broken != 1 || !p.ReadDone {
		t.Fatalf("progress %+v", p)
	}
	h.drained()
	h.eventually("every row settled", func() bool {
		for _, p := range h.r.CSVImports() {
			if !p.Settled() {
				return false
			}
		}
		return true
	})
	if got := h.r.CSVImports()[0]; got.Delivered != 299 || got.Failed != 0 {
		t.Fatalf("progress %+v", got)
	}
	for _, i := range []int{1, 149, 151, 300} {
		if h.tagCount(fmt.Sprintf("load-%06d", i), fmt.Sprintf("segment_%d", i)) == 0 {
			t.Fatalf("row %d was not delivered", i)
		}
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "csv_row"})
	if len(dls) != 1 || !strings.Contains(dls[0].Error, "row 150") || !strings.Contains(string(dls[0].Event), `"row":150`) {
		t.Fatalf("broken row: %+v", dls)
	}
	if m := do(t, "GET", h.engine.URL+"/metrics", "", nil); !strings.Contains(m.body, `engine_events_dead_lettered_total{pipeline="`+csvPipeline+`",reason="csv_row"} 1`) {
		t.Fatal("the broken row's dead letter is not counted in engine_events_dead_lettered_total")
	}
	// /status names an import's figures as it names everything else.
	admin := h.admin()
	for _, field := range []string{`"pipeline":"` + csvPipeline + `"`, `"delivered":299`, `"broken":1`, `"read_done":true`, `"finished":true`, `"earlier":{"delivered":0`} {
		if st := do(t, "GET", admin.URL+"/status", "", nil); !strings.Contains(st.body, field) {
			t.Errorf("/status lacks %s: %s", field, st.body)
		}
	}

	// The same file again: recognised, nothing queued twice.
	again, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || again.Queued != 0 || again.Skipped != 300 {
		t.Fatalf("second import %+v %v", again, err)
	}
}

// A row the pipeline's filter drops is counted as filtered out, not as
// delivered: no request was made for it.
func TestCSVFilteredRowsAreCountedApart(t *testing.T) {
	h := start(t, setup{users: 10})
	file := filepath.Join(t.TempDir(), "segment.csv")
	// The filter wants a user_id; the second row has none.
	if err := os.WriteFile(file, []byte("user_id,tag\nload-000001,a\n,b\nload-000003,c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Settled() || p.Queued != 3 || p.Delivered != 2 || p.Filtered != 1 || p.Failed != 0 || p.Done() != 3 {
		t.Fatalf("progress %+v; want 3 sent, 2 delivered, 1 filtered out, settled", p)
	}
	if h.tagCount("load-000001", "a") != 1 || h.tagCount("load-000003", "c") != 1 {
		t.Fatal("a row that passed the filter was not delivered")
	}
}

// A file renamed over the one being imported, after its hash, does not
// lend it its rows: the import reads what it hashed, so the first file's
// rows are delivered under its checkpoint, and the second is imported
// when it is named.
func TestCSVFileReplacedAfterItsHash(t *testing.T) {
	h := start(t, setup{users: 20})
	dir := t.TempDir()
	first := writeCSV(t, dir, 10, 0)
	second := filepath.Join(dir, "second.csv")
	if err := os.WriteFile(second, []byte("user_id,tag\nload-000001,other_1\nload-000002,other_2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	firstHash := fileHash(t, first)
	runner.SetCSVHashed(t, func(file string) {
		runner.SetCSVHashed(t, nil)
		if err := os.Rename(second, file); err != nil {
			t.Error(err)
		}
	})
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, first)
	if err != nil || p.Queued != 10 || p.Delivered != 10 {
		t.Fatalf("import %+v %v; want the 10 rows of the file it hashed", p, err)
	}
	if h.tagCount("load-000001", "segment_1") != 1 || h.tagCount("load-000001", "other_1") != 0 {
		t.Fatal("the rows sent are not those of the file the import hashed")
	}
	var cp struct {
		Done bool `json:"done"`
	}
	if _, err := h.store.Checkpoint("csv:"+csvPipeline+":"+firstHash, &cp); err != nil || !cp.Done {
		t.Fatalf("checkpoint of the first file: %+v %v; want done", cp, err)
	}
	// The path now names the second file: not imported before.
	p, err = h.r.ImportCSV(context.Background(), csvPipeline, first)
	if err != nil || p.Queued != 2 || p.Skipped != 0 {
		t.Fatalf("import of the second file %+v %v; want its 2 rows sent", p, err)
	}
	if h.tagCount("load-000001", "other_1") != 1 {
		t.Fatal("the second file's rows were not delivered")
	}
}

// A file appended to while it is imported is read on through what was
// appended, under the checkpoint of the content it began with: it was
// failed as "changed while it was imported", every row delivered all the
// same, and importing it again as the error advised sent them all twice
// (a QA run). The whole file is known as imported after.
func TestCSVFileAppendedWhileImported(t *testing.T) {
	h := start(t, setup{users: 20})
	file := writeCSV(t, t.TempDir(), 10, 0)
	runner.SetCSVHashed(t, func(file string) {
		runner.SetCSVHashed(t, nil)
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("load-000011,segment_11\nload-000012,segment_12\n")
			f.Close()
		}
		if err != nil {
			t.Error(err)
		}
	})
	hashBefore := fileHash(t, file)
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || p.Queued != 12 || p.Rows != 12 || !p.Finished {
		t.Fatalf("import %+v %v; want the 12 rows sent, those appended too", p, err)
	}
	h.drained()
	for i := 1; i <= 12; i++ {
		if n := h.tagCount(fmt.Sprintf("load-%06d", i), fmt.Sprintf("segment_%d", i)); n != 1 {
			t.Errorf("row %d delivered %d times, want 1", i, n)
		}
	}
	var cp struct {
		Rows int  `json:"rows"`
		Done bool `json:"done"`
	}
	if _, err := h.store.Checkpoint("csv:"+csvPipeline+":"+hashBefore, &cp); err != nil || !cp.Done || cp.Rows != 12 {
		t.Fatalf("checkpoint %+v %v; want 12 rows, done", cp, err)
	}
	again, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || again.Queued != 0 || again.Skipped != 12 {
		t.Fatalf("import again %+v %v; want nothing sent", again, err)
	}
	h.drained()
	if n := len(h.journal("/sessionm/core/*")); n != 12 {
		t.Errorf("%d requests to SessionM for 12 rows, each sent once", n)
	}
}

// A file rewritten while it is imported (what was read is no longer how it
// starts) fails with the figures of what was sent (11: its first bytes
// were read from the new content, a last part of a row among them), and
// its checkpoint is not marked done.
func TestCSVFileRewrittenWhileImported(t *testing.T) {
	h := start(t, setup{users: 20})
	file := writeCSV(t, t.TempDir(), 10, 0)
	runner.SetCSVHashed(t, func(file string) {
		runner.SetCSVHashed(t, nil)
		if err := os.WriteFile(file, []byte("user_id,tag\nload-000001,other_1\nload-000002,other_2\nload-000003,other_3\nload-000004,other_4\nload-000005,other_5\nload-000006,other_6\nload-000007,other_7\nload-000008,other_8\nload-000009,other_9\nload-000010,other_10\nload-000011,other_11\n"), 0o644); err != nil {
			t.Error(err)
		}
	})
	hashBefore := fileHash(t, file)
	_, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err == nil || !strings.Contains(err.Error(), file+" was rewritten while it was imported") || !strings.Contains(err.Error(), "11 rows were sent before that was found") {
		t.Fatalf("import: %v; want the rewrite reported, with the rows sent", err)
	}
	var cp struct {
		Done bool `json:"done"`
	}
	if _, err := h.store.Checkpoint("csv:"+csvPipeline+":"+hashBefore, &cp); err != nil || cp.Done {
		t.Fatalf("checkpoint %+v %v; want it not done", cp, err)
	}
}

// A checkpoint left by an interrupted run makes the next one resume after
// the last row it queued.
func TestCSVResumesFromCheckpoint(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 50, 0)
	setCheckpoint(t, data, "csv:"+csvPipeline+":"+fileHash(t, file), map[string]any{"rows": 20})

	h := start(t, setup{users: 100, dataDir: data})
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || p.Queued != 30 || p.Skipped != 20 {
		t.Fatalf("resumed import %+v %v", p, err)
	}
	h.drained()
	if h.tagCount("load-000020", "segment_20") != 0 || h.tagCount("load-000021", "segment_21") != 1 {
		t.Fatal("rows before the checkpoint were sent again, or rows after it were not")
	}
}

// One slow row held the checkpoint back, and a kill sent again every row
// delivered after it (a QA run: 1,088 behind a row SessionM took 15 s
// over). The checkpoint also names the rows after it with an outcome,
// and the rows among them still open: a restart sends only those, and
// the rows after them. Rows 1-20 handled, but 5 and 9, up to row 30: the
// restart sends 5, 9 and 31-40.
func TestCSVResumesPastTheRowsThatHeldTheCheckpoint(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 40, 0)
	key := "csv:" + csvPipeline + ":" + fileHash(t, file)
	setCheckpoint(t, data, key, map[string]any{"rows": 4, "past": 30, "holes": []int{5, 9}})

	h := start(t, setup{users: 100, dataDir: data})
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || p.Queued != 12 || p.Skipped != 28 {
		t.Fatalf("resumed import %+v %v; want 12 sent, 28 handled before", p, err)
	}
	h.drained()
	for i := 1; i <= 40; i++ {
		want := 0
		if i == 5 || i == 9 || i > 30 {
			want = 1
		}
		if got := h.tagCount(fmt.Sprintf("load-%06d", i), fmt.Sprintf("segment_%d", i)); got != want {
			t.Errorf("row %d sent %d times, want %d", i, got, want)
		}
	}
	var cp struct {
		Rows  int   `json:"rows"`
		Done  bool  `json:"done"`
		Holes []int `json:"holes"`
	}
	if _, err := h.store.Checkpoint(key, &cp); err != nil || !cp.Done || cp.Rows != 40 || len(cp.Holes) != 0 {
		t.Errorf("checkpoint at the end %+v %v; want done, 40 rows", cp, err)
	}
}

// While a row is slow, the checkpoint written names the rows after it
// that have an outcome, and the slow one as open.
func TestCSVCheckpointNamesTheRowsPastASlowOne(t *testing.T) {
	h := start(t, setup{users: 100})
	h.control("POST", "/faults", `{"path":"/sessionm/core/priv/v1/apps/sandbox-core-key/external/users/load-000003/tags","latency":"5s"}`)
	file := writeCSV(t, t.TempDir(), 60, 0)
	done := importInBackground(h, file)
	key := "csv:" + csvPipeline + ":" + fileHash(t, file)
	var cp struct {
		Rows  int   `json:"rows"`
		Past  int   `json:"past"`
		Holes []int `json:"holes"`
	}
	// The rows after the slow one settle at their own pace (under -race
	// on a busy machine, 23 were still open at the first checkpoint past
	// 40): the one looked at is the first with few of them open.
	h.eventually("a checkpoint past the slow row, with few rows open", func() bool {
		_, err := h.store.Checkpoint(key, &cp)
		return err == nil && cp.Past >= 40 && len(cp.Holes) <= 20
	})
	if cp.Rows != 2 || !slices.Contains(cp.Holes, 3) || len(cp.Holes) > 20 {
		t.Errorf("checkpoint %+v; want rows 2, the slow row 3 among the few holes", cp)
	}
	awaitImport(t, h, done)
}

// After a restart, the end summary adds up: every row read was sent,
// broken or handled before. A broken row before the checkpoint was counted
// nowhere (10 read, 5 sent, 0 broken, 4 handled before).
func TestCSVResumedSummaryAddsUp(t *testing.T) {
	h := start(t, setup{users: 20})
	file := writeCSV(t, t.TempDir(), 10, 2)
	// An earlier run got through row 5, broken row 2 included, and stopped.
	if err := h.store.SetCheckpoint("csv:"+csvPipeline+":"+fileHash(t, file), map[string]any{"rows": 5}); err != nil {
		t.Fatal(err)
	}
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil {
		t.Fatal(err)
	}
	h.drained()
	if p.Rows != 10 || p.Queued != 5 || p.Broken != 0 || p.Skipped != 5 {
		t.Errorf("%d rows read, %d sent, %d broken, %d handled before; want 10, 5, 0 and 5", p.Rows, p.Queued, p.Broken, p.Skipped)
	}
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "csv_row"}); len(dls) != 0 {
		t.Errorf("the broken row before the checkpoint was dead-lettered again: %+v", dls)
	}
}

func TestCSVInboxFolder(t *testing.T) {
	runner.SetCSVSettle(t, 50*time.Millisecond)         // not what this test is about
	runner.SetUnterminatedWait(t, 200*time.Millisecond) // how long the empty file waits
	folder := t.TempDir()
	h := start(t, setup{users: 100, tweak: inboxAt(folder)})
	h.r.WatchCSVInboxes(10 * time.Millisecond)
	writeCSV(t, folder, 20, 0)
	if err := os.WriteFile(filepath.Join(folder, "empty.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the files filed away", func() bool {
		_, okDone := os.Stat(filepath.Join(folder, "done", "segment.csv"))
		_, okFailed := os.Stat(filepath.Join(folder, "failed", "empty.csv.error.txt"))
		return okDone == nil && okFailed == nil
	})
	h.drained()
	if h.tagCount("load-000020", "segment_20") != 1 {
		t.Fatal("the dropped file's rows were not delivered")
	}
	why, _ := os.ReadFile(filepath.Join(folder, "failed", "empty.csv.error.txt"))
	if !strings.Contains(string(why), "the file is empty") {
		t.Fatalf("error file says %q", why)
	}
	// readable by the engine's user only, as the data folder is
	if info, err := os.Stat(filepath.Join(folder, "failed", "empty.csv.error.txt")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("error file mode %v, %v; want 0600", info.Mode(), err)
	}
	// and masked, as /status is: the folder's name stands for a secret
	secret := filepath.Base(folder)
	h.masker.Add(secret)
	if err := os.WriteFile(filepath.Join(folder, "empty2.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the second empty file failed", func() bool {
		_, err := os.Stat(filepath.Join(folder, "failed", "empty2.csv.error.txt"))
		return err == nil
	})
	why, _ = os.ReadFile(filepath.Join(folder, "failed", "empty2.csv.error.txt"))
	if !strings.Contains(string(why), "/****/") || strings.Contains(string(why), "/"+secret+"/") {
		t.Errorf("error file says %q; want the secret masked", why)
	}
	for _, p := range h.r.CSVImports() {
		if strings.HasSuffix(p.File, "empty2.csv") && (p.Err == "" || strings.Contains(p.Err, "/"+secret+"/")) {
			t.Errorf("/status's CSV import error %q shows the secret", p.Err)
		}
	}

	// Taken out of failed/, fixed and dropped again, it is imported, and
	// the reason it failed before no longer stands by its name.
	if err := os.Remove(filepath.Join(folder, "failed", "empty.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folder, "empty.csv"), []byte("user_id,tag\nload-000001,fixed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the fixed file filed away", func() bool {
		_, err := os.Stat(filepath.Join(folder, "done", "empty.csv"))
		return err == nil
	})
	// removed as the file is filed, just after it shows in done/
	h.eventually("failed/empty.csv.error.txt gone once the file was imported", func() bool {
		_, err := os.Stat(filepath.Join(folder, "failed", "empty.csv.error.txt"))
		return errors.Is(err, fs.ErrNotExist)
	})
}

// An upload renamed over a dropped file while it is imported is not filed
// away with it, unread: it stays in the folder, and a later poll imports
// it.
func TestCSVInboxFileReplacedWhileImported(t *testing.T) {
	runner.SetCSVSettle(t, 50*time.Millisecond) // not what this test is about
	folder := t.TempDir()
	h := start(t, setup{users: 20, tweak: inboxAt(folder)})
	upload := "user_id,tag\nload-000001,other_1\nload-000002,other_2\n"
	staged := filepath.Join(t.TempDir(), "upload.csv")
	if err := os.WriteFile(staged, []byte(upload), 0o644); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	runner.SetCSVHashed(t, func(file string) {
		once.Do(func() {
			if err := os.Rename(staged, file); err != nil {
				t.Error(err)
			}
		})
	})
	h.r.WatchCSVInboxes(10 * time.Millisecond)
	writeCSV(t, folder, 10, 0)
	h.eventually("the upload imported and filed away", func() bool {
		done, _ := os.ReadFile(filepath.Join(folder, "done", "segment.csv"))
		return string(done) == upload && h.tagCount("load-000001", "other_1") == 1
	})
	if h.tagCount("load-000010", "segment_10") != 1 {
		t.Error("the first file's rows were not delivered")
	}
	h.stop() // the watcher is done with the hook
	if done, _ := os.ReadDir(filepath.Join(folder, "done")); len(done) != 1 {
		t.Errorf("done/ holds %d files; want the upload alone (the first file was replaced, not filed)", len(done))
	}
}

func TestCSVImportErrors(t *testing.T) {
	h := start(t, setup{})
	if _, err := h.r.ImportCSV(context.Background(), "offer-issued-to-braze-campaign", "x.csv"); err == nil || !strings.Contains(err.Error(), "does not read CSV files") {
		t.Fatalf("webhook pipeline: %v", err)
	}
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, "no/such.csv"); err == nil || !strings.Contains(err.Error(), "no/such.csv") {
		t.Fatalf("missing file: %v", err)
	}
}

// While deliveries are held up, the import reads only as far as the
// workers' window: rows go from the file to the workers, never into the
// inbox, so a large CSV is never in the inbox or in memory whole.
func TestCSVImportWaitsForDeliveries(t *testing.T) {
	rows := 2000
	h := start(t, setup{users: rows + 1})
	// Slow enough that nothing is delivered while the test looks.
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"3s"}`)
	file := writeCSV(t, t.TempDir(), rows, 0)
	done := importInBackground(h, file)
	read := func() int {
		for _, p := range h.r.CSVImports() {
			return p.Rows
		}
		return 0
	}
	h.eventually("the import to fill the workers", func() bool { return read() >= 60 })
	time.Sleep(200 * time.Millisecond)
	// 32 rows being sent, 32 waiting in the workers' channel, one being
	// handed over.
	if n := read(); n > 2*32+1 {
		t.Fatalf("%d rows read while none was delivered; the import should stop once the workers are full (65)", n)
	}
	if d := h.store.Depth(csvPipeline); d != 0 {
		t.Fatalf("%d rows in the inbox; rows go to the workers straight from the file", d)
	}
	// The progress says how far into the file the rows read reach, which
	// is what the status line estimates the rows to come from.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := h.r.CSVImports()[0]
	if through := bytesThroughLine(raw, p.Rows+1); p.Size != int64(len(raw)) || p.Bytes != through {
		t.Errorf("%d rows read: progress says %d of %d bytes, want %d of %d", p.Rows, p.Bytes, p.Size, through, len(raw))
	}
	h.control("DELETE", "/faults", "")
	awaitImport(t, h, done)
	if h.tagCount(fmt.Sprintf("load-%06d", rows), fmt.Sprintf("segment_%d", rows)) != 1 {
		t.Fatal("the last row was not delivered")
	}
	if p := h.r.CSVImports()[0]; !p.Settled() || p.Delivered != rows || p.Bytes != p.Size {
		t.Fatalf("progress when ImportCSV returned: %+v; it returns once every row has an outcome, the whole file read", p)
	}
}

// bytesThroughLine is how many bytes of raw its first n lines take up.
func bytesThroughLine(raw []byte, n int) int64 {
	at := 0
	for range n {
		at += bytes.IndexByte(raw[at:], '\n') + 1
	}
	return int64(at)
}

// fileHash is the content hash an import names its checkpoint and row ids
// after.
func fileHash(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])[:16]
}

// checkpointOf reads the checkpoint the import of file keeps.
func checkpointOf(t *testing.T, store *inbox.Store, file string) (rows int, done bool) {
	t.Helper()
	var cp struct {
		Rows int  `json:"rows"`
		Done bool `json:"done"`
	}
	if _, err := store.Checkpoint("csv:"+csvPipeline+":"+fileHash(t, file), &cp); err != nil {
		t.Fatal(err)
	}
	return cp.Rows, cp.Done
}

// A row whose delivery fails moves into the inbox with its attempt and
// next time, so it no longer holds the checkpoint back: the import is done
// while the row waits there for its retry.
func TestCSVRowRetriesFromTheInbox(t *testing.T) {
	h := start(t, setup{users: 100, tweak: csvBackoff(time.Hour)})
	// The first five tag requests fail; the rest pass.
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":5}`)
	file := writeCSV(t, t.TempDir(), 60, 0)
	// Bounded: rows that waited in memory for their retry would hold the
	// import for an hour.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := h.r.ImportCSV(ctx, csvPipeline, file)
	if err != nil {
		t.Fatal(err)
	}
	if rows, done := checkpointOf(t, h.store, file); rows != 60 || !done {
		t.Fatalf("checkpoint %d (done %v); want 60, done: the failed rows wait in the inbox", rows, done)
	}
	if p.Queued != 60 || p.Delivered != 55 || p.Settled() {
		t.Fatalf("progress %+v; want 60 sent, 55 delivered, not settled while 5 wait", p)
	}
	waiting, err := h.store.ReadAfter(csvPipeline, 0, 100)
	if err != nil || len(waiting) != 5 {
		t.Fatalf("inbox: %d rows (%v), want the 5 that failed", len(waiting), err)
	}
	for _, rec := range waiting {
		if rec.Attempts != 1 || !rec.NotAfter.After(time.Now()) || !strings.Contains(rec.ID, ":") {
			t.Errorf("row %s in the inbox: attempts %d, next %v; want 1 attempt and a retry time ahead (up to an hour, with jitter)", rec.ID, rec.Attempts, rec.NotAfter)
		}
	}
}

// A reload of the CSV pipeline while a file is imported: the rows the old
// version held without an outcome go to the new one, and every row is
// delivered once.
func TestCSVImportAcrossAReload(t *testing.T) {
	h, dir, done := slowImport(t, "50ms")
	h.eventually("some rows delivered", func() bool { return len(h.journal("/sessionm/core/*")) >= 50 })
	editFile(t, filepath.Join(dir, csvPipeline+".yaml"), func(s string) string {
		return strings.Replace(s, "concurrency: 32", "concurrency: 8", 1)
	})
	rep := h.r.Apply(h.load())
	if c := changeOf(rep, csvPipeline); c == nil || c.Result != "changed" {
		t.Fatalf("reload: %+v", rep)
	}
	h.control("DELETE", "/faults", "")
	awaitImport(t, h, done)
	h.drained()
	h.eachRowDeliveredOnce(400)
}

// eachRowDeliveredOnce checks that rows 1..n of writeCSV's file each
// reached their user once.
func (h *harness) eachRowDeliveredOnce(n int) {
	h.t.Helper()
	for i := 1; i <= n; i++ {
		if got := h.tagCount(fmt.Sprintf("load-%06d", i), fmt.Sprintf("segment_%d", i)); got != 1 {
			h.t.Fatalf("row %d delivered %d times", i, got)
		}
	}
}

// slowImport starts importing writeCSV's 400 rows, from a copy of the
// pipelines (dir, for reloads), with every SessionM call taking latency.
func slowImport(t *testing.T, latency string) (h *harness, dir string, done <-chan error) {
	dir = copyPipelines(t)
	h = start(t, setup{users: 401, dirs: []string{dir}})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"`+latency+`"}`)
	return h, dir, importInBackground(h, writeCSV(t, t.TempDir(), 400, 0))
}

// importInBackground starts ImportCSV and returns what it returns.
func importInBackground(h *harness, file string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
		done <- err
	}()
	return done
}

func awaitImport(t *testing.T, h *harness, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the import did not finish: %+v", h.r.CSVImports())
	}
}

// Two reloads while the first replaced version still has requests in
// flight: the second version is replaced before it ever starts. The import
// must neither hand rows to it nor wait for it.
func TestCSVImportAcrossTwoQuickReloads(t *testing.T) {
	h, dir, done := slowImport(t, "1s")
	h.eventually("rows handed over", func() bool {
		ps := h.r.CSVImports()
		return len(ps) > 0 && ps[0].Rows >= 60
	})
	yaml := filepath.Join(dir, csvPipeline+".yaml")
	for _, c := range []string{"8", "4"} {
		editFile(t, yaml, func(s string) string {
			return regexp.MustCompile(`concurrency: \d+`).ReplaceAllString(s, "concurrency: "+c)
		})
		if rep := h.r.Apply(h.load()); changeOf(rep, csvPipeline).Result != "changed" {
			t.Fatalf("reload: %+v", rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.control("DELETE", "/faults", "")
	awaitImport(t, h, done)
	h.eachRowDeliveredOnce(400)
}

// With order_by, the rows of one key reach SessionM in file order across
// a reload: the new version gets rows only after the old one is done, and
// the rows it gave back go first.
func TestCSVOrderByAcrossAReload(t *testing.T) {
	dir := copyPipelines(t)
	yaml := filepath.Join(dir, csvPipeline+".yaml")
	editFile(t, yaml, func(s string) string {
		return strings.Replace(s, "  concurrency: 32", "  concurrency: 4\n  order_by: \"{{ event.user_id }}\"", 1)
	})
	h := start(t, setup{users: 10, dirs: []string{dir}})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"20ms"}`)
	var b strings.Builder
	b.WriteString("user_id,tag\n")
	const rows, users = 300, 3
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&b, "load-%06d,segment_%d\n", i%users+1, i)
	}
	file := filepath.Join(t.TempDir(), "keyed.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	done := importInBackground(h, file)
	h.eventually("some rows delivered", func() bool { return len(h.journal("/sessionm/core/*")) >= 20 })
	editFile(t, yaml, func(s string) string { return strings.Replace(s, "concurrency: 4", "concurrency: 3", 1) })
	if rep := h.r.Apply(h.load()); changeOf(rep, csvPipeline).Result != "changed" {
		t.Fatalf("reload: %+v", rep)
	}
	h.control("DELETE", "/faults", "")
	awaitImport(t, h, done)
	last := map[int]int{} // user -> the last row delivered to them
	delivered := 0
	for _, e := range h.journal("/sessionm/core/*") {
		if e["status"].(float64) != 200 {
			continue
		}
		var body struct{ Tags []string }
		if err := json.Unmarshal([]byte(e["body"].(string)), &body); err != nil || len(body.Tags) != 1 {
			t.Fatalf("journal body %v: %v", e["body"], err)
		}
		var row int
		fmt.Sscanf(body.Tags[0], "segment_%d", &row)
		if row < last[row%users] {
			t.Errorf("row %d reached its user after row %d", row, last[row%users])
		}
		last[row%users] = row
		delivered++
	}
	if delivered != rows {
		t.Errorf("%d rows delivered, want %d", delivered, rows)
	}
}

// Rows an earlier run queued and delivered, and stopped before its
// checkpoint passed them, are handled: the import does not send them
// again, and settles. (They were sent again from the file; only a retry
// found their ids in the inbox.)
func TestCSVRowsAnEarlierRunHandled(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 60, 0)
	hash := fileHash(t, file)
	store, err := inbox.Open(data, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 60; i++ {
		// The earlier run's copies, delivered: only their ids remain.
		got, err := store.Append(csvPipeline, inbox.NewEvent{ID: fmt.Sprintf("%s:%d", hash, i), Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Ack(csvPipeline, got[0].Seq); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	h := start(t, setup{users: 100, dataDir: data})
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	if p := h.r.CSVImports()[0]; !p.Settled() || p.Queued != 0 || p.Skipped != 60 {
		t.Fatalf("progress %+v; want the 60 rows the earlier run handled counted as handled before, settled", p)
	}
	if d := h.store.Depth(csvPipeline); d != 0 {
		t.Fatalf("%d rows queued again", d)
	}
	if sent := h.journal("/sessionm/core/*"); len(sent) != 0 {
		t.Fatalf("%d rows sent again", len(sent))
	}
}

// A file's progress is not settled while its import runs, even when rows
// of the same file that an earlier run left in the inbox are delivered
// meanwhile and push the delivered count up: --until-done waits for the
// import itself.
func TestCSVProgressSettlesOnlyWhenTheImportIs(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 1500, 0)
	tweak := csvBackoff(time.Second)
	h := start(t, setup{users: 1600, dataDir: data, tweak: tweak})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":20}`)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"100ms"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	first, _ := h.r.ImportCSV(ctx, csvPipeline, file)
	cancel()
	left := h.store.Depth(csvPipeline)
	if first.Finished || left == 0 {
		t.Fatalf("the first run should stop half-way with retries in the inbox: %+v, %d queued", first, left)
	}
	sb := h.sbURL
	h.stop()

	h2 := start(t, setup{users: 1600, dataDir: data, sandbox: sb, tweak: tweak})
	h2.control("DELETE", "/faults", "")
	h2.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"50ms"}`)
	done := importInBackground(h2, file)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			h2.drained()
			h2.eventually("the file settled", func() bool {
				for _, p := range h2.r.CSVImports() {
					if p.File == file {
						return p.Settled()
					}
				}
				return false
			})
			// The summary adds up: the rows the first run left in the
			// inbox are among those handled before, and their outcomes
			// are counted apart from those of the rows this run sent.
			p := h2.r.CSVImports()[0]
			if p.Rows != 1500 || p.Queued+p.Skipped+p.Broken != p.Rows || p.Done() != p.Queued || p.Earlier.Delivered == 0 {
				t.Errorf("%d rows read, %d sent, %d broken, %d handled before, %d with an outcome, %+v from the first run's inbox", p.Rows, p.Queued, p.Broken, p.Skipped, p.Done(), p.Earlier)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		// Finished is the import's last step before it returns, so a
		// poll between the two may see the file settled: only settled
		// before that step is wrong.
		for _, p := range h2.r.CSVImports() {
			if p.File == file && p.Settled() && !p.Finished {
				t.Fatalf("settled while its import still runs: %+v", p)
			}
		}
	}
}

// A row with an opening quote that is never closed made encoding/csv read
// every later row into it: they were neither sent nor dead-lettered, and
// the file still counted as imported. Now the broken row alone is a dead
// letter and every other row is delivered.
func TestCSVUnclosedQuoteKeepsTheRowsAfterIt(t *testing.T) {
	h := start(t, setup{users: 40})
	var b strings.Builder
	b.WriteString("user_id,tag\n")
	for i := 1; i <= 20; i++ {
		if i == 5 {
			fmt.Fprintf(&b, "load-%06d,\"segment_%d\n", i, i) // the quote is never closed
			continue
		}
		fmt.Fprintf(&b, "load-%06d,segment_%d\n", i, i)
	}
	file, p := h.importText("segment.csv", b.String())
	if p.Rows != 20 || p.Queued != 19 || p.Broken != 1 {
		t.Errorf("rows %d, sent %d, broken %d; want 20, 19 and 1", p.Rows, p.Queued, p.Broken)
	}
	for i := 1; i <= 20; i++ {
		want := 1
		if i == 5 {
			want = 0 // a dead letter
		}
		if got := h.tagCount(fmt.Sprintf("load-%06d", i), fmt.Sprintf("segment_%d", i)); got != want {
			t.Errorf("row %d delivered %d times, want %d", i, got, want)
		}
	}
	if rows, done := checkpointOf(t, h.store, file); rows != 20 || !done {
		t.Errorf("checkpoint %d rows, done %v; want 20, true", rows, done)
	}
}

// A file saved as Windows-1252 (Excel's plain "CSV" on Windows) sent
// "caf\xe9" as the tag "caf\ufffd", with no word of it. A row that is not
// UTF-8 is a broken row: a dead letter saying so, the other rows sent.
func TestCSVRowNotUTF8IsABrokenRow(t *testing.T) {
	h := start(t, setup{users: 20})
	file, p := h.importText("latin1.csv", "user_id,tag\nload-000001,caf\xe9\nload-000002,caf\u00e9\n")
	if p.Rows != 2 || p.Queued != 1 || p.Broken != 1 {
		t.Errorf("rows %d, sent %d, broken %d; want 2, 1 and 1", p.Rows, p.Queued, p.Broken)
	}
	if h.tagCount("load-000001", "caf\ufffd") != 0 || h.tagCount("load-000002", "café") != 1 {
		t.Error("the row not UTF-8 was delivered garbled, or the UTF-8 one was not delivered")
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "csv_row"})
	want := file + `:2: row 1: column 2 ("tag", at line 2, character 13) is not UTF-8 text; the file was likely saved as Excel's plain "CSV" (Windows-1252), not "CSV UTF-8": put this row, fixed, under the header row in a new file`
	if len(dls) != 1 || !strings.HasPrefix(dls[0].Error, want) {
		t.Fatalf("dead letters %+v, want one whose error starts %q", dls, want)
	}
}

// Text not UTF-8 in a column the pipeline does not read breaks no row: a
// Latin-1 export (García, Seán in last_name) dead-lettered those rows of
// F2, which reads user_id, tag and ttl, and the advice, to import the
// fixed file again, sent its good rows again (a QA run).
func TestCSVNotUTF8InAColumnNotReadIsSent(t *testing.T) {
	h := start(t, setup{users: 20})
	_, p := h.importText("latin1.csv", "user_id,last_name,tag\nload-000001,Garc\xeda,vip\nload-000002,Lee,gold\nload-000003,Se\xe1n,vip\n")
	if p.Rows != 3 || p.Queued != 3 || p.Broken != 0 {
		t.Errorf("rows %d, sent %d, broken %d; want 3, 3 and 0", p.Rows, p.Queued, p.Broken)
	}
	for _, user := range []string{"load-000001", "load-000003"} {
		if h.tagCount(user, "vip") != 1 {
			t.Errorf("%s's row was not delivered", user)
		}
	}
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Errorf("dead letters %+v, want none", dls)
	}
}

// A file whose header row lacks a column the pipeline needs fails as a
// whole, before a row is sent: without its header row, the first row was
// read as the header, and was neither sent nor dead-lettered, and every
// other row became a template dead letter (a QA run).
func TestCSVHeaderWithoutANeededColumnFailsTheFile(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"no header row", "load-000001,vip\nload-000002,gold\n",
			":1: the header row has no column user_id, which the pipeline reads (filter, target.params.external_id); is the header row missing, or the delimiter not a comma?"},
		{"another delimiter", "user_id;tag\nload-000001;vip\n",
			`:1: the header row has no column user_id, which the pipeline reads (filter, target.params.external_id); the header row is one column, "user_id;tag": the file seems to separate its fields with a semicolon`},
		{"a name in another case", " User_ID ,tag\nload-000001,vip\n",
			`:1: the header row has no column user_id, which the pipeline reads (filter, target.params.external_id); its column "User_ID" may be meant for user_id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, setup{users: 5})
			file := filepath.Join(t.TempDir(), "export.csv")
			if err := os.WriteFile(file, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
			want := file + tc.want
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasPrefix(p.Err, want) || p.Finished || p.Rows != 0 || p.Queued != 0 {
				t.Fatalf("import: error %v, progress %+v; want a failed import, its error starting %q", err, p, want)
			}
			if rows, done := checkpointOf(t, h.store, file); rows != 0 || done {
				t.Errorf("checkpoint %d rows, done %v; want none", rows, done)
			}
			if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
				t.Errorf("dead letters %+v, want none", dls)
			}
		})
	}
}

// A row of 100 MB (one huge value) took GBs of memory, and became an event
// whose dead letter stored it whole, with the request made of it. A row
// over csvfile.MaxRowBytes is a broken row: its dead letter names the row
// and quotes its first 4 KiB only, and the rows after it are sent.
func TestCSVRowOverTheBoundIsABrokenRow(t *testing.T) {
	h := start(t, setup{users: 20})
	huge := "user_id,tag\nload-000001," + strings.Repeat("x", 2*csvfile.MaxRowBytes) + "\nload-000002,vip\n"
	file, p := h.importText("huge.csv", huge)
	if p.Rows != 2 || p.Queued != 1 || p.Broken != 1 {
		t.Errorf("rows %d, sent %d, broken %d; want 2, 1 and 1", p.Rows, p.Queued, p.Broken)
	}
	if h.tagCount("load-000002", "vip") != 1 {
		t.Error("the row after the long one was not delivered")
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "csv_row"})
	want := file + ":2: row 1: the row is 2097164 bytes long, more than the 1 MiB a row may have"
	if len(dls) != 1 || !strings.HasPrefix(dls[0].Error, want) {
		t.Fatalf("%d dead letters, want one whose error starts %q", len(dls), want)
	}
	var event map[string]any
	err := json.Unmarshal(dls[0].Event, &event)
	text, _ := event["text"].(string)
	if err != nil || len(event) != 5 || event["row"] != 1.0 || event["line"] != 2.0 || event["file"] != file || event["text_cut"] != true ||
		len(text) != 4<<10 || !strings.HasPrefix(text, "load-000001,xxx") || dls[0].Request != nil || len(dls[0].Error) > 500 {
		t.Errorf("dead letter event %.200s (%d bytes), request %v, error of %d bytes; want the file, row and line, and 4 KiB of the row marked cut", dls[0].Event, len(dls[0].Event), dls[0].Request, len(dls[0].Error))
	}
}

// A broken row's dead letter quotes the row as the file holds it, the
// start of the fix it asks for: an inbox file is in done/ by the time
// someone reads it.
func TestBrokenRowDeadLetterQuotesTheRow(t *testing.T) {
	h := start(t, setup{users: 20})
	_, p := h.importText("broken.csv", "user_id,tag\r\nload-000001,vip,extra\r\nload-000002,\"st\"ray\"\r\nload-000003,vip\r\n")
	if p.Broken != 2 || p.Queued != 1 {
		t.Fatalf("broken %d, sent %d; want 2 and 1", p.Broken, p.Queued)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "csv_row"})
	var texts []string
	for _, dl := range dls {
		var event map[string]any
		if err := json.Unmarshal(dl.Event, &event); err != nil {
			t.Fatal(err)
		}
		text, _ := event["text"].(string)
		texts = append(texts, text)
		if _, cut := event["text_cut"]; cut {
			t.Errorf("a short row marked cut: %s", dl.Event)
		}
	}
	if want := []string{"load-000001,vip,extra", `load-000002,"st"ray"`}; !slices.Equal(texts, want) {
		t.Errorf("the dead letters quote %q, want %q", texts, want)
	}
}

// A file with CR-only line endings (old Mac or Excel) was read as one
// header row: 0 rows, and the file marked imported. It fails instead,
// saying why, and is not marked imported.
func TestCSVCROnlyLineEndingsFailTheFile(t *testing.T) {
	h := start(t, setup{users: 20})
	file := filepath.Join(t.TempDir(), "mac.csv")
	if err := os.WriteFile(file, []byte("user_id,tag\rload-000001,segment_1\rload-000002,segment_2\r"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	want := file + ": the line endings are CR only"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasPrefix(p.Err, want) || p.Finished {
		t.Fatalf("import: error %v, progress %+v; want a failed import, its error starting %q", err, p, want)
	}
	if rows, done := checkpointOf(t, h.store, file); rows != 0 || done {
		t.Errorf("checkpoint %d rows, done %v; want none", rows, done)
	}
}

// A stop while rows are in flight: the rows that get their outcome during
// the grace move the checkpoint, and so do those the workers held unsent
// (they move into the inbox), so the next run sends each row once. On a
// quiet machine the rows held unsent are the last ones handed over, so
// this holds without moving them too; TestCSVRowUnsentAtAStopMovesToTheInbox
// holds a row back to make the case.
func TestCSVStopCheckpointsRowsSettledInTheGrace(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 400, 0)
	h := start(t, setup{users: 401, dataDir: data})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"300ms"}`)
	ctx, cancel := context.WithCancel(context.Background())
	imported := make(chan struct{})
	go func() {
		defer close(imported)
		_, _ = h.r.ImportCSV(ctx, csvPipeline, file)
	}()
	h.eventually("rows delivered, more in flight", func() bool {
		ps := h.r.CSVImports()
		return len(ps) > 0 && ps[0].Delivered >= 20
	})
	// As SIGTERM: engine run's context ends, then the runner stops.
	cancel()
	<-imported
	sb := h.sbURL
	h.stop()
	first := h.r.CSVImports()[0]
	if first.Done() == 0 || first.ReadDone {
		t.Fatalf("first run %+v; want it stopped half-way", first)
	}
	// Its summary adds up: the rows the import could not hand over count
	// as neither read nor sent, as the next run reads and sends them.
	if first.Rows != first.Queued+first.Broken+first.Skipped {
		t.Errorf("summary: %d rows read, %d sent, %d broken, %d handled before: %d rows neither sent nor handled",
			first.Rows, first.Queued, first.Broken, first.Skipped, first.Rows-first.Queued-first.Broken-first.Skipped)
	}

	h2 := start(t, setup{users: 401, dataDir: data, sandbox: sb})
	// Every row the first run sent is checkpointed: those delivered in the
	// grace, and those a worker held unsent when the stop began (under
	// load, one that had not reached its request, or was still in the
	// work queue), which moved into the inbox. None is sent again.
	rows, done := checkpointOf(t, h2.store, file)
	if rows != first.Queued || done {
		t.Fatalf("checkpoint %d rows (done %v) after a stop; the first run sent rows 1 to %d", rows, done, first.Queued)
	}
	h2.control("DELETE", "/faults", "")
	if p, err := h2.r.ImportCSV(context.Background(), csvPipeline, file); err != nil || p.Skipped != rows {
		t.Fatalf("second run %+v %v; want the %d checkpointed rows skipped", p, err, rows)
	}
	h2.drained()
	for i := 1; i <= 400; i++ {
		if got := h2.tagCount(fmt.Sprintf("load-%06d", i), fmt.Sprintf("segment_%d", i)); got != 1 {
			t.Fatalf("row %d delivered %d times; want once (checkpoint at row %d)", i, got, rows)
		}
	}
}

// An import whose caller gives up goes on checkpointing the rows it had
// handed over as they settle.
func TestCSVImportCancelledCheckpointsRowsInFlight(t *testing.T) {
	h := start(t, setup{users: 401})
	file := writeCSV(t, t.TempDir(), 400, 0)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"300ms"}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		p   runner.CSVProgress
		err error
	}
	imported := make(chan result, 1)
	go func() {
		p, err := h.r.ImportCSV(ctx, csvPipeline, file)
		imported <- result{p, err}
	}()
	h.eventually("rows delivered, more in flight", func() bool {
		ps := h.r.CSVImports()
		return len(ps) > 0 && ps[0].Delivered >= 20
	})
	cancel()
	res := <-imported
	if res.err != nil || res.p.Done() >= res.p.Queued {
		t.Fatalf("import %+v %v; want it stopped with rows in flight", res.p, res.err)
	}
	h.eventually("every row sent settled", func() bool {
		p := h.r.CSVImports()[0]
		return p.Done() == p.Queued
	})
	p := h.r.CSVImports()[0]
	h.eventually("the checkpoint to cover them", func() bool {
		rows, _ := checkpointOf(t, h.store, file)
		return rows == p.Done()
	})
}

// The line that reports a broken row names its pipeline, version and
// event as every line about a row does, by file, number and id (the id
// finds its dead letter). It gave the bare id, where the lines about the
// file's other rows gave "segment.csv row 1 (<id>)".
func TestCSVBrokenRowLogNamesItsEvent(t *testing.T) {
	var logs runner.LockedBuffer
	h := start(t, setup{users: 10, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	file := writeCSV(t, t.TempDir(), 5, 3)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	events := map[string][]string{} // by msg
	for _, l := range strings.Split(logs.String(), "\n") {
		var line struct {
			Msg, Pipeline, Version, Event string
		}
		if json.Unmarshal([]byte(l), &line) != nil || line.Event == "" {
			continue
		}
		if line.Pipeline != csvPipeline || line.Version == "" {
			t.Errorf("a line without its pipeline and version: %s", l)
		}
		events[line.Msg] = append(events[line.Msg], line.Event)
	}
	hash := fileHash(t, file)
	if want := []string{"segment.csv row 3 (" + hash + ":3)"}; !slices.Equal(events["broken CSV row"], want) {
		t.Errorf("broken CSV row lines name %q; want %q", events["broken CSV row"], want)
	}
	row := regexp.MustCompile(`^segment\.csv row (\d+) \(` + hash + `:(\d+)\)$`)
	for _, ev := range events["delivered"] {
		if m := row.FindStringSubmatch(ev); m == nil || m[1] != m[2] {
			t.Errorf("a delivered line names its row %q; want segment.csv row N (%s:N)", ev, hash)
		}
	}
	if len(events["delivered"]) != 4 {
		t.Errorf("%d delivered lines, want 4", len(events["delivered"]))
	}
}

// A file whose content is being imported already, under its own name (a
// --csv file that sits in the inbox folder too) or another (a second copy
// of one export), waits for that import and is then skipped as imported
// before. Both imports resumed from one checkpoint and sent the rows
// after it twice.
func TestCSVSameContentImportedOnceAtATime(t *testing.T) {
	h, _, first := slowImport(t, "20ms")
	file := h.r.CSVImports()
	h.eventually("some rows delivered", func() bool { return len(h.journal("/sessionm/core/*")) >= 20 })
	file = h.r.CSVImports()
	if len(file) != 1 {
		t.Fatalf("imports: %+v", file)
	}
	raw, err := os.ReadFile(file[0].File)
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "copy.csv")
	if err := os.WriteFile(copied, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	again, copy := importInBackground(h, file[0].File), importInBackground(h, copied)
	awaitImport(t, h, first)
	awaitImport(t, h, again)
	awaitImport(t, h, copy)
	h.drained()
	h.eachRowDeliveredOnce(400)
	for _, p := range h.r.CSVImports() {
		if p.File == copied && (p.Skipped != 400 || p.Queued != 0) {
			t.Errorf("the copy: %d rows sent, %d handled before; want 0 and 400", p.Queued, p.Skipped)
		}
	}
}

// A pipeline removed while it imports a file: the import fails, and once
// the rows the lane held have their outcome or came back, the file's
// progress settles. The rows the retiring lane gave back counted as sent
// for ever, so it never settled and --until-done never exited.
func TestCSVImportOfARemovedPipelineSettles(t *testing.T) {
	h, dir, done := slowImport(t, "20ms")
	h.eventually("some rows delivered", func() bool { return len(h.journal("/sessionm/core/*")) >= 20 })
	if err := os.Remove(filepath.Join(dir, csvPipeline+".yaml")); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), csvPipeline); c == nil || c.Result != "removed" {
		t.Fatal("not removed")
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "was removed") {
			t.Fatalf("the import returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the import did not return")
	}
	h.eventually("the file settled", func() bool {
		ps := h.r.CSVImports()
		return len(ps) == 1 && ps[0].Settled()
	})
	p := h.r.CSVImports()[0]
	if sent := len(h.journal("/sessionm/core/*")); p.Queued != sent || p.Delivered != sent {
		t.Errorf("%d rows counted as sent and %d as delivered, but %d requests were made", p.Queued, p.Delivered, sent)
	}
}

// A pipeline removed while it imports a file: the error names the row
// importing the file again resumes after, which is where the checkpoint
// ends up once the removed version's requests in flight have settled
// (the error named the checkpoint of the moment, some rows short), and
// the record says the reading stopped before the end (it said read_done
// with a quarter of the bytes read).
func TestCSVImportOfARemovedPipelineTellsWhereItResumes(t *testing.T) {
	dir := copyPipelines(t)
	h := start(t, setup{users: 401, dirs: []string{dir}})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"200ms"}`)
	file := writeCSV(t, t.TempDir(), 400, 0)
	done := importInBackground(h, file)
	h.eventually("some rows delivered", func() bool { return len(h.journal("/sessionm/core/*")) >= 40 })
	if err := os.Remove(filepath.Join(dir, csvPipeline+".yaml")); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(h.r.Apply(h.load()), csvPipeline); c == nil || c.Result != "removed" {
		t.Fatal("not removed")
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the import did not return")
	}
	m := regexp.MustCompile(`^pipeline ` + csvPipeline + ` was removed while it imported .*segment.csv; importing the file again with a pipeline named ` + csvPipeline + ` resumes after row (\d+)(?:, passing by the rows up to row \d+ that had their outcome)? \(a pipeline of another name starts at row 1: the checkpoint is the pipeline's\)$`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("the import returned %v", err)
	}
	h.eventually("the file settled", func() bool {
		ps := h.r.CSVImports()
		return len(ps) == 1 && ps[0].Settled()
	})
	resumes := func() string { rows, _ := checkpointOf(t, h.store, file); return fmt.Sprint(rows) }
	h.eventually("the checkpoint written", func() bool { return resumes() == m[1] })
	time.Sleep(100 * time.Millisecond) // five checkpoint writes
	if rows := resumes(); rows != m[1] {
		t.Errorf("the error says the next import resumes after row %s; the checkpoint, after row %s", m[1], rows)
	}
	p := h.r.CSVImports()[0]
	if p.ReadDone || p.Bytes >= p.Size || p.Err != err.Error() {
		t.Errorf("read_done %v, %d bytes read of %d, error %q; want false, fewer, and the import's error", p.ReadDone, p.Bytes, p.Size, p.Err)
	}
}

// The same path imported a second time (a --csv file that sits in a
// watched inbox folder) while the first import waits for its last rows:
// each counts in its own record. The second replaced the first's record,
// which lost the rows it had sent, and counted its late rows as its own.
func TestCSVSamePathImportedTwiceCountsApart(t *testing.T) {
	h, _, _ := slowImport(t, "20ms")
	var file string
	h.eventually("first import read the whole file", func() bool {
		ps := h.r.CSVImports()
		if len(ps) == 1 && ps[0].ReadDone && !ps[0].Finished {
			file = ps[0].File
			return true
		}
		return false
	})
	// Start a second import of the same path; keep the first's result.
	type res struct {
		p   runner.CSVProgress
		err error
	}
	second := make(chan res, 1)
	go func() {
		p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
		second <- res{p, err}
	}()
	var b res
	select {
	case b = <-second:
	case <-time.After(30 * time.Second):
		t.Fatal("second import did not return")
	}
	h.drained()
	h.eachRowDeliveredOnce(400)
	ps := h.r.CSVImports()
	sent := 0
	for _, p := range ps {
		sent += p.Queued
	}
	if sent != 400 {
		t.Errorf("records show %d rows sent in all; 400 were sent", sent)
	}
	if b.p.Delivered > b.p.Queued {
		t.Errorf("second import: %d sent but %d delivered", b.p.Queued, b.p.Delivered)
	}
}

// A file whose rows wait in the inbox for a retry, imported again under
// the same path before the retries are delivered: the retried rows settle
// in the first import's record, the one that sent them, so both records
// settle and neither counts more outcomes than rows sent.
func TestCSVRetriedRowsSettleInTheImportThatSentThem(t *testing.T) {
	h := start(t, setup{users: 100, tweak: csvBackoff(time.Second)})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":5}`)
	file := writeCSV(t, t.TempDir(), 60, 0)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	if h.store.Depth(csvPipeline) == 0 {
		t.Fatal("no row waits in the inbox for a retry; the test needs some")
	}
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	h.drained()
	h.eventually("both records settled", func() bool {
		ps := h.r.CSVImports()
		return len(ps) == 2 && ps[0].Settled() && ps[1].Settled()
	})
	if ps := h.r.CSVImports(); ps[0].Queued != 60 || ps[0].Delivered != 60 || ps[1].Queued != 0 || ps[1].Done() != 0 {
		t.Errorf("first import %d sent, %d delivered; second %d sent, %d with an outcome; want 60, 60, 0, 0", ps[0].Queued, ps[0].Delivered, ps[1].Queued, ps[1].Done())
	}
}

// A dropped file that cannot be filed away (done/ cannot be made) is
// imported again at every other poll; it keeps one record, not one per
// import, which /status and memory would hold for the engine's life.
func TestCSVFileTakenAgainKeepsOneRecord(t *testing.T) {
	runner.SetCSVSettle(t, 50*time.Millisecond) // not what this test is about
	folder := t.TempDir()
	h := start(t, setup{users: 100, tweak: inboxAt(folder)})
	if err := os.WriteFile(filepath.Join(folder, "done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeCSV(t, folder, 5, 0)
	h.r.WatchCSVInboxes(10 * time.Millisecond)
	h.eventually("the file imported", func() bool { return h.tagCount("load-000005", "segment_5") == 1 })
	time.Sleep(500 * time.Millisecond) // some 25 more imports, each finding it done
	if ps := h.r.CSVImports(); len(ps) > 2 {
		t.Errorf("%d records of one file", len(ps))
	}
}

// An engine that imports files of names of their own (dated exports
// dropped into the inbox folder) keeps no more than maxCSVRecords (1000)
// records, nor the dead letters' places in those it let go: each record
// being the newest of its name kept every one. A name imported again
// after its record went gets a new one.
func TestCSVRecordsStayBoundedForUniqueFileNames(t *testing.T) {
	h := start(t, setup{users: 10})
	dir := t.TempDir()
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("export-%04d.csv", i)) }
	for i := 0; i < 1100; i++ {
		// A row and a broken one: a dead letter whose place is noted.
		text := fmt.Sprintf("user_id,tag\nload-%06d,seg_%d\nload-000001,too,many\n", i%10, i)
		if err := os.WriteFile(name(i), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := h.r.ImportCSV(context.Background(), csvPipeline, name(i)); err != nil {
			t.Fatal(err)
		}
	}
	ps := h.r.CSVImports()
	if len(ps) > 1000 {
		t.Errorf("%d records kept after 1100 imports of uniquely named files; maxCSVRecords is 1000", len(ps))
	}
	if last := ps[len(ps)-1]; last.File != name(1099) || last.Delivered != 1 || last.Broken != 1 {
		t.Errorf("newest record: %+v, want export-1099.csv's, 1 row delivered and 1 broken", last)
	}
	if n := h.r.CSVDeadNoted(); n > len(ps) {
		t.Errorf("%d dead letters' places noted for %d records", n, len(ps))
	}

	// export-0000.csv's record went: the name is imported again as any
	// other, found done, and then with other content.
	if slices.ContainsFunc(ps, func(p runner.CSVProgress) bool { return p.File == name(0) }) {
		t.Fatalf("export-0000.csv's record is still kept; the test needs one that went")
	}
	again, err := h.r.ImportCSV(context.Background(), csvPipeline, name(0))
	if err != nil || again.Skipped != 2 || again.Queued != 0 || !again.Settled() {
		t.Errorf("imported again: %+v, %v; want its 2 rows handled before", again, err)
	}
	if err := os.WriteFile(name(0), []byte("user_id,tag\nload-000002,seg_new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := h.r.ImportCSV(context.Background(), csvPipeline, name(0))
	if err != nil || changed.Delivered != 1 || changed.Skipped != 0 {
		t.Errorf("new content: %+v, %v; want its row delivered", changed, err)
	}
	ps = h.r.CSVImports()
	if last := ps[len(ps)-1]; last.File != name(0) || last.Delivered != 1 {
		t.Errorf("newest record: %+v, want export-0000.csv's new content, 1 row delivered", last)
	}
}

// A reload that points the CSV pipeline at another folder while it
// imports a file of the old one: the file is finished and filed away
// there, and the old folder's other files are left for whichever
// pipeline watches it next. The old watch went on through the files it
// had listed, importing them as if it still watched the folder.
func TestCSVWatcherStopsAtAReloadThatMovesItsFolder(t *testing.T) {
	runner.SetCSVSettle(t, 50*time.Millisecond) // not what this test is about
	dir := copyPipelines(t)
	old, moved := t.TempDir(), t.TempDir()
	yaml := filepath.Join(dir, csvPipeline+".yaml")
	editFile(t, yaml, func(s string) string {
		s = strings.Replace(s, "inbox: ../inbox/segments", "inbox: "+old, 1)
		return strings.Replace(s, "concurrency: 32", "concurrency: 2", 1)
	})
	h := start(t, setup{dirs: []string{dir}, users: 50})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"50ms"}`)
	writeCSV(t, old, 40, 0) // segment.csv: a second or so
	if err := os.WriteFile(filepath.Join(old, "t.csv"), []byte("user_id,tag\nload-000001,later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.r.WatchCSVInboxes(10 * time.Millisecond)
	h.eventually("segment.csv being imported", func() bool {
		ps := h.r.CSVImports()
		return len(ps) == 1 && ps[0].Delivered > 0
	})
	editFile(t, yaml, func(s string) string { return strings.Replace(s, "inbox: "+old, "inbox: "+moved, 1) })
	if c := changeOf(h.r.Apply(h.load()), csvPipeline); c == nil || c.Result != "changed" {
		t.Fatalf("reload: %+v", c)
	}
	h.eventually("segment.csv filed away", func() bool {
		_, err := os.Stat(filepath.Join(old, "done", "segment.csv"))
		return err == nil
	})
	time.Sleep(200 * time.Millisecond) // twenty polls
	if _, err := os.Stat(filepath.Join(old, "t.csv")); err != nil {
		t.Errorf("t.csv was taken from the folder the pipeline no longer watches: %v", err)
	}
	if n := h.tagCount("load-000001", "later"); n != 0 {
		t.Errorf("t.csv's row was delivered %d times", n)
	}
}

// A file deleted from the inbox folder while it is imported: the import
// reads the file it has open to the end, so its rows are delivered, and
// the log says the file went during the import rather than that it could
// not be filed away ("rename ...: no such file or directory").
func TestCSVInboxFileDeletedWhileImported(t *testing.T) {
	runner.SetCSVSettle(t, 50*time.Millisecond) // not what this test is about
	folder := t.TempDir()
	logs := &runner.LockedBuffer{}
	h := start(t, setup{users: 201, tweak: inboxAt(folder), opts: jsonLogTo(logs)})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"50ms"}`)
	file := writeCSV(t, folder, 200, 0)
	h.r.WatchCSVInboxes(10 * time.Millisecond)
	h.eventually("the import under way", func() bool { return len(h.journal("/sessionm/core/*")) >= 10 })
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	h.eventually("the import done", func() bool {
		ps := h.r.CSVImports()
		return len(ps) == 1 && ps[0].Finished
	})
	h.eventually("a line about the removed file", func() bool {
		return strings.Contains(logs.String(), `"msg":"the CSV file was moved away (renamed, perhaps) or removed from the inbox folder during its import; its rows were imported all the same`)
	})
	if p := h.r.CSVImports()[0]; p.Delivered != 200 || p.Err != "" {
		t.Errorf("%d rows delivered of 200, error %q", p.Delivered, p.Err)
	}
	if strings.Contains(logs.String(), "cannot file an imported CSV away") {
		t.Errorf("the log says the file could not be filed away:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(folder, "done")); err == nil {
		t.Error("a done/ folder was made for a file that was not there")
	}
}

// A symbolic link in the inbox folder whose target is missing, or that
// points at a folder, is filed away to failed/ with an error that says
// so; they said "open ...: no such file or directory" of a name that is
// plainly there, and "read ...: is a directory".
func TestCSVInboxLinkToNothingOrAFolder(t *testing.T) {
	runner.SetCSVSettle(t, 50*time.Millisecond) // not what this test is about
	folder := t.TempDir()
	h := start(t, setup{users: 2, tweak: inboxAt(folder)})
	missing, dir := filepath.Join(t.TempDir(), "gone.csv"), t.TempDir()
	if err := os.Symlink(missing, filepath.Join(folder, "dangling.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(folder, "folder.csv")); err != nil {
		t.Fatal(err)
	}
	h.r.WatchCSVInboxes(10 * time.Millisecond)
	for name, want := range map[string]string{
		"dangling.csv": "cannot open " + filepath.Join(folder, "dangling.csv") + ": it is a symbolic link to " + missing + ", which does not exist; put the CSV file itself there, or a link to one that exists\n",
		"folder.csv":   "cannot import " + filepath.Join(folder, "folder.csv") + ": it is a folder (or a link to one), not a CSV file\n",
	} {
		if why := h.failedReason(folder, name); why != want {
			t.Errorf("%s: the error file says\n%s\nwant\n%s", name, why, want)
		}
	}
}

// failedReason waits until the inbox folder's entry name is filed away to
// failed/ and returns what its .error.txt says.
func (h *harness) failedReason(folder, name string) string {
	h.t.Helper()
	var why []byte
	h.eventually(name+" filed away to failed/", func() bool {
		why, _ = os.ReadFile(filepath.Join(folder, "failed", name+".error.txt"))
		return len(why) > 0
	})
	return string(why)
}

// A row an earlier run moved to the inbox for a retry is sent by the
// inbox, not read again from the file: the checkpoint is saved now and
// then, and after a kill -9 that left it before such a row, the restart
// sent the row from the file and its queued copy too (a QA run: a fifth
// of the rows sent twice). Also when the restart comes after the dedupe
// window, which had forgotten the queued row's id (a review).
func TestCSVRowQueuedBeforeIsNotReadAgain(t *testing.T) {
	for _, later := range []time.Duration{0, 25 * time.Hour} {
		t.Run(fmt.Sprint("restart ", later, " later"), func(t *testing.T) {
			rowQueuedBeforeIsNotReadAgain(t, later)
		})
	}
}

// row25 is the SessionM path of row 25 of writeCSV's file.
const row25 = "/sessionm/core/priv/v1/apps/sandbox-core-key/external/users/load-000025/tags"

// failingRow25 serves the sandbox's emulators, but answers status to row
// 25's request while failing is set (it is at first); and a 50-row file.
func failingRow25(t *testing.T, status int) (url string, failing *atomic.Bool, file string) {
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3, GeneratedUsers: 100})
	if err != nil {
		t.Fatal(err)
	}
	failing = new(atomic.Bool)
	failing.Store(true)
	emulators := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() && r.URL.Path == row25 {
			w.WriteHeader(status)
			return
		}
		emulators.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, failing, writeCSV(t, t.TempDir(), 50, 0)
}

func rowQueuedBeforeIsNotReadAgain(t *testing.T, later time.Duration) {
	sbURL, failing, file := failingRow25(t, http.StatusServiceUnavailable)
	data := t.TempDir()
	key := "csv:" + csvPipeline + ":" + fileHash(t, file)

	// The earlier run: row 25 fails and waits in the inbox for its retry.
	first := start(t, setup{sandbox: sbURL, dataDir: data, tweak: func(p *engine.Pipeline) {
		p.Delivery.BackoffInitial, p.Delivery.BackoffMax = time.Second, time.Second
	}})
	if p, err := first.r.ImportCSV(context.Background(), csvPipeline, file); err != nil || p.Retrying != 1 {
		t.Fatalf("setup: the first import %+v %v; want row 25 waiting for its retry", p, err)
	}
	first.stop()
	// As a kill -9 leaves it: the checkpoint saved before row 25.
	setCheckpoint(t, data, key, map[string]any{"rows": 20})

	failing.Store(false)
	h := start(t, setup{sandbox: sbURL, dataDir: data, inbox: inbox.Options{Now: func() time.Time { return time.Now().Add(later) }}})
	if _, err := h.store.PruneSeen(); err != nil { // as the engine does at its start, and hourly
		t.Fatal(err)
	}
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || p.Queued != 29 || p.Skipped != 21 {
		t.Errorf("the import after the restart %+v %v; want 29 rows sent and 21 handled before (row 25 among them)", p, err)
	}
	h.drained()
	sent := 0
	for _, e := range h.journal(row25) {
		if e["status"].(float64) == 200 {
			sent++
		}
	}
	if sent != 1 {
		t.Errorf("row 25 was delivered %d times; want once, by the inbox", sent)
	}
}

// A row an earlier run dead-lettered has its outcome, even when a kill -9
// left the checkpoint before it: read again, it was sent and delivered,
// its dead letter kept, and a replay of it sent it twice (a QA run).
func TestCSVRowDeadLetteredBeforeIsNotReadAgain(t *testing.T) {
	sbURL, refusing, file := failingRow25(t, http.StatusBadRequest)
	data := t.TempDir()
	key := "csv:" + csvPipeline + ":" + fileHash(t, file)

	first := start(t, setup{sandbox: sbURL, dataDir: data})
	if p, err := first.r.ImportCSV(context.Background(), csvPipeline, file); err != nil || p.Failed != 1 {
		t.Fatalf("setup: the first import %+v %v; want row 25 dead-lettered", p, err)
	}
	first.stop()
	// As a kill -9 leaves it: the checkpoint saved before row 25.
	setCheckpoint(t, data, key, map[string]any{"rows": 20})

	refusing.Store(false)
	h := start(t, setup{sandbox: sbURL, dataDir: data})
	p, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || p.Queued != 29 || p.Skipped != 21 {
		t.Errorf("the import after the restart %+v %v; want 29 rows sent and 21 handled before (row 25 among them)", p, err)
	}
	h.drained()
	delivered := func() int {
		n := 0
		for _, e := range h.journal(row25) {
			if e["status"].(float64) == 200 {
				n++
			}
		}
		return n
	}
	if n := delivered(); n != 0 {
		t.Fatalf("row 25 was delivered %d times by the import; want none, its dead letter stands", n)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 {
		t.Fatalf("dead letters %+v; want row 25's", dls)
	}
	if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", h.admin().URL, dls[0].ID), "", nil); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	h.drained()
	if n := delivered(); n != 1 {
		t.Errorf("row 25 was delivered %d times after its replay; want once", n)
	}
}

// While the checkpoint cannot be written (a full disk), the import reads
// no further rows: read on, 6,226 rows were delivered that the checkpoint
// did not pass, and after a kill -9 the restart sent 5,670 of them again
// (a QA run). Once it can be written, the import goes on, each row sent
// once.
func TestCSVImportWaitsWhileItsCheckpointCannotBeWritten(t *testing.T) {
	var full atomic.Bool
	full.Store(true)
	fault := func(write string) error {
		if write == inbox.FaultCheckpoint && full.Load() {
			return errors.New("write inbox.db: no space left on device")
		}
		return nil
	}
	const rows = 2000
	h := start(t, setup{users: rows + 1, inbox: inbox.Options{Fault: fault}}) // load-000000 to load-002000
	file := writeCSV(t, t.TempDir(), rows, 0)
	done := importInBackground(h, file)
	time.Sleep(300 * time.Millisecond)
	stalled := len(h.tagsDelivered())
	time.Sleep(300 * time.Millisecond)
	if now := len(h.tagsDelivered()); now != stalled || now == rows {
		t.Errorf("%d rows delivered, then %d 300 ms later, of %d: want the import held while the checkpoint cannot be written", stalled, now, rows)
	}
	full.Store(false)
	awaitImport(t, h, done)
	h.drained()
	tags := h.tagsDelivered()
	if len(tags) != rows || len(slices.Compact(slices.Sorted(slices.Values(tags)))) != rows {
		t.Errorf("%d rows delivered; want each of %d once", len(tags), rows)
	}
}

// An inbox file whose last line has no end waits for the rest: taken at
// an upload's pause, its first part was imported, the file filed in
// done/, and the rest written there, never sent (a QA run). A file that
// only lacks its last newline goes after the wait.
func TestCSVInboxWaitsForAnUnendedLastLine(t *testing.T) {
	runner.SetUnterminatedWait(t, 700*time.Millisecond)
	h, folder := inboxHarness(t, 100, 50*time.Millisecond)
	upload := filepath.Join(folder, "upload.csv")
	if err := os.WriteFile(upload, []byte("user_id,tag\nload-000001,segment_1\nload-000002,segm"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // thirty polls
	if _, err := os.Stat(filepath.Join(folder, "done", "upload.csv")); err == nil || len(h.journal("/sessionm/core/*")) != 0 {
		t.Fatal("the first part of an upload was imported while its last line had no end")
	}
	f, err := os.OpenFile(upload, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("ent_2\nload-000003,segment_3\n")
	f.Close()
	// Ended, with no newline after its last line: taken after the wait.
	lastLine := filepath.Join(folder, "no-newline.csv")
	if err := os.WriteFile(lastLine, []byte("user_id,tag\nload-000004,segment_4"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("both files filed in done/", func() bool {
		_, a := os.Stat(filepath.Join(folder, "done", "upload.csv"))
		_, b := os.Stat(filepath.Join(folder, "done", "no-newline.csv"))
		return a == nil && b == nil
	})
	h.drained()
	for user, tag := range map[string]string{"load-000001": "segment_1", "load-000002": "segment_2", "load-000003": "segment_3", "load-000004": "segment_4"} {
		if h.tagCount(user, tag) != 1 {
			t.Errorf("%s did not get %s", user, tag)
		}
	}
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Errorf("dead letters %+v", dls)
	}
}

// An inbox file with no line break at all, taken after the wait for its
// last line, is read whole: a header row alone is a file of no rows, and
// one whose lines end with a lone CR fails saying so. Cut to its last
// whole record, each was read as empty (a re-QA).
func TestCSVInboxTakesAFileOfOneUnendedLineWhole(t *testing.T) {
	runner.SetUnterminatedWait(t, 700*time.Millisecond)
	h, folder := inboxHarness(t, 10, 50*time.Millisecond)
	for name, text := range map[string]string{"header.csv": "user_id,tag", "cr.csv": "user_id,tag\rload-000001,segment_1\r"} {
		if err := os.WriteFile(filepath.Join(folder, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.eventually("both files filed", func() bool {
		_, a := os.Stat(filepath.Join(folder, "done", "header.csv"))
		_, b := os.Stat(filepath.Join(folder, "failed", "cr.csv"))
		return a == nil && b == nil
	})
	why, err := os.ReadFile(filepath.Join(folder, "failed", "cr.csv.error.txt"))
	if err != nil || !strings.Contains(string(why), "the line endings are CR only") {
		t.Errorf("cr.csv's error: %q %v", why, err)
	}
	if n := len(h.journal("/sessionm/core/*")); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// setCheckpoint writes a CSV import's checkpoint into the inbox in data,
// as an earlier run left it.
func setCheckpoint(t *testing.T, data, key string, cp any) {
	t.Helper()
	store, err := inbox.Open(data, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.SetCheckpoint(key, cp); err != nil {
		t.Fatal(err)
	}
}

// F2's ttl is whole seconds: "| plus: 0" read "30 days" as 30 and
// "2,592,000" as 2, tags that expired in seconds (a QA run). Such a row is
// a dead letter saying why; an empty ttl takes the default.
func TestCSVTTLNotWholeSecondsIsADeadLetter(t *testing.T) {
	h := start(t, setup{users: 5})
	_, p := h.importText("ttl.csv", "user_id,tag,ttl\nload-000001,vip,30 days\nload-000002,gold,\nload-000003,vip,\"2,592,000\"\nload-000004,vip,60\n")
	if p.Rows != 4 || p.Queued != 4 {
		t.Errorf("rows %d, sent %d; want 4 and 4", p.Rows, p.Queued)
	}
	h.eventually("every row settled", func() bool { return h.r.CSVImports()[0].Settled() })
	if h.tagCount("load-000001", "vip") != 0 || h.tagCount("load-000003", "vip") != 0 {
		t.Error("a row whose ttl is not whole seconds was delivered")
	}
	if h.tagCount("load-000002", "gold") != 1 || h.tagCount("load-000004", "vip") != 1 {
		t.Error("a row with an empty or whole ttl was not delivered")
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	var errs []string
	for _, dl := range dls {
		errs = append(errs, dl.Reason+": "+dl.Error)
	}
	slices.Sort(errs)
	want := []string{
		`template: target: the body does not fit the endpoint: ttl: must be an integer, not a string "2,592,000"`,
		`template: target: the body does not fit the endpoint: ttl: must be an integer, not a string "30 days"`,
	}
	if !slices.Equal(errs, want) {
		t.Errorf("dead letters:\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
}

// An empty file waits as one whose last line has no end does: a shell's
// redirection makes the file before the writer has written anything, and
// it went to failed/ as empty at once while the writer filled it there (a
// QA run). One still empty after the wait fails, as before.
func TestCSVInboxWaitsForAnEmptyFileToBeWritten(t *testing.T) {
	runner.SetUnterminatedWait(t, 3*time.Second) // wide: a loaded CI machine
	h, folder := inboxHarness(t, 10, 50*time.Millisecond)
	upload := filepath.Join(folder, "z.csv")
	if err := os.WriteFile(upload, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // thirty polls
	if _, err := os.Stat(filepath.Join(folder, "failed", "z.csv")); err == nil {
		t.Fatal("an empty file was failed before the wait for its writer")
	}
	if err := os.WriteFile(upload, []byte("user_id,tag\nload-000001,segment_1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the written file filed in done/", func() bool {
		_, err := os.Stat(filepath.Join(folder, "done", "z.csv"))
		return err == nil
	})
	h.drained()
	if h.tagCount("load-000001", "segment_1") != 1 {
		t.Error("the row written after the wait began was not delivered")
	}
	if _, err := os.Stat(filepath.Join(folder, "failed", "z.csv")); err == nil {
		t.Error("z.csv went to failed/ too")
	}
}
