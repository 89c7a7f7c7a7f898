package main

import (
	"fmt"
	"io"

	"github.com/loyalty-connector/engine/engine/diag"
)

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "engine validate [flags] PATH...",
		`Checks pipeline files (and the connections.yaml next to them) without running
anything: YAML syntax, the JSON Schema, unknown keys, connections and
endpoints, every filter expression and Liquid template, the names they read,
and the ${env:...} and ${secret:...} values they need. PATH is a pipeline file
or a folder of them.

Prints every problem, one per line, as file:line:col: path: message, and
exits 1 if any is an error; prints a one-line summary and exits 0 when clean.`, stderr)
	var cf configFlags
	cf.register(fs)
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
	proj := loader.Load(paths)
	items := proj.Diagnostics.Items()
	for _, d := range items {
		fmt.Fprintln(stdout, d)
	}
	errs := proj.Diagnostics.Errors()
	warnings := len(items) - errs
	if errs > 0 {
		fmt.Fprintf(stdout, "%s in %s\n", plural(errs, "error"), plural(countFiles(items), "file"))
		return exitProblem
	}
	summary := fmt.Sprintf("ok: %s in %s", plural(len(proj.Pipelines), "pipeline"), plural(len(proj.Files), "file"))
	if warnings > 0 {
		summary += ", " + plural(warnings, "warning")
	}
	fmt.Fprintln(stdout, summary)
	return exitOK
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
