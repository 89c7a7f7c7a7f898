//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// --csv naming a named pipe, or a link to one, is refused before anything
// starts: the import waited in open() for a writer, and a stop waited for
// the import.
func TestRunRefusesACSVThatIsANamedPipe(t *testing.T) {
	dir := t.TempDir()
	fifo, link := filepath.Join(dir, "export.csv"), filepath.Join(dir, "link.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, csv := range []string{fifo, link} {
		done := make(chan runResult, 1)
		go func() {
			stdout, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", t.TempDir(),
				"--log-level", "warn", "--csv", csv, "--until-done", "pipelines/")
			done <- runResult{stdout, stderr, code}
		}()
		want := "engine run: --csv " + csv + ": it is a named pipe (FIFO) (or a link to one), not a regular file; save the CSV as a file and name that\n"
		select {
		case res := <-done:
			if res.code != exitUsage || !strings.HasPrefix(res.stderr, want) || res.stdout != "" {
				t.Errorf("--csv %s: exit %d, stderr %q; want %d and %q, nothing started\n%s", csv, res.code, res.stderr, exitUsage, want, res.stdout)
			}
		case <-time.After(30 * time.Second):
			// Let the import that waits for a writer go, so the test ends.
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			t.Fatalf("--csv %s: still running after 30 s", csv)
		}
	}
}
