package runner_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/runner"
)

// A SessionM outage at a send's rate logs one warning a second of each
// kind, not one per Connected Content call; the next line, or the last
// held back, says how many were left out.
func TestSynchronousFailuresWarnOnceASecond(t *testing.T) {
	var logs runner.LockedBuffer
	h := start(t, setup{opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}})
	h.control("POST", "/faults", `{"emulator":"sessionm_connect","error_ratio":1}`)
	failed := func() (lines, leftOut int) { return runner.LinesOf(logs.String(), "synchronous pipeline failed") }
	began := time.Now()
	for range 20 {
		if a := h.wallet(ana); a.status != 502 {
			t.Fatalf("%d %s; want 502 while SessionM fails", a.status, a.body)
		}
	}
	seconds := int(time.Since(began)/time.Second) + 1
	if n, _ := failed(); n < 1 || n > seconds {
		t.Fatalf("%d warnings for 20 failed calls within %d s; want 1 a second", n, seconds)
	}
	time.Sleep(1100 * time.Millisecond)
	h.wallet(ana)
	// Every failure is a line, or counted as left out by a later one;
	// the last held back goes out within a second or two.
	deadline := time.Now().Add(3 * time.Second)
	for {
		n, left := failed()
		if n >= 2 && n+left == 21 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d warnings saying %d left out, for 21 failed calls; want each a line or counted", n, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A warning held back by a version a reload replaced, or by a pipeline a
// reload removed, is written by the stop with its count, before Stop
// returns: its own timer wrote it up to a second later, after the stop's
// last word or never (the process had exited).
func TestRetiredRespondersHeldWarningsAreWrittenAtTheStop(t *testing.T) {
	for _, edit := range []string{"changed", "removed"} {
		t.Run(edit, func(t *testing.T) {
			var logs runner.LockedBuffer
			dir := copyPipelines(t)
			h := start(t, setup{dirs: []string{dir}, opts: func(o *runner.Options) {
				o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			}})
			h.control("POST", "/faults", `{"emulator":"sessionm_connect","error_ratio":1}`)
			for range 3 { // one line, two held back
				if a := h.wallet(ana); a.status != 502 {
					t.Fatalf("%d %s; want 502 while SessionM fails", a.status, a.body)
				}
			}
			yaml := filepath.Join(dir, "wallet-for-connected-content.yaml")
			if edit == "removed" {
				if err := os.Remove(yaml); err != nil {
					t.Fatal(err)
				}
			} else {
				editFile(t, yaml, func(s string) string { return s + "\n# a comment\n" })
			}
			if c := changeOf(h.r.Apply(h.load()), "wallet-for-connected-content"); c == nil || c.Result != edit {
				t.Fatalf("reload: %+v", c)
			}
			h.stop() // within the second the warnings are held for
			lines, leftOut := runner.LinesOf(logs.String(), "synchronous pipeline failed")
			if lines != 2 || leftOut != 1 {
				t.Errorf("%d warnings saying %d left out by the stop, for 3 failed calls; want 2 saying 1:\n%s", lines, leftOut, logs.String())
			}
		})
	}
}
