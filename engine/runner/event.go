package runner

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/jsonval"
)

// storedEvent is an event as the inbox keeps it: the body as received and
// what templates may read of the request. It is JSON so a dead letter can
// show it as it came.
type storedEvent struct {
	ID string `json:"id,omitempty"`
	// AcceptedBy is the pipeline version whose route or import queued the
	// event; the dead letter's version is the one that handled it, which
	// after a reload may be newer.
	AcceptedBy string          `json:"accepted_by,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Request    *storedRequest  `json:"request,omitempty"`
	Row        *storedRow      `json:"row,omitempty"`
	// Delivered holds, by array, the objects of the event's /users/track
	// request that Braze took when it refused others of them (a dead
	// letter's event): sent again, a custom event or purchase would be
	// counted twice, so a replay leaves out what it renders the same.
	Delivered map[string][]json.RawMessage `json:"delivered,omitempty"`
}

type storedRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Params  map[string]string `json:"params,omitempty"`
	Query   url.Values        `json:"query,omitempty"`
	Headers http.Header       `json:"headers,omitempty"`
}

type storedRow struct {
	File   string         `json:"file"`
	Number int            `json:"number"`
	Line   int            `json:"line,omitempty"`
	Values map[string]any `json:"values"`
}

// newStoredRequest keeps what a template may read of the webhook: not the
// caller's credentials, nor the signature header of auth, the route's
// source.auth. The header values are shared with r, which nothing changes
// once the handler has it.
func newStoredRequest(r *http.Request, params map[string]string, auth *engine.InboundAuth) *storedRequest {
	h := engine.WithoutCredentialHeaders(r.Header, auth)
	var query url.Values // decoding gives an empty one back
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	return &storedRequest{Method: r.Method, Path: r.URL.Path, Params: params, Query: query, Headers: h}
}

// decode turns a stored event back into what a pipeline evaluates.
func (s *storedEvent) event() (*engine.Event, error) {
	ev := &engine.Event{ID: s.ID}
	if len(s.Data) > 0 {
		v, err := jsonval.Decode(s.Data)
		if err != nil {
			return nil, fmt.Errorf("the stored event is not JSON: %w", err)
		}
		ev.Data = v
	}
	if r := s.Request; r != nil {
		ev.Request = &engine.RequestInfo{Method: r.Method, Path: r.Path, Params: r.Params, Query: r.Query, Headers: r.Headers}
		if ev.Request.Query == nil {
			ev.Request.Query = url.Values{}
		}
		if ev.Request.Headers == nil {
			ev.Request.Headers = http.Header{}
		}
	}
	if r := s.Row; r != nil {
		ev.Data = r.Values
		ev.Row = &engine.RowInfo{Number: r.Number, File: r.File}
	}
	return ev, nil
}
