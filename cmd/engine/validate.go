package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/liquid"
)

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "engine validate [flags] PATH...",
		`Checks pipeline files (and the connections.yaml next to them) without running
anything: YAML syntax, the JSON Schema, unknown keys, connections and
endpoints, every filter expression and Liquid template, the names they read,
and the ${env:...} and ${secret:...} values they need. PATH is a pipeline file
or a folder of them. A PATH ending in .liquid is a Braze message template: it
is parsed with the engine's Liquid, and what Braze would refuse (a filter
inside if, for or case, an operator in assign, parentheses, a tag or filter
Braze does not document) is reported as a warning.

Prints every problem, one per line, as file:line:col: path: message (of one
problem at one key path in more than 3 places, such as an unset secret many
files read, the first 3 and how many more, unless --all), and exits 1 if any
is an error;
prints a one-line summary and exits 0 when clean; exits 2 for a wrong command
line.`, stderr)
	var cf configFlags
	cf.register(fs)
	all := fs.Bool("all", false, "print every place of a problem that many files share")
	paths, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "engine validate: name at least one pipeline file or folder, e.g. engine validate pipelines/")
		return exitUsage
	}
	loader, _, err := cf.loader()
	if err != nil {
		fmt.Fprintf(stderr, "engine validate: %v\n", err)
		return exitUsage
	}
	var pipelinePaths, templates []string
	for _, p := range paths {
		if strings.HasSuffix(p, ".liquid") {
			templates = append(templates, p)
		} else {
			pipelinePaths = append(pipelinePaths, p)
		}
	}
	proj := &engine.Project{}
	if len(pipelinePaths) > 0 {
		proj = loader.Load(pipelinePaths)
	}
	messages := liquid.NewEngine(liquid.WithMessageTags())
	for _, file := range templates {
		proj.Diagnostics.Append(validateTemplate(messages, file))
	}
	items := proj.Diagnostics.Items()
	shown := sameProblemShown
	if *all {
		shown = len(items)
	}
	printDiagnostics(stdout, items, shown, " (--all lists them)")
	errs := proj.Diagnostics.Errors()
	warnings := len(items) - errs
	if errs > 0 {
		fmt.Fprintf(stdout, "%s in %s\n", plural(errs, "error"), plural(countFiles(items), "file"))
		return exitProblem
	}
	if len(pipelinePaths) > 0 && len(proj.Pipelines) == 0 {
		// engine run refuses this; validate said ok to it.
		fmt.Fprintf(stdout, "no pipelines in %s: only connections (engine run would not start); add a pipeline file (.yaml or .yml) beside them\n", strings.Join(pipelinePaths, ", "))
		return exitProblem
	}
	summary := fmt.Sprintf("ok: %s in %s", plural(len(proj.Pipelines), "pipeline"), plural(len(proj.Files), "file"))
	switch {
	case len(templates) > 0 && len(pipelinePaths) == 0:
		summary = "ok: " + plural(len(templates), "template")
	case len(templates) > 0:
		summary = fmt.Sprintf("ok: %s in %s, %s", plural(len(proj.Pipelines), "pipeline"), plural(len(proj.Files), "file"), plural(len(templates), "template"))
	}
	if warnings > 0 {
		summary += ", " + plural(warnings, "warning")
	}
	if open := openRoutes(proj.Pipelines); len(open) > 0 {
		// Not a warning per file: a route behind a proxy that checks its
		// callers is no mistake, and would warn at every validate.
		names := make([]string, len(open))
		for i, p := range open {
			names[i] = p.Name
		}
		fmt.Fprintf(stdout, "note: no source.auth, so anyone who reaches the listener can call: %s\n", strings.Join(names, ", "))
	}
	fmt.Fprintln(stdout, summary)
	return exitOK
}

// sameProblemShown is how many places of one problem that many files
// share (an unset secret, a connection that cannot be used) are printed.
const sameProblemShown = 3

// printDiagnostics prints items, one a line, but of a problem at one key
// path in more than shown places only the first shown, then how many more
// there are, and hint: 300 pipelines validated without their environment
// printed 1,335 lines for nine unset variables (a QA run). A problem with
// no key path (a syntax error, a missing file) is about its file alone,
// and always printed: the same words there are not the same problem.
func printDiagnostics(w io.Writer, items []diag.Diagnostic, shown int, hint string) {
	type problem struct {
		path, message string
		severity      diag.Severity
	}
	count := map[problem]int{}
	for _, d := range items {
		count[problem{d.Path, d.Message, d.Severity}]++
	}
	printed := map[problem]int{}
	for _, d := range items {
		p := problem{d.Path, d.Message, d.Severity}
		printed[p]++
		folds := d.Path != ""
		if n := printed[p]; !folds || n <= shown {
			fmt.Fprintln(w, d)
			if folds && n == shown && count[p] > n {
				fmt.Fprintf(w, "  ... and %s with the same problem%s\n", plural(count[p]-n, "more place"), hint)
			}
		}
	}
}

// validateTemplate checks a Braze message template: its errors, and its
// warnings about what Braze would refuse.
func validateTemplate(messages *liquid.Engine, file string) diag.List {
	var out diag.List
	src, err := os.ReadFile(file)
	if err != nil {
		out.Add(diag.Diagnostic{File: file, Message: err.Error()})
		return out
	}
	tpl, problems := messages.Parse(string(src), liquid.Options{})
	for _, p := range problems {
		line, col := diag.LineCol(string(src), p.Offset)
		out.Add(diag.Diagnostic{File: file, Line: line, Column: col, Message: p.Message})
	}
	if tpl != nil {
		for _, w := range tpl.Warnings() {
			line, col := diag.LineCol(string(src), w.Offset)
			out.Add(diag.Diagnostic{File: file, Line: line, Column: col, Message: w.Message, Severity: diag.Warning})
		}
	}
	return out
}

func countFiles(ds []diag.Diagnostic) int {
	files := map[string]bool{}
	for _, d := range ds {
		if d.Severity == diag.Error {
			files[d.File] = true
		}
	}
	return len(files)
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// openRoutes are the pipelines whose routes take no auth.
func openRoutes(pipelines []*engine.Pipeline) []*engine.Pipeline {
	var open []*engine.Pipeline
	for _, p := range pipelines {
		if p.OpenRoute() {
			open = append(open, p)
		}
	}
	return open
}
