package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/liquid"
)

func runRender(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("render", "engine render --vars VARS.json [--partials DIR] TEMPLATE",
		`Renders a Liquid template with the engine's renderer (the Braze dialect
pipelines use) and prints the result. The keys of the JSON object in --vars
are the template's top-level variables. With --partials, {% include 'NAME' %}
and {% render 'NAME' %} use DIR/NAME.liquid; without it they are refused. A
template that does not parse, or fails while rendering, is reported on stderr
with its line and column, and the exit status is 1. What the engine renders
but Braze would refuse (a filter inside if, for or case, an operator in
assign, parentheses, a tag or filter Braze does not document) is a warning
on stderr; the template is still rendered.`, stderr)
	varsFile := fs.String("vars", "", "JSON `file` holding an object whose keys are the template's variables (default: none)")
	partialsDir := fs.String("partials", "", "`folder` whose NAME.liquid files are the partials include and render may use (default: none)")
	positional, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "engine render: "+format+"\n", a...)
		return code
	}
	if len(positional) != 1 {
		return fail(exitUsage, "name one template file, e.g. engine render --vars user.json message.liquid")
	}
	file := positional[0]
	src, err := os.ReadFile(file)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	vars := map[string]any{}
	if *varsFile != "" {
		raw, err := os.ReadFile(*varsFile)
		if err != nil {
			return fail(exitUsage, "--vars: %v", err)
		}
		if vars, err = decodeVars(raw); err != nil {
			return fail(exitUsage, "--vars %s: %v", *varsFile, err)
		}
	}
	var opts []liquid.EngineOption
	if *partialsDir != "" {
		partials, err := readPartials(*partialsDir)
		if err != nil {
			return fail(exitUsage, "--partials: %v", err)
		}
		opts = append(opts, liquid.WithPartials(partials))
	}
	tpl, problems := liquid.NewEngine(opts...).Parse(string(src), liquid.Options{})
	if len(problems) > 0 {
		for _, p := range problems {
			line, col := diag.LineCol(string(src), p.Offset)
			fmt.Fprintf(stderr, "%s:%d:%d: %s\n", file, line, col, p.Message)
		}
		return exitProblem
	}
	for _, w := range tpl.Warnings() {
		line, col := diag.LineCol(string(src), w.Offset)
		fmt.Fprintf(stderr, "%s:%d:%d: warning: %s\n", file, line, col, w.Message)
	}
	out, err := tpl.Render(vars)
	if err != nil {
		return fail(exitProblem, "%s: %v", file, err)
	}
	_, _ = io.WriteString(stdout, out)
	return exitOK
}

// readPartials reads dir/NAME.liquid as the partial NAME. The engine
// itself never reads files; this command hands it their text.
func readPartials(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	partials := map[string]string{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".liquid")
		if !ok || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		partials[name] = string(b)
	}
	return partials, nil
}

// decodeVars reads a JSON object. Whole numbers stay integers, as Liquid
// templates expect (9 | divided_by: 2 is 4).
func decodeVars(raw []byte) (map[string]any, error) {
	v, err := jsonval.Decode(raw)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("a JSON object is needed, {\"name\": value, ...}, whose keys become the variables")
	}
	return obj, nil
}
