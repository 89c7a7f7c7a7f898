package emulator

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"unicode/utf8"
)

// parseObject decodes a request body that must be one JSON object. Keys are
// matched exactly (encoding/json's struct matching ignores case; SessionM's
// does not).
func parseObject(body []byte) (map[string]json.RawMessage, *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errorf("argument_error", "the request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return nil, errorf("argument_error", "the request body must be a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, errorf("argument_error", "the request body is not valid JSON: %s", jsonProblem(err))
	}
	return m, nil
}

// jsonProblem words a decoding error without Go type names.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return e.Error() + " at byte " + strconv.FormatInt(e.Offset, 10)
	case *json.UnmarshalTypeError:
		return "a value has the wrong type"
	}
	return "malformed JSON"
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func objectOf(raw json.RawMessage) (map[string]json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return nil, errNotObject
	}
	var m map[string]json.RawMessage
	return m, json.Unmarshal(t, &m)
}

var errNotObject = &json.UnsupportedValueError{Str: "not an object"}

// fields reads typed values out of a decoded object, collecting one
// message per bad field; null counts as absent.
type fields struct {
	m    map[string]json.RawMessage
	errs map[string]string
}

func (f *fields) raw(name string) (json.RawMessage, bool) {
	r, ok := f.m[name]
	if !ok || isNull(r) {
		return nil, false
	}
	return bytes.TrimSpace(r), true
}

func (f *fields) str(name string) (string, bool) {
	r, ok := f.raw(name)
	if !ok {
		return "", false
	}
	var s string
	if r[0] != '"' || json.Unmarshal(r, &s) != nil {
		f.errs[name] = "must be a string"
		return "", false
	}
	return s, true
}

func (f *fields) boolean(name string) (bool, bool) {
	r, ok := f.raw(name)
	if !ok {
		return false, false
	}
	switch string(r) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	f.errs[name] = "must be true or false"
	return false, false
}

// integer accepts a JSON integer literal only (no strings, no fractions).
func (f *fields) integer(name string) (int64, bool) {
	r, ok := f.raw(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(r), 10, 64)
	if err != nil {
		f.errs[name] = "must be an integer"
		return 0, false
	}
	return n, true
}

// appendString appends s as a JSON string. Plain ASCII, the tag-path
// common case, is copied as is; anything else goes through encoding/json
// for exact escaping.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func sortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func unescapeSegment(s string) (string, error) { return url.PathUnescape(s) }
