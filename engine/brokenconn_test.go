package engine

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A connection with any problem is not built, so the pipelines that use
// it are not either: built with the setting in error left out (no rate
// limit, the default timeout), it would run without it, and engine run's
// reload swapped it in for the running connection. The problem is
// reported once, at its line in connections.yaml; pipelines on other
// connections build.
func TestAConnectionWithAProblemIsBroken(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{"rate_limit: 1 per m", `connections.yaml:13:17: connections.sessionm_core.rate_limit: "1 per m"`},
		{"rate_limit: 0/s", `connections.yaml:13:17: connections.sessionm_core.rate_limit: "0/s" is not a rate limit`},
		{"timeout: banana", `connections.yaml:13:14: connections.sessionm_core.timeout: "banana" is not a positive duration`},
		{"timeout: 0s", `connections.yaml:13:14: connections.sessionm_core.timeout: "0s" is not a positive duration`},
		{"allow_plain_http: maybe", `connections.yaml:13:23: connections.sessionm_core.allow_plain_http: "maybe" is not true or false`},
		{"rate_limt: 1/m", `connections.yaml:13:5: connections.sessionm_core.rate_limt: unknown key "rate_limt"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{ConnectionsFileName, "braze-segment-to-sessionm-tags.yaml", "points-awarded-to-braze-canvas.yaml"} {
				raw, err := os.ReadFile(filepath.Join("..", "pipelines", f))
				if err != nil {
					t.Fatal(err)
				}
				s := string(raw)
				if f == ConnectionsFileName {
					s = strings.Replace(s, "api_secret: ${secret:SESSIONM_API_SECRET}\n", "api_secret: ${secret:SESSIONM_API_SECRET}\n    "+tt.line+"\n", 1)
				}
				if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, _ := testLoader(t)
			proj := l.Load([]string{dir})
			var got []string
			for _, d := range proj.Diagnostics.Items() {
				got = append(got, d.String())
			}
			// Sorted by file: the pipeline's line comes first.
			pipelineLine := filepath.Join(dir, "braze-segment-to-sessionm-tags.yaml") + `:20:15: target.connection: connection "sessionm_core" cannot be used until the problems reported in ` + filepath.Join(dir, ConnectionsFileName) + " are fixed"
			if len(got) != 2 || got[0] != pipelineLine || !strings.HasPrefix(got[1], filepath.Join(dir, ConnectionsFileName)+":") || !strings.Contains(got[1], tt.want) {
				t.Fatalf("problems\n%s\nwant\n%s\nand one with %q", strings.Join(got, "\n"), pipelineLine, tt.want)
			}
			var built []string
			for _, p := range proj.Pipelines {
				built = append(built, p.Name)
			}
			if !slices.Equal(built, []string{"points-awarded-to-braze-canvas"}) {
				t.Errorf("built %v, want only the pipeline on braze", built)
			}
			if proj.Connections["sessionm_core"] != nil || proj.Connections["braze"] == nil {
				t.Errorf("connections built: %v", slices.Sorted(maps.Keys(proj.Connections)))
			}
		})
	}
}
