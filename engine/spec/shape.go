package spec

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/loyalty-connector/engine/engine/diag"
)

// Shape describes a JSON value well enough to catch the usual mistakes: a
// misspelt field, a string where a number belongs, a missing required
// field, too many recipients. It describes request bodies and the
// variables templates read.
type Shape struct {
	Type     string // object, array, string, number, integer, boolean; "" for any
	Fields   map[string]*Shape
	Open     bool // an object that may hold fields not listed
	Required []string
	Items    *Shape
	MinItems int
	MaxItems int // 0: no limit
	Doc      string
	// Rules are conditions on an object's fields together, which the
	// fields' own shapes cannot state ("exactly one of").
	Rules []Rule
}

// A Rule checks an object's fields together and returns "" when they fit,
// else what is wrong. Before a body is rendered, a field whose value is a
// template holds Unknown, and a rule says nothing it cannot tell without
// its value.
type Rule func(obj map[string]any) string

// Unknown stands for a value that only rendering will tell.
type Unknown struct{}

// With adds rules to an object shape.
func (s *Shape) With(rules ...Rule) *Shape {
	s.Rules = append(s.Rules, rules...)
	return s
}

// CheckOutline checks an object whose values may be Unknown, as a body is
// written before it is rendered: its rules, and its required fields when
// required is true (not at a body's top level, where the connection may
// fill some in). Fields are checked one by one elsewhere.
func (s *Shape) CheckOutline(obj map[string]any, required bool) []string {
	if s == nil || s.Type != "object" {
		return nil
	}
	var out []string
	if required {
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				out = append(out, fmt.Sprintf("%q is required", r))
			}
		}
	}
	for _, rule := range s.Rules {
		if msg := rule(obj); msg != "" {
			out = append(out, msg)
		}
	}
	return out
}

// Any is a value of any shape.
func Any() *Shape { return &Shape{} }

// String, Number, Integer and Boolean are scalars.
func String() *Shape  { return &Shape{Type: "string"} }
func Number() *Shape  { return &Shape{Type: "number"} }
func Integer() *Shape { return &Shape{Type: "integer"} }
func Boolean() *Shape { return &Shape{Type: "boolean"} }

// Object is an object with exactly the given fields.
func Object(fields map[string]*Shape, required ...string) *Shape {
	return &Shape{Type: "object", Fields: fields, Required: required}
}

// OpenObject is an object with any fields, the required ones among them.
func OpenObject(required ...string) *Shape {
	return &Shape{Type: "object", Open: true, Required: required}
}

// Array is an array of items with at most max elements (0: no limit).
func Array(items *Shape, min, max int) *Shape {
	return &Shape{Type: "array", Items: items, MinItems: min, MaxItems: max}
}

// FieldNames lists an object's fields, sorted.
func (s *Shape) FieldNames() []string { return slices.Sorted(maps.Keys(s.Fields)) }

// CheckPath checks that a template or filter may read path from a value of
// this shape; it returns "" when it may, else a message. Paths are only
// checked as far as the shape is closed.
func (s *Shape) CheckPath(root string, path []string) string {
	cur := s
	where := root
	for _, name := range path {
		if cur == nil || cur.Type == "" || cur.Open {
			return ""
		}
		if cur.Type != "object" {
			if name == "size" || name == "first" || name == "last" {
				return "" // Liquid's array and string properties
			}
			return fmt.Sprintf("%s is %s, it has no field %q", where, article(cur.Type), name)
		}
		next, ok := cur.Fields[name]
		if !ok {
			known := cur.FieldNames()
			if len(known) == 0 {
				return fmt.Sprintf("%s has no fields, so %q does not exist", where, name)
			}
			msg := fmt.Sprintf("%s has no field %q; it has %s%s", where, name, strings.Join(known, ", "), diag.Suggest(name, known))
			if where == "row" {
				// A CSV row's place; its columns are the event's.
				msg += fmt.Sprintf("; a CSV row's columns are read as event.%s", name)
			}
			return msg
		}
		cur, where = next, where+"."+name
	}
	return ""
}

func article(t string) string {
	if strings.IndexByte("aeiou", t[0]) >= 0 {
		return "an " + t
	}
	return "a " + t
}

// KindProblem says what is wrong with a value of JSON kind ("object",
// "array") written where s is expected, before its leaves are rendered;
// "" when it fits.
func (s *Shape) KindProblem(kind string) string {
	if s == nil || s.Type == "" || s.Type == kind {
		return ""
	}
	return fmt.Sprintf("must be %s, not %s", article(s.Type), article(kind))
}

// Violation is a value that does not fit a shape, with its JSON path.
type Violation struct {
	Path    string
	Message string
}

func (v Violation) String() string {
	if v.Path == "" {
		return v.Message
	}
	return v.Path + ": " + v.Message
}

// Validate checks a rendered value against the shape and returns every
// violation.
func (s *Shape) Validate(v any) []Violation {
	out := s.validate(v)
	// map order is random; sort so messages are stable
	slices.SortFunc(out, func(a, b Violation) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Message, b.Message))
	})
	return out
}

// validate returns violations with paths relative to v. Paths are built on
// the way out, so a value that fits costs no allocations for them.
func (s *Shape) validate(v any) []Violation {
	if s == nil || s.Type == "" {
		return nil
	}
	if got := jsonType(v); got != s.Type && !(s.Type == "number" && got == "integer") {
		return []Violation{{"", fmt.Sprintf("must be %s, not %s", article(s.Type), describeJSON(v))}}
	}
	var out []Violation
	switch s.Type {
	case "object":
		m := v.(map[string]any)
		for _, msg := range s.CheckOutline(m, true) {
			out = append(out, Violation{"", msg})
		}
		for k, e := range m {
			f, ok := s.Fields[k]
			if !ok {
				if !s.Open {
					out = append(out, Violation{"", fmt.Sprintf("unknown field %q; allowed: %s%s", k, strings.Join(s.FieldNames(), ", "), diag.Suggest(k, s.FieldNames()))})
				}
				continue
			}
			for _, inner := range f.validate(e) {
				out = append(out, inner.under(k))
			}
		}
	case "array":
		a := v.([]any)
		if len(a) < s.MinItems {
			out = append(out, Violation{"", fmt.Sprintf("needs at least %d item(s), has %d", s.MinItems, len(a))})
		}
		if s.MaxItems > 0 && len(a) > s.MaxItems {
			out = append(out, Violation{"", fmt.Sprintf("holds %d items; the limit is %d", len(a), s.MaxItems)})
		}
		for i, e := range a {
			for _, inner := range s.Items.validate(e) {
				out = append(out, inner.under(fmt.Sprintf("[%d]", i)))
			}
		}
	}
	return out
}

// under puts a violation below a field name or an [index].
func (v Violation) under(step string) Violation {
	switch {
	case v.Path == "":
		v.Path = step
	case v.Path[0] == '[':
		v.Path = step + v.Path
	default:
		v.Path = step + "." + v.Path
	}
	return v
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case int, int64, int32, uint64:
		return "integer"
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return "integer"
		}
		return "number"
	case json.Number:
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	}
	return "unknown"
}

func describeJSON(v any) string {
	t := jsonType(v)
	switch t {
	case "null":
		return "null (is a variable missing?)"
	case "object", "array":
		return article(t)
	}
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%s %s", article(t), b)
}

// Field returns the shape of field name of an object shape, for checking
// the literal keys of a body written in a pipeline file. It returns a
// message when the shape does not allow the field, and a nil shape (no
// further checks) when it allows any.
func (s *Shape) Field(where, name string) (*Shape, string) {
	if s == nil || s.Type != "object" || s.Open {
		return nil, ""
	}
	next, ok := s.Fields[name]
	if !ok {
		return nil, fmt.Sprintf("%s has no field %q; allowed: %s%s", where, name, strings.Join(s.FieldNames(), ", "), diag.Suggest(name, s.FieldNames()))
	}
	return next, ""
}

// Elem returns the item shape of an array shape, or nil.
func (s *Shape) Elem() *Shape {
	if s == nil || s.Type != "array" {
		return nil
	}
	return s.Items
}

// Clone returns a deep copy, so callers may add fields (request.params)
// without touching a shared shape.
func (s *Shape) Clone() *Shape {
	if s == nil {
		return nil
	}
	c := *s
	c.Required = slices.Clone(s.Required)
	c.Rules = slices.Clip(s.Rules)
	c.Items = s.Items.Clone()
	if s.Fields != nil {
		c.Fields = make(map[string]*Shape, len(s.Fields))
		for k, f := range s.Fields {
			c.Fields[k] = f.Clone()
		}
	}
	return &c
}
