// Command engine runs, validates and dry-runs SessionM/Braze connector
// pipelines. It only turns flags into calls into the engine packages.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/loyalty-connector/engine/engine/diag"
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"run", "run pipelines: serve their webhooks, deliver with retries, batching, dead letters", runRun},
		{"validate", "check pipeline files and report every problem", runValidate},
		{"dry-run", "show what a pipeline would send for an event or CSV rows, sending nothing", runDryRun},
		{"render", "preview a Braze message for one user (Connected Content answered by the sandbox, fixtures or live)", runRender},
		{"playground", "serve a web page that previews Braze message templates as you type", runPlayground},
		{"dlq", "list, show, replay or drop dead letters", runDlq},
		{"sandbox", "serve SessionM and Braze emulators for demos and staging tests", runSandbox},
		{"version", "print the engine's version", runVersion},
		{"help", "show help for a command", runHelp},
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitOK      = 0
	exitProblem = 1 // the input has problems (validation errors, failed events)
	exitUsage   = 2 // the command line is wrong
)

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "-help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(args[1:], stdout, stderr)
		}
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	if nearMiss(stderr, "engine", "command", name, names) {
		return exitUsage
	}
	fmt.Fprintf(stderr, "engine: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "engine: declarative connector engine for SessionM and Braze")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: engine COMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'engine COMMAND --help' for a command's flags.")
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	// engine help dlq list: the subcommand's help, as engine dlq list --help.
	return run(append(slices.Clone(args), "--help"), stdout, stderr)
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "engine version", "Prints the engine's version, commit and Go version.", stderr)
	if _, code, done := parse(fs, args, stdout); done {
		return code
	}
	fmt.Fprintln(stdout, engineVersion())
	return exitOK
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// nearMiss names, for a mistyped command or subcommand of who, the one it
// most likely meant, and reports whether there was one: the whole list
// would push the suggestion out of sight.
func nearMiss(w io.Writer, who, what, name string, names []string) bool {
	near := diag.Closest(name, names)
	if near == "" {
		return false
	}
	fmt.Fprintf(w, "%s: unknown %s %q; did you mean %s?\nRun '%s --help' for the list of %ss.\n", who, what, name, near, who, what)
	return true
}
