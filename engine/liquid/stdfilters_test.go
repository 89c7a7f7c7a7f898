package liquid

import "testing"

type filterCase struct {
	src  string
	vars map[string]any
	want string // "ERROR" when rendering must fail, "PARSE" when the template must be refused
}

func runFilterCases(t *testing.T, cases []filterCase) {
	t.Helper()
	e := NewEngine()
	for _, tc := range cases {
		tpl, problems := e.Parse(tc.src, Options{})
		if tc.want == "PARSE" {
			if problems == nil {
				t.Errorf("%s: parsed; want it refused", tc.src)
			}
			continue
		}
		if problems != nil {
			t.Errorf("%s: %v", tc.src, problems)
			continue
		}
		got, err := tpl.Render(tc.vars)
		switch {
		case tc.want == "ERROR" && err == nil:
			t.Errorf("%s = %q, want an error", tc.src, got)
		case tc.want != "ERROR" && err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case tc.want != "ERROR" && got != tc.want:
			t.Errorf("%s = %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestArithmeticFilters(t *testing.T) {
	runFilterCases(t, []filterCase{
		{"{{ 9 | divided_by: 2 }}", nil, "4"},
		{"{{ -7 | divided_by: 2 }}", nil, "-4"},
		{"{{ 9.0 | divided_by: 2 }}", nil, "4.5"},
		{"{{ 10 | divided_by: 2.0 }}", nil, "5.0"},
		{"{{ '10' | divided_by: '2' }}", nil, "5"},
		{"{{ 10 | divided_by: 0 }}", nil, "ERROR"},
		{"{{ 10 | divided_by: nosuchthing }}", nil, "ERROR"},
		{"{{ 10.1 | minus: 2.2 }}", nil, "7.9"},
		{"{{ 'foo' | minus: '2.0' }}", nil, "-2.0"},
		{"{{ 10 | plus: 2.0 }}", nil, "12.0"},
		{"{{ '10' | plus: 'foo' }}", nil, "10"},
		{"{{ a | plus: 1 }}", map[string]any{"a": map[string]any{}}, "1"},
		{"{{ 5 | plus: 1, 2 }}", nil, "PARSE"},
		{"{{ 5 | times: 2.1 }}", nil, "10.5"},
		{"{{ 5 | times }}", nil, "PARSE"},
		{"{{ 5 | times: nosuchthing }}", nil, "0"},
		{"{{ 10.1 | modulo: 7.0 }}", nil, "3.1"},
		{"{{ -7 | modulo: 3 }}", nil, "2"},
		{"{{ 5 | modulo: 0 }}", nil, "ERROR"},
		{"{{ 'hello' | abs }}", nil, "0"},
		{"{{ '-5.1' | abs }}", nil, "5.1"},
		{"{{ -5.4 | ceil }}", nil, "-5"},
		{"{{ '5.1' | floor }}", nil, "5"},
		{"{{ 5.666 | round: 1 }}", nil, "5.7"},
		{"{{ 5.666 | round: 'foo' }}", nil, "6"},
		{"{{ 5.666 | round: -2 }}", nil, "0"},
		{"{{ 5 | at_least: 8 }}", nil, "8"},
		{"{{ 5.4 | at_least: 8.9 }}", nil, "8.9"},
		{"{{ 'abc' | at_least: 2 }}", nil, "2"},
		{"{{ 8 | at_most: 5 }}", nil, "5"},
		{"{{ 5 | at_most: nosuchthing }}", nil, "0"},
		{"{% assign x = 7 | divided_by: 2.0 %}{% if x > 3 %}big {{ x }}{% endif %}", nil, "big 3.5"},
	})
}

func TestStringFilters(t *testing.T) {
	runFilterCases(t, []filterCase{
		{"{{ 'hello' | append }}", nil, "PARSE"},
		{"{{ 'hello' | upcase: 5 }}", nil, "PARSE"},
		{"{{ 'hello WORLD' | capitalize }}", nil, "Hello world"},
		{"{{ a | replace: '{', '!' }}", map[string]any{"a": map[string]any{}}, "!}"},
		{"{{ 'hello' | replace: 'll' }}", nil, "heo"},
		{"{{ 'the rain in the train' | remove_last: 'rain' }}", nil, "the rain in the t"},
		{"{{ 'my my' | replace_last: 'my', 'your' }}", nil, "my your"},
		{"{{ 'abc' | replace_last: nosuchthing, '#' }}", nil, "abc#"},
		{"{{ '    one    two three' | truncatewords: 2 }}", nil, "one two..."},
		{"{{ 'one two' | truncatewords: 3 }}", nil, "one two"},
		{"{{ 'one two three' | truncatewords: 0 }}", nil, "one..."},
		{"{{ 'one two three' | truncatewords: 2, nosuchthing }}", nil, "one two"},
		{"{{ 'Ground control to Major Tom.' | truncate: 20, nosuchthing }}", nil, "Ground control to Ma"},
		{"{{ s | strip_newlines }}", map[string]any{"s": "a\r\nb\nc"}, "abc"},
		{"{{ s | newline_to_br }}", map[string]any{"s": "a\r\nb\nc"}, "a<br />\nb<br />\nc"},
		{"{{ s | strip_html }}", map[string]any{"s": "<script>x()</script><div\nclass='a'>test</div><!-- c\n -->"}, "test"},
		{"{{ '_#/.' | base64_encode }}", nil, "XyMvLg=="},
		{"{{ 'XyMvLg==' | base64_decode }}", nil, "_#/."},
		{"{{ s | base64_url_safe_encode }}", map[string]any{"s": "?>?"}, "Pz4_"},
		{"{{ 'Pz4_' | base64_url_safe_decode }}", nil, "?>?"},
		{"{{ '%%%' | base64_decode }}", nil, "ERROR"},
		{"{{ nosuchthing | base64_encode }}", nil, ""},
	})
}

func TestDateFilter(t *testing.T) {
	runFilterCases(t, []filterCase{
		{"{{ 1152098955 | date: '%m/%d/%Y' }}", nil, "07/05/2006"},
		{"{{ '1152098955' | date: '%m/%d/%Y' }}", nil, "07/05/2006"},
		{"{{ '-1152098955' | date: '%m/%d/%Y' }}", nil, "-1152098955"},
		{"{{ 'not a date' | date: '%Y' }}", nil, "not a date"},
		{"{{ 'March 14, 2016' | date: nosuchthing }}", nil, "March 14, 2016"},
		{"{{ nosuchthing | date: '%Y' }}", nil, ""},
		{"{{ 'March 14, 2016' | date }}", nil, "PARSE"},
	})
}

func TestArrayFilters(t *testing.T) {
	list := map[string]any{"a": []any{"b", "a", nil, "C", "B", "A"}}
	runFilterCases(t, []filterCase{
		{"{{ 'hello' | first }}{{ 'hello' | last }}", nil, "ho"},
		{"{{ a | first }}|{{ a | last }}", map[string]any{"a": 12}, "|"},
		{"{% assign x = a | first %}{{ x[0] }}={{ x[1] }}", map[string]any{"a": map[string]any{"c": 2, "b": 1}}, "b=1"},
		{"{{ a | size }}", map[string]any{"a": map[string]any{"a": 1, "b": 2}}, "2"},
		{"{{ 123 | join: '#' }}", nil, "123"},
		{"{{ a | join: nosuchthing }}", map[string]any{"a": []any{"a", "b"}}, "ab"},
		{"{{ a | join }}", map[string]any{"a": []any{"a", []any{"b", 1}}}, "a b 1"},
		{"{{ a | reverse | join: '#' }}", map[string]any{"a": 123}, "123"},
		{"{{ a | concat: b | join: '#' }}", map[string]any{"a": "ab", "b": []any{"c", []any{"d"}}}, "ab#c#d"},
		{"{{ a | concat: nosuchthing }}", map[string]any{"a": []any{"a"}}, "ERROR"},
		{"{{ a | compact | join: '#' }}", list, "b#a#C#B#A"},
		{"{{ a | sort_natural | join: '#' }}", list, "a#A#b#B#C#"},
		{"{{ a | sort | join: '#' }}", map[string]any{"a": []any{3, 1.5, 2}}, "1.5#2#3"},
		{"{{ a | sort }}", map[string]any{"a": []any{1, "4"}}, "ERROR"},
		{"{{ a | sort: 'n' | map: 'n' | join: '#' }}", map[string]any{"a": []any{map[string]any{"n": 2}, map[string]any{}, map[string]any{"n": 1}}}, "1#2#"},
		{"{{ a | uniq | join: '#' }}", map[string]any{"a": []any{"a", 1, "1", 1, map[string]any{}, map[string]any{}}}, "a#1#1#{}"},
		{"{{ a | uniq: 'k' | size }}", map[string]any{"a": []any{map[string]any{"k": 1}, map[string]any{"k": 1}, map[string]any{}}}, "2"},
		{"{{ a | map: 'k' }}", map[string]any{"a": []any{map[string]any{"k": 1}, 5}}, "ERROR"},
		{"{{ 'Liquid' | slice: -2, 99 }}", nil, "id"},
		{"{{ 'Liquid' | slice: -2, -1 }}", nil, ""},
		{"{{ 'hello' | slice: 99 }}", nil, ""},
		{"{{ 'hello' | slice: 2.2 }}", nil, "ERROR"},
		{"{{ 'hello' | slice: 1, nosuchthing }}", nil, "e"},
		{"{{ a | slice: 2, 3 | join: '#' }}", map[string]any{"a": []any{1, 2, 3, 4, 5}}, "3#4#5"},
	})
}

func TestSumFilter(t *testing.T) {
	runFilterCases(t, []filterCase{
		{"{{ a | sum }}", map[string]any{"a": []any{1, []any{2, []any{3}}}}, "6"},
		{"{{ a | sum }}", map[string]any{"a": []any{"-1", "-2.5"}}, "-3.5"},
		{"{{ a | sum }}", map[string]any{"a": []any{}}, "0"},
		{"{{ a | sum: 'k' }}", map[string]any{"a": []any{map[string]any{"k": "1"}, map[string]any{"k": 2}, map[string]any{"x": 3}}}, "3"},
		{"{{ a | sum: 'k' }}", map[string]any{"a": []any{1, 2}}, "ERROR"},
	})
}

func TestSelectionFilters(t *testing.T) {
	hashes := map[string]any{"a": []any{
		map[string]any{"t": "foo", "n": 1}, map[string]any{"t": false, "n": 2},
		map[string]any{"t": nil, "n": 3}, map[string]any{"n": 4},
	}}
	withNil := map[string]any{"a": []any{map[string]any{"x": 1}, nil, map[string]any{"z": 42}}}
	runFilterCases(t, []filterCase{
		{"{{ a | where: 't' | map: 'n' | join: '#' }}", hashes, "1"},
		{"{{ a | where: 't', false | map: 'n' | join: '#' }}", hashes, "2"},
		{"{{ a | where: 't', nil | map: 'n' | join: '#' }}", hashes, "1"},
		{"{{ a | where: 'n', 1.0 | map: 'n' | join: '#' }}", hashes, "1"},
		{"{{ a | where: 'n', '1' | size }}", hashes, "0"},
		{"{{ a | where }}", hashes, "PARSE"},
		{"{{ a | where: 't' }}", map[string]any{"a": 123}, "ERROR"},
		{"{{ a | reject: 't' | map: 'n' | join: '#' }}", hashes, "2#3#4"},
		{"{{ s | reject: 'oo' | size }}", map[string]any{"s": "foobar"}, "0"},
		{"{{ a | reject: 'c' }}", map[string]any{"a": []any{"x", "cat", nil}}, ""},
		{"{% assign b = a | find: 'n', 2 %}{{ b.n }}", hashes, "2"},
		{"{{ a | find_index: 'n', 3 }}", hashes, "2"},
		{"{{ a | find_index: 'n', 9 }}", hashes, ""},
		{"{{ a | find_index: 'oo' }}", map[string]any{"a": []any{"x", "zoo"}}, "1"},
		{"{{ a | has: 'z', 42 }}", withNil, ""},
		{"{{ a | has: 'z' }}", map[string]any{"a": map[string]any{"z": 42}}, "true"},
		{"{{ a | has: nil }}", hashes, "false"},
		{"{{ a | has: 2 }}", map[string]any{"a": []any{1, 2, 3}}, "true"},
		{"{{ a | has: '2' }}", map[string]any{"a": []any{1, 2, 3}}, "ERROR"},
		{"{{ nosuchthing | has: 'z' }}", nil, "false"},
	})
}
