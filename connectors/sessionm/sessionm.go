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
	"slices"
	"strings"
	"unicode"

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
		retryCodesField,
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
			ReadOnly:       true,
			CheckAnswer:    statusOK,
			Method:         http.MethodGet,
			Path:           "/priv/v1/apps/{api_key}/users/{user_id}",
			FromConnection: map[string]string{"api_key": "api_key"},
		},
	},
	Authorize: func(c *spec.Connection) (spec.Auth, error) {
		return spec.BasicAuth(c.Fields["api_key"], c.Fields["api_secret"]), nil
	},
	ResponseError:    envelope{}.read,
	ResponseErrorFor: readerFor,
	HTTPSOnly:        true, // sessionm.md §1: HTTPS_ONLY
}

// statusOK checks a read's 2xx answer for SessionM's envelope,
// "status":"ok" (Core and Connect offers alike, sessionm.md §1, C): one
// without it (null, {}, a stub's page) holds no profile or wallet. The
// object inside is not required: SessionM answers "payload":null where
// it has nothing to say (its POS endpoints, C), so a wallet without one
// is taken as empty (A; the pipeline's expr reads it so).
func statusOK(v any) string {
	m, _ := v.(map[string]any)
	if status, _ := m["status"].(string); strings.EqualFold(status, "ok") {
		return ""
	}
	return `without SessionM's "status":"ok"`
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
		retryCodesField,
	},
	Endpoints: []spec.Endpoint{
		{
			Name:         "get_user_offers",
			Doc:          "the offers in a user's wallet (sessionm.md §4)",
			ReadOnly:     true, // a POST that only reads
			CheckAnswer:  statusOK,
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
		return spec.Auth{Header: "Authorization", Scheme: "Basic", Credential: spec.BasicToken(c.Fields["authorization"])}, nil
	},
	ResponseError:    envelope{}.read,
	ResponseErrorFor: readerFor,
	HTTPSOnly:        true, // sessionm.md §1: HTTPS_ONLY
}

// EventSource receives SessionM events. Their envelope is our proposal
// (sessionm.md §5, A), so it is not enforced: any JSON object is accepted.
var EventSource = &spec.SourceType{
	Name:          "sessionm_event",
	Kind:          spec.HTTPSource,
	Doc:           "SessionM posts loyalty events (offer issued, points awarded, ...)",
	DefaultMethod: http.MethodPost,
}

// retryCodesField lists the SessionM error codes a connection retries.
// SessionM documents nothing about retries; the engine assumes (A,
// sessionm.md §7) that only 5xx and 429 are worth retrying, so by default
// a 200 + "status":"error" is dead-lettered at once. A tenant that sees
// transient errors answered that way (internal_server_error, seen in a
// real body, S10, or our rate_limited) lists them here.
var retryCodesField = spec.Field{
	Name: "retry_error_codes",
	Doc:  "SessionM error codes to retry whatever the HTTP status, even 200 + \"status\":\"error\", separated by commas, e.g. internal_server_error, rate_limited; default none (5xx and 429 are retried anyway)",
}

// readerFor reads answers with connection c's retry_error_codes.
func readerFor(c *spec.Connection) func(status int, body []byte) error {
	var r envelope
	separator := func(ch rune) bool { return ch == ',' || unicode.IsSpace(ch) }
	for _, code := range strings.FieldsFunc(c.Fields["retry_error_codes"], separator) {
		// The docs print codes in upper case, the wire carries lower case
		// (sessionm.md §1): either matches.
		r.retry = append(r.retry, strings.ToLower(code))
	}
	return r.read
}

// envelope reads SessionM's answers; retry holds the error codes (lower
// case) that are worth retrying whatever the HTTP status.
type envelope struct {
	retry []string
}

// read reads SessionM's envelope: HTTP 200 may still carry
// "status":"error" (sessionm.md §1, C); the status is compared without
// case because POS endpoints answer "OK". An error whose code is in
// e.retry is marked spec.Retryable; any other 200 + "status":"error" is
// final (A, sessionm.md §7: delivery.Classify).
func (e envelope) read(status int, body []byte) error {
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
	hasErrors := parsed && len(env.Errors) > 0 && string(env.Errors) != "null"
	var err error
	switch {
	case status >= 200 && status < 300:
		if !parsed || !strings.EqualFold(env.Status, "error") {
			return nil
		}
		if !hasErrors {
			return errors.New("sessionm answered status error, without details")
		}
		err = fmt.Errorf("sessionm answered status error: %s", describeErrors(env.Errors))
	case hasErrors:
		err = fmt.Errorf("sessionm answered HTTP %d: %s", status, describeErrors(env.Errors))
	default:
		return fmt.Errorf("sessionm answered HTTP %d: %s", status, spec.Excerpt(body))
	}
	code := strings.ToLower(errorCode(env.Errors))
	if code != "" {
		err = spec.Coded(code, err)
	}
	if len(e.retry) > 0 && slices.Contains(e.retry, code) {
		return spec.Retryable(err)
	}
	if code == "user_not_found" || code == "not_found" {
		// SessionM's own codes (sessionm.md §1, C), under any HTTP status:
		// with errors as 200 an unknown user is still unknown.
		return spec.NotFound(err)
	}
	return err
}

// errorCode is errors.code of an error envelope, "" when there is none.
func errorCode(raw json.RawMessage) string {
	var errs struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(raw, &errs)
	return errs.Code
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
