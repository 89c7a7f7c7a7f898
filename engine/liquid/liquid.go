// Package liquid renders pipeline templates in Braze's Liquid dialect on top
// of github.com/osteele/liquid: Braze's ${name} attribute syntax, its
// filters, and a typed mode for JSON bodies in which a template that is
// exactly one {{ expression }} yields the expression's value (a number, an
// array, an object) rather than its text.
//
// Templates are parsed once, when a pipeline is built; a parsed Template
// is immutable and may be rendered from many goroutines at once.
package liquid

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/filters"
	"github.com/osteele/liquid/parser"
	"github.com/osteele/liquid/render"
)

// DefaultMaxOutput bounds what one render may produce.
const DefaultMaxOutput = 1 << 20

// Engine holds the tags and filters templates may use.
type Engine struct {
	cfg render.Config
	// filters holds each filter's function by name, as registered with
	// cfg, for the fast path (fast.go) to call without reflection.
	filters   map[string]any
	maxOutput int
	// partials are the templates include and render may use (nil: none,
	// and both tags are refused); see partials.go
	partials       map[string]string
	parsedPartials partialSet
	// messageTags allows connected_content and abort_message (message.go)
	messageTags bool
	// now is what the text 'now' and 'today' read in date and time_zone
	// (WithClock), so that a dry run given a time renders that time.
	now func() time.Time
}

// recordingFilters adds filters to a config and remembers their names, so
// that unknown filters are found when a template is built rather than when
// an event reaches it.
type recordingFilters struct {
	cfg *render.Config
	fns map[string]any
}

func (r recordingFilters) AddFilter(name string, fn any) {
	r.cfg.AddFilter(name, fn)
	r.fns[name] = fn
}

// NewEngine returns an engine with the Liquid 5 tags and standard filters,
// Braze's additions, and no way to read files: {% include %} and
// {% render %} are refused unless WithPartials gives them templates.
func NewEngine(opts ...EngineOption) *Engine {
	e := &Engine{cfg: render.NewConfig(), filters: map[string]any{}, maxOutput: DefaultMaxOutput, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	rec := recordingFilters{&e.cfg, e.filters}
	filters.AddStandardFilters(rec)
	addLiquid5Filters(rec, e.now)
	addBrazeFilters(rec, e.now)
	// Our own tags (tags.go) replace osteele's tags.AddStandardTags, which
	// differ from Liquid 5 and whose blocks cannot be redefined.
	e.addTags()
	return e
}

// knownTags are the tags the parser accepts (include and render are
// refused when compiled, with their own message, if there are no
// partials). echo, liquid, doc and inline comments are rewritten before
// this check (liquid5.go).
var knownTags = map[string]bool{
	"assign": true, "include": true, "render": true, "break": true, "continue": true, "cycle": true,
	"capture": true, "endcapture": true, "case": true, "when": true, "endcase": true,
	"comment": true, "endcomment": true, "raw": true, "endraw": true,
	"for": true, "endfor": true, "tablerow": true, "endtablerow": true,
	"if": true, "elsif": true, "else": true, "endif": true, "unless": true, "endunless": true,
	"increment": true, "decrement": true, "ifchanged": true, "endifchanged": true, "echo": true,
	"connected_content": true, "abort_message": true, contentBlockTag: true,
}

// suggestTag says what an unknown tag may have meant, among the tags a
// template author writes (not the pre-pass's own).
func suggestTag(name string) string {
	if strings.HasPrefix(name, "content_block") {
		return "; a Content Block is inserted with {{content_blocks.${name}}}"
	}
	var names []string
	for t := range knownTags {
		if t != contentBlockTag {
			names = append(names, t)
		}
	}
	return diag.Suggest(name, names)
}

// maxNesting bounds how deep blocks may nest in one template.
const maxNesting = 100

// blockTags open a block that an end tag closes.
var blockTags = map[string]bool{"if": true, "unless": true, "case": true, "for": true, "tablerow": true, "capture": true, "ifchanged": true}

// tooDeep finds the first tag that opens a block more than maxNesting
// deep, and its offset in the rewritten source.
func tooDeep(tags []tagUse) (int, bool) {
	depth := 0
	for _, t := range tags {
		switch {
		case blockTags[t.Name]:
			if depth++; depth > maxNesting {
				return t.Offset, true
			}
		case strings.HasPrefix(t.Name, "end") && blockTags[strings.TrimPrefix(t.Name, "end")]:
			depth = max(depth-1, 0)
		}
	}
	return 0, false
}

// HasFilter reports whether name is a filter templates may use.
func (e *Engine) HasFilter(name string) bool { return e.filters[name] != nil }

// Problem is something wrong in a template, at a byte offset of its source.
type Problem struct {
	Offset  int
	Message string
}

// Options tunes one Parse.
type Options struct {
	// Check is called for every variable the template reads that it does
	// not define itself; a non-empty answer is reported as a problem.
	Check func(path []string) string
	// Shadow is told each name the template defines itself (assign,
	// capture, for, a message tag's save). Reads of that name never
	// reach Check, not even those of a binding it hides, as in
	// {% assign request = request.headers %}.
	Shadow func(name string)
	// Guard is told each variable read that Check is told of where the
	// template allows for the value missing: through | default, or in a
	// test (if, elsif, unless, case, when). A CSV file's header row must
	// name the columns a template reads otherwise.
	Guard func(path []string)
	// Typed makes a template that is exactly one {{ expression }} yield
	// the expression's value from Value (JSON bodies).
	Typed bool
}

// Template is a parsed template.
type Template struct {
	source   string
	constant bool // no markup at all: Render returns source
	node     render.Node
	typed    expressions.Expression // set when the template is one {{ }} in typed mode
	fast     []fastSegment          // set when plain lookups render the template
	refs     []Ref
	engine   *Engine
	literals map[string]any // hoisted by the pre-pass; bound at each render
	warnings []Problem      // what Braze would refuse (braze_warnings.go)
}

// Parse parses src once. It returns every problem it finds, not only the
// first; the template is nil when any was found.
func (e *Engine) Parse(src string, opts Options) (*Template, []Problem) {
	t := &Template{source: src, engine: e}
	if !strings.Contains(src, "{{") && !strings.Contains(src, "{%") {
		t.constant = true
		return t, nil
	}
	p := prepass(src)
	problems := p.problems
	if len(problems) > 0 {
		return nil, problems
	}
	a := analyze(p)
	if off, deep := tooDeep(a.tags); deep {
		// osteele's parser takes minutes over thousands of nested blocks;
		// no message needs more than a few levels.
		return nil, []Problem{{p.offsets.original(off), fmt.Sprintf("blocks are nested more than %d deep here; flatten the template", maxNesting)}}
	}
	unknownTag := false
	for _, tag := range a.tags {
		if !knownTags[tag.Name] {
			unknownTag = true
			problems = append(problems, Problem{p.offsets.original(tag.Offset), fmt.Sprintf("unknown tag %q%s", tag.Name, suggestTag(tag.Name))})
		}
	}
	for _, f := range a.filters {
		fn := e.filters[f.Name]
		switch {
		case fn == nil:
			problems = append(problems, Problem{p.offsets.original(f.Offset), fmt.Sprintf("unknown filter %q%s", f.Name, e.suggestFilter(f.Name))})
			continue
		case !f.Named:
			if err := argsProblem(fn, f.Args); err != nil {
				msg := fmt.Sprintf("filter %s %v", f.Name, err)
				// "| plus 1" is read as plus with no argument: say why.
				if m := argsWithoutColonRE.FindStringSubmatch(p.markupAt(f.Offset)); m != nil && m[1] == f.Name {
					msg += fmt.Sprintf(`: its arguments follow a ":" (| %s: ...)`, f.Name)
				}
				problems = append(problems, Problem{p.offsets.original(f.Offset), msg})
				continue
			}
		}
		// A whole number written as text that is none fails every render
		// (| truncate: 'x'): found here, not first in a dry run.
		for i, what := range wholeNumberArgs[f.Name] {
			if text, ok := f.Strings[i]; ok {
				if _, err := toInteger(text, what); err != nil {
					problems = append(problems, Problem{p.offsets.original(f.Offset), fmt.Sprintf("filter %s: %v", f.Name, err)})
				}
			}
		}
	}
	t.literals = p.literals
	messageProblems, messageWarnings, messageRefs, saves := e.compileMessageTags(t)
	problems = append(problems, messageProblems...)
	for i := range a.refs {
		a.refs[i].Offset = p.offsets.original(a.refs[i].Offset)
	}
	allRefs := append(a.refs, messageRefs...)
	if opts.Shadow != nil {
		for _, names := range []map[string]bool{a.locals, saves} {
			for name := range names {
				opts.Shadow(name)
			}
		}
	}
	slices.SortStableFunc(allRefs, func(x, y Ref) int { return x.Offset - y.Offset })
	for _, r := range allRefs {
		if a.locals[r.Path[0]] || saves[r.Path[0]] || strings.HasPrefix(r.Path[0], literalPrefix) {
			continue
		}
		if r.tested {
			if opts.Guard != nil {
				opts.Guard(r.Path)
			}
			continue
		}
		t.refs = append(t.refs, r)
		if opts.Guard != nil && r.Guarded {
			opts.Guard(r.Path)
		}
		if opts.Check != nil {
			if msg := opts.Check(r.Path); msg != "" {
				problems = append(problems, Problem{r.Offset, msg})
			}
		}
	}
	node, err := e.cfg.Compile(p.source, parser.SourceLoc{Pathname: sourceName})
	if err != nil && !unknownTag {
		// The parser's message after an unknown tag found above would
		// only confuse ("endif not inside ..."), so it is kept for
		// templates without one; beside an unknown filter or name it is
		// a problem of its own (an unclosed if was hidden: a QA run),
		// unless it is about markup a problem above already points into.
		if cp := compileProblem(err, p); !p.pointedInto(cp.Offset, problems) {
			problems = append(problems, cp)
		}
	}
	if opts.Typed {
		if expr, ok := singleObject(p); ok {
			parsed, err := expressions.Parse(expr)
			if err != nil && len(problems) == 0 { // else said already, the same way
				problems = append(problems, Problem{p.offsets.original(p.regions[0].start), "invalid expression: " + err.Error()})
			}
			t.typed = parsed
		}
	}
	if len(problems) > 0 {
		return nil, dedupe(problems)
	}
	t.node = node
	t.fast = e.fastPlan(p)
	t.warnings = append(brazeWarnings(p, a), messageWarnings...)
	return t, nil
}

// Warnings lists what the engine renders but Braze would refuse in a
// message template: a filter inside if/for/case, an operator in assign,
// parentheses, a tag or filter Braze does not document.
func (t *Template) Warnings() []Problem { return t.warnings }

// Refs returns the variables the template reads from its bindings.
func (t *Template) Refs() []Ref { return t.refs }

// Source returns the template as written.
func (t *Template) Source() string { return t.source }

// Typed reports whether Value returns a value rather than text.
func (t *Template) Typed() bool { return t.typed != nil }

// Render renders the template as text.
func (t *Template) Render(vars map[string]any) (out string, err error) {
	if t.constant {
		return t.source, nil
	}
	vars = t.bind(vars)
	if t.fast != nil {
		if out, ok := renderFast(t.fast, vars); ok && len(out) <= t.engine.maxOutput {
			return out, nil
		}
	}
	defer recoverRender(&err)
	w := limitedWriter{max: t.engine.maxOutput}
	if rerr := render.Render(t.node, &w, vars, t.engine.cfg); rerr != nil {
		if abort, ok := causeOf(rerr).(*AbortError); ok {
			return "", abort
		}
		return "", t.renderError(rerr)
	}
	return w.b.String(), nil
}

// Value renders the template as a JSON value: in typed mode the value of
// its single expression, otherwise its text.
func (t *Template) Value(vars map[string]any) (v any, err error) {
	if t.typed == nil {
		return t.Render(vars)
	}
	vars = t.bind(vars)
	if len(t.fast) == 1 && t.fast[0].path != nil {
		if v, ok := t.fast[0].value(vars); ok && isPlainJSON(v) {
			return v, nil
		}
	}
	defer recoverRender(&err)
	out, err := t.typed.Evaluate(expressions.NewContext(vars, t.engine.cfg.Config.Config))
	if err != nil {
		return nil, t.renderError(err)
	}
	return jsonable(out), nil
}

// bind adds the hoisted literals to the caller's variables, in a copy:
// a template never writes to the caller's map.
func (t *Template) bind(vars map[string]any) map[string]any {
	if len(t.literals) == 0 {
		return vars
	}
	out := make(map[string]any, len(vars)+len(t.literals))
	maps.Copy(out, vars)
	maps.Copy(out, t.literals)
	return out
}

func recoverRender(err *error) {
	if r := recover(); r != nil {
		// The parser panics with the writer's error when the output is
		// over the limit; it says where no markup is, so it says what.
		if e, ok := r.(error); ok && errors.Is(e, errTooLarge) {
			*err = &RenderError{Message: e.Error() + ": a loop or a repeated block writes more than a message holds"}
			return
		}
		*err = fmt.Errorf("template failed: %v", r)
	}
}

var singleObjectRE = regexp.MustCompile(`^\s*\{\{-?(.*)-?\}\}\s*$`)

// singleObject returns the expression of a template that is exactly one
// {{ }} with nothing but white space around it.
func singleObject(p prepared) (string, bool) {
	if len(p.regions) != 1 || p.regions[0].tag {
		return "", false
	}
	if !singleObjectRE.MatchString(p.source) {
		return "", false
	}
	return p.regions[0].content, true
}

type limitedWriter struct {
	b   strings.Builder
	max int
}

var errTooLarge = errors.New("the rendered text is larger than the limit")

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, w.max)
	}
	return w.b.Write(p)
}

var (
	convertRE   = regexp.MustCompile(`(?s)^can't convert (.+?)\((.*)\) to type (\S+)(.*)$`)
	filterErrRE = regexp.MustCompile(`(?s)^error applying filter "(\w+)" \("(.*?)"\)(.*)$`)
)

// goTypeWords names Go types the way a template author knows values.
var goTypeWords = map[string]string{
	"float64": "a number", "int": "a whole number", "int64": "a whole number", "string": "text",
	"bool": "true/false", "time.Time": "a date", "[]interface {}": "a list", "map[string]interface {}": "an object",
}

// describeGo describes a value from an osteele message ("string(abc)").
func describeGo(goType, value string) string {
	switch goType {
	case "string":
		return fmt.Sprintf("the text %q", value)
	case "map[string]interface {}":
		return "an object"
	case "[]interface {}":
		return "a list"
	}
	if w, ok := goTypeWords[goType]; ok {
		return w + " " + value
	}
	return value
}

var notInsideRE = regexp.MustCompile(`^(\w+) not inside ?([\w ]*?)(?:; immediate parent is (\w+))?$`)

// liquidErrRE takes osteele's "Liquid error (line N): " off a message;
// the markup it names comes from the error itself (splitError).
var liquidErrRE = regexp.MustCompile(`(?s)^Liquid error(?: \(line \d+\))?: (.*)$`)

// compileProblem turns an osteele parse error into a problem placed at the
// markup it names.
// markupAt is the content of the markup holding the offset off of the
// rewritten source.
func (p prepared) markupAt(off int) string {
	for _, r := range p.regions {
		if r.start <= off && off <= r.start+len(r.content) {
			return r.content
		}
	}
	return ""
}

// pointedInto reports whether one of problems lies inside the markup that
// starts at the original offset off.
func (p prepared) pointedInto(off int, problems []Problem) bool {
	for _, r := range p.regions {
		if p.offsets.original(r.open) != off {
			continue
		}
		end := p.offsets.original(r.start + len(r.content))
		for _, q := range problems {
			if q.Offset >= off && q.Offset <= end {
				return true
			}
		}
	}
	return false
}

func compileProblem(err error, p prepared) Problem {
	msg, context, line := splitError(err)
	off := 0
	if context != "" {
		// the markup the parser names, at a region (not inside a raw or
		// comment block that happens to hold the same text)
		i, found := p.markupOn(context, line)
		if !found {
			i = strings.Index(p.source, context)
		}
		if i >= 0 {
			off = p.offsets.original(i)
		}
	}
	return Problem{off, cleanMessage(msg) + syntaxHint(msg, context)}
}

// sourceName is the path every template is compiled under. Without one,
// the parser put an error inside a for loop at the loop's own tag
// (parser.WrapError re-wraps an error that has no path), and a message
// pointed at {% for %} rather than at the {{ }} that failed (a QA run).
const sourceName = "\x00template"

// splitError reads an osteele error: its message, the markup it names
// (the token's source text, which the parser keeps unexported: read with
// reflect, as the path hides it from Error()) and its line (from 0) in the
// rewritten source. TestRenderErrorsArePlaced fails if the field goes.
func splitError(err error) (msg, context string, line int) {
	msg = err.Error()
	if m := liquidErrRE.FindStringSubmatch(msg); m != nil {
		msg = m[1]
	}
	msg = strings.TrimSuffix(msg, " in "+sourceName)
	if v := reflect.ValueOf(err); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("context"); f.IsValid() && f.Kind() == reflect.String {
			context = f.String()
		}
	}
	if located, ok := err.(interface{ LineNumber() int }); ok {
		line = located.LineNumber()
	}
	return msg, context, line
}

// markupOn finds the markup context at a region on line (from 0) of the
// rewritten source, or at the first region when none is on that line,
// and returns its offset there.
func (p prepared) markupOn(context string, line int) (int, bool) {
	found := -1
	for _, r := range p.regions {
		if !strings.HasPrefix(p.source[r.open:], context) {
			continue
		}
		if strings.Count(p.source[:r.open], "\n") == line {
			return r.open, true
		}
		if found < 0 {
			found = r.open
		}
	}
	return found, found >= 0
}

var (
	// "x | date:" and "x | date: | upcase": a colon with no argument.
	colonWithoutArgsRE = regexp.MustCompile(`\|\s*\w+\s*:\s*(\||$)`)
	// "x | default 'a'": an argument with no colon.
	argsWithoutColonRE = regexp.MustCompile(`\|\s*(\w+)\s+[^|:\s]`)
)

// syntaxHint says what a filter syntax error most likely is: the parser
// only says where.
func syntaxHint(msg, markup string) string {
	if !strings.HasPrefix(msg, "syntax error") {
		return ""
	}
	markup = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(markup, "{{"), "}}"))
	switch {
	case colonWithoutArgsRE.MatchString(markup):
		return `: a filter's ":" is followed by its arguments (| date: "%Y-%m-%d"); without arguments, leave the ":" out`
	case argsWithoutColonRE.MatchString(markup):
		name := argsWithoutColonRE.FindStringSubmatch(markup)[1]
		return fmt.Sprintf(`: a filter's arguments follow a ":" (| %s: ...)`, name)
	}
	return ""
}

// A RenderError is an error of a render, and where it happened.
type RenderError struct {
	// Block names the Content Block it happened in; "" for the template.
	Block string
	// Line and Column are those of the markup that failed, in the
	// template or the block; 0 when unknown.
	Line, Column int
	Message      string
}

func (e *RenderError) Error() string {
	switch {
	case e.Block == "":
		return e.Message
	case e.Line == 0:
		return fmt.Sprintf("content block %s: %s", e.Block, e.Message)
	}
	return fmt.Sprintf("content block %s:%d:%d: %s", e.Block, e.Line, e.Column, e.Message)
}

func (t *Template) renderError(err error) error {
	if located, ok := causeOf(err).(*RenderError); ok && located.Block != "" {
		return located // placed in the Content Block it happened in
	}
	msg, context, line := splitError(err)
	msg = cleanMessage(msg)
	if context != "" {
		msg += " in " + context
	}
	re := &RenderError{Message: t.restoreLiterals(msg)}
	if context != "" {
		// The pre-pass made the source the parser saw; a template does
		// not keep it, so it is made again, which only an error costs.
		p := prepass(t.source)
		if off, found := p.markupOn(context, line); found {
			re.Line, re.Column = diag.LineCol(t.source, p.offsets.original(off))
		}
	}
	return re
}

// restoreLiterals writes the pre-pass's hoisted literals in msg back as
// the template has them: the user never wrote __liquid_literal_0.
func (t *Template) restoreLiterals(msg string) string {
	if !strings.Contains(msg, literalPrefix) {
		return msg
	}
	names := slices.Collect(maps.Keys(t.literals))
	// __liquid_literal_10 before __liquid_literal_1
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	var pairs []string
	for _, name := range names {
		pairs = append(pairs, name, literalText(t.literals[name]))
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// literalText is a hoisted literal as Liquid markup.
func literalText(v any) string {
	switch v := v.(type) {
	case string:
		if strings.Contains(v, "'") {
			return `"` + v + `"`
		}
		return "'" + v + "'"
	case connectedSource: // the engine has no message tags
		return strings.TrimSpace(v.raw)
	case *connectedSpec: // what compileMessageTags made of a connectedSource
		return strings.TrimSpace(v.raw)
	case abortSource:
		return "('" + v.reason + "')"
	}
	return fmt.Sprint(v)
}

// cleanMessage rewrites the osteele messages users meet most into plain words.
func cleanMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "syntax error: ")
	if m := convertRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("cannot use %s as %s%s", describeGo(m[1], m[2]), goTypeWords[m[3]], m[4])
	}
	if m := filterErrRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("filter %s failed: %s%s", m[1], m[2], m[3])
	}
	if m := notInsideRE.FindStringSubmatch(msg); m != nil {
		switch {
		case m[3] != "":
			return fmt.Sprintf("{%% %s %%} does not close the open {%% %s %%} block", m[1], m[3])
		case m[2] == "":
			return fmt.Sprintf("{%% %s %%} closes a block that was never opened", m[1])
		}
		article := "a"
		if strings.ContainsRune("aeiou", rune(m[2][0])) {
			article = "an" // an if or unless block
		}
		return fmt.Sprintf("{%% %s %%} belongs inside %s %s block", m[1], article, m[2])
	}
	msg = strings.ReplaceAll(msg, "undefined filter", "unknown filter")
	msg = strings.ReplaceAll(msg, "undefined tag", "unknown tag")
	return msg
}

func dedupe(ps []Problem) []Problem {
	seen := map[Problem]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// suggestFilter names a known filter close to an unknown one.
func (e *Engine) suggestFilter(name string) string {
	return diag.Suggest(name, slices.Collect(maps.Keys(e.filters)))
}
