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
	} {
		_, problems := NewEngine().Parse(tc.src, Options{})
		if len(problems) != 1 || problems[0].Offset != tc.offset || problems[0].Message != tc.msg {
			t.Errorf("%q: got %+v, want offset %d %q", tc.src, problems, tc.offset, tc.msg)
		}
	}
}
