package runner

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// SetCSVHashed makes ImportCSV call f once it has hashed a file, before
// it reads the rows, until the test ends.
func SetCSVHashed(t testing.TB, f func(file string)) {
	csvHashed = f
	t.Cleanup(func() { csvHashed = nil })
}

// SetMaxCSVDeadNoted lowers how many CSV dead letters the runner keeps
// track of for replays, until the test ends.
func SetMaxCSVDeadNoted(t testing.TB, n int) {
	old := maxCSVDeadNoted
	maxCSVDeadNoted = n
	t.Cleanup(func() { maxCSVDeadNoted = old })
}

// CutAnswer writes an answer and cuts its body (cut_answer_test.go).
var CutAnswer = cutAnswer

// CSVDeadNoted is how many CSV dead letters the runner remembers where
// it counted, for replays.
func (r *Runner) CSVDeadNoted() int {
	r.csv.mu.Lock()
	defer r.csv.mu.Unlock()
	return len(r.csv.dead)
}

// LockedBuffer takes log lines that many goroutines write at once.
type LockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// OpenIn is openIn, for the inbox-folder tests.
var OpenIn = openIn

// OpenCSV is openCSV, for the inbox-folder tests.
var OpenCSV = openCSV

// SetUnterminatedWait changes how long an inbox file whose last line has
// no end must hold still, until the test ends.
func SetUnterminatedWait(t testing.TB, d time.Duration) {
	old := unterminatedWait
	unterminatedWait = d
	t.Cleanup(func() { unterminatedWait = old })
}

// HandsOnToAnother reports whether the running responder of name hands
// its answers on to a version that is not running.
func (r *Runner) HandsOnToAnother(name string) bool {
	gen := r.gen.Load()
	rs := gen.responders[name]
	rs.mu.Lock()
	next := rs.next
	rs.mu.Unlock()
	if next == nil {
		return false
	}
	for _, other := range gen.responders {
		if other == next {
			return false
		}
	}
	return true
}

// LinesOf counts the JSON log lines with message msg in logs, and the
// left_out they add up (the lines a limiter held back).
func LinesOf(logs, msg string) (lines, leftOut int) {
	for _, l := range strings.Split(logs, "\n") {
		var line struct {
			Msg     string
			LeftOut int `json:"left_out"`
		}
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == msg {
			lines++
			leftOut += line.LeftOut
		}
	}
	return lines, leftOut
}

// SetCSVSettle changes how long an inbox file must hold still after its
// import read to its end, until the test ends.
func SetCSVSettle(t testing.TB, d time.Duration) {
	old := csvSettle
	csvSettle = d
	t.Cleanup(func() { csvSettle = old })
}
