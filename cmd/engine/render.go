package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/preview"
)

// Exit status of engine render for an aborted message: Braze would not
// send it.
const exitAborted = 3

func runRender(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("render", "engine render TEMPLATE [--user USER.json] [--trigger T.json] [--context C.json] [--event E.json] [--vars V.json] [--content-blocks DIR] [--partials DIR] [--connected-content sandbox|fixtures DIR|live] [--format text|json]",
		`Renders a Braze message template for one user, the way Braze would, and
prints the message. The user file holds standard attributes under their
Liquid names (user_id, first_name, email_address, language, time_zone, ...)
and custom_attributes; --trigger gives api_trigger_properties, --context the
Canvas context (and canvas_entry_properties), --event event_properties,
--content-blocks a folder of NAME.liquid Content Blocks, --partials a folder
of NAME.liquid partials for include and render, --vars more top-level
variables.

{% connected_content %} calls are answered by --connected-content:
  sandbox       the SessionM and Braze emulators, in process, seeded from
                examples/sandbox/ (the default); endpoint_connect and
                endpoint_core name their URLs, and the credentials
                sessionm_connect and sessionm_core exist for :basic_auth
  fixtures DIR  files: DIR/fixtures.yaml maps method and URL to an answer
  live          the real endpoints (only when asked for)
Braze's rules apply: 2 s timeout, 1 MB cap, no redirects, GET answers cached
5 minutes by URL. :basic_auth NAME reads BRAZE_CREDENTIAL_NAME=user:password
from the environment (NAME in capitals, other characters than letters and
digits as _).

A template that does not parse or fails while rendering is reported on
stderr with its line and column (exit status 1). An aborted message
(abort_message, or a :retry call that gave up) prints its reason on stderr
and exits with status 3. What Braze would refuse is a warning on stderr.
--format json prints the message with the Connected Content calls made
(URL, status, bytes, cached or not), the warnings and the timing.`, stderr)
	userFile := fs.String("user", "", "JSON `file` of the user: standard attributes and custom_attributes")
	triggerFile := fs.String("trigger", "", "JSON `file` of API trigger properties (api_trigger_properties)")
	contextFile := fs.String("context", "", "JSON `file` of Canvas context properties (context, canvas_entry_properties)")
	eventFile := fs.String("event", "", "JSON `file` of event properties (event_properties)")
	varsFile := fs.String("vars", "", "JSON `file` of more top-level variables (default: none)")
	var pf previewFlags
	pf.register(fs)
	partialsDir := fs.String("partials", "", "`folder` whose NAME.liquid files are the partials include and render may use (default: none)")
	format := fs.String("format", "text", "`text` (the message) or json (the message, calls, warnings, timing)")
	positional, code, done := pf.parse(fs, args, stdout)
	if done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "engine render: "+format+"\n", a...)
		return code
	}
	if len(positional) != 1 {
		return fail(exitUsage, "name one template file, e.g. engine render message.liquid --user user.json")
	}
	if *format != "text" && *format != "json" {
		return fail(exitUsage, "--format is text or json, not %q", *format)
	}
	file := positional[0]
	src, err := os.ReadFile(file)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	in := preview.Input{Template: string(src), TemplateName: file, UserName: *userFile}
	for _, f := range []struct {
		flag, path string
		into       *map[string]any
	}{{"user", *userFile, &in.User}, {"trigger", *triggerFile, &in.Trigger}, {"context", *contextFile, &in.Context}, {"event", *eventFile, &in.Event}, {"vars", *varsFile, &in.Vars}} {
		if f.path == "" {
			continue
		}
		raw, err := os.ReadFile(f.path)
		if err != nil {
			return fail(exitUsage, "--%s: %v", f.flag, err)
		}
		if *f.into, err = decodeVars(raw); err != nil {
			return fail(exitUsage, "--%s %s: %v", f.flag, f.path, err)
		}
	}
	var opts []preview.Option
	if *partialsDir != "" {
		partials, err := readPartials(*partialsDir)
		if err != nil {
			return fail(exitUsage, "--partials: %v", err)
		}
		opts = append(opts, preview.WithPartials(partials))
	}
	ps, err := pf.open(opts...)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	defer ps.close()
	in.ContentBlocks, in.ContentBlocksDir = ps.blocks, pf.blocksDir
	res := ps.previewer.Render(context.Background(), in)
	code = exitOK
	switch {
	case len(res.Errors) > 0:
		code = exitProblem
	case res.Aborted:
		code = exitAborted
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(res)
		return code
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, e)
	}
	for _, w := range res.Warnings {
		w.Message = "warning: " + w.Message
		fmt.Fprintln(stderr, w)
	}
	if code == exitAborted {
		return fail(exitAborted, "the message is aborted, Braze would not send it: %s", res.AbortReason)
	}
	_, _ = io.WriteString(stdout, res.Output)
	return code
}

// previewFlags are the flags engine render and engine playground share:
// who answers Connected Content, and the Content Blocks.
type previewFlags struct {
	mode, blocksDir string
}

func (f *previewFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.mode, "connected-content", "sandbox", "who answers {% connected_content %}: `sandbox` (the SessionM and Braze emulators, in process), fixtures DIR (recorded answers) or live (real HTTP calls)")
	fs.StringVar(&f.blocksDir, "content-blocks", "", "`folder` whose NAME.liquid files are the Content Blocks {{content_blocks.${NAME}}} inserts (default: none)")
}

// previewSetup is what the preview flags give a command.
type previewSetup struct {
	previewer *preview.Previewer
	close     func()
	mode      preview.Mode
	blocks    map[string]string
}

// open reads the Content Blocks and builds the previewer; its errors are
// the user's (exit status 2) and name the flag.
func (f *previewFlags) open(opts ...preview.Option) (*previewSetup, error) {
	var ps previewSetup
	var err error
	if ps.mode, err = preview.ParseMode(f.mode); err != nil {
		return nil, err
	}
	if f.blocksDir != "" {
		if ps.blocks, err = readPartials(f.blocksDir); err != nil {
			return nil, fmt.Errorf("--content-blocks: %w", err)
		}
	}
	if ps.previewer, ps.close, err = preview.Setup(ps.mode, os.LookupEnv, opts...); err != nil {
		return nil, fmt.Errorf("--connected-content: %w", err)
	}
	return &ps, nil
}

// parse parses args as the shared parse does, after joining
// --connected-content's "fixtures DIR", two words as the help writes it,
// into fixtures=DIR.
func (f *previewFlags) parse(fs *flag.FlagSet, args []string, stdout io.Writer) (positional []string, code int, done bool) {
	return parse(fs, joinFixturesArg(args), stdout)
}

func joinFixturesArg(args []string) []string {
	// Not when the next word is the template or another flag: the folder
	// was forgotten, and ParseMode says so.
	isFolder := func(a string) bool { return !strings.HasSuffix(a, ".liquid") && !strings.HasPrefix(a, "-") }
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--connected-content" || a == "-connected-content") && i+2 < len(args) && args[i+1] == "fixtures" && isFolder(args[i+2]) {
			out = append(out, a, "fixtures="+args[i+2])
			i += 2
			continue
		}
		if (a == "--connected-content=fixtures" || a == "-connected-content=fixtures") && i+1 < len(args) && isFolder(args[i+1]) {
			out = append(out, "--connected-content=fixtures="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// readPartials reads dir/NAME.liquid as the partial NAME. The engine
// itself never reads files; this command hands it their text.
func readPartials(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	partials := map[string]string{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".liquid")
		if !ok || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		partials[name] = string(b)
	}
	return partials, nil
}

// decodeVars reads a JSON object. Whole numbers stay integers, as Liquid
// templates expect (9 | divided_by: 2 is 4).
func decodeVars(raw []byte) (map[string]any, error) {
	obj, err := jsonval.DecodeObject(raw)
	if errors.Is(err, jsonval.ErrNotObject) {
		return nil, errors.New("a JSON object is needed, {\"name\": value, ...}, whose keys become the variables")
	}
	return obj, err
}
