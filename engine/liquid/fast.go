package liquid

import (
	"fmt"
	"strconv"
	"strings"
)

// Most pipeline leaves are plain variable paths ("{{ event.user.id }}",
// "offer {{ event.offer.name }}"), some through a filter or two
// ("{{ event.ttl | default: 2592000 }}"). Those are rendered here by
// direct map lookups and direct calls of the registered filter functions,
// which gives the same output as the osteele renderer at a fraction of its
// cost; anything else (tags, operators, filters of other shapes, values
// that are not plain text, numbers or booleans, a filter error) goes
// through osteele.

// fastSegment is literal text, or a variable path when path is set,
// optionally through filters.
type fastSegment struct {
	text    string
	path    []string
	filters []fastFilter
}

// fastFilter is one filter of a segment, called directly (not through
// osteele's reflection), with arguments that are literals or paths.
type fastFilter struct {
	call filterFn
	args []fastArg
}

type fastArg struct {
	literal any
	path    []string // set for a variable
}

// fastPlan returns the segments of a template made only of text and
// objects that are a simple path with simple filters, or nil.
func (e *Engine) fastPlan(p prepared) []fastSegment {
	if strings.Contains(p.source, "{%") {
		return nil // tags, and raw or comment blocks, which are not regions
	}
	var segs []fastSegment
	at := 0
	for _, r := range p.regions {
		if r.tag {
			return nil
		}
		end := r.start + len(r.content)
		// trim markers change the text around; leave those to osteele
		if p.source[r.open+2] == '-' || p.source[end] == '-' {
			return nil
		}
		seg, ok := e.parseFastObject(r.content)
		if !ok {
			return nil
		}
		if r.open > at {
			segs = append(segs, fastSegment{text: p.source[at:r.open]})
		}
		segs = append(segs, seg)
		at = end + 2
	}
	if at < len(p.source) {
		segs = append(segs, fastSegment{text: p.source[at:]})
	}
	return segs
}

// parseFastObject reads "path | name: arg, arg | name" where each
// argument is a quoted string without quotes or backslashes inside, a
// whole number, or a simple path, and each filter has a signature the
// fast path can call. Anything else (operators, ranges, keyword
// arguments, Liquid's keywords) is left to osteele.
func (e *Engine) parseFastObject(src string) (fastSegment, bool) {
	sc := fastScanner{s: src}
	path, ok := sc.path()
	if !ok {
		return fastSegment{}, false
	}
	seg := fastSegment{path: path}
	for {
		sc.space()
		if sc.done() {
			return seg, true
		}
		if !sc.take('|') {
			return fastSegment{}, false
		}
		sc.space()
		name := sc.name()
		if name == "" {
			return fastSegment{}, false
		}
		var args []fastArg
		sc.space()
		if sc.take(':') {
			for {
				sc.space()
				arg, ok := sc.arg()
				if !ok {
					return fastSegment{}, false
				}
				args = append(args, arg)
				sc.space()
				if !sc.take(',') {
					break
				}
			}
		}
		call := directCall(e.filters[name], len(args))
		if call == nil {
			return fastSegment{}, false
		}
		seg.filters = append(seg.filters, fastFilter{call, args})
	}
}

// directCall adapts the filter function shapes registered in this
// package (and osteele's default) for a call with n arguments; nil for
// any other shape or count, which osteele then handles (and reports).
func directCall(fn any, n int) filterFn {
	switch f := fn.(type) {
	case func(any) (any, error):
		if n == 0 {
			return func(in any, _ []any) (any, error) { return f(in) }
		}
	case func(any, ...any) (any, error):
		return func(in any, args []any) (any, error) { return f(in, args...) }
	case func(any) string:
		if n == 0 {
			return func(in any, _ []any) (any, error) { return f(in), nil }
		}
	case func(any) (string, error):
		if n == 0 {
			return func(in any, _ []any) (any, error) { return f(in) }
		}
	case func(any, any) string:
		if n == 1 {
			return func(in any, args []any) (any, error) { return f(in, args[0]), nil }
		}
	case func(any, any) any:
		if n == 1 {
			return func(in any, args []any) (any, error) { return f(in, args[0]), nil }
		}
	}
	return nil
}

// value evaluates a path segment and its filters. ok is false when
// osteele must do it: a value it reads differently, or a filter that
// failed (osteele then reports the error in its own words).
func (s *fastSegment) value(vars map[string]any) (v any, ok bool) {
	v, ok = lookup(vars, s.path)
	if !ok || len(s.filters) == 0 {
		return v, ok
	}
	if !isScalar(v) {
		return nil, false
	}
	defer func() {
		if recover() != nil {
			v, ok = nil, false
		}
	}()
	var argv [4]any
	for _, f := range s.filters {
		args := argv[:0]
		for _, a := range f.args {
			if a.path == nil {
				args = append(args, a.literal)
				continue
			}
			av, ok := lookup(vars, a.path)
			if !ok || !isScalar(av) {
				return nil, false
			}
			args = append(args, av)
		}
		out, err := f.call(v, args)
		if err != nil {
			return nil, false
		}
		if b, isBytes := out.([]byte); isBytes {
			out = string(b) // as osteele's ApplyFilter does
		}
		v = out
	}
	return v, true
}

// isScalar reports whether v is a value every filter receives the same
// way from osteele and from the fast path.
func isScalar(v any) bool {
	switch v.(type) {
	case nil, string, bool, int, int64, float64:
		return true
	}
	return false
}

type fastScanner struct {
	s string
	i int
}

func (sc *fastScanner) done() bool { return sc.i >= len(sc.s) }

func (sc *fastScanner) space() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t' || sc.s[sc.i] == '\n' || sc.s[sc.i] == '\r') {
		sc.i++
	}
}

func (sc *fastScanner) take(c byte) bool {
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

func (sc *fastScanner) name() string {
	start := sc.i
	if sc.i >= len(sc.s) || !isIdentStart(sc.s[sc.i]) {
		return ""
	}
	for sc.i < len(sc.s) && isIdentChar(sc.s[sc.i]) {
		sc.i++
	}
	return sc.s[start:sc.i]
}

// path reads a.b.c (not a keyword such as true, nil or empty, and
// without Liquid's computed properties size, first and last).
func (sc *fastScanner) path() ([]string, bool) {
	sc.space()
	var path []string
	for {
		name := sc.name()
		if name == "" || len(path) > 0 && (name == "size" || name == "first" || name == "last") {
			return nil, false
		}
		path = append(path, name)
		if !sc.take('.') {
			break
		}
	}
	if keywords[path[0]] {
		return nil, false
	}
	return path, true
}

func (sc *fastScanner) arg() (fastArg, bool) {
	if sc.i >= len(sc.s) {
		return fastArg{}, false
	}
	switch c := sc.s[sc.i]; {
	case c == '\'' || c == '"':
		end := strings.IndexByte(sc.s[sc.i+1:], c)
		if end < 0 {
			return fastArg{}, false
		}
		lit := sc.s[sc.i+1 : sc.i+1+end]
		if strings.ContainsAny(lit, "\\'\"") {
			return fastArg{}, false
		}
		sc.i += end + 2
		return fastArg{literal: lit}, true
	case c >= '0' && c <= '9':
		start := sc.i
		for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
			sc.i++
		}
		if sc.i < len(sc.s) && (sc.s[sc.i] == '.' || isIdentChar(sc.s[sc.i])) {
			return fastArg{}, false // a float or a range: osteele's
		}
		n, err := strconv.ParseInt(sc.s[start:sc.i], 10, 64)
		if err != nil {
			return fastArg{}, false
		}
		return fastArg{literal: int(n)}, true // osteele's literal type
	}
	path, ok := sc.path()
	return fastArg{path: path}, ok
}

// lookup follows path through nested maps. ok is false when a value on
// the way is of a kind only osteele knows how to read.
func lookup(vars map[string]any, path []string) (v any, ok bool) {
	v = vars[path[0]]
	for _, name := range path[1:] {
		switch m := v.(type) {
		case map[string]any:
			v = m[name]
		case nil:
			return nil, true
		default:
			return nil, false
		}
	}
	return v, true
}

// appendText appends v as Liquid prints it; ok is false for values whose
// printing is left to osteele (arrays, maps, times, ...).
func appendText(b *strings.Builder, v any) bool {
	switch v := v.(type) {
	case nil:
	case string:
		b.WriteString(v)
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float64:
		b.WriteString(fmt.Sprint(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	default:
		return false
	}
	return true
}

// renderFast renders a fast plan; ok is false when osteele must do it.
func renderFast(segs []fastSegment, vars map[string]any) (string, bool) {
	var b strings.Builder
	for i := range segs {
		s := &segs[i]
		if s.path == nil {
			b.WriteString(s.text)
			continue
		}
		v, ok := s.value(vars)
		if !ok || !appendText(&b, v) {
			return "", false
		}
	}
	return b.String(), true
}
