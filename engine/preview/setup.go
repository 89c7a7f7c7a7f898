package preview

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"github.com/loyalty-connector/engine/engine/connected"
	"github.com/loyalty-connector/engine/engine/liquid"
	"github.com/loyalty-connector/engine/sandbox"
)

// SandboxBase is where previews say the sandbox is: the address of
// `engine sandbox`, so that URLs match examples/sandbox.env. Nothing
// listens there during a preview; the emulators answer in process.
const SandboxBase = "http://127.0.0.1:8081"

// Mode says who answers Connected Content calls: "sandbox", "fixtures"
// (with Dir) or "live".
type Mode struct {
	Name string
	Dir  string
}

// ParseMode reads the value of --connected-content: sandbox, live, or
// fixtures=DIR / fixtures:DIR (the command line also accepts "fixtures
// DIR" as two words; see cmd/engine).
func ParseMode(s string) (Mode, error) {
	switch {
	case s == "" || s == "sandbox":
		return Mode{Name: "sandbox"}, nil
	case s == "live":
		return Mode{Name: "live"}, nil
	case strings.HasPrefix(s, "fixtures=") || strings.HasPrefix(s, "fixtures:"):
		dir := s[len("fixtures="):]
		if dir == "" {
			return Mode{}, fmt.Errorf("fixtures needs a folder: --connected-content fixtures DIR")
		}
		return Mode{Name: "fixtures", Dir: dir}, nil
	case s == "fixtures":
		return Mode{}, fmt.Errorf("fixtures needs a folder: --connected-content fixtures DIR")
	}
	return Mode{}, fmt.Errorf("--connected-content is sandbox, fixtures DIR or live, not %q", s)
}

// Option configures Setup.
type Option func(*setup)

type setup struct {
	engine []liquid.EngineOption
}

// WithPartials gives {% include %} and {% render %} their templates.
func WithPartials(partials map[string]string) Option {
	return func(s *setup) { s.engine = append(s.engine, liquid.WithPartials(partials)) }
}

// Setup builds a previewer for a mode. lookupEnv gives :basic_auth its
// credentials (BRAZE_CREDENTIAL_NAME=user:password); in the sandbox the
// credentials sessionm_connect and sessionm_core are also known. Close
// releases what the mode started.
func Setup(mode Mode, lookupEnv func(string) (string, bool), options ...Option) (p *Previewer, closeFn func(), err error) {
	var cfg setup
	for _, o := range options {
		o(&cfg)
	}
	creds := envCredentials(lookupEnv)
	closeFn = func() {}
	var fetcher connected.Fetcher
	var defaults map[string]any
	switch mode.Name {
	case "sandbox":
		sb := &lazySandbox{}
		closeFn = sb.close
		fetcher = sb
		urls := sandbox.URLsFor(SandboxBase)
		defaults = map[string]any{"endpoint_connect": urls.SessionMConnect, "endpoint_core": urls.SessionMCore}
		creds = sb.credentials(creds)
	case "fixtures":
		f, err := connected.LoadFixtures(mode.Dir)
		if err != nil {
			return nil, nil, err
		}
		fetcher = f
	case "live":
		fetcher = connected.NewLive(nil)
	default:
		return nil, nil, fmt.Errorf("unknown Connected Content mode %q", mode.Name)
	}
	return New(connected.NewClient(fetcher, connected.WithCredentials(creds)), defaults, cfg.engine...), closeFn, nil
}

// lazySandbox starts the emulators at the first call, so that previews
// without Connected Content do not pay for loading the seeds.
type lazySandbox struct {
	once    sync.Once
	sb      *sandbox.Sandbox
	fetcher *connected.Sandbox
	// creds are the sandbox's SessionM credentials, user and password,
	// under the names a Braze workspace would give them
	creds map[string][2]string
	err   error
}

func (l *lazySandbox) start() error {
	l.once.Do(func() {
		l.sb, l.err = sandbox.New(sandbox.Options{})
		if l.err != nil {
			l.err = fmt.Errorf("starting the sandbox: %w", l.err)
			return
		}
		l.fetcher = connected.NewSandbox(l.sb.Handler())
		env, _ := l.sb.Settings(SandboxBase)
		settings := map[string]string{}
		for _, s := range env {
			settings[s.Name] = s.Value
		}
		l.creds = map[string][2]string{"sessionm_core": {settings["SESSIONM_API_KEY"], settings["SESSIONM_API_SECRET"]}}
		if raw, err := base64.StdEncoding.DecodeString(settings["SESSIONM_CONNECT_AUTH"]); err == nil {
			if user, pass, ok := strings.Cut(string(raw), ":"); ok {
				l.creds["sessionm_connect"] = [2]string{user, pass}
			}
		}
	})
	return l.err
}

func (l *lazySandbox) Fetch(ctx context.Context, req connected.Request) (connected.Response, error) {
	if err := l.start(); err != nil {
		return connected.Response{}, err
	}
	return l.fetcher.Fetch(ctx, req)
}

func (l *lazySandbox) close() {
	if l.sb != nil {
		l.sb.Close()
	}
}

func envCredentials(lookupEnv func(string) (string, bool)) connected.Credentials {
	return func(name string) (string, string, bool) {
		if lookupEnv == nil {
			return "", "", false
		}
		v, ok := lookupEnv(connected.CredentialEnv(name))
		if !ok {
			return "", "", false
		}
		user, pass, ok := strings.Cut(v, ":")
		return user, pass, ok
	}
}

// credentials adds the sandbox's own credentials, under the names a
// Braze workspace would give them, after those from the environment.
func (l *lazySandbox) credentials(next connected.Credentials) connected.Credentials {
	return func(name string) (string, string, bool) {
		if u, p, ok := next(name); ok {
			return u, p, true
		}
		if name != "sessionm_core" && name != "sessionm_connect" || l.start() != nil {
			return "", "", false
		}
		c, ok := l.creds[name]
		return c[0], c[1], ok
	}
}
