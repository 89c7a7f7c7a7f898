package liquid

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The pre-pass turns Braze's dialect into markup the osteele parser reads,
// and remembers where each piece of its output came from so that problems
// are reported at the user's line and column:
//
//   - ${name} attribute references become plain names; a name that is not
//     a Liquid identifier (custom_attribute.${favourite colour}) becomes an
//     index: custom_attribute["favourite colour"];
//   - {{ }} nested in a tag ({% if {{x}} > 1 %}) loses its braces, as Braze
//     accepts both spellings;
//   - HTML comments <!-- --> are dropped, markup in them included: Braze
//     strips them before Liquid runs, so tags inside never execute;
//   - line breaks inside {{ }} and {% %} become spaces, because the osteele
//     scanner does not match markup across lines and would print it as text;
//   - a quoted string holding a line break ("a\nb" | split: "\n"), and a
//     number written with a zero fraction (5.0, which osteele would print
//     as 5), become hoisted literals: a generated variable name in the
//     markup, bound to the value when the template renders.

// region is one {{ object }} or {% tag %} of the rewritten source.
type region struct {
	tag     bool   // {% %} rather than {{ }}
	content string // between the delimiters, without trim markers
	start   int    // offset of content in the rewritten source
	open    int    // offset of the opening delimiter in the rewritten source
}

// offsetMap maps offsets in the rewritten source back to the original.
type offsetMap struct {
	anchors []anchor // sorted by out
	// before maps further back when the source was itself rewritten
	// (expandLiquid5 runs before the pre-pass)
	before *offsetMap
}

type anchor struct{ out, in int }

func (m *offsetMap) mark(out, in int) {
	if n := len(m.anchors); n > 0 && m.anchors[n-1].out == out {
		m.anchors[n-1].in = in
		return
	}
	m.anchors = append(m.anchors, anchor{out, in})
}

// original returns the offset in the original source of out.
func (m *offsetMap) original(out int) int {
	i := sort.Search(len(m.anchors), func(i int) bool { return m.anchors[i].out > out }) - 1
	in := out
	if i >= 0 {
		a := m.anchors[i]
		in = a.in + (out - a.out)
	}
	if m.before != nil {
		return m.before.original(in)
	}
	return in
}

// prepared is the result of the pre-pass.
type prepared struct {
	source  string
	regions []region
	offsets offsetMap
	// problems found while scanning (unterminated markup), at original offsets
	problems []Problem
	// literals are the hoisted literals, by their generated name
	literals map[string]any
}

// literalPrefix starts the names of hoisted literals; no user variable in
// a Braze template starts with it.
const literalPrefix = "__liquid_literal_"

func (p *prepared) hoist(v any) string {
	if p.literals == nil {
		p.literals = map[string]any{}
	}
	name := literalPrefix + strconv.Itoa(len(p.literals))
	p.literals[name] = v
	return name
}

var zeroFractionRE = regexp.MustCompile(`^[0-9]+\.0+`)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$`)

func prepass(src string) (p prepared) {
	// Liquid 5 markup is rewritten first (see liquid5.go); the problems of
	// both steps are mapped back to the user's source at the end.
	src, before, problems := expandLiquid5(src)
	defer func() {
		for i := range p.problems {
			p.problems[i].Offset = before.original(p.problems[i].Offset)
		}
		p.problems = append(problems, p.problems...)
		p.offsets.before = &before
	}()
	var out strings.Builder
	out.Grow(len(src))
	i := 0
	copyText := func(to int) {
		if to > i {
			p.offsets.mark(out.Len(), i)
			out.WriteString(src[i:to])
			i = to
		}
	}
	// Where the next HTML comment starts, found once rather than at each
	// markup: searched from every {{ }}, a template of 17,000 lines took 5
	// s to parse (a QA run). len(src) when there is none.
	comment := -1
	for i < len(src) {
		next := indexOpen(src, i)
		if comment < i {
			comment = len(src)
			if c := strings.Index(src[i:], "<!--"); c >= 0 {
				comment = i + c
			}
		}
		if comment < len(src) && (next < 0 || comment < next) {
			start := comment
			end := strings.Index(src[start+4:], "-->")
			if end >= 0 {
				copyText(start)
				i = start + 4 + end + 3
				continue
			}
			comment = len(src) // unclosed: no comment closes after it either
		}
		if next < 0 {
			copyText(len(src))
			break
		}
		copyText(next)
		isTag := src[next+1] == '%'
		closer := "}}"
		if isTag {
			closer = "%}"
		}
		end := findClose(src, next+2, closer, isTag)
		if end < 0 {
			what := "{{"
			if isTag {
				what = "{%"
			}
			p.problems = append(p.problems, Problem{Offset: next, Message: what + " is not closed; add " + closer})
			copyText(len(src))
			break
		}
		if !isTag && p.contentBlock(&out, src, next, end, before.original) {
			i = end + 2
			continue
		}
		// Raw and comment blocks are copied untouched up to their end tag.
		if isTag {
			if name := tagName(src[next+2 : end]); name == "raw" || name == "comment" {
				stop := findEndBlock(src, end+2, name)
				if stop < 0 {
					p.problems = append(p.problems, Problem{Offset: next, Message: "{% " + name + " %} is not closed; add {% end" + name + " %}"})
					copyText(len(src))
					break
				}
				copyText(stop)
				continue
			}
		}
		openOut := out.Len()
		p.offsets.mark(out.Len(), i)
		out.WriteString(src[next : next+2])
		i = next + 2
		inner := i
		if inner < end && src[inner] == '-' {
			out.WriteByte('-')
			inner++
			i = inner
		}
		innerEnd := end
		trimRight := innerEnd > inner && src[innerEnd-1] == '-'
		if trimRight {
			innerEnd--
		}
		contentStart := out.Len()
		if !isTag || !p.hoistMessageTag(&out, src, inner, innerEnd, before.original) {
			p.rewriteMarkup(&out, src, inner, innerEnd, isTag)
		}
		p.regions = append(p.regions, region{tag: isTag, content: out.String()[contentStart:], start: contentStart, open: openOut})
		p.offsets.mark(out.Len(), innerEnd)
		if trimRight {
			out.WriteByte('-')
		}
		out.WriteString(closer)
		i = end + 2
	}
	p.source = out.String()
	return p
}

// indexOpen finds the next "{{" or "{%" at or after from.
func indexOpen(s string, from int) int {
	for j := from; j+1 < len(s); j++ {
		if s[j] == '{' && (s[j+1] == '{' || s[j+1] == '%') {
			return j
		}
	}
	return -1
}

// findClose finds closer after from, skipping ${...} references, quoted
// strings, and (in tags) nested {{ }}. The arguments of connected_content
// are text, not Liquid: an apostrophe in them (?q=it's) quotes nothing.
func findClose(s string, from int, closer string, isTag bool) int {
	quotes := !isTag || !startsWithWord(strings.TrimLeft(s[from:], "- \t\r\n"), "connected_content")
	for j := from; j+1 < len(s); j++ {
		switch c := s[j]; {
		case c == '$' && s[j+1] == '{':
			if k := strings.IndexByte(s[j:], '}'); k > 0 {
				j += k
			}
		case quotes && (c == '\'' || c == '"'):
			if k := strings.IndexByte(s[j+1:], c); k >= 0 && !strings.Contains(s[j+1:j+1+k], "\n") {
				j += k + 1
			}
		case isTag && c == '{' && s[j+1] == '{':
			if k := strings.Index(s[j+2:], "}}"); k >= 0 {
				j += k + 3
			}
		case s[j:j+2] == closer:
			return j
		}
	}
	return -1
}

func tagName(markup string) string {
	markup = strings.TrimLeft(markup, "- \t\r\n")
	end := strings.IndexAny(markup, " \t\r\n-")
	if end < 0 {
		return markup
	}
	return markup[:end]
}

var endBlockRE = map[string]*regexp.Regexp{
	"raw":     regexp.MustCompile(`\{%-?\s*endraw\s*-?%\}`),
	"comment": regexp.MustCompile(`\{%-?\s*endcomment\s*-?%\}`),
}

// findEndBlock returns the offset just past the end tag of a raw or comment
// block, or -1.
func findEndBlock(s string, from int, name string) int {
	loc := endBlockRE[name].FindStringIndex(s[from:])
	if loc == nil {
		return -1
	}
	return from + loc[1]
}

// rewriteMarkup copies src[from:to] (the inside of one {{ }} or {% %}) to
// out, applying the Braze rewrites.
func (p *prepared) rewriteMarkup(out *strings.Builder, src string, from, to int, isTag bool) {
	m := &p.offsets
	for j := from; j < to; {
		c := src[j]
		switch {
		case c == '\'' || c == '"':
			k := strings.IndexByte(src[j+1:to], c)
			closed := k >= 0
			if !closed {
				k = to - j - 2
			}
			m.mark(out.Len(), j)
			if lit := src[j : j+k+2]; closed && strings.ContainsAny(lit, "\r\n") {
				out.WriteString(p.hoist(lit[1 : len(lit)-1]))
			} else {
				out.WriteString(lit)
			}
			j += k + 2
			m.mark(out.Len(), j)
		case c >= '0' && c <= '9' && (j == from || !isIdentChar(src[j-1]) && src[j-1] != '.' && src[j-1] != '-') && zeroFractionRE.MatchString(src[j:to]):
			lit := zeroFractionRE.FindString(src[j:to])
			if end := j + len(lit); end < to && (isIdentChar(src[end]) || src[end] == '.') {
				out.WriteByte(c) // 1.0e5, 1.0.x: not a plain number
				j++
				continue
			}
			f, _ := strconv.ParseFloat(lit, 64)
			m.mark(out.Len(), j)
			out.WriteString(p.hoist(liquidFloat(f)))
			j += len(lit)
			m.mark(out.Len(), j)
		case c == '$' && j+1 < to && src[j+1] == '{':
			k := strings.IndexByte(src[j:to], '}')
			if k < 0 {
				m.mark(out.Len(), j)
				out.WriteString(src[j:to])
				j = to
				continue
			}
			name := strings.TrimSpace(src[j+2 : j+k])
			m.mark(out.Len(), j+2)
			if identRE.MatchString(name) {
				out.WriteString(name)
			} else {
				// after a dot, custom_attribute.${a b} reads as an index
				s := out.String()
				if strings.HasSuffix(s, ".") {
					trimLast(out)
				}
				out.WriteString(`["` + strings.ReplaceAll(name, `"`, `\"`) + `"]`)
			}
			j += k + 1
			m.mark(out.Len(), j)
		case isTag && c == '{' && j+1 < to && src[j+1] == '{':
			j += 2
			m.mark(out.Len(), j)
		case isTag && c == '}' && j+1 < to && src[j+1] == '}':
			j += 2
			m.mark(out.Len(), j)
		case c == '\n' || c == '\r':
			out.WriteByte(' ')
			j++
		default:
			out.WriteByte(c)
			j++
		}
	}
}

func trimLast(b *strings.Builder) {
	s := b.String()
	b.Reset()
	b.WriteString(s[:len(s)-1])
}

// hoistMessageTag rewrites Braze's message tags, whose arguments are not
// Liquid expressions: {% connected_content URL :option value ... %} (the
// URL and values hold their own {{ }} and ${} markup, rendered when the
// call is made) and {% abort_message('reason') %}. Their argument text is
// hoisted as a literal, so the parser sees one plain name, and compiled
// by Parse (message.go).
func (p *prepared) hoistMessageTag(out *strings.Builder, src string, from, to int, original func(int) int) bool {
	start := from + len(src[from:to]) - len(strings.TrimLeft(src[from:to], " \t\r\n"))
	body := src[start:to]
	switch {
	case startsWithWord(body, "connected_content"):
		argStart := start + len("connected_content")
		p.offsets.mark(out.Len(), from)
		out.WriteString(" connected_content ")
		p.offsets.mark(out.Len(), argStart)
		out.WriteString(p.hoist(connectedSource{raw: src[argStart:to], offset: original(argStart)}))
		return true
	case startsWithWord(body, "abort_message"):
		reason, ok := abortReason(strings.TrimSpace(body[len("abort_message"):]))
		if !ok {
			p.problems = append(p.problems, Problem{Offset: start, Message: "{% abort_message %} takes a quoted reason: {% abort_message('why') %} or {% abort_message() %}"})
		}
		p.offsets.mark(out.Len(), from)
		out.WriteString(" abort_message ")
		out.WriteString(p.hoist(abortSource{reason: reason, offset: original(start)}))
		return true
	}
	return false
}

// startsWithWord reports whether s starts with word as a whole name.
func startsWithWord(s, word string) bool {
	return strings.HasPrefix(s, word) && (len(s) == len(word) || !isIdentChar(s[len(word)]))
}

// abortReason reads the argument of abort_message: nothing, (), or a
// quoted string in parentheses. The reason is plain text, not Liquid.
func abortReason(arg string) (string, bool) {
	if arg == "" || arg == "()" {
		return "", true
	}
	inner, ok := strings.CutPrefix(arg, "(")
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, ")")
	inner = strings.TrimSpace(inner)
	if !ok || len(inner) < 2 || (inner[0] != '\'' && inner[0] != '"') || inner[len(inner)-1] != inner[0] {
		return "", false
	}
	return inner[1 : len(inner)-1], true
}

// contentBlockRE matches the inside of {{content_blocks.${name}}}.
var contentBlockRE = regexp.MustCompile(`^(-?)\s*content_blocks\.\$\{\s*([^}]+?)\s*\}\s*(-?)$`)

// contentBlock rewrites {{content_blocks.${name}}} (src[open:end] without
// the closing braces) into {% __content_block LITERAL %}, the literal
// holding the name and where it is written: Braze inserts a
// Content Block where it stands, rendered with the message's variables at
// that point, so the block is rendered in place (message.go), not read
// as a variable.
func (p *prepared) contentBlock(out *strings.Builder, src string, open, end int, original func(int) int) bool {
	m := contentBlockRE.FindStringSubmatch(src[open+2 : end])
	if m == nil {
		return false
	}
	openOut := out.Len()
	p.offsets.mark(openOut, open)
	out.WriteString("{%" + m[1] + " ")
	start := out.Len()
	out.WriteString(contentBlockTag + " " + p.hoist(contentBlockSource{name: m[2], offset: original(open)}))
	p.regions = append(p.regions, region{tag: true, content: out.String()[start:], start: start, open: openOut})
	out.WriteString(" " + m[3] + "%}")
	p.offsets.mark(out.Len(), end+2)
	return true
}
