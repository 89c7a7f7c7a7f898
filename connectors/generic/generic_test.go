package generic

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/spec"
)

// The generic connector has no API spec of its own; rows cite the
// Authorization schemes braze.md §4 lists for webhook headers
// ("Bearer …"/"Basic …") and generic.go's field docs.
func TestAuthorize(t *testing.T) {
	tests := []struct {
		name    string
		fields  map[string]string
		want    spec.Auth
		wantErr string
	}{
		// generic.go fields: bearer_token and basic_* are exclusive
		{"bearer and basic user", map[string]string{"bearer_token": "t", "basic_username": "u"}, spec.Auth{}, "not both"},
		{"bearer and basic password", map[string]string{"bearer_token": "t", "basic_password": "p"}, spec.Auth{}, "not both"},
		{"bearer and full basic", map[string]string{"bearer_token": "t", "basic_username": "u", "basic_password": "p"}, spec.Auth{}, "not both"},
		// braze.md §4 Headers: Authorization: Bearer …
		{"bearer alone", map[string]string{"bearer_token": "tok"}, spec.Auth{Header: "Authorization", Scheme: "Bearer", Credential: "tok"}, ""},
		// braze.md §4 Headers: Authorization: Basic …
		{"basic alone", map[string]string{"basic_username": "user", "basic_password": "pass"},
			spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: base64.StdEncoding.EncodeToString([]byte("user:pass"))}, ""},
		{"basic user without password", map[string]string{"basic_username": "user"},
			spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: base64.StdEncoding.EncodeToString([]byte("user:"))}, ""},
		// generic.go: auth is optional
		{"none", map[string]string{}, spec.Auth{}, ""},
		{"empty values count as none", map[string]string{"bearer_token": "", "basic_username": ""}, spec.Auth{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&spec.Connection{Type: Connection, Fields: tt.fields}).Auth()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Auth() error = %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Auth() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("Auth() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResponseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // "" = success
	}{
		// braze.md §4 retry table: 2xx counts as received
		{"200", 200, `{"ok":true}`, ""},
		{"204 empty", 204, "", ""},
		// braze.md §4 retry table: 30x is not a success
		{"302", 302, "moved", "HTTP 302: moved"},
		// braze.md §4 retry table: 4xx and 5xx are failures
		{"404", 404, " not found \n", "HTTP 404: not found"},
		{"500 empty", 500, "", "HTTP 500: (empty body)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Connection.ResponseError(tt.status, []byte(tt.body))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ResponseError(%d) = %q, want %q", tt.status, got, tt.want)
			}
		})
	}
}

func TestPublicHidesSecrets(t *testing.T) {
	base, _ := url.Parse("https://api.example.com")
	c := &spec.Connection{Name: "x", Type: Connection, BaseURL: base, Fields: map[string]string{
		"bearer_token": "t", "basic_username": "u", "basic_password": "p",
	}}
	pub := c.Public()
	tests := []struct {
		field string
		shown bool
	}{
		{"bearer_token", false},
		{"basic_password", false},
		{"basic_username", true},
	}
	for _, tt := range tests {
		if _, ok := pub[tt.field]; ok != tt.shown {
			t.Errorf("Public()[%q] present = %v, want %v", tt.field, ok, tt.shown)
		}
	}
	if len(Connection.Endpoints) != 0 {
		t.Errorf("http connection has endpoints %v; it is called with method and path", Connection.EndpointNames())
	}
}
