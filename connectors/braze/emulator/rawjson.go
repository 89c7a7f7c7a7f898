package emulator

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Reading request fields from raw JSON, so wrong types get Braze-style
// messages (never Go type names) and object sizes can be measured as sent.

type fields = map[string]json.RawMessage

func isNull(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }

// getString reads an optional string field; null counts as absent.
func getString(f fields, key string) (string, bool, string) {
	r, ok := f[key]
	if !ok || isNull(r) {
		return "", false, ""
	}
	if r[0] != '"' {
		return "", true, fmt.Sprintf("'%s' must be a string", key)
	}
	if s, ok := plainString(r); ok {
		return s, true, ""
	}
	var s string
	if json.Unmarshal(r, &s) != nil {
		return "", true, fmt.Sprintf("'%s' must be a string", key)
	}
	return s, true, ""
}

// plainString reads a JSON string without escapes straight from the
// (already validated) input, the common case, without a second scan.
func plainString(r json.RawMessage) (string, bool) {
	if len(r) < 2 || r[0] != '"' || r[len(r)-1] != '"' {
		return "", false
	}
	for _, c := range r[1 : len(r)-1] {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false
		}
	}
	return string(r[1 : len(r)-1]), true
}

// decodeValue decodes one validated JSON value as encoding/json would into
// an any, with fast paths for scalars; false for a number out of range.
func decodeValue(r json.RawMessage) (any, bool) {
	switch {
	case isNull(r):
		return nil, true
	case string(r) == "true":
		return true, true
	case string(r) == "false":
		return false, true
	case r[0] == '-' || (r[0] >= '0' && r[0] <= '9'):
		f, err := strconv.ParseFloat(string(r), 64)
		return f, err == nil
	}
	if s, ok := plainString(r); ok {
		return s, true
	}
	var v any
	err := json.Unmarshal(r, &v)
	return v, err == nil
}

func getBool(f fields, key string) (bool, bool, string) {
	r, ok := f[key]
	if !ok || isNull(r) {
		return false, false, ""
	}
	switch string(r) {
	case "true":
		return true, true, ""
	case "false":
		return false, true, ""
	}
	return false, true, fmt.Sprintf("'%s' must be true or false", key)
}

// getObject returns an object field still encoded.
func getObject(f fields, key string) (json.RawMessage, bool, string) {
	r, ok := f[key]
	if !ok || isNull(r) {
		return nil, false, ""
	}
	if r[0] != '{' {
		return nil, true, fmt.Sprintf("'%s' must be an object", key)
	}
	return r, true, ""
}

func getArray(f fields, key string) ([]json.RawMessage, bool, string) {
	r, ok := f[key]
	if !ok || isNull(r) {
		return nil, false, ""
	}
	var a []json.RawMessage
	if r[0] != '[' || json.Unmarshal(r, &a) != nil {
		return nil, true, fmt.Sprintf("'%s' must be an array", key)
	}
	return a, true, ""
}

// asFields decodes an object into its raw fields.
func asFields(r json.RawMessage) (fields, bool) {
	if len(r) == 0 || r[0] != '{' {
		return nil, false
	}
	var f fields
	if json.Unmarshal(r, &f) != nil {
		return nil, false
	}
	return f, true
}

// compactLen is the length of a JSON value without insignificant
// whitespace: the "JSON bytes" a size limit is measured in.
func compactLen(r json.RawMessage) int {
	n, inStr, esc := 0, false, false
	for _, c := range r {
		switch {
		case inStr:
			n++
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			n++
			if c == '"' {
				inStr = true
			}
		}
	}
	return n
}

// decodeObject decodes a raw object into a map (numbers as float64);
// false when it is not an object or holds a number out of range.
func decodeObject(r json.RawMessage) (map[string]any, bool) {
	var m map[string]any
	if len(r) == 0 || r[0] != '{' || json.Unmarshal(r, &m) != nil {
		return nil, false
	}
	return m, true
}
