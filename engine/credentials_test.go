package engine

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine/secrets"
)

// The header a route checks an HMAC signature in is dropped whatever it
// is called, as the headers named like a credential are: a template, a
// dry run or a dead letter would show a signature that is valid for the
// body.
func TestWithoutCredentialHeaders(t *testing.T) {
	hmacIn := func(header string) *InboundAuth {
		return &InboundAuth{HMAC: &HMACAuth{Header: header, Secret: "s"}}
	}
	for _, tc := range []struct {
		name string
		auth *InboundAuth
		want []string // the names kept, sorted
	}{
		{"no auth: only credential names go", nil, []string{"Content-Type", "X-Braze-Digest", "X-Checksum"}},
		{"bearer: the same", &InboundAuth{Bearer: "t"}, []string{"Content-Type", "X-Braze-Digest", "X-Checksum"}},
		{"hmac in X-Checksum", hmacIn("X-Checksum"), []string{"Content-Type", "X-Braze-Digest"}},
		{"hmac in a header written in lower case", hmacIn("x-braze-digest"), []string{"Content-Type", "X-Checksum"}},
		{"hmac in a header named like a credential", hmacIn("X-Signature"), []string{"Content-Type", "X-Braze-Digest", "X-Checksum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, name := range []string{"Authorization", "Content-Type", "X-Checksum", "X-Braze-Digest", "X-Signature"} {
				h.Set(name, "v")
			}
			var kept []string
			for name := range WithoutCredentialHeaders(h, tc.auth) {
				kept = append(kept, name)
			}
			slices.Sort(kept)
			if !slices.Equal(kept, tc.want) {
				t.Errorf("kept %v, want %v", kept, tc.want)
			}
		})
	}
}

// A credential read from ${env:NAME} (a credential-named header or query
// parameter, a route's inbound auth) is masked as a secret is; validate's
// warning about a credential written in the file offers ${env:NAME} as
// well (a security review found it printed in dry runs and dead letters).
// A setting that is no credential stays readable.
func TestCredentialsFromTheEnvironmentAreMasked(t *testing.T) {
	dir := t.TempDir()
	conns, err := os.ReadFile("testdata/good/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		ConnectionsFileName: string(conns),
		"p.yaml": `
source:
  type: http
  path: /in
  auth: { bearer: "${env:INBOUND_TOKEN_X}" }
target:
  connection: api
  method: POST
  path: /x
  headers: { X-Api-Key: "${env:HEADER_KEY_X}", X-Campaign: "${env:CAMPAIGN_X}" }
  query: { api_key: "${env:QUERY_KEY_X:-from-the-default}", campaign: "${env:CAMPAIGN_X}" }
  body: { a: 1 }
`,
		"signed.yaml": `
source:
  type: http
  path: /signed
  auth: { hmac: { header: "${env:SIG_HEADER_X}", secret: "${env:HMAC_SECRET_X}" } }
target: { connection: api, method: POST, path: /x, body: { a: 1 } }
`,
	}
	writeFiles(t, dir, files)
	env := testEnv(t)
	env["INBOUND_TOKEN_X"], env["HEADER_KEY_X"], env["CAMPAIGN_X"] = "inbound-token-value", "header-key-value", "spring-campaign"
	env["SIG_HEADER_X"], env["HMAC_SECRET_X"] = "X-Partner-Signature", "hmac-secret-value"
	masker := &secrets.Masker{}
	l, err := NewLoader(connectors.Catalog(), secrets.NewResolver(func(name string) (string, bool) { v, ok := env[name]; return v, ok }, "", masker))
	if err != nil {
		t.Fatal(err)
	}
	proj := l.Load([]string{filepath.Join(dir, "p.yaml"), filepath.Join(dir, "signed.yaml")})
	if err := proj.Diagnostics.Err(); err != nil {
		t.Fatal(err)
	}
	// The signature's header is a setting, not a credential.
	got := masker.String("inbound-token-value header-key-value from-the-default spring-campaign hmac-secret-value X-Partner-Signature")
	if want := "**** **** **** spring-campaign **** X-Partner-Signature"; got != want {
		t.Errorf("masked as %q, want %q", got, want)
	}
}

// A credential header is shown by its name alone in dry runs and dead
// letters, whatever its value was built from; Authorization keeps its
// scheme. Other headers are shown as they are.
func TestShownHeader(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"Authorization", "Basic dXNlcjpQdy1TaG9ydA==", "Basic ****"},
		{"Proxy-Authorization", "Bearer abc", "Bearer ****"},
		{"Authorization", "rawtoken", "****"},
		{"X-Api-Key", "key-built-in-a-step", "****"},
		{"X-Webhook-Signature", "sha256=ab12", "****"},
		{"Idempotency-Key", "evt-1", "evt-1"},
		{"Content-Type", "application/json", "application/json"},
		{"X-Api-Key", "", ""},
	} {
		if got := ShownHeader(tt.name, tt.value); got != tt.want {
			t.Errorf("ShownHeader(%s, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
		}
	}
}
