package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// What engine run says about the rows of a file that wait in the inbox
// for a retry, on the built binary. Three files of one pipeline: a.csv is
// delivered at once; two rows of b.csv fail once, so b.csv is imported
// with them waiting and they are delivered a moment later; a row of c.csv
// fails every time, and waits still when the engine stops.
//
// The "CSV file imported" line of b.csv said delivered=3 and nothing of
// the 2 rows waiting, and no line ever gave the final figures; the stop's
// summary said of a.csv and b.csv, done long before, that rows waited for
// a retry, because c.csv's did.
func TestCSVRowsWaitingForARetryAreToldPerFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	var mu sync.Mutex
	failed := map[string]bool{}
	// The retries of b.csv's once- rows are answered only once b.csv's
	// "CSV file imported" line is out: with full jitter a retry may come
	// at once, and one did before the line on a loaded machine (5 5 4 1).
	bImported := make(chan struct{})
	sessionm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		again := failed[r.URL.Path]
		failed[r.URL.Path] = true
		mu.Unlock()
		if strings.Contains(r.URL.Path, "/always-") || strings.Contains(r.URL.Path, "/once-") && !again {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if strings.Contains(r.URL.Path, "/once-") {
			select {
			case <-bImported:
			case <-time.After(15 * time.Second):
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","payload":{}}`)
	}))
	t.Cleanup(sessionm.Close)
	dir, _, envFile := csvJob(t, "concurrency: 4\n  attempts: 100\n  backoff: {initial: 200ms, max: 200ms}", strings.TrimPrefix(sessionm.URL, "http://"))
	folder := t.TempDir()
	write := func(name string, users ...string) string {
		path := filepath.Join(folder, name)
		if err := os.WriteFile(path, []byte("user_id,tag\n"+strings.Join(users, ",vip\n")+",vip\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a := write("a.csv", "a-1", "a-2", "a-3")
	b := write("b.csv", "b-1", "once-1", "b-2", "once-2", "b-3")
	c := write("c.csv", "c-1", "always-1")
	e := startChild(t, "engine run", buildEngine(t), "run", "--env-file", envFile, "--addr", "127.0.0.1:0", "--admin-addr", "",
		"--data", t.TempDir(), "--log-format", "json", "--csv", a, "--csv", b, "--csv", c, dir)
	figures := func(msg, file string) map[string]any {
		sc := bufio.NewScanner(strings.NewReader(e.stderr.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg && line["file"] == file {
				return line
			}
		}
		return nil
	}
	released := false
	for deadline := time.Now().Add(20 * time.Second); figures("CSV file's retried rows settled", b) == nil || figures("CSV file imported", c) == nil; {
		if !released && figures("CSV file imported", b) != nil {
			close(bImported)
			released = true
		}
		if e.done() || time.Now().After(deadline) {
			t.Fatalf("no line for the retried rows of b.csv, or c.csv not imported (exit: %v)\n%s", e.exitErr(), e.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("engine run still runs 20 s after SIGTERM")
	}

	for _, tt := range []struct {
		msg, file string
		want      string // rows, sent, delivered, retrying
	}{
		{"CSV file imported", a, "3 3 3 0"},
		{"CSV file imported", b, "5 5 3 2"},
		{"CSV file's retried rows settled", b, "5 5 5 0"},
		{"CSV file imported", c, "2 2 1 1"},
	} {
		line := figures(tt.msg, tt.file)
		if got := fmt.Sprint(line["rows"], line["sent"], line["delivered"], line["retrying"]); got != tt.want {
			t.Errorf("%s %s: rows, sent, delivered, retrying: %s, want %s\n%v", tt.msg, filepath.Base(tt.file), got, tt.want, line)
		}
	}
	// The stop's beginning is logged, not only printed.
	stopping := false
	for sc := bufio.NewScanner(strings.NewReader(e.stderr.String())); sc.Scan(); {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "stopping" && line["grace"] == "30s" {
			stopping = true
		}
	}
	if !stopping {
		t.Errorf("no \"stopping\" line with the grace in the JSON log:\n%s", e.stderr.String())
	}
	if line := figures("CSV file's retried rows settled", a); line != nil {
		t.Errorf("a line for the retried rows of a.csv, which had none: %v", line)
	}
	for _, want := range []string{
		"csv " + a + " (segment-csv-to-sessionm-tags): 3 rows read, 3 sent, 3 delivered, 0 filtered out, 0 dead-lettered, 0 broken rows, 0 handled before; done\n",
		"csv " + b + " (segment-csv-to-sessionm-tags): 5 rows read, 5 sent, 5 delivered, 0 filtered out, 0 dead-lettered, 0 broken rows, 0 handled before; done\n",
		"csv " + c + " (segment-csv-to-sessionm-tags): 2 rows read, 2 sent, 1 delivered, 0 filtered out, 0 dead-lettered, 0 broken rows, 0 handled before; read; 1 row waits in the inbox for a retry, which the next run sends first\n",
	} {
		if !strings.Contains(e.stdout.String(), want) {
			t.Errorf("the summary lacks\n%s", want)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", e.stdout.String())
	}
}
