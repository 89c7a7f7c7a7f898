package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/liquid"
	"github.com/loyalty-connector/engine/engine/spec"
)

// Event is one unit of input: a webhook body or a CSV row.
type Event struct {
	ID      string
	Data    any          // bound to `event`
	Request *RequestInfo // HTTP sources
	Row     *RowInfo     // CSV sources
}

// RequestInfo is what templates see of the HTTP request that brought an event.
type RequestInfo struct {
	Method  string
	Path    string
	Params  map[string]string
	Query   url.Values
	Headers http.Header
}

// RowInfo locates a CSV row.
type RowInfo struct {
	Number int
	File   string
}

// Bindings returns the variables filters and templates see for ev.
func (p *Pipeline) Bindings(ev *Event, now time.Time) map[string]any {
	env := make(map[string]any, 6+len(p.Steps))
	env["event"] = ev.Data
	env["pipeline"] = p.info
	if p.reads.now {
		env["now"] = now.UTC().Format(time.RFC3339)
	}
	if r := ev.Request; r != nil && p.reads.request {
		req := map[string]any{"method": r.Method, "path": r.Path, "params": stringMap(r.Params)}
		if p.reads.requestQuery {
			req["query"] = firstValues(r.Query, false)
		}
		if p.reads.requestHeaders {
			req["headers"] = firstValues(r.Headers, true)
		}
		env["request"] = req
	}
	if r := ev.Row; r != nil && p.reads.row {
		env["row"] = map[string]any{"number": r.Number, "file": r.File}
	}
	return env
}

// emptyVars stands for an empty map in bindings; templates only read it.
var emptyVars = map[string]any{}

func stringMap(m map[string]string) map[string]any {
	if len(m) == 0 {
		return emptyVars
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// firstValues keeps the first value of each name (query parameters,
// headers); header names are lower-cased so templates need not guess the
// caller's spelling.
func firstValues(m map[string][]string, lower bool) map[string]any {
	if len(m) == 0 {
		return emptyVars
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if lower {
			k = strings.ToLower(k)
		}
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

// HeadersRead is what a response cache's default key needs of h: the
// request headers a template or expression reads (every one, when
// request.headers is read as a whole), as the pipeline sees them: names
// lower-cased, first values; encoded, sorted by name, "" when none is
// read. Without them in the key, a pipeline that answers by a header
// (X-User-Id) served one caller's cached answer to the next.
func (p *Pipeline) HeadersRead(h http.Header) string {
	if !p.reads.allHeaders && len(p.reads.headers) == 0 {
		return ""
	}
	vals := url.Values{}
	for k, v := range h {
		k = strings.ToLower(k)
		if _, read := slices.BinarySearch(p.reads.headers, k); len(v) > 0 && (read || p.reads.allHeaders) {
			vals[k] = v[:1]
		}
	}
	return vals.Encode()
}

// Caller performs a lookup step's request: over HTTP when running, from
// fixtures or the emulators in a dry run.
type Caller interface {
	Call(ctx context.Context, step *Step, req *Request) (*Response, error)
}

// Response is what a lookup got back.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	From   string // where it came from, for dry-run output (a fixture file, a URL)
}

// StepResult is one step's work for one event.
type StepResult struct {
	Step     string
	Request  *Request  // lookups
	Response *Response // lookups
	Value    any
	Err      error
}

// Reply is the answer of a synchronous pipeline.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
	Value  any
	// Until is when the answer stops being right (respond.cache.until),
	// zero when it does not say; UntilErr, when what it rendered is not
	// a time, in which case the answer is not cached.
	Until    time.Time
	UntilErr error
}

// Outcome is what evaluating one event gave.
type Outcome struct {
	Passed        bool   // the filter let the event through
	FilterExplain string // why it did not
	Steps         []StepResult
	Request       *Request // the target request (before batching)
	Reply         *Reply
	Err           error
}

// NotAnObject says why body, valid JSON, is refused by a source of type
// source, or "": a SessionM event is one object (sessionm.md §5), and
// anything else ([1,2], null) was accepted only to fail the filter,
// telling its sender all was well. engine run answers 400 with it, and
// dry-run says the same.
func NotAnObject(source string, body []byte) string {
	if rest := bytes.TrimLeft(body, " \t\r\n"); source != "sessionm_event" || len(rest) == 0 || rest[0] == '{' {
		return ""
	}
	return `the body is JSON but not an object; a SessionM event is one JSON object ({"event_id": ..., "event_type": ...})`
}

// ErrFilterRefused is why a synchronous pipeline whose filter is false
// answers 404: engine run and dry-run both say it.
var ErrFilterRefused = errors.New("the pipeline's filter refused this request")

// LookupNotFound says whether the event failed at a lookup its peer
// answered "not found": 404, or an error code the connector marks so under
// any status (SessionM's user_not_found). A synchronous pipeline answers
// 404 then (F3: a user with no SessionM profile, which Braze's Connected
// Content renders as nothing); engine run and dry-run both decide by it.
func (o *Outcome) LookupNotFound() bool {
	if o.Err == nil || len(o.Steps) == 0 {
		return false
	}
	return o.Steps[len(o.Steps)-1].notFound() // the step that failed is the last one run
}

// notFound: the lookup's peer answered that what it asked for does not
// exist (404, or SessionM's not-found error with any status).
func (r *StepResult) notFound() bool {
	return r.Err != nil && r.Response != nil && (r.Response.Status == http.StatusNotFound || spec.IsNotFound(r.Err))
}

// peerSaysMissing: the peer's own answer says what was asked for does not
// exist (SessionM's not-found error, or a 404 whose body is JSON), for a
// step's if_not_found: a proxy's or a wrong path's HTML 404 is a failure,
// where continue or drop would have passed every event on, or dropped
// it, with nothing said (a review).
func (r *StepResult) peerSaysMissing() bool {
	return r.Err != nil && r.Response != nil &&
		(spec.IsNotFound(r.Err) || r.Response.Status == http.StatusNotFound && json.Valid(r.Response.Body))
}

// Evaluate runs an event through the filter, the steps and the target (or
// respond) template. It sends nothing itself: lookups go through caller,
// and the target request is returned for the caller to deliver or show.
func (p *Pipeline) Evaluate(ctx context.Context, ev *Event, caller Caller, now time.Time) *Outcome {
	out := &Outcome{}
	env := p.Bindings(ev, now)
	if p.Filter != nil {
		ok, err := p.Filter.Eval(env)
		if err != nil {
			out.Err = fmt.Errorf("filter: %w", err)
			return out
		}
		if !ok {
			out.FilterExplain = p.Filter.Explain(env)
			return out
		}
	}
	out.Passed = true
	for _, st := range p.Steps {
		res := p.runStep(ctx, st, env, caller)
		if res.Err != nil && res.peerSaysMissing() {
			switch st.IfNotFound {
			case NotFoundContinue:
				res.Err, res.Value = nil, nil
			case NotFoundDrop:
				out.Steps = append(out.Steps, res)
				out.Passed = false
				out.FilterExplain = fmt.Sprintf("step %s: %s, and the step says if_not_found: drop", st.Name, res.Err)
				return out
			}
		}
		out.Steps = append(out.Steps, res)
		if res.Err != nil {
			out.Err = fmt.Errorf("step %s: %w", st.Name, res.Err)
			return out
		}
		env[st.Name] = res.Value
	}
	switch {
	case p.Target != nil:
		req, err := p.Target.Build(env)
		out.Request = req
		if err != nil {
			out.Err = fmt.Errorf("target: %w", err)
		}
	case p.Respond != nil:
		reply, err := p.Respond.Build(env)
		out.Reply = reply
		if err != nil {
			out.Err = fmt.Errorf("respond: %w", err)
		}
	}
	return out
}

func (p *Pipeline) runStep(ctx context.Context, st *Step, env map[string]any, caller Caller) StepResult {
	res := StepResult{Step: st.Name}
	if st.Expr != nil {
		res.Value, res.Err = st.Expr.Value(env)
		return res
	}
	req, err := st.Call.Build(env)
	res.Request = req
	if err != nil {
		res.Err = err
		return res
	}
	resp, err := caller.Call(ctx, st, req)
	res.Response = resp
	if err != nil {
		// The caller of a synchronous pipeline hears which connection
		// failed (CallerText), as for an answer it refused.
		var noAnswer *NoAnswerError
		var cut *CutAnswerError
		switch {
		case errors.As(err, &noAnswer):
			noAnswer.Conn = st.Call.Conn.Name
		case errors.As(err, &cut):
			cut.Conn = st.Call.Conn.Name
		}
		res.Err = err
		return res
	}
	if err := st.Call.ResponseError(resp.Status, resp.Body); err != nil {
		res.Err = &AnswerError{Conn: st.Call.Conn.Name, Status: resp.Status, Err: err}
		return res
	}
	v, err := jsonval.Decode(resp.Body)
	unexpected := ""
	switch {
	case err != nil:
		unexpected = "with a body that is not JSON"
		if st.Call.Endpoint != nil {
			unexpected += ", where " + st.Call.Endpoint.Name + " answers JSON"
		}
	case st.Call.Endpoint != nil && st.Call.Endpoint.CheckAnswer != nil:
		// JSON, but not the peer's answer (a stub's or a proxy's {}):
		// read as one, SessionM's {} became an empty wallet that Braze
		// showed and the cache kept over the good copy (a QA run).
		unexpected = st.Call.Endpoint.CheckAnswer(v)
	}
	switch {
	case unexpected == "":
		res.Value = v
	case st.Call.Endpoint != nil && st.Call.Endpoint.ReadOnly:
		// SessionM's and Braze's endpoints answer JSON. A 2xx that is not
		// (a proxy's error page, an empty 204, a body cut short) holds
		// nothing to read: taken as text, it failed later in a step, as
		// the pipeline's fault. It is the peer's, and, as the endpoint
		// only reads, worth another try; meanwhile a cached answer may
		// stand in. An endpoint that changes something (issue_offer)
		// acted on a 2xx, so its step goes on with the text, as before:
		// asked again, it would act twice.
		excerpt := spec.Excerpt([]byte(st.Call.masker.String(string(resp.Body))))
		res.Err = &AnswerError{Conn: st.Call.Conn.Name, Status: resp.Status, Unexpected: unexpected,
			Err: spec.Retryable(fmt.Errorf("%s answered HTTP %d %s: %s", st.Call.Conn.Name, resp.Status, unexpected, excerpt))}
	case err == nil:
		res.Value = v // an endpoint that changes something acted on the 2xx
	default:
		res.Value = string(resp.Body) // a raw call may read text
	}
	return res
}

// Build renders the reply for one event's bindings.
func (r *Respond) Build(env map[string]any) (*Reply, error) {
	reply := &Reply{Status: r.Status, Header: http.Header{}}
	if err := renderHeaders(r.Headers, env, reply.Header); err != nil {
		return nil, err
	}
	contentType := reply.Header.Get("Content-Type")
	// An answer keeps its nulls: its reader (a Braze message) is shown the
	// shape the file wrote, and nothing is removed by a null there.
	body, value, err := renderBody(r.Body, r.BodyTemplate, contentType, env, 512, nil, nil)
	if err != nil {
		return nil, err
	}
	if body != nil && contentType == "" {
		reply.Header.Set("Content-Type", "application/json")
	}
	reply.Body, reply.Value = body, value
	if r.Cache != nil && r.Cache.Until != nil {
		reply.Until, reply.UntilErr = renderUntil(r.Cache.Until, env)
	}
	return reply, nil
}

// renderUntil renders respond.cache.until: a time, or nothing.
func renderUntil(t *liquid.Template, env map[string]any) (time.Time, error) {
	text, err := t.Render(env)
	if err != nil {
		return time.Time{}, fmt.Errorf("respond.cache.until: %w", err)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return time.Time{}, fmt.Errorf("respond.cache.until rendered %.60q, which is not an RFC 3339 time such as 2026-12-31T23:59:59Z; the answer is not cached", text)
	}
	return at, nil
}
