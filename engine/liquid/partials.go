package liquid

import (
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/render"
)

// Templates never read files. {% include %} and {% render %} work only
// when the engine is given partials in memory (WithPartials); without
// them both are refused when a template is parsed.

// EngineOption configures NewEngine.
type EngineOption func(*Engine)

// WithPartials gives {% include 'name' %} and {% render 'name' %} the
// templates they may use, by name. The map is copied.
func WithPartials(partials map[string]string) EngineOption {
	return func(e *Engine) {
		e.partials = maps.Clone(partials)
		if e.partials == nil {
			e.partials = map[string]string{}
		}
	}
}

// WithClock sets the time the text 'now' and 'today' stand for in the
// date and time_zone filters ({{ 'now' | date: '%Y' }}); time.Now when
// not given. Only a dry run or a test sets it.
func WithClock(now func() time.Time) EngineOption {
	return func(e *Engine) { e.now = now }
}

// partialSet parses each partial once, when first used; a parsed
// Template is safe to share between renders.
type partialSet struct {
	mu     sync.Mutex
	parsed map[string]*Template
	errs   map[string]error
}

func (e *Engine) partial(tag, name string) (*Template, error) {
	src, ok := e.partials[name]
	if !ok {
		return nil, fmt.Errorf("{%% %s %%}: there is no partial named %q", tag, name)
	}
	ps := &e.parsedPartials
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if t, ok := ps.parsed[name]; ok {
		return t, nil
	}
	if err, ok := ps.errs[name]; ok {
		return nil, err
	}
	t, problems := e.Parse(src, Options{})
	if len(problems) > 0 {
		err := fmt.Errorf("{%% %s %%}: partial %q does not parse: %s", tag, name, problemsAt(src, problems))
		if ps.errs == nil {
			ps.errs = map[string]error{}
		}
		ps.errs[name] = err
		return nil, err
	}
	if ps.parsed == nil {
		ps.parsed = map[string]*Template{}
	}
	ps.parsed[name] = t
	return t, nil
}

// partialCall is a parsed include or render tag:
// 'name' [with|for value [as alias]] [,] [key: value, ...]
type partialCall struct {
	tag      string
	name     string                 // a quoted name
	nameExpr expressions.Expression // include only: a name held in a variable
	value    expressions.Expression // with / for
	loop     bool                   // for
	alias    string
	keys     []string
	args     []expressions.Expression
}

func parsePartialCall(tag, src string) (*partialCall, error) {
	usage := fmt.Sprintf("write {%% %s 'name' %%}, optionally followed by with value, for values, as alias and key: value arguments", tag)
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, fmt.Errorf("{%% %s %%} needs the name of a partial; %s", tag, usage)
	}
	c := &partialCall{tag: tag}
	var rest string
	if q := src[0]; q == '\'' || q == '"' {
		end := strings.IndexByte(src[1:], q)
		if end < 0 {
			return nil, fmt.Errorf("{%% %s %%}: the name's quote is not closed", tag)
		}
		c.name, rest = src[1:end+1], src[end+2:]
	} else {
		if tag == "render" {
			return nil, fmt.Errorf("{%% render %%} needs the partial's name in quotes; %s", usage)
		}
		end := strings.IndexAny(src, " \t,")
		if end < 0 {
			end = len(src)
		}
		x, err := parseExpr(tag, src[:end])
		if err != nil {
			return nil, err
		}
		c.nameExpr, rest = x, src[end:]
	}
	pieces := splitTop(rest, ',')
	first := strings.TrimSpace(pieces[0])
	for _, kw := range []string{"with", "for"} {
		if !wordAt(first, 0, kw) {
			continue
		}
		c.loop = kw == "for"
		body := first[len(kw):]
		// the value ends at "as alias" or at a key: value argument
		end := len(body)
		topLevel(body, func(i int) int {
			if end < len(body) {
				return 0
			}
			if wordAt(body, i, "as") || (i > 0 && body[i-1] == ' ' && isKeyAt(body, i)) {
				end = i
			}
			return 0
		})
		x, err := parseExpr(tag, body[:end])
		if err != nil {
			return nil, err
		}
		c.value = x
		after := strings.TrimSpace(body[end:])
		if wordAt(after, 0, "as") {
			fields := strings.Fields(after[2:])
			if len(fields) == 0 {
				return nil, fmt.Errorf("{%% %s %%}: as needs a name", tag)
			}
			c.alias = fields[0]
			after = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(after[2:]), fields[0]))
		}
		first = after
	}
	pieces[0] = first
	for _, p := range pieces {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k := strings.IndexByte(p, ':')
		if k < 0 || !isKeyAt(p, 0) {
			return nil, fmt.Errorf("{%% %s %%}: unexpected %q; %s", tag, p, usage)
		}
		x, err := parseExpr(tag, p[k+1:])
		if err != nil {
			return nil, err
		}
		c.keys = append(c.keys, strings.TrimSpace(p[:k]))
		c.args = append(c.args, x)
	}
	return c, nil
}

// isKeyAt reports whether s[i:] starts with "identifier:".
func isKeyAt(s string, i int) bool {
	j := i
	for j < len(s) && isIdentChar(s[j]) {
		j++
	}
	if j == i || !isIdentStart(s[i]) {
		return false
	}
	for j < len(s) && s[j] == ' ' {
		j++
	}
	return j < len(s) && s[j] == ':'
}

func (e *Engine) addPartialTags() {
	for _, tag := range []string{"include", "render"} {
		e.cfg.AddTag(tag, func(args string) (renderer, error) {
			if e.partials == nil {
				return nil, fmt.Errorf("{%% %s %%} is not available: templates cannot read files", tag)
			}
			call, err := parsePartialCall(tag, args)
			if err != nil {
				return nil, err
			}
			return func(w io.Writer, ctx render.Context) error { return e.renderPartial(call, w, ctx) }, nil
		})
	}
}

func (e *Engine) renderPartial(c *partialCall, w io.Writer, ctx render.Context) error {
	name := c.name
	if c.nameExpr != nil {
		v, err := ctx.Evaluate(c.nameExpr)
		if err != nil {
			return err
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("{%% %s %%}: the partial's name must be text, not %v", c.tag, v)
		}
		name = s
	}
	t, err := e.partial(c.tag, name)
	if err != nil {
		return err
	}
	state := stateOf(ctx)
	if state.limits.depth >= maxPartialDepth {
		return fmt.Errorf("{%% %s %%}: partials nest more than %d deep; does %q include itself?", c.tag, maxPartialDepth, name)
	}
	state.limits.depth++
	defer func() { state.limits.depth-- }()

	args := make(map[string]any, len(c.keys))
	for i, k := range c.keys {
		v, err := ctx.Evaluate(c.args[i])
		if err != nil {
			return err
		}
		args[k] = v
	}
	varName := name
	if c.alias != "" {
		varName = c.alias
	}
	var value any
	hasValue := c.value != nil
	if hasValue {
		if value, err = ctx.Evaluate(c.value); err != nil {
			return err
		}
	} else if c.tag == "include" {
		// Liquid binds a variable named like the partial, if there is one
		value, hasValue = ctx.Get(name), true
	}
	var list []any
	iterate := false
	if hasValue && (c.loop || c.tag == "include") {
		if _, isList := value.([]any); isList || c.loop {
			list, iterate = items(value), true
		}
	}

	if c.tag == "render" {
		// the partial's own hoisted literals and message tags, and the
		// way the render makes Connected Content calls
		own := maps.Clone(t.literals)
		if own == nil {
			own = map[string]any{}
		}
		if m, ok := ctx.Get(messageKey).(*messageRender); ok {
			own[messageKey] = m
		}
		return e.renderIsolated(t, w, state, args, own, varName, value, hasValue, iterate, list)
	}
	b := ctx.Bindings()
	scope := newScoped(b, varName)
	for k := range args {
		scope.save(k)
	}
	scope.bindLiterals(t)
	defer func() {
		// an assign in the partial to an argument's name outlives it
		for k, v := range args {
			if cur, ok := b[k]; ok && !sameValue(cur, v) {
				delete(scope.had, k)
			}
		}
		scope.restore()
	}()
	maps.Copy(b, args)
	run := func() error { return renderHere(w, ctx, t) }
	if !iterate {
		if hasValue {
			b[varName] = value
		}
		return run()
	}
	for _, item := range list {
		if err := state.step("include"); err != nil {
			return err
		}
		b[varName] = item
		if err := run(); err != nil {
			return err
		}
	}
	return nil
}

func sameValue(a, b any) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// renderIsolated renders a partial for {% render %}: it sees only its
// arguments, and what it assigns stays inside it.
func (e *Engine) renderIsolated(t *Template, w io.Writer, state *renderState, args, own map[string]any, varName string, value any, hasValue, iterate bool, list []any) error {
	run := func(extra map[string]any) error {
		if t.node == nil {
			_, err := io.WriteString(w, t.source)
			return err
		}
		vars := maps.Clone(args)
		maps.Copy(vars, own)
		maps.Copy(vars, extra)
		vars[stateKey] = newRenderState(state.limits)
		// osteele's writer reports short writes when another of its
		// writers writes into it, so the partial renders apart first
		buf := boundedBuffer{max: e.maxOutput}
		if err := render.Render(t.node, &buf, vars, e.cfg); err != nil {
			if c := causeOf(err); c != errBreak && c != errContinue {
				return err
			}
		}
		_, err := io.WriteString(w, buf.String())
		return err
	}
	if !iterate {
		extra := map[string]any{}
		if hasValue {
			extra[varName] = value
		}
		return run(extra)
	}
	for i, item := range list {
		if err := state.step("render"); err != nil {
			return err
		}
		loop := forloopVars(varName, i, len(list), nil)
		loop[renderLoopKey] = true
		if err := run(map[string]any{varName: item, "forloop": loop}); err != nil {
			return err
		}
	}
	return nil
}

// problemsAt words the problems of a template's source as
// "line:col: message", joined by "; ".
func problemsAt(src string, problems []Problem) string {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		line, col := diag.LineCol(src, p.Offset)
		msgs[i] = fmt.Sprintf("%d:%d: %s", line, col, p.Message)
	}
	return strings.Join(msgs, "; ")
}

// bindLiterals binds t's hoisted literals (its message tags among them)
// for as long as the scope lasts: they have the same generated names as
// the caller's, and t must see its own while it runs.
func (s *scoped) bindLiterals(t *Template) {
	for k := range t.literals {
		s.save(k)
	}
	maps.Copy(s.b, t.literals)
}

// renderHere renders t in the caller's scope, as include does; a template
// without markup is its source.
func renderHere(w io.Writer, ctx render.Context, t *Template) error {
	if t.node == nil {
		_, err := io.WriteString(w, t.source)
		return err
	}
	return ctx.RenderBlock(w, &render.BlockNode{Body: []render.Node{t.node}})
}
