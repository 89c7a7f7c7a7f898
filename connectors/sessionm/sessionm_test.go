package sessionm

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/spec"
)

func TestResponseError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr bool
		want    []string // substrings of the error message
	}{
		// sessionm.md §1 Envelopes: Core success {"status":"ok", ...resource keys...}
		{"core ok", 200, `{"status":"ok","user":{"id":"u1"}}`, false, nil},
		// sessionm.md §1 Envelopes: Connect (Offers) success {"status":"ok","payload":{...}}
		{"connect ok", 200, `{"status":"ok","payload":{"total_records":1}}`, false, nil},
		// sessionm.md §1 Envelopes: POS "OK" in upper case with errors present but null
		{"POS upper-case OK, errors null", 200, `{"status":"OK","payload":null,"errors":null}`, false, nil},
		// sessionm.md §1 HTTP codes: 200 may carry "status":"error"
		{"200 with status error", 200, `{"status":"error","errors":{"code":"user_not_found"}}`, true,
			[]string{"user_not_found"}},
		// sessionm.md §1: the connector must compare status case-insensitively
		{"200 with upper-case ERROR", 200, `{"status":"ERROR","errors":{"code":"not_found"}}`, true,
			[]string{"not_found"}},
		{"200 with mixed-case Error", 200, `{"status":"Error"}`, true, []string{"status error, without details"}},
		// a tag named "error" is no error
		{"ok with a tag named error", 200, `{"status":"ok","tags":{"error":{"count":1}}}`, false, nil},
		// sessionm.md §1 Real error bodies: code and message
		{"code and message", 200, `{"status":"error","errors":{"code":"internal_server_error","message":"internal server error"}}`, true,
			[]string{"internal_server_error", "internal server error"}},
		// sessionm.md §1 Real error bodies: field errors keep the field detail
		{"field errors", 200, `{"status":"error","errors":{"user":{"email":"Email Already In Use"},"code":"validation"}}`, true,
			[]string{"validation", `"user"`, `"email"`, "Email Already In Use"}},
		// sessionm.md §1 HTTP codes: 404 = not found by id (with the error envelope)
		{"404 with envelope", 404, `{"status":"error","errors":{"code":"user_not_found"}}`, true,
			[]string{"404", "user_not_found"}},
		// sessionm.md §1 (A): 422 for validation, field detail kept
		{"422 validation", 422, `{"status":"error","errors":{"user":{"state":"not a valid state"},"code":"validation"}}`, true,
			[]string{"422", "validation", "not a valid state"}},
		// sessionm.md §7 (A): 429 with code rate_limited
		{"429 rate limited", 429, `{"status":"error","errors":{"code":"rate_limited"}}`, true,
			[]string{"429", "rate_limited"}},
		// sessionm.md §1 HTTP codes: 500 = internal error; a non-JSON body is quoted
		{"500 non-JSON", 500, "<html><body>Internal Server Error</body></html>", true,
			[]string{"500", "<html><body>Internal Server Error</body></html>"}},
		// sessionm.md §1 HTTP codes: 500 with nothing to read
		{"500 empty body", 500, "", true, []string{"500", "(empty body)"}},
		// sessionm.md §1 HTTP codes: 401 whose errors are null falls back to the body
		{"401 errors null", 401, `{"status":"error","errors":null}`, true,
			[]string{"401", `{"status":"error","errors":null}`}},
		// sessionm.md §1 Envelopes: a non-2xx is an error even when the body says ok
		{"503 says ok", 503, `{"status":"ok"}`, true, []string{"503"}},
	}
	for _, ct := range []*spec.ConnectionType{Core, Connect} {
		for _, tt := range tests {
			t.Run(ct.Name+"/"+tt.name, func(t *testing.T) {
				err := ct.ResponseError(tt.status, []byte(tt.body))
				if (err != nil) != tt.wantErr {
					t.Fatalf("ResponseError(%d, %s) = %v, want error: %v", tt.status, tt.body, err, tt.wantErr)
				}
				if err == nil {
					return
				}
				for _, sub := range tt.want {
					if !strings.Contains(err.Error(), sub) {
						t.Errorf("error %q does not contain %q", err, sub)
					}
				}
			})
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name   string
		typ    *spec.ConnectionType
		fields map[string]string
		want   spec.Auth
	}{
		// sessionm.md §1: Core auth is HTTP Basic base64(api_key:api_secret)
		{"core basic", Core, map[string]string{"api_key": "key1", "api_secret": "sec1"},
			spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: b64("key1:sec1")}},
		// sessionm.md §1: Connect takes the Basic authorization string, with the scheme
		{"connect with Basic prefix", Connect, map[string]string{"authorization": "Basic " + b64("ck:cs"), "retailer_id": "r"},
			spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: b64("ck:cs")}},
		// sessionm.md §1: ... or without it
		{"connect bare credential", Connect, map[string]string{"authorization": b64("ck:cs")},
			spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: b64("ck:cs")}},
		// sessionm.md §1: the scheme is matched without case, extra spaces dropped
		{"connect lower-case scheme and spaces", Connect, map[string]string{"authorization": "  basic   " + b64("ck:cs") + " \n"},
			spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: b64("ck:cs")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&spec.Connection{Type: tt.typ, Fields: tt.fields}).Auth()
			if err != nil {
				t.Fatalf("Auth() error: %v", err)
			}
			if got != tt.want {
				t.Errorf("Auth() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name           string
		typ            *spec.ConnectionType
		endpoint       string
		method         string
		path           string
		pathParams     []string
		fromConnection map[string]string
		bodyDefaults   map[string]string
	}{
		// sessionm.md §2: POST /priv/v1/apps/:api_key/users/:user_id/tags, api_key from the connection (§1)
		{"tags", Core, "tags", http.MethodPost, "/priv/v1/apps/{api_key}/users/{user_id}/tags",
			[]string{"user_id"}, map[string]string{"api_key": "api_key"}, nil},
		// sessionm.md §2: POST /priv/v1/apps/:api_key/external/users/:external_id/tags
		{"tags by external id", Core, "tags_by_external_id", http.MethodPost, "/priv/v1/apps/{api_key}/external/users/{external_id}/tags",
			[]string{"external_id"}, map[string]string{"api_key": "api_key"}, nil},
		// sessionm.md §3: GET /users/:user_id under /priv/v1/apps/:api_key
		{"get user", Core, "get_user", http.MethodGet, "/priv/v1/apps/{api_key}/users/{user_id}",
			[]string{"user_id"}, map[string]string{"api_key": "api_key"}, nil},
		// sessionm.md §4: POST /offers/api/2.0/offers/get_user_offers, retailer_id required (filled from the connection)
		{"get user offers", Connect, "get_user_offers", http.MethodPost, "/offers/api/2.0/offers/get_user_offers",
			nil, nil, map[string]string{"retailer_id": "retailer_id"}},
		// sessionm.md §4 Sibling Connect endpoints: acquisition/issue
		{"issue offer", Connect, "issue_offer", http.MethodPost, "/offers/api/2.0/offers/acquisition/issue",
			nil, nil, map[string]string{"retailer_id": "retailer_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := tt.typ.Endpoint(tt.endpoint)
			if !ok {
				t.Fatalf("%s has no endpoint %q (has %v)", tt.typ.Name, tt.endpoint, tt.typ.EndpointNames())
			}
			if e.Method != tt.method || e.Path != tt.path {
				t.Errorf("%s %s, want %s %s", e.Method, e.Path, tt.method, tt.path)
			}
			if got := e.PathParams(); !reflect.DeepEqual(got, tt.pathParams) {
				t.Errorf("PathParams() = %q, want %q", got, tt.pathParams)
			}
			if !reflect.DeepEqual(e.FromConnection, tt.fromConnection) {
				t.Errorf("FromConnection = %v, want %v", e.FromConnection, tt.fromConnection)
			}
			if !reflect.DeepEqual(e.BodyDefaults, tt.bodyDefaults) {
				t.Errorf("BodyDefaults = %v, want %v", e.BodyDefaults, tt.bodyDefaults)
			}
			for _, p := range connPlaceholders(e) {
				if _, ok := tt.typ.Field(e.FromConnection[p]); !ok {
					t.Errorf("placeholder %q is filled from unknown field %q", p, e.FromConnection[p])
				}
			}
		})
	}
}

// connPlaceholders lists the placeholders an endpoint takes from the connection.
func connPlaceholders(e *spec.Endpoint) []string {
	var out []string
	for _, p := range spec.Placeholders(e.Path) {
		if _, ok := e.FromConnection[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

func TestBodies(t *testing.T) {
	tests := []struct {
		name     string
		typ      *spec.ConnectionType
		endpoint string
		body     map[string]any
		want     []string // violations as "path: message" substrings; nil = valid
	}{
		// sessionm.md §2 Request: tags (one or more) and ttl in seconds
		{"tags with ttl", Core, "tags", map[string]any{"tags": []any{"braze_test", "vip"}, "ttl": int64(2592000)}, nil},
		// sessionm.md §2 Request: without ttl the tag is a counter tag
		{"counter tag", Core, "tags_by_external_id", map[string]any{"tags": []any{"cart_abandoner"}}, nil},
		// sessionm.md §2 Request: tags is required, one or more
		{"tags missing", Core, "tags", map[string]any{"ttl": int64(20000)}, []string{`"tags" is required`}},
		{"tags empty", Core, "tags", map[string]any{"tags": []any{}}, []string{"tags: needs at least 1 item(s)"}},
		// sessionm.md §2 Request: ttl is an integer
		{"ttl as text", Core, "tags", map[string]any{"tags": []any{"a"}, "ttl": "30d"}, []string{"ttl: must be an integer"}},
		{"ttl fraction", Core, "tags", map[string]any{"tags": []any{"a"}, "ttl": 1.5}, []string{"ttl: must be an integer"}},
		// sessionm.md §2 Request: only tags and ttl
		{"tags misspelt", Core, "tags", map[string]any{"tag": []any{"a"}}, []string{`"tags" is required`, `unknown field "tag"`}},
		// sessionm.md §4 Request: every documented field
		{"get_user_offers full", Connect, "get_user_offers", map[string]any{
			"retailer_id": "0c6a2b3e-1d2c-4b1f-9a39-3c1c7d0f7a11", "user_id": "u1", "skip": int64(0), "take": int64(1000),
			"include_pending_extended_data": false, "culture": "en-US",
		}, nil},
		// sessionm.md §4 Request: retailer_id and user_id required
		{"get_user_offers no user", Connect, "get_user_offers", map[string]any{"retailer_id": "r"}, []string{`"user_id" is required`}},
		// sessionm.md §4 Request: take is an int
		{"get_user_offers take text", Connect, "get_user_offers", map[string]any{"retailer_id": "r", "user_id": "u", "take": "all"}, []string{"take: must be an integer"}},
		// sessionm.md §4 Sibling endpoints: acquisition/issue {retailer_id, user_id, offer_id, quantity, issue_exact_version}
		{"issue_offer", Connect, "issue_offer", map[string]any{"retailer_id": "r", "user_id": "u", "offer_id": "o", "quantity": int64(1), "issue_exact_version": false}, nil},
		{"issue_offer no offer", Connect, "issue_offer", map[string]any{"retailer_id": "r", "user_id": "u"}, []string{`"offer_id" is required`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := tt.typ.Endpoint(tt.endpoint)
			if !ok {
				t.Fatalf("no endpoint %q", tt.endpoint)
			}
			got := e.Body.Validate(tt.body)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d violation(s) %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestPublicHidesSecrets(t *testing.T) {
	base, _ := url.Parse("https://api-demo.ent-sessionm.com")
	tests := []struct {
		name       string
		typ        *spec.ConnectionType
		fields     map[string]string
		wantShown  []string
		wantHidden []string
	}{
		// sessionm.md §1: api_key is in the path (public), api_secret is the secret
		{"core", Core, map[string]string{"api_key": "k", "api_secret": "s"}, []string{"api_key"}, []string{"api_secret"}},
		// sessionm.md §1: the Connect authorization string is a credential; retailer_id goes into bodies
		{"connect", Connect, map[string]string{"authorization": "Basic x", "retailer_id": "r"}, []string{"retailer_id"}, []string{"authorization"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := (&spec.Connection{Name: "c", Type: tt.typ, BaseURL: base, Fields: tt.fields}).Public()
			for _, f := range tt.wantShown {
				if pub[f] != tt.fields[f] {
					t.Errorf("Public()[%q] = %v, want %q", f, pub[f], tt.fields[f])
				}
			}
			for _, f := range tt.wantHidden {
				if _, ok := pub[f]; ok {
					t.Errorf("Public() exposes secret %q", f)
				}
			}
		})
	}
}

func TestEventSourceAcceptsAnyObject(t *testing.T) {
	// sessionm.md §5: the event envelope is our proposal (A), so it is not enforced
	if EventSource.Event != nil {
		t.Errorf("EventSource.Event = %+v, want nil (any shape)", EventSource.Event)
	}
	if EventSource.Kind != spec.HTTPSource || EventSource.DefaultMethod != http.MethodPost {
		t.Errorf("EventSource kind/method = %v/%s, want HTTP/POST", EventSource.Kind, EventSource.DefaultMethod)
	}
}

// sessionm.md §7: "Retries. Nothing is documented. → A: 5xx and 429 are
// retryable; 4xx and 200+status:error are not." retry_error_codes changes
// that per connection for the codes it lists.
func TestRetryErrorCodes(t *testing.T) {
	internal := `{"status":"error","errors":{"code":"internal_server_error","message":"internal server error"}}` // S10 (O)
	tests := []struct {
		name, codes string
		status      int
		body        string
		want        delivery.Verdict
	}{
		// A: by default 200 + status:error is final, whatever the code
		{"default, internal error as 200", "", 200, internal, delivery.Reject},
		{"default, rate_limited as 200", "", 200, `{"status":"error","errors":{"code":"rate_limited"}}`, delivery.Reject},
		{"default, ok", "", 200, `{"status":"ok"}`, delivery.Delivered},
		// listed codes are retried, under 200 or a 4xx; upper-case as the
		// docs print them matches the lower-case wire form (§1)
		{"listed, internal error as 200", "internal_server_error, rate_limited", 200, internal, delivery.Retry},
		{"listed in upper case", "INTERNAL_SERVER_ERROR", 200, internal, delivery.Retry},
		{"listed, spaces only", "rate_limited internal_server_error", 200, internal, delivery.Retry},
		{"listed, rate_limited as 200", "internal_server_error,rate_limited", 200, `{"status":"error","errors":{"code":"rate_limited"}}`, delivery.Retry},
		{"listed, under a 4xx", "not_available", 422, `{"status":"error","errors":{"code":"not_available"}}`, delivery.Retry},
		// other codes stay final
		{"not listed", "internal_server_error", 200, `{"status":"error","errors":{"code":"validation","user":{"email":"Email Already In Use"}}}`, delivery.Reject},
		{"no code", "internal_server_error", 200, `{"status":"error"}`, delivery.Reject},
		{"listed, still ok", "internal_server_error", 200, `{"status":"ok","tags":{"internal_server_error":{"count":1}}}`, delivery.Delivered},
		// 5xx and 429 are retried anyway (A)
		{"default, 500", "", 500, internal, delivery.Retry},
		{"default, 429", "", 429, `{"status":"error","errors":{"code":"rate_limited"}}`, delivery.Retry},
	}
	for _, ct := range []*spec.ConnectionType{Core, Connect} {
		for _, tt := range tests {
			t.Run(ct.Name+"/"+tt.name, func(t *testing.T) {
				conn := &spec.Connection{Type: ct, Fields: map[string]string{"retry_error_codes": tt.codes}}
				err := conn.ResponseReader()(tt.status, []byte(tt.body))
				if got := delivery.Classify(tt.status, nil, err); got != tt.want {
					t.Errorf("retry_error_codes %q, HTTP %d %s: %v (%v), want %v", tt.codes, tt.status, tt.body, got, err, tt.want)
				}
			})
		}
	}
}

// The common answer, 2xx and "ok", is read without allocating.
func TestOKAnswerDoesNotAllocate(t *testing.T) {
	read := (&spec.Connection{Type: Core, Fields: map[string]string{"retry_error_codes": "internal_server_error"}}).ResponseReader()
	body := []byte(`{"status":"ok","tags":{"x":{"count":1}}}`)
	if n := testing.AllocsPerRun(100, func() { _ = read(200, body) }); n != 0 {
		t.Errorf("%v allocations per ok answer, want 0", n)
	}
}

// SessionM's user_not_found and not_found (sessionm.md §1, C) say that
// what was asked for does not exist under any HTTP status, errors as 200
// included: a synchronous pipeline answers them 404, not 502.
func TestNotFoundCodes(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   bool
	}{
		{200, `{"status":"error","errors":{"code":"user_not_found","message":"no such user"}}`, true},
		{404, `{"status":"error","errors":{"code":"user_not_found"}}`, true},
		{200, `{"status":"error","errors":{"code":"NOT_FOUND"}}`, true},
		{200, `{"status":"error","errors":{"code":"validation"}}`, false},
		{503, `{"status":"error","errors":{"code":"internal_server_error"}}`, false},
	}
	for _, ct := range []*spec.ConnectionType{Core, Connect} {
		for _, tt := range tests {
			err := (&spec.Connection{Type: ct, Fields: map[string]string{}}).ResponseReader()(tt.status, []byte(tt.body))
			if err == nil || spec.IsNotFound(err) != tt.want {
				t.Errorf("%s, HTTP %d %s: %v, not found %v; want an error, not found %v", ct.Name, tt.status, tt.body, err, spec.IsNotFound(err), tt.want)
			}
		}
	}
}
