package liquid

import (
	"strings"
	"testing"
	"time"
)

// slowMachine lifts the render time limit for a test of the other
// limits: under -race on a loaded machine, 200,000 loop passes can take
// longer than 2 s, and the time limit would answer first.
func slowMachine(t *testing.T) {
	prev := maxRenderTime
	maxRenderTime = time.Hour
	t.Cleanup(func() { maxRenderTime = prev })
}

func TestTags(t *testing.T) {
	slowMachine(t)
	items := map[string]any{"a": []any{1, 2, 3, 4, 5, 6}, "h": map[string]any{"b": 2, "a": 1}, "t": "Hello", "u": map[string]any{"name": "Ana"}}
	parts := map[string]string{
		"greet":  "Hi {{ u.name }}{% assign after = 'set' %}",
		"args":   "{{ x }}-{{ y }}",
		"item":   "{{ item }}{% unless forloop.last %},{% endunless %}",
		"self":   "{% include 'self' %}",
		"brk":    "{{ i }}{% break %}",
		"scoped": "[{{ t }}]",
		"bad":    "{% if %}",
	}
	tests := []struct {
		name, template string
		vars           map[string]any
		want           string
		wantErr        string // a part of the error; the render must fail
	}{
		{"echo", "{% echo t | upcase %}{%- echo -%}", items, "HELLO", ""},
		{"liquid tag", "{%- liquid\n  for i in a limit: 2\n    echo i\n  endfor\n  # a comment\n  comment\n  echo 'no'\n  endcomment\n-%}", items, "12", ""},
		{"liquid tag cannot close an outer block", "{% if true %}{% liquid endif %}", items, "", "must close a block opened in the same tag"},
		{"inline comment", "a{%- # note -%} b{% # x %}", items, "ab", ""},
		{"inline comment lines need #", "{% # one\n two %}", items, "", "must start with #"},
		{"doc", "a {%- doc %}{{ unclosed {% enddoc -%} b", items, "ab", ""},
		{"nested comments", "{% comment %}{% comment %}{% endcomment %}x{% endcomment %}ok", items, "ok", ""},
		{"increment and decrement", "{% increment c %}{% increment c %}{% decrement c %}{{ c }}", items, "0111", ""},
		{"assign hides a counter", "{% assign c = 5 %}{% increment c %}{{ c }}", items, "05", ""},
		{"cycle", "{% for i in (1..4) %}{% cycle 'x', 'y' %}{% endfor %}", items, "xyxy", ""},
		{"a range of arithmetic results outside a loop", "{% assign m = t.size | plus: 1 %}{% assign r = (1..m) %}{{ r | join: ',' }} {{ (2..m) | join: '-' }}", items, "1,2,3,4,5,6 2-3-4-5-6", ""},
		{"range bounds from arithmetic filters", "{% assign m = t.size | plus: 1 %}{% assign k = m | minus: 3 %}{% for i in (k..m) %}{{ i }}{% endfor %}[{% for i in (m..k) %}{{ i }}{% endfor %}]{% tablerow i in (k..4) %}{{ i }}{% endtablerow %}", items, "3456[]<tr class=\"row1\">\n<td class=\"col1\">3</td><td class=\"col2\">4</td></tr>\n", ""},
		{"cycle groups", "{% cycle 'g': 1, 2 %}{% cycle 'g': 3, 4 %}{% cycle 1, 2 %}", items, "141", ""},
		{"ifchanged", "{% for i in (1..3) %}{% ifchanged %}{% if i < 3 %}a{% else %}b{% endif %}{% endifchanged %}{% endfor %}", items, "ab", ""},
		{"for offset continue", "{% for i in a limit: 2 %}{{ i }}{% endfor %}|{% for i in a offset: continue limit: 2 %}{{ i }}{% endfor %}", items, "12|34", ""},
		{"for parameters from variables and strings", "{% assign n = '2' %}{% for i in a offset: n, limit: 2 reversed %}{{ i }}{% endfor %}", items, "43", ""},
		{"for over an object by key", "{% for p in h %}{{ p[0] }}={{ p[1] }};{% endfor %}", items, "a=1;b=2;", ""},
		{"for over a string", "{% for c in t %}[{{ c }}]{% endfor %}", items, "[Hello]", ""},
		{"for else", "{% for i in nothing %}x{% else %}empty{% endfor %}", items, "empty", ""},
		{"forloop", "{% for i in (1..2) %}{% for j in (1..2) %}{{ forloop.parentloop.index }}{{ forloop.index }}{{ forloop.last }} {% endfor %}{% endfor %}", items, "11false 12true 21false 22true ", ""},
		{"forloop name", "{% for i in a limit: 1 %}{{ forloop.name }}{% endfor %}", items, "i-a", ""},
		{"break and continue in nested loops", "{% for i in (1..3) %}{% for j in (1..3) %}{% if j == 2 %}{% break %}{% endif %}{{ i }}{{ j }}{% endfor %}{% if i == 2 %}{% continue %}{% endif %}.{% endfor %}", items, "11.2131.", ""},
		{"loop variable restored", "{% assign i = 'x' %}{% for i in (1..2) %}{{ i }}{% endfor %}{{ i }}", items, "12x", ""},
		{"blank body renders nothing", "{% for i in (1..3) %} {% assign k = i %} {% endfor %}{{ k }}", items, "3", ""},
		{"tablerow", "{% tablerow i in (1..3) cols: 2 %}{{ i }}{{ tablerowloop.col_last }}{% endtablerow %}", items,
			"<tr class=\"row1\">\n<td class=\"col1\">1false</td><td class=\"col2\">2true</td></tr>\n<tr class=\"row2\"><td class=\"col1\">3false</td></tr>\n", ""},
		{"and/or group from the right", "{% if true and false and false or true %}yes{% else %}no{% endif %}", items, "no", ""},
		{"unless with elsif", "{% unless true %}a{% elsif t == 'Hello' %}b{% endunless %}", items, "b", ""},
		{"contains nil is false", "{% if a contains nil %}yes{% else %}no{% endif %}", items, "no", ""},
		{"<> and empty", "{% if t <> 'x' and nothing == empty %}no{% elsif h != empty %}yes{% endif %}", items, "yes", ""},
		{"comparing text with a number", "{% if '2' > 1 %}x{% endif %}", items, "", "cannot compare"},
		{"case with or and commas", "{% case t %}{% when 'x' or 'Hello' %}a{% when 'Hello', 'y' %}b{% else %}c{% endcase %}", items, "ab", ""},
		{"case else between whens", "{% case 1 %}{% when 2 %}a{% else %}b{% when 1 %}c{% endcase %}", items, "bc", ""},
		{"include shares the scope", "{% include 'greet' %} {{ after }}", items, "Hi Ana set", ""},
		{"include with arguments", "{% include 'args', x: 1, y: 'b' %}{{ x }}", items, "1-b", ""},
		{"include for", "{% include 'item' for a as item %}", items, "1,2,3,4,5,6,", ""},
		{"break from an include", "{% for i in (1..3) %}{% include 'brk' %}{% endfor %}", items, "1", ""},
		{"render is isolated", "{% render 'greet' %}{{ after }}|{% render 'scoped' %}|{% render 'scoped' with t as t %}", items, "Hi |[]|[Hello]", ""},
		{"render for", "{% render 'item' for a as item %}", items, "1,2,3,4,5,6", ""},
		{"unknown partial", "{% include 'nope' %}", items, "", `no partial named "nope"`},
		{"partial that does not parse", "{% render 'bad' %}", items, "", `partial "bad" does not parse: 1:1: unterminated "if" block`},
		{"render needs a quoted name", "{% render t %}", items, "", "needs the partial's name in quotes"},
		{"a partial including itself", "{% include 'self' %}", items, "", "nest more than"},
		{"runaway loop", "{% for i in (1..100000000) %}{% endfor %}", items, "", "loops more than"},
		{"output limit", "{% for i in (1..1000000) %}xxxxxxxxxx{% endfor %}", items, "", "larger than the limit"},
		{"bad loop", "{% for i from a %}{% endfor %}", items, "", "{% for item in collection %}"},
	}
	engine := NewEngine(WithPartials(parts))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, problems := engine.Parse(tt.template, Options{})
			var out string
			var err error
			if len(problems) > 0 {
				if tt.wantErr == "" || !strings.Contains(problems[0].Message, tt.wantErr) {
					t.Fatalf("problems %v, want output %q / error %q", problems, tt.want, tt.wantErr)
				}
				return
			}
			out, err = tpl.Render(tt.vars)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %q, %v; want an error with %q", out, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || out != tt.want):
				t.Fatalf("got %q, %v; want %q", out, err, tt.want)
			}
			// the same template renders the same way again (state is per render)
			if again, err2 := tpl.Render(tt.vars); tt.wantErr == "" && (again != out || err2 != nil) {
				t.Fatalf("second render %q, %v; first %q", again, err2, out)
			}
		})
	}
}

func TestIncludeWithoutPartials(t *testing.T) {
	for _, src := range []string{"{% include 'x' %}", "{% render 'x' %}"} {
		_, problems := NewEngine().Parse(src, Options{})
		if len(problems) != 1 || !strings.Contains(problems[0].Message, "is not available: templates cannot read files") {
			t.Errorf("%s: problems %v", src, problems)
		}
	}
}

// A render that loops too long stops with an error that says why, by
// iterations or by time.
func TestRenderBounds(t *testing.T) {
	e := NewEngine()
	long := make([]any, 3000)
	for i := range long {
		long[i] = i
	}
	for _, tt := range []struct{ src, want string }{
		{"{% for i in (1..300000) %}{% endfor %}", "loops more than 200000 times"},
		// each pass sorts 3,000 numbers: over 2 s long before 200,000 passes
		{"{% for i in (1..150000) %}{% assign s = long | sort %}{% endfor %}", "took longer than 2s"},
	} {
		prev := maxRenderTime
		if !strings.Contains(tt.want, "took longer") {
			maxRenderTime = time.Hour // see slowMachine
		}
		tpl, problems := e.Parse(tt.src, Options{})
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		start := time.Now()
		_, err := tpl.Render(map[string]any{"long": long})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.src, err, tt.want)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: stopped only after %v", tt.src, took)
		}
		maxRenderTime = prev
	}
}

// Blocks nested deeper than anyone writes are refused at once, rather
// than handed to a parser that would take minutes over them.
func TestNestingLimit(t *testing.T) {
	nested := func(n int) string {
		return strings.Repeat("{% if true %}", n) + "x" + strings.Repeat("{% endif %}", n)
	}
	e := NewEngine()
	if tpl, problems := e.Parse(nested(maxNesting), Options{}); len(problems) > 0 {
		t.Fatalf("%d levels: %v", maxNesting, problems)
	} else if out, err := tpl.Render(nil); out != "x" || err != nil {
		t.Fatalf("%d levels: %q %v", maxNesting, out, err)
	}
	_, problems := e.Parse(nested(100_000), Options{})
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "nested more than 100 deep") || problems[0].Offset != 13*maxNesting+3 {
		t.Fatalf("100,000 levels: %+v", problems)
	}
}

// Tag state belongs to one render (osteele renders on a copy of the
// bindings, where the tags keep it): the same bindings rendered twice, or
// no bindings at all, start from zero.
func TestRenderStateDoesNotCarryOver(t *testing.T) {
	tpl, problems := NewEngine().Parse("{% increment n %}{% cycle 'a', 'b' %}{% for i in (1..2) %}{{ i }}{% endfor %}", Options{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	vars := map[string]any{}
	for range 2 {
		if out, err := tpl.Render(vars); out != "0a12" || err != nil {
			t.Fatalf("%q %v", out, err)
		}
	}
	if len(vars) != 0 {
		t.Fatalf("the render left %v in the caller's bindings", vars)
	}
	if out, err := tpl.Render(nil); out != "0a12" || err != nil {
		t.Fatalf("nil bindings: %q %v", out, err)
	}
}
