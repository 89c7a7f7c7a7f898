// Package filter compiles the expr-lang expressions of pipelines (the
// `filter` that decides whether an event goes on, and `expr` steps that
// compute a value) once, and explains a false verdict part by part.
package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	exprbuiltin "github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/loyalty-connector/engine/engine/diag"
)

// Problem is something wrong in an expression, at a 1-based line and column
// of the expression's own source.
type Problem struct {
	Line, Column int
	Message      string
}

// Options says which names an expression may read.
type Options struct {
	// Names are the top-level variables (event, request, ...).
	Names []string
	// Check is called with every static path the expression reads
	// (request.params.user_id gives [request params user_id]), a name not
	// in Names too; a non-empty answer is reported as a problem. Without
	// it, a name not in Names is reported as unknown.
	Check func(path []string) string
	// Shadow is told each name the expression defines itself (let), as
	// liquid.Options.Shadow is.
	Shadow func(name string)
	// Guard is told each path that Check is told of where the expression
	// allows for the value missing: compared with nil (event.ttl == nil,
	// != nil) or given a fallback (event.ttl ?? "").
	Guard func(path []string)
	// Requires, for an expression that must be true (a filter), is told
	// each path the expression is false without: the operands of its
	// top-level && that test it is there ("ttl" in event, event.ttl !=
	// nil).
	Requires func(path []string)
	// Now is the clock behind expr's now(); time.Now when nil.
	Now func() time.Time
	// Mask hides secrets in the values an error quotes before they are
	// cut short; a secret across the cut was no longer whole, and its
	// first part was printed (a security review). None when nil.
	Mask func(string) string
}

// Program is a compiled expression. It is immutable and safe to run from
// many goroutines.
type Program struct {
	source  string
	program *vm.Program
	explain *part
	mask    func(string) string
}

// part is one piece of a boolean expression kept for explanations.
type part struct {
	op          string // "&&", "||", "!" or "" for a leaf
	text        string
	children    []*part
	program     *vm.Program
	left, right *operand // for a leaf comparison, its two sides
}

type operand struct {
	text    string
	program *vm.Program
}

// CompileBool compiles a filter: an expression that must give true or false.
func CompileBool(src string, opts Options) (*Program, []Problem) {
	return compile(src, opts, true)
}

// CompileValue compiles an expression whose value is kept (an expr step).
func CompileValue(src string, opts Options) (*Program, []Problem) {
	return compile(src, opts, false)
}

// mapArgRE finds a { } given to a function: map(xs, {...}).
var mapArgRE = regexp.MustCompile(`[(,]\s*\{`)

// NotLiquid is what to say of an expression written as Liquid, quoted or
// not (the loader says it of an unquoted one, which YAML reads as a
// mapping).
const NotLiquid = "this is an expr expression, not a Liquid template: write the names without {{ }}, as in event.event_type == 'offer_issued'"

func compile(src string, opts Options, asBool bool) (*Program, []Problem) {
	if strings.TrimSpace(src) == "" {
		return nil, []Problem{{1, 1, "the expression is empty"}}
	}
	tree, err := parser.Parse(src)
	if err != nil {
		p := problemOf(err)
		switch i := strings.Index(src, "{{"); {
		case i >= 0:
			// Liquid where expr is read: the parser's own words ("a map
			// key must be a quoted text...") said nothing of it (a QA run).
			line, col := lineCol(src, i)
			p = Problem{line, col, NotLiquid}
		case strings.Contains(p.Message, `unexpected token Operator(":")`) && mapArgRE.MatchString(src):
			// map(xs, {"k": #}): expr reads a { } given to a function as
			// a predicate, where a map literal needs parentheses (a QA
			// run met only the parser's words).
			p.Message += `; a { } given to map(), filter() and the like is a predicate: write a map as ({"key": #})`
		}
		return nil, []Problem{p}
	}
	// Names are checked here rather than by expr's type checker: the
	// values behind them (events, step results) have no static type, so
	// they are declared as undefined variables of any type.
	var problems []Problem
	refs, locals, calls := paths(tree.Node)
	if opts.Shadow != nil {
		for _, name := range locals {
			opts.Shadow(name)
		}
	}
	if asBool && opts.Requires != nil {
		for _, path := range required(tree.Node) {
			opts.Requires(path)
		}
	}
	for _, ref := range refs {
		if ref.guarded && opts.Guard != nil {
			opts.Guard(ref.path)
		}
		msg := ""
		if opts.Check != nil {
			msg = opts.Check(ref.path)
		} else if name := ref.path[0]; !slices.Contains(opts.Names, name) {
			msg = fmt.Sprintf("unknown name %q; known names here: %s%s", name, strings.Join(opts.Names, ", "), diag.Suggest(name, opts.Names))
		}
		if msg != "" {
			line, col := lineCol(src, ref.from)
			problems = append(problems, Problem{line, col, msg})
		}
	}
	// With undefined variables allowed, expr compiles a call to a name it
	// does not know (noww(), startswith(...)) as a call of nil, which
	// fails on every event at run time.
	for _, call := range calls {
		if name := call.Value; !IsFunction(name) {
			line, col := lineCol(src, call.Location().From)
			problems = append(problems, Problem{line, col, fmt.Sprintf("unknown function %q (expr's functions: https://expr-lang.org/docs/language-definition)%s", name, diag.Suggest(name, functionNames()))})
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	options := envOptions(opts)
	if asBool {
		options = append(options, expr.AsBool())
	}
	prog, err := expr.Compile(src, options...)
	if err != nil {
		return nil, []Problem{problemOf(err)}
	}
	p := &Program{source: src, program: prog, mask: opts.Mask}
	if p.mask == nil {
		p.mask = func(s string) string { return s }
	}
	if asBool {
		p.explain = explainTree(tree.Node, envOptions(opts))
	}
	return p, nil
}

// ownFunctions are the functions envOptions adds to expr's.
var ownFunctions = []string{"now", "dateOrNil"}

// IsFunction reports whether name is one of expr's functions or ours
// (ownFunctions): first, len, now ... A step of that name could not be
// read in an expression.
func IsFunction(name string) bool {
	_, builtin := exprbuiltin.Index[name]
	return builtin || slices.Contains(ownFunctions, name)
}

func functionNames() []string { return append(slices.Clone(exprbuiltin.Names), ownFunctions...) }

func envOptions(opts Options) []expr.Option {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return []expr.Option{
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.Function("now", func(...any) (any, error) { return now(), nil }, new(func() time.Time)),
		expr.Function("dateOrNil", dateOrNil, new(func(any) any)),
	}
}

// dateOrNil reads a date as date(v) does, but gives nil for a value that
// is not text or not a date date() reads, where date() fails. A field
// that may be malformed in one item of many (an offer's expiry in a
// wallet) can then be left out or given a default by the expression,
// rather than failing it for every item.
func dateOrNil(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, nil
	}
	if t, err := exprDate(s); err == nil {
		return t, nil
	}
	return nil, nil
}

// exprDate is expr's own date(), so that dateOrNil reads the same forms.
var exprDate = exprbuiltin.Builtins[exprbuiltin.Index["date"]].Func

// Source returns the expression as written.
func (p *Program) Source() string { return p.source }

// Eval runs a boolean program.
func (p *Program) Eval(env map[string]any) (bool, error) {
	out, err := expr.Run(p.program, env)
	if err != nil {
		err = runError(err, p.source)
		if p.explain != nil {
			// Which part failed, with what it read: "cannot apply >= to
			// null (missing) and a number" alone named neither the
			// comparison nor the misspelt field (a QA run).
			if part := p.explain.failure(env, p.mask); part != "" {
				err = fmt.Errorf("%w, in %s", err, part)
			}
		}
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("the filter gave %v, not true or false", out)
	}
	return b, nil
}

// Value runs a value program.
func (p *Program) Value(env map[string]any) (any, error) {
	out, err := expr.Run(p.program, env)
	if err != nil {
		return nil, runError(err, p.source)
	}
	return out, nil
}

// Explain says which part of a filter made it false, for example
// `event.event_type == "offer_issued" is false (event.event_type is
// "points_awarded")`. It returns "" when it has nothing to add.
func (p *Program) Explain(env map[string]any) string {
	if p.explain == nil {
		return ""
	}
	return strings.Join(p.explain.falseParts(env), "; ")
}

func explainTree(n ast.Node, options []expr.Option) *part {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			op := "&&"
			if n.Operator == "||" || n.Operator == "or" {
				op = "||"
			}
			return &part{op: op, text: n.String(), children: []*part{explainTree(n.Left, options), explainTree(n.Right, options)}}
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			return &part{op: "!", text: n.String(), children: []*part{explainTree(n.Node, options)}}
		}
	}
	leaf := &part{text: n.String(), program: mustCompile(n.String(), options)}
	if b, ok := n.(*ast.BinaryNode); ok {
		leaf.left = newOperand(b.Left, options)
		leaf.right = newOperand(b.Right, options)
	}
	return leaf
}

func newOperand(n ast.Node, options []expr.Option) *operand {
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.ArrayNode:
		return nil // a literal explains itself
	}
	prog := mustCompile(n.String(), options)
	if prog == nil {
		return nil
	}
	return &operand{text: n.String(), program: prog}
}

// mustCompile compiles a piece of an expression that compiled as a whole;
// a piece that does not compile alone is left out of explanations.
func mustCompile(src string, options []expr.Option) *vm.Program {
	prog, err := expr.Compile(src, options...)
	if err != nil {
		return nil
	}
	return prog
}

// falseParts returns the leaves that made this part false.
func (p *part) falseParts(env map[string]any) []string {
	switch p.op {
	case "&&":
		for _, c := range p.children {
			if !c.truth(env) {
				return c.falseParts(env)
			}
		}
	case "||":
		var out []string
		for _, c := range p.children {
			out = append(out, c.falseParts(env)...)
		}
		return out
	case "!":
		return []string{p.text + " is false (" + p.children[0].text + " is true)"}
	}
	if p.program == nil {
		return []string{p.text + " is false"}
	}
	out, err := expr.Run(p.program, env)
	if err != nil {
		return []string{p.text + " failed: " + runError(err, p.text).Error()}
	}
	msg := p.text + " is " + describe(out)
	var sides []string
	for _, side := range []*operand{p.left, p.right} {
		if side == nil {
			continue
		}
		v, err := expr.Run(side.program, env)
		if err == nil {
			sides = append(sides, side.text+" is "+describe(v))
		}
	}
	if len(sides) > 0 {
		msg += " (" + strings.Join(sides, ", ") + ")"
	}
	return []string{msg}
}

// failure names the first part that fails to run, as the filter runs
// (&& and || stop early), with the values its sides read; "" when none
// does on its own.
func (p *part) failure(env map[string]any, mask func(string) string) string {
	switch p.op {
	case "&&", "||":
		for _, c := range p.children {
			if f := c.failure(env, mask); f != "" {
				return f
			}
			if c.truth(env) == (p.op == "||") {
				return "" // the rest does not run
			}
		}
		return ""
	case "!":
		return p.children[0].failure(env, mask)
	}
	if p.program == nil {
		return ""
	}
	if _, err := expr.Run(p.program, env); err == nil {
		return ""
	}
	var sides []string
	for _, side := range []*operand{p.left, p.right} {
		if side == nil {
			continue
		}
		if v, err := expr.Run(side.program, env); err == nil {
			sides = append(sides, side.text+" is "+cut(mask(describe(v)), 200))
		}
	}
	if len(sides) == 0 {
		return p.text
	}
	return p.text + " (" + strings.Join(sides, ", ") + ")"
}

// cut shortens s to at most n runes, marking the cut: an error that
// quoted a list of 5,000 tags whole ran to 54 KB in every dead letter and
// log line (a review).
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func (p *part) truth(env map[string]any) bool {
	switch p.op {
	case "&&":
		for _, c := range p.children {
			if !c.truth(env) {
				return false
			}
		}
		return true
	case "||":
		for _, c := range p.children {
			if c.truth(env) {
				return true
			}
		}
		return false
	case "!":
		return !p.children[0].truth(env)
	}
	if p.program == nil {
		return false
	}
	out, err := expr.Run(p.program, env)
	b, ok := out.(bool)
	return err == nil && ok && b
}

// describe prints a value for an explanation.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "missing (nil)"
	case string:
		return strconv.Quote(v)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

type pathRef struct {
	path    []string
	from    int  // rune offset
	guarded bool // compared with nil, or the left of ??
}

// paths lists the static variable paths an expression reads, the names
// it defines itself (let), in order, and the functions it calls by name.
func paths(root ast.Node) ([]pathRef, []string, []*ast.IdentifierNode) {
	inner := map[ast.Node]bool{}
	locals := map[string]bool{} // let names
	var names []string
	var members []*ast.MemberNode
	var idents, calls []*ast.IdentifierNode
	var methodOf []ast.Node
	guarded := map[ast.Node]bool{}
	ast.Walk(&root, visitor(func(n *ast.Node) {
		switch n := (*n).(type) {
		case *ast.BinaryNode:
			_, leftNil := n.Left.(*ast.NilNode)
			_, rightNil := n.Right.(*ast.NilNode)
			switch {
			case n.Operator == "??":
				guarded[unchain(n.Left)] = true
			case n.Operator == "==" || n.Operator == "!=":
				if rightNil {
					guarded[unchain(n.Left)] = true
				}
				if leftNil {
					guarded[unchain(n.Right)] = true
				}
			}
		case *ast.MemberNode:
			members = append(members, n)
			inner[n.Node] = true
		case *ast.IdentifierNode:
			idents = append(idents, n)
		case *ast.CallNode:
			inner[n.Callee] = true // a function or method name, not a variable
			switch c := n.Callee.(type) {
			case *ast.MemberNode:
				methodOf = append(methodOf, c.Node) // event.when in event.when.Unix()
			case *ast.IdentifierNode:
				calls = append(calls, c)
			}
		case *ast.VariableDeclaratorNode:
			if !locals[n.Name] {
				names = append(names, n.Name)
			}
			locals[n.Name] = true
		}
	}))
	for _, n := range methodOf {
		delete(inner, n)
	}
	var out []pathRef
	for _, m := range members {
		if inner[m] {
			continue
		}
		if p, id, ok := memberPath(m); ok && !locals[p[0]] {
			out = append(out, pathRef{p, id.Location().From, guarded[m]})
		}
	}
	for _, id := range idents {
		if !inner[id] && !locals[id.Value] {
			out = append(out, pathRef{[]string{id.Value}, id.Location().From, guarded[id]})
		}
	}
	return out, names, calls
}

// required lists the paths an expression is false without: those its
// top-level && operands test are there, as "ttl" in event or event.ttl !=
// nil (and nil != event.ttl).
func required(n ast.Node) [][]string {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return nil
	}
	switch b.Operator {
	case "&&", "and":
		return append(required(b.Left), required(b.Right)...)
	case "in":
		if key, ok := b.Left.(*ast.StringNode); ok {
			if p, ok := nodePath(b.Right); ok {
				return [][]string{append(p, key.Value)}
			}
		}
	case "!=":
		if _, ok := b.Right.(*ast.NilNode); ok {
			if p, ok := nodePath(b.Left); ok {
				return [][]string{p}
			}
		}
		if _, ok := b.Left.(*ast.NilNode); ok {
			if p, ok := nodePath(b.Right); ok {
				return [][]string{p}
			}
		}
	}
	return nil
}

// nodePath is the static path n reads (event, event.user), if it is one.
func nodePath(n ast.Node) ([]string, bool) {
	p, _, ok := memberPath(unchain(n))
	return p, ok
}

// unchain is the member read under ?. (event?.ttl is a ChainNode).
func unchain(n ast.Node) ast.Node {
	if c, ok := n.(*ast.ChainNode); ok {
		return c.Node
	}
	return n
}

// memberPath returns the names of a.b["c"].d, stopping at the first part
// that is not a constant name.
func memberPath(n ast.Node) ([]string, *ast.IdentifierNode, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return []string{n.Value}, n, true
	case *ast.MemberNode:
		base, id, ok := memberPath(n.Node)
		if !ok {
			return nil, nil, false
		}
		if s, isName := n.Property.(*ast.StringNode); isName {
			return append(base, s.Value), id, true
		}
		return base, id, true
	}
	return nil, nil, false
}

type visitor func(*ast.Node)

func (v visitor) Visit(n *ast.Node) { v(n) }

func lineCol(src string, runeOffset int) (int, int) {
	line, col := 1, 1
	for i, r := range src {
		if utf8.RuneCountInString(src[:i]) >= runeOffset {
			break
		}
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// problemOf turns an expr parse or compile error into a problem with a
// position and a message without Go type names.
func problemOf(err error) Problem {
	var fe *file.Error
	if errors.As(err, &fe) {
		return Problem{max(fe.Line, 1), fe.Column + 1, cleanMessage(fe.Message)}
	}
	return Problem{1, 1, cleanMessage(err.Error())}
}

// runError turns an error of expr's run time into one a user can act on;
// src is the expression that was run, to name the part that failed.
func runError(err error, src string) error {
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
	}
	// A function or operator that met a value of a type it cannot take
	// panics in expr, which reports the Go type assertion or reflect
	// call; the part of the expression it names is where it failed.
	if m := assertRE.FindStringSubmatch(msg); m != nil && fe != nil {
		return fmt.Errorf("%s needs %s, but got %s", culprit(src, fe.Location), neededWord(m[2]), typeWord(m[1]))
	}
	var ve *reflect.ValueError
	if errors.As(err, &ve) && fe != nil {
		switch c := culprit(src, fe.Location); {
		case ve.Method == "reflect.Value.Len" || ve.Method == "reflect.Value.Index":
			return fmt.Errorf("%s needs a list, but got %s", c, kindWord(ve.Kind))
		case ve.Kind == reflect.Invalid && (c == "int()" || c == "float()"):
			return fmt.Errorf("%s needs a number or text, but got null (missing)", c)
		}
	}
	if m := badArgRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s() cannot take %s", m[1], typeWord(m[2]))
	}
	// int() and float() of text that is no number: expr prints the text
	// where its other messages print a type (int(string)), so it is told
	// apart by where the run failed. A CSV value of " 5" or "" ends here.
	if m := convRE.FindStringSubmatch(msg); m != nil && fe != nil && culprit(src, fe.Location) == m[1]+"()" {
		fn, got := m[1], m[2]
		if got == "json.Number" {
			return fmt.Errorf("%s() cannot take %s; float(string(x)) reads it, rounded", fn, typeWord(got))
		}
		if _, isType := typeWords[got]; isType || got == "<nil>" {
			// Not text: expr names the value's Go type.
			return fmt.Errorf("%s() needs a number or text, but got %s", fn, typeWord(got))
		}
		var hint string
		switch _, err := strconv.ParseFloat(got, 64); {
		case strings.TrimSpace(got) != got:
			hint = " (it has spaces around it)"
		case fn == "int" && err == nil && strings.ContainsAny(got, ".eE"):
			hint = " (it has a fraction; float() reads it)"
		case fn == "int" && err == nil:
			hint = " (it is past the range of whole numbers, 19 digits; float() reads it, rounded)"
		}
		return fmt.Errorf("%s() cannot read %q as %s%s", fn, got, map[string]string{"int": "a whole number", "float": "a number"}[fn], hint)
	}
	switch m := fetchRE.FindStringSubmatch(msg); {
	case m != nil && m[2] == "<nil>":
		return fmt.Errorf("cannot read %s: the value it belongs to is missing (null)", m[1])
	case m != nil:
		return fmt.Errorf("cannot read %s from %s", m[1], typeWord(m[2]))
	}
	// expr says int(X) when X is no whole number where one is needed: a.b
	// read from a list (a[int("b")]), int(), a range, a slice's bounds.
	if m := fieldOfRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("cannot use %s where a whole number is needed (a list takes a position such as [0], not a field name; int(), ranges and slices take whole numbers)", typeWord(m[1]))
	}
	if m := binaryRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("cannot apply %s to %s and %s", m[2], typeWord(m[1]), typeWord(m[3]))
	}
	return errors.New(cleanMessage(msg))
}

var (
	assertRE  = regexp.MustCompile(`^interface conversion: interface \{\} is (.+), not (.+)$`)
	badArgRE  = regexp.MustCompile(`^invalid argument for (\w+) \(type (.+)\)$`)
	convRE    = regexp.MustCompile(`^invalid operation: (int|float)\((.*)\)$`)
	fetchRE   = regexp.MustCompile(`^cannot fetch (\S+) from (.+)$`)
	fieldOfRE = regexp.MustCompile(`^invalid operation: int\((\w+)\)$`)
	binaryRE  = regexp.MustCompile(`^invalid operation: (\S+) (\S+) (\S+)$`)
)

// culprit names the part of src at loc, where expr says a run failed: a
// function (`date()`) or an operator (`"matches"`).
func culprit(src string, loc file.Location) string {
	runes := []rune(src)
	if loc.From < 0 || loc.To > len(runes) || loc.From >= loc.To {
		return "the expression"
	}
	name := string(runes[loc.From:loc.To])
	if isName(name) && strings.HasPrefix(strings.TrimSpace(string(runes[loc.To:])), "(") {
		return name + "()"
	}
	return strconv.Quote(name)
}

func isName(s string) bool {
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return s != ""
}

// neededWord names the Go type a function or operator of expr's needs.
func neededWord(goType string) string {
	switch goType {
	case "string", "[]uint8": // expr's text operators take bytes too
		return "text"
	case "int":
		return "a whole number"
	case "bool":
		return "true or false"
	}
	return typeWord(goType)
}

// kindWord names a reflect.Kind as typeWord names a type.
func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.Invalid:
		return "null (missing)"
	case reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct:
		return "a date"
	}
	return typeWord(k.String())
}

// typeWord names a Go type (or <nil>) as users know JSON values.
func typeWord(goType string) string {
	switch goType {
	case "<nil>", "nil":
		return "null (missing)"
	case "map[string]interface {}":
		return "an object"
	case "[]interface {}":
		return "a list"
	case "string":
		return "text"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "true/false"
	case "time.Time":
		return "a date"
	case "time.Duration":
		return "a duration"
	case "json.Number":
		// jsonval keeps a whole number past int64's range as written.
		return "a whole number too large to compute with (over 19 digits, kept exactly as an id would be)"
	}
	return cleanMessage(goType)
}

var boolConvRE = regexp.MustCompile(`^invalid operation: bool\((.+)\)`)

var goTypeRE = regexp.MustCompile(`map\[string\]interface \{\}|\[\]interface \{\}|interface \{\}|time\.Time|time\.Duration|\b(float64|int|int64|string|bool)\b`)

var typeWords = map[string]string{
	"map[string]interface {}": "object",
	"[]interface {}":          "array",
	"interface {}":            "any value",
	"float64":                 "number",
	"int":                     "integer",
	"int64":                   "integer",
	"string":                  "text",
	"bool":                    "true/false",
	"time.Time":               "time",
	"time.Duration":           "duration",
}

// cleanMessage replaces Go type names in expr's messages with plain words.
func cleanMessage(msg string) string {
	// expr's compiler turns a panic (an invalid regexp built from
	// constants) into an error with the Go stack in it.
	if i := strings.Index(msg, "\ngoroutine "); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	if strings.HasPrefix(msg, "unknown name ") {
		return msg
	}
	if msg == "unexpected token EOF" {
		return "the expression ends too early; something is missing at its end"
	}
	// Outside let (whose "=" parses), expr has no assignment: a lone "="
	// is a comparison written with one sign.
	if msg == `unexpected token Operator("=")` {
		return `unexpected "="; use == to compare`
	}
	if rest, ok := strings.CutPrefix(msg, "expected bool, but got "); ok {
		msg = "the filter must give true or false, but this expression gives " + rest
	}
	if m := boolConvRE.FindStringSubmatch(msg); m != nil {
		return "the filter must give true or false, but it gave " + goTypeRE.ReplaceAllStringFunc(m[1], func(t string) string { return typeWords[t] })
	}
	return goTypeRE.ReplaceAllStringFunc(msg, func(t string) string { return typeWords[t] })
}
