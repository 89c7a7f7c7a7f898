package jsonval

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit; deeper input is left to it,
// so that it refuses it in its own words.
const maxDepth = 10000

// parse reads data in one pass into the values Decode returns, or says
// no. It is Decode's fast path: encoding/json scans every value twice (a
// validity pass, then the decoding) and hands out numbers as text to be
// normalised in a third walk, which made decoding a fifth of the engine's
// CPU in F4 (the offer event, then the wallet answer of each event). It
// never explains a refusal: Decode asks encoding/json again for that, so
// every error keeps its words and position. FuzzParseMatchesEncodingJSON
// holds the two to the same values on every input.
func parse(data []byte) (any, bool) {
	p := parser{data: data}
	p.space()
	v, ok := p.value()
	if !ok {
		return nil, false
	}
	p.space()
	return v, p.pos == len(p.data)
}

type parser struct {
	data  []byte
	pos   int
	depth int
}

func (p *parser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (any, bool) {
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *parser) literal(word string) bool {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return false
	}
	p.pos += len(word)
	return true
}

func (p *parser) object() (any, bool) {
	m := make(map[string]any)
	more, ok := p.open('}')
	for more && ok {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, false
		}
		key, good := p.string()
		if !good {
			return nil, false
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, false
		}
		p.pos++
		p.space()
		v, good := p.value()
		if !good {
			return nil, false
		}
		m[key] = v // a repeated name keeps its last value, as in encoding/json
		more, ok = p.next('}')
	}
	return m, ok
}

func (p *parser) array() (any, bool) {
	a := make([]any, 0) // [] is an empty list, not null, as in encoding/json
	more, ok := p.open(']')
	for more && ok {
		v, good := p.value()
		if !good {
			return nil, false
		}
		a = append(a, v)
		more, ok = p.next(']')
	}
	return a, ok
}

// open steps into the object or array at p.pos: more says a first
// member follows rather than the closing end.
func (p *parser) open(end byte) (more, ok bool) {
	if p.depth++; p.depth > maxDepth {
		return false, false
	}
	p.pos++
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == end {
		p.pos++
		p.depth--
		return false, true
	}
	return true, true
}

// next steps past the comma after a member (more) or the closing end.
func (p *parser) next(end byte) (more, ok bool) {
	p.space()
	switch {
	case p.pos >= len(p.data):
		return false, false
	case p.data[p.pos] == ',':
		p.pos++
		p.space()
		return true, true
	case p.data[p.pos] == end:
		p.pos++
		p.depth--
		return false, true
	}
	return false, false
}

// string reads a string whose opening quote is at p.pos. Text without
// escapes or bytes above ASCII is copied as it is; the rest goes through
// unquote.
func (p *parser) string() (string, bool) {
	start := p.pos + 1
	for i := start; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			return string(p.data[start:i]), true
		case c == '\\' || c >= utf8.RuneSelf:
			return p.unquote(start, i)
		case c < ' ':
			return "", false
		}
	}
	return "", false
}

// unquote reads the string from start as encoding/json does: escapes
// resolved, a lone or broken UTF-16 surrogate and bytes that are not
// UTF-8 each replaced by U+FFFD. The text before i is plain ASCII.
func (p *parser) unquote(start, i int) (string, bool) {
	b := append(make([]byte, 0, i-start+16), p.data[start:i]...)
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(b), true
		case c < ' ':
			return "", false
		case c == '\\':
			if i+1 >= len(p.data) {
				return "", false
			}
			i += 2
			switch p.data[i-1] {
			case '"', '\\', '/':
				b = append(b, p.data[i-1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(p.data[i:])
				if !ok {
					return "", false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					low := rune(-1) // no low half: DecodeRune gives U+FFFD
					if len(p.data)-i >= 6 && p.data[i] == '\\' && p.data[i+1] == 'u' {
						if v, ok := hex4(p.data[i+2:]); ok {
							low = v
						}
					}
					if r = utf16.DecodeRune(r, low); r != utf8.RuneError {
						i += 6
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", false
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:]) // U+FFFD for a byte that is not UTF-8
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	return "", false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a JSON number: int when it is whole and fits, float64
// otherwise, as Normalize makes them.
func (p *parser) number() (any, bool) {
	start := p.pos
	i := start
	if p.data[i] == '-' {
		i++
	}
	digits := i
	switch {
	case i < len(p.data) && p.data[i] == '0':
		i++
	case i < len(p.data) && p.data[i] >= '1' && p.data[i] <= '9':
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	whole := i - digits
	fraction := false
	if i < len(p.data) && p.data[i] == '.' {
		fraction = true
		i++
		if i >= len(p.data) || p.data[i] < '0' || p.data[i] > '9' {
			return nil, false
		}
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
	}
	if i < len(p.data) && (p.data[i] == 'e' || p.data[i] == 'E') {
		fraction = true
		i++
		if i < len(p.data) && (p.data[i] == '+' || p.data[i] == '-') {
			i++
		}
		if i >= len(p.data) || p.data[i] < '0' || p.data[i] > '9' {
			return nil, false
		}
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
	}
	p.pos = i
	text := p.data[start:i]
	if !fraction && whole <= 18 { // under 10^18, so it fits an int64
		var n int64
		for _, c := range text[digits-start:] {
			n = n*10 + int64(c-'0')
		}
		if digits > start {
			n = -n
		}
		if int64(int(n)) == n {
			return int(n), true
		}
	}
	return numberValue(string(text)), true
}
