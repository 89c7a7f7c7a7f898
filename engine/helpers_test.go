package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine/secrets"
)

// testEnv is the environment tests resolve ${env:...} and ${secret:...}
// from: the sandbox settings of examples/sandbox.env plus test secrets.
func testEnv(t testing.TB) map[string]string {
	t.Helper()
	env, err := secrets.ReadEnvFile(filepath.Join("..", "examples", "sandbox.env"))
	if err != nil {
		t.Fatal(err)
	}
	env["API_TOKEN"] = "test-api-token"
	env["HOOK_SECRET"] = "test-hook-secret"
	env["SPACED_TOKEN"] = " test-token\t"
	env["URL_WITH_PASSWORD"] = "https://corekey:TOPSECRETPASS@core.example.com/?api_key=QUERYSECRET"
	env["QUOTED_SECRET"] = `Zq"Xy7 || true`
	env["PLAIN_HTTP_YES"] = "yes"
	return env
}

func testLoader(t testing.TB) (*Loader, *secrets.Masker) {
	t.Helper()
	env := testEnv(t)
	masker := &secrets.Masker{}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	l, err := NewLoader(connectors.Catalog(), secrets.NewResolver(lookup, "", masker))
	if err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	l.UseClock(func() time.Time { return fixed })
	return l, masker
}

// loadOne loads one pipeline file and fails the test on any problem.
func loadOne(t testing.TB, file string) *Pipeline {
	t.Helper()
	l, _ := testLoader(t)
	proj := l.Load([]string{file})
	if err := proj.Diagnostics.Err(); err != nil {
		t.Fatalf("%s does not build:\n%v", file, err)
	}
	if len(proj.Pipelines) != 1 {
		t.Fatalf("%s: built %d pipelines, want 1", file, len(proj.Pipelines))
	}
	return proj.Pipelines[0]
}

// writeFiles writes files (name: content) into dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
