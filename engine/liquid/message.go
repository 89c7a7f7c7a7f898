package liquid

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/osteele/liquid/render"
)

// Braze's message tags, {% connected_content %} and {% abort_message %}
// (specs/braze.md §5), exist only for message templates, which Braze
// renders: the engine's own pipeline templates reach SessionM and Braze
// through their connections and no other host, so an engine made without
// WithMessageTags refuses both.

// WithMessageTags lets templates use connected_content and abort_message.
// The calls themselves are made by the RenderOptions given to RenderWith.
func WithMessageTags() EngineOption { return func(e *Engine) { e.messageTags = true } }

// connectedSource is the hoisted argument text of one connected_content
// tag, as written, and its offset in the user's source.
type connectedSource struct {
	raw    string
	offset int
}

// contentBlockSource is the name of one {{content_blocks.${name}}} and
// its offset in the user's source.
type contentBlockSource struct {
	name   string
	offset int
}

// abortSource is the reason of one abort_message tag.
type abortSource struct {
	reason string
	offset int
}

// ConnectedCall is one {% connected_content %} call, rendered.
type ConnectedCall struct {
	Method          string // GET or POST
	URL             string
	Headers         [][2]string // :headers, in the order written
	Body            string
	ContentType     string // :content_type
	BasicAuth       string // :basic_auth credential name
	AuthCredentials string // :auth_credentials credential name
	CacheMaxAge     time.Duration
	NoCache, Retry  bool
	Save            string // :save variable name; "" when not given
	// Where the tag is written: in the message, or in the Content Block
	// Block names.
	Block        string
	Line, Column int
}

// ConnectedAnswer is what a call brought back.
type ConnectedAnswer struct {
	// Answered is false when nothing is to be inserted (timeout, network
	// error, oversized answer).
	Answered bool
	Status   int
	Body     []byte
	// Abort aborts the message (:retry gave up).
	Abort string
}

// ConnectedContent makes the calls of one render.
type ConnectedContent func(ctx context.Context, call ConnectedCall) ConnectedAnswer

// RenderOptions are what one render of a message template needs.
type RenderOptions struct {
	Context          context.Context
	ConnectedContent ConnectedContent
	// ContentBlocks are the Content Block bodies by name. When set,
	// {{content_blocks.${name}}} renders the block where it stands, with
	// the message's variables at that point, as Braze does; when nil, it
	// reads the variable content_blocks like any other.
	ContentBlocks map[string]string
	// Warn receives what a preview should know but does not stop the
	// render (a missing or too deeply nested Content Block).
	Warn func(RenderWarning)
}

// RenderWarning is one warning of a render, and where it points.
type RenderWarning struct {
	// Block names the Content Block whose text it points into; "" for
	// the message.
	Block string
	// Line and Column are 0 when it is about the whole block.
	Line, Column int
	Message      string
}

// AbortError is returned by RenderWith when the message was aborted, by
// {% abort_message %} or by a :retry call that gave up.
type AbortError struct {
	Reason string
}

func (a *AbortError) Error() string {
	if a.Reason == "" {
		return "the message was aborted ({% abort_message %} called)"
	}
	return "the message was aborted: " + a.Reason
}

// messageKey holds the per-render message state in the bindings.
const messageKey = "\x00message"

type messageRender struct {
	ctx    context.Context
	cc     ConnectedContent
	blocks map[string]string
	warn   func(RenderWarning)
	// Content Blocks parsed in this render
	parsed map[string]*Template
	// the message, then each Content Block being rendered inside it
	within []renderFrame
}

// renderFrame is a template being rendered: the message or a block.
type renderFrame struct {
	block, source string
}

// at says where offset in the template being rendered is.
func (mr *messageRender) at(offset int) (block string, line, column int) {
	f := mr.within[len(mr.within)-1]
	line, column = diag.LineCol(f.source, offset)
	return f.block, line, column
}

func (mr *messageRender) warnAt(offset int, message string) {
	block, line, column := mr.at(offset)
	mr.warn(RenderWarning{Block: block, Line: line, Column: column, Message: message})
}

// contentBlockTag renders {{content_blocks.${name}}}; the pre-pass writes
// it (prepass.go), and its name is one no template spells.
const contentBlockTag = "__content_block"

// maxBlockDepth is how deep Content Blocks nest in Braze: a block in a
// block works, a third level silently disappears (specs/braze.md §6).
const maxBlockDepth = 2

// maxContentBlock is Braze's limit on a Content Block body.
const maxContentBlock = 50 << 10

// RenderWith renders a message template, making its Connected Content
// calls through opts. An aborted message returns an *AbortError.
func (t *Template) RenderWith(vars map[string]any, opts RenderOptions) (string, error) {
	if t.constant {
		return t.source, nil
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	withState := make(map[string]any, len(vars)+1)
	maps.Copy(withState, vars)
	warn := opts.Warn
	if warn == nil {
		warn = func(RenderWarning) {}
	}
	withState[messageKey] = &messageRender{ctx: opts.Context, cc: opts.ConnectedContent, blocks: opts.ContentBlocks, warn: warn,
		within: []renderFrame{{source: t.source}}}
	return t.Render(withState)
}

// renderContentBlock renders a Content Block in the caller's scope, like
// an include: it sees what the message assigned so far, and what it
// assigns (a :save among them) stays for the rest of the message.
func (e *Engine) renderContentBlock(w io.Writer, ctx render.Context, mr *messageRender, ref contentBlockSource) error {
	name := ref.name
	src, ok := mr.blocks[name]
	switch {
	case !ok:
		mr.warnAt(ref.offset, fmt.Sprintf("there is no Content Block named %q (give --content-blocks DIR holding %s.liquid); it renders empty", name, name))
		return nil
	case len(mr.within) > maxBlockDepth:
		mr.warnAt(ref.offset, fmt.Sprintf("Content Blocks nest one level deep in Braze; %q is a third level and renders empty", name))
		return nil
	}
	t, ok := mr.parsed[name]
	if !ok {
		if len(src) > maxContentBlock {
			mr.warn(RenderWarning{Block: name, Message: fmt.Sprintf("the block is %d bytes; Braze allows 50 KB", len(src))})
		}
		var problems []Problem
		if t, problems = e.Parse(src, Options{}); len(problems) > 0 {
			line, column := diag.LineCol(src, problems[0].Offset)
			return &RenderError{Block: name, Line: line, Column: column, Message: problems[0].Message}
		}
		if mr.parsed == nil {
			mr.parsed = map[string]*Template{}
		}
		mr.parsed[name] = t
	}
	mr.within = append(mr.within, renderFrame{block: name, source: src})
	defer func() { mr.within = mr.within[:len(mr.within)-1] }()
	scope := newScoped(ctx.Bindings())
	scope.bindLiterals(t)
	defer scope.restore()
	err := renderHere(w, ctx, t)
	if _, abort := causeOf(err).(*AbortError); err == nil || abort {
		return err
	}
	located := t.renderError(err).(*RenderError)
	if located.Block == "" { // not one of a block inside this one
		located.Block = name
	}
	return located
}

// connectedOptions are connected_content's documented options; true for
// those that take a value.
var connectedOptions = map[string]bool{
	"method": true, "headers": true, "body": true, "content_type": true, "basic_auth": true,
	"auth_credentials": true, "save": true, "cache_max_age": true, "no_cache": false, "retry": false,
}

// connectedSpec is one connected_content tag, compiled.
type connectedSpec struct {
	raw                string // the tag's argument text, as written (for messages)
	offset             int    // where raw starts in the user's source
	url, headers, body *Template
	method             string
	contentType        string
	basicAuth, authCr  string
	cacheMaxAge        time.Duration
	noCache, retry     bool
	save               string
}

type rawOption struct {
	name     string
	value    string
	nameOff  int // offsets in the argument text
	valueOff int
}

var saveNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// splitConnected splits the argument text into the URL and its options.
// An option starts at white space followed by ":name"; {{ }} markup is
// skipped, so a filter argument such as default: 'x' never starts one.
func splitConnected(raw string) (urlText string, urlOff int, opts []rawOption) {
	type cut struct{ at, nameEnd int }
	var cuts []cut
	for i := 0; i < len(raw); i++ {
		if strings.HasPrefix(raw[i:], "{{") {
			if k := strings.Index(raw[i+2:], "}}"); k >= 0 {
				i += k + 3
				continue
			}
		}
		if raw[i] == ':' && (i == 0 || isSpace(raw[i-1])) && i+1 < len(raw) && isIdentStart(raw[i+1]) {
			j := i + 1
			for j < len(raw) && (isIdentStart(raw[j]) || isDigit(raw[j])) {
				j++
			}
			cuts = append(cuts, cut{i, j})
			i = j - 1
		}
	}
	end := len(raw)
	if len(cuts) > 0 {
		end = cuts[0].at
	}
	urlText, urlOff = trimmed(raw, 0, end)
	for n, c := range cuts {
		stop := len(raw)
		if n+1 < len(cuts) {
			stop = cuts[n+1].at
		}
		v, voff := trimmed(raw, c.nameEnd, stop)
		opts = append(opts, rawOption{name: raw[c.at+1 : c.nameEnd], nameOff: c.at, value: v, valueOff: voff})
	}
	return urlText, urlOff, opts
}

// trimmed returns raw[from:to] without surrounding white space, and where
// it starts.
func trimmed(raw string, from, to int) (string, int) {
	s := raw[from:to]
	lead := len(s) - len(strings.TrimLeft(s, " \t\r\n"))
	return strings.TrimSpace(s), from + lead
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// compileConnected compiles one connected_content tag. Problems and
// warnings are at offsets of the user's source.
func (e *Engine) compileConnected(src connectedSource) (*connectedSpec, []Problem, []Problem, []Ref) {
	var problems, warnings []Problem
	var refs []Ref
	spec := &connectedSpec{raw: src.raw, offset: src.offset, method: http.MethodGet}
	problem := func(off int, format string, a ...any) {
		problems = append(problems, Problem{src.offset + off, fmt.Sprintf(format, a...)})
	}
	sub := func(text string, off int) *Template {
		t, ps := e.Parse(text, Options{})
		for _, p := range ps {
			problems = append(problems, Problem{src.offset + off + p.Offset, p.Message})
		}
		if t == nil {
			return nil
		}
		for _, w := range t.Warnings() {
			warnings = append(warnings, Problem{src.offset + off + w.Offset, w.Message})
		}
		for _, r := range t.Refs() {
			r.Offset += src.offset + off
			refs = append(refs, r)
		}
		return t
	}
	urlText, urlOff, opts := splitConnected(src.raw)
	if urlText == "" {
		problem(0, "{%% connected_content %%} needs a URL: {%% connected_content https://example.com/api :save result %%}")
	} else {
		spec.url = sub(urlText, urlOff)
	}
	seen := map[string]bool{}
	for _, o := range opts {
		takesValue, known := connectedOptions[o.name]
		switch {
		case o.name == "cache_bust":
			problem(o.nameOff, ":cache_bust is not a connected_content option; to skip Braze's cache write :no_cache")
			continue
		case !known:
			names := slices.Sorted(maps.Keys(connectedOptions))
			problem(o.nameOff, "unknown connected_content option :%s; the options are :%s", o.name, strings.Join(names, ", :"))
			continue
		case seen[o.name]:
			problem(o.nameOff, ":%s is given twice", o.name)
			continue
		case takesValue && o.value == "":
			problem(o.nameOff, ":%s needs a value", o.name)
			continue
		case !takesValue && o.value != "":
			problem(o.valueOff, ":%s takes no value; %q does not belong to it (is a : missing before an option?)", o.name, o.value)
			continue
		}
		seen[o.name] = true
		switch o.name {
		case "method":
			m := strings.ToUpper(o.value)
			if m != http.MethodGet && m != http.MethodPost {
				problem(o.valueOff, "Braze's Connected Content supports only :method get and :method post, not %q", o.value)
			}
			spec.method = m
		case "headers":
			if !strings.Contains(o.value, "{{") && !strings.Contains(o.value, "{%") {
				if _, err := orderedHeaders(o.value); err != nil {
					problem(o.valueOff, ":headers needs a JSON object, {\"Name\": \"value\"}: %v", err)
					continue
				}
			}
			spec.headers = sub(o.value, o.valueOff)
		case "body":
			if outsideMarkup(o.value, func(c byte) bool { return isSpace(c) }) {
				warnings = append(warnings, Problem{src.offset + o.valueOff, "Braze: an inline :body must not contain spaces; {% capture %} the body and write :body {{name}}"})
			}
			spec.body = sub(o.value, o.valueOff)
		case "content_type":
			spec.contentType = o.value
		case "basic_auth":
			spec.basicAuth = o.value
		case "auth_credentials":
			spec.authCr = o.value
		case "save":
			if !saveNameRE.MatchString(o.value) {
				problem(o.valueOff, ":save needs a variable name (letters, digits, _), not %q", o.value)
			}
			spec.save = o.value
		case "cache_max_age":
			n, err := strconv.Atoi(o.value)
			if err != nil || n < 0 {
				problem(o.valueOff, ":cache_max_age needs a number of seconds, not %q", o.value)
				continue
			}
			if n < 300 || n > 14400 {
				warnings = append(warnings, Problem{src.offset + o.valueOff, fmt.Sprintf("Braze keeps :cache_max_age between 300 and 14400 seconds; %d is treated as %d", n, min(max(n, 300), 14400))})
			}
			spec.cacheMaxAge = time.Duration(min(max(n, 300), 14400)) * time.Second
		case "no_cache":
			spec.noCache = true
		case "retry":
			spec.retry = true
		}
	}
	if spec.noCache && spec.cacheMaxAge > 0 {
		warnings = append(warnings, Problem{src.offset, ":no_cache and :cache_max_age together: the response is not cached"})
	}
	if len(problems) > 0 {
		return nil, problems, warnings, refs
	}
	return spec, nil, warnings, refs
}

// outsideMarkup reports whether a byte outside {{ }} satisfies f.
func outsideMarkup(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], "{{") {
			if k := strings.Index(s[i+2:], "}}"); k >= 0 {
				i += k + 3
				continue
			}
		}
		if f(s[i]) {
			return true
		}
	}
	return false
}

// compileMessageTags replaces the hoisted sources of connected_content and
// abort_message with what their tags render, or reports them when the
// engine has no message tags. It returns the variables :save defines.
func (e *Engine) compileMessageTags(t *Template) (problems, warnings []Problem, refs []Ref, saves map[string]bool) {
	saves = map[string]bool{}
	for name, v := range t.literals {
		switch src := v.(type) {
		case connectedSource:
			if !e.messageTags {
				problems = append(problems, Problem{src.offset, messageTagOnly("connected_content")})
				continue
			}
			spec, ps, ws, rs := e.compileConnected(src)
			problems = append(problems, ps...)
			warnings = append(warnings, ws...)
			refs = append(refs, rs...)
			if spec != nil {
				t.literals[name] = spec
				if spec.save != "" {
					saves[spec.save] = true
				} else {
					saves["connected"] = true
				}
			}
		case abortSource:
			if !e.messageTags {
				problems = append(problems, Problem{src.offset, messageTagOnly("abort_message")})
			}
		}
	}
	byOffset := func(a, b Problem) int { return a.Offset - b.Offset }
	slices.SortStableFunc(problems, byOffset)
	slices.SortStableFunc(warnings, byOffset)
	return problems, warnings, refs, saves
}

func messageTagOnly(tag string) string {
	return fmt.Sprintf("{%% %s %%} belongs in Braze message templates (engine render, engine playground); a pipeline reaches SessionM and Braze through its connections", tag)
}

func (e *Engine) addMessageTags() {
	e.cfg.AddTag(contentBlockTag, func(args string) (renderer, error) {
		literal := strings.TrimSpace(args)
		return func(w io.Writer, ctx render.Context) error {
			ref, _ := ctx.Get(literal).(contentBlockSource)
			if mr, _ := ctx.Get(messageKey).(*messageRender); mr != nil && mr.blocks != nil {
				return e.renderContentBlock(w, ctx, mr, ref)
			}
			// no Content Blocks to render: the variable, as bound
			blocks, _ := ctx.Get("content_blocks").(map[string]any)
			_, err := io.WriteString(w, liquidString(blocks[ref.name]))
			return err
		}, nil
	})
	e.cfg.AddTag("connected_content", func(args string) (renderer, error) {
		name := strings.TrimSpace(args)
		return func(w io.Writer, ctx render.Context) error {
			spec, ok := ctx.Get(name).(*connectedSpec)
			if !ok {
				return fmt.Errorf("{%% connected_content %%} is not available in this template")
			}
			return spec.render(w, ctx)
		}, nil
	})
	e.cfg.AddTag("abort_message", func(args string) (renderer, error) {
		name := strings.TrimSpace(args)
		return func(_ io.Writer, ctx render.Context) error {
			src, _ := ctx.Get(name).(abortSource)
			return &AbortError{Reason: src.reason}
		}, nil
	})
}

func (s *connectedSpec) render(w io.Writer, ctx render.Context) error {
	mr, _ := ctx.Get(messageKey).(*messageRender)
	if mr == nil || mr.cc == nil {
		return fmt.Errorf("{%% connected_content %%} needs a way to make calls: preview the template with engine render or engine playground")
	}
	vars := ctx.Bindings()
	call := ConnectedCall{Method: s.method, ContentType: s.contentType, BasicAuth: s.basicAuth,
		AuthCredentials: s.authCr, CacheMaxAge: s.cacheMaxAge, NoCache: s.noCache, Retry: s.retry, Save: s.save}
	call.Block, call.Line, call.Column = mr.at(s.offset + len(s.raw) - len(strings.TrimLeft(s.raw, " \t\r\n"))) // at its URL
	var err error
	if call.URL, err = s.url.Render(vars); err != nil {
		return fmt.Errorf("connected_content URL: %w", err)
	}
	call.URL = strings.TrimSpace(call.URL)
	if s.body != nil {
		if call.Body, err = s.body.Render(vars); err != nil {
			return fmt.Errorf("connected_content :body: %w", err)
		}
	}
	if s.headers != nil {
		text, err := s.headers.Render(vars)
		if err != nil {
			return fmt.Errorf("connected_content :headers: %w", err)
		}
		if call.Headers, err = orderedHeaders(text); err != nil {
			return fmt.Errorf("connected_content :headers is not a JSON object once rendered (%v): %s", err, text)
		}
	}
	started := time.Now()
	ans := mr.cc(mr.ctx, call)
	// the wait for the endpoint does not count against the render's own
	// time bound
	if st := stateOf(ctx); st != nil {
		st.limits.started = st.limits.started.Add(time.Since(started))
	}
	if ans.Abort != "" {
		return &AbortError{Reason: ans.Abort}
	}
	if !ans.Answered || ans.Status == http.StatusNotFound {
		return nil
	}
	if v, ok := jsonResponse(ans.Body); ok {
		if obj, isObj := v.(map[string]any); isObj {
			obj["__http_status_code__"] = ans.Status
		}
		target := s.save
		if target == "" {
			target = "connected"
		}
		ctx.Set(target, v)
		return nil
	}
	_, err = w.Write(ans.Body)
	return err
}

// jsonResponse parses a body that is a JSON object or array. Braze parses
// JSON answers into the :save variable and inserts anything else as text;
// a bare number or string is treated as text here.
func jsonResponse(body []byte) (any, bool) {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" || (trimmed[0] != '{' && trimmed[0] != '[') {
		return nil, false
	}
	v, err := jsonval.Decode([]byte(trimmed))
	return v, err == nil
}

// orderedHeaders reads a JSON object of header names and values, in the
// order written.
func orderedHeaders(text string) ([][2]string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("it does not start with {")
	}
	var out [][2]string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = append(out, [2]string{k.(string), s})
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("there is more after the object")
	}
	return out, nil
}
