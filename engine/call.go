package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/loyalty-connector/engine/engine/liquid"
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
	public         map[string]any    // the connection's fields templates may read
	auth           spec.Auth
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

// Build renders the request for one event's bindings.
func (c *Call) Build(env map[string]any) (*Request, error) {
	env["connection"] = c.public
	path, err := c.fillPath(env)
	if err != nil {
		return nil, err
	}
	// The path was escaped segment by segment; joined as text so that an
	// escaped "/" (%2F) in a value is not escaped a second time.
	target := c.Conn.BaseURL.String() + path
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
	req := &Request{Method: c.Method, URL: target, Header: http.Header{}}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if c.auth.Header != "" {
		req.Header.Set(c.auth.Header, c.auth.Scheme+" "+c.auth.Credential)
	}
	if err := renderHeaders(c.Headers, env, req.Header); err != nil {
		return nil, err
	}
	if err := c.renderBody(env, req); err != nil {
		return nil, err
	}
	if c.Endpoint != nil && c.Endpoint.Body != nil && req.Value != nil {
		if problems := c.Endpoint.Body.Validate(req.Value); len(problems) > 0 {
			return req, &BodyError{req, problems}
		}
	}
	return req, nil
}

// fillPath fills the path's placeholders: from the connection, or from
// params rendered and escaped as one path segment each, so event data can
// never change the host or climb out of the endpoint's path.
func (c *Call) fillPath(env map[string]any) (string, error) {
	path := c.Path
	for name, v := range c.fromConnection {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	for _, p := range c.Params {
		v, err := p.value.Render(env)
		if err != nil {
			return "", fmt.Errorf("params %s: %w", p.name, err)
		}
		switch strings.TrimSpace(v) {
		case "":
			return "", fmt.Errorf("params %s rendered empty, so the path %s would be incomplete; check the template %q against the event", p.name, c.Path, p.value.Source())
		case ".", "..":
			return "", fmt.Errorf("params %s rendered %q, which is not allowed in a path", p.name, v)
		}
		path = strings.ReplaceAll(path, "{"+p.name+"}", url.PathEscape(v))
	}
	return path, nil
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

func (c *Call) renderBody(env map[string]any, req *Request) error {
	body, value, err := renderBody(c.Body, c.BodyTemplate, c.ContentType, env)
	if err != nil {
		return err
	}
	if m, ok := value.(map[string]any); ok && c.Body != nil && c.Endpoint != nil {
		for field, from := range c.Endpoint.BodyDefaults {
			if _, set := m[field]; !set {
				m[field] = c.Conn.Fields[from]
			}
		}
		if body, err = encodeJSON(m); err != nil {
			return err
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", c.ContentType)
	}
	req.Body, req.Value = body, value
	return nil
}

// renderBody renders a body given as a YAML value or as one template. A
// JSON body from a template is parsed, so a broken one fails here with its
// position rather than at the API.
func renderBody(v *valueTemplate, tmpl *liquid.Template, contentType string, env map[string]any) ([]byte, any, error) {
	switch {
	case v != nil:
		value, err := v.render(env, "body")
		if err != nil {
			return nil, nil, err
		}
		body, err := encodeJSON(value)
		return body, value, err
	case tmpl != nil:
		text, err := tmpl.Render(env)
		if err != nil {
			return nil, nil, fmt.Errorf("body_template: %w", err)
		}
		if !isJSON(contentType) {
			return []byte(text), nil, nil
		}
		value, err := DecodeJSON([]byte(text))
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

// jsonErrorPlace says where in rendered text a JSON error is.
func jsonErrorPlace(text string, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err.Error()
	}
	off := int(se.Offset)
	line := 1 + strings.Count(text[:min(off, len(text))], "\n")
	col := off - strings.LastIndexByte(text[:min(off, len(text))], '\n') - 1
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// encodeJSON encodes a body without HTML escaping: "<" and "&" in a
// message reach Braze as written.
func encodeJSON(v any) ([]byte, error) {
	b, err := appendJSON(make([]byte, 0, 512), v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the body as JSON: %w", err)
	}
	return b, nil
}

func encodeJSONReflect(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cannot encode the body as JSON: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
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

func (v *valueTemplate) render(env map[string]any, path string) (any, error) {
	switch v.kind {
	case templateValue:
		out, err := v.tmpl.Value(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, nil
	case objectValue:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			out, err := v.items[i].render(env, path+"."+k)
			if err != nil {
				return nil, err
			}
			m[k] = out
		}
		return m, nil
	case arrayValue:
		a := make([]any, len(v.items))
		for i, item := range v.items {
			out, err := item.render(env, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			a[i] = out
		}
		return a, nil
	}
	return v.literal, nil
}

// plainNumber turns a json.Number from YAML into int64 or float64.
func plainNumber(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return f
}
