package liquid

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/values"
)

// Conditions of if, unless, elsif and when are split here and only their
// operands go to osteele's expression parser: Liquid groups and/or from
// the right (a and b or c is a and (b or c)), knows <>, empty and blank,
// and a contains nil is false, none of which osteele's grammar does.

// special stands for the literals empty and blank.
type special string

const (
	specialEmpty special = "empty"
	specialBlank special = "blank"
)

type operand struct {
	expr expressions.Expression
	lit  special
}

func (o operand) eval(ctx render.Context) (any, error) {
	if o.lit != "" {
		return o.lit, nil
	}
	return ctx.Evaluate(o.expr)
}

type condition struct {
	left, right *operand
	op          string // "" for a lone value
	// and / or the rest, grouped from the right
	join string
	next *condition
}

func parseOperand(tag, src string) (*operand, error) {
	switch strings.TrimSpace(src) {
	case "empty":
		return &operand{lit: specialEmpty}, nil
	case "blank":
		return &operand{lit: specialBlank}, nil
	}
	x, err := parseExpr(tag, src)
	if err != nil {
		return nil, err
	}
	return &operand{expr: x}, nil
}

// topLevel calls fn at every byte of s outside quotes, parentheses and
// brackets; fn returns how many bytes it consumed (0 for none).
func topLevel(s string, fn func(i int) int) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '"':
			if k := strings.IndexByte(s[i+1:], c); k >= 0 {
				i += k + 1
			}
			continue
		case c == '(' || c == '[':
			depth++
			continue
		case c == ')' || c == ']':
			depth--
			continue
		}
		if depth == 0 {
			if n := fn(i); n > 0 {
				i += n - 1
			}
		}
	}
}

// wordAt reports whether word stands alone at s[i:].
func wordAt(s string, i int, word string) bool {
	if !strings.HasPrefix(s[i:], word) {
		return false
	}
	before := i == 0 || !isIdentChar(s[i-1]) && s[i-1] != '.'
	j := i + len(word)
	after := j == len(s) || !isIdentChar(s[j]) && s[j] != '?'
	return before && after
}

func parseCondition(tag, src string) (*condition, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("{%% %s %%} needs a condition, e.g. {%% %s x == 1 %%}", tag, tag)
	}
	// the first and/or splits off the rest, which makes the grouping
	// right to left
	cut, join := -1, ""
	topLevel(src, func(i int) int {
		if cut >= 0 {
			return 0
		}
		for _, w := range []string{"and", "or"} {
			if wordAt(src, i, w) {
				cut, join = i, w
				return len(w)
			}
		}
		return 0
	})
	c := &condition{}
	head := src
	if cut >= 0 {
		head = src[:cut]
		next, err := parseCondition(tag, src[cut+len(join):])
		if err != nil {
			return nil, err
		}
		c.join, c.next = join, next
	}
	opAt, op := -1, ""
	topLevel(head, func(i int) int {
		if opAt >= 0 {
			return 0
		}
		for _, o := range []string{"==", "!=", "<>", "<=", ">=", "<", ">"} {
			if strings.HasPrefix(head[i:], o) {
				opAt, op = i, o
				return len(o)
			}
		}
		if wordAt(head, i, "contains") {
			opAt, op = i, "contains"
			return len(op)
		}
		return 0
	})
	var err error
	if opAt < 0 {
		c.left, err = parseOperand(tag, head)
		return c, err
	}
	c.op = op
	if c.left, err = parseOperand(tag, head[:opAt]); err != nil {
		return nil, err
	}
	if c.right, err = parseOperand(tag, head[opAt+len(op):]); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *condition) eval(ctx render.Context) (bool, error) {
	a, err := c.left.eval(ctx)
	if err != nil {
		return false, err
	}
	ok := truthy(a)
	if c.op != "" {
		b, err := c.right.eval(ctx)
		if err != nil {
			return false, err
		}
		if ok, err = compare(c.op, a, b); err != nil {
			return false, err
		}
	}
	switch c.join {
	case "and":
		if !ok {
			return false, nil
		}
		return c.next.eval(ctx)
	case "or":
		if ok {
			return true, nil
		}
		return c.next.eval(ctx)
	}
	return ok, nil
}

func isEmptyValue(v any) bool {
	switch v := values.ToLiquid(v).(type) {
	case string:
		return v == ""
	case nil, bool:
		return false
	}
	rv := reflect.ValueOf(values.ToLiquid(v))
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len() == 0
	}
	return false
}

func isBlankValue(v any) bool {
	switch v := values.ToLiquid(v).(type) {
	case nil:
		return true
	case bool:
		return !v
	case string:
		return strings.TrimSpace(v) == ""
	}
	return isEmptyValue(v)
}

func equal(a, b any) bool {
	if _, ok := b.(special); ok {
		a, b = b, a
	}
	if s, ok := a.(special); ok {
		if t, ok := b.(special); ok {
			return s == t
		}
		if s == specialEmpty {
			return isEmptyValue(b)
		}
		return isBlankValue(b)
	}
	return liquidEqual(a, b)
}

// number is v as a float when it is a Go number (a filter's liquidFloat
// included); numeric text is not a number in a comparison.
func number(v any) (float64, bool) {
	if !isNumber(v) {
		return 0, false
	}
	return asFloat(toNumber(v)), true
}

func compare(op string, a, b any) (bool, error) {
	a, b = values.ToLiquid(a), values.ToLiquid(b)
	switch op {
	case "==":
		return equal(a, b), nil
	case "!=", "<>":
		return !equal(a, b), nil
	case "contains":
		return contains(a, b), nil
	}
	var less, eq bool
	x, xok := number(a)
	y, yok := number(b)
	sa, saok := a.(string)
	sb, sbok := b.(string)
	c, exact := exactCompare(a, b)
	switch {
	case exact:
		less, eq = c < 0, c == 0
	case xok && yok:
		less, eq = x < y, x == y
	case saok && sbok:
		less, eq = sa < sb, sa == sb
	case (xok && sbok) || (saok && yok):
		return false, fmt.Errorf("cannot compare %s with %s using %s; convert one of them first (| plus: 0 makes a number)", describeValue(a), describeValue(b), op)
	default:
		// nil and values without an order compare false, as in Liquid
		return false, nil
	}
	switch op {
	case "<":
		return less, nil
	case "<=":
		return less || eq, nil
	case ">":
		return !less && !eq, nil
	case ">=":
		return !less, nil
	}
	return false, nil
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("the text %q", s)
	}
	return fmt.Sprintf("the number %v", v)
}

func contains(a, b any) bool {
	if !truthy(b) {
		return false
	}
	switch a := a.(type) {
	case nil:
		return false
	case string:
		return strings.Contains(a, fmt.Sprint(b))
	case map[string]any:
		s, ok := b.(string)
		if !ok {
			return false
		}
		_, found := a[s]
		return found
	}
	for _, item := range items(a) {
		if equal(item, b) {
			return true
		}
	}
	return false
}

type branch struct {
	cond *condition // nil: else
	not  bool
	body *render.BlockNode // nil: the tag's own body rather than a clause
}

// ifBlock compiles if (and unless, whose first condition is negated):
// the first branch whose condition holds is rendered.
func ifBlock(negate bool) render.BlockCompiler {
	tag := "if"
	if negate {
		tag = "unless"
	}
	return func(node render.BlockNode) (renderer, error) {
		first, err := parseCondition(tag, node.Args)
		if err != nil {
			return nil, err
		}
		branches := []branch{{cond: first, not: negate}}
		quiet := blank(node.Body)
		for _, c := range node.Clauses {
			b := branch{body: c}
			if c.Name == "elsif" {
				if b.cond, err = parseCondition("elsif", c.Args); err != nil {
					return nil, err
				}
			}
			quiet = quiet && blank(c.Body)
			branches = append(branches, b)
		}
		return func(w io.Writer, ctx render.Context) error {
			if quiet {
				w = io.Discard
			}
			for _, b := range branches {
				ok := true
				if b.cond != nil {
					var err error
					if ok, err = b.cond.eval(ctx); err != nil {
						return err
					}
					ok = ok != b.not
				}
				if !ok {
					continue
				}
				if b.body == nil {
					return ctx.RenderChildren(w)
				}
				return ctx.RenderBlock(w, b.body)
			}
			return nil
		}, nil
	}
}

// whenValues reads "a, b or c" and stops at the first thing that is
// neither a comma nor or, as Liquid does.
func whenValues(src string) ([]*operand, error) {
	var ops []*operand
	s := strings.TrimSpace(src)
	for s != "" {
		end := len(s)
		stopped := false
		topLevel(s, func(i int) int {
			if end < len(s) {
				return 0
			}
			if c := s[i]; c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				end = i
			}
			return 0
		})
		o, err := parseOperand("when", s[:end])
		if err != nil {
			return nil, err
		}
		ops = append(ops, o)
		rest := strings.TrimSpace(s[end:])
		switch {
		case strings.HasPrefix(rest, ","):
			rest = rest[1:]
		case wordAt(rest, 0, "or"):
			rest = rest[2:]
		default:
			stopped = true
		}
		if stopped {
			break
		}
		s = strings.TrimSpace(rest)
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("{%% when %%} needs a value to compare with, e.g. {%% when 'a', 'b' %%}")
	}
	return ops, nil
}

// caseBlock renders, in order, every when whose value equals the case's
// (once per matching value) and every else reached while none has.
func caseBlock(node render.BlockNode) (renderer, error) {
	subject, err := parseOperand("case", node.Args)
	if err != nil {
		return nil, err
	}
	type clause struct {
		vals []*operand
		body *render.BlockNode
	}
	var clauses []clause
	for _, c := range node.Clauses {
		cl := clause{body: c}
		if c.Name == "when" {
			if cl.vals, err = whenValues(c.Args); err != nil {
				return nil, err
			}
		}
		clauses = append(clauses, cl)
	}
	return func(w io.Writer, ctx render.Context) error {
		v, err := subject.eval(ctx)
		if err != nil {
			return err
		}
		matched := false
		for _, c := range clauses {
			if c.vals == nil {
				if !matched {
					if err := ctx.RenderBlock(w, c.body); err != nil {
						return err
					}
				}
				continue
			}
			for _, o := range c.vals {
				x, err := o.eval(ctx)
				if err != nil {
					return err
				}
				if equal(v, x) {
					matched = true
					if err := ctx.RenderBlock(w, c.body); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}, nil
}
