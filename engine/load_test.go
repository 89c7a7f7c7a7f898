package engine

import (
	"fmt"
	"github.com/loyalty-connector/engine/engine/diag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// PipelineNames finds the pipeline files Load would read, without reading
// them: a file with problems, or with nothing in it, defines its pipeline
// all the same.
func TestPipelineNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.yaml", "a.yml", "connections.yaml", ".a.yaml.swp", ".hidden.yaml", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not: [valid"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{dir}, "[a b]"},
		{[]string{filepath.Join(dir, "b.yaml"), "../pipelines"}, "[b braze-segment-to-sessionm-tags offer-issued-to-braze-campaign points-awarded-to-braze-canvas segment-csv-to-sessionm-tags wallet-for-connected-content]"},
		{[]string{dir, "nowhere"}, "nowhere: no such file or folder"},
		{[]string{empty}, empty + ": the folder holds no .yaml pipeline files"},
	} {
		names, err := PipelineNames(tc.paths)
		got := fmt.Sprint(names)
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%v: %s, want %s", tc.paths, got, tc.want)
		}
	}
}

// A file over MaxFileBytes is refused before it is parsed, naming the
// bound: a 15 MB one took 14 s and 2 GB to check.
func TestLoadRefusesAFileOverTheBound(t *testing.T) {
	dir := t.TempDir()
	big := "description: big\n# " + strings.Repeat("x", MaxFileBytes) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	l, _ := testLoader(t)
	proj := l.Load([]string{dir})
	items := proj.Diagnostics.Items()
	if len(items) != 1 || !strings.Contains(items[0].Message, "over 1024 KiB") || filepath.Base(items[0].File) != "big.yaml" {
		t.Fatalf("diagnostics %v; want one naming big.yaml and the bound", items)
	}
}

// One file named twice (its folder and itself, or through a link to the
// folder) is one pipeline, not two files that name one pipeline.
func TestLoadReadsAFileNamedTwiceOnce(t *testing.T) {
	abs, err := filepath.Abs("../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "linked")
	if err := os.Symlink(abs, link); err != nil {
		t.Fatal(err)
	}
	l, _ := testLoader(t)
	for _, paths := range [][]string{
		{"../pipelines", filepath.Join(abs, "braze-segment-to-sessionm-tags.yaml")},
		{"../pipelines", link},
	} {
		proj := l.Load(paths)
		if err := proj.Diagnostics.Err(); err != nil || len(proj.Pipelines) != 5 {
			t.Errorf("%v: %d pipelines, %v; want the 5 of the folder", paths, len(proj.Pipelines), err)
		}
	}
}

// Pipeline files in a subfolder are not read: a team that sorted its
// pipelines into folders shipped one that never ran while validate said
// ok (a QA run). A subfolder (or a link to one) that holds some that are
// not read is warned of, naming them.
func TestUnreadSubfolderIsWarnedOf(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "p.yaml"), "description: broken on purpose\n")
	write(filepath.Join(dir, "team-a/offers.yaml"), "description: never read\n")
	write(filepath.Join(dir, "fixtures/lookup.json"), "{}")       // no pipeline files
	write(filepath.Join(dir, ".git/config.yml"), "x: 1\n")        // hidden
	write(filepath.Join(dir, "nested/deeper/far.yaml"), "x: 1\n") // not in the subfolder itself
	write(filepath.Join(elsewhere, "linked.yaml"), "x: 1\n")
	if err := os.Symlink(elsewhere, filepath.Join(dir, "team-b")); err != nil {
		t.Fatal(err)
	}
	teamA := "team-a: warning: holds .yaml files that are not read (offers.yaml): only the files of the folders named are"
	teamB := "team-b: warning: holds .yaml files that are not read (linked.yaml)"
	l, _ := testLoader(t)
	for _, tc := range []struct {
		paths []string
		want  []string
	}{
		{[]string{dir}, []string{teamA, teamB}},
		{[]string{dir, filepath.Join(dir, "team-a"), filepath.Join(dir, "team-b")}, nil},
		{[]string{dir, filepath.Join(dir, "team-a", "offers.yaml")}, []string{teamB}}, // team-a's one file named
		{[]string{filepath.Join(dir, "p.yaml")}, nil},
	} {
		var warnings []string
		for _, d := range l.Load(tc.paths).Diagnostics.Items() {
			if d.Severity == diag.Warning {
				warnings = append(warnings, d.String())
			}
		}
		ok := len(warnings) == len(tc.want)
		for i := 0; ok && i < len(warnings); i++ {
			ok = strings.Contains(warnings[i], tc.want[i])
		}
		if !ok {
			t.Errorf("%v: warnings %q; want %q", tc.paths, warnings, tc.want)
		}
	}
}
