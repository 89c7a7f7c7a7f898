package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two --csv files that sit in the CSV pipeline's inbox folder (the shipped
// pipeline watches ../inbox/segments), named with --until-done. While the
// first is imported, the watcher takes the second, imports it and files it
// away to done/; the --csv import of the second then cannot open it.
func TestRunUntilDoneWithCSVFilesInTheInboxFolder(t *testing.T) {
	var requests atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	sessionm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","payload":{}}`)
	}))
	defer sessionm.Close()
	dir, _, envFile := csvJob(t, "concurrency: 4", strings.TrimPrefix(sessionm.URL, "http://"))
	folder := filepath.Clean(filepath.Join(dir, "../inbox/segments"))
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, from, n int) string {
		var b strings.Builder
		b.WriteString("user_id,tag\n")
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, "user-%d,vip\n", i)
		}
		path := filepath.Join(folder, name)
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	big := write("b.csv", 0, 600) // some 3 s at 4 x 20 ms
	small := write("a.csv", 1000, 10)
	select {
	case res := <-runUntilDone(t, envFile, "--csv", big, "--csv", small, "--until-done", dir):
		if res.code != exitOK {
			t.Errorf("exit %d; want 0: every row of both files was delivered (%d requests for 610 rows)", res.code, requests.Load())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running after 30 s; %d requests", requests.Load())
	}
}

// TestRunUntilDoneExitsWhenItsPipelineIsRemoved, with the --csv file in
// the pipeline's inbox folder (the shipped pipeline watches
// ../inbox/segments): the watcher's import of the same file waits for the
// --csv import, and when that one fails it takes its turn while the
// removed version still holds rows in flight.
func TestRunUntilDoneRemovedWithTheFileInTheInboxFolder(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
			accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	dir, csvFile, envFile := csvJob(t, "concurrency: 4\n  timeout: 300ms\n  backoff: {initial: 1m, max: 1m}", hang.Addr().String())
	folder := filepath.Clean(filepath.Join(dir, "../inbox/segments"))
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	segment := filepath.Join(folder, "segment.csv")
	var b strings.Builder
	b.WriteString("user_id,tag\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "user-%d,vip\n", i)
	}
	if err := os.WriteFile(segment, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	finished := runUntilDone(t, envFile, "--csv", segment, "--until-done", dir)
	waitFor(t, "requests in flight", func() bool { return accepted.Load() >= 4 })
	time.Sleep(time.Until(began.Add(2500 * time.Millisecond))) // the watcher's second poll has taken the file: it waits for the --csv import
	if err := os.Remove(csvFile); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-finished:
		if res.code != exitProblem || !strings.Contains(res.stdout, "was removed while it imported") {
			t.Fatalf("code %d (want %d)\n%s\n%s", res.code, exitProblem, res.stdout, res.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("engine run --until-done still runs 30 s after its pipeline was removed")
	}
}
