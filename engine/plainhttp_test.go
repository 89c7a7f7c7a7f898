package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SessionM and Braze serve HTTPS only: their connections refuse an
// http:// base_url that leaves this machine, which would send the
// credentials in clear, unless the connection opts in; the generic http
// type keeps taking http:// anywhere.
func TestPlainHTTPBaseURL(t *testing.T) {
	const refused = "would send the %s credentials unencrypted, and the service answers only over HTTPS; write https:// (plain http:// is for this machine only: localhost, 127.0.0.1, [::1]), or, for an emulator on another host, set allow_plain_http: true on this connection"
	typeFields := map[string]string{
		"sessionm_core":    "    api_key: core-key\n    api_secret: ${secret:API_TOKEN}\n",
		"sessionm_connect": "    authorization: ${secret:API_TOKEN}\n    retailer_id: r-1\n",
		"braze":            "    api_key: ${secret:API_TOKEN}\n",
		"http":             "",
	}
	tests := []struct {
		name, typ, baseURL string
		optIn              string // allow_plain_http as written; "" leaves it out
		want               string // the problem, "" for none
		at                 string // where the problem is: "base_url" or "allow_plain_http"
	}{
		{"https remote", "sessionm_core", "https://api-acme.ent-sessionm.com", "", "", ""},
		{"https remote braze", "braze", "https://rest.iad-01.braze.com", "", "", ""},
		{"http remote core", "sessionm_core", "http://sessionm.test/core", "", `"http://sessionm.test/core" ` + strings.Replace(refused, "%s", "sessionm_core", 1), "base_url"},
		{"http remote connect", "sessionm_connect", "http://connect.example.com:8080", "", `"http://connect.example.com:8080" ` + strings.Replace(refused, "%s", "sessionm_connect", 1), "base_url"},
		{"http remote braze", "braze", "http://rest.iad-01.braze.com", "", `"http://rest.iad-01.braze.com" ` + strings.Replace(refused, "%s", "braze", 1), "base_url"},
		{"http look-alike of localhost", "braze", "http://localhost.example.com", "", "would send the braze credentials unencrypted", "base_url"},
		{"http look-alike of 127.0.0.1", "braze", "http://127.0.0.1.nip.io", "", "would send the braze credentials unencrypted", "base_url"},
		{"http remote opted out", "braze", "http://emulator:8081/braze", "false", "would send the braze credentials unencrypted", "base_url"},
		{"http 127.0.0.1", "sessionm_core", "http://127.0.0.1:8081/sessionm/core", "", "", ""},
		{"http 127.x.y.z", "sessionm_connect", "http://127.1.2.3:8081/sessionm/connect", "", "", ""},
		{"http localhost", "braze", "http://localhost:8081/braze", "", "", ""},
		{"http LOCALHOST", "braze", "http://LOCALHOST:8081/braze", "", "", ""},
		{"http ::1", "braze", "http://[::1]:8081/braze", "", "", ""},
		// The unspecified address reaches this machine, but HTTP_PROXY
		// is bypassed for loopback only: the proxy would see the
		// credentials.
		{"http 0.0.0.0", "braze", "http://0.0.0.0:8081/braze", "", `"http://0.0.0.0:8081/braze" ` + strings.Replace(refused, "%s", "braze", 1), "base_url"},
		{"http ::", "sessionm_core", "http://[::]:8081/sessionm/core", "", `"http://[::]:8081/sessionm/core" ` + strings.Replace(refused, "%s", "sessionm_core", 1), "base_url"},
		{"http remote opted in", "sessionm_core", "http://sessionm-emulator:8081/core", "true", "", ""},
		{"http remote opted in as text", "braze", "http://braze-emulator:8081", `"True"`, "", ""},
		{"generic http remote", "http", "http://internal.example.com/api", "", "", ""},
		// The schema refuses it, so an editor flags it as written too.
		{"bad opt-in", "sessionm_core", "http://sessionm.test", "yes", `"yes" is not true or false; set it to true only for an emulator reached over plain HTTP on another host`, "allow_plain_http"},
		{"bad opt-in on https", "braze", "https://rest.iad-01.braze.com", `"1"`, `"1" is not true or false`, "allow_plain_http"},
		{"bad opt-in on generic http", "http", "http://internal.example.com", "on", `"on" is not true or false`, "allow_plain_http"},
		{"bad opt-in from the environment", "sessionm_core", "http://sessionm.test", "${env:PLAIN_HTTP_YES}", `"yes" is not true or false`, "allow_plain_http"},
		{"opt-in of the wrong type", "braze", "http://braze-emulator", "1", "allow_plain_http", "allow_plain_http"}, // the schema's problem, alone
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conns := "connections:\n  c:\n    type: " + tt.typ + "\n    base_url: " + tt.baseURL + "\n"
			if tt.optIn != "" {
				conns += "    allow_plain_http: " + tt.optIn + "\n"
			}
			conns += typeFields[tt.typ]
			if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), []byte(conns), 0o600); err != nil {
				t.Fatal(err)
			}
			l, _ := testLoader(t)
			proj := l.Load([]string{dir})
			items := proj.Diagnostics.Items()
			if tt.want == "" {
				if len(items) > 0 {
					t.Fatalf("problems: %v", items)
				}
				if c := proj.Connections["c"]; c == nil || c.BaseURL.String() != tt.baseURL {
					t.Fatalf("connection %+v, want one at %s", c, tt.baseURL)
				}
				return
			}
			pos := map[string]string{"base_url": ":4:15: connections.c.base_url: ", "allow_plain_http": ":5:23: connections.c.allow_plain_http: "}[tt.at]
			switch {
			case len(items) != 1 || !strings.Contains(items[0].String(), tt.want):
				t.Fatalf("problems %v, want one with %q", items, tt.want)
			case !strings.Contains(items[0].String(), ConnectionsFileName+pos):
				t.Fatalf("problem %q is not at %s", items[0], pos)
			case strings.Contains(items[0].String(), "test-api-token"):
				t.Fatalf("problem %q quotes the credential", items[0])
			case proj.Connections["c"] != nil && tt.typ != "http" && strings.HasPrefix(tt.baseURL, "http://"):
				t.Fatal("the connection was built with a plain HTTP base_url")
			}
		})
	}
}
