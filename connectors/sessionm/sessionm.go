// Package sessionm describes SessionM's Core and Connect APIs to the engine
// (specs/sessionm.md): their connection fields, endpoints, auth, response
// envelope, and the sessionm_event source.
package sessionm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/loyalty-connector/engine/engine/spec"
)

// Core is SessionM Core: tags and users, Basic auth with api_key:api_secret,
// the api_key also in every path (sessionm.md §1, C).
var Core = &spec.ConnectionType{
	Name: "sessionm_core",
	Doc:  "SessionM Core API: customer tags and users.",
	Fields: []spec.Field{
		{Name: "api_key", Required: true, Doc: "the Core API key; Basic auth user name and part of every path"},
		{Name: "api_secret", Required: true, Secret: true, Doc: "the Core API secret"},
	},
	Endpoints: []spec.Endpoint{
		{
			Name:           "tags",
			Doc:            "create or increment customer tags, by SessionM user id (sessionm.md §2)",
			Method:         http.MethodPost,
			Path:           "/priv/v1/apps/{api_key}/users/{user_id}/tags",
			ContentType:    "application/json",
			FromConnection: map[string]string{"api_key": "api_key"},
			Body:           tagsBody,
		},
		{
			Name:           "tags_by_external_id",
			Doc:            "the same, by the client's external id (sessionm.md §2)",
			Method:         http.MethodPost,
			Path:           "/priv/v1/apps/{api_key}/external/users/{external_id}/tags",
			ContentType:    "application/json",
			FromConnection: map[string]string{"api_key": "api_key"},
			Body:           tagsBody,
		},
		{
			Name:           "get_user",
			Doc:            "a customer profile by SessionM user id (sessionm.md §3)",
			Method:         http.MethodGet,
			Path:           "/priv/v1/apps/{api_key}/users/{user_id}",
			FromConnection: map[string]string{"api_key": "api_key"},
		},
	},
	Authorize: func(c *spec.Connection) (spec.Auth, error) {
		return spec.BasicAuth(c.Fields["api_key"], c.Fields["api_secret"]), nil
	},
	ResponseError: envelopeError,
}

// tagsBody: tags (one or more, C) and ttl in seconds (field C, unit I).
var tagsBody = spec.Object(map[string]*spec.Shape{
	"tags": spec.Array(spec.String(), 1, 0),
	"ttl":  spec.Integer(),
}, "tags")

// Connect is SessionM Connect (offers): a separate Basic authorization
// string and the retailer GUID (sessionm.md §1, §4).
var Connect = &spec.ConnectionType{
	Name: "sessionm_connect",
	Doc:  "SessionM Connect API: offers and wallets.",
	Fields: []spec.Field{
		{Name: "authorization", Required: true, Secret: true, Doc: "the Connect Basic authorization string from SessionM"},
		{Name: "retailer_id", Required: true, Doc: "the retailer GUID, filled into request bodies"},
	},
	Endpoints: []spec.Endpoint{
		{
			Name:         "get_user_offers",
			Doc:          "the offers in a user's wallet (sessionm.md §4)",
			Method:       http.MethodPost,
			Path:         "/offers/api/2.0/offers/get_user_offers",
			ContentType:  "application/json",
			BodyDefaults: map[string]string{"retailer_id": "retailer_id"},
			Body: spec.Object(map[string]*spec.Shape{
				"retailer_id":                   spec.String(),
				"user_id":                       spec.String(),
				"skip":                          spec.Integer(),
				"take":                          spec.Integer(),
				"include_pending_extended_data": spec.Boolean(),
				"culture":                       spec.String(),
			}, "retailer_id", "user_id"),
		},
		{
			Name:         "issue_offer",
			Doc:          "put an offer into a user's wallet (acquisition/issue, sessionm.md §4, O)",
			Method:       http.MethodPost,
			Path:         "/offers/api/2.0/offers/acquisition/issue",
			ContentType:  "application/json",
			BodyDefaults: map[string]string{"retailer_id": "retailer_id"},
			Body: spec.Object(map[string]*spec.Shape{
				"retailer_id":         spec.String(),
				"user_id":             spec.String(),
				"offer_id":            spec.String(),
				"quantity":            spec.Integer(),
				"issue_exact_version": spec.Boolean(),
			}, "retailer_id", "user_id", "offer_id"),
		},
	},
	Authorize: func(c *spec.Connection) (spec.Auth, error) {
		// SessionM hands out the whole "Basic ..." string; accept it with
		// or without the scheme.
		cred := strings.TrimSpace(c.Fields["authorization"])
		if scheme, rest, ok := strings.Cut(cred, " "); ok && strings.EqualFold(scheme, "basic") {
			cred = strings.TrimSpace(rest)
		}
		return spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: cred}, nil
	},
	ResponseError: envelopeError,
}

// EventSource receives SessionM events. Their envelope is our proposal
// (sessionm.md §5, A), so it is not enforced: any JSON object is accepted.
var EventSource = &spec.SourceType{
	Name:          "sessionm_event",
	Kind:          spec.HTTPSource,
	Doc:           "SessionM posts loyalty events (offer issued, points awarded, ...)",
	DefaultMethod: http.MethodPost,
}

// envelopeError reads SessionM's envelope: HTTP 200 may still carry
// "status":"error" (sessionm.md §1, C); the status is compared without
// case because POS endpoints answer "OK".
func envelopeError(status int, body []byte) error {
	if status >= 200 && status < 300 && !bytes.Contains(body, []byte("rror")) && !bytes.Contains(body, []byte("RROR")) {
		// No "status":"error" in any casing can be in it: most answers end
		// here, unparsed.
		return nil
	}
	var env struct {
		Status string          `json:"status"`
		Errors json.RawMessage `json:"errors"`
	}
	parsed := json.Unmarshal(body, &env) == nil
	if status >= 200 && status < 300 {
		if parsed && strings.EqualFold(env.Status, "error") {
			if len(env.Errors) == 0 || string(env.Errors) == "null" {
				return errors.New("sessionm answered status error, without details")
			}
			return fmt.Errorf("sessionm answered status error: %s", describeErrors(env.Errors))
		}
		return nil
	}
	if parsed && len(env.Errors) > 0 && string(env.Errors) != "null" {
		return fmt.Errorf("sessionm answered HTTP %d: %s", status, describeErrors(env.Errors))
	}
	return fmt.Errorf("sessionm answered HTTP %d: %s", status, spec.Excerpt(body))
}

// describeErrors prints {"code":"user_not_found","message":"..."} as
// "user_not_found (...)", keeping field errors such as {"user":{"email":...}}.
func describeErrors(raw json.RawMessage) string {
	var errs map[string]any
	if json.Unmarshal(raw, &errs) != nil {
		return spec.Excerpt(raw)
	}
	code, _ := errs["code"].(string)
	msg, _ := errs["message"].(string)
	delete(errs, "code")
	delete(errs, "message")
	out := code
	if out == "" {
		out = "unknown error"
	}
	if msg != "" {
		out += ": " + msg
	}
	if len(errs) > 0 {
		detail, _ := json.Marshal(errs)
		out += " " + string(detail)
	}
	return out
}
