package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	// The same file again: recognised, nothing queued twice.
	again, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
	if err != nil || again.Queued != 0 || again.Skipped != 300 {
		t.Fatalf("second import %+v %v", again, err)
	}
}

// A checkpoint left by an interrupted run makes the next one resume after
// the last row it queued.
func TestCSVResumesFromCheckpoint(t *testing.T) {
	data := t.TempDir()
	file := writeCSV(t, t.TempDir(), 50, 0)
	raw, _ := os.ReadFile(file)
	sum := sha256.Sum256(raw)
	store, err := inbox.Open(data, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := "csv:" + csvPipeline + ":" + hex.EncodeToString(sum[:])[:16]
	if err := store.SetCheckpoint(key, map[string]any{"rows": 20}); err != nil {
		t.Fatal(err)
	}
	store.Close()

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

func TestCSVInboxFolder(t *testing.T) {
	folder := t.TempDir()
	h := start(t, setup{users: 100, tweak: func(p *engine.Pipeline) {
		if p.Name == csvPipeline {
			p.Source.Inbox = folder
		}
	}})
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

// While deliveries are held up, the import stops reading the file once the
// inbox holds csvAhead rows, and goes on when they are delivered: a large
// CSV never lands in the inbox (and in memory) whole.
func TestCSVImportWaitsForDeliveries(t *testing.T) {
	rows := runner.CSVAhead + 4000
	h := start(t, setup{users: rows + 1})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"1s"}`)
	file := writeCSV(t, t.TempDir(), rows, 0)
	done := make(chan error, 1)
	go func() {
		_, err := h.r.ImportCSV(context.Background(), csvPipeline, file)
		done <- err
	}()
	h.eventually("the import to fill its share of the inbox", func() bool {
		return h.store.Depth(csvPipeline) >= runner.CSVAhead-64
	})
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the import read the whole file while nothing was delivered (err %v)", err)
	default:
	}
	if d := h.store.Depth(csvPipeline); d > runner.CSVAhead+1000 {
		t.Fatalf("%d rows in the inbox; the import should stop near %d", d, runner.CSVAhead)
	}
	h.control("DELETE", "/faults", "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the import did not finish once deliveries went on")
	}
	h.drained()
	if h.tagCount(fmt.Sprintf("load-%06d", rows), fmt.Sprintf("segment_%d", rows)) != 1 {
		t.Fatal("the last row was not delivered")
	}
}
