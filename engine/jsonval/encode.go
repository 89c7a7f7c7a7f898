// Package jsonval reads and writes the JSON values events, templates and
// request bodies hold: objects as map[string]any, arrays as []any, whole
// numbers as int (int64 is written too), other numbers as float64.
package jsonval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Append encodes v as encoding/json does, keys sorted and without HTML
// escaping ("<" and "&" in a message reach Braze as written), but without
// reflection for the usual values: a request body is encoded for every
// event. Other types go to encoding/json.
func Append(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case float64:
		return appendFloat(b, v)
	case json.Number:
		return append(b, v...), nil
	case map[string]any:
		// Pairs are collected while iterating, so each value is not
		// looked up again; most objects are small enough for the array.
		var small [16]keyValue
		pairs := small[:0]
		for k, e := range v {
			pairs = append(pairs, keyValue{k, e})
		}
		sortPairs(pairs)
		b = append(b, '{')
		for i, p := range pairs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p.key)
			b = append(b, ':')
			var err error
			if b, err = Append(b, p.value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = Append(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	out, err := encodeReflect(v)
	return append(b, out...), err
}

// Encode encodes v into a buffer of about sizeHint bytes; a buffer much
// larger than the result would only feed the garbage collector.
func Encode(v any, sizeHint int) ([]byte, error) {
	b, err := Append(make([]byte, 0, sizeHint), v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode as JSON: %w", err)
	}
	return b, nil
}

func encodeReflect(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

type keyValue struct {
	key   string
	value any
}

// sortPairs sorts by key: insertion sort, which beats the generic sort on
// the few keys a body object has; a large object goes to slices.SortFunc.
func sortPairs(p []keyValue) {
	if len(p) > 24 {
		slices.SortFunc(p, func(a, b keyValue) int { return strings.Compare(a.key, b.key) })
		return
	}
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].key < p[j-1].key; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// appendFloat writes a float as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// plain8 reports whether none of the 8 bytes of s needs escaping or UTF-8
// checking: none is a control character, '"', '\\' or above 0x7f.
func plain8(s string) bool {
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	control := (x - 0x20*ones) & ^x & highs // a byte below 0x20
	return (x&highs)|control|hasZero(x^('"'*ones))|hasZero(x^('\\'*ones)) == 0
}

// appendString writes a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced, "<", ">" and "&" as written.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip eight plain ASCII bytes at a time; most text has nothing
		// to escape.
		if i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are escaped, as encoding/json does, so the
		// output is also valid JavaScript.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
