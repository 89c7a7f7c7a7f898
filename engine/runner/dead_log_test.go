package runner_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine/runner"
)

// Dead letters made at a sender's rate log one line a second for each
// reason of a pipeline, not one each (300,000 dead letters made 76 MB of
// log in a QA run); the next line, or the last held back at the stop,
// says how many were left out, so lines and left_out add up.
func TestDeadLettersLogOnceASecondPerReason(t *testing.T) {
	logs := &runner.LockedBuffer{}
	const n = 40
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: n, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":422}`)
	began := time.Now()
	for i := range n {
		if a := h.post("/hooks/tags/"+sessionmemu.GeneratedUserID(i+1), fmt.Sprintf(`{"tags":["t%d"]}`, i), map[string]string{"Authorization": coreBasic}); a.status != 200 {
			t.Fatalf("webhook %d: %d %s", i, a.status, a.body)
		}
	}
	h.drained()
	seconds := int(time.Since(began)/time.Second) + 1
	h.stop() // writes the line held back
	lines, leftOut := runner.LinesOf(logs.String(), "dead-lettered")
	if lines < 1 || lines > seconds+1 || lines+leftOut != n {
		t.Errorf("%d dead-lettered lines saying %d left out, in %d s, for %d dead letters; want one a second, adding up", lines, leftOut, seconds, n)
	}
}

// Broken CSV rows log one line a second for their pipeline at info too:
// a file of 50,000 of them wrote as many lines (a QA pass). Lines and
// left_out add up to the rows, once the stop writes the one held back.
func TestBrokenCSVRowsLogOnceASecond(t *testing.T) {
	logs := &runner.LockedBuffer{}
	h := start(t, setup{users: 5, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}})
	var rows strings.Builder
	rows.WriteString("user_id,tag\n")
	const n = 40
	for i := range n {
		fmt.Fprintf(&rows, "load-%06d,t%d,extra\n", i+1, i)
	}
	began := time.Now()
	_, p := h.importText("broken.csv", rows.String())
	seconds := int(time.Since(began)/time.Second) + 1
	h.stop()
	lines, leftOut := runner.LinesOf(logs.String(), "broken CSV row")
	if p.Broken != n || lines < 1 || lines > seconds+1 || lines+leftOut != n {
		t.Errorf("%d broken rows; %d lines saying %d left out, in %d s; want %d, one line a second, adding up", p.Broken, lines, leftOut, seconds, n)
	}
}
