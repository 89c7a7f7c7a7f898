package runner

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// The checkpoint moves only over rows that all have an outcome: a row
// still in flight holds it, however many rows after it are done.
func TestCSVRunCheckpointWaitsForEveryEarlierRow(t *testing.T) {
	c := &csvRun{base: 10, changed: make(chan struct{}, 1)} // resumed after row 10
	for n := 11; n <= 16; n++ {
		c.track(n)
	}
	c.settleNow(17) // a broken row: its dead letter is its outcome
	steps := []struct {
		settle int
		want   int
	}{
		{13, 10}, {12, 10}, {11, 13}, {16, 13}, {15, 13}, {14, 17},
	}
	for _, s := range steps {
		c.settled(s.settle)
		if got := c.checkpoint(); got != s.want {
			t.Fatalf("after row %d: checkpoint %d, want %d", s.settle, got, s.want)
		}
	}
	if !c.settledThrough(17) || c.settledThrough(18) {
		t.Error("settledThrough disagrees with the checkpoint")
	}
	select {
	case <-c.changed:
	default:
		t.Error("no signal when the checkpoint moved")
	}
}

// stoppedClock says it is always the same time.
type stoppedClock struct{ t time.Time }

func (c stoppedClock) Now() time.Time                                   { return c.t }
func (c stoppedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// Files of one name filed away within a second each keep a name of their
// own in done/ and failed/: none overwrites another, nor its .error.txt.
func TestCSVFilesOfOneNameFiledAwayApart(t *testing.T) {
	store, err := inbox.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := New(Options{Store: store, Clock: stoppedClock{time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range 3 {
		for _, importErr := range []error{nil, fmt.Errorf("failure %d", i)} {
			if err := os.WriteFile(filepath.Join(dir, "segment.csv"), []byte(strconv.Itoa(i)), 0o644); err != nil {
				t.Fatal(err)
			}
			r.fileAway("segment", dir, "segment.csv", nil, importErr)
		}
	}
	for sub, want := range map[string][]string{
		"done":   {"0", "1", "2"},
		"failed": {"0", "1", "2", "failure 0\n", "failure 1\n", "failure 2\n"}, // sorted
	} {
		var got []string
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			got = append(got, string(b))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s/ holds %q; want %q", sub, got, want)
		}
	}
	// The names say when: the first in a second has the time alone.
	for _, name := range []string{"done/segment.csv", "done/20250301T120000Z-segment.csv", "done/20250301T120000Z-2-segment.csv"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

// A row a worker had taken, but not sent, when the engine stopped moves
// into the inbox, so the checkpoint passes it to the rows after it that
// were delivered in the grace: the next run sends it from the inbox and
// sends none of them again. Here row 3's lookup is held until the stop has
// begun, so its request may not leave, while rows 4 to 10 are delivered.
func TestCSVRowUnsentAtAStopMovesToTheInbox(t *testing.T) {
	lookupHeld, releaseLookup := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	var mu sync.Mutex
	delivered := map[string]int{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/things/3":
			holdOnce.Do(func() {
				close(lookupHeld)
				<-releaseLookup
			})
		case r.URL.Path == "/sink":
			var body struct{ N string }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			delivered[body.N]++
			mu.Unlock()
		}
		w.Write([]byte(`{}`))
	}))
	defer api.Close()
	deliveries := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(delivered)
	}
	pipelines := loadAPI(t, "testdata/csv-lookup-then-send", api.URL)
	const pipeline = "rows"
	file := filepath.Join(t.TempDir(), "rows.csv")
	text := "n\n"
	for n := 1; n <= 10; n++ {
		text += strconv.Itoa(n) + "\n"
	}
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	run := func(body func(r *Runner, store *inbox.Store)) {
		runOn(t, data, Options{Pipelines: pipelines}, func(r *Runner, store *inbox.Store) {
			r.Start()
			body(r, store)
		})
	}

	run(func(r *Runner, store *inbox.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		imported := make(chan CSVProgress)
		go func() {
			p, _ := r.ImportCSV(ctx, pipeline, file)
			imported <- p
		}()
		<-lookupHeld
		for len(deliveries()) < 9 {
			time.Sleep(time.Millisecond)
		}
		cancel() // as SIGTERM: engine run's context ends, then the runner stops
		first := <-imported
		lane := r.lane(pipeline)
		stopped := make(chan struct{})
		go func() {
			r.Stop(5 * time.Second)
			close(stopped)
		}()
		// The lane's own: the runner's is done a moment before the lanes'
		// (a parent closes its channel, then cancels its children), and
		// the lookup let go in that moment sent its request.
		<-lane.soft.Done()
		close(releaseLookup)
		<-stopped
		if first.Rows != first.Queued+first.Broken+first.Skipped {
			t.Errorf("summary %+v does not add up", first)
		}
		var cp csvCheckpoint
		if _, err := store.Checkpoint(pipelineCheckpointKey(t, pipeline, file), &cp); err != nil {
			t.Fatal(err)
		}
		if cp.Rows != 10 || cp.Done {
			t.Errorf("checkpoint %+v after the stop; want all 10 rows settled, the file not done", cp)
		}
		if n := store.Depth(pipeline); n != 1 {
			t.Errorf("%d events in the inbox after the stop; want row 3", n)
		}
	})
	if got := deliveries(); got["3"] != 0 || len(got) != 9 {
		t.Fatalf("first run delivered %v; want every row but 3", got)
	}

	run(func(r *Runner, store *inbox.Store) {
		defer r.Stop(5 * time.Second)
		p, err := r.ImportCSV(context.Background(), pipeline, file)
		if err != nil || p.Skipped != 10 || p.Queued != 0 {
			t.Fatalf("second import %+v, %v; want the 10 settled rows skipped", p, err)
		}
		for store.Depth(pipeline) > 0 {
			time.Sleep(time.Millisecond)
		}
	})
	for n := 1; n <= 10; n++ {
		if got := deliveries()[strconv.Itoa(n)]; got != 1 {
			t.Errorf("row %d delivered %d times; want once", n, got)
		}
	}
}

// pipelineCheckpointKey is the key of the checkpoint of pipeline's
// imports of file's content.
func pipelineCheckpointKey(t *testing.T, pipeline, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := hashFile(f, file)
	if err != nil {
		t.Fatal(err)
	}
	return csvKey(pipeline, sum)
}

// The error of an import whose pipeline was removed says where importing
// the file again resumes, and that it passes by the rows after that which
// had their outcome: "resumes after row 1659" read as if the 190 rows
// delivered past it would be sent again (a QA run).
func TestRemovedImportSaysWhichRowsItPassesBy(t *testing.T) {
	r, _ := startRunnerWith(t, Options{})
	defer r.Stop(time.Second)
	letGo := make(chan struct{})
	close(letGo)
	// Rows 1-10 settled; 11 open, 12 and 13 settled.
	c := &csvRun{r: r, pipeline: "rows", file: "rows.csv", base: 10, open: []bool{false, true, true}, letGo: letGo}
	want := "importing the file again with a pipeline named rows resumes after row 10, passing by the rows up to row 13 that had their outcome (a pipeline"
	if err := c.removedError(context.Background()); !strings.Contains(err.Error(), want) {
		t.Errorf("%v\nwant %q in it", err, want)
	}
	c.open = []bool{false, false}
	want = "resumes after row 10 (a pipeline"
	if err := c.removedError(context.Background()); !strings.Contains(err.Error(), want) {
		t.Errorf("%v\nwant %q in it", err, want)
	}
}

// hashFile hashes f, the file named file, to its end (tests).
func hashFile(f *os.File, file string) (string, error) {
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	h := sha256.New()
	if err := hashRange(h, f, 0, info.Size()); err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	return sumOf(h), nil
}

// A record ends at a line break outside quotes: the end of what an import
// reads of a file that may still be written is the last one, never the
// part of a line nor of a quoted value over several lines that a writer
// has not finished (read so, it went as a cut row, or as two broken rows:
// a review).
func TestLastRecordEnd(t *testing.T) {
	for _, tt := range []struct {
		text string
		from int64
		want int64
	}{
		{"user_id,tag\nu1,a\n", 0, 17},
		{"user_id,tag\nu1,a\nu2,se", 0, 17},        // a line being written
		{"user_id,tag\nu1,\"first\nsecond", 0, 12}, // a quoted value being written
		{"user_id,tag\nu1,\"first\nsecond\"\n", 0, 30},
		{"user_id,tag\nu1,\"say \"\"hi\"\"\nthere\"\nu2", 0, 34}, // doubled quotes
		{"user_id,tag\nu1,a\n", 17, 17},                          // nothing after from
		{"no line end at all", 0, 0},
	} {
		f, err := os.CreateTemp(t.TempDir(), "x.csv")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(tt.text); err != nil {
			t.Fatal(err)
		}
		got, err := lastRecordEnd(f, tt.from, int64(len(tt.text)))
		f.Close()
		if err != nil || got != tt.want {
			t.Errorf("%q from %d: %d, %v; want %d", tt.text, tt.from, got, err, tt.want)
		}
	}
}
