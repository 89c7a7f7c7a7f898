package preview

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/loyalty-connector/engine/engine/liquid"
)

func TestRequest(t *testing.T) {
	const u = "https://api.example.com/points?user=u-1001"
	tests := []struct {
		name   string
		call   liquid.ConnectedCall
		header http.Header
		body   string // "" : no body
		// jsonBody compares the body as JSON (the order of keys is free).
		jsonBody bool
	}{
		{"GET has Braze's default headers",
			liquid.ConnectedCall{Method: "GET", URL: u},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"*/*"}}, "", false},
		{"GET sends no body",
			liquid.ConnectedCall{Method: "GET", URL: u, Body: "a=1&b=2"},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"*/*"}}, "", false},
		{"POST is form encoded by default",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "a=1&b=2"},
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "a=1&b=2", false},
		{"POST without a body",
			liquid.ConnectedCall{Method: "POST", URL: u},
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "", false},
		{":content_type application/json turns a form body into JSON",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "user_id=u-1001&name=Ana%20Garc%C3%ADa&sum=a%2Bb&empty=", ContentType: "application/json"},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
			`{"user_id":"u-1001","name":"Ana García","sum":"a+b","empty":""}`, true},
		{":content_type with parameters still turns a form body into JSON",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "a=1", ContentType: "application/json; charset=utf-8"},
			http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Accept": {"application/json; charset=utf-8"}},
			`{"a":"1"}`, true},
		{":content_type application/json leaves a JSON body alone",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: `{"a":1,"b":"x=y&z"}`, ContentType: "application/json"},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
			`{"a":1,"b":"x=y&z"}`, false},
		{":content_type application/json leaves a JSON array alone",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: ` [{"a":"b=c"}]`, ContentType: "application/json"},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
			` [{"a":"b=c"}]`, false},
		{":content_type application/json leaves plain text alone",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "hello", ContentType: "application/json"},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
			"hello", false},
		{"another :content_type keeps the form body",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "a=1&b=2", ContentType: "text/plain"},
			http.Header{"Content-Type": {"text/plain"}, "Accept": {"text/plain"}}, "a=1&b=2", false},
		{":content_type sets Accept on a GET too",
			liquid.ConnectedCall{Method: "GET", URL: u, ContentType: "application/xml"},
			http.Header{"Content-Type": {"application/xml"}, "Accept": {"application/xml"}}, "", false},
		{":headers come last and win",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "a=1", ContentType: "application/json",
				Headers: [][2]string{{"accept", "application/vnd.api+json"}, {"X-Api-Key", "k1"}, {"x-api-key", "k2"}}},
			http.Header{"Content-Type": {"application/json"}, "Accept": {"application/vnd.api+json"}, "X-Api-Key": {"k2"}},
			`{"a":"1"}`, true},
		{"a Content-Type in :headers does not JSON-encode the body",
			liquid.ConnectedCall{Method: "POST", URL: u, Body: "a=1", Headers: [][2]string{{"Content-Type", "application/json"}}},
			http.Header{"Content-Type": {"application/json"}}, "a=1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := Request(tc.call)
			if req.Method != tc.call.Method || req.URL != tc.call.URL {
				t.Errorf("%s %s; want %s %s", req.Method, req.URL, tc.call.Method, tc.call.URL)
			}
			if !reflect.DeepEqual(req.Header, tc.header) {
				t.Errorf("headers %v; want %v", req.Header, tc.header)
			}
			switch {
			case tc.body == "":
				if len(req.Body) != 0 {
					t.Errorf("body %q; want none", req.Body)
				}
			case tc.jsonBody:
				var got, want any
				if err := json.Unmarshal(req.Body, &got); err != nil {
					t.Fatalf("body %q is not JSON: %v", req.Body, err)
				}
				if err := json.Unmarshal([]byte(tc.body), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("body %s; want %s", req.Body, tc.body)
				}
			default:
				if string(req.Body) != tc.body {
					t.Errorf("body %q; want %q", req.Body, tc.body)
				}
			}
		})
	}
}

// TestRequestHeadersAreItsOwn: each call gets a header of its own, so
// that the client may add to it (:basic_auth) without touching another.
func TestRequestHeadersAreItsOwn(t *testing.T) {
	call := liquid.ConnectedCall{Method: "GET", URL: "https://api.example.com/"}
	a, b := Request(call), Request(call)
	a.Header.Set("Authorization", "Basic x")
	if b.Header.Get("Authorization") != "" {
		t.Error("two requests share one header")
	}
}
