package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/examples"
	"github.com/loyalty-connector/engine/internal/connlimit"
	"github.com/loyalty-connector/engine/internal/webguard"
	textwidth "golang.org/x/text/width"
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

CSV sources take files named with --csv, and files dropped into their
source.inbox folder (moved to done/ or failed/ once every row has an
outcome or waits in the inbox for its retry, and the file has held still
for 5 s: lines appended meanwhile are imported too). Rows go straight to
the workers; a checkpoint counts the rows that have an outcome, so a
restart resumes after them, and rows that need a retry wait in the inbox.
Broken rows become dead letters with their row number.
--until-done exits once the --csv files are read and every row has an
outcome: exit status 1 if a file could not be imported, 0 otherwise.

--sandbox starts the built-in SessionM and Braze emulators in process and
points every connection at them, with their own URLs and credentials
(whatever --env-file, the environment and the base_url written in
connections.yaml say): all flows work with no account anywhere, and an http
connection that goes off this machine is refused. --sandbox-addr fixes
their port.

Pipeline files may be edited while the engine runs: a changed, added,
renamed or deleted file (connections.yaml included) is reloaded once every
changed file has been left alone for --reload-quiet, and a deleted one has
stayed gone for --removal-quiet; the folders are also rescanned every
--rescan. A file that does not validate leaves its running
version in place (GET /status shows its problems); a new version takes over
the routes at once and the queue once the old one has finished what it
holds. SIGHUP and POST /-/reload on the admin listener reload at once.

The listener also serves /healthz, /readyz and /metrics (Prometheus). The
admin listener (--admin-addr) serves GET /status, POST /-/reload, the
dead letters of the running engine (GET /dlq, GET /dlq/{id}, POST
/dlq/{id}/replay, DELETE /dlq/{id}, and in bulk POST /dlq/replay and
DELETE /dlq, with the filters of engine dlq) and POST
/connections/{name}/resume, which ends a connection's pause (after a 429)
at once. It takes no credentials, so it listens on loopback only
unless --admin-allow-remote is given. SIGINT or SIGTERM turns /readyz to
503, keeps taking webhooks for --drain (for a load balancer to notice),
then stops taking them, lets in-flight deliveries finish (up to --grace),
and leaves the rest in the inbox; a second signal stops at once, abandoning
the deliveries in flight (their events stay in the inbox too). A listener
that fails stops the engine too, with exit status 1.

The garbage collector runs at GOGC=400 under a soft limit of 96 MiB, or
twice what is alive when that is more; the GOGC and GOMEMLIMIT environment
variables override either.`, stderr)
	var cf configFlags
	cf.register(fs)
	var (
		addr      = fs.String("addr", ":8080", "listen for webhooks on `host:port`")
		adminAddr = fs.String("admin-addr", "127.0.0.1:8079", "serve /status, /-/reload and /dlq on `host:port`, loopback (empty: no admin listener)")
		remoteOK  = fs.Bool("admin-allow-remote", false, "allow an --admin-addr that is not loopback: anyone who reaches it can reload the pipelines and list, replay and drop dead letters")
		dataDir   = fs.String("data", "./data", "`folder` of the durable inbox and the dead letters")
		inSandbox = fs.Bool("sandbox", false, "start the built-in SessionM and Braze emulators and point every connection at them")
		sbAddr    = fs.String("sandbox-addr", "", "with --sandbox, serve the emulators on `host:port` (default: a free loopback port)")
		logFormat = fs.String("log-format", "text", "log `format`: text or json")
		logLevel  = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
		maxInbox  = fs.Int("max-inbox", runner.DefaultMaxInbox, "undelivered events per pipeline before webhooks answer 503 with Retry-After")
		bodyMiB   = fs.Int("max-body-memory", runner.DefaultBodyMemory>>20, "`MiB` of webhook bodies read at once, before webhooks answer 503 with Retry-After; as much again for callers checked by bearer or basic auth before their bodies")
		headerKiB = fs.Int("max-header-size", defaultMaxHeaderKiB, "`KiB` of a webhook's request line and headers; a longer one is answered 431")
		maxConns  = fs.Int("max-connections", defaultMaxConnections, "webhook `connections` open at once; more wait until one closes")
		grace     = fs.Duration("grace", 30*time.Second, "how long a stop waits for in-flight deliveries")
		drain     = fs.Duration("drain", 0, "after SIGINT or SIGTERM, keep taking webhooks this long while /readyz answers 503, so a load balancer stops sending before the listener closes")
		untilDone = fs.Bool("until-done", false, "exit once the --csv files are read and every row has an outcome")
		cpuProf   = fs.String("cpu-profile", "", "write a CPU profile of the run to `FILE` (go tool pprof reads it)")
		watch     = fs.Bool("watch", true, "reload pipeline files as soon as they change (--rescan, SIGHUP and POST /-/reload work either way)")
		quiet     = fs.Duration("reload-quiet", 100*time.Millisecond, "how long the changed files must all be left alone before they are reloaded")
		goneQuiet = fs.Duration("removal-quiet", 2*time.Second, "how long a deleted pipeline, connections or secret file must stay gone before it is reloaded as deleted")
		rescan    = fs.Duration("rescan", 10*time.Second, "also look for changed files this often, in case a change notice was missed (0: never)")
		csvFiles  listFlag
	)
	fs.Var(&csvFiles, "csv", "import `FILE` into the csv pipeline, or PIPELINE=FILE when there are several (repeatable)")
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
	if *quiet < 0 {
		return fail(exitUsage, "--reload-quiet is %s; it is how long changed files must be left alone before a reload, 0 or more (e.g. 100ms)", *quiet)
	}
	if *goneQuiet < 0 {
		return fail(exitUsage, "--removal-quiet is %s; it is how long a deleted file must stay gone before its pipeline is removed, 0 or more (e.g. 2s)", *goneQuiet)
	}
	if *rescan < 0 {
		return fail(exitUsage, "--rescan is %s; it is how often the folders are rescanned, 0 for never", *rescan)
	}
	if *grace < 0 {
		return fail(exitUsage, "--grace is %s; it is how long a stop waits for in-flight deliveries, 0 or more (e.g. 30s)", *grace)
	}
	if *drain < 0 {
		return fail(exitUsage, "--drain is %s; it is how long webhooks are still taken after a signal to stop, 0 or more (e.g. 10s)", *drain)
	}
	if *sbAddr != "" {
		if !*inSandbox {
			return fail(exitUsage, "--sandbox-addr is where --sandbox serves the emulators; add --sandbox, or start them apart with engine sandbox --addr %s", *sbAddr)
		}
		host, _, err := net.SplitHostPort(*sbAddr)
		if err != nil {
			return fail(exitUsage, "--sandbox-addr is host:port, e.g. 127.0.0.1:8081: %v", err)
		}
		if !loopbackHost(host) {
			// Whoever reaches them gets the emulators' credentials and
			// can make their senders post anywhere; engine sandbox warns.
			return fail(exitUsage, "--sandbox-addr %s is not a loopback address: whoever reaches the emulators can read their credentials and make their senders post anywhere; use 127.0.0.1:PORT, or run engine sandbox --addr apart when other machines need them", *sbAddr)
		}
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return fail(exitUsage, "--addr is host:port or :port, e.g. 127.0.0.1:8080 or :8080 (every interface): %v", err)
	}
	if *adminAddr != "" {
		host, _, err := net.SplitHostPort(*adminAddr)
		if err != nil {
			return fail(exitUsage, "--admin-addr is host:port, e.g. 127.0.0.1:8079, or \"\" for no admin listener: %v", err)
		}
		if !*remoteOK && !loopbackHost(host) {
			return fail(exitUsage, "--admin-addr %s is not a loopback address: the admin listener takes no credentials, and whoever reaches it can reload the pipelines and list, replay and drop dead letters; use 127.0.0.1:PORT (an SSH tunnel reaches it from elsewhere), or add --admin-allow-remote if that is what you want", *adminAddr)
		}
	}
	if isTerminal(stderr) {
		stderr = &statusLines{w: stderr}
	}
	cf.masker = &secrets.Masker{}
	logger, err := newLogger(stderr, *logFormat, *logLevel, cf.masker)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	problemsTo := stderr
	if *logFormat == "json" {
		// stderr carries the log alone, so that a collector can read it
		// as JSON lines: start errors and pipeline problems came as text
		// (an operator's QA pass). stdout keeps the banner for people.
		fail = func(code int, format string, a ...any) int {
			logger.Error("engine run: "+fmt.Sprintf(format, a...), "exit", code)
			return code
		}
		problemsTo = logLines{logger}
	}
	if *cpuProf != "" {
		stopProfile, err := startCPUProfile(*cpuProf)
		if err != nil {
			return fail(exitUsage, "--cpu-profile: %v", err)
		}
		defer stopProfile()
	}

	// Not signal.NotifyContext: it catches a second signal and drops it,
	// and an operator who asks again to stop must not wait out --grace.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	// SIGHUP means reload, which the reloader hears until the stop begins;
	// with nobody listening its default action ends the process, and a
	// HUP from a config sidecar during a drain killed it mid-stop. This
	// one listens until run returns, and says the HUP changes nothing.
	heldHUP := make(chan os.Signal, 1)
	signal.Notify(heldHUP, syscall.SIGHUP)
	defer signal.Stop(heldHUP)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sandboxBase := ""
	if *inSandbox {
		base, settings, stopSandbox, err := inProcessSandbox(context.Background(), *sbAddr)
		if err != nil {
			return fail(exitProblem, "%v", err)
		}
		defer stopSandbox()
		sandboxBase = base
		if err := cf.pointAtSandbox(settings); err != nil {
			return fail(exitProblem, "%v", err)
		}
	}
	loader, masker, err := cf.loader()
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	// Taken before the load: a file changed in between is reloaded.
	loadedFrom := fingerprint(loader.Inputs(paths))
	proj := loader.Load(paths)
	printDiagnostics(problemsTo, proj.Diagnostics.Items(), sameProblemShown, "")
	if proj.Diagnostics.HasErrors() {
		shows := "engine validate shows them too"
		if *inSandbox {
			shows += ", but for a connection --sandbox refuses"
		}
		return fail(exitProblem, "the pipelines have problems; nothing was started (%s)", shows)
	}
	if len(proj.Pipelines) == 0 {
		return fail(exitProblem, "no pipelines in %s", strings.Join(paths, ", "))
	}
	imports, err := csvTargets(csvFiles, proj.Pipelines)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if *bodyMiB <= 0 || *bodyMiB > 1<<20 {
		return fail(exitUsage, "--max-body-memory is a number of MiB from 1 to 1048576, not %d", *bodyMiB)
	}
	if *headerKiB <= 0 || *headerKiB > 1<<10 {
		return fail(exitUsage, "--max-header-size is a number of KiB from 1 to 1024, not %d", *headerKiB)
	}
	if *maxConns <= 0 {
		return fail(exitUsage, "--max-connections is a number from 1 up, not %d", *maxConns)
	}
	if *untilDone && len(imports) == 0 {
		return fail(exitUsage, "--until-done needs --csv files to wait for")
	}
	// An open is quick, but for the first one after a build from before
	// 2026-12-01, which reads the folder through once (10 s for 300,000
	// dead letters on a cold disk, a QA run), silent and not listening.
	opened, told := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(told) // waited for below: the line comes before any other
		select {
		case <-opened:
		case <-time.After(slowOpenAfter):
			logger.Info("still opening the data folder: another process may hold it, or this is the first open after an older build, which reads it through once", "data", *dataDir)
		}
	}()
	store, err := inbox.Open(*dataDir, inbox.Options{MarkRunning: true})
	close(opened)
	<-told
	if err != nil {
		return fail(exitProblem, "%s", dataFolderProblem(err, os.Getuid()))
	}
	defer store.Close()
	if store.StoppedUncleanly() {
		logger.Warn("the last engine run on this data folder did not stop cleanly (killed or crashed): every event it accepted is still delivered, but those it was delivering at that moment are sent again, so a peer may get them twice (under load, up to a Braze batch of 50 per request in flight)",
			"data", *dataDir)
	}
	for _, d := range store.JournalDamage() {
		logger.Error(journalDamaged, "data", *dataDir, "file", d.File, "epoch", d.Epoch, "from_byte", d.From, "to_byte", d.To)
	}
	if n := store.ReplaysSettled(); n > 0 {
		logger.Warn("a dead-letter replay on this data folder was cut short (killed, or on a full disk) after it had queued events again: their dead letters are removed now, so a later replay does not send them twice", "dead_letters", n)
	}
	r, err := runner.New(runner.Options{Store: store, Pipelines: proj.Pipelines, Masker: masker, Logger: logger, MaxInbox: *maxInbox, BodyMemory: int64(*bodyMiB) << 20,
		Warned: proj.Warnings(masker.String)})
	if err != nil {
		return fail(exitProblem, "%v", err)
	}
	ln, err := listen("tcp", *addr)
	if err != nil {
		return fail(exitProblem, "cannot listen on %s: %v (another engine or program on that port? pass another --addr, e.g. 127.0.0.1:8090)", *addr, err)
	}
	// A body must arrive within a minute and an idle connection goes after
	// two: slow or silent clients cannot hold the listener. Headers are
	// read into memory before any handler or auth check runs, and kept
	// with the event: their size and the connections reading them are
	// capped, or a caller would choose the engine's memory and disk use.
	capped := connlimit.New(ln, *maxConns, atConnectionCap(logger, *maxConns))
	ln = capped
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: *headerKiB << 10, ConnState: capped.ConnState, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	tuneGC(os.Getenv, runMemoryLimit)
	go followLiveHeap(ctx)
	loader.Running = r.Running     // a reload blames a route conflict on the file that changed
	loader.Resolver.Started = true // a reload's unset reference says what works without a restart
	rl := &reloader{paths: paths, loader: loader, runner: r, log: logger, watch: *watch, quiet: *quiet, goneQuiet: *goneQuiet, rescan: *rescan, last: loadedFrom}
	reloadNow := func() runner.ReloadReport { return rl.reload("POST /-/reload", true) }
	var admin *http.Server
	holder := inbox.Holder{Command: "engine run", PID: os.Getpid()}
	if *adminAddr != "" {
		aln, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			ln.Close()
			return fail(exitProblem, "cannot listen on --admin-addr %s: %v (another engine? pass --admin-addr 127.0.0.1:0 or \"\")", *adminAddr, err)
		}
		if host, _, _ := net.SplitHostPort(aln.Addr().String()); !net.ParseIP(host).IsLoopback() {
			// The check of the flag went by the name: localhost that the
			// machine resolves to another address gets here.
			if !*remoteOK {
				aln.Close()
				ln.Close()
				return fail(exitUsage, "--admin-addr %s listens on %s, which is not loopback; give 127.0.0.1:PORT, or pass --admin-allow-remote to mean it", *adminAddr, aln.Addr())
			}
			logger.Warn("the admin listener is not on loopback (--admin-allow-remote): anyone who reaches it can reload the pipelines and replay and drop dead letters", "addr", aln.Addr().String())
		}
		// A web page open in the operator's browser must not replay
		// dead letters or reload, by a cross-site post or DNS rebinding.
		// Its requests are small: a slow one is not kept waiting for.
		admin = &http.Server{Handler: webguard.Local(r.AdminHandler(reloadNow)), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		go func() { _ = admin.Serve(aln) }()
		defer admin.Close()
		holder.Admin = dialAddr(aln.Addr().String())
		fmt.Fprintf(stdout, "engine run: admin on http://%s (/status, /-/reload, /dlq, /connections/{name}/resume)\n", holder.Admin)
	}
	// engine dlq, finding the folder locked, points to the admin listener.
	if err := store.SetHolder(holder); err != nil {
		logger.Warn("cannot record in the data folder that this engine holds it; engine dlq will not name this engine's admin listener", "error", err)
	}
	// What the last run left, counted before deliveries and webhooks
	// change it, for the banner.
	leftBefore := store.Pipelines()
	r.Start()
	r.WatchCSVInboxes(time.Second)
	if err := rl.run(ctx); err != nil {
		logger.Warn("pipeline files are not watched for changes; "+rl.fallback(), "error", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	runBanner{addr: ln.Addr().String(), admin: holder.Admin, dataDir: *dataDir, sandboxBase: sandboxBase, pipelines: proj.Pipelines, left: leftBefore, masker: masker, untilDone: *untilDone}.print(stdout)
	logStarted(logger, ln.Addr().String(), holder.Admin, *dataDir, proj.Pipelines, masker)
	notImported := func(err error) { fmt.Fprintf(stderr, "engine run: %s\n", masker.String(err.Error())) }
	if *logFormat == "json" {
		notImported = func(err error) { logger.Error("CSV file not imported", "error", err) }
	}
	importsDone, importErr := runImports(ctx, r, imports, stderr, notImported)

	exit, drainFor, finished := exitOK, time.Duration(0), false
	select {
	case <-signals:
		if !*untilDone {
			drainFor = *drain // a load balancer may still send; a batch job has none
		}
	case err := <-serveErr:
		logger.Error("the listener stopped", "error", err)
		exit = exitProblem
	case <-untilDoneChan(*untilDone, importsDone):
		finished = true
	}
	stop()
	// Listening for a second signal, and for SIGHUP, before the lines
	// below say the stop began: a SIGHUP sent on reading them came
	// before the listener, was taken for one from before the stop and
	// went unnoted.
	now, release := stopNowOn(signals, heldHUP, stdout, logger)
	defer release()
	draining := ""
	if drainFor > 0 {
		draining = fmt.Sprintf("webhooks are still taken for %s while /readyz answers 503, then ", drainFor)
	}
	if finished {
		// Nobody pressed Ctrl-C, so the way to cut the grace short is
		// not news worth a line of a batch job's output.
		fmt.Fprintf(stdout, "engine run: done with the --csv files (the summary follows); stopping, in-flight deliveries get %s\n", *grace)
	} else {
		fmt.Fprintf(stdout, "engine run: stopping; %sin-flight deliveries get %s (a second Ctrl-C or SIGTERM stops at once)\n", draining, *grace)
	}
	// Logged too, as the stop's last word is: a collector of the JSON
	// log saw "stopped" with no sign of when the stop and the drain began.
	logger.Info("stopping", "drain", drainFor, "grace", *grace)
	r.Drain()
	if drainFor > 0 {
		// The listener stays open: a load balancer that has not yet seen
		// /readyz fail still sends, and its webhooks are taken.
		select {
		case <-time.After(drainFor):
		case <-now.Done():
		}
	}
	deadline := time.Now().Add(*grace)
	shutdown, cancel := context.WithDeadline(now, deadline)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		// Connections still open after the grace (a client that connected
		// and sent nothing, a webhook still uploading) are cut; what was
		// not stored was not answered 2xx.
		if now.Err() == nil {
			logger.Warn("closing the listener", "error", err)
		}
		_ = srv.Close()
	}
	stopped := make(chan struct{})
	go func() {
		// What the listener left of the grace: the stop as a whole
		// takes --drain plus --grace, which an orchestrator's kill
		// timeout is set from (a floor of a second here overran it).
		r.Stop(max(time.Until(deadline), 0))
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-now.Done():
		r.Abandon()
		<-stopped
	}
	if admin != nil {
		// Its requests under way get their answer (a reload its 503)
		// before the last word, within what is left of the grace.
		adminDone, cancelAdmin := context.WithDeadline(now, deadline)
		if admin.Shutdown(adminDone) != nil {
			_ = admin.Close()
		}
		cancelAdmin()
	}
	progress := r.CSVImports()
	printCSVSummary(stdout, progress)
	left := store.Pipelines()
	stranded := map[string]int{}
	for name, n := range left {
		if p := r.Running(name); p == nil || p.Respond != nil {
			stranded[name] = n
		}
	}
	reportStopped(stdout, logger, stopCounts{left: left, unremoved: r.Unremoved(), cut: r.CutByStop(), deadUnwritten: r.DeadLetterUnwrittenAtStop(), stranded: stranded})
	// A batch job learns from the exit status that a file was not
	// imported; the summary above says why.
	if *untilDone && (importErr() || importsFailed(progress, imports)) {
		exit = exitProblem
	}
	return exit
}

// stopCounts are the events per pipeline a stop left in the inbox (left),
// and among them or apart (cut), those the next run sends again though
// some peer may have them:
//   - unremoved: delivered, but the inbox could not remove them (a full
//     disk); "queued" alone reads as not yet delivered;
//   - cut: their request was on the wire when the stop cut it (the grace
//     ran out, or a second signal), so the peer may have taken them. A CSV
//     row among them is not queued but read again from its file: with
//     nothing queued, its cut was left unsaid (a QA run: 8 rows);
//   - deadUnwritten: failed, but their dead letter could not be written (a
//     full disk), so the next run tries them again;
//   - stranded: those of pipelines no file defines now (or that answer
//     their callers), which the next run does not deliver unless one does.
type stopCounts struct {
	left, unremoved, cut, deadUnwritten, stranded map[string]int
}

// reportStopped gives the last word of a run, what it left in the inbox
// (events per pipeline), on stdout and in the log: a collector of
// --log-format json never saw stdout, so nothing told it whether a stop
// left events behind.
func reportStopped(stdout io.Writer, logger *slog.Logger, c stopCounts) {
	if len(c.left) == 0 && len(c.cut) == 0 {
		fmt.Fprintln(stdout, "engine run: stopped; every accepted event was handled")
		logger.Info("stopped; every accepted event was handled")
		return
	}
	msg := "stopped; events are still queued for the next run"
	var attrs []any
	if len(c.left) == 0 {
		fmt.Fprintln(stdout, "engine run: stopped; nothing is queued for the next run")
		msg = "stopped; requests on the wire were cut"
	} else {
		queued := runner.DescribeCounts(c.left)
		fmt.Fprintf(stdout, "engine run: stopped; still queued for the next run: %s\n", queued)
		events := 0
		for _, n := range c.left {
			events += n
		}
		attrs = append(attrs, "events", events, "queued", queued)
	}
	for _, part := range []struct {
		counts     map[string]int
		attr, says string
	}{
		{c.unremoved, "delivered_not_removed", "of these, delivered already but not removed from the inbox (see the errors above: a full disk?), so the next run sends them again"},
		{c.deadUnwritten, "dead_letter_unwritten", "of these, failed but their dead letter could not be written (see the errors above: a full disk?), so the next run sends them again"},
		{c.stranded, "no_pipeline", "of these, for pipelines no file defines now (a removed or renamed file, or one that answers its callers), which stay until a pipeline of that name with a target runs"},
		{c.cut, "cut_on_wire", "cut on the wire by the stop (the peer may have taken them), so the next run may send them twice, from the inbox or, for CSV rows, from their file"},
	} {
		if len(part.counts) > 0 {
			counts := runner.DescribeCounts(part.counts)
			fmt.Fprintf(stdout, "engine run: %s: %s\n", part.says, counts)
			attrs = append(attrs, part.attr, counts)
		}
	}
	logger.Warn(msg, attrs...)
}

// slowOpenAfter is how long opening the data folder may take before the
// log says it is still at it.
const slowOpenAfter = 2 * time.Second

// loopbackHost reports whether host, of a host:port to listen on, is a
// loopback address or localhost. An empty host or 0.0.0.0 listens on
// every interface.
func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// listen opens the webhook listener; a test makes one that fails.
var listen = net.Listen

const (
	// Node's default; nginx's is 32 KiB (large_client_header_buffers 4
	// 8k). A webhook's headers are a fraction of either, even behind a
	// proxy.
	defaultMaxHeaderKiB = 16
	// Connections still sending their headers cost up to some 50 KiB
	// each at 16 KiB of headers (the headers read, net/http's buffers, a
	// goroutine's stack): about 50 MiB at most for 1,024 of them (a QA
	// run, 1,024 holding 19 KB of headers each: 47 MB of heap, 10 MB of
	// stacks, the engine's RSS at 67 MB). Idle ones give way, so only
	// callers in the middle of a request count; the load tests use 64 to
	// 128.
	defaultMaxConnections = 1024
)

// atConnectionCap logs, at most once a minute, that the webhook listener
// is full: its callers wait, which looks like a slow engine otherwise.
func atConnectionCap(logger *slog.Logger, max int) func() {
	var last atomic.Int64
	return func() {
		now := time.Now().UnixNano()
		if prev := last.Load(); now-prev >= int64(time.Minute) && last.CompareAndSwap(prev, now) {
			logger.Warn("the webhook listener holds as many connections as --max-connections allows; new ones wait until one closes", "max_connections", max)
		}
	}
}

// stopNowOn returns a context that ends when a signal arrives during a
// stop: the operator will not wait for in-flight deliveries. What they
// abandon is not lost: an event leaves the inbox only once delivered. A
// SIGHUP (hup) meanwhile reloads nothing, and is logged as such.
// release ends the watch once the stop is over.
func stopNowOn(signals, hup <-chan os.Signal, stdout io.Writer, logger *slog.Logger) (now context.Context, release func()) {
	now, cancel := context.WithCancel(context.Background())
	over := make(chan struct{})
	select {
	case <-hup: // one the reloader had already taken, before the stop
	default:
	}
	go func() {
		for {
			select {
			case sig := <-signals:
				name := "SIGTERM"
				if sig == os.Interrupt {
					name = "SIGINT"
				}
				// On stdout beside the stop's other lines, and in the log:
				// on stderr it was a line of plain text in a JSON log.
				fmt.Fprintf(stdout, "engine run: %s while stopping: stopping now; in-flight deliveries are abandoned and their events stay in the inbox for the next run\n", name)
				logger.Warn("stopping now: a second signal; in-flight deliveries are abandoned and their events stay in the inbox for the next run", "signal", name)
				cancel()
				return
			case <-hup:
				logger.Info("SIGHUP while stopping: nothing is reloaded now")
			case <-over:
				return
			}
		}
	}()
	return now, func() { close(over); cancel() }
}

// newLogger writes every line through masker: the runner masks what it
// logs, and this catches a line that does not (a filter's explanation
// quoting a secret it compared once did). Twice: each value as it is
// given (maskAttr), and then the line as the handler wrote it
// (maskingWriter), since a handler prints some values otherwise than
// their text (a pointer's target, a struct's fields, a MarshalText).
func newLogger(w io.Writer, format, level string, masker *secrets.Masker) (*slog.Logger, error) {
	if masker != nil {
		w = maskingWriter{w, masker}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level is debug, info, warn or error, not %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr { return maskAttr(masker, a) }
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			// Durations as the text format writes them ("299ms"): slog's
			// JSON gives bare nanoseconds ("in":79000000), no unit said.
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return maskAttr(masker, a)
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format is text or json, not %q", format)
}

// maskingWriter masks the secrets in what it writes: a slog handler
// writes each line with one Write.
type maskingWriter struct {
	w      io.Writer
	masker *secrets.Masker
}

func (m maskingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(m.w, m.masker.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// maskAttr masks the secrets in a value's text. A value that is not a
// string (an error, a list) keeps its own form unless its text holds a
// secret: then it is logged as the masked text.
func maskAttr(masker *secrets.Masker, a slog.Attr) slog.Attr {
	var text string
	switch a.Value.Kind() {
	case slog.KindString:
		text = a.Value.String()
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case []byte:
			text = string(v)
		case json.RawMessage:
			text = string(v)
		case error:
			text = v.Error()
		case fmt.Stringer:
			text = v.String()
		default:
			text = fmt.Sprint(v)
		}
	default:
		return a
	}
	if masked := masker.String(text); masked != text {
		a.Value = slog.StringValue(masked)
	}
	return a
}

// dataFolderProblem is what engine run says of a data folder it cannot
// open: one it may not write (a volume mounted read-only, or owned by
// another user) gets what to do, as the error alone did not say.
func dataFolderProblem(err error, uid int) string {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return fmt.Sprintf("%v (the engine needs to write its data folder: give --data a folder the user it runs as, uid %d, can write)", err, uid)
	}
	return err.Error()
}

// logStarted puts in the log what the banner tells people: where the
// engine listens, its build and the pipeline versions it runs, and, as a
// warning each, the routes anyone who reaches the listener can call. A
// JSON log had no line saying the engine started (an operator's QA pass).
func logStarted(logger *slog.Logger, addr, admin, dataDir string, pipelines []*engine.Pipeline, masker *secrets.Masker) {
	running := make([]string, 0, len(pipelines))
	for _, p := range pipelines {
		running = append(running, p.Name+"@"+p.Version)
	}
	logger.Info("engine started", "addr", addr, "admin_addr", admin, "data", dataDir, "build", engineVersion(), "pipelines", running)
	for _, p := range openRoutes(pipelines) {
		logger.Warn(engine.OpenRouteWarning,
			"pipeline", p.Name, "method", p.Source.Method, "path", masker.String(strings.Join(p.Source.Paths, " | ")))
	}
}

// logLines logs each line written to it, as an error or, when it says
// so, a warning: validate's diagnostics in a JSON log.
type logLines struct{ logger *slog.Logger }

func (l logLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if strings.Contains(line, ": warning: ") {
			l.logger.Warn(line)
		} else if line != "" {
			l.logger.Error(line)
		}
	}
	return len(p), nil
}

// bannerPipelines is how many pipelines the banner lists.
const bannerPipelines = 20

// runBanner is what engine run prints once it listens.
type runBanner struct {
	addr, dataDir string
	admin         string // the admin listener's address, "" for none
	sandboxBase   string // the emulators' base URL, "" without --sandbox
	pipelines     []*engine.Pipeline
	left          map[string]int // events in the inbox per pipeline at the start
	masker        *secrets.Masker
	untilDone     bool
}

// print says where the engine listens and what the last run left. A run
// with --until-done ends by itself, so it is not told how to send an
// event or how to stop.
func (b runBanner) print(w io.Writer) {
	base := "http://" + dialAddr(b.addr)
	fmt.Fprintf(w, "engine run: listening on %s (data in %s)\n", b.addr, b.dataDir)
	shown := b.pipelines
	if len(b.pipelines) > bannerPipelines {
		// 300 pipelines made a banner of 300 lines (a QA run); those open
		// to anyone come first, as what to look at.
		shown = slices.Clone(b.pipelines)
		slices.SortStableFunc(shown, func(x, y *engine.Pipeline) int {
			switch {
			case x.OpenRoute() == y.OpenRoute():
				return 0
			case x.OpenRoute():
				return -1
			}
			return 1
		})
		shown = shown[:bannerPipelines]
	}
	for _, p := range shown {
		switch p.Source.Type.Kind {
		case spec.HTTPSource:
			open := ""
			if p.Source.Auth == nil {
				open = "   (no auth: anyone who reaches the listener can send)"
			}
			fmt.Fprintf(w, "  %-36s %s %s%s\n", p.Name, p.Source.Method, b.masker.String(strings.Join(p.Source.Paths, " | ")), open)
		case spec.CSVSource:
			fmt.Fprintf(w, "  %-36s csv files\n", p.Name)
		}
	}
	if more := len(b.pipelines) - len(shown); more > 0 {
		where := "GET http://" + b.admin + "/status lists every route"
		if b.admin == "" {
			where = "with an --admin-addr, GET /status there lists every route"
		}
		fmt.Fprintf(w, "  ... and %d more pipelines (%s)\n", more, where)
	}
	stranded := map[string]int{}
	for name, n := range b.left {
		if !slices.ContainsFunc(b.pipelines, func(p *engine.Pipeline) bool { return p.Name == name }) {
			stranded[name] = n
			delete(b.left, name)
		}
	}
	if len(b.left) > 0 {
		fmt.Fprintf(w, "delivering events left by the last run: %s\n", runner.DescribeCounts(b.left))
	}
	if len(stranded) > 0 {
		fmt.Fprintf(w, "kept in the inbox for pipelines no file defines now (a removed or renamed file): %s; a pipeline of that name delivers them\n", runner.DescribeCounts(stranded))
	}
	if b.sandboxBase != "" {
		fmt.Fprintf(w, "\nSessionM and Braze emulators: %s (what each user got: %s/_sandbox/deliveries?user=u-1001)\n", b.sandboxBase, b.sandboxBase)
		if p := servingRoute(b.pipelines, http.MethodPost, "/hooks/sessionm/offers"); !b.untilDone && p != nil {
			if header, own, ok := curlAuth(p.Source.Auth); ok {
				if own {
					fmt.Fprintln(w, "Try a SessionM offer-issued event, with TOKEN set to the token the route's source.auth reads:")
				} else {
					fmt.Fprintln(w, "Try a SessionM offer-issued event:")
				}
				fmt.Fprintf(w, "  curl -s %s/hooks/sessionm/offers%s --data @examples/events/sessionm-offer-issued.json\n", base, header)
			}
		}
	}
	if b.untilDone {
		fmt.Fprintln(w, untilDoneBannerEnd)
	} else {
		fmt.Fprintln(w, "Stop with Ctrl-C.")
	}
}

// servingRoute is the pipeline that takes method on path, if any, so the
// banner offers a curl line only for a route that answers it.
func servingRoute(pipelines []*engine.Pipeline, method, path string) *engine.Pipeline {
	for _, p := range pipelines {
		if p.Source.Type.Kind == spec.HTTPSource && p.Source.Method == method && slices.Contains(p.Source.Paths, path) {
			return p
		}
	}
	return nil
}

// curlAuth is the -H argument of the banner's curl line for a route's
// auth, and false for auth curl cannot be given on one line (Basic,
// HMAC). A token of the sandbox's (examples/sandbox.env: public) is
// printed; another is not, so the line reads it from $TOKEN (own). The
// sandbox token was printed whatever the route took, and a QA run's curl
// got 401; then $SESSIONM_WEBHOOK_TOKEN was, which a route reading
// another secret does not take.
func curlAuth(a *engine.InboundAuth) (header string, own, ok bool) {
	switch {
	case a == nil:
		return "", false, true
	case a.Basic != nil || a.HMAC != nil:
		return "", false, false
	}
	if builtin, err := secrets.ParseEnv("examples/sandbox.env", examples.SandboxEnv); err == nil && slices.Contains(slices.Collect(maps.Values(builtin)), a.Bearer) {
		return " -H 'Authorization: Bearer " + a.Bearer + "'", false, true
	}
	return ` -H "Authorization: Bearer $TOKEN"`, true, true
}

// untilDoneBannerEnd ends the banner of a run with --until-done, where
// "Stop with Ctrl-C." ends the others.
const untilDoneBannerEnd = "Exits once the --csv files are read and every row has an outcome."

// csvImport is one --csv file and the pipeline it goes to.
type csvImport struct{ pipeline, file string }

func csvTargets(args []string, pipelines []*engine.Pipeline) ([]csvImport, error) {
	var csvPipelines []string
	for _, p := range pipelines {
		if p.Source.Type.Kind == spec.CSVSource {
			csvPipelines = append(csvPipelines, p.Name)
		}
	}
	var out []csvImport
	for _, a := range args {
		name, file, named := strings.Cut(a, "=")
		if !named {
			if len(csvPipelines) != 1 {
				return nil, fmt.Errorf("--csv %s: name the pipeline as PIPELINE=FILE; csv pipelines here: %s", a, strings.Join(csvPipelines, ", "))
			}
			name, file = csvPipelines[0], a
		}
		found := false
		for _, p := range csvPipelines {
			found = found || p == name
		}
		if !found {
			return nil, fmt.Errorf("--csv %s: %q is not a csv pipeline here (csv pipelines: %s)", a, name, strings.Join(csvPipelines, ", "))
		}
		info, err := os.Stat(file)
		if target, ok := runner.MissingLinkTarget(file, err); ok {
			return nil, fmt.Errorf("--csv %s: it is a symbolic link to %s, which does not exist; name the CSV file itself, or a link to one that exists", a, target)
		}
		if err != nil {
			return nil, fmt.Errorf("--csv %s: %v", a, err)
		}
		if info.IsDir() {
			return nil, fmt.Errorf("--csv %s: it is a folder; name a CSV file (the files dropped into a csv pipeline's source.inbox folder are imported without --csv)", a)
		}
		if !info.Mode().IsRegular() {
			// Opened, a named pipe with no writer would wait forever, and
			// hold up the engine's stop.
			return nil, fmt.Errorf("--csv %s: it is %s (or a link to one), not a regular file; save the CSV as a file and name that", a, runner.SpecialFile(info.Mode()))
		}
		out = append(out, csvImport{name, file})
	}
	return out, nil
}

// csvProgressEvery is how often --csv progress is shown on a terminal and
// --until-done looks again for rows still waiting for a retry.
var csvProgressEvery = 500 * time.Millisecond

// runImports reads the --csv files one after the other, showing progress
// on a terminal, of files dropped into an inbox folder too. The channel
// closes once every row of the --csv files has an outcome; without them
// it never closes. failed reports whether an import returned an error,
// which its record may no longer tell: past its bound (a run of over a
// thousand files) the runner lets settled records go, failed ones too.
func runImports(ctx context.Context, r *runner.Runner, imports []csvImport, stderr io.Writer, notImported func(error)) (done <-chan struct{}, failed func() bool) {
	closed := make(chan struct{})
	var returned atomic.Int32 // imports that returned, in the order of imports
	var anyFailed atomic.Bool
	terminal := isTerminal(stderr)
	if len(imports) == 0 {
		if terminal {
			go showFolderProgress(ctx, r.CSVImports, stderr)
		}
		return closed, anyFailed.Load
	}
	// read closes when the last file is read, so --until-done exits then
	// rather than at the next tick, when its rows already have outcomes.
	read := make(chan struct{})
	// A --csv file may sit in a watched inbox folder: the watcher leaves
	// it to its --csv import, which files it away after.
	held := make([]func(), len(imports))
	for i, im := range imports {
		held[i] = r.HoldCSV(im.file)
	}
	go func() {
		defer close(read)
		defer func() {
			for _, release := range held {
				release()
			}
		}()
		for i, im := range imports {
			// Filed away after the last import that names it: a file named
			// twice is imported twice (the second finds it done).
			last := !slices.ContainsFunc(imports[i+1:], func(later csvImport) bool { return sameFile(later.file, im.file) })
			if _, err := r.ImportNamedCSV(ctx, im.pipeline, im.file, last); err != nil {
				notImported(err)
				anyFailed.Store(true)
			}
			returned.Add(1)
			held[i]()
			if ctx.Err() != nil {
				return
			}
		}
	}()
	go func() {
		tick := time.NewTicker(csvProgressEvery)
		defer tick.Stop()
		readDone := read
		rates := &progressRates{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-readDone:
				readDone = nil // checked once; then the ticks
			}
			// Counted before the records are read: an import counted
			// had its record made by then.
			n := int(returned.Load())
			progress := r.CSVImports()
			if terminal {
				showProgress(stderr, progress, time.Now(), rates, terminalWidth(stderr))
			}
			if importsSettled(progress, imports[:n], imports[n:]) && csvDrained(r, imports) {
				if terminal {
					fmt.Fprintln(stderr)
				}
				close(closed)
				if terminal {
					showFolderProgress(ctx, r.CSVImports, stderr) // files dropped into the folders later
				}
				return
			}
		}
	}()
	return closed, anyFailed.Load
}

// showFolderProgress keeps a status line on the terminal for the files
// dropped into inbox folders while one is imported, and ends it with a
// line break once none is.
func showFolderProgress(ctx context.Context, imports func() []runner.CSVProgress, stderr io.Writer) {
	tick := time.NewTicker(csvProgressEvery)
	defer tick.Stop()
	showing := false
	rates := &progressRates{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		busy := slices.DeleteFunc(imports(), func(p runner.CSVProgress) bool { return p.Settled() || p.Rows == 0 })
		switch {
		case len(busy) > 0:
			showProgress(stderr, busy, time.Now(), rates, terminalWidth(stderr))
			showing = true
		case showing:
			fmt.Fprintln(stderr)
			showing = false
		}
	}
}

func untilDoneChan(enabled bool, done <-chan struct{}) <-chan struct{} {
	if !enabled {
		return nil // a nil channel never fires
	}
	return done
}

// importsSettled reports whether every --csv file of this run has every
// row's outcome: those whose import returned and those still to come.
// Rows an earlier run left in the inbox, of other files too, are
// csvDrained's.
func importsSettled(ps []runner.CSVProgress, returned, toCome []csvImport) bool {
	for i, im := range slices.Concat(returned, toCome) {
		// Every import of the file (named twice, or also dropped into the
		// inbox folder), and at least one; not a record of rows an earlier
		// run left (of the file's content before it was replaced). A file
		// whose import returned may have none: the runner lets settled
		// records go past its bound.
		of := slices.DeleteFunc(slices.Clone(ps), func(p runner.CSVProgress) bool { return p.File != im.file || p.EarlierOnly() })
		if len(of) == 0 && i >= len(returned) || slices.ContainsFunc(of, func(p runner.CSVProgress) bool { return !p.Settled() }) {
			return false
		}
	}
	return true
}

// importsFailed reports whether a --csv file of this run ended with an
// error (one that could not be read, or rewritten while it was imported).
// A stop before the end is no error: the file resumes next time.
func importsFailed(ps []runner.CSVProgress, imports []csvImport) bool {
	for _, p := range ps {
		if p.Err != "" && slices.ContainsFunc(imports, func(im csvImport) bool { return im.file == p.File }) {
			return true
		}
	}
	return false
}

// statusLines keeps the CSV status line (written by showProgress, each
// time starting with \r) apart from the other lines on a terminal: a log
// line that comes while the status shows clears it first, instead of
// being written on after it; the next status redraws it.
type statusLines struct {
	mu      sync.Mutex
	w       io.Writer
	showing bool
}

func (s *statusLines) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(p) > 0 && p[0] == '\r':
		s.showing = p[len(p)-1] != '\n'
	case s.showing && string(p) == "\n": // the status line's end
		s.showing = false
	case s.showing:
		if _, err := io.WriteString(s.w, "\r\x1b[K"); err != nil {
			return 0, err
		}
		s.showing = false
	}
	return s.w.Write(p)
}

// sameFile reports whether a and b name one file, however they are
// written (relative, through a link).
func sameFile(a, b string) bool {
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return os.SameFile(ia, ib)
}

// terminalWidth is the width of the terminal w writes to, or 0 when it
// cannot be told.
func terminalWidth(w io.Writer) int {
	if s, ok := w.(*statusLines); ok {
		w = s.w
	}
	if f, ok := w.(*os.File); ok {
		return fileTerminalWidth(f)
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	if _, ok := w.(*statusLines); ok {
		return true
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// showProgress rewrites one status line: rows done of those to send,
// rate, ETA. rates, unless nil, gives the rate of the last seconds.
func showProgress(w io.Writer, ps []runner.CSVProgress, now time.Time, rates *progressRates, width int) {
	for _, p := range ps {
		if p.Settled() || p.EarlierOnly() {
			continue
		}
		e := estimateCSV(p, now)
		if rate, ok := rates.recent(p, now, e.done); ok {
			e = e.at(rate)
		}
		of, eta, shortETA := "", "ETA ?", "ETA ?"
		switch {
		case e.exact:
			of = fmt.Sprintf(" of %d", e.total)
		case e.known:
			of = fmt.Sprintf(" of ~%d", e.total)
		}
		switch {
		case e.onlyRetries:
			// Their retries come at their backoff, not at the rate: an
			// ETA of 0s stood for minutes (a QA run).
			eta = fmt.Sprintf("the rest (%d) waiting for a retry", p.Retrying)
			shortETA = fmt.Sprintf("%d retrying", p.Retrying)
		case e.eta >= 0:
			eta = "ETA " + e.eta.Round(time.Second).String()
			shortETA = eta
		}
		if p.Retrying > 0 && !e.onlyRetries {
			eta = fmt.Sprintf("%d waiting for a retry, %s", p.Retrying, eta)
			shortETA = fmt.Sprintf("%d retrying, %s", p.Retrying, shortETA)
		}
		name := filepath.Base(p.File)
		failed := p.Failed + p.Broken
		rest := fmt.Sprintf(": %d%s rows done, %d filtered out, %d failed, %.0f rows/s, %s", e.done, of, p.Filtered, failed, e.rate, eta)
		if width <= 0 {
			fmt.Fprintf(w, "\r%s%s   ", name, rest)
			return
		}
		// Wider than the terminal, each redraw left a line behind and the
		// rate and ETA were never seen (a QA run with a long export name);
		// so shorter words, then fewer: with rows waiting for a retry, 80
		// columns showed neither the ETA nor more than 7 letters of the
		// file's name (a review).
		of = strings.Replace(of, " of ", "/", 1)
		short := fmt.Sprintf(": %d%s done, %d filtered, %d failed, %.0f/s, %s", e.done, of, p.Filtered, failed, e.rate, eta)
		fewer := fmt.Sprintf(": %d%s done, %.0f/s, %s", e.done, of, e.rate, shortETA)
		if failed > 0 {
			fewer = fmt.Sprintf(": %d%s done, %d failed, %.0f/s, %s", e.done, of, failed, e.rate, shortETA)
		}
		fmt.Fprintf(w, "\r%s\x1b[K", fitWidth(name, width-1, rest, short, fewer))
		return
	}
}

// fitWidth is name and the first of rests (the line's words after it,
// fuller first) that fits in width columns with the name shortened in its
// middle to no fewer than 8; failing all, the last one, cut. Columns, not
// characters: a name in Japanese or Chinese takes two a character, and
// counted as one it made the line wrap, which leaves a copy at each redraw.
func fitWidth(name string, width int, rests ...string) string {
	for _, rest := range rests {
		if columns(name)+columns(rest) <= width {
			return name + rest
		}
		if keep := width - columns(rest) - 1; keep >= 8 && keep < columns(name) {
			head := keep / 2
			return headColumns(name, head) + "…" + tailColumns(name, keep-head) + rest
		}
	}
	line := name + rests[len(rests)-1]
	if columns(name) > 7 {
		line = "…" + tailColumns(name, 7) + rests[len(rests)-1]
	}
	return headColumns(line, width)
}

// columns is how many terminal columns s takes: two for a wide character
// (East Asian wide or full-width), none for a combining mark or a format
// character (a zero-width joiner).
func columns(s string) int {
	n := 0
	for _, r := range s {
		n += runeColumns(r)
	}
	return n
}

func runeColumns(r rune) int {
	if r == '\ufe0f' {
		// Emoji presentation: most terminals draw the character before it
		// (❤, counted as one) two columns wide.
		return 1
	}
	if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
		return 0
	}
	if k := textwidth.LookupRune(r).Kind(); k == textwidth.EastAsianWide || k == textwidth.EastAsianFullwidth {
		return 2
	}
	return 1
}

// headColumns is the longest start of s that takes at most n columns.
func headColumns(s string, n int) string {
	used := 0
	for i, r := range s {
		if used += runeColumns(r); used > n {
			return s[:i]
		}
	}
	return s
}

// tailColumns is the longest end of s that takes at most n columns and
// starts with a character of its own, not a mark or joiner of the one
// before it, which would land on the "…" before it.
func tailColumns(s string, n int) string {
	runes := []rune(s)
	used := 0
	for i := len(runes) - 1; i >= 0; i-- {
		if used += runeColumns(runes[i]); used > n {
			tail := runes[i+1:]
			for len(tail) > 0 && (runeColumns(tail[0]) == 0 || tail[0] == '\ufe0f') {
				tail = tail[1:]
			}
			return string(tail)
		}
	}
	return s
}

// progressRates keeps the rows each import had done at the status lines
// of the last rateSpan, for the rate of the moment: the average since
// the start sank through a tail of retries (643 rows/s where nothing
// moved, in a QA run) and rose slowly after a slow start.
type progressRates struct {
	samples map[string][]rateSample
}

type rateSample struct {
	at   time.Time
	done int
}

const rateSpan = 10 * time.Second

// recent is the rate of rows done over the last rateSpan, once the
// samples span a second; ok is false before, or when pr is nil.
func (pr *progressRates) recent(p runner.CSVProgress, now time.Time, done int) (float64, bool) {
	if pr == nil {
		return 0, false
	}
	if pr.samples == nil {
		pr.samples = map[string][]rateSample{}
	}
	key := p.Pipeline + "\x00" + p.File + "\x00" + p.Started.String()
	// The newest sample past the span stays, as the baseline: after a
	// gap between lines the rate is still over the time it covers.
	kept := pr.samples[key]
	for len(kept) > 1 && now.Sub(kept[1].at) >= rateSpan {
		kept = kept[1:]
	}
	kept = append(kept, rateSample{now, done})
	pr.samples[key] = kept
	first := kept[0]
	if span := now.Sub(first.at); span >= time.Second {
		return float64(done-first.done) / span.Seconds(), true
	}
	return 0, false
}

// csvEstimate is where an import stands for its status line.
type csvEstimate struct {
	done  int           // sent rows with an outcome
	total int           // rows to send in all, if known
	known bool          // total is known, at least roughly
	exact bool          // total is exact: the whole file is read
	rate  float64       // rows done a second
	eta   time.Duration // until every row is done; -1 while it cannot be told
	// onlyRetries: the file is read and every row left waits in the
	// inbox for a retry.
	onlyRetries bool
}

// at is e with the rate rate instead.
func (e csvEstimate) at(rate float64) csvEstimate {
	e.rate, e.eta = rate, -1
	if rate > 0 && e.known && !e.onlyRetries {
		e.eta = time.Duration(float64(max(e.total-e.done, 0)) / rate * float64(time.Second))
	}
	return e
}

// estimateCSV tells how far p is at now. Rows are read only as fast as
// the workers take them, so the number of rows is known only at the very
// end: until then the rows not read yet are estimated from the bytes not
// read yet, at the rows per byte read so far.
func estimateCSV(p runner.CSVProgress, now time.Time) csvEstimate {
	e := csvEstimate{done: p.Done(), eta: -1}
	if elapsed := now.Sub(p.Started).Seconds(); elapsed > 0 {
		e.rate = float64(e.done) / elapsed
	}
	switch {
	case p.ReadDone:
		e.total, e.known, e.exact = p.Queued, true, true
		if e.onlyRetries = p.Retrying > 0 && e.total-e.done <= p.Retrying; e.onlyRetries {
			return e
		}
	case p.Bytes > 0:
		unread := float64(max(p.Size-p.Bytes, 0)) * float64(p.Rows) / float64(p.Bytes)
		e.total, e.known = p.Queued+int(math.Round(unread)), true
	default:
		return e
	}
	if e.rate > 0 {
		left := max(e.total-e.done, 0)
		e.eta = time.Duration(float64(left) / e.rate * float64(time.Second))
	}
	return e
}

// printCSVSummary prints a line per file.
func printCSVSummary(w io.Writer, ps []runner.CSVProgress) {
	for _, p := range ps {
		if p.Err != "" && p.Rows == 0 {
			fmt.Fprintf(w, "csv %s: not imported: %s\n", p.File, p.Err)
			continue
		}
		earlier := ""
		if e := p.Earlier; e != (runner.RowOutcomes{}) {
			earlier = fmt.Sprintf(" (of them, rows an earlier run left in the inbox or as dead letters: %d delivered, %d filtered out, %d dead-lettered now)", e.Delivered, e.Filtered, e.Failed)
		}
		if !p.Finished && p.Rows == 0 && !p.ReadDone && p.Err == "" {
			what := "not imported by this run"
			if p.EarlierOnly() && slices.ContainsFunc(ps, func(q runner.CSVProgress) bool { return q.File == p.File && !q.EarlierOnly() }) {
				what = "the file's content before it was replaced, not imported by this run (an earlier run's import of it may not have finished: to finish it, import that content again, under any name)"
			}
			fmt.Fprintf(w, "csv %s (%s): %s; rows an earlier run left in the inbox or as dead letters: %d delivered, %d filtered out, %d dead-lettered\n",
				p.File, p.Pipeline, what, p.Earlier.Delivered, p.Earlier.Filtered, p.Earlier.Failed)
			continue
		}
		// Rows of this import only: the pipeline's inbox may hold rows
		// of its other files.
		state := "done"
		switch {
		case p.Err != "":
			state = "stopped: " + p.Err
			if p.Retrying > 0 {
				state += fmt.Sprintf("; %d of the rows it sent wait in the inbox for a retry", p.Retrying)
			}
		case !p.Finished:
			state = "unfinished; importing the file again resumes after the rows that have an outcome"
			if p.Retrying > 0 {
				// Rows the stop caught before their request, or waiting for a retry.
				state += fmt.Sprintf(" or wait in the inbox; %d %s there, which the next run sends first", p.Retrying, rowsWait(p.Retrying))
			}
		case p.Retrying > 0:
			state = fmt.Sprintf("read; %d %s in the inbox for a retry, which the next run sends first", p.Retrying, rowsWait(p.Retrying))
		case !p.Settled():
			state = "read; some rows have no outcome yet"
		}
		if p.RunsOver > 0 {
			state += fmt.Sprintf("; %s over lines that look like rows (a stray quote?), which engine dry-run --csv names", plural(p.RunsOver, "row"))
		}
		fmt.Fprintf(w, "csv %s (%s): %s read, %d sent, %d delivered, %d filtered out, %d dead-lettered, %s, %d handled before%s; %s\n",
			p.File, p.Pipeline, plural(p.Rows, "row"), p.Queued, p.Delivered, p.Filtered, p.Failed, plural(p.Broken, "broken row"), p.Skipped, earlier, state)
	}
}

func rowsWait(n int) string {
	if n == 1 {
		return "row waits"
	}
	return "rows wait"
}

// csvDrained reports whether the CSV pipelines hold no queued rows, rows
// an earlier run queued included. The rows of a pipeline a reload removed
// stay in the inbox for when it comes back: this run cannot deliver them.
func csvDrained(r *runner.Runner, imports []csvImport) bool {
	for _, im := range imports {
		if r.Running(im.pipeline) != nil && r.Depth(im.pipeline) > 0 {
			return false
		}
	}
	return true
}

// Garbage collection settings of engine run and engine sandbox, unless
// GOGC or GOMEMLIMIT say otherwise. The engine keeps little alive (20–40
// MiB private in the load tests) and allocates per event, so Go's default
// (collect each time the heap doubles) collected every few milliseconds
// under load: GOGC=400 made F2 about 20% faster (12,000 -> 14,600 rows/s)
// for about 20 MiB more. The soft limit stops the heap from growing to
// five times what is alive when that is more than a little: F4, whose
// deliveries trail its webhooks (Braze's rate limit), reached 113 MiB
// private and 146 MiB in all under a fixed limit of 512 MiB, at the
// issue's bound of 150 MB. The limit is 96 MiB, or twice what is alive
// when more is (followLiveHeap): a full respond cache (64 MB), or the
// events the lanes hold through an outage (up to 4,096 waiting per lane),
// are alive, not garbage, and under a limit that left them no room the
// collector would run almost without pause.
const (
	runGCPercent   = 400
	runMemoryLimit = 96 << 20
	// emulatorMemoryLimit is engine sandbox's: its journal keeps up to
	// 100,000 requests alive by default.
	emulatorMemoryLimit = 512 << 20
)

// followLiveHeap sets the soft memory limit each second, until ctx ends,
// to memoryLimitFor what the last collection found alive.
func followLiveHeap(ctx context.Context) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return // the user's
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	set := int64(runMemoryLimit)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if limit := memoryLimitFor(liveBytes()); limit != set {
				debug.SetMemoryLimit(limit)
				set = limit
			}
		}
	}
}

// memoryLimitFor is engine run's soft memory limit when live bytes are
// alive: 96 MiB, or twice live when that is more, so the collector never
// runs more often than Go's default would.
func memoryLimitFor(live int64) int64 { return max(runMemoryLimit, 2*live) }

// liveBytes is what the last collection found alive, goroutine stacks
// included (each event waiting for its retry has one).
func liveBytes() int64 {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(samples)
	var n int64
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			n += int64(s.Value.Uint64())
		}
	}
	return n
}

func tuneGC(getenv func(string) string, memoryLimit int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(runGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
