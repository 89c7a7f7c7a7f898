package engine

import (
	"bytes"
	"net/http"
)

// WithoutCredentialHeaders is h as a pipeline sees it: without the
// headers IsCredentialHeader names. The values are h's, shared.
func WithoutCredentialHeaders(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for name, values := range h {
		if !IsCredentialHeader(name) {
			out[name] = values
		}
	}
	return out
}

// IsCredentialHeader names the request headers a webhook's event never
// keeps, nor writes to disk: the caller's secrets (Authorization,
// Proxy-Authorization, Cookie, and any whose name says it carries one:
// X-Api-Key, X-Auth-Token, X-Webhook-Secret, signatures). Templates have no
// business reading them.
func IsCredentialHeader(name string) bool {
	// Lower-cased on the stack: strings.ToLower allocated for every
	// header of every webhook (canonical names have capitals).
	var buf [64]byte
	lower := buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	if string(lower) == "idempotency-key" {
		return false
	}
	for _, word := range credentialWords {
		if bytes.Contains(lower, word) {
			return true
		}
	}
	for _, word := range credentialEnds {
		if bytes.HasSuffix(lower, word) {
			return true
		}
	}
	return false
}

var (
	credentialWords = [][]byte{[]byte("auth"), []byte("token"), []byte("secret"), []byte("key"), []byte("passw"), []byte("signature"), []byte("cookie"), []byte("credential"), []byte("session"), []byte("passphrase"), []byte("pwd"), []byte("bearer")}
	// Short words only as the name's last word: X-Api-Pass, X-Sig, but
	// not X-Passthrough or X-Design.
	credentialEnds = [][]byte{[]byte("-pass"), []byte("_pass"), []byte("-sig"), []byte("_sig"), []byte("-jwt")}
)
