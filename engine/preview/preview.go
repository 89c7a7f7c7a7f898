// Package preview renders Braze message templates the way Braze would for
// one user: the user's standard and custom attributes, API trigger
// properties, Canvas context, event properties and Content Blocks as the
// Liquid variables Braze gives them, and {% connected_content %} calls
// made through a connected.Client (sandbox, fixtures or live). engine
// render and engine playground both use it.
package preview

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/connected"
	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/liquid"
)

// Input is one message to preview. Maps may be nil.
type Input struct {
	Template string
	// TemplateName and UserName name the sources in notes (file names).
	TemplateName, UserName string
	// User holds standard attributes under their Liquid names (user_id,
	// first_name, email_address, language, time_zone, ...) and
	// custom_attributes.
	User    map[string]any
	Trigger map[string]any // api_trigger_properties
	Context map[string]any // context (and the legacy canvas_entry_properties)
	Event   map[string]any // event_properties
	// Vars are more top-level variables (campaign, canvas, or the
	// endpoint_connect a partner template names).
	Vars map[string]any
	// ContentBlocks are Content Block bodies by name.
	ContentBlocks map[string]string
	// ContentBlocksDir is the folder they were read from, NAME.liquid
	// each, to name in notes; "" names them "content block NAME".
	ContentBlocksDir string
}

// Note is an error or a warning, placed in a source when it can be.
type Note struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func (n Note) String() string {
	switch {
	case n.File != "" && n.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", n.File, n.Line, n.Column, n.Message)
	case n.File != "":
		return n.File + ": " + n.Message
	}
	return n.Message
}

// Timing is where the time of a preview went.
type Timing struct {
	TotalMillis     float64 `json:"total_ms"`
	ConnectedMillis float64 `json:"connected_content_ms"`
}

// Result is the previewed message.
type Result struct {
	Output      string `json:"output"`
	Aborted     bool   `json:"aborted"`
	AbortReason string `json:"abort_reason,omitempty"`
	// Errors are set when the template does not parse or fails to
	// render; Output is empty then.
	Errors   []Note           `json:"errors,omitempty"`
	Warnings []Note           `json:"warnings"`
	Calls    []connected.Call `json:"connected_content"`
	Timing   Timing           `json:"timing"`
}

// Previewer renders messages. It is safe for concurrent use; its client's
// cache is shared by every preview, as Braze's is by every message.
type Previewer struct {
	engine   *liquid.Engine
	client   *connected.Client
	defaults map[string]any
}

// New returns a previewer making calls through client. defaults are
// top-level variables every preview gets unless its input sets them (the
// sandbox's endpoint_connect and endpoint_core).
func New(client *connected.Client, defaults map[string]any, opts ...liquid.EngineOption) *Previewer {
	opts = append([]liquid.EngineOption{liquid.WithMessageTags()}, opts...)
	return &Previewer{engine: liquid.NewEngine(opts...), client: client, defaults: maps.Clone(defaults)}
}

// Client returns the previewer's Connected Content client.
func (p *Previewer) Client() *connected.Client { return p.client }

// standardAttributes are the user attributes Braze names at the top level
// (specs/braze.md §6).
var standardAttributes = []string{
	"braze_id", "city", "country", "date_of_birth", "email_address", "first_name", "gender", "language",
	"last_name", "last_used_app_date", "most_recent_app_version", "most_recent_locale", "most_recent_location",
	"most_recently_used_device", "phone_number", "random_bucket_number", "subscribed_state", "targeted_device",
	"time_zone", "user_id",
}

// run is the state of one preview; one render makes its calls one after
// the other.
type run struct {
	p      *Previewer
	in     Input
	result *Result
}

// Render previews one message.
func (p *Previewer) Render(ctx context.Context, in Input) (res Result) {
	start := time.Now()
	res = Result{Warnings: []Note{}, Calls: []connected.Call{}}
	r := &run{p: p, in: in, result: &res}
	defer func() {
		res.Timing.TotalMillis = millis(time.Since(start))
		for _, c := range res.Calls {
			res.Timing.ConnectedMillis += c.Millis
		}
	}()
	tpl, problems := p.engine.Parse(in.Template, liquid.Options{})
	if len(problems) > 0 {
		for _, pr := range problems {
			res.Errors = append(res.Errors, r.note(in.TemplateName, in.Template, pr.Offset, pr.Message))
		}
		return res
	}
	for _, w := range tpl.Warnings() {
		res.Warnings = append(res.Warnings, r.note(in.TemplateName, in.Template, w.Offset, w.Message))
	}
	blocks := in.ContentBlocks
	if blocks == nil {
		blocks = map[string]string{} // a block reference is a missing block, not a variable
	}
	out, err := tpl.RenderWith(r.bindings(), liquid.RenderOptions{Context: ctx, ConnectedContent: r.connect, ContentBlocks: blocks,
		Warn: func(w liquid.RenderWarning) { r.warnAt(w.Block, w.Line, w.Column, "%s", w.Message) }})
	if abort, ok := err.(*liquid.AbortError); ok {
		res.Aborted, res.AbortReason = true, abort.Reason
		if res.AbortReason == "" {
			res.AbortReason = "{% abort_message %} called"
		}
		return res
	}
	if located, ok := err.(*liquid.RenderError); ok {
		res.Errors = append(res.Errors, Note{File: r.file(located.Block), Line: located.Line, Column: located.Column, Message: located.Message})
		return res
	}
	if err != nil {
		res.Errors = append(res.Errors, Note{File: in.TemplateName, Message: err.Error()})
		return res
	}
	res.Output = out
	return res
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *run) note(file, src string, offset int, msg string) Note {
	line, col := diag.LineCol(src, offset)
	return Note{File: file, Line: line, Column: col, Message: msg}
}

func (r *run) warn(file, format string, a ...any) {
	r.result.Warnings = append(r.result.Warnings, Note{File: file, Message: fmt.Sprintf(format, a...)})
}

// warnAt warns about a place in the template, or in the Content Block
// block ("" for the template); line 0 is no place.
func (r *run) warnAt(block string, line, column int, format string, a ...any) {
	r.result.Warnings = append(r.result.Warnings, Note{File: r.file(block), Line: line, Column: column, Message: fmt.Sprintf(format, a...)})
}

// file names the template, or one of its Content Blocks, in notes.
func (r *run) file(block string) string {
	switch {
	case block == "":
		return r.in.TemplateName
	case r.in.ContentBlocksDir != "":
		return filepath.Join(r.in.ContentBlocksDir, block+".liquid")
	}
	return "content block " + block
}

// bindings builds the variables Braze gives a message.
func (r *run) bindings() map[string]any {
	in := r.in
	vars := maps.Clone(r.p.defaults)
	if vars == nil {
		vars = map[string]any{}
	}
	maps.Copy(vars, in.Vars)
	userFile := in.UserName
	if userFile == "" {
		userFile = "user"
	}
	for _, k := range slices.Sorted(maps.Keys(in.User)) {
		v := in.User[k]
		switch {
		case k == "custom_attributes":
			obj, ok := v.(map[string]any)
			if !ok {
				r.warn(userFile, "custom_attributes should be an object of attribute names and values; it is ignored")
				continue
			}
			vars["custom_attribute"] = obj
		case slices.Contains(standardAttributes, k):
			vars[k] = v
		default:
			r.warn(userFile, "%q is not a Braze standard attribute, so {{${%s}}} stays empty in Braze; put custom attributes under custom_attributes", k, k)
			vars[k] = v
		}
	}
	if in.Trigger != nil {
		vars["api_trigger_properties"] = in.Trigger
	}
	if in.Context != nil {
		vars["context"] = in.Context
		vars["canvas_entry_properties"] = in.Context
	}
	if in.Event != nil {
		vars["event_properties"] = in.Event
	}
	return vars
}

// connect makes one Connected Content call for the template.
func (r *run) connect(ctx context.Context, call liquid.ConnectedCall) liquid.ConnectedAnswer {
	req := Request(call)
	if call.AuthCredentials != "" {
		r.warnAt(call.Block, call.Line, call.Column, "connected_content :auth_credentials %s is not previewed: the call is made without its headers", call.AuthCredentials)
	}
	if call.Method == http.MethodPost && call.CacheMaxAge > 0 && !call.NoCache {
		r.warnAt(call.Block, call.Line, call.Column, "connected_content POST %s is cached by its URL alone: for %s every user whose call has this URL gets the same answer, whatever the body", call.URL, cacheAge(call.CacheMaxAge))
	}
	out := r.p.client.Do(ctx, req, connected.Options{CacheMaxAge: call.CacheMaxAge, NoCache: call.NoCache, Retry: call.Retry, BasicAuth: call.BasicAuth})
	r.result.Calls = append(r.result.Calls, out.Call)
	if out.Call.Error != "" && out.Abort == "" {
		hint := ""
		if strings.HasPrefix(call.URL, "/") || call.URL == "" {
			// {{endpoint_connect}}/offers/... with no endpoint_connect
			hint = " (is a variable in the URL unset? the sandbox sets endpoint_connect and endpoint_core; give others with --vars)"
		}
		r.warnAt(call.Block, call.Line, call.Column, "connected_content %s %s: %s%s; nothing is inserted", call.Method, call.URL, out.Call.Error, hint)
	}
	if out.Response == nil {
		return liquid.ConnectedAnswer{Abort: out.Abort}
	}
	if out.Response.Status == http.StatusNotFound {
		r.warnAt(call.Block, call.Line, call.Column, "connected_content %s %s answered 404, which Braze renders as nothing", call.Method, call.URL)
	}
	return liquid.ConnectedAnswer{Answered: true, Status: out.Response.Status, Body: out.Response.Body}
}

func cacheAge(d time.Duration) string {
	c, _ := connected.ClampedCacheAge(d)
	return c.String()
}

// Request builds the HTTP request Braze sends for a call: a GET carries
// Content-Type: application/json and Accept: */*; a POST body is form
// encoded unless :content_type says otherwise; :content_type sets both
// Content-Type and Accept, and with application/json a form-style body
// (a=1&b=2) is sent as a JSON object; :headers come last and win.
func Request(call liquid.ConnectedCall) connected.Request {
	h := http.Header{}
	body := call.Body
	if call.Method == http.MethodGet {
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "*/*")
	} else {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if call.ContentType != "" {
		h.Set("Content-Type", call.ContentType)
		h.Set("Accept", call.ContentType)
		if strings.HasPrefix(call.ContentType, "application/json") {
			body = formToJSON(body)
		}
	}
	for _, kv := range call.Headers {
		h.Set(kv[0], kv[1])
	}
	var raw []byte
	if call.Method == http.MethodPost {
		raw = []byte(body)
	}
	return connected.Request{Method: call.Method, URL: call.URL, Header: h, Body: raw}
}

// formToJSON turns a form-style body (a=1&b=2) into a JSON object of
// strings; anything else (JSON already, empty) is left alone.
func formToJSON(body string) string {
	t := strings.TrimSpace(body)
	if t == "" || t[0] == '{' || t[0] == '[' || !strings.Contains(t, "=") {
		return body
	}
	values, err := url.ParseQuery(t)
	if err != nil {
		return body
	}
	obj := make(map[string]string, len(values))
	for k, v := range values {
		obj[k] = v[0]
	}
	b, _ := json.Marshal(obj)
	return string(b)
}
