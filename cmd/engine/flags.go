package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/examples"
)

func engineVersion() string { return engine.VersionString() }

// newFlagSet returns a flag set whose --help prints usage and description.
func newFlagSet(name, usageLine, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: %s\n\n%s\n", usageLine, indent(description, ""))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(out, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses flags that may come before or after positional arguments
// (engine dry-run x.yaml --event e.json). done is true when the command
// should stop: --help was asked for (code 0, help on stdout) or the flags
// are wrong (code 2).
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) (positional []string, code int, done bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, exitOK, true
		}
	}
	// The flag package prints its own message and then the whole help,
	// which hides the one line that matters; flagError says it instead.
	stderr := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(stderr)
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) { // a spelling the loop above missed, such as --help=true
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, exitOK, true
		}
		if err != nil {
			fmt.Fprintf(stderr, "engine %s: %s\nRun 'engine %s --help' for its flags.\n", fs.Name(), flagError(fs, args, err), fs.Name())
			return nil, exitUsage, true
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, exitOK, false
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// The flag package's messages, which name a flag with one dash.
var (
	unknownFlagRE  = regexp.MustCompile(`^flag provided but not defined: -(.*)$`)
	flagNoValueRE  = regexp.MustCompile(`^flag needs an argument: -(.*)$`)
	flagBadValueRE = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]*): (.*)$`)
)

// flagError rewrites a flag parse error in the words the rest of the
// engine uses: flags with two dashes, a close flag for a typo, and what
// kind of value a flag takes.
func flagError(fs *flag.FlagSet, args []string, err error) string {
	msg := err.Error()
	if m := unknownFlagRE.FindStringSubmatch(msg); m != nil {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		out := "unknown flag " + asTyped(args, m[1])
		if near := diag.Closest(m[1], names); near != "" {
			out += "; did you mean --" + near + "?"
		}
		return out
	}
	if m := flagNoValueRE.FindStringSubmatch(msg); m != nil {
		return "--" + m[1] + " needs a value"
	}
	if m := flagBadValueRE.FindStringSubmatch(msg); m != nil {
		if f := fs.Lookup(m[2]); f != nil {
			if g, ok := f.Value.(flag.Getter); ok {
				switch g.Get().(type) {
				case bool:
					return fmt.Sprintf("--%s %s: give true or false", m[2], m[1])
				case int, int64, uint, uint64:
					return fmt.Sprintf("--%s %s: give a whole number", m[2], m[1])
				case float64:
					return fmt.Sprintf("--%s %s: give a number", m[2], m[1])
				case time.Duration:
					return fmt.Sprintf("--%s %s: give a duration such as 30s or 5m", m[2], m[1])
				}
			}
		}
		return fmt.Sprintf("--%s %s: %s", m[2], m[1], m[3])
	}
	return msg
}

// asTyped finds how the user wrote flag name (-x, --x, --x=v), for a
// message that quotes it.
func asTyped(args []string, name string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		dashes := a[:len(a)-len(strings.TrimLeft(a, "-"))]
		if dashes != "" && len(dashes) <= 2 && strings.SplitN(a[len(dashes):], "=", 2)[0] == name {
			return dashes + name
		}
	}
	return "--" + name
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// configFlags are the flags every command that reads pipelines takes.
type configFlags struct {
	envFiles    listFlag
	secretsDir  string
	connections string
	// overrides win over the environment and the env files: the settings
	// of an in-process sandbox.
	overrides map[string]string
	// fallback fills in what nothing else sets (--sandbox: the built-in
	// examples/sandbox.env).
	fallback map[string]string
	// standIns are the emulators' base URLs by connection type
	// (engine.Loader.StandIns).
	standIns map[string]string
	// masker receives the secrets the loader resolves (nil: a new one):
	// engine run's log masks through it from the first line on.
	masker *secrets.Masker
}

// pointAtSandbox points every connection at the in-process emulators
// (their settings) and fills in, from the built-in examples/sandbox.env,
// what nothing else sets: the emulators' credentials and webhook tokens.
func (c *configFlags) pointAtSandbox(settings map[string]string) error {
	c.overrides = settings
	c.standIns = map[string]string{
		"sessionm_core":    settings["SESSIONM_CORE_URL"],
		"sessionm_connect": settings["SESSIONM_CONNECT_URL"],
		"braze":            settings["BRAZE_REST_URL"],
	}
	fallback, err := secrets.ParseEnv("built-in examples/sandbox.env", examples.SandboxEnv)
	c.fallback = fallback
	return err
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.envFiles, "env-file", "read `FILE` of NAME=value lines for ${env:...} and ${secret:...} (the environment wins; repeatable)")
	fs.StringVar(&c.secretsDir, "secrets-dir", os.Getenv("ENGINE_SECRETS_DIR"), "`folder` of secret files: ${secret:NAME} reads FOLDER/NAME (default $ENGINE_SECRETS_DIR)")
	fs.StringVar(&c.connections, "connections", "", "connections `file` to use instead of the connections.yaml next to each pipeline")
}

// loader builds a loader from the flags.
func (c *configFlags) loader() (*engine.Loader, *secrets.Masker, error) {
	var files []map[string]string
	for _, f := range c.envFiles {
		vars, err := secrets.ReadEnvFile(f)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, vars)
	}
	if c.fallback != nil {
		files = append(files, c.fallback)
	}
	masker := c.masker
	if masker == nil {
		masker = &secrets.Masker{}
	}
	lookup := secrets.LookupChain(files...)
	if c.overrides != nil {
		chain := lookup
		lookup = func(name string) (string, bool) {
			if v, ok := c.overrides[name]; ok {
				return v, true
			}
			return chain(name)
		}
	}
	resolver := secrets.NewResolver(lookup, c.secretsDir, masker)
	resolver.KnownNames = func() []string { return secrets.ChainNames(append(files, c.overrides)...) }
	l, err := engine.NewLoader(connectors.Catalog(), resolver)
	if err != nil {
		return nil, nil, err
	}
	if c.connections != "" {
		// Checked here: the loader took a missing file for one to create.
		if info, err := os.Stat(c.connections); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("--connections %s: no such file", c.connections)
		} else if err != nil {
			return nil, nil, fmt.Errorf("--connections: %w", err)
		} else if info.IsDir() {
			return nil, nil, fmt.Errorf("--connections %s is a folder; name the connections file in it", c.connections)
		}
	}
	l.ConnectionsFile = c.connections
	l.StandIns = c.standIns
	return l, masker, nil
}

// startCPUProfile has the process write a CPU profile to path until the
// returned stop is called (go tool pprof reads it).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path) // empty: it would only mislead pprof
		return nil, err
	}
	// A profile that could not be written in full shows as a pprof
	// error when read; the run itself has nothing to report.
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}
