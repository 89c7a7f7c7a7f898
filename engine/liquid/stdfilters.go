package liquid

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/osteele/liquid/filters"
	"github.com/osteele/liquid/values"
)

// Filters of Liquid 5 (Shopify, which Braze runs) that osteele lacks or
// implements differently. osteele converts filter arguments to the Go
// parameter types, which turns Liquid's lenient conversions ("abc" is 0
// for plus) into errors and drops extra arguments silently, so these
// filters take their arguments as they come and check them themselves.

// filterFn is a filter body: the input and the arguments as written.
type filterFn func(in any, args []any) (any, error)

// arity registers fn with the number of arguments it takes; a template
// passing more or fewer is an error, as in Liquid.
func arity(minArgs, maxArgs int, fn filterFn) any {
	if maxArgs == 0 {
		// A fixed signature spares osteele's reflection the variadic
		// slice; it refuses extra arguments itself.
		return func(in any) (any, error) { return fn(in, nil) }
	}
	return func(in any, args ...any) (any, error) {
		if len(args) < minArgs || len(args) > maxArgs {
			return nil, arityError(minArgs, maxArgs, len(args))
		}
		return fn(in, args)
	}
}

func arityError(minArgs, maxArgs, got int) error {
	return &wrongArity{minArgs, maxArgs, got}
}

// wrongArity is a filter given more or fewer arguments than it takes;
// Parse finds it by calling the filter once (argsProblem).
type wrongArity struct{ min, max, got int }

func (e *wrongArity) Error() string {
	want := fmt.Sprintf("%d", e.min)
	if e.max != e.min {
		want = fmt.Sprintf("%d to %d", e.min, e.max)
	}
	noun := "arguments"
	if e.max == 1 {
		noun = "argument"
	}
	return fmt.Sprintf("takes %s %s, not %d", want, noun, e.got)
}

// argsProblem reports whether filter fn refuses n arguments, so a
// template says so when it is built rather than on every event. A filter
// of a fixed signature takes at most its parameters; one that counts its
// arguments itself (arity) is called once with n nils and its answer
// read; any other error of that call is the nil input's, and ignored.
func argsProblem(fn any, n int) (problem error) {
	rt := reflect.TypeOf(fn)
	if rt == nil || rt.Kind() != reflect.Func || rt.NumIn() == 0 {
		return nil
	}
	if !rt.IsVariadic() {
		if max := rt.NumIn() - 1; n > max {
			return &wrongArity{0, max, n}
		}
		return nil
	}
	defer func() {
		if recover() != nil {
			problem = nil
		}
	}()
	in := make([]reflect.Value, 1+n)
	variadic := rt.NumIn() - 1 // the last parameter, a slice
	for i := range in {
		if i < variadic {
			in[i] = reflect.Zero(rt.In(i))
		} else {
			in[i] = reflect.Zero(rt.In(variadic).Elem())
		}
	}
	out := reflect.ValueOf(fn).Call(in)
	if last := out[len(out)-1]; last.Type().Implements(reflect.TypeFor[error]()) && !last.IsNil() {
		var wrong *wrongArity
		if errors.As(last.Interface().(error), &wrong) {
			return wrong
		}
	}
	return nil
}

// osteeleFilters holds osteele's own filters so that the ones whose
// behaviour is right can be reused with an argument count check added.
var osteeleFilters = sync.OnceValue(func() map[string]any {
	m := captureFilters{}
	filters.AddStandardFilters(m)
	return m
})

type captureFilters map[string]any

func (c captureFilters) AddFilter(name string, fn any) { c[name] = fn }

// checked wraps osteele's filter name with an argument count check.
func checked(name string, minArgs, maxArgs int) any {
	fn := reflect.ValueOf(osteeleFilters()[name])
	return arity(minArgs, maxArgs, func(in any, args []any) (any, error) {
		// osteele prints a hash as Go does ("map[]"); Liquid's text is "{}"
		return values.Call(fn, append([]any{liquidString(in)}, args...))
	})
}

func addLiquid5Filters(cfg filters.FilterDictionary, now func() time.Time) {
	// osteele's string filters are right but ignore a missing or extra
	// argument, which Liquid reports
	for name, n := range map[string][2]int{
		"append": {1, 1}, "prepend": {1, 1}, "remove": {1, 1}, "remove_first": {1, 1},
		"replace": {1, 2}, "replace_first": {1, 2}, "split": {1, 1},
		"escape": {0, 0}, "escape_once": {0, 0}, "url_encode": {0, 0}, "url_decode": {0, 0},
	} {
		cfg.AddFilter(name, checked(name, n[0], n[1]))
	}
	// The same as osteele's, without a second call through reflection: these
	// run in nearly every message template.
	for name, fn := range map[string]func(string) string{
		"downcase": strings.ToLower, "upcase": strings.ToUpper, "strip": strings.TrimSpace,
		"lstrip": func(s string) string { return strings.TrimLeftFunc(s, unicode.IsSpace) },
		"rstrip": func(s string) string { return strings.TrimRightFunc(s, unicode.IsSpace) },
	} {
		cfg.AddFilter(name, arity(0, 0, func(in any, _ []any) (any, error) { return fn(liquidString(in)), nil }))
	}
	cfg.AddFilter("capitalize", arity(0, 0, capitalize))
	cfg.AddFilter("truncate", arity(0, 2, truncate))
	cfg.AddFilter("truncatewords", arity(0, 2, truncateWords))
	cfg.AddFilter("strip_newlines", arity(0, 0, stripNewlines))
	cfg.AddFilter("newline_to_br", arity(0, 0, newlineToBr))
	cfg.AddFilter("strip_html", arity(0, 0, stripHTML))
	cfg.AddFilter("remove_last", arity(1, 1, removeLast))
	cfg.AddFilter("replace_last", arity(2, 2, replaceLast))
	cfg.AddFilter("base64_encode", arity(0, 0, b64Encode(base64.StdEncoding)))
	cfg.AddFilter("base64_decode", arity(0, 0, b64Decode(base64.StdEncoding)))
	cfg.AddFilter("base64_url_safe_encode", arity(0, 0, b64Encode(base64.URLEncoding)))
	cfg.AddFilter("base64_url_safe_decode", arity(0, 0, b64Decode(base64.URLEncoding)))

	cfg.AddFilter("plus", arity(1, 1, arith("plus")))
	cfg.AddFilter("minus", arity(1, 1, arith("minus")))
	cfg.AddFilter("times", arity(1, 1, arith("times")))
	cfg.AddFilter("divided_by", arity(1, 1, arith("divided_by")))
	cfg.AddFilter("modulo", arity(1, 1, arith("modulo")))
	cfg.AddFilter("abs", arity(0, 0, absFilter))
	cfg.AddFilter("ceil", arity(0, 0, rounding(math.Ceil)))
	cfg.AddFilter("floor", arity(0, 0, rounding(math.Floor)))
	cfg.AddFilter("round", arity(0, 1, roundFilter))
	cfg.AddFilter("at_least", arity(1, 1, clamp(func(a, b float64) bool { return a > b })))
	cfg.AddFilter("at_most", arity(1, 1, clamp(func(a, b float64) bool { return a < b })))
	cfg.AddFilter("date", arity(1, 1, dateFilter(now)))

	cfg.AddFilter("size", arity(0, 0, sizeFilter))
	cfg.AddFilter("first", arity(0, 0, firstFilter))
	cfg.AddFilter("last", arity(0, 0, lastFilter))
	cfg.AddFilter("join", arity(0, 1, joinFilter))
	cfg.AddFilter("reverse", arity(0, 0, reverseFilter))
	cfg.AddFilter("concat", arity(1, 1, concatFilter))
	cfg.AddFilter("compact", arity(0, 1, compactFilter))
	cfg.AddFilter("uniq", arity(0, 1, uniqFilter))
	cfg.AddFilter("map", arity(1, 1, mapFilter))
	cfg.AddFilter("sort", arity(0, 1, sortFilter))
	cfg.AddFilter("sort_natural", arity(0, 1, sortNatural))
	cfg.AddFilter("slice", arity(1, 2, sliceFilter))
	cfg.AddFilter("sum", arity(0, 1, sumFilter))
	cfg.AddFilter("where", arity(1, 2, selectBy(selectWhere)))
	cfg.AddFilter("reject", arity(1, 2, selectBy(selectReject)))
	cfg.AddFilter("find", arity(1, 2, selectBy(selectFind)))
	cfg.AddFilter("find_index", arity(1, 2, selectBy(selectFindIndex)))
	cfg.AddFilter("has", arity(1, 2, selectBy(selectHas)))
}

// --- strings

func capitalize(in any, _ []any) (any, error) {
	s := liquidString(in)
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return "", nil
	}
	return string(unicode.ToUpper(r)) + strings.ToLower(s[n:]), nil
}

// optString is an optional string argument; an undefined one is "".
func optString(args []any, i int, def string) string {
	if i >= len(args) {
		return def
	}
	return liquidString(args[i])
}

func truncate(in any, args []any) (any, error) {
	if in == nil {
		return nil, nil
	}
	s := []rune(liquidString(in))
	n := 50
	if len(args) > 0 {
		var err error
		if n, err = toInteger(args[0], "truncate's length"); err != nil {
			return nil, err
		}
	}
	ellipsis := []rune(optString(args, 1, "..."))
	if len(s) <= n {
		return string(s), nil
	}
	keep := max(n-len(ellipsis), 0)
	return string(s[:keep]) + string(ellipsis), nil
}

func truncateWords(in any, args []any) (any, error) {
	if in == nil {
		return nil, nil
	}
	s := liquidString(in)
	n := 15
	if len(args) > 0 {
		var err error
		if n, err = toInteger(args[0], "truncatewords' word count"); err != nil {
			return nil, err
		}
	}
	n = max(n, 1)
	words := strings.Fields(s)
	if len(words) <= n {
		return s, nil
	}
	return strings.Join(words[:n], " ") + optString(args, 1, "..."), nil
}

func stripNewlines(in any, _ []any) (any, error) {
	return strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(liquidString(in)), nil
}

func newlineToBr(in any, _ []any) (any, error) {
	return strings.NewReplacer("\r\n", "<br />\n", "\n", "<br />\n").Replace(liquidString(in)), nil
}

// Liquid drops script and style blocks with their content, then comments
// and tags, which may span lines.
var htmlRE = regexp.MustCompile(`(?is)<script.*?</script>|<!--.*?-->|<style.*?</style>|<.*?>`)

func stripHTML(in any, _ []any) (any, error) {
	return htmlRE.ReplaceAllString(liquidString(in), ""), nil
}

func removeLast(in any, args []any) (any, error) {
	return replaceLast(in, []any{args[0], ""})
}

func replaceLast(in any, args []any) (any, error) {
	s, old, repl := liquidString(in), liquidString(args[0]), liquidString(args[1])
	i := strings.LastIndex(s, old)
	if i < 0 {
		return s, nil
	}
	return s[:i] + repl + s[i+len(old):], nil
}

func b64Encode(enc *base64.Encoding) filterFn {
	return func(in any, _ []any) (any, error) {
		return enc.EncodeToString([]byte(liquidString(in))), nil
	}
}

func b64Decode(enc *base64.Encoding) filterFn {
	return func(in any, _ []any) (any, error) {
		s := liquidString(in)
		b, err := enc.DecodeString(s)
		if err != nil {
			// Ruby accepts the unpadded form too
			if b, err = enc.WithPadding(base64.NoPadding).DecodeString(strings.TrimRight(s, "=")); err != nil {
				return nil, fmt.Errorf("'%s' is not valid base64", s)
			}
		}
		return string(b), nil
	}
}

// --- numbers

var errDivZero = errors.New("division by zero")

// arith applies Liquid's arithmetic: whole numbers stay whole (division
// floors, as in Ruby), a float on either side makes the result a float.
func arith(op string) filterFn {
	return func(in any, args []any) (any, error) {
		a, b := toNumber(in), toNumber(args[0])
		ai, aInt := a.(int64)
		bi, bInt := b.(int64)
		if aInt && bInt {
			switch op {
			case "plus":
				return numberResult(ai + bi), nil
			case "minus":
				return numberResult(ai - bi), nil
			case "times":
				return numberResult(ai * bi), nil
			}
			if bi == 0 {
				return nil, errDivZero
			}
			q, r := ai/bi, ai%bi
			if r != 0 && (r < 0) != (bi < 0) {
				q, r = q-1, r+bi
			}
			if op == "divided_by" {
				return numberResult(q), nil
			}
			return numberResult(r), nil
		}
		af, bf := asFloat(a), asFloat(b)
		var out float64
		places := max(decimals(af), decimals(bf))
		switch op {
		case "plus":
			out = af + bf
		case "minus":
			out = af - bf
		case "times":
			out = af * bf
			places = decimals(af) + decimals(bf)
		case "divided_by":
			if bf == 0 {
				return nil, errDivZero
			}
			return liquidFloat(af / bf), nil
		case "modulo":
			if bf == 0 {
				return nil, errDivZero
			}
			out = math.Mod(af, bf)
			if out != 0 && (out < 0) != (bf < 0) {
				out += bf
			}
		}
		return liquidFloat(roundTo(out, places)), nil
	}
}

// decimals counts the digits after the point of f's shortest form, so
// that sums can be rounded the way decimal arithmetic would leave them
// (10.1 - 2.2 is 7.9, not 7.8999999999999995).
func decimals(f float64) int {
	s := formatFloat(f, false)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

func roundTo(f float64, places int) float64 {
	if places > 15 || math.IsInf(f, 0) || math.IsNaN(f) {
		return f
	}
	p := math.Pow10(places)
	r := math.Round(f*p) / p
	if math.IsInf(r, 0) {
		return f
	}
	return r
}

func absFilter(in any, _ []any) (any, error) {
	switch n := toNumber(in).(type) {
	case int64:
		if n < 0 {
			return numberResult(-n), nil
		}
		return numberResult(n), nil
	default:
		return liquidFloat(math.Abs(n.(float64))), nil
	}
}

func rounding(fn func(float64) float64) filterFn {
	return func(in any, _ []any) (any, error) {
		return wholeResult(fn(asFloat(toNumber(in)))), nil
	}
}

// wholeResult turns a rounded float into an integer when it fits.
func wholeResult(f float64) any {
	if f >= math.MinInt64 && f <= math.MaxInt64 {
		return numberResult(int64(f))
	}
	return liquidFloat(f)
}

func roundFilter(in any, args []any) (any, error) {
	n := toNumber(in)
	places := 0
	if len(args) > 0 {
		// Liquid rounds to whole numbers when the argument is not one
		switch p := toNumber(args[0]).(type) {
		case int64:
			places = int(p)
		case float64:
			places = int(p)
		}
	}
	if i, ok := n.(int64); ok && places >= 0 {
		return numberResult(i), nil
	}
	f := asFloat(n)
	if places <= 0 {
		p := math.Pow10(-places)
		return wholeResult(math.Round(f/p) * p), nil
	}
	return liquidFloat(roundTo(f, places)), nil
}

func clamp(better func(a, b float64) bool) filterFn {
	return func(in any, args []any) (any, error) {
		a, b := toNumber(in), toNumber(args[0])
		if better(asFloat(a), asFloat(b)) || asFloat(a) == asFloat(b) {
			return numberResult(a), nil
		}
		return numberResult(b), nil
	}
}

// --- dates

var digitsRE = regexp.MustCompile(`^\d+$`)

// dateFilter adds what Liquid accepts besides osteele's date strings:
// Unix timestamps (numbers and digit strings) and "today", and reads "now"
// from the engine's clock. Input it cannot read as a date is returned as
// it is, as Liquid does.
func dateFilter(now func() time.Time) func(any, []any) (any, error) {
	format := osteeleFilters()["date"].(func(time.Time, func(string) string) (string, error))
	return func(in any, args []any) (any, error) {
		in = values.ToLiquid(in)
		if in == nil {
			return nil, nil
		}
		if args[0] == nil {
			return in, nil
		}
		layout := liquidString(args[0])
		t, ok := asTime(in, now)
		if !ok {
			if s, isText := in.(string); isText {
				return s, nil
			}
			return liquidString(in), nil
		}
		return format(t, func(string) string { return layout })
	}
}

func unixTime(n any) time.Time {
	if f, ok := n.(float64); ok {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).In(time.Local)
	}
	return time.Unix(n.(int64), 0).In(time.Local)
}

// --- arrays

func sizeFilter(in any, _ []any) (any, error) {
	in = values.ToLiquid(in)
	if s, ok := in.(string); ok {
		return utf8.RuneCountInString(s), nil
	}
	if r, ok := in.(values.Range); ok {
		return max(r.Len(), 0), nil
	}
	rv := reflect.ValueOf(in)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len(), nil
	}
	return 0, nil
}

// firstFilter takes the first element of an array, the first character of
// a string (Liquid 5), or the first [key, value] pair of a hash.
func firstFilter(in any, _ []any) (any, error) { return endOf(in, false) }

// lastFilter takes the last element of an array or the last character of
// a string; a hash has no last.
func lastFilter(in any, _ []any) (any, error) { return endOf(in, true) }

func endOf(in any, last bool) (any, error) {
	in = values.ToLiquid(in)
	switch v := in.(type) {
	case string:
		r, n := utf8.DecodeRuneInString(v)
		if last {
			r, n = utf8.DecodeLastRuneInString(v)
		}
		if n == 0 {
			return nil, nil
		}
		return string(r), nil
	case values.Range:
		if v.Len() == 0 {
			return nil, nil
		}
		if last {
			return v.Index(v.Len() - 1), nil
		}
		return v.Index(0), nil
	}
	rv := reflect.ValueOf(in)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Len() == 0 {
			return nil, nil
		}
		if last {
			return rv.Index(rv.Len() - 1).Interface(), nil
		}
		return rv.Index(0).Interface(), nil
	case reflect.Map:
		if keys := sortedKeys(rv); len(keys) > 0 && !last {
			return []any{keys[0].Interface(), rv.MapIndex(keys[0]).Interface()}, nil
		}
	}
	return nil, nil
}

func sortedKeys(rv reflect.Value) []reflect.Value {
	keys := rv.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int {
		return cmp.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
	})
	return keys
}

func joinFilter(in any, args []any) (any, error) {
	if !isList(values.ToLiquid(in)) {
		return liquidString(in), nil
	}
	sep := optString(args, 0, " ")
	items := toList(in)
	parts := make([]string, len(items))
	for i, e := range items {
		parts[i] = liquidString(e)
	}
	return strings.Join(parts, sep), nil
}

func reverseFilter(in any, _ []any) (any, error) {
	out := slices.Clone(toList(in))
	slices.Reverse(out)
	return out, nil
}

func concatFilter(in any, args []any) (any, error) {
	if !isList(values.ToLiquid(args[0])) {
		return nil, fmt.Errorf("concat needs an array argument, not %s", errValue(args[0]))
	}
	return append(slices.Clone(toList(in)), toList(args[0])...), nil
}

// propertyOf is item[property] for filters that take an optional property:
// without one the item itself.
func propertyOf(item any, args []any) any {
	if len(args) == 0 || args[0] == nil {
		return item
	}
	v, _ := index(item, args[0])
	return v
}

func compactFilter(in any, args []any) (any, error) {
	out := []any{}
	for _, e := range toList(in) {
		if propertyOf(e, args) != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

func uniqFilter(in any, args []any) (any, error) {
	out := []any{}
	seen := map[string]bool{}
	for _, e := range toList(in) {
		key := uniqKey(propertyOf(e, args))
		if !seen[key] {
			seen[key] = true
			out = append(out, e)
		}
	}
	return out, nil
}

// uniqKey identifies a value for uniq: 1 and "1" differ, 1 and 1.0 do not.
func uniqKey(v any) string {
	v = values.ToLiquid(v)
	if n, ok := v.(json.Number); ok {
		return "n" + string(n) // whole, past int64's range: as written
	}
	if isNumber(v) {
		return "n" + formatFloat(asFloat(toNumber(v)), false)
	}
	return fmt.Sprintf("%T:%s", v, inspect(v))
}

func mapFilter(in any, args []any) (any, error) {
	items := toList(in)
	out := make([]any, 0, len(items))
	for _, e := range items {
		v, res := index(e, args[0])
		if res != lookupOK {
			return nil, fmt.Errorf("cannot read %s of %s", errValue(args[0]), errValue(e))
		}
		out = append(out, v)
	}
	return out, nil
}

// sortFilter sorts like Ruby: numbers with numbers, strings with strings,
// anything else is an error; items without the property go last.
func sortFilter(in any, args []any) (any, error) {
	var err error
	items := sortByProperty(in, args, func(x, y any) int {
		c, ok := compareValues(x, y)
		if !ok && err == nil {
			err = fmt.Errorf("cannot compare %s with %s", errValue(x), errValue(y))
		}
		return c
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// sortByProperty is a stable sort of the items of in by their property
// args[0] (or themselves), with the items that have none last.
func sortByProperty(in any, args []any, compare func(x, y any) int) []any {
	items := slices.Clone(toList(in))
	slices.SortStableFunc(items, func(a, b any) int {
		x, y := propertyOf(a, args), propertyOf(b, args)
		switch {
		case x == nil && y == nil:
			return 0
		case x == nil:
			return 1
		case y == nil:
			return -1
		}
		return compare(x, y)
	})
	return items
}

func compareValues(a, b any) (int, bool) {
	a, b = values.ToLiquid(a), values.ToLiquid(b)
	if c, exact := exactCompare(a, b); exact {
		return c, true
	}
	if isNumber(a) && isNumber(b) {
		return cmp.Compare(asFloat(toNumber(a)), asFloat(toNumber(b))), true
	}
	sa, okA := a.(string)
	sb, okB := b.(string)
	if okA && okB {
		return strings.Compare(sa, sb), true
	}
	return 0, false
}

// sortNatural compares case-insensitively by text; nil goes last.
func sortNatural(in any, args []any) (any, error) {
	return sortByProperty(in, args, func(x, y any) int {
		return strings.Compare(strings.ToLower(naturalString(x)), strings.ToLower(naturalString(y)))
	}), nil
}

func naturalString(v any) string {
	if isList(values.ToLiquid(v)) {
		return inspect(v)
	}
	return liquidString(v)
}

// sliceFilter is Ruby's str[start, length] and array[start, length].
func sliceFilter(in any, args []any) (any, error) {
	start, err := toInteger(args[0], "slice's start")
	if err != nil {
		return nil, err
	}
	length := 1
	if len(args) > 1 && args[1] != nil {
		if length, err = toInteger(args[1], "slice's length"); err != nil {
			return nil, err
		}
	}
	in = values.ToLiquid(in)
	if isList(in) {
		items := toList(in)
		lo, hi, ok := sliceBounds(len(items), start, length)
		if !ok {
			return []any{}, nil
		}
		return items[lo:hi], nil
	}
	if in == nil {
		return nil, nil
	}
	if _, ok := in.(string); !ok {
		return "", nil
	}
	runes := []rune(liquidString(in))
	lo, hi, ok := sliceBounds(len(runes), start, length)
	if !ok {
		return "", nil
	}
	return string(runes[lo:hi]), nil
}

func sliceBounds(n, start, length int) (lo, hi int, ok bool) {
	if start < 0 {
		start += n
	}
	if start < 0 || start > n || length < 0 {
		return 0, 0, false
	}
	return start, start + min(length, n-start), true
}

func sumFilter(in any, args []any) (any, error) {
	var terms []any
	for _, e := range toList(in) {
		if len(args) == 0 || args[0] == nil {
			terms = append(terms, e)
			continue
		}
		v, res := index(e, args[0])
		switch res {
		case lookupTypeErr:
			if _, isStr := values.ToLiquid(e).(string); !isStr {
				return nil, fmt.Errorf("cannot read %s of %s", errValue(args[0]), errValue(e))
			}
		case lookupNoMethod:
			v = 0
		}
		terms = append(terms, v)
	}
	var total any = int64(0)
	for _, t := range toList(terms) {
		n := toNumber(t)
		ti, tInt := total.(int64)
		ni, nInt := n.(int64)
		if tInt && nInt {
			total = ti + ni
		} else {
			total = asFloat(total) + asFloat(n)
		}
	}
	return numberResult(total), nil
}

// --- where, reject, find, find_index, has (Liquid 5.x filter_array)

type selectMode int

const (
	selectWhere selectMode = iota
	selectReject
	selectFind
	selectFindIndex
	selectHas
)

// selectBy tests each item's property: for truthiness without a value (or
// with nil), for equality with one. An item that has no properties at all
// (nil, true, false) makes the result nil, as in Liquid, and one that
// cannot be read by that name is an error.
func selectBy(mode selectMode) filterFn {
	return func(in any, args []any) (any, error) {
		items := toList(in)
		var empty any
		switch mode {
		case selectWhere, selectReject:
			empty = []any{}
		case selectHas:
			empty = false
		}
		if len(items) == 0 {
			return empty, nil
		}
		prop := args[0]
		var target any
		if len(args) > 1 {
			target = values.ToLiquid(args[1])
		}
		out := []any{}
		for i, item := range items {
			v, res := index(item, prop)
			switch res {
			case lookupNoMethod:
				return nil, nil
			case lookupTypeErr:
				return nil, fmt.Errorf("cannot read %s of %s", errValue(prop), errValue(item))
			}
			match := truthy(v)
			if target != nil {
				match = liquidEqual(v, target)
			}
			switch mode {
			case selectWhere:
				if match {
					out = append(out, item)
				}
			case selectReject:
				if !match {
					out = append(out, item)
				}
			case selectFind:
				if match {
					return item, nil
				}
			case selectFindIndex:
				if match {
					return i, nil
				}
			case selectHas:
				if match {
					return true, nil
				}
			}
		}
		if mode == selectWhere || mode == selectReject {
			return out, nil
		}
		return empty, nil
	}
}
