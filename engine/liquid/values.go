package liquid

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/osteele/liquid/values"
)

// liquidFloat is a float produced by a filter. Liquid prints floats with a
// fraction ("10 | divided_by: 2.0" is "5.0"), while Go prints 5; numbers
// from bindings stay float64 so that data renders as it always has.
type liquidFloat float64

func (f liquidFloat) String() string { return formatFloat(float64(f), true) }

func formatFloat(f float64, point bool) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if point && !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// Liquid's to_number: "1.5" is a float, other strings count their leading
// integer ("12abc" is 12, "abc" is 0), and anything else that is not a
// number is 0.
var (
	floatStringRE = regexp.MustCompile(`^\s*-?\d+\.\d+\s*$`)
	intPrefixRE   = regexp.MustCompile(`^\s*[-+]?\d+`)
)

// toNumber converts v the lenient way Liquid's arithmetic does. It returns
// an int64 or a float64.
func toNumber(v any) any {
	v = values.ToLiquid(v)
	switch v := v.(type) {
	case nil:
		return int64(0)
	case json.Number:
		// A whole number past int64's range (jsonval): a float, as
		// Liquid's own arithmetic would make it.
		f, _ := v.Float64()
		return f
	case string:
		if floatStringRE.MatchString(v) {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
		if m := intPrefixRE.FindString(v); m != "" {
			if n, err := strconv.ParseInt(strings.TrimSpace(m), 10, 64); err == nil {
				return n
			}
		}
		return int64(0)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	}
	return int64(0)
}

// isNumber reports whether v is a Go number (not a numeric string), or a
// json.Number, which jsonval gives for a whole number past int64's range.
func isNumber(v any) bool {
	if _, ok := v.(json.Number); ok {
		return true
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// numberResult wraps a float result so that it prints the Liquid way.
func numberResult(n any) any {
	switch n := n.(type) {
	case float64:
		return liquidFloat(n)
	case int64:
		// int, as jsonval gives whole numbers: osteele's ranges and
		// loop bounds take only int.
		return int(n)
	}
	return n
}

func asFloat(n any) float64 {
	if f, ok := n.(float64); ok {
		return f
	}
	return float64(n.(int64))
}

// wholeNumberArgs names, by position, the arguments of the filters that
// take them through toInteger, as its errors name them.
var wholeNumberArgs = map[string][]string{
	"truncate":      {"truncate's length"},
	"truncatewords": {"truncatewords' word count"},
	"slice":         {"slice's start", "slice's length"},
}

// toInteger converts a filter argument that must be a whole number; like
// Liquid it accepts numeric strings and refuses floats and other text.
func toInteger(v any, what string) (int, error) {
	switch v := values.ToLiquid(v).(type) {
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("%s must be a whole number, not '%s'", what, v)
		}
		return n, nil
	case nil:
		return 0, fmt.Errorf("%s must be a whole number, not nil", what)
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return int(rv.Int()), nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return int(rv.Uint()), nil
		}
		return 0, fmt.Errorf("%s must be a whole number, not %s", what, errValue(v))
	}
}

// truthy is Liquid truthiness: only nil and false are false.
func truthy(v any) bool {
	v = values.ToLiquid(v)
	if v == nil {
		return false
	}
	if b, ok := v.(bool); ok {
		return b
	}
	return true
}

// liquidString is what Liquid's string filters see of a value: arrays are
// joined, hashes inspected, floats from filters keep their fraction.
func liquidString(v any) string {
	v = values.ToLiquid(v)
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case liquidFloat:
		return v.String()
	case float64:
		return formatFloat(v, false)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		var b strings.Builder
		for i := range rv.Len() {
			b.WriteString(liquidString(rv.Index(i).Interface()))
		}
		return b.String()
	case reflect.Map:
		return inspect(v)
	}
	return fmt.Sprint(v)
}

// inspect renders a value the way Ruby's inspect does, which is what
// Liquid shows for hashes; keys are sorted so that output is stable.
func inspect(v any) string {
	v = values.ToLiquid(v)
	switch v := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(v)
	case liquidFloat:
		return v.String()
	case float64:
		return formatFloat(v, true)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = inspect(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := rv.MapKeys()
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = inspect(k.Interface()) + "=>" + inspect(rv.MapIndex(k).Interface())
		}
		slices.Sort(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// toList is Liquid's InputIterator: arrays are flattened, a hash or any
// other single value is a list of one, and nil is empty.
func toList(v any) []any {
	v = values.ToLiquid(v)
	switch v := v.(type) {
	case nil:
		return nil
	case values.Range:
		return rangeItems(v)
	case []any:
		if !hasNested(v) {
			return v
		}
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return []any{v}
	}
	var out []any
	flattenInto(&out, rv)
	return out
}

// rangeItems lists a range's numbers: none when it ends before it starts
// (osteele's AsArray panics there), and at most maxLoopSteps+1, so that
// (1..100000000) cannot take the memory a loop over it would be refused.
func rangeItems(r values.Range) []any {
	n := min(max(r.Len(), 0), maxLoopSteps+1)
	out := make([]any, n)
	for i := range n {
		out[i] = r.Index(i)
	}
	return out
}

func hasNested(a []any) bool {
	for _, e := range a {
		if k := reflect.ValueOf(e).Kind(); k == reflect.Slice || k == reflect.Array {
			return true
		}
	}
	return false
}

func flattenInto(out *[]any, rv reflect.Value) {
	for i := range rv.Len() {
		e := rv.Index(i).Interface()
		if r, ok := e.(values.Range); ok {
			*out = append(*out, rangeItems(r)...)
			continue
		}
		ev := reflect.ValueOf(e)
		if ev.Kind() == reflect.Slice || ev.Kind() == reflect.Array {
			flattenInto(out, ev)
			continue
		}
		*out = append(*out, e)
	}
}

// isList reports whether v is an array (or a range).
func isList(v any) bool {
	if _, ok := v.(values.Range); ok {
		return true
	}
	k := reflect.ValueOf(v).Kind()
	return k == reflect.Slice || k == reflect.Array
}

// lookupResult says how Ruby's item[property] went.
type lookupResult int

const (
	lookupOK       lookupResult = iota
	lookupNoMethod              // the item has no [] (nil, true, false)
	lookupTypeErr               // the item has [] but not for this key
)

// index is Ruby's item[property] for the values templates hold: a hash
// looks the key up, a string answers the property when it contains it (a
// substring test), and other values cannot be indexed by name.
func index(item, prop any) (any, lookupResult) {
	item = values.ToLiquid(item)
	switch item := item.(type) {
	case nil, bool:
		return nil, lookupNoMethod
	case string:
		p, ok := prop.(string)
		if prop == nil {
			// Liquid gives up on the whole filter here, as for nil items
			return nil, lookupNoMethod
		}
		if !ok {
			return nil, lookupTypeErr
		}
		if strings.Contains(item, p) {
			return p, lookupOK
		}
		return nil, lookupOK
	}
	rv := reflect.ValueOf(item)
	switch rv.Kind() {
	case reflect.Map:
		key := reflect.ValueOf(prop)
		if prop == nil || !key.Type().AssignableTo(rv.Type().Key()) {
			return nil, lookupOK
		}
		e := rv.MapIndex(key)
		if !e.IsValid() {
			return nil, lookupOK
		}
		return e.Interface(), lookupOK
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		// Ruby's Integer#[] reads a bit: 5[0] is 1, and any integer is truthy
		if n, ok := prop.(int); ok && n >= 0 && n < 64 {
			return (rv.Int() >> n) & 1, lookupOK
		}
		return nil, lookupTypeErr
	}
	return nil, lookupTypeErr
}

// exactCompare compares two whole numbers exactly when one of them is a
// json.Number (a whole number past int64's range, as jsonval keeps it),
// which as floats two ids one apart would compare equal. ok is false
// otherwise.
func exactCompare(a, b any) (c int, ok bool) {
	_, bigA := a.(json.Number)
	_, bigB := b.(json.Number)
	if !bigA && !bigB {
		return 0, false
	}
	x, okA := bigInt(a)
	y, okB := bigInt(b)
	if !okA || !okB {
		return 0, false
	}
	return x.Cmp(y), true
}

func bigInt(v any) (*big.Int, bool) {
	switch v := v.(type) {
	case json.Number:
		return new(big.Int).SetString(string(v), 10)
	case int:
		return big.NewInt(int64(v)), true
	case int64:
		return big.NewInt(v), true
	}
	return nil, false
}

// liquidEqual is Ruby ==: numbers compare by value, nothing else converts.
func liquidEqual(a, b any) bool {
	a, b = values.ToLiquid(a), values.ToLiquid(b)
	if c, exact := exactCompare(a, b); exact {
		return c == 0
	}
	if isNumber(a) && isNumber(b) {
		return asFloat(toNumber(a)) == asFloat(toNumber(b))
	}
	if isNumber(a) || isNumber(b) {
		return false
	}
	if _, ok := a.(string); ok {
		s, ok := b.(string)
		return ok && s == a
	}
	return values.Equal(a, b)
}

// errValue shows a value in an error message. osteele quotes messages
// with %q, so double quotes would come out escaped.
func errValue(v any) string { return strings.ReplaceAll(inspect(v), `"`, "'") }
