package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine/secrets"
)

// A reload says what changed: per top-level section, and per connection
// the pipeline uses; the version changes with either.
func TestChangedParts(t *testing.T) {
	dir := t.TempDir()
	copyFile := func(name string, edit func(string) string) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("..", "pipelines", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(edit(string(raw))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	same := func(s string) string { return s }
	const file = "offer-issued-to-braze-campaign.yaml"
	copyFile(ConnectionsFileName, same)
	copyFile(file, same)
	old := loadOne(t, filepath.Join(dir, file))

	tests := []struct {
		name        string
		pipeline    func(string) string
		conns       func(string) string
		want        []string
		sameVersion bool
	}{
		{"nothing", same, same, nil, true},
		{"a comment", func(s string) string { return "# edited\n" + s }, same, nil, false},
		// Inside a section or a connection: still no change of meaning
		// (QA: "source changed").
		{"a comment in a section", func(s string) string { return strings.Replace(s, "\nsource:\n", "\nsource:\n  # edited\n", 1) }, same, nil, false},
		{"a comment in a connection", same, func(s string) string { return strings.Replace(s, "\n  braze:\n", "\n  braze:\n    # edited\n", 1) }, nil, true},
		{"the filter", func(s string) string { return strings.Replace(s, "filter: >-\n", "filter: >-\n  true &&\n", 1) }, same, []string{"filter changed"}, false},
		{"the description", func(s string) string {
			return strings.Replace(s, "description: SessionM", "description: Edited SessionM", 1)
		}, same, []string{"description changed"}, false},
		{"a connection", same, func(s string) string { return strings.Replace(s, "braze:", "braze:\n    rate_limit: 100/1s", 1) }, []string{"connection braze changed"}, false},
		// The file's reference changed, not what the environment holds
		// (QA: "a value from the environment or a secret changed").
		{"a reference in a connection", same, func(s string) string {
			return strings.Replace(s, "base_url: ${env:BRAZE_REST_URL}", "base_url: ${env:BRAZE_REST_URL}/", 1)
		}, []string{"connection braze changed"}, false},
		{"a reference written out", same, func(s string) string {
			return strings.Replace(s, "base_url: ${env:BRAZE_REST_URL}", "base_url: http://127.0.0.1:8081/braze/", 1)
		}, []string{"connection braze changed"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			copyFile(file, tt.pipeline)
			copyFile(ConnectionsFileName, tt.conns)
			p := loadOne(t, filepath.Join(dir, file))
			if got := ChangedParts(old, p); !slices.Equal(got, tt.want) {
				t.Errorf("changed %q, want %q", got, tt.want)
			}
			if (p.Version == old.Version) != tt.sameVersion {
				t.Errorf("version %s after %s (was %s)", p.Version, tt.name, old.Version)
			}
		})
	}
}

// A value changed only where both versions read one: target: changed to
// respond:, which no longer uses the target's connection, said a value
// from the environment or a secret had changed (QA).
func TestChangedPartsValues(t *testing.T) {
	target := &Pipeline{Parts: map[string]string{"target": "t", "connection core": "c"}, resolved: map[string]string{"connection core": "key-1", "target.headers.X-Key": "k"}}
	for _, tt := range []struct {
		name string
		new  *Pipeline
		want []string
	}{
		{"target to respond", &Pipeline{Parts: map[string]string{"respond": "r"}, resolved: map[string]string{}},
			[]string{"respond added", "connection core removed", "target removed"}},
		{"a secret rotated", &Pipeline{Parts: target.Parts, resolved: map[string]string{"connection core": "key-2", "target.headers.X-Key": "k"}},
			[]string{"a value from the environment or a secret changed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChangedParts(target, tt.new); !slices.Equal(got, tt.want) {
				t.Errorf("changed %q, want %q", got, tt.want)
			}
		})
	}
}

// A connection that merges another's settings (<<: *anchor) changes when
// they do: written out as they stand, the merge looked the same, and a
// reload kept the old base URL (a review).
func TestAMergedConnectionChangesWithItsAnchor(t *testing.T) {
	dir := t.TempDir()
	conns := `connections:
  api: &api
    type: http
    base_url: ${env:API_URL}
    bearer_token: ${secret:API_TOKEN}
  api_eu:
    <<: *api
    bearer_token: ${secret:API_TOKEN}
    timeout: 5s
`
	if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), []byte(conns), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte("source: { type: http, path: /in }\ntarget:\n  connection: api_eu\n  method: POST\n  path: /x\n  body: { a: 1 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(url string) *Pipeline {
		t.Helper()
		env := testEnv(t)
		env["API_URL"] = url
		l, err := NewLoader(connectors.Catalog(), secrets.NewResolver(func(n string) (string, bool) { v, ok := env[n]; return v, ok }, "", &secrets.Masker{}))
		if err != nil {
			t.Fatal(err)
		}
		proj := l.Load([]string{file})
		if err := proj.Diagnostics.Err(); err != nil || len(proj.Pipelines) != 1 {
			t.Fatalf("%v", err)
		}
		return proj.Pipelines[0]
	}
	old, changed := load("https://one.example.com"), load("https://two.example.com")
	if old.Same(changed) || !slices.Equal(ChangedParts(old, changed), []string{"a value from the environment or a secret changed"}) {
		t.Errorf("API_URL changed under a merge: same %v, changed %q", old.Same(changed), ChangedParts(old, changed))
	}
	// And a setting the anchor gains.
	if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), []byte(strings.Replace(conns, "type: http\n", "type: http\n    rate_limit: 5/s\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	edited := load("https://one.example.com")
	if old.Version == edited.Version || !slices.Equal(ChangedParts(old, edited), []string{"connection api_eu changed"}) {
		t.Errorf("the anchor gained a rate_limit: version %s (was %s), changed %q", edited.Version, old.Version, ChangedParts(old, edited))
	}
}

// A rotated secret changes a value, not the part of the file that reads
// it: resolved in place before the parts were hashed, it also said
// "source changed" (a QA run).
func TestARotatedSecretChangesNoPart(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{ConnectionsFileName, "offer-issued-to-braze-campaign.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "pipelines", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func(token string) *Pipeline {
		t.Helper()
		env := testEnv(t)
		env["SESSIONM_WEBHOOK_TOKEN"] = token
		l, err := NewLoader(connectors.Catalog(), secrets.NewResolver(func(n string) (string, bool) { v, ok := env[n]; return v, ok }, "", &secrets.Masker{}))
		if err != nil {
			t.Fatal(err)
		}
		proj := l.Load([]string{filepath.Join(dir, "offer-issued-to-braze-campaign.yaml")})
		if err := proj.Diagnostics.Err(); err != nil || len(proj.Pipelines) != 1 {
			t.Fatalf("%v", err)
		}
		return proj.Pipelines[0]
	}
	old, rotated := load("token-one"), load("token-two")
	if old.Same(rotated) || !slices.Equal(ChangedParts(old, rotated), []string{"a value from the environment or a secret changed"}) {
		t.Errorf("the webhook token rotated: same %v, changed %q", old.Same(rotated), ChangedParts(old, rotated))
	}
}
