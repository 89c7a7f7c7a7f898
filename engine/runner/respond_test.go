package runner

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
)

// The default cache key (no cache.key) tells apart every two requests the
// route tells apart: a shared key answers one caller with another's
// wallet.
func TestDefaultCacheKey(t *testing.T) {
	rs := newResponder(&Runner{clock: noWaitClock{}}, &engine.Pipeline{Respond: &engine.Respond{Cache: &engine.ResponseCache{TTL: time.Minute}}})
	key := func(target string) string {
		return rs.key(&engine.Event{}, httptest.NewRequest("GET", target, nil), time.Now())
	}
	for _, tt := range []struct {
		name string
		a, b string
		same bool
	}{
		// request.query.culture is "es-ES,fr-FR" in one, "es-ES" in the other.
		{"a value with a comma, a repeated name", "/wallet/u-1?culture=es-ES,fr-FR", "/wallet/u-1?culture=es-ES&culture=fr-FR", false},
		// /wallet/{user_id}/{culture}: user a/b, or user a.
		{"an escaped slash in different segments", "/wallet/a%2Fb/c", "/wallet/a/b%2Fc", false},
		{"an escaped slash or none", "/wallet/a%2Fb", "/wallet/a/b", false},
		{"a value with & in it", "/wallet/u-1?a=1%262", "/wallet/u-1?a=1&2", false},
		{"the order of the values of one name", "/wallet/u-1?c=x&c=y", "/wallet/u-1?c=y&c=x", false},
		{"no query or an empty one", "/wallet/u-1", "/wallet/u-1?", true},
		{"the order of the names", "/wallet/u-1?a=1&b=2", "/wallet/u-1?b=2&a=1", true},
		{"the same request", "/wallet/u-1?culture=es-ES", "/wallet/u-1?culture=es-ES", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := key(tt.a), key(tt.b)
			if (ka == kb) != tt.same {
				t.Errorf("%s gives %q and %s gives %q; want the same key: %v", tt.a, ka, tt.b, kb, tt.same)
			}
		})
	}
}
