// Package golden compares test output with files under testdata, and
// rewrites them when a test binary runs with -update.
package golden

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files with the output the tests get (review the diff)")

// Check fails t unless file holds exactly got; with -update it writes got.
func Check(t testing.TB, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (review, then rerun with go test -update):\n--- want\n%s\n--- got\n%s", file, want, got)
	}
}
