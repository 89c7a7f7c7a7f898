package engine

import (
	"net/http"
	"slices"
	"testing"
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
		{"no auth: only credential names go", nil, []string{"Content-Type", "X-Braze-Digest", "X-Hmac"}},
		{"bearer: the same", &InboundAuth{Bearer: "t"}, []string{"Content-Type", "X-Braze-Digest", "X-Hmac"}},
		{"hmac in X-Hmac", hmacIn("X-Hmac"), []string{"Content-Type", "X-Braze-Digest"}},
		{"hmac in a header written in lower case", hmacIn("x-braze-digest"), []string{"Content-Type", "X-Hmac"}},
		{"hmac in a header named like a credential", hmacIn("X-Signature"), []string{"Content-Type", "X-Braze-Digest", "X-Hmac"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, name := range []string{"Authorization", "Content-Type", "X-Hmac", "X-Braze-Digest", "X-Signature"} {
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
