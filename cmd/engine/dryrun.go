package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/dryrun"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
)

func runDryRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dry-run", "engine dry-run [flags] PIPELINE.yaml (--event EVENT.json | --csv FILE [--rows N])",
		`Runs one event (a webhook body) or the rows of a CSV file through a pipeline
and shows the filter's verdict (and, when false, which part was false), each
lookup with the response it used, and the exact request(s) the engine would
send: method, full URL, headers and body, secrets masked. Nothing is sent:
lookups are answered from --fixtures DIR, where DIR/STEP.json holds the
response body of the step called STEP, or, with --sandbox, by the SessionM
and Braze emulators started in process (seeded from examples/sandbox), which
the connections then point at, with the emulators' own URLs and credentials
whatever --env-file and the environment say; other settings they do not set
(webhook tokens) come from the built-in examples/sandbox.env, as with engine
run --sandbox.

Exits 1 when an event fails (a template error, a lookup failure, a body that
does not fit the endpoint, a broken CSV row), 2 for a wrong command line, 0
otherwise; a filtered-out event is not a failure, nor is the 404 a respond
pipeline answers when its lookup says not found (shown as the response).`, stderr)
	var cf configFlags
	cf.register(fs)
	var (
		eventFile = fs.String("event", "", "the request body, a JSON `file` (- for stdin), for webhook sources")
		csvFile   = fs.String("csv", "", "a CSV `file`, for csv sources")
		rows      = fs.Int("rows", 10, "how many CSV rows to run (0: all)")
		path      = fs.String("path", "", "the request `path`, for sources whose path holds {placeholders}, e.g. /hooks/braze/tags/u-1001; a query after ? counts as --query")
		fixtures  = fs.String("fixtures", "", "`folder` of lookup responses: STEP.json per lookup step")
		inSandbox = fs.Bool("sandbox", false, "answer lookups from the built-in SessionM and Braze emulators, pointing every connection at them")
		format    = fs.String("format", "text", "output `format`: text or json")
		nowFlag   = fs.String("now", "", "the time of the now variable, now() and Liquid's 'now', RFC 3339 (default: the current time)")
		headers   listFlag
		query     listFlag
	)
	fs.Var(&headers, "header", "a request `header` as 'Name: value' (repeatable)")
	fs.Var(&query, "query", "a query parameter as `name=value` (repeatable)")
	positional, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "engine dry-run: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case len(positional) != 1:
		return fail("name one pipeline file, e.g. engine dry-run pipelines/offer-issued-to-braze-campaign.yaml --event examples/events/sessionm-offer-issued.json")
	case *eventFile != "" && *csvFile != "":
		return fail("give --event FILE (webhook sources) or --csv FILE (csv sources), not both")
	case *inSandbox && *fixtures != "":
		return fail("lookups come from --fixtures or --sandbox, not both")
	case *format != "text" && *format != "json":
		return fail("--format is text or json, not %q", *format)
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return fail("--now %q is not an RFC 3339 time such as 2026-11-29T10:00:00Z", *nowFlag)
		}
		now = t
	}
	if info, err := os.Stat(positional[0]); err == nil && info.IsDir() {
		return fail("%s is a folder; name one pipeline file in it", positional[0])
	}
	if engine.IsConnectionsFile(positional[0]) {
		return fail("%s holds the connections; name a pipeline file that uses them", positional[0])
	}
	ctx := context.Background()
	if *inSandbox {
		_, settings, stop, err := inProcessSandbox(ctx, "")
		if err != nil {
			fmt.Fprintf(stderr, "engine dry-run: %v\n", err)
			return exitProblem
		}
		defer stop()
		if err := cf.pointAtSandbox(settings); err != nil {
			fmt.Fprintf(stderr, "engine dry-run: %v\n", err)
			return exitProblem
		}
	}
	loader, masker, err := cf.loader()
	if err != nil {
		return fail("%v", err)
	}
	loader.UseClock(func() time.Time { return now })
	proj := loader.Load(positional)
	if proj.Diagnostics.HasErrors() || len(proj.Pipelines) != 1 {
		for _, d := range proj.Diagnostics.Items() {
			fmt.Fprintln(stderr, d)
		}
		fmt.Fprintln(stderr, "engine dry-run: the pipeline has problems; fix them first (engine validate shows them all)")
		return exitProblem
	}
	pl := proj.Pipelines[0]
	runner := &dryrun.Runner{Pipeline: pl, Fixtures: *fixtures, Now: now, Masker: masker}
	if *inSandbox {
		runner.Lookups = engine.HTTPCaller{}
	}
	if pl.Source.Type.Kind == spec.CSVSource {
		if *csvFile == "" {
			return fail("pipeline %s reads CSV files; give it --csv FILE", pl.Name)
		}
		rep := runner.CSV(ctx, *csvFile, *rows)
		if err := write(stdout, *format, rep, rep.WriteText, masker); err != nil {
			return fail("%v", err)
		}
		if rep.Failed() {
			return exitProblem
		}
		return exitOK
	}
	if *csvFile != "" {
		return fail("pipeline %s has a %s source; give it --event with a request body", pl.Name, pl.Source.Type.Name)
	}
	in := dryrun.Input{File: *eventFile, Path: *path, Query: url.Values{}, Headers: http.Header{}}
	switch *eventFile {
	case "":
		if pl.Source.Method != http.MethodGet {
			return fail("pipeline %s takes %s requests; give the request body with --event FILE", pl.Name, pl.Source.Method)
		}
		in.File = "(no body)"
	case "-":
		in.Body, err = io.ReadAll(os.Stdin)
	default:
		in.Body, err = os.ReadFile(*eventFile)
	}
	if err != nil {
		return fail("cannot read the event: %v", err)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return fail("--header %q: write it as 'Name: value'", h)
		}
		in.Headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	for _, q := range query {
		name, value, ok := strings.Cut(q, "=")
		if !ok {
			return fail("--query %q: write it as name=value", q)
		}
		in.Query.Add(name, value)
	}
	// A path copied from a URL carries its query, and dropping it ran the
	// request with the pipeline's defaults (F3: culture en-US) unsaid.
	if p, rawQuery, ok := strings.Cut(in.Path, "?"); ok {
		fromPath, err := url.ParseQuery(rawQuery)
		if err != nil {
			return fail("--path %q: the query after \"?\" cannot be read (%v); give its parameters with --query name=value", in.Path, err)
		}
		for name, values := range fromPath {
			if given, twice := in.Query[name]; twice && !slices.Equal(given, values) {
				return fail("the query parameter %q is given by --path (%s) and by --query (%s); give it once", name, strings.Join(values, ", "), strings.Join(given, ", "))
			}
			in.Query[name] = values
		}
		in.Path = p
	}
	// A command-line problem, exit 2, as --csv on a webhook pipeline is;
	// reported with the event it exited 1, as a failing event does.
	if err := runner.PathNeeded(in); err != nil {
		return fail("%v", err)
	}
	rep := runner.Event(ctx, in)
	if err := write(stdout, *format, rep, rep.WriteText, masker); err != nil {
		return fail("%v", err)
	}
	if len(rep.Errors) > 0 {
		return exitProblem
	}
	return exitOK
}

func write(w io.Writer, format string, v any, text func(io.Writer, *secrets.Masker) error, m *secrets.Masker) error {
	if format == "json" {
		return dryrun.WriteJSON(w, v, m)
	}
	return text(w, m)
}
