package jsonval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Problem words an encoding/json decoding error for a person: no Go
// type names, the byte of a syntax error.
func Problem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		got := "a JSON " + typeErr.Value
		if strings.HasPrefix(typeErr.Value, "number ") {
			got = typeErr.Value // "number 1.5" where a whole number was expected
		}
		want := describeKind(typeErr.Type.Kind().String())
		if typeErr.Field == "" {
			return fmt.Sprintf("expected %s, got %s", want, got)
		}
		return fmt.Sprintf("%s: expected %s, got %s", typeErr.Field, want, got)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.EOF):
		return "empty; a JSON object is expected"
	}
	// The decoder's own messages start with "json: "; the reader knows.
	return strings.TrimPrefix(err.Error(), "json: ")
}

func describeKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint64":
		return "a whole number"
	case "float64":
		return "a number"
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return kind
}
