package engine

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/liquid"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
)

// UserAgent identifies the engine to the APIs it calls.
const UserAgent = "loyalty-connector-engine"

// Call is a built request to a connection.
type Call struct {
	Conn         *spec.Connection
	Endpoint     *spec.Endpoint // nil for a raw method + path call
	Method       string
	Path         string
	ContentType  string
	Params       []param
	Query        []param
	Headers      []header
	Body         *valueTemplate
	BodyTemplate *liquid.Template

	fromConnection map[string]string // path placeholders the connection fills
	pathTemplate   string            // Path with the connection's placeholders filled
	public         map[string]any    // the connection's fields templates may read
	auth           spec.Auth
	baseURL        string       // the connection's base URL as text
	fixedHeaders   http.Header  // the headers every request of this call has
	bodySize       atomic.Int64 // size of the last body, to size the next one's buffer
	masker         *secrets.Masker
	readAnswer     func(status int, body []byte) error // the connection's ResponseReader, from prepare
}

// ResponseError is the connection's reading of a failed response (nil for
// a success). Its message quotes the body, which a target may fill with
// the credential it was sent; the body is masked before the connection
// cuts it to an excerpt, as a secret cut in two is one no masker finds.
func (c *Call) ResponseError(status int, body []byte) error {
	check := c.readAnswer
	if check == nil {
		check = c.Conn.Type.ResponseError // a Call that was never prepared
	}
	if check == nil {
		return nil
	}
	err := check(status, body)
	if err == nil {
		return nil
	}
	if masked := check(status, []byte(c.masker.String(string(body)))); masked != nil {
		return masked
	}
	// Masking changed what the body says (a secret in its JSON syntax):
	// the failure stands, in words masked after the cut, and so does its
	// kind: worth retrying, not sent, or refused for the whole request.
	return sameKind(err, c.masker.String(err.Error()))
}

// sameKind is an error that says msg and is of err's kind, as far as the
// engine tells kinds apart; err itself is not kept, as its words are not
// masked.
func sameKind(err error, msg string) error {
	var notSent *spec.NotSentError
	var out error
	switch {
	case errors.As(err, &notSent):
		out = &spec.NotSentError{Msg: msg}
	case errors.As(err, new(*spec.WholeRequestError)):
		out = &spec.WholeRequestError{Err: errors.New(msg)}
	default:
		out = errors.New(msg)
	}
	if spec.IsRetryable(err) {
		return spec.Retryable(out)
	}
	return out
}

// prepare computes, once at build, what every request of the call shares.
func (c *Call) prepare() {
	c.baseURL = c.Conn.BaseURL.String()
	c.readAnswer = c.Conn.ResponseReader()
	c.pathTemplate = c.Path
	for name, v := range c.fromConnection {
		c.pathTemplate = strings.ReplaceAll(c.pathTemplate, "{"+name+"}", url.PathEscape(v))
	}
	c.fixedHeaders = http.Header{
		"User-Agent": {UserAgent},
		"Accept":     {"application/json"},
	}
	if c.auth.Header != "" {
		c.fixedHeaders[http.CanonicalHeaderKey(c.auth.Header)] = []string{c.auth.Scheme + " " + c.auth.Credential}
	}
	if c.Body != nil || c.BodyTemplate != nil {
		c.fixedHeaders["Content-Type"] = []string{c.ContentType}
	}
}

type param struct {
	name  string
	value *liquid.Template
}

type header struct {
	name  string
	value *liquid.Template
}

// Request is a rendered HTTP request, ready to send or to show.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Value is the body as JSON values (nil when it is not JSON), for
	// display and for batching.
	Value any
}

// BodyError is a request whose body does not fit the endpoint; the request
// is kept so a dry run can show it.
type BodyError struct {
	Request  *Request
	Problems []spec.Violation
}

func (e *BodyError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "the body does not fit the endpoint: " + strings.Join(parts, "; ")
}

// ChangesPeer reports whether a request of c may change something at its
// peer (an offer issued, points added), which doing twice would do twice;
// a read-only endpoint's, a GET's and a HEAD's do not.
func (c *Call) ChangesPeer() bool {
	if c.Endpoint != nil {
		return !c.Endpoint.ReadOnly
	}
	return c.Method != http.MethodGet && c.Method != http.MethodHead
}

// Build renders the request for one event's bindings.
func (c *Call) Build(env map[string]any) (*Request, error) {
	env["connection"] = c.public
	path, err := c.fillPath(env)
	if err != nil {
		return nil, err
	}
	// The path was escaped segment by segment; joined as text so that an
	// escaped "/" (%2F) in a value is not escaped a second time.
	target := c.baseURL + path
	if len(c.Query) > 0 {
		q := url.Values{}
		for _, p := range c.Query {
			v, err := p.value.Render(env)
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", p.name, err)
			}
			q.Set(p.name, v)
		}
		target += "?" + q.Encode()
	}
	req := &Request{Method: c.Method, URL: target, Header: c.fixedHeaders.Clone()}
	if err := renderHeaders(c.Headers, env, req.Header); err != nil {
		return nil, err
	}
	omitted, err := c.renderBody(env, req)
	if err != nil {
		return nil, err
	}
	if c.Endpoint != nil && c.Endpoint.Body != nil && req.Value != nil {
		problems := c.Endpoint.Body.Validate(req.Value)
		if v, ok := c.overTotal(req.Value); ok {
			problems = append(problems, v)
		}
		if omitted > 0 && len(problems) > 0 {
			noteOmitted(problems, c.omittedPaths(env))
		}
		if len(problems) > 0 {
			return req, &BodyError{req, problems}
		}
	}
	return req, nil
}

// noteOmitted says, of each required field the body lacks because its
// template rendered null (omitted, by path), why it is not there, as a
// null sent was named "is a variable missing?".
func noteOmitted(problems []spec.Violation, omitted []string) {
	for i, p := range problems {
		for _, path := range omitted {
			parent, field := "", path
			if j := strings.LastIndexByte(path, '.'); j >= 0 {
				parent, field = path[:j], path[j+1:]
			}
			if p.Path == parent && p.Message == strconv.Quote(field)+" is required" {
				problems[i].Message += " (its template rendered nothing: is a variable missing?)"
			}
		}
	}
}

// overTotal checks a body against the endpoint's bound on the items of all
// its lists together, which the connection sets (Braze's
// users_track_max_updates): the batcher keeps its merged requests within
// it, but one event's request over it went as it was, for the peer to
// refuse (a QA run: 60 objects under a bound of 50).
func (c *Call) overTotal(body any) (spec.Violation, bool) {
	if c.Endpoint.MaxTotal == nil {
		return spec.Violation{}, false
	}
	limit := c.Endpoint.MaxTotal(c.Conn)
	fields, ok := body.(map[string]any)
	if limit == 0 || !ok {
		return spec.Violation{}, false
	}
	total := 0
	for _, v := range fields {
		if list, ok := v.([]any); ok {
			total += len(list)
		}
	}
	if total <= limit {
		return spec.Violation{}, false
	}
	return spec.Violation{Message: fmt.Sprintf("%d objects in all, over the %d one request may carry on connection %s (its %s setting)", total, limit, c.Conn.Name, c.Endpoint.MaxTotalField)}, true
}

// fillPath fills the path's placeholders: from the connection, or from
// params rendered and escaped as one path segment each, so event data can
// never change the host or climb out of the endpoint's path.
func (c *Call) fillPath(env map[string]any) (string, error) {
	path := c.pathTemplate
	for _, p := range c.Params {
		v, err := p.value.Render(env)
		if err != nil {
			return "", fmt.Errorf("params %s: %w", p.name, err)
		}
		if strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("params %s rendered empty, so the path %s would be incomplete; check the template %q against the event", p.name, c.Path, p.value.Source())
		}
		if climbs(v) {
			return "", fmt.Errorf("params %s rendered %q, which is not allowed in a path: a \".\" or \"..\" in it, alone or between slashes, would lead the request to another path at a server that decodes %%2F; check the template %q against the event", p.name, v, p.value.Source())
		}
		path = strings.ReplaceAll(path, "{"+p.name+"}", url.PathEscape(v))
	}
	return path, nil
}

// climbs reports whether v, split at each '/' and '\', has a part that
// is "." or ".." (spaces around it ignored, as the check of a whole value
// always did). Escaped, v is one path segment, but a proxy or server that
// decodes %2F (or reads '\' as '/') before routing would take
// "../../other-app/users/x" as steps up the path, and the request would
// reach another resource with the engine's credentials. A value that
// only holds a slash (an external id "a/b") is fine: it stays one
// escaped segment.
func climbs(v string) bool {
	for part := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == '/' || r == '\\' }) {
		if p := strings.TrimSpace(part); p == "." || p == ".." {
			return true
		}
	}
	return false
}

func renderHeaders(hs []header, env map[string]any, into http.Header) error {
	for _, h := range hs {
		v, err := h.value.Render(env)
		if err != nil {
			return fmt.Errorf("headers %s: %w", h.name, err)
		}
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("headers %s: the rendered value holds a line break, which would split the header", h.name)
		}
		into.Set(h.name, v)
	}
	return nil
}

func (c *Call) renderBody(env map[string]any, req *Request) (omitted int, err error) {
	var om omissions
	body, value, err := renderBody(c.Body, c.BodyTemplate, c.ContentType, env, int(c.bodySize.Load())+64, c.withDefaults, &om)
	if err != nil {
		return 0, err
	}
	c.bodySize.Store(int64(len(body)))
	req.Body, req.Value = body, value
	return om.count, nil
}

// omittedPaths renders the body again, tracking the paths of the fields
// left out (omissions).
func (c *Call) omittedPaths(env map[string]any) []string {
	if c.Body == nil {
		return nil
	}
	om := omissions{track: true}
	if _, err := c.Body.render(env, &om); err != nil {
		return nil
	}
	return om.paths
}

// withDefaults fills the body fields the connection provides (Connect's
// retailer_id) when the pipeline's body leaves them out. It copies the
// object first: it may be the event itself ("{{ event }}").
func (c *Call) withDefaults(value any) any {
	m, ok := value.(map[string]any)
	if !ok || c.Endpoint == nil || len(c.Endpoint.BodyDefaults) == 0 {
		return value
	}
	var out map[string]any
	for field, from := range c.Endpoint.BodyDefaults {
		if _, set := m[field]; set {
			continue
		}
		if c.Body != nil && slices.Contains(c.Body.keys, field) {
			// Written in the file, it rendered null (and was left out):
			// the connection's retailer stood in for the event's, and an
			// offer went to another retailer (a review).
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[field] = c.Conn.Fields[from]
	}
	if out == nil {
		return m
	}
	return out
}

// renderBody renders a body given as a YAML value or as one template. A
// JSON body from a template is parsed, so a broken one fails here with its
// position rather than at the API.
//
// fill, when not nil, completes a body given as a YAML value before it is
// encoded. om: see valueTemplate.render.
func renderBody(v *valueTemplate, tmpl *liquid.Template, contentType string, env map[string]any, sizeHint int, fill func(any) any, om *omissions) ([]byte, any, error) {
	switch {
	case v != nil:
		value, err := v.render(env, om)
		if err != nil {
			return nil, nil, within(err, "body")
		}
		if fill != nil {
			value = fill(value)
		}
		body, err := jsonval.Encode(value, sizeHint)
		return body, value, err
	case tmpl != nil:
		text, err := tmpl.Render(env)
		if err != nil {
			return nil, nil, fmt.Errorf("body_template: %w", err)
		}
		if !isJSON(contentType) {
			return []byte(text), nil, nil
		}
		value, err := jsonval.Decode([]byte(text))
		if err != nil {
			return nil, nil, fmt.Errorf("body_template rendered text that is %w", err)
		}
		return []byte(text), value, nil
	}
	return nil, nil, nil
}

func isJSON(contentType string) bool {
	return contentType == "" || strings.HasPrefix(contentType, "application/json") || strings.HasSuffix(strings.SplitN(contentType, ";", 2)[0], "+json")
}

type valueKind uint8

const (
	literalValue valueKind = iota
	templateValue
	objectValue
	arrayValue
)

// valueTemplate is a YAML value whose string leaves are templates.
type valueTemplate struct {
	kind    valueKind
	keys    []string         // objectValue
	items   []*valueTemplate // objectValue (same order as keys), arrayValue
	tmpl    *liquid.Template // templateValue
	literal any              // literalValue
}

// outline is the value as far as it is known before rendering: each
// template stands as spec.Unknown.
func (v *valueTemplate) outline() any {
	switch v.kind {
	case templateValue:
		return spec.Unknown{}
	case objectValue:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			m[k] = v.items[i].outline()
		}
		return m
	case arrayValue:
		a := make([]any, len(v.items))
		for i, item := range v.items {
			a[i] = item.outline()
		}
		return a
	}
	return v.literal
}

// omissions counts the fields of a request's body left out because their
// template rendered null (valueTemplate.render), and, when track is set,
// records their paths as spec.Violation writes them ("purchases[0].time").
// Paths are tracked only on a second rendering, for an error's sake: kept
// on every event, they cost F4 three allocations each.
type omissions struct {
	count int
	track bool
	at    []pathStep // where rendering is, when tracking
	paths []string
}

type pathStep struct {
	key   string
	index int // for an array item, with key ""
}

func (o *omissions) path() string {
	var b strings.Builder
	for _, st := range o.at {
		switch {
		case st.key == "":
			fmt.Fprintf(&b, "[%d]", st.index)
		case b.Len() > 0:
			b.WriteString("." + st.key)
		default:
			b.WriteString(st.key)
		}
	}
	return b.String()
}

// render renders the value for one event's bindings. With om (a request's
// body), an object's field whose template renders null is left out and
// its path recorded.
func (v *valueTemplate) render(env map[string]any, om *omissions) (any, error) {
	switch v.kind {
	case templateValue:
		return v.tmpl.Value(env)
	case objectValue:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			tracking := om != nil && om.track
			if tracking {
				om.at = append(om.at, pathStep{key: k})
			}
			out, err := v.items[i].render(env, om)
			if err != nil {
				return nil, within(err, "."+k)
			}
			if om != nil && out == nil && v.items[i].kind == templateValue {
				// A field read from an event that lacks it (or holds
				// null) is left out, not sent as null: Braze takes a
				// null attribute for "remove it", so a typo or an event
				// without the field wiped the user's value (a QA run).
				// A null written in the file is sent.
				om.count++
				if tracking {
					om.paths = append(om.paths, om.path())
				}
			} else {
				m[k] = out
			}
			if tracking {
				om.at = om.at[:len(om.at)-1]
			}
		}
		return m, nil
	case arrayValue:
		a := make([]any, len(v.items))
		for i, item := range v.items {
			tracking := om != nil && om.track
			if tracking {
				om.at = append(om.at, pathStep{index: i})
			}
			out, err := item.render(env, om)
			if err != nil {
				return nil, within(err, fmt.Sprintf("[%d]", i))
			}
			if tracking {
				om.at = om.at[:len(om.at)-1]
			}
			a[i] = out
		}
		return a, nil
	}
	return v.literal, nil
}

// valueError is a render error with the path of the value that failed,
// built on the way out so that rendering that succeeds builds no paths.
type valueError struct {
	path string
	err  error
}

func (e *valueError) Error() string { return e.path + ": " + e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

func within(err error, step string) error {
	if ve, ok := err.(*valueError); ok {
		ve.path = step + ve.path
		return ve
	}
	return &valueError{step, err}
}
