package liquid

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// parseOK parses src and fails the test on any problem.
func parseOK(t *testing.T, e *Engine, src string, opts Options) *Template {
	t.Helper()
	tpl, problems := e.Parse(src, opts)
	if len(problems) > 0 {
		t.Fatalf("Parse(%q): unexpected problems %+v", src, problems)
	}
	if tpl == nil {
		t.Fatalf("Parse(%q): nil template without problems", src)
	}
	return tpl
}

func TestBrazeRewrites(t *testing.T) {
	vars := map[string]any{
		"user_id":                "u-42",
		"custom_attribute":       map[string]any{"favourite colour": "teal", "tier": "gold"},
		"api_trigger_properties": map[string]any{"offer_id": "o-9"},
		"event":                  map[string]any{"n": 3, "name": "Ann"},
		"x":                      "X",
	}
	tests := []struct {
		name string
		src  string
		want string
		refs [][]string // paths Refs must report, in order
	}{
		{"attribute in braces", "{{${user_id}}}", "u-42", [][]string{{"user_id"}}},
		{"attribute with spaces", "id={{ ${user_id} }}.", "id=u-42.", [][]string{{"user_id"}}},
		{"index form for a name with a space", "{{ custom_attribute.${favourite colour} }}", "teal",
			[][]string{{"custom_attribute", "favourite colour"}}},
		{"plain attribute after a dot", "{{custom_attribute.${tier}}}", "gold", [][]string{{"custom_attribute", "tier"}}},
		{"trigger properties", "{{api_trigger_properties.${offer_id}}}", "o-9", [][]string{{"api_trigger_properties", "offer_id"}}},
		{"attribute inside a tag", "{% if ${user_id} == 'u-42' %}yes{% else %}no{% endif %}", "yes", [][]string{{"user_id"}}},
		{"nested braces in a tag", "{% if {{event.n}} > 1 %}big{% else %}small{% endif %}", "big", [][]string{{"event", "n"}}},
		{"nested braces in a tag, false branch", "{% if {{event.n}} > 5 %}big{% else %}small{% endif %}", "small", [][]string{{"event", "n"}}},
		{"line breaks inside an object", "{{\n  event.n\n  | plus: 1\n}}", "4", [][]string{{"event", "n"}}},
		{"CRLF inside a tag", "{%\r\n if x == 'X'\r\n%}y{% endif %}", "y", [][]string{{"x"}}},
		{"line break between filters", "{{ event.name\n| upcase\n| append: '!' }}", "ANN!", [][]string{{"event", "name"}}},
		{"raw block left alone", "{% raw %}{{ x }} ${user_id} {% if %}{% endraw %}", "{{ x }} ${user_id} {% if %}", nil},
		{"raw block then markup", "{% raw %}{{ x }}{% endraw %}={{ x }}", "{{ x }}=X", [][]string{{"x"}}},
		{"comment block skipped", "{% comment %}{{ x {% endcomment %}ok", "ok", nil},
		{"trim markers", "a  {{- x -}}  b", "aXb", [][]string{{"x"}}},
		{"no markup at all", "plain ${user_id} text", "plain ${user_id} text", nil},
	}
	e := NewEngine()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := parseOK(t, e, tt.src, Options{})
			got, err := tpl.Render(vars)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.src, got, tt.want)
			}
			var paths [][]string
			for _, r := range tpl.Refs() {
				paths = append(paths, r.Path)
			}
			if !reflect.DeepEqual(paths, tt.refs) {
				t.Errorf("Refs paths = %q, want %q", paths, tt.refs)
			}
			if tpl.Source() != tt.src {
				t.Errorf("Source() = %q, want the original %q", tpl.Source(), tt.src)
			}
		})
	}
}

func TestRefOffsetsPointIntoOriginal(t *testing.T) {
	tests := []struct {
		src  string
		want []int // offsets of each ref, in order
		at   []string
	}{
		{"{{${user_id}}}", []int{4}, []string{"user_id"}},
		{"ab {{ custom_attribute.${favourite colour} }} {{ x }}", []int{6, 49}, []string{"custom_attribute", "x"}},
		{"{% if {{event.n}} > 1 %}{{ y }}{% endif %}", []int{8, 27}, []string{"event", "y"}},
		{"line1\n{{\n  event.n }}", []int{11}, []string{"event"}},
		// offset: continue reads no variable; a variable named continue is one
		{"{% for i in xs offset: continue %}{% endfor %}{{ continue }}", []int{12, 49}, []string{"xs", "continue"}},
	}
	e := NewEngine()
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tpl := parseOK(t, e, tt.src, Options{})
			refs := tpl.Refs()
			if len(refs) != len(tt.want) {
				t.Fatalf("Refs() = %+v, want %d refs", refs, len(tt.want))
			}
			for i, r := range refs {
				if r.Offset != tt.want[i] {
					t.Errorf("ref %d (%q) offset = %d, want %d", i, r.Path, r.Offset, tt.want[i])
				}
				if !strings.HasPrefix(tt.src[r.Offset:], tt.at[i]) {
					t.Errorf("ref %d offset %d points at %q, want %q", i, r.Offset, tt.src[r.Offset:], tt.at[i])
				}
			}
		})
	}
}

func TestParseProblems(t *testing.T) {
	unknownVars := func(path []string) string {
		switch path[0] {
		case "evnt", "nope", "items":
			return "unknown variable " + strings.Join(path, ".")
		}
		return ""
	}
	tests := []struct {
		name     string
		src      string
		offset   int    // want Problem.Offset of the first problem
		at       string // the original source at that offset starts with this
		contains []string
		count    int // want this many problems
	}{
		{"unknown filter with suggestion", "a {{ event.n | upcas }}", 15, "upcas",
			[]string{`unknown filter "upcas"`, `did you mean "upcase"?`}, 1},
		{"unknown filter default typo", "{{ x | defualt: 'a' }}", 7, "defualt",
			[]string{`unknown filter "defualt"`, `did you mean "default"?`}, 1},
		{"unknown filter without suggestion", "{{ x | zzzzzz }}", 7, "zzzzzz", []string{`unknown filter "zzzzzz"`}, 1},
		{"unknown filter after a ${} rewrite", "{{${user_id} | nope}}", 15, "nope", []string{`unknown filter "nope"`}, 1},
		{"unknown filter after an index rewrite", "{{ custom_attribute.${favourite colour} | nope }}", 42, "nope",
			[]string{`unknown filter "nope"`}, 1},
		{"unknown filter in assign", "{% assign y = x | nope %}", 18, "nope", []string{`unknown filter "nope"`}, 1},
		{"unknown filter on a later line", "a\nb {{ x }}\n{{ x\n | nope }}", 20, "nope", []string{`unknown filter "nope"`}, 1},
		{"unknown tag", "a {% frob %}", 5, "frob", []string{`unknown tag "frob"`}, 1},
		{"unknown tag with suggestion", "{% iff x %}{% endif %}", 3, "iff", []string{`unknown tag "iff"`, `did you mean "if"?`}, 1},
		{"end tag with swapped letters", "{% if x %}y{% endfi %}", 14, "endfi", []string{`unknown tag "endfi"`, `did you mean "endif"?`}, 1},
		{"a Content Block written as a tag", "{% content_blocks footer %}", 3, "content_blocks", []string{`unknown tag "content_blocks"`, "{{content_blocks.${name}}}"}, 1},
		{"unknown tag after a raw copy of it", "{% raw %}{% frob %}{% endraw %}{% frob %}", 34, "frob", []string{`unknown tag "frob"`}, 1},
		{"unclosed object", "Hi {{ event.n }} and {{ event.n", 21, "{{", []string{"{{ is not closed", "}}"}, 1},
		{"unclosed tag", "x {% if a ", 2, "{%", []string{"{% is not closed", "%}"}, 1},
		{"unclosed raw", "{{ x }}{% raw %}{{ y }}", 7, "{% raw", []string{"{% raw %} is not closed", "{% endraw %}"}, 1},
		{"unclosed comment", "{% comment %}never ends", 0, "{% comment", []string{"{% endcomment %}"}, 1},
		{"unknown variable", "Hello {{ evnt.user.id }}", 9, "evnt", []string{"unknown variable evnt.user.id"}, 1},
		{"unknown variable in filter argument", "{{ x | append: nope }}", 15, "nope", []string{"unknown variable nope"}, 1},
		{"unknown variable in a for collection", "{% for i in items %}{{ i }}{% endfor %}", 12, "items", []string{"unknown variable items"}, 1},
		{"unknown variable as ${}", "x {{${nope}}}", 6, "nope", []string{"unknown variable nope"}, 1},
		{"unknown variable in nested braces", "{% if {{nope}} > 1 %}{% endif %}", 8, "nope", []string{"unknown variable nope"}, 1},
		{"unknown filter and unknown variable", "{{ nope | zzzzzz }}", 3, "nope", nil, 2},
	}
	e := NewEngine()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, problems := e.Parse(tt.src, Options{Check: unknownVars})
			if tpl != nil {
				t.Errorf("Parse returned a template along with problems")
			}
			if len(problems) != tt.count {
				t.Fatalf("problems = %+v, want %d", problems, tt.count)
			}
			// the problem we look for is the one at tt.offset
			var p *Problem
			for i := range problems {
				if problems[i].Offset == tt.offset {
					p = &problems[i]
				}
			}
			if p == nil {
				t.Fatalf("no problem at offset %d (%q); got %+v", tt.offset, tt.src[min(tt.offset, len(tt.src)):], problems)
			}
			if !strings.HasPrefix(tt.src[p.Offset:], tt.at) {
				t.Errorf("offset %d points at %q, want %q", p.Offset, tt.src[p.Offset:], tt.at)
			}
			for _, c := range tt.contains {
				if !strings.Contains(p.Message, c) {
					t.Errorf("message %q does not contain %q", p.Message, c)
				}
			}
		})
	}
}

func TestIncludeRefused(t *testing.T) {
	src := "a {% include 'header' %} b"
	tpl, problems := NewEngine().Parse(src, Options{})
	if tpl != nil || len(problems) != 1 {
		t.Fatalf("Parse(%q) = %v, %+v; want one problem", src, tpl, problems)
	}
	p := problems[0]
	if !strings.Contains(p.Message, "include") || !strings.Contains(p.Message, "cannot read files") {
		t.Errorf("message %q does not say include cannot read files", p.Message)
	}
	// The problem must sit on the include tag ("{%" at 2 .. name at 5).
	if p.Offset < 2 || p.Offset > 5 {
		t.Errorf("offset %d is not on the include tag", p.Offset)
	}
}

func TestLocalsAreNotChecked(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // the variables Check is asked about (first path element)
	}{
		{"assign", "{% assign greeting = 'hi' | append: name %}{{ greeting }}", []string{"name"}},
		{"capture", "{% capture c %}{{ name }}{% endcapture %}{{ c | upcase }}", []string{"name"}},
		{"for", "{% for it in list %}{{ it.id }}{{ forloop.index }}{% endfor %}", []string{"list"}},
		{"for with range", "{% for i in (1..max) %}{{ i }}{% endfor %}", []string{"max"}},
		{"named filter arguments are not variables", "{{ name | truncate: 5 }}", []string{"name"}},
		{"keywords are not variables", "{% if a and b or empty == blank or nil == null %}{% endif %}", []string{"a", "b"}},
		{"for parameters are not variables", "{% for x in xs limit: 2 offset: 1 reversed %}{% endfor %}", []string{"xs"}},
		{"hoisted literals are not variables", "{{ text | split: \"\n\" | join: 5.0 }}", []string{"text"}},
	}
	e := NewEngine()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			tpl, problems := e.Parse(tt.src, Options{Check: func(path []string) string {
				asked = append(asked, path[0])
				return "should not be reported: " + strings.Join(path, ".")
			}})
			if len(problems) != len(tt.want) {
				t.Errorf("problems = %+v, want %d", problems, len(tt.want))
			}
			if !reflect.DeepEqual(asked, tt.want) {
				t.Errorf("Check was asked about %q, want %q", asked, tt.want)
			}
			if len(tt.want) == 0 && tpl == nil {
				t.Errorf("template is nil with no problems expected")
			}
		})
	}
}

// Literals osteele's scanner cannot take as written (a line break in a
// string, a zero fraction it would drop) render as Liquid renders them.
func TestHoistedLiterals(t *testing.T) {
	tests := []struct{ src, want string }{
		{"{{ \"a\nb\nc\" | newline_to_br }}", "a<br />\nb<br />\nc"},
		{"{{ \"a\r\nb\" | strip_newlines }}", "ab"},
		{"{% assign parts = text | split: \"\n\" %}{{ parts | join: '+' }}", "x+y"},
		{"{{ 'single\nquoted' }}", "single\nquoted"},
		{"{{ 5.0 }} {{ 5 }} {{ 2.50 }}", "5.0 5 2.5"},
		{"{{ 0.0 | default: 'none' }}", "0.0"},
		{"{% if n == 3.0 %}three{% endif %}", "three"},
		{"{% for i in (1..3) %}{{ i }}{% endfor %}", "123"},
	}
	e := NewEngine()
	vars := map[string]any{"text": "x\ny", "n": 3}
	for _, tt := range tests {
		tpl := parseOK(t, e, tt.src, Options{})
		if got, err := tpl.Render(vars); err != nil || got != tt.want {
			t.Errorf("%q = %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
	if _, ok := vars[literalPrefix+"0"]; ok || len(vars) != 2 {
		t.Error("rendering wrote the hoisted literals into the caller's variables")
	}
}

func TestTypedValue(t *testing.T) {
	vars := map[string]any{"event": map[string]any{
		"tags": []any{"a", "b"},
		"n":    3,
		"f":    1.5,
		"obj":  map[string]any{"k": "<&>", "list": []any{1, 2}},
	}}
	tests := []struct {
		src   string
		typed bool
		want  any
	}{
		{"{{ event.tags }}", true, []any{"a", "b"}},
		{"{{ event.n }}", true, 3},
		{"  {{- event.f -}}\n", true, 1.5},
		{"{{ event.n | plus: 1 }}", true, 4}, // whole numbers add as integers (int, as jsonval gives them), as in Liquid
		{"{{ event.obj }}", true, map[string]any{"k": "<&>", "list": []any{1, 2}}},
		{"x {{ event.n }}", false, "x 3"},
		{"{{ event.n }}{{ event.n }}", false, "33"},
		{"{{ event.missing }}", true, nil},
		{"{{ event.obj | json }}", true, `{"k":"<&>","list":[1,2]}`},
		{"{% if true %}{{ event.n }}{% endif %}", false, "3"},
	}
	e := NewEngine()
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tpl := parseOK(t, e, tt.src, Options{Typed: true})
			if tpl.Typed() != tt.typed {
				t.Errorf("Typed() = %v, want %v", tpl.Typed(), tt.typed)
			}
			got, err := tpl.Value(vars)
			if err != nil {
				t.Fatalf("Value: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Value = %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
	// Without Typed the same single expression renders as text.
	tpl := parseOK(t, e, "{{ event.n }}", Options{})
	if tpl.Typed() {
		t.Errorf("Typed() is true without Options.Typed")
	}
	if got, err := tpl.Value(vars); err != nil || got != "3" {
		t.Errorf("untyped Value = %#v, %v; want \"3\"", got, err)
	}
}

func TestFilters(t *testing.T) {
	vars := map[string]any{
		"s":      "hey<>hi",
		"p":      "hey<&>hi",
		"q":      "a\"b\\c\nd<e>&",
		"obj":    map[string]any{"html": "<b>&amp;</b>", "n": 1},
		"list":   []any{1, "x", nil},
		"raw":    `{"a":[1,2],"b":"x"}`,
		"nil":    nil,
		"empty":  "",
		"f":      false,
		"arr":    []any{},
		"spaces": "  ",
		"zero":   0,
		"word":   "w",
		// jsonval keeps a whole number past int64's range as written.
		"big":    json.Number("12345678901234567891"),
		"bigs":   []any{json.Number("12345678901234567891"), json.Number("12345678901234567890"), json.Number("12345678901234567891")},
		"offers": []any{map[string]any{"id": json.Number("12345678901234567890"), "name": "a"}, map[string]any{"id": json.Number("12345678901234567891"), "name": "b"}},
	}
	tests := []struct {
		name, src, want string
	}{
		{"a big id as written", "{{ big }}", "12345678901234567891"},
		{"a big id in arithmetic", "{{ big | plus: 1 }}", "12345678901234567000.0"}, // a float, as Ruby's would be
		{"a big id compared", "{% if big > 5 %}big{% endif %}", "big"},
		// Two ids one apart, equal as floats, stay apart.
		{"big ids apart", "{% if bigs[0] == bigs[1] %}same{% else %}apart{% endif %}", "apart"},
		{"big ids ordered", "{% if bigs[0] > bigs[1] %}gt{% endif %}", "gt"},
		{"big ids unique", "{{ bigs | uniq | size }}", "2"},
		{"big ids sorted", "{{ bigs | sort | first }}", "12345678901234567890"},
		{"where by a big id", "{{ offers | where: 'id', big | map: 'name' | join }}", "b"},
		{"url_escape", "{{ s | url_escape }}", "hey%3C%3Ehi"},
		{"url_escape keeps reserved", "{{ 'a b/c?d=e&f' | url_escape }}", "a%20b/c?d=e&f"},
		{"url_param_escape", "{{ p | url_param_escape }}", "hey%3C%26%3Ehi"},
		{"url_param_escape reserved", "{{ 'a b/c?d=e' | url_param_escape }}", "a%20b%2Fc%3Fd%3De"},
		{"url_param_escape utf-8", "{{ 'é' | url_param_escape }}", "%C3%A9"},
		{"json_escape", "{{ q | json_escape }}", `a\"b\\c\nd<e>&`},
		{"json_escape in a JSON body", `{"m":"{{ q | json_escape }}"}`, `{"m":"a\"b\\c\nd<e>&"}`},
		{"json object without HTML escaping", "{{ obj | json }}", `{"html":"<b>&amp;</b>","n":1}`},
		{"json array", "{{ list | json }}", `[1,"x",null]`},
		{"json string", "{{ p | json }}", `"hey<&>hi"`},
		{"as_json_string", "{{ obj | as_json_string }}", `{"html":"<b>&amp;</b>","n":1}`},
		{"json_parse", "{% assign o = raw | json_parse %}{{ o.b }}-{{ o.a | size }}-{{ o.a[1] }}", "x-2-2"},
		{"json_parse then json", "{{ raw | json_parse | json }}", `{"a":[1,2],"b":"x"}`},
		{"default nil", "[{{ nil | default: 'D' }}]", "[D]"},
		{"default missing", "[{{ missing | default: 'D' }}]", "[D]"},
		{"default empty string", "[{{ empty | default: 'D' }}]", "[D]"},
		{"default false", "[{{ f | default: 'D' }}]", "[D]"},
		{"default empty array", "[{{ arr | default: 'D' }}]", "[D]"},
		{"default keeps whitespace", "[{{ spaces | default: 'D' }}]", "[  ]"},
		{"default keeps zero", "[{{ zero | default: 'D' }}]", "[0]"},
		{"default keeps a value", "[{{ word | default: 'D' }}]", "[w]"},
	}
	e := NewEngine()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := parseOK(t, e, tt.src, Options{})
			got, err := tpl.Render(vars)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestJSONParseError(t *testing.T) {
	tpl := parseOK(t, NewEngine(), "{{ raw | json_parse }}", Options{})
	out, err := tpl.Render(map[string]any{"raw": "{not json"})
	if err == nil {
		t.Fatalf("Render = %q, want an error", out)
	}
	if !strings.Contains(err.Error(), "json_parse") || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("error %q does not name json_parse and say the input is not JSON", err)
	}
}

func TestBrazeFiltersAreKnown(t *testing.T) {
	e := NewEngine()
	for _, name := range []string{"json", "as_json_string", "json_escape", "json_parse", "url_escape", "url_param_escape", "default", "upcase"} {
		if !e.HasFilter(name) {
			t.Errorf("HasFilter(%q) = false", name)
		}
	}
	if e.HasFilter("no_such_filter") {
		t.Errorf("HasFilter(no_such_filter) = true")
	}
}

func TestOutputLimit(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		src     string
		vars    map[string]any
		wantErr bool
	}{
		{"object over the limit", 10, "{{ x }}", map[string]any{"x": strings.Repeat("a", 11)}, true},
		{"loop over the limit", 10, "{% for i in (1..11) %}a{% endfor %}", nil, true},
		{"text plus object over the limit", 10, "0123456789{{ x }}", map[string]any{"x": "a"}, true},
		{"exactly the limit", 10, "{% for i in (1..10) %}a{% endfor %}", nil, false},
		{"default limit", DefaultMaxOutput, "{% for i in (1..n) %}{{ chunk }}{% endfor %}",
			map[string]any{"n": DefaultMaxOutput/1024 + 1, "chunk": strings.Repeat("x", 1024)}, true},
		{"default limit not reached", DefaultMaxOutput, "{% for i in (1..n) %}{{ chunk }}{% endfor %}",
			map[string]any{"n": DefaultMaxOutput / 1024, "chunk": strings.Repeat("x", 1024)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine()
			if e.maxOutput != DefaultMaxOutput {
				t.Fatalf("NewEngine maxOutput = %d, want DefaultMaxOutput", e.maxOutput)
			}
			e.maxOutput = tt.max
			tpl := parseOK(t, e, tt.src, Options{})
			out, err := tpl.Render(tt.vars)
			if !tt.wantErr {
				if err != nil || len(out) != tt.max {
					t.Fatalf("Render = %d bytes, %v; want %d bytes and no error", len(out), err, tt.max)
				}
				return
			}
			if err == nil {
				t.Fatalf("Render = %d bytes and no error, want an error over %d bytes", len(out), tt.max)
			}
			if out != "" {
				t.Errorf("Render returned %d bytes along with the error", len(out))
			}
			if !strings.Contains(err.Error(), "larger than the limit") || !strings.Contains(err.Error(), fmt.Sprint(tt.max)) {
				t.Errorf("error %q does not state the limit of %d bytes", err, tt.max)
			}
		})
	}
}

func TestConcurrentRender(t *testing.T) {
	const src = `{% capture greeting %}Hi {{ name | upcase }}{% endcapture %}{{ greeting }}:` +
		`{% for it in items %}{{ it.id }}={{ it.n | plus: 1 }}{% unless forloop.last %},{% endunless %}{% endfor %};` +
		`{% case kind %}{% when 'a' %}A{% when 'b' %}B{% else %}Z{% endcase %};` +
		`{{ ${user_id} | default: 'anon' }};{{ note | json_escape }}`
	tpl := parseOK(t, NewEngine(), src, Options{})

	const goroutines, rounds = 32, 200
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				items := make([]any, r%4)
				parts := make([]string, len(items))
				for i := range items {
					id := fmt.Sprintf("g%d-%d", g, i)
					items[i] = map[string]any{"id": id, "n": g*1000 + r + i}
					parts[i] = fmt.Sprintf("%s=%d", id, g*1000+r+i+1)
				}
				kind := []string{"a", "b", "c"}[(g+r)%3]
				vars := map[string]any{
					"name":  fmt.Sprintf("user%d", g),
					"items": items,
					"kind":  kind,
					"note":  fmt.Sprintf("say \"%d\"", r),
				}
				user := "anon"
				if r%2 == 0 {
					user = fmt.Sprintf("u%d", g)
					vars["user_id"] = user
				}
				want := fmt.Sprintf(`Hi USER%d:%s;%s;%s;say \"%d\"`, g, strings.Join(parts, ","),
					map[string]string{"a": "A", "b": "B", "c": "Z"}[kind], user, r)
				got, err := tpl.Render(vars)
				if err != nil || got != want {
					errs <- fmt.Sprintf("goroutine %d round %d: got %q, %v; want %q", g, r, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// Braze's own filters, with the outputs Braze's documentation gives
// (specs/braze.md §6) and known digests.
func TestBrazeFilters(t *testing.T) {
	tests := []struct{ src, want string }{
		{"{{ 145 | money }}", "$145.00"}, // Braze does not shift to cents
		{"{{ 1.5 | money }} {{ '20' | money }} {{ -3 | money }}", "$1.50 $20.00 -$3.00"},
		{"{{ 123456 | number_with_delimiter }}", "123,456"},
		{"{{ 1234567.25 | number_with_delimiter }} {{ 999 | number_with_delimiter }} {{ -1000 | number_with_delimiter }}", "1,234,567.25 999 -1,000"},
		{"{{ 'hey<>hi' | url_escape }}", "hey%3C%3Ehi"},
		{"{{ 'hey<&>hi' | url_param_escape }}", "hey%3C%26%3Ehi"},
		{"{{ 'google search' | url_encode }}", "google+search"},
		{"{{ 'hello' | sha2 }}", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		{"{{ 'hello' | md5 }}", "5d41402abc4b2a76b9719d911017c592"},
		{"{{ 'hello' | sha1 }}", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"},
		{"{{ 'hello' | hmac_sha256_hex: 'key' }}", "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"},
		{"{{ 'hello' | hmac_sha256_base64: 'key' }}", "kwezuRXvtRcf8U2MtV+8x5jGwO8UVtZt7RpqpyOli3s="},
		{"{{ 'hello' | hmac_sha1_hex: 'key' }} {{ 'hello' | hmac_sha1: 'key' }}", "b34ceac4516ff23a143e61d79d0fa7a4fbe5f266 b34ceac4516ff23a143e61d79d0fa7a4fbe5f266"},
		{"{{ hash | property_accessor: key }}", "b-value"},
		{"{{ 0 | time_zone: 'America/New_York' | date: '%Y-%m-%d %H:%M' }}", "1969-12-31 19:00"},
		{"{{ 0 | time_zone: '+0530' | date: '%H:%M' }}", "05:30"},
		{"{{ 1700000000 | date: '%s' }}", "1700000000"},
		{"a<!-- {% if true %}hidden{% endif %} -->b", "ab"},
		{"<!-- unclosed {{ 'x' }}", "<!-- unclosed x"},
	}
	e := NewEngine()
	vars := map[string]any{"hash": map[string]any{"a": "a-value", "b": "b-value"}, "key": "b"}
	for _, tt := range tests {
		tpl := parseOK(t, e, tt.src, Options{})
		if got, err := tpl.Render(vars); err != nil || got != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
	tpl := parseOK(t, e, "{{ 0 | time_zone: 'Mars/Olympus' }}", Options{})
	if _, err := tpl.Render(nil); err == nil || !strings.Contains(err.Error(), "is not a time zone") {
		t.Errorf("an unknown zone: %v", err)
	}
}

// The text 'now' (and 'today') reads the engine's clock in date and
// time_zone, so a dry run given --now renders the same text whenever it
// runs.
func TestNowReadsTheEnginesClock(t *testing.T) {
	fixed := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	e := NewEngine(WithClock(func() time.Time { return fixed }))
	tests := []struct{ src, want string }{
		{"{{ 'now' | date: '%Y-%m-%d %H:%M' }}", "2026-11-29 10:00"},
		{"{{ 'today' | date: '%Y-%m-%d' }}", "2026-11-29"},
		{"{{ 'now' | time_zone: 'America/New_York' | date: '%H:%M' }}", "05:00"},
		{"{% assign t = 'now' | date: '%s' %}{{ t | plus: 60 | date: '%H:%M' }}", "10:01"},
	}
	for _, tt := range tests {
		tpl := parseOK(t, e, tt.src, Options{})
		if got, err := tpl.Render(nil); err != nil || got != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
	// Without a clock, 'now' is the machine's.
	tpl := parseOK(t, NewEngine(), "{{ 'now' | date: '%Y-%m-%d' }}", Options{})
	before := time.Now().Format(time.DateOnly)
	got, err := tpl.Render(nil)
	after := time.Now().Format(time.DateOnly)
	if err != nil || (got != before && got != after) {
		t.Errorf("'now' without a clock = %q, %v; want today, %s", got, err, after)
	}
}

// What Braze refuses is warned about, at its place; the template still
// renders.
func TestBrazeWarnings(t *testing.T) {
	tests := []struct {
		src  string
		want []string // message fragments, in order
		at   []int    // and their offsets
	}{
		{"{% if points | plus: 0 > 10 %}x{% endif %}", []string{"filters in {% if %}"}, []int{13}},
		{"{% for o in offers | sort %}{% endfor %}", []string{"filters in {% for %}"}, []int{19}},
		{"{% assign vip = points > 10 %}", []string{"> in {% assign %}"}, []int{23}},
		{"{% if (a and b) or c %}{% endif %}", []string{"parentheses in {% if %}"}, []int{6}},
		{"{% for i in (1..3) %}{{ i }}{% endfor %}", nil, nil},
		{"{% increment n %}{{ 'x' | lstrip }}", []string{"{% increment %}", `filter "lstrip"`}, []int{3, 26}},
		{"{{ ${first_name} | default: 'there' | capitalize }}", nil, nil},
		{"{% if a %}x{% else if b %}y{% endif %}", []string{"{% else if %} is read as {% else %}"}, []int{14}},
		{"{% if a %}x{% elsif b %}y{% else %}z{% endif %}", nil, nil},
		{"{% if a %}x{% else unless b %}y{% endif %}", []string{`{% else %} takes nothing: "unless" after it is ignored`}, []int{14}},
		{"<{{content_blocks.${footer} | upcase}}>", []string{"inserted by {{content_blocks.${name}}} alone in its braces"}, []int{3}},
		{"<{{content_blocks.${footer}}}>", nil, nil},
	}
	e := NewEngine()
	for _, tt := range tests {
		tpl := parseOK(t, e, tt.src, Options{})
		ws := tpl.Warnings()
		if len(ws) != len(tt.want) {
			t.Errorf("%s: warnings %+v, want %q", tt.src, ws, tt.want)
			continue
		}
		for i, w := range ws {
			if !strings.Contains(w.Message, tt.want[i]) || w.Offset != tt.at[i] {
				t.Errorf("%s: warning %d = %+v, want %q at %d", tt.src, i, w, tt.want[i], tt.at[i])
			}
		}
	}
}
