package liquid

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/values"
)

// The tags are compiled here rather than taken from osteele's
// tags.AddStandardTags: its for, if, unless, case, cycle and tablerow
// differ from Liquid 5 (offset: continue, forloop.name and parentloop,
// when 'a' or 'b', elsif in unless, right-to-left and/or, cycle groups,
// tablerow markup), and a block cannot be redefined once added. osteele
// still scans, parses and evaluates every expression.

// maxLoopSteps bounds the loop iterations of one render: a loop whose body
// writes nothing is not stopped by the output limit.
const maxLoopSteps = 200_000

// maxRenderTime bounds the time one render may spend in loops, checked
// every renderTimeEvery iterations: 200,000 iterations of a body that
// sorts a long list in each would otherwise run for minutes.
// A variable so that tests of the other limits are not cut short by it
// on a slow machine.
var maxRenderTime = 2 * time.Second

const renderTimeEvery = 256

// maxPartialDepth bounds include/render nesting (a partial including
// itself would otherwise recurse until the stack overflows).
const maxPartialDepth = 64

type renderer = func(io.Writer, render.Context) error

var (
	errBreak    = errors.New("{% break %} is only allowed inside a for or tablerow loop")
	errContinue = errors.New("{% continue %} is only allowed inside a for or tablerow loop")
)

// stateKey holds the per-render state in the bindings; it is not a name
// a template can spell.
const stateKey = "\x00state"

// renderState is what tags remember during one render (Liquid's
// registers and counters).
type renderState struct {
	counters   map[string]int
	counterSet map[string]any // the value increment/decrement last bound
	cycles     map[string]int
	changed    *string
	forOffsets map[string]int
	limits     *renderLimits
}

// renderLimits are shared with the isolated renders of {% render %}.
type renderLimits struct {
	steps, depth int
	started      time.Time
}

func newRenderState(l *renderLimits) *renderState {
	if l.started.IsZero() {
		l.started = time.Now()
	}
	return &renderState{counters: map[string]int{}, counterSet: map[string]any{}, cycles: map[string]int{}, forOffsets: map[string]int{}, limits: l}
}

func stateOf(ctx render.Context) *renderState {
	b := ctx.Bindings()
	if s, ok := b[stateKey].(*renderState); ok {
		return s
	}
	s := newRenderState(&renderLimits{})
	b[stateKey] = s
	return s
}

// step counts one loop iteration against maxLoopSteps.
func (s *renderState) step(tag string) error {
	s.limits.steps++
	if s.limits.steps > maxLoopSteps {
		return fmt.Errorf("{%% %s %%}: the template loops more than %d times in one render; loop over less", tag, maxLoopSteps)
	}
	if s.limits.steps%renderTimeEvery == 0 && time.Since(s.limits.started) > maxRenderTime {
		return fmt.Errorf("{%% %s %%}: the render took longer than %s; loop over less, or do less in each pass", tag, maxRenderTime)
	}
	return nil
}

// causeOf digs the original error out of osteele's wrapping.
func causeOf(err error) error {
	for err != nil {
		var next error
		if c, ok := err.(interface{ Cause() error }); ok {
			next = c.Cause()
		}
		if next == nil {
			next = errors.Unwrap(err)
		}
		if next == nil || next == err {
			return err
		}
		err = next
	}
	return err
}

// boundedBuffer collects a block's text for capture and ifchanged within
// the engine's output limit.
type boundedBuffer struct {
	strings.Builder
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, b.max)
	}
	return b.Builder.Write(p)
}

// addTags registers the tags of Liquid 5.
func (e *Engine) addTags() {
	c := &e.cfg
	c.AddTag("assign", assignTag)
	c.AddTag("break", func(string) (renderer, error) {
		return func(io.Writer, render.Context) error { return errBreak }, nil
	})
	c.AddTag("continue", func(string) (renderer, error) {
		return func(io.Writer, render.Context) error { return errContinue }, nil
	})
	c.AddTag("cycle", cycleTag)
	c.AddTag("increment", counterTag(false))
	c.AddTag("decrement", counterTag(true))
	// the parser skips the bodies of comment and raw itself
	c.AddBlock("comment")
	c.AddBlock("raw")
	c.AddBlock("capture").Compiler(e.captureBlock)
	c.AddBlock("ifchanged").Compiler(e.ifchangedBlock)
	c.AddBlock("if").Clause("elsif").Clause("else").Compiler(ifBlock(false))
	c.AddBlock("unless").Clause("elsif").Clause("else").Compiler(ifBlock(true))
	c.AddBlock("case").Clause("when").Clause("else").Compiler(caseBlock)
	c.AddBlock("for").Clause("else").Compiler(forBlock)
	c.AddBlock("tablerow").Compiler(tablerowBlock)
	e.addPartialTags()
	e.addMessageTags()
}

func assignTag(args string) (renderer, error) {
	stmt, err := expressions.ParseStatement(expressions.AssignStatementSelector, args)
	if err != nil {
		return nil, fmt.Errorf("{%% assign %%}: %v; write {%% assign name = value %%}", err)
	}
	a := stmt.Assignment
	return func(_ io.Writer, ctx render.Context) error {
		v, err := ctx.Evaluate(a.ValueFn)
		if err != nil {
			return err
		}
		ctx.Set(a.Variable, v)
		return nil
	}, nil
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

func (e *Engine) captureBlock(node render.BlockNode) (renderer, error) {
	name := unquote(node.Args)
	if name == "" {
		return nil, errors.New("{% capture %} needs a variable name: {% capture name %}")
	}
	return func(_ io.Writer, ctx render.Context) error {
		buf := boundedBuffer{max: e.maxOutput}
		if err := ctx.RenderChildren(&buf); err != nil {
			return err
		}
		ctx.Set(name, buf.String())
		return nil
	}, nil
}

func (e *Engine) ifchangedBlock(node render.BlockNode) (renderer, error) {
	return func(w io.Writer, ctx render.Context) error {
		buf := boundedBuffer{max: e.maxOutput}
		if err := ctx.RenderChildren(&buf); err != nil {
			return err
		}
		s := stateOf(ctx)
		out := buf.String()
		if s.changed != nil && *s.changed == out {
			return nil
		}
		s.changed = &out
		untrimmed(w)
		_, err := io.WriteString(w, out)
		return err
	}, nil
}

// counterTag is increment (which writes the counter, then adds one) or
// decrement (which subtracts one, then writes it). Counters live apart from
// assigned variables: a variable of the same name is shown in its place
// only while no assign has set it.
func counterTag(down bool) render.TagCompiler {
	tag := "increment"
	if down {
		tag = "decrement"
	}
	return func(args string) (renderer, error) {
		name := unquote(args)
		if name == "" {
			return nil, fmt.Errorf("{%% %s %%} needs a counter name: {%% %s name %%}", tag, tag)
		}
		return func(w io.Writer, ctx render.Context) error {
			s := stateOf(ctx)
			n := s.counters[name]
			shown := n
			if down {
				n--
				shown = n
			} else {
				n++
			}
			s.counters[name] = n
			b := ctx.Bindings()
			if cur, ok := b[name]; !ok || (s.counterSet[name] != nil && cur == s.counterSet[name]) {
				b[name] = n
				s.counterSet[name] = n
			}
			untrimmed(w)
			_, err := io.WriteString(w, strconv.Itoa(shown))
			return err
		}, nil
	}
}

// splitTop splits s at every sep outside quotes, parentheses and brackets.
func splitTop(s string, sep byte) []string {
	var parts []string
	start := 0
	topLevel(s, func(i int) int {
		if s[i] == sep {
			parts = append(parts, s[start:i])
			start = i + 1
		}
		return 0
	})
	return append(parts, s[start:])
}

func parseExpr(tag, src string) (expressions.Expression, error) {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, fmt.Errorf("{%% %s %%}: a value is missing", tag)
	}
	x, err := expressions.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("{%% %s %%}: cannot read %q: %v", tag, src, err)
	}
	return x, nil
}

// cycleTag: {% cycle 'a', 'b' %} or {% cycle group: 'a', 'b' %}. Cycles
// with the same group (or, without one, the same values) share a position
// for the whole render, as in Liquid 5.
func cycleTag(args string) (renderer, error) {
	var group expressions.Expression
	body := args
	if parts := splitTop(args, ':'); len(parts) > 1 {
		g, err := parseExpr("cycle", parts[0])
		if err != nil {
			return nil, err
		}
		group, body = g, strings.Join(parts[1:], ":")
	}
	var vals []expressions.Expression
	var key []string
	for _, p := range splitTop(body, ',') {
		x, err := parseExpr("cycle", p)
		if err != nil {
			return nil, fmt.Errorf("%v; write {%% cycle 'a', 'b' %%}", err)
		}
		vals = append(vals, x)
		key = append(key, strings.TrimSpace(p))
	}
	unnamed := "values:" + strings.Join(key, ",")
	return func(w io.Writer, ctx render.Context) error {
		k := unnamed
		if group != nil {
			g, err := ctx.Evaluate(group)
			if err != nil {
				return err
			}
			k = fmt.Sprintf("group:%T:%v", g, g)
		}
		s := stateOf(ctx)
		i := s.cycles[k]
		next := i + 1
		if next >= len(vals) {
			next = 0
		}
		s.cycles[k] = next
		if i >= len(vals) {
			return nil // a longer cycle of the same group got further
		}
		v, err := ctx.Evaluate(vals[i])
		if err != nil {
			return err
		}
		return writeValue(w, v)
	}, nil
}

// untrimmed prepares osteele's writer for a tag's own output: a -%} just
// before the tag trims the next text written, but Liquid trims only the
// template's text, never what a tag writes. An empty write takes the trim.
func untrimmed(w io.Writer) {
	_, _ = w.Write(nil)
}

// writeValue writes a value as {{ }} would.
func writeValue(w io.Writer, v any) error {
	untrimmed(w)
	v = values.ToLiquid(v)
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		_, err := io.WriteString(w, v)
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		for i := 0; i < rv.Len(); i++ {
			if err := writeValue(w, rv.Index(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := fmt.Fprint(w, v)
	return err
}

// blank reports whether a body writes only white space (Liquid renders
// such a block as nothing, though its assigns still happen).
func blank(nodes []render.Node) bool {
	for _, n := range nodes {
		switch n := n.(type) {
		case *render.TextNode:
			if strings.TrimSpace(n.Source) != "" {
				return false
			}
		case *render.TrimNode:
		case *render.TagNode:
			if n.Name != "assign" {
				return false
			}
		case *render.BlockNode:
			switch n.Name {
			case "if", "unless", "case", "for", "capture":
			default:
				return false
			}
			if !blank(n.Body) {
				return false
			}
			for _, c := range n.Clauses {
				if !blank(c.Body) {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

// loopInteger reads a loop parameter the way Liquid's to_integer does.
func loopInteger(tag, param string, v any) (int, error) {
	switch v := v.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			break
		}
		return int(v), nil
	case string:
		s := strings.TrimSpace(v)
		if n, err := strconv.Atoi(s); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return int(f), nil
		}
	}
	return 0, fmt.Errorf("{%% %s %%}: %s must be a whole number, not %v", tag, param, v)
}

// loopSpec is a parsed "item in collection limit: n offset: m reversed".
type loopSpec struct {
	tag           string
	variable      string
	name          string // forloop.name: variable-collection
	collection    expressions.Expression
	limit, offset expressions.Expression
	cols          expressions.Expression
	continued     bool // offset: continue
	reversed      bool
}

var loopParams = map[string]bool{"limit": true, "offset": true, "cols": true}

func parseLoop(tag, args string) (*loopSpec, error) {
	usage := fmt.Errorf("{%% %s %%} reads {%% %s item in collection %%}, optionally followed by limit: n, offset: n and reversed", tag, tag)
	toks := lex(args, 0)
	if len(toks) < 3 || toks[0].kind != 'i' || toks[1].text != "in" {
		return nil, usage
	}
	spec := &loopSpec{tag: tag, variable: toks[0].text}
	// the collection runs up to the first parameter or comma at depth 0
	isParam := func(i int) bool {
		t := toks[i]
		if t.kind != 'i' {
			return false
		}
		if t.text == "reversed" {
			return true
		}
		return loopParams[t.text] && i+1 < len(toks) && toks[i+1].text == ":"
	}
	boundary := func(from int) int {
		depth := 0
		for i := from; i < len(toks); i++ {
			switch toks[i].text {
			case "(", "[":
				depth++
			case ")", "]":
				depth--
			}
			if depth == 0 && (toks[i].text == "," || isParam(i)) {
				return i
			}
		}
		return len(toks)
	}
	textOf := func(from, to int) string {
		end := len(args)
		if to < len(toks) {
			end = toks[to].off
		}
		return strings.TrimSpace(args[toks[from].off:end])
	}
	end := boundary(2)
	if end == 2 {
		return nil, usage
	}
	collSrc := textOf(2, end)
	spec.name = spec.variable + "-" + collSrc
	var err error
	if spec.collection, err = parseExpr(tag, collSrc); err != nil {
		return nil, err
	}
	for i := end; i < len(toks); {
		t := toks[i]
		switch {
		case t.text == ",":
			i++
		case t.text == "reversed":
			spec.reversed = true
			i++
		case isParam(i):
			stop := boundary(i + 2)
			if stop == i+2 {
				return nil, fmt.Errorf("{%% %s %%}: %s needs a value", tag, t.text)
			}
			src := textOf(i+2, stop)
			if t.text == "offset" && src == "continue" {
				spec.continued = true
			} else {
				x, err := parseExpr(tag, src)
				if err != nil {
					return nil, err
				}
				switch t.text {
				case "limit":
					spec.limit = x
				case "offset":
					spec.offset = x
				case "cols":
					spec.cols = x
				}
			}
			i = stop
		default:
			return nil, fmt.Errorf("{%% %s %%}: unexpected %q; %v", tag, t.text, usage)
		}
	}
	return spec, nil
}

// items lists what a loop visits: the elements of an array or range, the
// [key, value] pairs of an object (by key, as Go maps keep no order), and
// a non-empty string as one item.
func items(v any) []any {
	v = values.ToLiquid(v)
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		if v == "" {
			return nil
		}
		return []any{v}
	case []any:
		return v
	case values.Range:
		return rangeItems(v)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out
	case reflect.Map:
		keys := sortedKeys(rv)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = []any{k.Interface(), rv.MapIndex(k).Interface()}
		}
		return out
	}
	return nil
}

// segment evaluates the collection and applies offset, limit and reversed
// (in that order, as Liquid does).
func (l *loopSpec) segment(ctx render.Context, s *renderState) ([]any, error) {
	from := 0
	if l.continued {
		from = s.forOffsets[l.name]
	} else if l.offset != nil {
		v, err := ctx.Evaluate(l.offset)
		if err != nil {
			return nil, err
		}
		if v != nil {
			if from, err = loopInteger(l.tag, "offset", v); err != nil {
				return nil, err
			}
		}
	}
	coll, err := ctx.Evaluate(l.collection)
	if err != nil {
		return nil, err
	}
	all := items(coll)
	to := len(all)
	if l.limit != nil {
		v, err := ctx.Evaluate(l.limit)
		if err != nil {
			return nil, err
		}
		if v != nil {
			n, err := loopInteger(l.tag, "limit", v)
			if err != nil {
				return nil, err
			}
			to = min(to, from+n)
		}
	}
	from = max(from, 0)
	var seg []any
	if from < to {
		seg = append(seg, all[from:to]...)
	}
	if l.reversed {
		for i, j := 0, len(seg)-1; i < j; i, j = i+1, j-1 {
			seg[i], seg[j] = seg[j], seg[i]
		}
	}
	if l.tag == "for" {
		s.forOffsets[l.name] = from + len(seg)
	}
	return seg, nil
}

// renderLoopKey marks the forloop of {% render ... for %}.
const renderLoopKey = "\x00render"

// forloopVars is the forloop object of iteration i of n.
func forloopVars(name string, i, n int, parent any) map[string]any {
	m := map[string]any{"name": name, "length": n, "parentloop": parent}
	setForloop(m, i, n)
	return m
}

// setForloop moves a forloop object to pass i of n.
func setForloop(m map[string]any, i, n int) {
	m["index"], m["index0"], m["rindex"], m["rindex0"] = i+1, i, n-i, n-i-1
	m["first"], m["last"] = i == 0, i == n-1
}

// scoped binds names for the length of a loop or partial and restores
// what they were before.
type scoped struct {
	b     map[string]any
	saved map[string]any
	had   map[string]bool
}

func newScoped(b map[string]any, names ...string) *scoped {
	s := &scoped{b: b, saved: map[string]any{}, had: map[string]bool{}}
	for _, n := range names {
		s.save(n)
	}
	return s
}

func (s *scoped) save(name string) {
	if _, done := s.had[name]; done {
		return
	}
	v, ok := s.b[name]
	s.saved[name], s.had[name] = v, ok
}

func (s *scoped) restore() {
	for n, ok := range s.had {
		if ok {
			s.b[n] = s.saved[n]
		} else {
			delete(s.b, n)
		}
	}
}

// loopBody renders one iteration; it reports whether the loop must stop.
func loopBody(w io.Writer, ctx render.Context) (stop bool, err error) {
	err = ctx.RenderChildren(w)
	if err == nil {
		return false, nil
	}
	switch causeOf(err) {
	case errBreak:
		return true, nil
	case errContinue:
		return false, nil
	}
	return true, err
}

func forBlock(node render.BlockNode) (renderer, error) {
	spec, err := parseLoop("for", node.Args)
	if err != nil {
		return nil, err
	}
	var elseBlock *render.BlockNode
	for _, c := range node.Clauses {
		if c.Name == "else" && elseBlock == nil {
			elseBlock = c
		}
	}
	quiet := blank(node.Body)
	return func(w io.Writer, ctx render.Context) error {
		s := stateOf(ctx)
		seg, err := spec.segment(ctx, s)
		if err != nil {
			return err
		}
		if len(seg) == 0 {
			if elseBlock != nil {
				return ctx.RenderBlock(w, elseBlock)
			}
			return nil
		}
		out := w
		if quiet {
			out = io.Discard
		}
		b := ctx.Bindings()
		scope := newScoped(b, spec.variable, "forloop")
		defer scope.restore()
		parent := scope.saved["forloop"]
		if m, ok := parent.(map[string]any); ok && m[renderLoopKey] == true {
			parent = nil // a {% render ... for %} loop is no parentloop
		}
		// One forloop object for the whole loop, updated each pass, as
		// Liquid's drop is: a map per pass was a tenth of a render's time.
		forloop := forloopVars(spec.name, 0, len(seg), parent)
		b["forloop"] = forloop
		for i, item := range seg {
			if err := s.step("for"); err != nil {
				return err
			}
			b[spec.variable] = item
			setForloop(forloop, i, len(seg))
			stop, err := loopBody(out, ctx)
			if err != nil {
				return err
			}
			if stop {
				break
			}
		}
		return nil
	}, nil
}

func tablerowBlock(node render.BlockNode) (renderer, error) {
	spec, err := parseLoop("tablerow", node.Args)
	if err != nil {
		return nil, err
	}
	return func(w io.Writer, ctx render.Context) error {
		s := stateOf(ctx)
		seg, err := spec.segment(ctx, s)
		if err != nil {
			return err
		}
		n := len(seg)
		cols := n
		if spec.cols != nil {
			v, err := ctx.Evaluate(spec.cols)
			if err != nil {
				return err
			}
			if v != nil {
				if cols, err = loopInteger("tablerow", "cols", v); err != nil {
					return err
				}
			}
		}
		b := ctx.Bindings()
		scope := newScoped(b, spec.variable, "tablerowloop")
		defer scope.restore()
		untrimmed(w)
		if _, err := io.WriteString(w, "<tr class=\"row1\">\n"); err != nil {
			return err
		}
		row, col := 1, 1
		loop := map[string]any{"length": n}
		b["tablerowloop"] = loop
		for i, item := range seg {
			if err := s.step("tablerow"); err != nil {
				return err
			}
			b[spec.variable] = item
			setForloop(loop, i, n)
			loop["row"], loop["col"], loop["col0"], loop["col_first"], loop["col_last"] = row, col, col-1, col == 1, col == cols
			if _, err := fmt.Fprintf(w, "<td class=\"col%d\">", col); err != nil {
				return err
			}
			stop, err := loopBody(w, ctx)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(w, "</td>"); err != nil {
				return err
			}
			if stop {
				break
			}
			if col == cols && i != n-1 {
				if _, err := fmt.Fprintf(w, "</tr>\n<tr class=\"row%d\">", row+1); err != nil {
					return err
				}
			}
			if col == cols {
				col, row = 1, row+1
			} else {
				col++
			}
		}
		_, err = io.WriteString(w, "</tr>\n")
		return err
	}, nil
}
