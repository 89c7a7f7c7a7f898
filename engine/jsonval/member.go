package jsonval

import (
	"unicode"
	"unicode/utf8"
)

// StringMember reads the string member name of the object data as
// encoding/json fills a string field tagged with name: names compared
// without regard to case (its fold), the last match kept, null leaving it
// as it was, and any other kind of value, or data that is not an object,
// failing the whole read. It skips the other members without decoding
// them: a webhook's event id was a twentieth of the engine's CPU per F4
// event when encoding/json decoded the whole body for it. data must be
// valid JSON (json.Valid); FuzzStringMemberMatchesEncodingJSON holds it
// to encoding/json.
func StringMember(data []byte, name string) (string, bool) {
	p := parser{data: data}
	p.space()
	if p.pos >= len(data) || data[p.pos] != '{' {
		return "", false
	}
	var found string
	more, ok := p.open('}')
	for more && ok {
		match, good := p.memberNamed(name)
		if !good {
			return "", false
		}
		p.space()
		p.pos++ // the colon
		p.space()
		switch {
		case !match:
			good = p.skip()
		case p.pos < len(data) && data[p.pos] == '"':
			found, good = p.string()
		case p.pos < len(data) && data[p.pos] == 'n':
			good = p.literal("null")
		default:
			return "", false
		}
		if !good {
			return "", false
		}
		more, ok = p.next('}')
	}
	return found, ok && found != ""
}

// memberNamed reads the member name at p.pos and says whether it folds to
// name; plain ASCII names are compared where they lie.
func (p *parser) memberNamed(name string) (match, ok bool) {
	start := p.pos + 1
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		if c == '"' {
			p.pos = i + 1
			return foldEqual(string(p.data[start:i]), name), true
		}
		if c == '\\' || c >= utf8.RuneSelf {
			key, ok := p.string()
			return ok && foldEqual(key, name), ok
		}
	}
	return false, false
}

// foldEqual compares as encoding/json matches a name to a field's tag
// (bytes.EqualFold): each rune stands for the smallest of its fold set.
func foldEqual(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb && smallestFold(ra) != smallestFold(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b == ""
}

func smallestFold(r rune) rune {
	for {
		next := unicode.SimpleFold(r)
		if next <= r {
			return next
		}
		r = next
	}
}

// skip steps over the value at p.pos without decoding it.
func (p *parser) skip() bool {
	depth := 0
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case '"':
			if !p.skipString() {
				return false
			}
		case '{', '[':
			depth++
			p.pos++
		case '}', ']':
			if depth == 0 {
				return true // the end of the enclosing object
			}
			depth--
			p.pos++
		case ',':
			if depth == 0 {
				return true
			}
			p.pos++
		default:
			p.pos++
		}
		if depth == 0 && p.pos < len(p.data) {
			switch p.data[p.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
		}
	}
	return depth == 0
}

// skipString steps over the string whose opening quote is at p.pos.
func (p *parser) skipString() bool {
	for i := p.pos + 1; i < len(p.data); i++ {
		switch p.data[i] {
		case '\\':
			i++
		case '"':
			p.pos = i + 1
			return true
		}
	}
	return false
}
