package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/loyalty-connector/engine/sandbox"
)

func runSandbox(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sandbox", "engine sandbox [flags]",
		`Serves emulators of the SessionM and Braze APIs that the pipelines use, on
one listener, for demos and staging tests without touching either platform:

  /sessionm/core      SessionM Core: customer tags, users
  /sessionm/connect   SessionM Connect: get_user_offers, acquisition/issue
  /braze              Braze REST: campaigns and Canvases trigger/send, users/track
  /_sandbox/          control API: request journal, deliveries per user,
                      faults, reset, and senders that play Braze webhook
                      campaigns and SessionM events against your engine

On start it prints the NAME=value settings that point pipelines/connections.yaml
at it, with the sandbox credentials it accepts (they are not secrets).
Seeds (users, wallets, offers, campaigns, Canvases, segments) come from the
copy of examples/sandbox built into the binary, or from --seed DIR.
Stop it with Ctrl-C or SIGTERM.`, stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen on `host:port` (port 0 picks a free one)")
	seedDir := fs.String("seed", "", "`folder` holding sessionm.yaml and braze.yaml (default: the built-in examples/sandbox)")
	envOut := fs.String("env-out", "", "also write the settings to `FILE`, for engine ... --env-file FILE")
	journalSize := fs.Int("journal-size", sandbox.DefaultJournalSize, "how many requests the journal keeps (older ones are dropped and counted)")
	journalMiB := fs.Int("journal-mib", sandbox.DefaultJournalBytes>>20, "`MiB` of request bodies the journal keeps in all (older requests are dropped and counted)")
	errorsAs200 := fs.Bool("sessionm-errors-as-200", false, "answer SessionM errors with HTTP 200 and \"status\":\"error\", as SessionM's docs describe, instead of 4xx; 401, 404, 429 and 5xx keep their status")
	sessionmRate := fs.Float64("sessionm-rate-limit", 0, "SessionM requests per second per API key before 429 rate_limited (0: no limit; SessionM publishes none)")
	randSeed := fs.Uint64("rand-seed", 0, "seed for fault ratios, to repeat a run (0: random)")
	cpuProf := fs.String("cpu-profile", "", "write a CPU profile to `FILE` until the sandbox stops (go tool pprof reads it)")
	generated := fs.Int("generated-users", 0, "add `N` synthetic users (load-000000 ...) to both platforms, for load tests (default: the seeds' generated_users)")
	positional, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	if len(positional) > 0 {
		fmt.Fprintf(stderr, "engine sandbox: takes no arguments, got %q; see engine sandbox --help\n", strings.Join(positional, " "))
		return exitUsage
	}
	// Taken, these meant something else than written: NaN answered
	// every SessionM request 429, -1 was no limit or the default (a QA
	// run).
	switch {
	case math.IsNaN(*sessionmRate) || math.IsInf(*sessionmRate, 0) || *sessionmRate < 0:
		fmt.Fprintf(stderr, "engine sandbox: --sessionm-rate-limit %v: give requests per second, 0 or more (0: no limit)\n", *sessionmRate)
		return exitUsage
	case *journalSize < 1:
		fmt.Fprintf(stderr, "engine sandbox: --journal-size %d: give how many requests the journal keeps, 1 or more (default %d)\n", *journalSize, sandbox.DefaultJournalSize)
		return exitUsage
	case *journalMiB < 1 || *journalMiB > 1<<20:
		fmt.Fprintf(stderr, "engine sandbox: --journal-mib %d: give the MiB of bodies the journal keeps, 1 or more (default %d)\n", *journalMiB, sandbox.DefaultJournalBytes>>20)
		return exitUsage
	case *generated < 0:
		fmt.Fprintf(stderr, "engine sandbox: --generated-users %d: give a number of users, 0 or more\n", *generated)
		return exitUsage
	}
	if *cpuProf != "" {
		stopProfile, err := startCPUProfile(*cpuProf)
		if err != nil {
			fmt.Fprintf(stderr, "engine sandbox: --cpu-profile: %v\n", err)
			return exitUsage
		}
		defer stopProfile()
	}
	// The emulators allocate per request and keep a journal of up to
	// --journal-size requests alive, so with Go's default collector a load
	// test spent a tenth of the sandbox's CPU marking that journal again
	// and again, CPU taken from the engine it measures. engine run
	// --sandbox runs the same emulators under these settings already.
	tuneGC(os.Getenv, sandboxMemoryLimit(*journalSize, *journalMiB<<20))
	opts := sandbox.Options{SeedDir: *seedDir, JournalSize: *journalSize, JournalBytes: *journalMiB << 20, RandSeed: *randSeed, GeneratedUsers: *generated}
	opts.SessionM.ErrorsAs200 = *errorsAs200
	opts.SessionM.RateLimit = *sessionmRate
	sb, err := sandbox.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "engine sandbox: %v\n", err)
		return exitProblem
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "engine sandbox: cannot listen on %s: %v (is another sandbox running? try --addr 127.0.0.1:0)\n", *addr, err)
		return exitProblem
	}
	// A sandbox on every address (--addr :8081) is written as reached
	// from here: the engine's client sends http://[::]:8081 and
	// http://0.0.0.0:8081 through HTTP_PROXY, credentials and all, as
	// only localhost and loopback addresses bypass it.
	base := "http://" + dialAddr(ln.Addr().String())
	settings, extra := sb.Settings(base)
	if *envOut != "" {
		if err := writeEnvFile(*envOut, settings); err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "engine sandbox: %v\n", err)
			return exitProblem
		}
	}
	printSandboxBanner(stdout, base, *seedDir, *envOut, settings, extra)
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(stderr, "engine sandbox: warning: listening on %s, not loopback; anyone who can reach it can use the credentials above, and make its senders post to any URL from this machine\n", ln.Addr())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sb.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "engine sandbox: %v\n", err)
		return exitProblem
	}
	fmt.Fprintln(stdout, "engine sandbox: stopped")
	return exitOK
}

// journalEntryBytes is what one journal entry keeps alive besides its
// body, with room to spare: some 410 bytes for F1's tags requests (a
// million of them held 410 MB).
const journalEntryBytes = 1 << 10

// sandboxMemoryLimit is the emulators' soft memory limit plus room for the
// journal entries and bodies beyond the defaults: a load test that keeps a
// million requests would otherwise hold about as much as the limit
// alive, and near it the collector runs almost without pause (the sandbox
// took a fifth to two fifths more CPU than under Go's default).
func sandboxMemoryLimit(journalSize, journalBytes int) int64 {
	return emulatorMemoryLimit + int64(max(0, journalSize-sandbox.DefaultJournalSize))*journalEntryBytes +
		int64(max(0, journalBytes-sandbox.DefaultJournalBytes))
}

func printSandboxBanner(w io.Writer, base, seedDir, envOut string, settings, extra []sandbox.Setting) {
	u := sandbox.URLsFor(base)
	seeds := "built-in examples/sandbox"
	if seedDir != "" {
		seeds = seedDir
	}
	fmt.Fprintf(w, "engine sandbox: SessionM and Braze emulators on %s (seeds: %s)\n", u.Base, seeds)
	fmt.Fprintf(w, "  SessionM Core     %s\n", u.SessionMCore)
	fmt.Fprintf(w, "  SessionM Connect  %s\n", u.SessionMConnect)
	fmt.Fprintf(w, "  Braze REST        %s\n", u.Braze)
	fmt.Fprintf(w, "  control API       %s/\n", u.Control)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "These settings point pipelines/connections.yaml at it (sandbox credentials, not secrets):")
	for _, s := range settings {
		fmt.Fprintf(w, "%s=%s\n", s.Name, s.Value)
	}
	for _, s := range extra {
		fmt.Fprintf(w, "also accepted: %s: %s\n", s.Name, s.Value)
	}
	if envOut != "" {
		// The first --env-file wins, so the sandbox's addresses override
		// the defaults in examples/sandbox.env, which adds the engine's
		// own webhook tokens.
		fmt.Fprintf(w, "(written to %s: run the engine with --env-file %s --env-file examples/sandbox.env)\n", envOut, envOut)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Try: curl -s '%s/requests?limit=5'\n", u.Control)
	fmt.Fprintln(w, "Stop with Ctrl-C.")
}

func writeEnvFile(path string, settings []sandbox.Setting) error {
	var b strings.Builder
	b.WriteString("# Written by engine sandbox: settings that point pipelines/connections.yaml at it.\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s=%s\n", s.Name, s.Value)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing --env-out: %w", err)
	}
	return nil
}

// dialAddr is the host:port a client on this machine dials to reach a
// listener on addr. Go listens on the unspecified address (0.0.0.0 or
// ::, reported as :: on a dual-stack host) on IPv4 and IPv6 at once, so
// 127.0.0.1 reaches it, even where IPv6 loopback is off.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// inProcessSandbox starts the emulators on addr (a free loopback port
// when empty) for a command that runs pipelines against them (run and
// dry-run --sandbox), and returns its base URL and the settings that
// point connections.yaml at it.
func inProcessSandbox(ctx context.Context, addr string) (base string, settings map[string]string, stop func(), err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		return "", nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, nil, fmt.Errorf("starting the emulators on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sb.Serve(ctx, ln)
	}()
	base = "http://" + dialAddr(ln.Addr().String())
	env, _ := sb.Settings(base)
	settings = make(map[string]string, len(env))
	for _, s := range env {
		settings[s.Name] = s.Value
	}
	return base, settings, func() { cancel(); <-done }, nil
}
