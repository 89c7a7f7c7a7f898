package liquid

import "testing"

// Parser errors are placed at the markup they name, not at a copy of it
// inside a raw or comment block, and say what is wrong in words.
func TestParseErrorPlacement(t *testing.T) {
	for _, tc := range []struct {
		src    string
		offset int
		msg    string
	}{
		{"{% raw %}{% endif %}{% endraw %}{% endif %}", 32, "{% endif %} closes a block that was never opened"},
		{"{% comment %}{% if x %}{% endcomment %}{% if x %}", 39, `unterminated "if" block`},
		{"{% if x %}{% endunless %}", 10, "{% endunless %} does not close the open {% if %} block"},
		{"{{ x | plus: 0, 1 }}", 7, "filter plus takes 1 argument, not 2"},
		{"{{ x | plus }}", 7, "filter plus takes 1 argument, not 0"},
		{"{{ x | upcase: 3 }}", 7, "filter upcase takes 0 arguments, not 1"},
		{"{{ x | slice: 'a', 'b', 'c' }}", 7, "filter slice takes 1 to 2 arguments, not 3"},
		{"{{ x | plus: (1), [2] | minus: 1 }}", 7, "filter plus takes 1 argument, not 2"},
	} {
		_, problems := NewEngine().Parse(tc.src, Options{})
		if len(problems) != 1 || problems[0].Offset != tc.offset || problems[0].Message != tc.msg {
			t.Errorf("%q: got %+v, want offset %d %q", tc.src, problems, tc.offset, tc.msg)
		}
	}
}

// Render errors name values the way a template author knows them.
func TestRenderErrorsInWords(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"{{ 'abc' | slice: 'a' }}", `filter slice failed: slice's start must be a whole number, not 'a' in {{ 'abc' | slice: 'a' }}`},
		{"{{ 5 | divided_by: 0 }}", "filter divided_by failed: division by zero in {{ 5 | divided_by: 0 }}"},
		// literals the pre-pass hoisted are shown as written
		{"{{ 'abc' | slice: 'a\nb' }}", "filter slice failed: slice's start must be a whole number, not 'a\\nb' in {{ 'abc' | slice: 'a\nb' }}"},
		{"{% if 'a' > 5.0 %}{% endif %}", "cannot compare the text \"a\" with the number 5.0 using >; convert one of them first (| plus: 0 makes a number) in {% if 'a' > 5.0 %}"},
	} {
		tpl, problems := NewEngine().Parse(tc.src, Options{})
		if problems != nil {
			t.Fatal(problems)
		}
		_, err := tpl.Render(map[string]any{"x": map[string]any{"y": 1}})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %s", tc.src, err, tc.want)
		}
	}
	// json_parse keeps whole numbers whole, as events are decoded
	tpl, _ := NewEngine().Parse(`{% assign o = s | json_parse %}{{ o.n }}`, Options{})
	if out, err := tpl.Render(map[string]any{"s": `{"n": 1000000}`}); err != nil || out != "1000000" {
		t.Errorf("json_parse number: %q %v", out, err)
	}
}
