package runner_test

import (
	"encoding/json"
	"log/slog"
	"strings"
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
	failed := func() (lines, leftOut int) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct {
				Msg     string
				LeftOut int `json:"left_out"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "synchronous pipeline failed" {
				lines++
				leftOut += l.LeftOut
			}
		}
		return lines, leftOut
	}
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
