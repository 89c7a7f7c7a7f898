package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two --csv files that sit in the CSV pipeline's inbox folder (the shipped
// pipeline watches ../inbox/segments), named with --until-done: the
// watcher leaves each to its --csv import, and the run exits 0 with every
// row delivered. While the first was imported, the watcher took the
// second and filed it away to done/, where its --csv import could not
// open it, and the run exited 1. Each is filed away to done/ by its own
// import: left in the folder, it stayed there after --until-done, and
// without it the watcher imported it a second time (nothing to send, but
// a second line in the summary).
//
// The small file is named directly or through a link to the folder: the
// watcher compared the link's path with its own and took the file.
func TestRunUntilDoneWithCSVFilesInTheInboxFolder(t *testing.T) {
	for _, throughLink := range []bool{false, true} {
		t.Run(fmt.Sprintf("through a link %v", throughLink), func(t *testing.T) {
			testCSVFilesInTheInboxFolder(t, throughLink)
		})
	}
}

func testCSVFilesInTheInboxFolder(t *testing.T, throughLink bool) {
	sessionm, requests := countingSessionM(t, 20*time.Millisecond)
	dir, _, envFile := csvJob(t, "concurrency: 4", sessionm)
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
	if throughLink {
		link := filepath.Join(t.TempDir(), "segments")
		if err := os.Symlink(folder, link); err != nil {
			t.Fatal(err)
		}
		small = filepath.Join(link, "a.csv")
	}
	select {
	case res := <-runUntilDone(t, envFile, "--csv", big, "--csv", small, "--until-done", dir):
		if res.code != exitOK {
			t.Errorf("exit %d; want 0: every row of both files was delivered (%d requests for 610 rows)", res.code, requests.Load())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running after 30 s; %d requests", requests.Load())
	}
	for _, name := range []string{"a.csv", "b.csv"} {
		if _, err := os.Stat(filepath.Join(folder, "done", name)); err != nil {
			t.Errorf("%s not filed away to done/: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(folder, name)); err == nil {
			t.Errorf("%s still in the inbox folder", name)
		}
	}
}

// A --csv file in the inbox folder named twice is imported twice (the
// second finds it done) and filed away after the last: filed after the
// first, the second could not open it, and the run exited 1.
func TestRunUntilDoneWithACSVFileNamedTwice(t *testing.T) {
	sessionm, requests := countingSessionM(t, 0)
	dir, _, envFile := csvJob(t, "concurrency: 4", sessionm)
	folder := filepath.Clean(filepath.Join(dir, "../inbox/segments"))
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(folder, "a.csv")
	if err := os.WriteFile(path, []byte("user_id,tag\nuser-1,vip\nuser-2,vip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-runUntilDone(t, envFile, "--csv", path, "--csv", path, "--until-done", dir):
		if res.code != exitOK {
			t.Errorf("exit %d; want 0 (%d requests for 2 rows)", res.code, requests.Load())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running after 30 s")
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests for 2 rows", n)
	}
	if _, err := os.Stat(filepath.Join(folder, "done", "a.csv")); err != nil {
		t.Errorf("a.csv not filed away to done/: %v", err)
	}
}

// QA copied the CSV pipeline's file to copy.yaml: validate said ok, and
// the two pipelines took the files dropped into their one inbox folder by
// turns, each importing only those the other had not filed away. Both
// validate and run refuse the copy now, at its source.inbox.
func TestTwoPipelinesOnOneInboxFolderAreRefused(t *testing.T) {
	dir := copyDir(t, "pipelines")
	raw, err := os.ReadFile(filepath.Join(dir, filepath.Base(csvPipelineFile)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "copy.yaml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// Without a running version to keep, the file loaded second is named.
	want := filepath.Join(dir, filepath.Base(csvPipelineFile)) + `:10:10: source.inbox: ` + filepath.Join(dir, "../inbox/segments") + ` is also the inbox folder of pipeline "copy"`
	stdout, _, code := runEngine("validate", "--env-file", "examples/sandbox.env", dir)
	if code != exitProblem || !strings.Contains(stdout, want) {
		t.Errorf("validate: code %d, output\n%s\nwant %d and\n%s", code, stdout, exitProblem, want)
	}
	_, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", t.TempDir(), dir)
	if code != exitProblem || !strings.Contains(stderr, want) || !strings.Contains(stderr, "nothing was started") {
		t.Errorf("run: code %d, stderr\n%s\nwant %d and\n%s", code, stderr, exitProblem, want)
	}
}

// --csv naming a folder, or a link to a file that is missing, is refused
// before anything starts, with exit 2, as a missing file is: a folder
// started the engine, which then failed with "read ...: is a directory"
// and exit 1.
func TestRunRefusesACSVThatIsNoFile(t *testing.T) {
	link, missing := filepath.Join(t.TempDir(), "segment.csv"), filepath.Join(t.TempDir(), "gone.csv")
	if err := os.Symlink(missing, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ csv, want string }{
		{"examples/csv", "engine run: --csv examples/csv: it is a folder; name a CSV file (the files dropped into a csv pipeline's source.inbox folder are imported without --csv)\n"},
		{"segment-csv-to-sessionm-tags=examples/csv", "engine run: --csv segment-csv-to-sessionm-tags=examples/csv: it is a folder; "},
		{link, "engine run: --csv " + link + ": it is a symbolic link to " + missing + ", which does not exist; name the CSV file itself, or a link to one that exists\n"},
	} {
		done := make(chan runResult, 1)
		go func() {
			stdout, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", t.TempDir(),
				"--log-level", "warn", "--csv", tt.csv, "--until-done", "pipelines/")
			done <- runResult{stdout, stderr, code}
		}()
		select {
		case res := <-done:
			if res.code != exitUsage || !strings.HasPrefix(res.stderr, tt.want) || res.stdout != "" {
				t.Errorf("--csv %s: exit %d, stderr %q; want %d and %q, nothing started\n%s", tt.csv, res.code, res.stderr, exitUsage, tt.want, res.stdout)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("--csv %s: still running after 30 s", tt.csv)
		}
	}
}
