package webguard

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

var noContent = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

func TestIPHostsOnly(t *testing.T) {
	h := IPHostsOnly(noContent)
	for host, want := range map[string]int{
		"127.0.0.1:8079":        204,
		"localhost:8079":        204,
		"[::1]:8079":            204,
		"10.1.2.3:8081":         204,
		"127.0.0.1":             204,
		"evil.example.com:8079": 403,
		"attacker.test":         403,
		"localhost.evil.test":   403,
		"LOCALHOST:8079":        204,
		"localhost.:8079":       204,
		"localhost..":           403,
		"evil.localhost":        403,
	} {
		req := httptest.NewRequest("GET", "/status", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
		}
	}
}

// A web page cannot make the operator's browser change something:
// cross-site requests that do are refused; curl, which sends neither
// Origin nor Sec-Fetch-Site, and reads are not.
func TestLocalRefusesCrossSiteRequests(t *testing.T) {
	h := Local(noContent)
	tests := []struct {
		method, path string
		host         string
		header       map[string]string
		want         int
	}{
		{"POST", "/dlq/2/replay", "127.0.0.1:8079", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403},
		{"POST", "/-/reload", "127.0.0.1:8079", map[string]string{"Origin": "https://evil.example"}, 403},
		{"POST", "/dlq/2/replay", "127.0.0.1:8079", map[string]string{"Sec-Fetch-Site": "same-origin"}, 204},
		{"POST", "/dlq/2/replay", "127.0.0.1:8079", nil, 204}, // curl
		{"GET", "/status", "127.0.0.1:8079", map[string]string{"Sec-Fetch-Site": "cross-site"}, 204},
		// DNS rebinding: the page's requests are same-origin, but name
		// the page's host.
		{"POST", "/-/reload", "rebind.evil.example:8079", map[string]string{"Sec-Fetch-Site": "same-origin"}, 403},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		req.Host = tt.host
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s %s Host %s %v: %d, want %d", tt.method, tt.path, tt.host, tt.header, rec.Code, tt.want)
		}
	}
}
