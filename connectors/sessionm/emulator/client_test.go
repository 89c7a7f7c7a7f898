package emulator

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/connectors/sessionm"
	"github.com/loyalty-connector/engine/engine/spec"
)

// The engine's own description of the endpoints (connectors/sessionm) must
// work against the emulator: paths, auth, bodies that pass the endpoint's
// shape, and answers its ResponseError accepts — or reads as failures.
func TestEngineClient(t *testing.T) {
	e, _ := newEmu(t, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/sessionm/core/"):
			http.StripPrefix("/sessionm/core", e.Core()).ServeHTTP(w, r)
		default:
			http.StripPrefix("/sessionm/connect", e.Connect()).ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	env, err := readEnv("../../../examples/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	coreConn := &spec.Connection{Name: "sessionm_core", Type: sessionm.Core,
		Fields: map[string]string{"api_key": env["SESSIONM_API_KEY"], "api_secret": env["SESSIONM_API_SECRET"]}}
	connectConn := &spec.Connection{Name: "sessionm_connect", Type: sessionm.Connect,
		Fields: map[string]string{"authorization": env["SESSIONM_CONNECT_AUTH"], "retailer_id": env["SESSIONM_RETAILER_ID"]}}

	tests := []struct {
		conn     *spec.Connection
		base     string
		endpoint string
		params   map[string]string
		body     map[string]any
		failure  string // "" when ResponseError must accept the answer
	}{
		// sessionm.md §2 (C): F1's call, body of examples/events/braze-webhook-tags.json
		{coreConn, "/sessionm/core", "tags", map[string]string{"user_id": ana}, map[string]any{"tags": []any{"braze_test", "spring_promo"}, "ttl": 2592000}, ""},
		// sessionm.md §2 (C): F2's call by external id
		{coreConn, "/sessionm/core", "tags_by_external_id", map[string]string{"external_id": "u-1002"}, map[string]any{"tags": []any{"csv_import"}}, ""},
		{coreConn, "/sessionm/core", "tags_by_external_id", map[string]string{"external_id": "u-404"}, map[string]any{"tags": []any{"x"}}, "user_not_found"},
		// sessionm.md §3 (O)
		{coreConn, "/sessionm/core", "get_user", map[string]string{"user_id": ana}, nil, ""},
		// sessionm.md §4 (C): F3's body
		{connectConn, "/sessionm/connect", "get_user_offers", nil, map[string]any{"user_id": ana, "culture": "en-US", "skip": 0, "take": 1000, "include_pending_extended_data": false}, ""},
		// sessionm.md §4 (O)
		{connectConn, "/sessionm/connect", "issue_offer", nil, map[string]any{"user_id": ana, "offer_id": winter, "quantity": 1}, ""},
		{connectConn, "/sessionm/connect", "issue_offer", nil, map[string]any{"user_id": ana, "offer_id": coffee}, "not_available"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint+"/"+tt.failure, func(t *testing.T) {
			ep, ok := tt.conn.Type.Endpoint(tt.endpoint)
			if !ok {
				t.Fatalf("no endpoint %s", tt.endpoint)
			}
			path := ep.Path
			for ph, field := range ep.FromConnection {
				path = strings.ReplaceAll(path, "{"+ph+"}", url.PathEscape(tt.conn.Fields[field]))
			}
			for ph, v := range tt.params {
				path = strings.ReplaceAll(path, "{"+ph+"}", url.PathEscape(v))
			}
			var body io.Reader
			if tt.body != nil {
				b := maps.Clone(tt.body)
				for field, from := range ep.BodyDefaults {
					if _, set := b[field]; !set {
						b[field] = tt.conn.Fields[from]
					}
				}
				if v := ep.Body.Validate(jsonRoundTrip(t, b)); len(v) > 0 {
					t.Fatalf("the test body breaks the endpoint's shape: %v", v)
				}
				data, _ := json.Marshal(b)
				body = strings.NewReader(string(data))
			}
			r, _ := http.NewRequest(ep.Method, srv.URL+tt.base+path, body)
			if ep.ContentType != "" {
				r.Header.Set("Content-Type", ep.ContentType)
			}
			auth, err := tt.conn.Type.Authorize(tt.conn)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set(auth.Header, auth.Scheme+" "+auth.Credential)
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			err = tt.conn.Type.ResponseError(res.StatusCode, data)
			switch {
			case tt.failure == "" && err != nil:
				t.Fatalf("the engine reads a failure: %v", err)
			case tt.failure != "" && (err == nil || !strings.Contains(err.Error(), tt.failure)):
				t.Fatalf("the engine reads %v, want a failure naming %s", err, tt.failure)
			}
		})
	}
}

func jsonRoundTrip(t *testing.T, v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
