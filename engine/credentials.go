package engine

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/loyalty-connector/engine/engine/secrets"
)

// WithoutCredentialHeaders is h as a pipeline sees it: without the
// headers IsCredentialHeader names, nor the one auth (a route's
// source.auth, nil for none) checks an HMAC signature in, whatever it is
// called (X-Braze-Digest, X-Checksum): the signature stays valid for its
// body, so whoever read it in a template's output, a dry run or a dead
// letter could send that body to the route again. The values are h's,
// shared.
func WithoutCredentialHeaders(h http.Header, auth *InboundAuth) http.Header {
	signature := ""
	if auth != nil && auth.HMAC != nil {
		signature = auth.HMAC.Header
	}
	out := make(http.Header, len(h))
	for name, values := range h {
		if !IsCredentialHeader(name) && (signature == "" || !strings.EqualFold(name, signature)) {
			out[name] = values
		}
	}
	return out
}

// ShownHeader is how a request header the engine sends is shown in a dry
// run or a dead letter: one IsCredentialHeader names by its name alone,
// Authorization and Proxy-Authorization keeping their scheme ("Basic
// ****"). Its value may be built from secrets in a way no masker knows
// (base64 of user:password made in an expr step showed the password's
// part: a security review).
func ShownHeader(name, value string) string {
	if !IsCredentialHeader(name) || value == "" {
		return value
	}
	if strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Proxy-Authorization") {
		if scheme, _, ok := strings.Cut(value, " "); ok {
			return scheme + " " + secrets.Mask
		}
	}
	return secrets.Mask
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
	credentialWords = [][]byte{[]byte("auth"), []byte("token"), []byte("secret"), []byte("key"), []byte("passw"), []byte("signature"), []byte("cookie"), []byte("credential"), []byte("session"), []byte("passphrase"), []byte("pwd"), []byte("bearer"),
		[]byte("hmac"), []byte("passcode"), []byte("csrf"), []byte("xsrf")}
	// Short words only as the name's last word: X-Api-Pass, X-Sig, X-Otp,
	// but not X-Passthrough, X-Design or X-Footprint.
	credentialEnds = [][]byte{[]byte("-pass"), []byte("_pass"), []byte("-sig"), []byte("_sig"), []byte("-jwt"), []byte("-otp"), []byte("_otp")}
)
