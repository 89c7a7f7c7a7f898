// Package webguard keeps web pages away from the engine's local HTTP
// listeners that act on the operator's behalf: the admin listener, the
// playground and the sandbox's control API. They take no credentials, so
// without a guard a page open in the operator's browser could post to
// them (a simple cross-site form post needs no preflight) or reach them
// through DNS rebinding.
package webguard

import (
	"net"
	"net/http"
	"strings"
)

// Local refuses cross-site requests that change something and requests
// addressed to a host name. Clients that send neither Origin nor
// Sec-Fetch-Site (curl, Go's http.Client) addressing an IP or localhost
// are unaffected, and so are reads.
func Local(h http.Handler) http.Handler {
	return IPHostsOnly(http.NewCrossOriginProtection().Handler(h))
}

// IPHostsOnly refuses requests whose Host is a name rather than an IP
// address or localhost. DNS rebinding points a name the page controls at
// 127.0.0.1, which makes the page's requests same-origin: the Host header
// is then the page's name, and only that gives them away.
func IPHostsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		// Host names are case-insensitive, and a final dot makes one
		// absolute: both are localhost still.
		if !strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") && net.ParseIP(strings.Trim(host, "[]")) == nil {
			http.Error(w, "this listener answers requests addressed to an IP address or localhost only, not to a host name (a web page could reach it through DNS rebinding); use http://127.0.0.1:PORT or the machine's IP address", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
