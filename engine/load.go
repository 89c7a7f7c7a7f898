// Package engine loads, validates and builds pipelines, and evaluates events
// through them.
package engine

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/filter"
	"github.com/loyalty-connector/engine/engine/liquid"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/engine/yamlpos"
)

// ConnectionsFileName is the file, next to the pipelines, that holds the
// connections they share.
const ConnectionsFileName = "connections.yaml"

// Loader turns files into built pipelines. It is cheap to keep and reuse.
type Loader struct {
	Catalog  *spec.Catalog
	Resolver *secrets.Resolver
	Liquid   *liquid.Engine
	// Now is the clock behind now() in filters; time.Now when nil. Set it
	// with UseClock, which gives it to Liquid's 'now' as well.
	Now func() time.Time
	// ConnectionsFile, when set, is used for every pipeline instead of
	// the connections.yaml next to it.
	ConnectionsFile string
	// Running, when set, gives the version of a pipeline that runs now
	// (engine run's reloads), or nil. Files claim their routes in this
	// order: running and unchanged, running and edited, new; so when two
	// want one route, the file that changed is the one rejected, not the
	// pipeline that was serving it.
	Running func(pipeline string) *Pipeline
	// StandIns, when set (engine run --sandbox), gives per connection type
	// the base URL of its in-process emulator: every connection of such a
	// type goes there whatever its base_url says, and one of another type
	// must stay on this machine. Set by variable name alone, a connection
	// whose base_url was written out, or read another variable, went to
	// the real host during a sandbox run (a QA run).
	StandIns map[string]string

	schemas *schemaSet
}

// NewLoader returns a loader for the given catalogue; the resolver's masker
// receives every secret resolved, for masking output.
func NewLoader(catalog *spec.Catalog, resolver *secrets.Resolver) (*Loader, error) {
	s, err := loadSchemas()
	if err != nil {
		return nil, err
	}
	return &Loader{Catalog: catalog, Resolver: resolver, Liquid: liquid.NewEngine(), schemas: s}, nil
}

// UseClock makes the pipelines loaded next read now from the given clock:
// the now variable, expr's now() and Liquid's 'now' and 'today'. A dry run
// given --now renders the same request whenever it runs. It gives the
// loader a new Liquid engine: call it before setting that engine up.
func (l *Loader) UseClock(now func() time.Time) {
	l.Now = now
	l.Liquid = liquid.NewEngine(liquid.WithClock(now))
}

// Project is what loading a set of paths gave.
type Project struct {
	Pipelines   []*Pipeline
	Connections map[string]*spec.Connection // from the last connections file read
	Diagnostics diag.List
	Files       []string // every file read
	// ConnectionsFiles are the files read as connections files: a
	// --connections FILE may have any name.
	ConnectionsFiles []string
	// ConnectionProblems holds, by pipeline name, the problems in a
	// connections file that kept a pipeline from building: those of the
	// connections it uses. Its own diagnostics only point at them, and
	// engine run shows them with the pipeline it rejects for them.
	ConnectionProblems map[string][]diag.Diagnostic
}

// Load reads every pipeline file named by paths (files, or folders whose
// *.yaml files are read) with the connections file of its folder, and
// builds them. Problems are collected, not returned: a project with
// problems still holds the pipelines that built.
func (l *Loader) Load(paths []string) *Project {
	proj := &Project{}
	byDir := map[string][]string{}
	var dirs []string
	// One file named twice (a folder and a file in it, or through a link)
	// is read once.
	real := map[string]bool{}
	// The --connections FILE may sit among the pipelines (staging.yaml
	// beside them): it is not one of them.
	connectionsFlag := ""
	if l.ConnectionsFile != "" {
		connectionsFlag = RealPath(l.ConnectionsFile)
	}
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			proj.Diagnostics.Add(diag.Diagnostic{File: p, Message: err.Error()})
			continue
		}
		for _, f := range files {
			r := RealPath(f)
			if real[r] {
				continue
			}
			real[r] = true
			if r == connectionsFlag {
				continue
			}
			dir := filepath.Dir(f)
			if _, seen := byDir[dir]; !seen {
				dirs = append(dirs, dir)
			}
			if !slices.Contains(byDir[dir], f) {
				byDir[dir] = append(byDir[dir], f)
			}
		}
	}
	warnUnreadSubfolders(paths, real, proj)
	// A pipeline is named by its file, without .yaml or .yml: two files
	// of one name (a .yml copy next to the .yaml, or one name in two
	// folders) were one pipeline, the later file silently in the
	// earlier's place, its routes gone.
	named := map[string]string{}
	connsOf := map[string]*connectionSet{}
	var files []string
	var sets []*connectionSet
	for _, dir := range dirs {
		connsOf[dir] = l.loadConnections(l.connectionsFileFor(dir), proj)
		sets = append(sets, connsOf[dir])
		files = append(files, byDir[dir]...)
	}
	checkSharedAccounts(sets, proj)
	// One table for every folder, as engine run serves them all on one
	// listener, with the engine's own routes: validate said ok to two
	// folders that each served a route, and to a pipeline on /metrics,
	// which run then refused (a QA run).
	routes := NewRoutes()
	for _, path := range EngineRoutes {
		routes.Claim(http.MethodGet, path, "", http.NotFoundHandler())
	}
	for _, f := range l.claimOrder(files) {
		if IsConnectionsFile(f) {
			continue
		}
		name := PipelineName(f)
		if first, taken := named[name]; taken {
			proj.Diagnostics.Add(diag.Diagnostic{File: f, Message: fmt.Sprintf("%s also names pipeline %q (a pipeline is named by its file, without .yaml or .yml); rename or remove one of the two files", first, name)})
			continue
		}
		named[name] = f
		if pl := l.loadPipeline(f, connsOf[filepath.Dir(f)], routes, proj); pl != nil {
			proj.Pipelines = append(proj.Pipelines, pl)
		}
	}
	l.claimInboxes(proj)
	return proj
}

// connectionsFileFor is the connections file the pipelines of dir use.
func (l *Loader) connectionsFileFor(dir string) string {
	if l.ConnectionsFile != "" {
		return l.ConnectionsFile
	}
	file := filepath.Join(dir, ConnectionsFileName)
	if alt := filepath.Join(dir, "connections.yml"); !exists(file) && exists(alt) {
		return alt
	}
	return file
}

// Inputs lists the files a Load of paths would read, sorted: the pipeline
// files, the connections file of each of their folders (whether or not it
// exists yet), and the files of the secrets folder. A path that names no
// pipeline files is listed itself. A caller that hashes these can tell
// that a reload would see nothing new.
func (l *Loader) Inputs(paths []string) []string {
	var out []string
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			out = append(out, p)
			continue
		}
		for _, f := range files {
			out = append(out, f, l.connectionsFileFor(filepath.Dir(f)))
		}
	}
	out = append(out, l.Resolver.Files()...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Reads reports whether a change to path can change what a Load reads: a
// pipeline or connections file (.yaml or .yml, not hidden), the
// --connections file, or a secret. A watcher can pass over the others: a
// log file written next to the pipelines must not hold their reloads back.
func (l *Loader) Reads(path string) bool {
	if isPipelineFileName(filepath.Base(path)) {
		return true
	}
	if l.ConnectionsFile != "" && filepath.Clean(path) == filepath.Clean(l.ConnectionsFile) {
		return true
	}
	return l.Resolver.Reads(path)
}

// isPipelineFileName reports whether a folder's file of this name is read
// as a pipeline (or connections) file: .yaml or .yml in any case (a
// Track.YAML was skipped without a word, though named alone it ran), not
// hidden (an editor's swap or backup file).
func isPipelineFileName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return (ext == ".yaml" || ext == ".yml") && !strings.HasPrefix(name, ".")
}

// expand lists the YAML files a path names.
func expand(path string) ([]string, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no such file or folder")
	}
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{filepath.Clean(path)}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && isPipelineFileName(name) {
			out = append(out, filepath.Join(path, name))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the folder holds no .yaml pipeline files")
	}
	return out, nil
}

// warnUnreadSubfolders warns of each subfolder of a folder in paths that
// holds pipeline files not read (read names the files read, by RealPath):
// a team that sorted its pipelines into folders shipped one that never
// ran, with validate and run saying nothing (a QA run).
func warnUnreadSubfolders(paths []string, read map[string]bool, proj *Project) {
	for _, p := range paths {
		entries, err := os.ReadDir(p)
		if err != nil {
			continue // a file, or reported by expand
		}
		for _, e := range entries {
			sub := filepath.Join(p, e.Name())
			if info, err := os.Stat(sub); err != nil || !info.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue // a link to a folder is one too
			}
			inside, err := os.ReadDir(sub)
			if err != nil {
				continue
			}
			var unread []string
			for _, f := range inside {
				if !f.IsDir() && isPipelineFileName(f.Name()) && !read[RealPath(filepath.Join(sub, f.Name()))] {
					unread = append(unread, f.Name())
				}
			}
			if len(unread) == 0 {
				continue
			}
			if len(unread) > 3 {
				unread = append(unread[:3], fmt.Sprintf("%d more", len(unread)-3))
			}
			proj.Diagnostics.Add(diag.Diagnostic{File: sub, Severity: diag.Warning, Message: fmt.Sprintf(
				"holds .yaml files that are not read (%s): only the files of the folders named are, not of their subfolders; move them up, or name it too (%s %s), with a connections.yaml of its own or --connections FILE",
				strings.Join(unread, ", "), p, sub)})
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// IsConnectionsFile reports whether path names a connections file rather
// than a pipeline by its name; a --connections FILE may have another
// (Project.PipelineOfFile knows it).
func IsConnectionsFile(path string) bool {
	base := filepath.Base(path)
	return base == ConnectionsFileName || base == "connections.yml"
}

// PipelineOfFile is the pipeline a file of a diagnostic defines: "" for a
// connections file (a --connections FILE of any name among them), a
// folder or another file. Its extension is read in any case, as the
// loader reads Tags.YAML; a hidden file, which a folder's reading passes
// over, is a pipeline when named alone.
func (proj *Project) PipelineOfFile(file string) string {
	ext := strings.ToLower(filepath.Ext(file))
	if IsConnectionsFile(file) || slices.Contains(proj.ConnectionsFiles, file) || (ext != ".yaml" && ext != ".yml") {
		return ""
	}
	return PipelineName(file)
}

// PipelineNames lists the names of the pipelines that paths define, as
// Load finds their files, without reading the files: for a command that
// needs to know which pipelines exist (engine dlq replay) but not the
// settings and secrets that a Load resolves. A pipeline whose file has
// problems is defined all the same.
func PipelineNames(paths []string) ([]string, error) {
	files, err := pipelineFiles(paths)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = PipelineName(f)
	}
	return names, nil
}

// RespondingPipelines lists, of the pipelines paths define, those whose
// file answers its callers (respond:) instead of queueing events, which
// an event queued for them would wait for in vain (engine dlq replay). A
// file that cannot be read or parsed is left out: engine run reports it.
func RespondingPipelines(paths []string) ([]string, error) {
	files, err := pipelineFiles(paths)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var top map[string]any
		if yaml.Unmarshal(raw, &top) != nil {
			continue
		}
		if _, ok := top["respond"]; ok {
			names = append(names, PipelineName(f))
		}
	}
	return names, nil
}

// pipelineFiles lists the pipeline files paths name, as Load finds them.
func pipelineFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, f := range files {
			if !IsConnectionsFile(f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// PipelineName is the pipeline name a file gives: its base name without
// the extension.
func PipelineName(file string) string {
	return strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
}

// fileContext gathers the problems of one file.
type fileContext struct {
	loader *Loader
	doc    *yamlpos.Doc
	diags  *diag.List
	// referenced holds the paths whose value came from ${...} references,
	// and unresolved those whose references failed (reported once, not
	// again as bad values).
	referenced, unresolved map[string]bool
	// reported holds the paths a problem was reported at, so that a check
	// in code does not repeat what the schema already said.
	reported map[string]bool
	// resolved holds what each ${...} reference gave, in file order, so
	// that a rotated secret or a changed variable makes a new pipeline
	// version even though the file did not change.
	resolved []resolvedRef
	// pipeline: the file is a pipeline, whose filter and steps hold
	// expressions and templates that a secret must not turn into code.
	pipeline bool
}

type resolvedRef struct {
	path    yamlpos.Path
	value   string
	written string // the reference as the file writes it
}

// hasProblem reports whether a problem was reported at path (or its
// reference could not be resolved).
func (fc *fileContext) hasProblem(path yamlpos.Path) bool {
	return fc.reported[path.String()] || fc.unresolved[path.String()]
}

func (fc *fileContext) add(line, col int, path yamlpos.Path, severity diag.Severity, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	msg = fc.loader.Resolver.Masker().String(msg)
	if fc.reported == nil {
		fc.reported = map[string]bool{}
	}
	fc.reported[path.String()] = true
	fc.diags.Add(diag.Diagnostic{File: fc.doc.File, Line: line, Column: col, Path: path.String(), Message: msg, Severity: severity})
}

// errorAt reports a problem with the value at path.
func (fc *fileContext) errorAt(path yamlpos.Path, format string, args ...any) {
	n, _ := fc.doc.Lookup(path)
	fc.add(n.Line, n.Column, path, diag.Error, format, args...)
}

// warnAt reports, at the value at path, something that builds but may
// not do what its writer means.
func (fc *fileContext) warnAt(path yamlpos.Path, format string, args ...any) {
	n, _ := fc.doc.Lookup(path)
	fc.add(n.Line, n.Column, path, diag.Warning, format, args...)
}

// errorAtKey reports a problem with the key at the end of path.
func (fc *fileContext) errorAtKey(path yamlpos.Path, format string, args ...any) {
	n := fc.doc.KeyNode(path)
	fc.add(n.Line, n.Column, path, diag.Error, format, args...)
}

// readAtMost reads file if it holds at most max bytes.
func readAtMost(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(src)) > max {
		return nil, fmt.Errorf("the file is over %d KiB, the most a pipeline or connections file may hold; is it the file you meant?", max>>10)
	}
	return src, nil
}

// errorAtOffset reports a problem at a byte offset inside the string value
// at path.
func (fc *fileContext) errorAtOffset(path yamlpos.Path, offset int, format string, args ...any) {
	n, _ := fc.doc.Lookup(path)
	line, col := fc.doc.OffsetPos(n, offset)
	fc.add(line, col, path, diag.Error, format, args...)
}

// MaxFileBytes bounds a pipeline or connections file: the seed files are
// a few KB, and a 15 MB file took 14 s and 2 GB to check (a reload of one
// of 3 MB took the engine from 35 to 242 MB).
const MaxFileBytes = 1 << 20

// readDoc reads and parses a file; it reports and returns nil on failure.
func (l *Loader) readDoc(file string, diags *diag.List) *yamlpos.Doc {
	src, err := readAtMost(file, MaxFileBytes)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = "no such file"
		}
		diags.Add(diag.Diagnostic{File: file, Message: msg})
		return nil
	}
	if len(bytes.TrimSpace(src)) == 0 {
		// Caught between a truncate and a write, it said 1:1: missing
		// "source".
		diags.Add(diag.Diagnostic{File: file, Message: "the file is empty (caught mid-save? engine run reads it again once it changes)"})
		return nil
	}
	doc, err := yamlpos.Parse(file, src)
	if err != nil {
		var ye *yamlpos.Error
		if errors.As(err, &ye) {
			diags.Add(diag.Diagnostic{File: file, Line: ye.Line, Column: ye.Column, Message: ye.Message})
		} else {
			diags.Add(diag.Diagnostic{File: file, Message: err.Error()})
		}
		return nil
	}
	if doc.Root.Kind != yaml.MappingNode {
		diags.Add(diag.Diagnostic{File: file, Line: doc.Root.Line, Column: doc.Root.Column, Message: "the file must hold a YAML mapping (key: value lines) at the top level"})
		return nil
	}
	return doc
}

// resolveRefs expands ${env:...} and ${secret:...} in every string value
// (not in keys: a key is a name, not a setting).
func (fc *fileContext) resolveRefs(n *yaml.Node, path yamlpos.Path) {
	fc.resolveRefsIn(n, path, false)
}

// resolveRefsIn is resolveRefs under an anchor or a merge key (<<) or
// not: a value under one may be aliased or merged into an expression or a
// template, where its own path does not say it goes.
func (fc *fileContext) resolveRefsIn(n *yaml.Node, path yamlpos.Path, anchored bool) {
	anchored = anchored || n.Anchor != ""
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			merge := k.Tag == "!!merge" || k.Value == "<<"
			fc.resolveRefsIn(n.Content[i+1], path.Child(k.Value), anchored || merge)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			fc.resolveRefsIn(c, path.Child(i), anchored)
		}
	case yaml.ScalarNode:
		if n.ShortTag() != "!!str" || !strings.Contains(n.Value, "${") {
			return
		}
		if !secrets.HasRef(n.Value) {
			for _, p := range secrets.Misspelled(n.Value) {
				line, col := fc.doc.OffsetPos(n, p.Offset)
				fc.add(line, col, path, diag.Error, "%s", p.Message)
			}
			return
		}
		where := fc.whereIs(path)
		if anchored && fc.pipeline {
			where = secrets.InAnchor
		}
		out, secret, problems := fc.loader.Resolver.ExpandIn(n.Value, where)
		if fc.referenced == nil {
			fc.referenced, fc.unresolved = map[string]bool{}, map[string]bool{}
		}
		fc.referenced[path.String()] = true
		fc.resolved = append(fc.resolved, resolvedRef{path, out, n.Value})
		if len(problems) > 0 {
			fc.unresolved[path.String()] = true
		}
		for _, p := range problems {
			line, col := fc.doc.OffsetPos(n, p.Offset)
			fc.add(line, col, path, diag.Error, "%s", p.Message)
		}
		if fc.holdsCredential(path) {
			fc.loader.Resolver.MaskEnv(n.Value)
		}
		if secret && len(problems) > 0 {
			// Left as written: what reads the value next (Liquid, expr)
			// would quote pieces of a value it refused, which the masker,
			// knowing the secret whole, does not hide (a secret holding
			// {{ x }} came out as `unknown name "x"`: a QA run).
			return
		}
		n.Value = out
	}
}

// holdsCredential says whether the value at path is a credential: a
// source's inbound token, password or signing secret, or a header or query parameter of a request whose
// name says it carries one (X-Api-Key, api_key). Read from ${env:NAME}, it
// is masked as a secret is; validate's warning about a credential written
// in the file offers both (a security review found the env one printed).
func (fc *fileContext) holdsCredential(path yamlpos.Path) bool {
	if !fc.pipeline || len(path) < 2 {
		return false
	}
	if path[0] == "source" && path[1] == "auth" {
		// Not its other settings (the signature's header, algorithm,
		// prefix), which masked made every message about the route
		// unreadable (a review), nor a Basic user name: SessionM's is
		// its API key, which its own paths carry.
		last := path[len(path)-1]
		return last == "bearer" || last == "password" || last == "secret"
	}
	name, ok := path[len(path)-1].(string)
	parent := path[len(path)-2]
	return ok && (parent == "headers" || parent == "query") && IsCredentialHeader(name)
}

// whereIs says what the value at path becomes: in a pipeline, the filter
// and expr steps are expressions, and what steps, the target and the
// response send is Liquid.
func (fc *fileContext) whereIs(path yamlpos.Path) secrets.Where {
	if !fc.pipeline || len(path) == 0 {
		return secrets.InText
	}
	top, _ := path[0].(string)
	switch {
	case top == "filter":
		return secrets.InExpression
	case top == "steps" && len(path) == 3 && path[2] == "expr":
		return secrets.InExpression
	case (top == "steps" || top == "target") && path[len(path)-1] == "path":
		return secrets.InPath
	case top == "steps" || top == "target" || top == "respond" || top == "delivery":
		return secrets.InTemplate
	}
	return secrets.InText
}

// checkDuplicateKeys reports a key written twice in one mapping: YAML
// keeps only one of them, so the other setting would be silently lost.
func (fc *fileContext) checkDuplicateKeys(n *yaml.Node, path yamlpos.Path) {
	switch n.Kind {
	case yaml.MappingNode:
		if text, ok := fc.unquotedTemplate(n); ok {
			if last := len(path) - 1; last >= 0 && (path[last] == "filter" || path[last] == "expr") {
				fc.add(n.Line, n.Column, path, diag.Error, "%s", filter.NotLiquid)
				return
			}
			what := "it would not be rendered"
			if slices.Contains(path, any("body")) {
				what = `the body would send {"": null}`
			}
			fc.add(n.Line, n.Column, path, diag.Error, "%s is not in quotes, so YAML reads its braces as a mapping, not a template (%s); write it in quotes: %q", text, what, text)
			return
		}
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				// Decoded, such a key becomes "" (a QA run).
				fc.add(k.Line, k.Column, path, diag.Error, "a key must be plain text, not a mapping or a list; put it in quotes if it is meant as text")
				continue
			}
			if prev, dup := first[k.Value]; dup && k.Tag != "!!merge" {
				fc.add(k.Line, k.Column, path.Child(k.Value), diag.Error, "%q is given twice (first on line %d); YAML would keep only one, so remove the other", k.Value, prev.Line)
				continue
			}
			first[k.Value] = k
			fc.checkDuplicateKeys(n.Content[i+1], path.Child(k.Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			fc.checkDuplicateKeys(c, path.Child(i))
		}
	}
}

// unquotedTemplate reports whether n is a Liquid output tag written
// without quotes ({{ event.x }}), which YAML reads as a flow mapping whose
// only key is another, and gives its text as written.
func (fc *fileContext) unquotedTemplate(n *yaml.Node) (string, bool) {
	if n.Style&yaml.FlowStyle == 0 || len(n.Content) != 2 {
		return "", false
	}
	if k, v := n.Content[0], n.Content[1]; k.Kind != yaml.MappingNode || k.Style&yaml.FlowStyle == 0 || v.Tag != "!!null" {
		return "", false
	}
	lines := strings.Split(string(fc.doc.Src), "\n")
	if n.Line < 1 || n.Line > len(lines) {
		return "", false
	}
	line := []rune(lines[n.Line-1])
	if n.Column < 1 || n.Column > len(line) {
		return "", false
	}
	text := string(line[n.Column-1:])
	if end := strings.Index(text, "}}"); end > 0 {
		return text[:end+2], true
	}
	return "", false
}

// strictDecode decodes the file's source with unknown keys refused. The
// JSON Schema already reports unknown keys with better messages, so this
// only speaks when the schema said nothing (the schema and the code
// disagree, which a test guards against).
func (fc *fileContext) strictDecode(into any) {
	dec := yaml.NewDecoder(bytes.NewReader(fc.doc.Src))
	dec.KnownFields(true)
	err := dec.Decode(into)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return
	}
	for _, e := range te.Errors {
		at, msg := yamlpos.TypeProblem(e)
		if strings.Contains(msg, "already defined") {
			continue // reported by checkDuplicateKeys
		}
		line, _ := strconv.Atoi(at)
		fc.add(line, 1, nil, diag.Error, "%s", msg)
	}
}

// decode decodes the (resolved) document into a config struct; values of
// the wrong type were reported by the schema and are left zero. A key
// given twice was reported by checkDuplicateKeys; the YAML decoder would
// drop the whole mapping holding it, so the rest of the file would look
// missing (a pipeline with no target), and the first of the two is
// decoded instead.
func (fc *fileContext) decode(into any) {
	_ = withoutDuplicateKeys(fc.doc.Root).Decode(into)
}

// withoutDuplicateKeys returns n with the second and later copies of a
// key left out of every mapping, or n itself when it has none. n is not
// changed: positions are still looked up in it.
func withoutDuplicateKeys(n *yaml.Node) *yaml.Node {
	var content []*yaml.Node
	changed := false
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			d := withoutDuplicateKeys(c)
			if d != c && !changed {
				content, changed = slices.Clone(n.Content[:i]), true
			}
			if changed {
				content = append(content, d)
			}
		}
	case yaml.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			d := withoutDuplicateKeys(v)
			dup := seen[k.Value] && k.Tag != "!!merge"
			seen[k.Value] = true
			if (dup || d != v) && !changed {
				content, changed = slices.Clone(n.Content[:i]), true
			}
			if changed && !dup {
				content = append(content, k, d)
			}
		}
	}
	if !changed {
		return n
	}
	c := *n
	c.Content = content
	return &c
}

// version hashes what a pipeline's behaviour depends on: its file and the
// connection settings it uses (as written, so secrets are not hashed).
func version(parts ...[]byte) string {
	return fingerprint(sha256.New(), parts...)[:12]
}

// settingsKey keys the hash of resolved references, which holds secrets:
// it is never shown, and keyed with a key no one else has, it cannot be
// used to test guesses at a secret either.
var settingsKey = func() []byte {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return key
}()

// settingsFingerprint hashes what refs resolved to.
func settingsFingerprint(refs []resolvedRef, more ...[]byte) string {
	parts := make([][]byte, 0, 2*len(refs)+len(more))
	for _, r := range refs {
		parts = append(parts, []byte(r.path.String()), []byte(r.value))
	}
	return fingerprint(hmac.New(sha256.New, settingsKey), append(parts, more...)...)
}

func fingerprint(h hash.Hash, parts ...[]byte) string {
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// claimOrder sorts a folder's files in the order their routes are
// claimed (see Running).
func (l *Loader) claimOrder(files []string) []string {
	if l.Running == nil {
		return files
	}
	rank := func(f string) int {
		p := l.Running(PipelineName(f))
		if p == nil {
			return 2
		}
		if src, err := os.ReadFile(f); err == nil && bytes.Equal(src, p.src) {
			return 0
		}
		return 1
	}
	ranks := map[string]int{}
	for _, f := range files {
		ranks[f] = rank(f)
	}
	return slices.SortedStableFunc(slices.Values(files), func(a, b string) int { return cmp.Compare(ranks[a], ranks[b]) })
}

// EngineRoutes are the paths the engine serves itself (GET) on the webhook
// listener, which no pipeline may take.
var EngineRoutes = []string{"/healthz", "/readyz", "/metrics"}

// Routes registers pipelines' routes on a ServeMux, so that a route that
// is not valid or that conflicts with another (by net/http's rules) is
// reported in words. The loader checks the pipelines it loads with one;
// engine run serves them all through another.
type Routes struct {
	mux    *http.ServeMux
	owners map[string]string // pattern -> pipeline
}

// NewRoutes returns an empty route table.
func NewRoutes() *Routes {
	return &Routes{mux: http.NewServeMux(), owners: map[string]string{}}
}

// Mux is the ServeMux the routes were registered on.
func (r *Routes) Mux() *http.ServeMux { return r.mux }

var (
	conflictRE = regexp.MustCompile(`conflicts with pattern "([^"]+)"`)
	exampleRE  = regexp.MustCompile(`like "([^"]+)"`)
	parseErrRE = regexp.MustCompile(`^parsing "[^"]*": (?:at offset \d+: )?`)
)

// Overlaps names the routes of other pipelines, claimed before, that take
// some of the requests method+path takes, which net/http accepts when one
// is more specific than the other: a request both match goes to the more
// specific one, and the other pipeline never sees it. Each comes with such
// a request and the pipeline that gets it.
func (r *Routes) Overlaps(method, path, owner string) []string {
	var out []string
	for _, pattern := range slices.Sorted(maps.Keys(r.owners)) {
		other := r.owners[pattern]
		m, p, _ := strings.Cut(pattern, " ")
		if other == "" || other == owner || m != method {
			continue
		}
		example, specific, ok := overlap(path, p)
		if !ok {
			continue
		}
		winner := owner
		if specific == p {
			winner = other
		}
		out = append(out, fmt.Sprintf("%s %s also takes requests of %s of pipeline %q: %s goes to pipeline %q, whose route is the more specific; make the paths differ if that is not meant", method, path, pattern, other, example, winner))
	}
	return out
}

// overlap reports whether routes a and b, of segments that are each a
// literal or a {wildcard}, take a request in common, and gives one and the
// more specific route: the one with a literal where the other has a
// wildcard. Routes neither of which is more specific are refused by Claim
// already; those with {rest...} or {$} are left to net/http.
func overlap(a, b string) (example, specific string, ok bool) {
	sa, sb := strings.Split(a, "/"), strings.Split(b, "/")
	if len(sa) != len(sb) || strings.Contains(a+b, "...}") || strings.Contains(a+b, "{$}") {
		return "", "", false
	}
	parts := make([]string, len(sa))
	aLiteral, bLiteral := false, false
	for i, x := range sa {
		y := sb[i]
		xWild, yWild := strings.HasPrefix(x, "{"), strings.HasPrefix(y, "{")
		switch {
		case !xWild && !yWild && x != y:
			return "", "", false
		case !xWild:
			parts[i] = x
			aLiteral = aLiteral || yWild
		case !yWild:
			parts[i], bLiteral = y, true
		default:
			parts[i] = "x"
		}
	}
	switch {
	case aLiteral == bLiteral:
		return "", "", false // the same requests, or neither more specific
	case aLiteral:
		return strings.Join(parts, "/"), a, true
	}
	return strings.Join(parts, "/"), b, true
}

// Claim registers h at method+path for owner (a pipeline's name); it
// returns what is wrong with the route, or "", and the pipeline whose
// route this one conflicts with ("" for none, or the engine's own).
func (r *Routes) Claim(method, path, owner string, h http.Handler) (problem, other string) {
	pattern := method + " " + path
	defer func() {
		rec := recover()
		if rec == nil {
			return
		}
		msg := fmt.Sprint(rec)
		m := conflictRE.FindStringSubmatch(msg)
		if m == nil {
			problem = "not a valid route: " + parseErrRE.ReplaceAllString(msg, "")
			return
		}
		other = r.owners[m[1]]
		whose := fmt.Sprintf("pipeline %q", other)
		switch other {
		case owner:
			whose = "this pipeline"
		case "":
			problem = fmt.Sprintf("%s conflicts with %s, which the engine serves itself (%s): give the pipeline another path", pattern, m[1], strings.Join(EngineRoutes, ", "))
			return
		}
		problem = fmt.Sprintf("%s conflicts with %s of %s", pattern, m[1], whose)
		if ex := exampleRE.FindStringSubmatch(msg); ex != nil {
			problem += fmt.Sprintf(": both would take %s; make the paths differ", ex[1])
		} else {
			problem += ": both take the same requests; each route belongs to one pipeline"
		}
	}()
	r.mux.Handle(pattern, h)
	r.owners[pattern] = owner
	return "", ""
}
