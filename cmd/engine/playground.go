package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/loyalty-connector/engine/engine/connected"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/preview"
	"github.com/loyalty-connector/engine/examples"
	"github.com/loyalty-connector/engine/internal/webguard"
)

// playgroundFiles are the page, its script and its style sheet: built into
// the binary so the playground works from any folder, without a network.
//
//go:embed playground
var playgroundFiles embed.FS

const (
	// maxRenderBody bounds a render request: the editors' text.
	maxRenderBody = 1 << 20
	// renderTimeout bounds one preview, Connected Content calls included:
	// time for a :retry call to an endpoint that never answers to use its
	// six tries of 2 s, as engine render does, and abort the message.
	renderTimeout = 20 * time.Second
	// playgroundCSP lets the page run its own script and nothing else: no
	// inline script, no other site. The HTML view is a srcdoc iframe,
	// sandboxed without allow-scripts, which inherits this policy: inline
	// styles are allowed so that an email looks as designed, and images
	// only from data: URLs, so a preview loads nothing from the network.
	playgroundCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func runPlayground(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("playground", "engine playground [--addr HOST:PORT] [--allow-remote] [--connected-content MODE] [--content-blocks DIR] [--vars V.json]",
		`Serves a web page for previewing Braze message templates. Edit a template,
the user's attributes, the API trigger properties (and, folded away, the Canvas
context and event properties) and the page shows, as you type, the message as
Braze would render it for that user: the output (with an HTML view when it is
HTML), an abort_message, errors and the warnings about what Braze would do
differently, with their line and column, and every Connected Content call with
its status, size, cache use and time. The examples of the built-in
examples/templates fill the editors.

Connected Content calls are answered by the built-in SessionM emulators by
default, without a network; --connected-content fixtures DIR answers them from
recorded files, and live makes real HTTP calls from this machine, with
:basic_auth credentials from BRAZE_CREDENTIAL_NAME=user:password variables.
Braze caches GET answers 5 minutes by URL, and so does the page: its Clear
cache button forgets them. --vars gives every render more top-level
variables, as for engine render (endpoint_connect for fixtures or live).

Whoever reaches the page can render templates through it (and, with live,
make HTTP calls from this machine), so it listens on loopback only unless
--allow-remote is given. Stop it with Ctrl-C or SIGTERM.`, stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen on `host:port` (port 0 picks a free one)")
	var pf previewFlags
	pf.register(fs)
	varsFile := fs.String("vars", "", "JSON `file` of more top-level variables for every render, such as endpoint_connect (default: none)")
	allowRemote := fs.Bool("allow-remote", false, "allow an --addr that is not loopback, and requests addressed to any host name: anyone who reaches it can render templates, and with live make HTTP calls from this machine")
	positional, code, done := pf.parse(fs, args, stdout)
	if done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "engine playground: "+format+"\n", a...)
		return code
	}
	if len(positional) > 0 {
		return fail(exitUsage, "takes no arguments, got %q; see engine playground --help", strings.Join(positional, " "))
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fail(exitUsage, "--addr is host:port, e.g. 127.0.0.1:8090: %v", err)
	}
	if !*allowRemote && !loopbackHost(host) {
		return fail(exitUsage, "--addr %s is not a loopback address: whoever reaches the page can render templates through it, and with --connected-content live make HTTP calls from this machine; use 127.0.0.1:PORT, or add --allow-remote if that is what you want", *addr)
	}
	if *allowRemote && pf.mode == "live" && slices.ContainsFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "BRAZE_CREDENTIAL_") }) {
		// Whoever reaches the page could write a template that sends
		// them to a host of their own (a security review).
		return fail(exitUsage, "--allow-remote with --connected-content live would let whoever reaches the page send this machine's BRAZE_CREDENTIAL_* credentials to any host a template names; unset them, or keep the playground on loopback")
	}
	var vars map[string]any
	if *varsFile != "" {
		raw, err := os.ReadFile(*varsFile)
		if err == nil {
			vars, err = decodeVars(raw)
		}
		if err != nil {
			return fail(exitUsage, "--vars %s: %v", *varsFile, err)
		}
	}
	ps, err := pf.open()
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	defer ps.close()
	exs, problems := loadExamples(examples.Templates)
	for _, p := range problems {
		fmt.Fprintf(stderr, "engine playground: warning: the built-in %v; it is not offered\n", p)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(exitProblem, "cannot listen on %s: %v (is another playground running? try --addr 127.0.0.1:0)", *addr, err)
	}
	// A render may take renderTimeout; the rest keeps slow or silent
	// clients from holding the listener.
	srv := &http.Server{Handler: newPlaygroundHandler(ps.previewer, ps.blocks, vars, exs, *allowRemote),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: renderTimeout + 20*time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "engine playground: open %s in a browser (Connected Content: %s; stop with Ctrl-C)\n", pageURL(ln.Addr()), describeMode(ps.mode))
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fail(exitProblem, "%v", err)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		_ = srv.Close() // a render still waiting for a live call
	}
	fmt.Fprintln(stdout, "engine playground: stopped")
	return exitOK
}

func describeMode(m preview.Mode) string {
	switch m.Name {
	case "fixtures":
		return "fixtures in " + m.Dir
	case "live":
		return "live HTTP calls"
	}
	return "the built-in sandbox"
}

// pageURL is the address to open: a listener on every interface is
// reached here through localhost.
func pageURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// playgroundExample is an entry of examples/templates/index.json. Read
// from the index, its fields other than name and title are paths inside
// templates/; served to the page, they hold the files' text.
type playgroundExample struct {
	Name     string `json:"name"`
	Title    string `json:"title"`
	Template string `json:"template"`
	User     string `json:"user"`
	Trigger  string `json:"trigger,omitempty"`
	Context  string `json:"context,omitempty"`
	Event    string `json:"event,omitempty"`
}

// loadExamples reads templates/index.json and the files it names. An
// example whose files cannot be read is left out and reported, so that
// one broken entry does not take the others with it.
func loadExamples(fsys fs.FS) ([]playgroundExample, []error) {
	raw, err := fs.ReadFile(fsys, "templates/index.json")
	if err != nil {
		return nil, []error{err}
	}
	var index []playgroundExample
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, []error{fmt.Errorf("templates/index.json: %w", err)}
	}
	var list []playgroundExample
	var problems []error
next:
	for _, ex := range index {
		if ex.Template == "" {
			problems = append(problems, fmt.Errorf("example %q names no template", ex.Name))
			continue
		}
		for _, field := range []*string{&ex.Template, &ex.User, &ex.Trigger, &ex.Context, &ex.Event} {
			if *field == "" {
				continue
			}
			b, err := fs.ReadFile(fsys, path.Join("templates", *field))
			if err != nil {
				problems = append(problems, fmt.Errorf("example %q: %w", ex.Name, err))
				continue next
			}
			*field = string(b)
		}
		list = append(list, ex)
	}
	return list, problems
}

// playground answers the page's API.
type playground struct {
	previewer *preview.Previewer
	blocks    map[string]string
	vars      map[string]any // --vars, for every render
	examples  []playgroundExample
}

// newPlaygroundHandler serves the page, its static files and its API.
// Without allowRemote only requests addressed to an IP or localhost are
// answered: a site whose DNS name is pointed at 127.0.0.1 (DNS rebinding)
// cannot drive the page. Cross-origin POSTs are refused either way, so
// another site open in the browser cannot make calls through it.
func newPlaygroundHandler(p *preview.Previewer, blocks map[string]string, vars map[string]any, exs []playgroundExample, allowRemote bool) http.Handler {
	pg := &playground{previewer: p, blocks: blocks, vars: vars, examples: exs}
	if pg.examples == nil {
		pg.examples = []playgroundExample{}
	}
	static, err := fs.Sub(playgroundFiles, "playground")
	if err != nil {
		panic(err) // the embed pattern above guarantees the folder
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /api/examples", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, pg.examples)
	})
	mux.HandleFunc("POST /api/render", pg.render)
	mux.HandleFunc("POST /api/cache/clear", func(w http.ResponseWriter, r *http.Request) {
		pg.previewer.Client().ClearCache()
		w.WriteHeader(http.StatusNoContent)
	})
	h := http.NewCrossOriginProtection().Handler(mux)
	if !allowRemote {
		h = webguard.IPHostsOnly(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", playgroundCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		// The files are built into the binary: a newer engine serves
		// newer ones, which a cached copy would hide.
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// render previews the editors' text. The JSON editors arrive as text, as
// typed: one that is not a JSON object is an error naming the editor, in
// the answer the page shows, not an HTTP error.
func (pg *playground) render(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Template string `json:"template"`
		User     string `json:"user"`
		Trigger  string `json:"trigger"`
		Context  string `json:"context"`
		Event    string `json:"event"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRenderBody)).Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the template and attributes are over %d KiB together; the playground previews less", maxRenderBody>>10)})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(`a render request is {"template": "...", "user": "...", ...}: %s`, jsonval.Problem(err))})
		return
	}
	in := preview.Input{Template: req.Template, TemplateName: "template", UserName: "user", ContentBlocks: pg.blocks, Vars: pg.vars}
	var problems []preview.Note
	for _, e := range []struct {
		name, text string
		dst        *map[string]any
	}{{"user", req.User, &in.User}, {"trigger", req.Trigger, &in.Trigger}, {"context", req.Context, &in.Context}, {"event", req.Event, &in.Event}} {
		if strings.TrimSpace(e.text) == "" {
			continue
		}
		vars, err := decodeVars([]byte(e.text))
		if err != nil {
			problems = append(problems, preview.Note{File: e.name, Message: err.Error()})
			continue
		}
		*e.dst = vars
	}
	if len(problems) > 0 {
		// Rendered without them, the message would be wrong in ways
		// that hide the real problem (and live calls would be made).
		writeJSON(w, http.StatusOK, preview.Result{Errors: problems, Warnings: []preview.Note{}, Calls: []connected.Call{}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), renderTimeout)
	defer cancel()
	writeJSON(w, http.StatusOK, pg.previewer.Render(ctx, in))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
