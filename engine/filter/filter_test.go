package filter

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var names = []string{"event", "request", "pipeline"}

// goTypeNames matches Go type spellings that must never reach a user.
var goTypeNames = regexp.MustCompile(`interface \{\}|map\[|\[\]|\bfloat64\b|\bint64\b|\bint\b|\bstring\b|\bbool\b`)

func TestCompileBoolProblems(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		line, col  int
		contains   []string
		notContain []string
	}{
		{"syntax error", "event.a == == 1", 1, 12, []string{"unexpected token"}, nil},
		{"syntax error on line 3", "event.a ==\n\n  )", 3, 3, []string{"unexpected token"}, nil},
		{"one = to compare", `event.event_type = "x"`, 1, 18, []string{`unexpected "="; use == to compare`}, []string{"Operator"}},
		{"one = on line 2", "event.a == 1 &&\n  event.b = 2", 2, 11, []string{"use == to compare"}, nil},
		{"another operator gets no == hint", "event.a == == 1", 1, 12, nil, []string{"use =="}},
		{"unknown name with suggestion", "evnt.a == 1", 1, 1,
			[]string{"unknown name", "evnt", "known names here: event, request, pipeline", `did you mean "event"?`}, nil},
		{"unknown name on line 2", "event.a == 1 &&\n  evnt.b == 2", 2, 3, []string{"evnt", `did you mean "event"?`}, nil},
		{"unknown name after a multibyte rune", `"é" == event.a && evnt.x`, 1, 19, []string{"evnt", `did you mean "event"?`}, nil},
		{"unknown name far from any", "foo == 1", 1, 1, []string{"unknown name", "foo", "known names here"}, []string{"did you mean"}},
		{"unknown function with suggestion", "event.when > noww()", 1, 14, []string{`unknown function "noww"`, `did you mean "now"?`}, nil},
		{"unknown function on line 2", "event.a == 1 &&\n  lenn(event.tags) > 0", 2, 3, []string{`unknown function "lenn"`, `did you mean "len"?`}, nil},
		{"startsWith written as a call", `startswith(event.a, "vip")`, 1, 1, []string{`unknown function "startswith"`}, nil},
		{"invalid regexp built from constants", `event.a matches ("[a-" + "")`, 1, 1, []string{"error parsing regexp: missing closing ]"}, []string{"goroutine", "runtime/debug"}},
		{"empty", "  \n ", 1, 1, []string{"empty"}, nil},
		{"text result", `"abc"`, 1, 1, []string{"must give true or false", "text"}, nil},
		{"integer result", "1 + 2", 1, 1, []string{"must give true or false", "integer"}, nil},
		{"number result", "1.5", 1, 1, []string{"must give true or false", "number"}, nil},
		{"object result", `{"a": 1}`, 1, 1, []string{"must give true or false", "object"}, nil},
		{"array result", "[1, 2]", 1, 1, []string{"must give true or false", "array"}, nil},
		// Written as Liquid: expr's parser said "a map key must be a
		// quoted text..." (a QA run).
		{"liquid braces", "{{ event.event_type }} == 'offer_issued'", 1, 1, []string{"an expr expression, not a Liquid template", "without {{ }}"}, []string{"map key"}},
		// A map literal given to map() is read as a predicate: the
		// parser's words alone said nothing of the parentheses (a QA run).
		{"map literal as a predicate", `any(map(event.l, {"k": #}), .k == 1)`, 1, 22, []string{`write a map as ({"key": #})`}, nil},
		{"a colon elsewhere gets no map hint", `event.a ? {"x": 1} : : 2`, 1, 22, nil, []string{"write a map as"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, problems := CompileBool(tt.src, Options{Names: names})
			if p != nil {
				t.Errorf("CompileBool returned a program along with problems")
			}
			if len(problems) != 1 {
				t.Fatalf("problems = %+v, want 1", problems)
			}
			got := problems[0]
			if got.Line != tt.line || got.Column != tt.col {
				t.Errorf("position = %d:%d, want %d:%d (%q)", got.Line, got.Column, tt.line, tt.col, got.Message)
			}
			for _, c := range tt.contains {
				if !strings.Contains(got.Message, c) {
					t.Errorf("message %q does not contain %q", got.Message, c)
				}
			}
			for _, c := range tt.notContain {
				if strings.Contains(got.Message, c) {
					t.Errorf("message %q contains %q", got.Message, c)
				}
			}
			if m := goTypeNames.FindString(got.Message); m != "" {
				t.Errorf("message %q holds the Go type name %q", got.Message, m)
			}
		})
	}
}

func TestEvalNonBoolMessage(t *testing.T) {
	p, problems := CompileBool("event.v", Options{Names: names})
	if len(problems) > 0 {
		t.Fatalf("CompileBool: %+v", problems)
	}
	tests := []struct {
		v    any
		word string
	}{
		{"s", "text"},
		{1.5, "number"},
		{3, "integer"},
		{int64(3), "integer"},
	}
	for _, tt := range tests {
		_, err := p.Eval(map[string]any{"event": map[string]any{"v": tt.v}})
		if err == nil {
			t.Errorf("Eval with %#v: no error", tt.v)
			continue
		}
		if !strings.Contains(err.Error(), "must give true or false") || !strings.Contains(err.Error(), tt.word) {
			t.Errorf("Eval with %#v: error %q does not say it must give true or false and name %q", tt.v, err, tt.word)
		}
		if m := goTypeNames.FindString(err.Error()); m != "" {
			t.Errorf("Eval with %#v: error %q holds the Go type name %q", tt.v, err, m)
		}
	}
}

// A field read from an event that is a list says a list takes a position,
// not that the value is text (the field's name is).
func TestEvalFieldOfAList(t *testing.T) {
	p, problems := CompileBool(`event.event_type == "offer_issued"`, Options{Names: names})
	if len(problems) > 0 {
		t.Fatalf("CompileBool: %+v", problems)
	}
	_, err := p.Eval(map[string]any{"event": []any{1.0, 2.0}})
	if err == nil || !strings.Contains(err.Error(), "cannot use text where a whole number is needed (a list takes a position such as [0], not a field name") {
		t.Fatalf("Eval on a list: %v; want it to say a list takes a position, not a field name", err)
	}
	// The same message of expr's comes from a range bound that is text.
	r, problems := CompileValue(`1..event.n`, Options{Names: names})
	if len(problems) > 0 {
		t.Fatalf("CompileValue: %+v", problems)
	}
	if _, err := r.Value(map[string]any{"event": map[string]any{"n": "3"}}); err == nil || !strings.Contains(err.Error(), "ranges and slices take whole numbers") {
		t.Fatalf("a range to text: %v; want it to say ranges take whole numbers", err)
	}
}

func TestCheckPaths(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want [][]string
	}{
		{"member path", `request.params.user_id == "x"`, [][]string{{"request", "params", "user_id"}}},
		{"optional chaining", `request?.params?.user_id == "x"`, [][]string{{"request", "params", "user_id"}}},
		{"index with a string", `event["a b"].c == 1`, [][]string{{"event", "a b", "c"}}},
		{"dynamic index stops the path", `event.items[0].id == 1`, [][]string{{"event", "items", "id"}}},
		{"bare name", `pipeline != nil`, [][]string{{"pipeline"}}},
		{"inside a call", `len(event.items) > 0`, [][]string{{"event", "items"}}},
		{"let locals are skipped", `let x = event.a; x.b == 1 && x == nil`, [][]string{{"event", "a"}}},
		{"builtin functions are skipped", `now() > date("2020-01-01")`, nil},
		{"predicate closure", `any(event.items, .n > 1)`, [][]string{{"event", "items"}}},
		{"two paths", `event.a == 1 || request.b == 2`, [][]string{{"event", "a"}, {"request", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][]string
			var mu sync.Mutex
			p, problems := CompileBool(tt.src, Options{Names: names, Check: func(path []string) string {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, append([]string(nil), path...))
				return ""
			}})
			if len(problems) > 0 || p == nil {
				t.Fatalf("CompileBool: %+v", problems)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Check called with %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckProblemPosition(t *testing.T) {
	tests := []struct {
		src       string
		line, col int
	}{
		{`request.params.bad == 1`, 1, 1},
		{"event.a == 1\n  && request.params.bad == 1", 2, 6},
		{`upper(request.params.bad) == "A"`, 1, 7},
		{`"é" == request.params.bad`, 1, 8},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, problems := CompileBool(tt.src, Options{Names: names, Check: func(path []string) string {
				if len(path) == 3 && path[2] == "bad" {
					return "request has no parameter bad"
				}
				return ""
			}})
			if p != nil {
				t.Errorf("a program was returned along with a Check problem")
			}
			want := []Problem{{tt.line, tt.col, "request has no parameter bad"}}
			if !reflect.DeepEqual(problems, want) {
				t.Errorf("problems = %+v, want %+v", problems, want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	ev := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"event": m}
	}
	tests := []struct {
		name string
		src  string
		env  map[string]any
		want string
	}{
		{"and: first part false", `event.type == "offer_issued" && event.n > 2`, ev("type", "points_awarded", "n", 5),
			`event.type == "offer_issued" is false (event.type is "points_awarded")`},
		{"and: second part false", `event.type == "offer_issued" && event.n > 2`, ev("type", "offer_issued", "n", 1),
			`event.n > 2 is false (event.n is 1)`},
		{"and: both false names the first", `event.type == "a" && event.n > 2`, ev("type", "b", "n", 1),
			`event.type == "a" is false (event.type is "b")`},
		{"and: operands on both sides", `event.a == event.b && true`, ev("a", 1, "b", 2),
			`event.a == event.b is false (event.a is 1, event.b is 2)`},
		{"or: both parts", `event.type == "a" || event.n > 2`, ev("type", "b", "n", 1),
			`event.type == "a" is false (event.type is "b"); event.n > 2 is false (event.n is 1)`},
		{"not", `!event.ok`, ev("ok", true), `!event.ok is false (event.ok is true)`},
		{"missing value", `event.missing == "x"`, ev(), `event.missing == "x" is false (event.missing is missing (nil))`},
		{"nested and inside or", `(event.a == 1 && event.b == 2) || event.c == 3`, ev("a", 1, "b", 5, "c", 4),
			`event.b == 2 is false (event.b is 5); event.c == 3 is false (event.c is 4)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, problems := CompileBool(tt.src, Options{Names: names})
			if len(problems) > 0 {
				t.Fatalf("CompileBool: %+v", problems)
			}
			ok, err := p.Eval(tt.env)
			if err != nil || ok {
				t.Fatalf("Eval = %v, %v; the case needs a false filter", ok, err)
			}
			if got := p.Explain(tt.env); got != tt.want {
				t.Errorf("Explain =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
	// A value program has nothing to explain.
	v, problems := CompileValue("event.a", Options{Names: names})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if got := v.Explain(ev("a", 1)); got != "" {
		t.Errorf("Explain on a value program = %q, want empty", got)
	}
}

func TestNowUsesOptionsClock(t *testing.T) {
	fixed := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	opts := Options{Names: names, Now: func() time.Time { return fixed }}
	v, problems := CompileValue("now()", opts)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	got, err := v.Value(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tm, ok := got.(time.Time); !ok || !tm.Equal(fixed) {
		t.Errorf("now() = %v, want %v", got, fixed)
	}
	tests := []struct {
		src  string
		want bool
	}{
		{"now().Year() == 2024 && now().Day() == 6 && now().Hour() == 7", true},
		{`now() > date("2024-05-06T07:08:08Z")`, true},
		{`now() < date("2024-05-06T07:08:10Z")`, true},
		{`now() > date("2030-01-01")`, false},
	}
	for _, tt := range tests {
		p, problems := CompileBool(tt.src, opts)
		if len(problems) > 0 {
			t.Fatalf("%s: %+v", tt.src, problems)
		}
		got, err := p.Eval(nil)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.src, got, err, tt.want)
		}
	}
	// Without Options.Now the real clock is used.
	p, _ := CompileValue("now()", Options{})
	before := time.Now()
	out, err := p.Value(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tm, ok := out.(time.Time); !ok || tm.Before(before) || tm.After(time.Now()) {
		t.Errorf("now() without a clock = %v, want the current time", out)
	}
}

func TestCompileValue(t *testing.T) {
	env := map[string]any{"event": map[string]any{
		"items": []any{
			map[string]any{"id": "a", "n": 1},
			map[string]any{"id": "b", "n": 2},
			map[string]any{"id": "c", "n": 3},
		},
		"name": "ann",
	}}
	tests := []struct {
		src  string
		want any
	}{
		{`map(filter(event.items, .n > 1), .id)`, []any{"b", "c"}},
		{`event.items | filter(.n != 2) | map(.n * 10)`, []any{10, 30}},
		{`upper(event.name) + "!"`, "ANN!"},
		{`{"count": len(event.items), "first": event.items[0].id}`, map[string]any{"count": 3, "first": "a"}},
		{`let n = len(event.items); n * 2`, 6},
		{`event.missing ?? "none"`, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, problems := CompileValue(tt.src, Options{Names: names})
			if len(problems) > 0 {
				t.Fatalf("CompileValue: %+v", problems)
			}
			if p.Source() != tt.src {
				t.Errorf("Source() = %q", p.Source())
			}
			got, err := p.Value(env)
			if err != nil {
				t.Fatalf("Value: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Value = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestConcurrentEval(t *testing.T) {
	p, problems := CompileBool(`event.n % 2 == 0 && event.tag in ["a", "b"]`, Options{Names: names})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				tag := []string{"a", "z"}[g%2]
				env := map[string]any{"event": map[string]any{"n": i, "tag": tag}}
				want := i%2 == 0 && tag == "a"
				got, err := p.Eval(env)
				if err != nil || got != want {
					t.Errorf("goroutine %d, n=%d: Eval = %v, %v; want %v", g, i, got, err, want)
					return
				}
				if !want && p.Explain(env) == "" {
					t.Errorf("goroutine %d, n=%d: empty explanation", g, i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A function or operator given a value of the wrong type says which one,
// what it needs and what it got, not the Go type assertion expr recovers.
func TestRunErrorNamesTheFunctionAndTypes(t *testing.T) {
	env := map[string]any{"event": map[string]any{
		"n": 20991231, "f": 1.5, "s": "x", "b": true, "o": map[string]any{}, "l": []any{1},
		"empty": "", "padded": " 5", "half": "5.5", "big": json.Number("12345678901234567891"),
	}}
	tests := []struct {
		src  string
		want string
	}{
		{`date(event.n)`, `date() needs text, but got a number`},
		{`date(event.o)`, `date() needs text, but got an object`},
		{`date(event.missing)`, `date() needs text, but got null (missing)`},
		{`date(event.s, event.n)`, `date() needs text, but got a number`},
		{`map(event.l, date(#))`, `date() needs text, but got a number`},
		{`upper(event.b)`, `upper() needs text, but got true/false`},
		{`split (event.f, ",")`, `split() needs text, but got a number`},
		{`event.n matches "T[0-9:.]+$"`, `"matches" needs text, but got a number`},
		{`event.s matches event.n`, `"matches" needs text, but got a number`},
		{`event.s startsWith event.l`, `"startsWith" needs text, but got a list`},
		{`!event.s`, `"!" needs true or false, but got text`},
		{`filter(event.n, true)`, `filter() needs a list, but got a number`},
		{`any(event.b, # == 1)`, `any() needs a list, but got true/false`},
		{`len(event.n)`, `len() cannot take a number`},
		// CSV values are text: int() and float() of text that is no number.
		{`int(event.empty)`, `int() cannot read "" as a whole number`},
		{`int(event.padded)`, `int() cannot read " 5" as a whole number (it has spaces around it)`},
		{`int(event.half)`, `int() cannot read "5.5" as a whole number (it has a fraction; float() reads it)`},
		{`int(event.s)`, `int() cannot read "x" as a whole number`},
		{`float(event.s) > 1`, `float() cannot read "x" as a number`},
		{`int(event.b)`, `int() needs a number or text, but got true/false`},
		{`int(event.l)`, `int() needs a number or text, but got a list`},
		{`float(event.o)`, `float() needs a number or text, but got an object`},
		{`float(event.missing)`, `float() needs a number or text, but got null (missing)`},
		{`int(event.missing)`, `int() needs a number or text, but got null (missing)`},
		{`int(event.big)`, `int() cannot take a whole number too large to compute with (over 19 digits, kept exactly as an id would be); float(string(x)) reads it, rounded`},
		{`float(event.big)`, `float() cannot take a whole number too large to compute with (over 19 digits, kept exactly as an id would be); float(string(x)) reads it, rounded`},
		{`int("12345678901234567891")`, `int() cannot read "12345678901234567891" as a whole number (it is past the range of whole numbers, 19 digits; float() reads it, rounded)`},
		{`event.big > 5`, `cannot apply > to a whole number too large to compute with (over 19 digits, kept exactly as an id would be) and a number`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, problems := CompileValue(tt.src, Options{Names: names})
			if len(problems) > 0 {
				t.Fatalf("CompileValue: %+v", problems)
			}
			_, err := p.Value(env)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// dateOrNil reads what date() reads, and gives nil where date() fails, so
// an expression can leave out an item whose date cannot be read.
func TestDateOrNil(t *testing.T) {
	p, problems := CompileValue(`dateOrNil(event.v)`, Options{Names: names})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	d, problems := CompileValue(`date(event.v)`, Options{Names: names})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	tests := []struct {
		v    any
		want any // a time.Time, or nil
	}{
		{"2026-12-31T23:59:59Z", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"2026-12-31T23:59:59.0000000Z", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"2026-12-31T23:59:59.5+01:00", time.Date(2026, 12, 31, 22, 59, 59, 5e8, time.UTC)},
		{"2026-12-31", time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"", nil},
		{"2099-12-31t23:59:59z", nil}, // Go reads RFC 3339 in capitals only
		{"2026-12-31T23:59:59.0000000", nil},
		{"2026-13-01T00:00:00Z", nil},
		{"soon", nil},
		{20991231, nil},
		{1.5, nil},
		{true, nil},
		{nil, nil},
		{map[string]any{}, nil},
		{[]any{"2026-12-31"}, nil},
	}
	for _, tt := range tests {
		env := map[string]any{"event": map[string]any{"v": tt.v}}
		got, err := p.Value(env)
		if err != nil {
			t.Errorf("dateOrNil(%#v): error %v, want none", tt.v, err)
			continue
		}
		if tt.want == nil {
			if got != nil {
				t.Errorf("dateOrNil(%#v) = %v, want nil", tt.v, got)
			}
			if _, err := d.Value(env); err == nil {
				t.Errorf("date(%#v) reads it; dateOrNil must read what date() reads", tt.v)
			}
			continue
		}
		tm, ok := got.(time.Time)
		if !ok || !tm.Equal(tt.want.(time.Time)) {
			t.Errorf("dateOrNil(%#v) = %v, want %v", tt.v, got, tt.want)
		}
		if same, err := d.Value(env); err != nil || !same.(time.Time).Equal(tm) {
			t.Errorf("date(%#v) = %v, %v; dateOrNil gave %v", tt.v, same, err, tm)
		}
	}

	// What it is for: an item whose date cannot be read is left out
	// instead of failing the expression for every item.
	opts := Options{Names: names, Now: func() time.Time { return time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC) }}
	keep, problems := CompileValue(`map(filter(event.items, let at = dateOrNil(.ends); at != nil && at > now()), .id)`, opts)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	items := []any{
		map[string]any{"id": "future", "ends": "2099-12-31T23:59:59Z"},
		map[string]any{"id": "past", "ends": "2025-01-01T00:00:00Z"},
		map[string]any{"id": "empty", "ends": ""},
		map[string]any{"id": "number", "ends": 20991231},
	}
	got, err := keep.Value(map[string]any{"event": map[string]any{"items": items}})
	if err != nil || !reflect.DeepEqual(got, []any{"future"}) {
		t.Errorf("kept %v, %v; want [future]", got, err)
	}

	for src, want := range map[string]string{
		`dateOrNil()`:          "dateOrNil",
		`dateOrNil("a", "b")`:  "dateOrNil",
		`dateOrNl(event.v)`:    `did you mean "dateOrNil"?`,
		`event.v == dateornil`: "unknown name",
	} {
		_, problems := CompileValue(src, Options{Names: names})
		if len(problems) != 1 || !strings.Contains(problems[0].Message, want) {
			t.Errorf("%s: problems %+v, want one saying %q", src, problems, want)
		}
	}
	if !IsFunction("dateOrNil") {
		t.Error(`IsFunction("dateOrNil") = false; a step called so could not be read in an expression`)
	}
}

// A filter that fails to run names the part that failed and what its sides
// read, as the filter runs: "cannot apply >= to null (missing) and a
// number" alone named neither the comparison nor the misspelt field (a QA
// run). Parts that do not run (after a false &&) are not blamed.
func TestFilterErrorNamesThePartThatFailed(t *testing.T) {
	env := map[string]any{"event": map[string]any{"type": "points", "points": map[string]any{"amount": 50, "text": "5", "long": strings.Repeat("x", 5000)}}}
	tests := []struct {
		src  string
		want string
	}{
		{`event.points.amout >= 100`, `cannot apply >= to null (missing) and a number, in event.points.amout >= 100 (event.points.amout is missing (nil))`},
		{`event.type == "points" && event.points.text >= 10`, `cannot apply >= to text and a number, in event.points.text >= 10 (event.points.text is "5")`},
		{`event.type == "other" || !(event.points.amout > 1)`, `cannot apply > to null (missing) and a number, in event.points.amout > 1 (event.points.amout is missing (nil))`},
		// A side's value is cut: a list of 5,000 tags ran to 54 KB.
		{`event.points.long > 1`, `cannot apply > to text and a number, in event.points.long > 1 (event.points.long is "` + strings.Repeat("x", 199) + `…)`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, problems := CompileBool(tt.src, Options{Names: names})
			if len(problems) > 0 {
				t.Fatalf("CompileBool: %+v", problems)
			}
			_, err := p.Eval(env)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v\nwant  %q", err, tt.want)
			}
		})
	}
}

// A side is masked before it is cut, so a secret across the cut is hidden
// whole rather than its first part printed (a security review).
func TestFilterErrorMasksBeforeCutting(t *testing.T) {
	const secret = "PartnerKey-777"
	mask := func(s string) string { return strings.ReplaceAll(s, secret, "****") }
	p, problems := CompileBool(`(event.prefix + "`+secret+`") > 5`, Options{Names: names, Mask: mask})
	if len(problems) > 0 {
		t.Fatalf("CompileBool: %+v", problems)
	}
	for n := 180; n < 200; n++ {
		_, err := p.Eval(map[string]any{"event": map[string]any{"prefix": strings.Repeat("a", n)}})
		if err == nil || strings.Contains(mask(err.Error()), secret[:5]) {
			t.Fatalf("a prefix of %d: %v", n, err)
		}
	}
}
