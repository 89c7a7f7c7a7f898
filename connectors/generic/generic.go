// Package generic is the connector for any HTTP API: the http connection
// type (raw method + path calls, optional bearer or basic auth) and the
// http webhook source.
package generic

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/loyalty-connector/engine/engine/spec"
)

// Connection is any HTTP API; pipelines call it with method and path.
var Connection = &spec.ConnectionType{
	Name: "http",
	Doc:  "any HTTP API, called with method and path",
	Fields: []spec.Field{
		{Name: "bearer_token", Secret: true, Doc: "sent as Authorization: Bearer <it>"},
		{Name: "basic_username", Doc: "Basic auth user name"},
		{Name: "basic_password", Secret: true, Doc: "Basic auth password"},
	},
	Authorize: func(c *spec.Connection) (spec.Auth, error) {
		token, user, pass := c.Fields["bearer_token"], c.Fields["basic_username"], c.Fields["basic_password"]
		switch {
		case token != "" && (user != "" || pass != ""):
			return spec.Auth{}, errors.New("give bearer_token or basic_username/basic_password, not both")
		case token != "":
			return spec.Auth{Header: "Authorization", Scheme: "Bearer", Credential: token}, nil
		case user != "" || pass != "":
			return spec.BasicAuth(user, pass), nil
		}
		return spec.Auth{}, nil
	},
	ResponseError: func(status int, body []byte) error {
		if status >= 200 && status < 300 {
			return nil
		}
		return fmt.Errorf("HTTP %d: %s", status, spec.Excerpt(body))
	},
}

// Source is any JSON webhook.
var Source = &spec.SourceType{
	Name:          "http",
	Kind:          spec.HTTPSource,
	Doc:           "any JSON webhook",
	DefaultMethod: http.MethodPost,
}
