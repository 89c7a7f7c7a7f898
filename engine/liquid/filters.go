package liquid

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/loyalty-connector/engine/engine/jsonval"
)

// jsonFilter encodes a value as compact JSON without HTML escaping, so
// "<" and "&" reach the target as written.
func jsonFilter(v any) (string, error) {
	b, err := jsonval.Append(nil, jsonable(v))
	if err != nil {
		return "", fmt.Errorf("json: cannot encode the value: %w", err)
	}
	return string(b), nil
}

// jsonEscape escapes a string for use inside a JSON string literal: quotes,
// backslashes and control characters.
func jsonEscape(v any) (string, error) {
	s, err := jsonFilter(liquidString(v))
	if err != nil {
		return "", err
	}
	return s[1 : len(s)-1], nil
}

func jsonParse(v any) (any, error) {
	out, err := jsonval.Decode([]byte(liquidString(v)))
	if err != nil {
		return nil, fmt.Errorf("json_parse: the input is %w", err)
	}
	return out, nil
}

// isPlainJSON reports whether v holds only values encoding/json takes as
// they are, so jsonable need not copy it.
func isPlainJSON(v any) bool {
	switch v := v.(type) {
	case nil, string, bool, int, int64, float64, json.Number:
		return true
	case map[string]any:
		for _, e := range v {
			if !isPlainJSON(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !isPlainJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

// jsonable turns values osteele may hand a filter ([]byte from the json
// filter, maps with non-string keys) into ones encoding/json accepts.
func jsonable(v any) any {
	if isPlainJSON(v) {
		return v
	}
	switch v := v.(type) {
	case liquidFloat:
		return float64(v)
	case []byte:
		return string(v)
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = jsonable(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = jsonable(e)
		}
		return s
	}
	return v
}

// urlSafe is what url_escape leaves alone: the unreserved and reserved
// characters of RFC 3986 (Braze: "hey<>hi" -> "hey%3C%3Ehi").
const urlSafe = "-_.~!*'();:@&=+$,/?#[]"

// paramSafe is what url_param_escape leaves alone: it escapes "&" and the
// other reserved characters too (Braze: "hey<&>hi" -> "hey%3C%26%3Ehi").
const paramSafe = "-_.~"

func percentEscape(s, safe string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func isAlnum(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') }
