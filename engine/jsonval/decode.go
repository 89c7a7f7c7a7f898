package jsonval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Decode parses one JSON value, keeping whole numbers as integers. Its
// errors say where in data the problem is.
func Decode(data []byte) (any, error) {
	if v, ok := parse(data); ok {
		return v, nil
	}
	return decodeStandard(data)
}

// decodeStandard is Decode by encoding/json, which says what is wrong.
func decodeStandard(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %s", place(string(data), err))
	}
	// Only JSON's white space may follow the value: not a stray ] or },
	// which dec.More lets by, nor a form feed, which bytes.TrimSpace would.
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		where := at(string(data), len(data)-len(rest))
		// What starts like a value is called one.
		if strings.IndexByte(`{["-0123456789tfn`, rest[0]) >= 0 {
			return nil, fmt.Errorf("%s: more than one JSON value", where)
		}
		return nil, fmt.Errorf("%s: it does not end where the JSON value ends: %q follows", where, rest[:min(len(rest), 20)])
	}
	return Normalize(v), nil
}

// ErrNotObject is DecodeObject's error for JSON that is not an object.
var ErrNotObject = errors.New("a JSON object is needed")

// DecodeObject parses a JSON object as Decode does.
func DecodeObject(data []byte) (map[string]any, error) {
	v, err := Decode(data)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, ErrNotObject
	}
	return obj, nil
}

// Normalize turns json.Number values into int when they are whole and
// float64 otherwise, so that 100 prints as 100 in templates, not 1e+02,
// and divides as an integer, as in Braze. int rather than int64: Liquid's
// ranges ((1..n)) and loop limits take only int.
func Normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = Normalize(e)
		}
	case []any:
		for i, e := range v {
			v[i] = Normalize(e)
		}
	case json.Number:
		return numberValue(string(v))
	}
	return v
}

// numberValue is the value of a JSON number's text: int when whole and in
// range; a whole number past int64's range stays as written, a
// json.Number (an id of 20 digits: as a float64 it was sent changed,
// 12345678901234567891 as 12345678901234567000, and two such ids
// compared equal, so two Braze triggers that differed only there were
// merged); float64 otherwise, but for one beyond float64's range, which
// stays as written too (as ±Inf it could not be sent on: the event was a
// dead letter saying only "unsupported value: +Inf").
func numberValue(text string) any {
	i, err := strconv.ParseInt(text, 10, 64)
	if err == nil && int64(int(i)) == i {
		return int(i)
	}
	if errors.Is(err, strconv.ErrRange) {
		return json.Number(text)
	}
	f, _ := strconv.ParseFloat(text, 64)
	if math.IsInf(f, 0) {
		return json.Number(text)
	}
	return f
}

// place says where in text a JSON error is, as "line L, column C: ...".
func place(text string, err error) string {
	off := len(text)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		off = int(se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		if strings.TrimSpace(text) == "" {
			return "it is empty"
		}
		err = errors.New("the JSON ends before it is complete")
	default:
		return err.Error()
	}
	if off > 0 && se != nil {
		off-- // the offset counts the byte that failed
	}
	return fmt.Sprintf("%s: %v", at(text, off), err)
}

// at is byte offset off of text as "line L, column C" (the byte at off).
func at(text string, off int) string {
	before := text[:min(off, len(text))]
	line := 1 + strings.Count(before, "\n")
	col := len(before) - strings.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
