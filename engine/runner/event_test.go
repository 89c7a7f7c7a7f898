package runner

import (
	"net/http/httptest"
	"testing"
)

// The caller's credentials never reach the inbox, whatever the header is
// called.
func TestStoredRequestDropsCredentials(t *testing.T) {
	req := httptest.NewRequest("POST", "/hooks/x?a=1", nil)
	for _, h := range []string{"Authorization", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Webhook-Secret", "X-Hub-Signature-256", "Proxy-Authorization"} {
		req.Header.Set(h, "s3cret")
	}
	req.Header.Set("Idempotency-Key", "evt-1")
	req.Header.Set("Content-Type", "application/json")
	got := newStoredRequest(req, nil).Headers
	if len(got) != 2 || got.Get("Idempotency-Key") != "evt-1" || got.Get("Content-Type") == "" {
		t.Fatalf("stored headers %v", got)
	}
}
