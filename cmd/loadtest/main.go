// Command loadtest measures engine run the way users run it: a built engine
// binary and the SessionM and Braze emulators (engine sandbox) as separate
// processes over loopback, webhooks sent by concurrent keep-alive clients,
// and deliveries read back from the emulators' request journal.
//
//	go run ./cmd/loadtest --scenario f1 --events 20000
//	go run ./cmd/loadtest --scenario f4 --events 20000 --json
//	go run ./cmd/loadtest --scenario f1 --events 20000 --rate 2000
//
// Each scenario gets a fresh sandbox, engine and data folder, so the CPU
// and memory figures of one do not leak into the next. It needs Linux: the
// engine's CPU time and peak memory come from /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const modulePath = "github.com/loyalty-connector/engine"

// config is the command line.
type config struct {
	engine      string
	scenarios   []string
	events      int
	rows        int
	rate        float64
	senders     int
	users       int
	pipelines   string
	sandboxEnv  string
	offerEvent  string
	dataDir     string
	wait        time.Duration
	inboxCheck  bool
	jsonOut     bool
	keepTempDir bool
	cpuProfile  string
	holdTarget  time.Duration
	// adminFlag: the engine has --admin-addr (newer engines do).
	adminFlag bool
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: go run ./cmd/loadtest [flags]

Starts engine sandbox and engine run as child processes, sends webhooks at
the engine and reports what was accepted, how fast, and when the emulators
saw each event delivered. Run it from the repository root.`)
		fs.PrintDefaults()
	}
	var cfg config
	scenario := fs.String("scenario", "all", "`which`: f1 (Braze webhook -> SessionM tags), f4 (SessionM offer -> Braze campaign), f2 (Braze segment CSV -> SessionM tags) or all")
	fs.StringVar(&cfg.engine, "engine", "", "engine binary to run (default: go build ./cmd/engine into a temporary folder)")
	fs.IntVar(&cfg.events, "events", 20000, "webhooks to send per scenario (f1, f4)")
	fs.IntVar(&cfg.rows, "rows", 100000, "rows of the CSV file f2 imports")
	fs.Float64Var(&cfg.rate, "rate", 0, "events per second (0: as fast as the senders go)")
	fs.IntVar(&cfg.senders, "senders", 64, "concurrent clients, each on a keep-alive connection")
	fs.IntVar(&cfg.users, "users", 0, "generated users to spread events over (default: one per event, which per-event latencies need)")
	fs.StringVar(&cfg.pipelines, "pipelines", "pipelines", "pipelines `folder` engine run serves")
	fs.StringVar(&cfg.sandboxEnv, "sandbox-env", "examples/sandbox.env", "second --env-file of engine run (the engine's webhook tokens)")
	fs.StringVar(&cfg.offerEvent, "offer-event", "examples/events/sessionm-offer-issued.json", "the SessionM event F4 bodies are shaped like")
	fs.StringVar(&cfg.dataDir, "data", "", "`folder` for the engine's inbox (default: a temporary folder; give a disk, not tmpfs, or fsync costs nothing)")
	fs.DurationVar(&cfg.wait, "wait", 2*time.Minute, "how long to wait for every accepted event to be delivered")
	fs.BoolVar(&cfg.inboxCheck, "inbox-depth", true, "fail unless engine run, stopped with SIGTERM, reports an empty inbox")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&cfg.keepTempDir, "keep", false, "keep the temporary folder (the inbox, the sandbox settings) and the inbox under --data, for a look afterwards")
	fs.StringVar(&cfg.cpuProfile, "cpu-profile", "", "have engine run write a CPU profile to `FILE` and engine sandbox to FILE.sandbox, for go tool pprof (with --scenario all: FILE.f1, FILE.f1.sandbox and so on)")
	fs.DurationVar(&cfg.holdTarget, "hold-target", 0, "have the emulators answer the target requests 429 with Retry-After for this long from the first one, as a throttled Braze or SessionM would: the engine pauses the connection and only accepts meanwhile, which measures the inbox's own rate (0: no hold)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "loadtest: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("takes no arguments, got %q", strings.Join(fs.Args(), " "))
	}
	switch *scenario {
	case "f1", "f4", "f2":
		cfg.scenarios = []string{*scenario}
	case "all":
		cfg.scenarios = []string{"f1", "f4", "f2"}
	default:
		return usage("--scenario is f1, f4, f2 or all, not %q", *scenario)
	}
	if cfg.rows <= 0 {
		return usage("--rows must be above 0")
	}
	if cfg.events <= 0 || cfg.senders <= 0 || cfg.rate < 0 || cfg.users < 0 || cfg.holdTarget < 0 {
		return usage("--events and --senders must be above 0, --rate, --users and --hold-target 0 or more")
	}
	if cfg.users == 0 {
		cfg.users = cfg.events
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "loadtest-")
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if cfg.keepTempDir {
		fmt.Fprintf(stderr, "loadtest: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "loadtest: "+format+"\n", a...) }
	if cfg.engine == "" {
		bin, err := buildEngine(ctx, tmp)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		cfg.engine = bin
		progress("built %s", bin)
	}

	help, _ := exec.CommandContext(ctx, cfg.engine, "run", "--help").CombinedOutput()
	cfg.adminFlag = strings.Contains(string(help), "-admin-addr")
	if cfg.cpuProfile != "" {
		sandboxHelp, _ := exec.CommandContext(ctx, cfg.engine, "sandbox", "--help").CombinedOutput()
		for sub, h := range map[string][]byte{"run": help, "sandbox": sandboxHelp} {
			if !strings.Contains(string(h), "-cpu-profile") {
				return usage("--cpu-profile: %s %s has no --cpu-profile; rebuild it (go build ./cmd/engine) or leave out --engine to have one built", cfg.engine, sub)
			}
		}
	}

	var results []*result
	failed := false
	for _, name := range cfg.scenarios {
		if ctx.Err() != nil {
			failed = true
			break
		}
		dir := filepath.Join(tmp, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		var res *result
		var err error
		if name == "f2" {
			res, err = runCSVScenario(ctx, &cfg, dir, progress)
		} else {
			res, err = runScenario(ctx, &cfg, name, dir, progress)
		}
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %s: %v\n", name, err)
			failed = true
			continue
		}
		if len(res.Problems) > 0 {
			failed = true
		}
		results = append(results, res)
	}
	if cfg.jsonOut {
		if err := writeJSON(stdout, results); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
	} else {
		writeTable(stdout, results)
	}
	if failed {
		return 1
	}
	return 0
}

// buildEngine builds ./cmd/engine into dir. It only works from the
// repository root, which is also where the default --pipelines and
// --sandbox-env paths point.
func buildEngine(ctx context.Context, dir string) (string, error) {
	mod, err := os.ReadFile("go.mod")
	if err != nil || !strings.Contains(string(mod), "module "+modulePath+"\n") {
		return "", errors.New("run from the repository root to build the engine, or pass --engine PATH")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go run does not put the go command on PATH, but GOROOT may say
		// where it is.
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, statErr := os.Stat(goBin); os.Getenv("GOROOT") == "" || statErr != nil {
			return "", errors.New("no go command on PATH to build the engine; pass --engine PATH")
		}
	}
	bin := filepath.Join(dir, "engine")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/engine")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the engine: %v\n%s", err, out)
	}
	return bin, nil
}
