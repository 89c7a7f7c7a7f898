package spec

import (
	"encoding/base64"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestPlaceholders(t *testing.T) {
	tests := []struct {
		path string
		want []string
	}{
		{"/users/track", nil},
		{"/priv/v1/apps/{api_key}/users/{user_id}/tags", []string{"api_key", "user_id"}},
		{"/x/{a}{b}", []string{"a", "b"}},
		{"/x/{a}/y/{unclosed", []string{"a"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := Placeholders(tt.path); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Placeholders(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func testType() *ConnectionType {
	return &ConnectionType{
		Name: "demo",
		Fields: []Field{
			{Name: "api_key", Required: true},
			{Name: "api_secret", Required: true, Secret: true},
			{Name: "region"},
		},
		Endpoints: []Endpoint{{Name: "one", Path: "/1"}, {Name: "two", Path: "/2"}},
	}
}

func TestConnectionPublic(t *testing.T) {
	u, _ := url.Parse("https://api.example.com/base")
	c := &Connection{
		Name:    "core",
		Type:    testType(),
		BaseURL: u,
		Fields:  map[string]string{"api_key": "k", "api_secret": "s3cret"},
	}
	got := c.Public()
	want := map[string]any{
		"name":     "core",
		"type":     "demo",
		"base_url": "https://api.example.com/base",
		"api_key":  "k",
		"region":   "",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Public() = %v, want %v", got, want)
	}
	if _, ok := got["api_secret"]; ok {
		t.Error("Public() exposes the secret field api_secret")
	}
}

func TestConnectionTypeLookups(t *testing.T) {
	ct := testType()
	tests := []struct {
		name   string
		field  string
		wantOK bool
		secret bool
	}{
		{"public field", "api_key", true, false},
		{"secret field", "api_secret", true, true},
		{"unknown field", "nope", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := ct.Field(tt.field)
			if ok != tt.wantOK || (ok && (f.Name != tt.field || f.Secret != tt.secret)) {
				t.Errorf("Field(%q) = %+v, %v", tt.field, f, ok)
			}
		})
	}
	if e, ok := ct.Endpoint("two"); !ok || e.Path != "/2" || e != &ct.Endpoints[1] {
		t.Errorf("Endpoint(two) = %+v, %v", e, ok)
	}
	if e, ok := ct.Endpoint("three"); ok || e != nil {
		t.Errorf("Endpoint(three) = %+v, %v; want nil, false", e, ok)
	}
	if got := ct.EndpointNames(); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Errorf("EndpointNames() = %q", got)
	}
}

func TestConnectionAuth(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		authorize func(*Connection) (Auth, error)
		want      Auth
		wantErr   error
	}{
		{"no Authorize gives empty auth", nil, Auth{}, nil},
		{"Authorize sees the connection", func(c *Connection) (Auth, error) {
			return Auth{Header: "X-Key", Credential: c.Fields["api_key"]}, nil
		}, Auth{Header: "X-Key", Credential: "k"}, nil},
		{"Authorize error is returned", func(*Connection) (Auth, error) { return Auth{}, boom }, Auth{}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := testType()
			ct.Authorize = tt.authorize
			got, err := (&Connection{Type: ct, Fields: map[string]string{"api_key": "k"}}).Auth()
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Auth() = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	tests := []struct {
		user, password string
		want           string
	}{
		{"user", "pass", "dXNlcjpwYXNz"},
		{"Aladdin", "open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="},
		{"key", "se:cret", base64.StdEncoding.EncodeToString([]byte("key:se:cret"))},
		{"", "", "Og=="},
	}
	for _, tt := range tests {
		got := BasicAuth(tt.user, tt.password)
		want := Auth{Header: "Authorization", Scheme: "Basic", Credential: tt.want}
		if got != want {
			t.Errorf("BasicAuth(%q, %q) = %+v, want %+v", tt.user, tt.password, got, want)
		}
	}
}

func TestExcerpt(t *testing.T) {
	long := strings.Repeat("a", 299) + "bc"
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", "", "(empty body)"},
		{"whitespace only", " \n\t ", "(empty body)"},
		{"trimmed", "  oops \n", "oops"},
		{"exactly 300 kept", strings.Repeat("x", 300), strings.Repeat("x", 300)},
		{"301 cut to 300 plus dots", long, strings.Repeat("a", 299) + "b..."},
		{"length counted after trimming", "  " + strings.Repeat("y", 300) + "  ", strings.Repeat("y", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Excerpt([]byte(tt.body)); got != tt.want {
				t.Errorf("Excerpt = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewCatalog(t *testing.T) {
	a, b := &ConnectionType{Name: "b_conn"}, &ConnectionType{Name: "a_conn"}
	s1, s2 := &SourceType{Name: "z_src"}, &SourceType{Name: "y_src"}
	tests := []struct {
		name      string
		conns     []*ConnectionType
		sources   []*SourceType
		wantPanic string
	}{
		{"distinct names", []*ConnectionType{a, b}, []*SourceType{s1, s2}, ""},
		{"duplicate connection type", []*ConnectionType{a, {Name: "b_conn"}}, nil, `connection type "b_conn" registered twice`},
		{"duplicate source type", nil, []*SourceType{s1, {Name: "z_src"}}, `source type "z_src" registered twice`},
		{"connection and source may share a name", []*ConnectionType{{Name: "http"}}, []*SourceType{{Name: "http"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cat *Catalog
			got := func() (msg string) {
				defer func() {
					if r := recover(); r != nil {
						msg = r.(string)
					}
				}()
				cat = NewCatalog(tt.conns, tt.sources)
				return ""
			}()
			if got != tt.wantPanic {
				t.Fatalf("NewCatalog panic = %q, want %q", got, tt.wantPanic)
			}
			if tt.wantPanic != "" {
				return
			}
			if len(cat.Connections) != len(tt.conns) || len(cat.Sources) != len(tt.sources) {
				t.Errorf("catalog holds %d/%d types, want %d/%d", len(cat.Connections), len(cat.Sources), len(tt.conns), len(tt.sources))
			}
			for _, c := range tt.conns {
				if cat.Connections[c.Name] != c {
					t.Errorf("Connections[%q] not indexed", c.Name)
				}
			}
		})
	}
	cat := NewCatalog([]*ConnectionType{a, b}, []*SourceType{s1, s2})
	if got := cat.ConnectionTypeNames(); !reflect.DeepEqual(got, []string{"a_conn", "b_conn"}) {
		t.Errorf("ConnectionTypeNames() = %q, want sorted", got)
	}
	if got := cat.SourceTypeNames(); !reflect.DeepEqual(got, []string{"y_src", "z_src"}) {
		t.Errorf("SourceTypeNames() = %q, want sorted", got)
	}
}

// One host written two ways is one place, so one governor and one stored
// pause: https://api.example.com:443 had limits of its own beside
// https://api.example.com (a review).
func TestPlaceIsWrittenOneWay(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"https://api.example.com", "https://API.Example.com:443/"},
		{"https://api.example.com/v1", "https://api.example.com./v1/"},
		{"http://127.0.0.1", "http://127.0.0.1:80"},
		{"http://[::1]:8080/x", "HTTP://[::1]:8080/x/"},
		{"https://[::1]", "https://[::1]:443"},
	} {
		a, b := connectionAt(t, tc.a), connectionAt(t, tc.b)
		if a.Place() != b.Place() {
			t.Errorf("%s is %q and %s is %q; want one place", tc.a, a.Place(), tc.b, b.Place())
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"https://api.example.com", "http://api.example.com"},
		{"https://api.example.com", "https://api.example.com:8443"},
		{"http://api.example.com:443", "http://api.example.com"},
		{"https://api.example.com/v1", "https://api.example.com/v2"},
	} {
		if a, b := connectionAt(t, tc.a), connectionAt(t, tc.b); a.Place() == b.Place() {
			t.Errorf("%s and %s are both %q; want two places", tc.a, tc.b, a.Place())
		}
	}
}

func connectionAt(t *testing.T, base string) *Connection {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &Connection{Name: "api", Type: &ConnectionType{Name: "http"}, BaseURL: u}
}
