package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/examples"
)

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "engine run [flags] PATH...",
		`Runs the pipelines in PATH (files or folders): serves their webhook routes,
stores every accepted event in the durable inbox under --data before
answering 2xx, and delivers it: filter, lookups, templates, then the request
to SessionM or Braze, with retries (exponential backoff, full jitter), rate
limits per connection, Braze batching (up to 50 recipients per trigger
request, 75 objects per users/track array) and dead letters for what cannot
be delivered (see engine dlq). Events left undelivered by an earlier run are
delivered first.

--sandbox starts the built-in SessionM and Braze emulators in process and
points every connection at them: all flows work with no account anywhere.

The listener also serves /healthz and /readyz. SIGINT or SIGTERM stops
taking webhooks, lets in-flight deliveries finish (up to --grace), and
leaves the rest in the inbox.`, stderr)
	var cf configFlags
	cf.register(fs)
	var (
		addr      = fs.String("addr", ":8080", "listen for webhooks on `host:port`")
		dataDir   = fs.String("data", "./data", "`folder` of the durable inbox and the dead letters")
		inSandbox = fs.Bool("sandbox", false, "start the built-in SessionM and Braze emulators and point every connection at them")
		logFormat = fs.String("log-format", "text", "log `format`: text or json")
		logLevel  = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
		maxInbox  = fs.Int("max-inbox", runner.DefaultMaxInbox, "undelivered events per pipeline before webhooks answer 503 with Retry-After")
		grace     = fs.Duration("grace", 30*time.Second, "how long a stop waits for in-flight deliveries")
	)
	paths, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "engine run: "+format+"\n", a...)
		return code
	}
	if len(paths) == 0 {
		return fail(exitUsage, "name the pipelines to run, e.g. engine run pipelines/ (or engine run --sandbox pipelines/ to try them)")
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sandboxBase := ""
	if *inSandbox {
		base, settings, stopSandbox, err := inProcessSandbox(context.Background())
		if err != nil {
			return fail(exitProblem, "%v", err)
		}
		defer stopSandbox()
		sandboxBase = base
		cf.overrides = settings
		cf.fallback, err = secrets.ParseEnv("built-in examples/sandbox.env", examples.SandboxEnv)
		if err != nil {
			return fail(exitProblem, "%v", err)
		}
	}
	loader, masker, err := cf.loader()
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	proj := loader.Load(paths)
	for _, d := range proj.Diagnostics.Items() {
		fmt.Fprintln(stderr, d)
	}
	if proj.Diagnostics.HasErrors() {
		return fail(exitProblem, "the pipelines have problems; nothing was started (engine validate shows them too)")
	}
	if len(proj.Pipelines) == 0 {
		return fail(exitProblem, "no pipelines in %s", strings.Join(paths, ", "))
	}
	store, err := inbox.Open(*dataDir, inbox.Options{})
	if err != nil {
		return fail(exitProblem, "%v", err)
	}
	defer store.Close()
	r, err := runner.New(runner.Options{Store: store, Pipelines: proj.Pipelines, Masker: masker, Logger: logger, MaxInbox: *maxInbox})
	if err != nil {
		return fail(exitProblem, "%v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(exitProblem, "cannot listen on %s: %v", *addr, err)
	}
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	r.Start()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	printRunBanner(stdout, ln.Addr().String(), *dataDir, sandboxBase, proj.Pipelines, store)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		logger.Error("the listener stopped", "error", err)
	}
	fmt.Fprintln(stdout, "engine run: stopping; in-flight deliveries get", *grace)
	shutdown, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("closing the listener", "error", err)
	}
	r.Stop(*grace)
	left := store.Pipelines()
	if len(left) == 0 {
		fmt.Fprintln(stdout, "engine run: stopped; every accepted event was handled")
	} else {
		fmt.Fprintf(stdout, "engine run: stopped; still queued for the next run: %s\n", describeDepths(left))
	}
	return exitOK
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level is debug, info, warn or error, not %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format is text or json, not %q", format)
}

func describeDepths(depths map[string]int) string {
	names := make([]string, 0, len(depths))
	for p := range depths {
		names = append(names, p)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, p := range names {
		parts[i] = fmt.Sprintf("%s %d", p, depths[p])
	}
	return strings.Join(parts, ", ")
}

func printRunBanner(w io.Writer, addr, dataDir, sandboxBase string, pipelines []*engine.Pipeline, store *inbox.Store) {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	base := "http://" + net.JoinHostPort(host, port)
	fmt.Fprintf(w, "engine run: listening on %s (data in %s)\n", addr, dataDir)
	for _, p := range pipelines {
		switch p.Source.Type.Kind {
		case spec.HTTPSource:
			fmt.Fprintf(w, "  %-36s %s %s\n", p.Name, p.Source.Method, strings.Join(p.Source.Paths, " | "))
		case spec.CSVSource:
			fmt.Fprintf(w, "  %-36s csv files\n", p.Name)
		}
	}
	if left := store.Pipelines(); len(left) > 0 {
		fmt.Fprintf(w, "delivering events left by the last run: %s\n", describeDepths(left))
	}
	if sandboxBase != "" {
		fmt.Fprintf(w, "\nSessionM and Braze emulators: %s (what each user got: %s/_sandbox/deliveries?user=u-1001)\n", sandboxBase, sandboxBase)
		fmt.Fprintln(w, "Try a SessionM offer-issued event:")
		fmt.Fprintf(w, "  curl -s %s/hooks/sessionm/offers -H 'Authorization: Bearer sandbox-sessionm-webhook-token' --data @examples/events/sessionm-offer-issued.json\n", base)
	}
	fmt.Fprintln(w, "Stop with Ctrl-C.")
}
