package liquid

import (
	"slices"
	"strings"
)

// Ref is a variable a template reads: its name and the property names that
// follow it as far as they are static (event.user.id gives
// [event user id]; event.items[0].id gives [event items]).
type Ref struct {
	Path   []string
	Offset int // in the original template source
	// Guarded: the template allows for the value missing here, reading it
	// through | default or as a default's value, testing it (if, elsif,
	// unless, case, when), or assigning it to a variable the template
	// tests or defaults.
	Guarded bool
	// tested: not a read but a test for the field (event contains
	// "ttl"), told to Options.Guard only: a typed event's Check would
	// refuse a key it does not declare, which Liquid allows to test.
	tested bool
}

// filterUse is one "| name" in the template.
type filterUse struct {
	Name   string
	Offset int
	Args   int  // arguments (| name: a, b)
	Named  bool // one of them is named (allow_false: true)
	// Strings holds, by position, the arguments written as a string
	// literal alone, unquoted: what a check can read before a render.
	Strings map[int]string
}

// analysis is what the static pass finds in a template.
type analysis struct {
	refs    []Ref
	filters []filterUse
	locals  map[string]bool // names the template defines itself
	tags    []tagUse
	// assigned holds, per variable an assign sets, the refs its value
	// reads (indexes into refs): Guarded once the variable is tested or
	// defaulted anywhere in the template.
	assigned map[string][]int
}

type tagUse struct {
	Name   string
	Offset int
	args   []token // what follows the name
}

type token struct {
	kind byte // 'i' identifier, 's' string, 'n' number, 'p' punctuation
	text string
	off  int // offset in the rewritten source
}

// lex splits the inside of one {{ }} or {% %} into tokens.
func lex(content string, base int) []token {
	var toks []token
	for j := 0; j < len(content); {
		c := content[j]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			j++
		case c == '\'' || c == '"':
			k := strings.IndexByte(content[j+1:], c)
			if k < 0 {
				k = len(content) - j - 1
			} else {
				k++
			}
			toks = append(toks, token{'s', content[j : j+k+1], base + j})
			j += k + 1
		case isDigit(c) || (c == '-' && j+1 < len(content) && isDigit(content[j+1]) && !prevIsValue(toks)):
			k := j + 1
			for k < len(content) && (isDigit(content[k]) || (content[k] == '.' && k+1 < len(content) && isDigit(content[k+1]))) {
				k++
			}
			toks = append(toks, token{'n', content[j:k], base + j})
			j = k
		case isIdentStart(c):
			k := j + 1
			for k < len(content) && isIdentChar(content[k]) {
				k++
			}
			if k < len(content) && content[k] == '?' {
				k++
			}
			toks = append(toks, token{'i', content[j:k], base + j})
			j = k
		case c == '.' && j+1 < len(content) && content[j+1] == '.':
			toks = append(toks, token{'p', "..", base + j})
			j += 2
		case strings.IndexByte("=!<>", c) >= 0 && j+1 < len(content) && content[j+1] == '=':
			toks = append(toks, token{'p', content[j : j+2], base + j})
			j += 2
		default:
			toks = append(toks, token{'p', string(c), base + j})
			j++
		}
	}
	return toks
}

func prevIsValue(toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[len(toks)-1]
	return t.kind == 'i' || t.kind == 'n' || t.kind == 's' || t.text == "]" || t.text == ")"
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '-' }

// keywords never name a variable.
var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "contains": true, "in": true,
	"true": true, "false": true, "nil": true, "null": true, "empty": true, "blank": true,
}

// forParams are the words a for or tablerow tag takes after its collection.
var forParams = map[string]bool{"limit": true, "offset": true, "reversed": true, "cols": true}

// analyze runs the static pass over the prepared template.
func analyze(p prepared) analysis {
	a := analysis{locals: map[string]bool{}, assigned: map[string][]int{}}
	for _, r := range p.regions {
		toks := lex(r.content, r.start)
		if !r.tag {
			a.expression(toks, false)
			continue
		}
		if len(toks) == 0 || toks[0].kind != 'i' {
			continue
		}
		name, args := toks[0].text, toks[1:]
		a.tags = append(a.tags, tagUse{name, toks[0].off, args})
		switch name {
		case "assign":
			if len(args) > 0 && args[0].kind == 'i' {
				a.locals[args[0].text] = true
				if len(args) > 1 && args[1].text == "=" {
					from := len(a.refs)
					a.expression(args[2:], false)
					for i := from; i < len(a.refs); i++ {
						a.assigned[args[0].text] = append(a.assigned[args[0].text], i)
					}
				}
			}
		case "capture", "increment", "decrement":
			if len(args) > 0 {
				a.locals[strings.Trim(args[0].text, `'"`)] = true
			}
		case "for", "tablerow":
			if len(args) > 0 && args[0].kind == 'i' {
				a.locals[args[0].text] = true
				a.locals["forloop"] = true
				a.locals["tablerowloop"] = true
				if len(args) > 1 && args[1].text == "in" {
					a.expression(args[2:], false)
				}
			}
		case "if", "elsif", "unless", "case", "when":
			a.expression(args, true) // a test: a missing value is false, or no branch
		case "echo", "cycle":
			a.expression(args, false)
		}
	}
	// {% assign u = event.user_id %}{% if u %}: the template allows for
	// user_id missing as it would testing it (a re-QA: such a file was
	// refused whole); {{ u }} alone does not.
	for name, reads := range a.assigned {
		if slices.ContainsFunc(a.refs, func(r Ref) bool { return r.Path[0] == name && r.Guarded }) {
			for _, i := range reads {
				a.refs[i].Guarded = true
			}
		}
	}
	return a
}

// expression records the references and filters of one expression;
// test says it is a condition, whose references are all Guarded.
func (a *analysis) expression(toks []token, test bool) {
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != 'i' {
			continue
		}
		prev := ""
		if i > 0 {
			prev = toks[i-1].text
		}
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1].text
		}
		switch {
		case prev == "|":
			args, named, strs := filterArgs(toks, i)
			a.filters = append(a.filters, filterUse{t.text, t.off, args, named, strs})
		case prev == ".":
			// a property: already part of the path before it
		case next == ":" && (forParams[t.text] || a.inFilterArgs(toks, i)):
			// a named argument (truncate: 5, allow_false: true) or limit:
		case keywords[t.text], forParams[t.text]:
		case t.text == "continue" && prev == ":" && i >= 2 && toks[i-2].text == "offset":
			// offset: continue resumes a loop; it reads no variable
		default:
			path := []string{t.text}
			end := i + 1 // the token after the path
			for j := i + 1; j+1 < len(toks); j += 2 {
				switch {
				case toks[j].text == "." && toks[j+1].kind == 'i':
					path = append(path, toks[j+1].text)
					end = j + 2
					continue
				case toks[j].text == "[" && toks[j+1].kind == 's' && j+2 < len(toks) && toks[j+2].text == "]":
					path = append(path, strings.Trim(toks[j+1].text, `'"`))
					j++
					end = j + 2
					continue
				}
				break
			}
			// The value a filter chain starts from, with a default
			// anywhere in the chain: {{ event.ttl | strip | default: 1 }};
			// and the default itself, a fallback for when the value is
			// missing: {{ event.user_id | default: event.email }} does
			// not need email where user_id is there (a re-QA).
			defaulted := a.filterOf(toks, i) == "default"
			if !a.inFilterArgs(toks, i) {
				for j := end; j+1 < len(toks); j++ {
					if toks[j].text == "|" && toks[j+1].text == "default" {
						defaulted = true
					}
				}
			}
			a.refs = append(a.refs, Ref{Path: path, Offset: t.off, Guarded: test || defaulted})
			// {% if event contains "ttl" %} tests for the field ttl.
			if test && len(path) == 1 && end+1 < len(toks) && toks[end].text == "contains" && toks[end+1].kind == 's' {
				a.refs = append(a.refs, Ref{Path: []string{path[0], strings.Trim(toks[end+1].text, `'"`)}, Offset: t.off, Guarded: true, tested: true})
			}
		}
	}
}

// filterArgs counts the arguments of the filter named by token i: those
// after its colon, up to the next | outside brackets; named reports a
// named one among them (the count then includes it), and strs, by
// position, those that are a string literal alone, unquoted.
func filterArgs(toks []token, i int) (args int, named bool, strs map[int]string) {
	if i+1 >= len(toks) || toks[i+1].text != ":" {
		return 0, false, nil
	}
	depth := 0
	args = 1
	for j := i + 2; j < len(toks); j++ {
		switch t := toks[j].text; {
		case t == "[" || t == "(":
			depth++
		case t == "]" || t == ")":
			depth--
		case depth > 0:
		case t == "|":
			return args, named, strs
		case t == ",":
			args++
		case toks[j].kind == 'i' && j+1 < len(toks) && toks[j+1].text == ":":
			named = true
		case toks[j].kind == 's' && (j == i+2 || toks[j-1].text == ",") && (j+1 == len(toks) || toks[j+1].text == "," || toks[j+1].text == "|"):
			if strs == nil {
				strs = map[int]string{}
			}
			strs[args-1] = t[1 : len(t)-1]
		}
	}
	return args, named, strs
}

// filterOf is the filter whose arguments token i is among, "" when none.
func (a *analysis) filterOf(toks []token, i int) string {
	for j := i - 1; j > 0; j-- {
		if toks[j-1].text == "|" {
			return toks[j].text
		}
	}
	return ""
}

// inFilterArgs reports whether token i stands among a filter's arguments.
func (a *analysis) inFilterArgs(toks []token, i int) bool {
	for j := i - 1; j >= 0; j-- {
		if toks[j].text == "|" {
			return true
		}
	}
	return false
}
