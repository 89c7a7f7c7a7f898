package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A connection field's own check (braze's users_track_max_updates) is
// reported at the value, whether it is written as a number, as text or
// comes from ${env:...}; the schema bounds a number.
func TestUsersTrackMaxUpdatesIsChecked(t *testing.T) {
	tests := []struct {
		value string
		want  string // the problem, "" for none
	}{
		{"50", ""},
		{`"50"`, ""},
		{"225", ""},
		{"1", ""},
		{"0", "must be at least 1, not 0"},
		{"226", "must be at most 225, not 226"},
		{"fifty", `users_track_max_updates must be a whole number from 1 to 225 (Braze takes at most 75 objects per array, 225 in all), not "fifty"`},
		{`"-5"`, `not "-5"`},
		{"${env:SESSIONM_API_KEY}", "must be a whole number from 1 to 225"}, // resolved: not a number
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			dir := t.TempDir()
			conns := "connections:\n  braze:\n    type: braze\n    base_url: https://rest.iad-01.braze.com\n    api_key: ${secret:API_TOKEN}\n    users_track_max_updates: " + tt.value + "\n"
			if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), []byte(conns), 0o600); err != nil {
				t.Fatal(err)
			}
			l, _ := testLoader(t)
			proj := l.Load([]string{dir})
			items := proj.Diagnostics.Items()
			switch {
			case tt.want == "" && len(items) > 0:
				t.Fatalf("problems: %v", items)
			case tt.want == "":
				if got := proj.Connections["braze"].Fields["users_track_max_updates"]; got != strings.Trim(tt.value, `"`) {
					t.Fatalf("users_track_max_updates %q", got)
				}
			case len(items) != 1 || !strings.Contains(items[0].String(), tt.want):
				t.Fatalf("problems %v, want one with %q", items, tt.want)
			case !strings.Contains(items[0].String(), ConnectionsFileName+":6:30: connections.braze.users_track_max_updates: "):
				t.Fatalf("problem %q is not placed at the value", items[0])
			}
		})
	}
}
