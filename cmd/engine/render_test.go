package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writer returns a function that writes a file into dir (making the
// folders its name has) and gives its path.
func writer(t *testing.T, dir string) func(name, content string) string {
	return func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
}

func TestRender(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	partials := filepath.Join(dir, "partials")
	write("partials/greet.liquid", "Hello {{ user.first_name }}")
	write("partials/item.liquid", "{{ o.name }};")
	vars := write("vars.json", `{"user":{"first_name":"Ana","points":1250},"offers":[{"name":"Coat"},{"name":"Hat"}],"n":9}`)
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"variables", []string{"--vars", vars, write("ok.liquid", "Hi {{ user.first_name }}, {{ user.points }} points: {% for o in offers %}{{ o.name }}{% unless forloop.last %}, {% endunless %}{% endfor %}.")},
			0, "Hi Ana, 1250 points: Coat, Hat.", ""},
		// Whole numbers stay integers, as in Liquid: integer division.
		{"numbers", []string{"--vars", vars, write("num.liquid", "{{ n | divided_by: 2 }} {{ n | plus: 0.5 }}")}, 0, "4 9.5", ""},
		{"no vars", []string{write("plain.liquid", "[{{ missing }}]")}, 0, "[]", ""},
		{"braze warning", []string{"--vars", vars, write("warn.liquid", "{% if n | plus: 1 > 5 %}big{% endif %}")}, 0, "big",
			filepath.Join(dir, "warn.liquid") + ":1:9: warning: Braze does not allow filters in {% if %}: assign the filtered value first, then use it here\n"},
		{"unknown filter", []string{"--vars", vars, write("typo.liquid", "line one\n{{ user.first_name | upcas }}")}, 1, "",
			filepath.Join(dir, "typo.liquid") + `:2:22: unknown filter "upcas"; did you mean "upcase"?` + "\n"},
		{"vars not an object", []string{"--vars", write("list.json", `[1]`), filepath.Join(dir, "ok.liquid")}, 2, "",
			"engine render: --vars " + filepath.Join(dir, "list.json") + ": a JSON object is needed, {\"name\": value, ...}, whose keys become the variables\n"},
		{"no template", []string{"--vars", vars}, 2, "", "engine render: name one template file, e.g. engine render message.liquid --user user.json\n"},
		{"partials", []string{"--vars", vars, "--partials", partials, write("inc.liquid", "{% include 'greet' %}|{% render 'greet', user: user %}|{% render 'item' for offers as o %}")},
			0, "Hello Ana|Hello Ana|Coat;Hat;",
			// Braze has Content Blocks, not include and render: a preview says so.
			filepath.Join(dir, "inc.liquid") + ":1:4: warning: Braze does not document {% include %}: the engine renders it, Braze may not\n" +
				filepath.Join(dir, "inc.liquid") + ":1:26: warning: Braze does not document {% render %}: the engine renders it, Braze may not\n" +
				filepath.Join(dir, "inc.liquid") + ":1:59: warning: Braze does not document {% render %}: the engine renders it, Braze may not\n"},
		{"include without partials", []string{write("noinc.liquid", "{% include 'greet' %}")}, 1, "",
			filepath.Join(dir, "noinc.liquid") + ":1:1: {% include %} is not available: templates cannot read files\n"},
		{"missing partials folder", []string{"--partials", filepath.Join(dir, "nope"), filepath.Join(dir, "inc.liquid")}, 2, "",
			"engine render: --partials: open " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runEngine(append([]string{"render"}, tt.args...)...)
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// engine validate checks Braze message templates (.liquid) too: errors
// fail, what Braze would refuse is a warning.
func TestValidateTemplates(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	warn := write("warn.liquid", "{% if points | plus: 0 > 10 %}VIP{% endif %}\nHi {{ ${first_name} | default: 'there' }}\n")
	bad := write("bad.liquid", "Hi\n{{ name | upcas }}")
	stdout, _, code := runEngine("validate", warn)
	if code != exitOK || stdout != warn+":1:14: warning: Braze does not allow filters in {% if %}: assign the filtered value first, then use it here\nok: 1 template, 1 warning\n" {
		t.Errorf("warn: exit %d\n%s", code, stdout)
	}
	stdout, _, code = runEngine("validate", bad, "--env-file", "examples/sandbox.env", "pipelines/")
	if code != exitProblem || !strings.Contains(stdout, bad+`:2:11: unknown filter "upcas"; did you mean "upcase"?`) || !strings.HasSuffix(stdout, "1 error in 1 file\n") {
		t.Errorf("bad: exit %d\n%s", code, stdout)
	}
	stdout, _, code = runEngine("validate", "--env-file", "examples/sandbox.env", "pipelines/", "examples/render/points.liquid")
	if code != exitOK || !strings.HasSuffix(stdout, "ok: 5 pipelines in 6 files, 1 template\n") {
		t.Errorf("pipelines and a template: exit %d\n%s", code, stdout)
	}
}
