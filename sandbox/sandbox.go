// Package sandbox runs the SessionM and Braze emulators on one listener,
// with what tests and demos need around them: a journal of every request,
// fault injection, per-user deliveries, reset, and senders that play Braze
// webhook campaigns and SessionM events against the engine (issue 3,
// DESIGN §7). `engine sandbox` serves it; `engine run --sandbox` starts it
// in process.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	brazeemu "github.com/loyalty-connector/engine/connectors/braze/emulator"
	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/examples"
	"github.com/loyalty-connector/engine/internal/webguard"
)

// The emulators and the path prefixes they are served under.
const (
	SessionMCore    = "sessionm_core"
	SessionMConnect = "sessionm_connect"
	Braze           = "braze"

	coreprefix    = "/sessionm/core"
	connectPrefix = "/sessionm/connect"
	brazePrefix   = "/braze"
	controlPrefix = "/_sandbox"
)

var emulatorNames = []string{SessionMCore, SessionMConnect, Braze}

func isEmulatorName(s string) bool {
	for _, n := range emulatorNames {
		if n == s {
			return true
		}
	}
	return false
}

// Options configures a sandbox. The zero value serves the built-in seeds.
type Options struct {
	// SeedDir holds sessionm.yaml and braze.yaml; empty means the copies
	// of examples/sandbox built into the binary.
	SeedDir string
	// Now is the clock of the emulators, the journal and the faults.
	Now func() time.Time
	// JournalSize bounds the request journal (DefaultJournalSize when 0).
	JournalSize int
	// JournalBytes bounds the body text the journal keeps in all
	// (DefaultJournalBytes when 0).
	JournalBytes int
	// RandSeed makes fault ratios repeatable; 0 picks a random seed.
	RandSeed uint64
	// GeneratedUsers, when above 0, replaces both seeds' generated_users:
	// that many synthetic users (load-000000, ...) in SessionM and Braze.
	GeneratedUsers int
	SessionM       sessionmemu.Options
	Braze          brazeemu.Options
	// Client sends the senders' requests; nil means a client that, like
	// Braze, follows no redirects.
	Client *http.Client
	// Sleep waits between a sender's retries; nil means a real timer.
	// Tests inject one to check retry schedules without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Sandbox is the emulators with their journal, faults and senders.
type Sandbox struct {
	sessionm *sessionmemu.Emulator
	braze    *brazeemu.Emulator
	journal  *journal
	faults   *faultSet
	now      func() time.Time
	senders  *senders
	handler  http.Handler
	// maxJournalRead bounds how much of a body is read ahead of the
	// emulator to journal it; the emulator enforces its own limit.
	maxJournalRead int64
}

// New loads the seeds and builds the emulators.
func New(opts Options) (*Sandbox, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionM.Now == nil {
		opts.SessionM.Now = opts.Now
	}
	if opts.Braze.Now == nil {
		opts.Braze.Now = opts.Now
	}
	if opts.RandSeed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.RandSeed = binary.LittleEndian.Uint64(b[:])
	}
	smSeed, brSeed, err := loadSeeds(opts.SeedDir)
	if err != nil {
		return nil, err
	}
	if opts.GeneratedUsers > 0 {
		smSeed.Settings.GeneratedUsers = opts.GeneratedUsers
		brSeed.Settings.GeneratedUsers = opts.GeneratedUsers
	}
	sm, err := sessionmemu.New(smSeed, opts.SessionM)
	if err != nil {
		return nil, fmt.Errorf("sessionm seed: %w", err)
	}
	br, err := brazeemu.New(brSeed, opts.Braze)
	if err != nil {
		return nil, fmt.Errorf("braze seed: %w", err)
	}
	s := &Sandbox{
		sessionm:       sm,
		braze:          br,
		journal:        newJournal(opts.JournalSize, opts.JournalBytes),
		faults:         newFaultSet(opts.RandSeed),
		now:            opts.Now,
		maxJournalRead: journalBodyLimit,
	}
	s.senders = newSenders(s, opts.Client, opts.Sleep)
	// The emulators are picked by prefix here rather than by a ServeMux,
	// which would answer odd paths (a//b, ..) with a redirect: a real API
	// answers them with its own 404, and so do the emulators.
	emulators := []struct {
		prefix string
		h      http.Handler
	}{
		{coreprefix, s.instrument(SessionMCore, http.StripPrefix(coreprefix, sm.Core()))},
		{connectPrefix, s.instrument(SessionMConnect, http.StripPrefix(connectPrefix, sm.Connect()))},
		{brazePrefix, s.instrument(Braze, http.StripPrefix(brazePrefix, br.Handler()))},
	}
	mux := http.NewServeMux()
	s.controlRoutes(mux)
	// The control API's senders post anywhere with any headers, and from
	// this machine: a web page open in the operator's browser that could
	// drive them would reach the engine's admin listener on loopback
	// through them. The emulators are left open to any Host and Origin,
	// as the APIs they stand in for are.
	control := webguard.Local(mux)
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, e := range emulators {
			if r.URL.Path == e.prefix || strings.HasPrefix(r.URL.Path, e.prefix+"/") {
				e.h.ServeHTTP(w, r)
				return
			}
		}
		control.ServeHTTP(w, r)
	})
	return s, nil
}

// seedFiles are the files a seed folder holds.
var seedFiles = [2]string{"sessionm.yaml", "braze.yaml"}

func loadSeeds(dir string) (sessionmemu.Seed, brazeemu.Seed, error) {
	var fsys fs.FS = examples.Sandbox
	base := "sandbox"
	if dir != "" {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return sessionmemu.Seed{}, brazeemu.Seed{}, fmt.Errorf("seed folder %s: not found; it should hold %s and %s (see examples/sandbox)", dir, seedFiles[0], seedFiles[1])
		}
		fsys, base = os.DirFS(dir), "."
	}
	read := func(name string) (string, []byte, error) {
		data, err := fs.ReadFile(fsys, path.Join(base, name))
		shown := filepath.Join(dir, name)
		if dir == "" {
			shown = "built-in examples/sandbox/" + name
		}
		if err != nil {
			return shown, nil, fmt.Errorf("seed file %s: %w", shown, unwrapPathError(err))
		}
		return shown, data, nil
	}
	name, data, err := read(seedFiles[0])
	if err != nil {
		return sessionmemu.Seed{}, brazeemu.Seed{}, err
	}
	sm, err := sessionmemu.ParseSeed(name, data)
	if err != nil {
		return sessionmemu.Seed{}, brazeemu.Seed{}, err
	}
	name, data, err = read(seedFiles[1])
	if err != nil {
		return sessionmemu.Seed{}, brazeemu.Seed{}, err
	}
	br, err := brazeemu.ParseSeed(name, data)
	return sm, br, err
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Handler serves the emulators under their prefixes and the control API.
func (s *Sandbox) Handler() http.Handler { return s.handler }

// Reset puts the emulators back to their seeds and empties the journal
// and the fault rules.
func (s *Sandbox) Reset() {
	s.sessionm.Reset()
	s.braze.Reset()
	s.journal.reset()
	s.faults.remove(0)
}

// URLs are the base URLs of a sandbox served at base (http://host:port).
type URLs struct {
	Base, SessionMCore, SessionMConnect, Braze, Control string
}

// URLsFor returns the base URLs under base, without a trailing slash.
func URLsFor(base string) URLs {
	base = strings.TrimRight(base, "/")
	return URLs{
		Base:            base,
		SessionMCore:    base + coreprefix,
		SessionMConnect: base + connectPrefix,
		Braze:           base + brazePrefix,
		Control:         base + controlPrefix,
	}
}

// Setting is one NAME=value line that points pipelines/connections.yaml
// at the sandbox.
type Setting struct {
	Name, Value string
}

// Settings returns the environment a pipeline needs to talk to the
// sandbox at base: the URLs, then the credentials the seeds accept. Other
// credentials the seeds accept (a Braze key with fewer permissions, say)
// come back in extra, described rather than named as variables. These are
// sandbox credentials, printed on purpose; real ones never are.
func (s *Sandbox) Settings(base string) (env, extra []Setting) {
	u := URLsFor(base)
	env = []Setting{
		{"SESSIONM_CORE_URL", u.SessionMCore},
		{"SESSIONM_CONNECT_URL", u.SessionMConnect},
		{"BRAZE_REST_URL", u.Braze},
	}
	add := func(name, value string) {
		if isEnvName(name) {
			env = append(env, Setting{name, value})
		} else {
			extra = append(extra, Setting{name, value})
		}
	}
	for _, b := range s.sessionm.Banner() {
		add(b.Name, b.Value)
	}
	for _, b := range s.braze.Banner() {
		add(b.Name, b.Value)
	}
	return env, extra
}

func isEnvName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// Serve answers on ln until ctx ends, then stops within a few seconds.
func (s *Sandbox) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// In-flight requests get a second; the sandbox keeps no state a cut
	// request could damage.
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// New sends are refused and running ones cancelled first, so that the
	// requests waiting for them end and Shutdown can finish.
	s.senders.cancelAll()
	if err := srv.Shutdown(shutdown); err != nil {
		// A client that opened a connection and sent nothing keeps
		// Shutdown waiting; the sandbox holds no state worth waiting for.
		_ = srv.Close()
	}
	s.senders.stop()
	return nil
}

// Close stops the senders' jobs, for callers that serve Handler
// themselves.
func (s *Sandbox) Close() { s.senders.stop() }

// instrument wraps an emulator with the journal and the faults.
func (s *Sandbox) instrument(emulator string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		entry := Entry{
			Time:     start,
			Emulator: emulator,
			Method:   r.Method,
			Path:     r.URL.Path,
			Query:    r.URL.RawQuery,
			Header:   journalHeaders(r.Header),
		}
		// The journal keeps the head of the body; the emulator still reads
		// all of it, so its own size limit answers as the real API would.
		head, err := io.ReadAll(io.LimitReader(r.Body, s.maxJournalRead+1))
		if err != nil {
			entry.Fault = "reading the request body: " + err.Error()
		}
		entry.Body = string(head[:min(len(head), int(s.maxJournalRead))])
		entry.Truncated = int64(len(head)) > s.maxJournalRead
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}

		v := s.faults.decide(emulator, r, start)
		if v.latency > 0 {
			t := time.NewTimer(v.latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		rec := &statusRecorder{ResponseWriter: w}
		switch {
		case v.drop:
			entry.Fault = v.reason
			dropConnection(w)
		case v.status != 0:
			entry.Fault = v.reason
			s.writeFault(rec, r, emulator, v)
		default:
			h.ServeHTTP(rec, r)
		}
		entry.Status = rec.status
		entry.Duration = s.now().Sub(start)
		s.journal.add(entry)
	})
}

type readCloser struct {
	io.Reader
	io.Closer
}

// writeFault answers in the emulator's own error shape.
func (s *Sandbox) writeFault(w http.ResponseWriter, r *http.Request, emulator string, v verdict) {
	var body []byte
	code := "internal_server_error"
	if v.status < 500 {
		code = faultCode(v.status)
	}
	if v.status == http.StatusTooManyRequests {
		code = "rate_limited"
		w.Header().Set("Retry-After", retryAfterSeconds(v.retryAfter))
	}
	if emulator == Braze {
		body = brazeemu.ErrorBody(v.status, code, "")
		// Braze puts its rate-limit headers on every answer (braze.md §1).
		for k, vs := range s.braze.RateLimitHeaders(strings.TrimPrefix(r.URL.Path, brazePrefix)) {
			w.Header()[k] = vs
		}
		if v.status == http.StatusTooManyRequests {
			// Rounded up, like Retry-After: a client that waits for the
			// reset must not come back inside the burst.
			reset := s.now().Add(v.retryAfter)
			w.Header().Set("X-Ratelimit-Remaining", "0")
			w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(reset.Add(time.Second-1).Truncate(time.Second).Unix(), 10))
		}
	}
	status := v.status
	if emulator != Braze {
		body = sessionmemu.ErrorBody(v.status, code, "")
		// A 4xx under --sessionm-errors-as-200 went out as the 4xx
		// (a QA run).
		status = s.sessionm.WireStatus(v.status)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// faultCode is a 4xx fault's error code: its status's name in snake case
// (bad_request, unprocessable_entity), or client_error for a status Go
// names not.
func faultCode(status int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(http.StatusText(status)) {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case r == ' ' || r == '-':
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "client_error"
	}
	return b.String()
}

// dropConnection closes the client's connection without an answer, as a
// crashed peer or a load balancer reset would.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack; aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// statusRecorder remembers the status an emulator answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
