package engine

import (
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/filter"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/liquid"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/engine/yamlpos"
)

// Defaults for the settings a pipeline leaves out.
const (
	DefaultAttempts       = 10
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Minute
	DefaultConcurrency    = 16
	DefaultLinger         = 500 * time.Millisecond
	DefaultTimeout        = 10 * time.Second
	// DefaultDeadline keeps a synchronous answer well under the 2 s Braze
	// gives Connected Content (braze.md §5).
	DefaultDeadline = 1500 * time.Millisecond
	// brazeConnectedContentTimeout is how long Braze waits for a
	// Connected Content answer (braze.md §5).
	brazeConnectedContentTimeout = 2 * time.Second
	// connectedContentMargin is what a deadline leaves of it for the
	// network between Braze and the engine.
	connectedContentMargin = 250 * time.Millisecond
	DefaultMaxBody         = 1 << 20

	// DefaultMaxLookups bounds the lookups a cached synchronous pipeline
	// has under way: each holds a connection to SessionM until it
	// answers or its timeout passes, its callers gone or not.
	DefaultMaxLookups = 256
	// DefaultRetryWait is how long a key's stale copy answers, without a
	// lookup, after a lookup for it failed (ResponseCache.RetryWait).
	DefaultRetryWait = 5 * time.Second

	// A webhook body larger than this is a mistake; it also keeps a stored
	// event (body, kept headers, id) within what the inbox takes (64 MiB).
	maxBodyLimit = 32 << 20
)

// Pipeline is a built pipeline: every expression compiled and every
// template parsed, ready to evaluate events from many goroutines.
type Pipeline struct {
	Name        string
	File        string
	Version     string
	Description string
	Source      Source
	Filter      *filter.Program // nil: every event passes
	Steps       []*Step
	Target      *Call    // exactly one of Target and Respond is set
	Respond     *Respond //
	Delivery    Delivery
	// EventReads is what the templates and expressions read of the event
	// by name: a CSV file's header row is checked against it.
	EventReads spec.EventReads
	// Parts fingerprints the file's top-level sections and the
	// connections the pipeline uses ("connection braze"), so a reload can
	// say in words what changed (ChangedParts).
	Parts map[string]string
	// settings fingerprints what the ${env:...} and ${secret:...}
	// references of the file and its connections resolved to: a rotated
	// secret changes the pipeline, not its version as written.
	settings string
	// resolved fingerprints the same per place (a path of the file, or
	// "connection NAME"), so ChangedParts can tell a changed value from a
	// reference that moved or a connection no longer used.
	resolved map[string]string
	// written is, per place of resolved, the reference as written (a
	// connection's, all its settings): a value "from the environment or a
	// secret" changed only where the file says the same.
	written map[string]string
	src     []byte // the file as it was read

	info  map[string]any // what templates see as `pipeline`; never written to
	reads bindingReads   // the bindings templates and expressions read; events get only those
}

// Source is a built source.
type Source struct {
	Type      *spec.SourceType
	Paths     []string // HTTP: routes, with {name} placeholders
	Method    string   // HTTP
	Auth      *InboundAuth
	MaxBody   int64  // HTTP
	Inbox     string // CSV: folder, absolute or relative to the working directory
	Delimiter rune   // CSV

	inboxAt struct{ line, col int }   // where the file gives Inbox, for a problem found across files
	pathsAt []struct{ line, col int } // where it gives each of Paths, as inboxAt
}

// PathAt says where the pipeline's file gives Paths[i].
func (s *Source) PathAt(i int) (line, col int) {
	if i < 0 || i >= len(s.pathsAt) {
		return 0, 0
	}
	return s.pathsAt[i].line, s.pathsAt[i].col
}

// Step is a built step: a lookup call or a computed value.
type Step struct {
	Name string
	Call *Call
	Expr *filter.Program
	// IfNotFound is what a lookup its peer answers "not found" (404, or
	// SessionM's not-found error) does: "" fails the event (a dead letter;
	// a respond pipeline answers 404), NotFoundContinue binds null to the
	// step and goes on, NotFoundDrop drops the event as a false filter
	// would.
	IfNotFound string
}

// The values of a step's if_not_found.
const (
	NotFoundFail     = "fail"
	NotFoundContinue = "continue"
	NotFoundDrop     = "drop"
)

// Respond is the answer of a synchronous pipeline.
type Respond struct {
	Status       int
	Headers      []header
	Body         *valueTemplate
	BodyTemplate *liquid.Template
	// Deadline bounds the whole answer, lookups included.
	Deadline time.Duration
	// Cache, when set, keeps answers per key.
	Cache *ResponseCache
}

// ResponseCache says how long a synchronous pipeline's answers are kept:
// fresh for TTL, then served only when a new answer cannot be had in time,
// for up to Stale more.
type ResponseCache struct {
	Key   *liquid.Template // nil: the request's method, path and query
	TTL   time.Duration
	Stale time.Duration
	// MaxLookups bounds the lookups under way; past it a request with no
	// lookup for its key is answered from the cache, else 503.
	MaxLookups int
	// RetryWait: after a lookup for a key fails, its stale copy answers
	// for this long without another lookup, so a caller asking again and
	// again does not send a failing SessionM a lookup each time. How
	// long SessionM takes to recover is not published: assumed (A), and
	// configurable for that reason.
	RetryWait time.Duration
	// Until, when set, renders the time after which an answer is wrong
	// and must not be served, fresh or stale, such as when the first
	// offer it lists expires (RFC 3339; empty: no such time).
	Until *liquid.Template
}

// Delivery holds the delivery settings with defaults applied.
type Delivery struct {
	Attempts       int
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	OrderBy        *liquid.Template
	Concurrency    int
	Linger         time.Duration
	// Timeout is delivery.timeout, 0 when the pipeline leaves it out: its
	// target requests then have their connection's (TargetTimeout).
	Timeout time.Duration
}

// TargetTimeout is how long one target request may take: the pipeline's
// delivery.timeout when it sets one, else its target connection's timeout
// (10 s unless the connection sets one).
func (p *Pipeline) TargetTimeout() time.Duration {
	if p.Delivery.Timeout > 0 {
		return p.Delivery.Timeout
	}
	if p.Target != nil && p.Target.Conn != nil && p.Target.Conn.Timeout > 0 {
		return p.Target.Conn.Timeout
	}
	return DefaultTimeout
}

// Names every template may read, besides step results.
var reservedNames = []string{"event", "request", "row", "pipeline", "now", "connection"}

// scope is what names an expression or template may read, and their shapes.
type scope struct {
	names  []string
	shapes map[string]*spec.Shape
	read   map[string]bool // names read by what was checked against any scope derived from the same root
	// notYet says, for a step's name that is not bound here, why: the
	// step runs later. Without it the step would read as a typo.
	notYet map[string]string
}

func newScope() *scope { return &scope{shapes: map[string]*spec.Shape{}, read: map[string]bool{}} }

func (s *scope) with(name string, shape *spec.Shape) *scope {
	out := &scope{names: append(slices.Clone(s.names), name), shapes: make(map[string]*spec.Shape, len(s.shapes)+1), read: s.read, notYet: s.notYet}
	for k, v := range s.shapes {
		out.shapes[k] = v
	}
	out.shapes[name] = shape
	return out
}

func (s *scope) without(name string) *scope {
	if _, ok := s.shapes[name]; !ok {
		return s
	}
	out := &scope{shapes: make(map[string]*spec.Shape, len(s.shapes)), read: s.read, notYet: s.notYet}
	for _, n := range s.names {
		if n != name {
			out.names = append(out.names, n)
			out.shapes[n] = s.shapes[n]
		}
	}
	return out
}

func (s *scope) check(path []string) string {
	s.markRead(path)
	shape, ok := s.shapes[path[0]]
	if !ok {
		if why := s.notYet[path[0]]; why != "" {
			return fmt.Sprintf("%s; known names here: %s", why, strings.Join(s.names, ", "))
		}
		return fmt.Sprintf("unknown name %q; known names here: %s%s", path[0], strings.Join(s.names, ", "), diag.Suggest(path[0], s.names))
	}
	return shape.CheckPath(path[0], path[1:])
}

// before returns s with the steps named in later marked as not run yet,
// each worded by why.
func (s *scope) before(later []string, why func(step string) string) *scope {
	out := *s
	out.notYet = make(map[string]string, len(later))
	for _, name := range later {
		if _, bound := s.shapes[name]; !bound && name != "" {
			out.notYet[name] = why(name)
		}
	}
	return &out
}

// shadow marks a binding that a template or expression hides behind a
// name of its own as read whole: what it reads of the binding (as in
// {% assign request = request.headers %}) is not seen path by path.
func (s *scope) shadow(name string) {
	if _, ok := s.shapes[name]; ok {
		s.markRead([]string{name})
	}
}

// markRead records the name path reads, and which part of it ("name.*"
// for the whole).
func (s *scope) markRead(path []string) {
	s.read[path[0]] = true
	part := "*"
	if len(path) > 1 {
		part = path[1]
	}
	s.read[path[0]+"."+part] = true
	if path[0] == "request" && part == "headers" {
		// Which headers, for a response cache's default key.
		header := "*"
		if len(path) > 2 {
			header = strings.ToLower(path[2])
		}
		s.read[headerRead+header] = true
	}
}

// headerRead prefixes, in scope.read, the name of a request header read
// (lower-cased; "*" for the whole of request.headers).
const headerRead = "header:"

// bindingReads is what Bindings builds for each event: only what some
// template or expression reads. Building request.headers (every name
// lower-cased) and request.query costs a map each per event.
type bindingReads struct {
	now, request, requestQuery, requestHeaders, row bool
	// headers are the request headers read by name, lower-cased, sorted;
	// allHeaders: request.headers (or request) is read as a whole.
	headers    []string
	allHeaders bool
}

func readsOf(read map[string]bool) bindingReads {
	whole := read["request.*"]
	out := bindingReads{
		now: read["now"], request: read["request"], row: read["row"],
		requestQuery: whole || read["request.query"], requestHeaders: whole || read["request.headers"],
		allHeaders: whole || read[headerRead+"*"],
	}
	for name := range read {
		if h, ok := strings.CutPrefix(name, headerRead); ok && h != "*" {
			out.headers = append(out.headers, h)
		}
	}
	slices.Sort(out.headers)
	return out
}

// builder builds one pipeline file.
type builder struct {
	*fileContext
	conns *connectionSet
	used  map[string]bool // connections the pipeline uses
	// broken: the connections it names that have problems of their own.
	broken map[string]bool
	// events gathers what the templates and expressions read of event
	// (Pipeline.EventReads).
	events eventUse
}

// eventUse is what templates and expressions read of event: of one, or
// (builder.events) of the whole file.
type eventUse struct {
	whole   bool
	read    map[string]bool     // fields read by name
	guarded map[string]bool     // of one: fields it allows to be missing
	needed  map[string][]string // of the file: field -> the places that need it
	// of the file: fields the filter is false without, so no request of
	// an event without one is made
	filtered map[string]bool
}

// watchEvent wraps sc's Check and Shadow for one template or expression
// at path, to see what it reads of event, and Guard, to see which of
// those reads allow for the field missing; done adds what it saw to the
// file's. A field is needed by the template or expression unless one of
// its reads there allows for it missing: {% if event.ttl %} ... {{
// event.ttl }} does not need ttl. Per template, not per read, keeps the
// rule simple to state and to follow (README, CSV files).
func (b *builder) watchEvent(path yamlpos.Path, sc *scope) (check func([]string) string, shadow func(string), guard func([]string), done func()) {
	u := eventUse{read: map[string]bool{}, guarded: map[string]bool{}}
	field := func(p []string) (string, bool) {
		if p[0] != "event" || !slices.Contains(sc.names, "event") {
			return "", false
		}
		if len(p) == 1 {
			u.whole = true
			return "", false
		}
		return p[1], true
	}
	check = func(p []string) string {
		if f, ok := field(p); ok {
			u.read[f] = true
		}
		return sc.check(p)
	}
	shadow = func(name string) {
		if name == "event" && slices.Contains(sc.names, "event") {
			u.whole = true // {% assign event = ... %}: read as a whole, not by name
		}
		sc.shadow(name)
	}
	guard = func(p []string) {
		if f, ok := field(p); ok {
			u.guarded[f] = true
		}
	}
	done = func() {
		e := &b.events
		if e.read == nil {
			e.read, e.needed = map[string]bool{}, map[string][]string{}
		}
		e.whole = e.whole || u.whole
		for _, f := range slices.Sorted(maps.Keys(u.read)) {
			e.read[f] = true
			if u.guarded[f] {
				continue
			}
			e.needed[f] = append(e.needed[f], path.String())
		}
	}
	return check, shadow, guard, done
}

// eventReads is what the file reads of event. A field is needed where a
// request's path takes it (a params value) without allowing for it
// missing: the request would go to another path. Needed wherever it was
// read so, a file without a column that the pipeline checks in ways the
// builder does not follow ({% assign %} then {% if %}, "email" in event)
// was refused whole (a re-QA).
func (e *eventUse) eventReads() spec.EventReads {
	out := spec.EventReads{Whole: e.whole, Fields: slices.Sorted(maps.Keys(e.read))}
	for _, f := range slices.Sorted(maps.Keys(e.needed)) {
		places := e.needed[f]
		if e.filtered[f] {
			continue // "email" in event: a row without it is filtered out (a re-QA)
		}
		if slices.ContainsFunc(places, func(p string) bool { return strings.Contains(p, ".params.") }) {
			out.Needed = append(out.Needed, spec.FieldNeed{Name: f, Places: places})
		}
	}
	return out
}

func (l *Loader) loadPipeline(file string, conns *connectionSet, routes *Routes, proj *Project) *Pipeline {
	proj.Files = append(proj.Files, file)
	var local diag.List
	defer func() { proj.Diagnostics.Append(local) }()
	doc := l.readDoc(file, &local)
	if doc == nil {
		return nil
	}
	fc := &fileContext{loader: l, doc: doc, diags: &local, pipeline: true}
	if _, isConns := doc.Lookup(yamlpos.Path{"connections"}); isConns {
		if _, isPipeline := doc.Lookup(yamlpos.Path{"source"}); !isPipeline {
			// Read as a pipeline, it gave "unknown key" and "missing
			// source", which said nothing of the file's name.
			fc.errorAtKey(yamlpos.Path{"connections"}, "this file holds connections, not a pipeline, and is read as one by its name: name a folder's connections file %s (in lower case), or pass it with --connections FILE", ConnectionsFileName)
			return nil
		}
	}
	fc.checkDuplicateKeys(doc.Root, nil)
	// As written, before the references are resolved in place: a rotated
	// secret changed "source", whose file had not changed (a QA run).
	partHashes := map[string]string{}
	if root := doc.Root; root != nil && root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			partHashes[root.Content[i].Value] = meaningHash(root.Content[i+1])
		}
	}
	fc.resolveRefs(doc.Root, nil)
	if fc.validateSchema(l.schemas.pipeline, l.schemas.rawPipeline) {
		fc.strictDecode(&PipelineConfig{})
	}
	var cfg PipelineConfig
	fc.decode(&cfg)
	b := &builder{fileContext: fc, conns: conns, used: map[string]bool{}, broken: map[string]bool{}}
	pl := b.build(&cfg, routes)
	if local.HasErrors() {
		for _, name := range slices.Sorted(maps.Keys(b.broken)) {
			if proj.ConnectionProblems == nil {
				proj.ConnectionProblems = map[string][]diag.Diagnostic{}
			}
			pipeline := PipelineName(file)
			proj.ConnectionProblems[pipeline] = append(proj.ConnectionProblems[pipeline], conns.problemsOf(name)...)
		}
		return nil
	}
	parts := [][]byte{doc.Src}
	var settings [][]byte
	for _, name := range slices.Sorted(maps.Keys(b.used)) {
		parts = append(parts, []byte(name), conns.raw[name])
		settings = append(settings, []byte(name), []byte(conns.resolved[name]))
	}
	pl.Version, pl.src = version(parts...), doc.Src
	pl.settings = settingsFingerprint(fc.resolved, settings...)
	pl.resolved, pl.written = map[string]string{}, map[string]string{}
	for _, r := range fc.resolved {
		pl.resolved[r.path.String()] = settingsFingerprint([]resolvedRef{r})
		pl.written[r.path.String()] = r.written
	}
	for i := 0; i < len(settings); i += 2 {
		place := "connection " + string(settings[i])
		pl.resolved[place] = settingsFingerprint(nil, settings[i+1])
		pl.written[place] = string(conns.raw[string(settings[i])])
	}
	pl.info = map[string]any{"name": pl.Name, "version": pl.Version, "description": pl.Description}
	pl.Parts = partHashes
	for name := range b.used {
		pl.Parts["connection "+name] = version(conns.raw[name])
	}
	return pl
}

// meaningHash is a hash of a YAML node's content as the engine reads it:
// without comments (one added inside source: was reported as "source
// changed"; the version still changes with it, which a reload reports as
// "changed (comments or layout)"), and with aliases and merge keys (<<)
// expanded (written out as they stand, a change to an anchor's value left
// every *alias and <<: *merge of it looking the same).
func meaningHash(n *yaml.Node) string {
	return version(decodedYAML(n))
}

// decodedYAML is n decoded and written out again: comments gone, aliases
// and merges expanded, keys in order.
func decodedYAML(n *yaml.Node) []byte {
	var v any
	if err := n.Decode(&v); err == nil {
		if out, err := yaml.Marshal(v); err == nil {
			return out
		}
	}
	out, _ := yaml.Marshal(n) // a problem the load reports: hash it as written
	return out
}

// Same reports whether p and other behave the same: the same version, and
// the same values behind its references.
func (p *Pipeline) Same(other *Pipeline) bool {
	return p.Version == other.Version && p.settings == other.settings
}

// ChangedParts says what differs between two versions of a pipeline, in
// words: "filter changed", "steps added", "connection braze changed".
func ChangedParts(old, new *Pipeline) []string {
	var out []string
	for place, v := range new.resolved {
		// Only where both versions read one: target: changed to respond:
		// no longer using a connection said a value had changed.
		if was, ok := old.resolved[place]; ok && was != v && old.written[place] == new.written[place] {
			out = append(out, "a value from the environment or a secret changed")
			break
		}
	}
	for _, name := range slices.Sorted(maps.Keys(new.Parts)) {
		switch was, ok := old.Parts[name]; {
		case !ok:
			out = append(out, name+" added")
		case was != new.Parts[name]:
			out = append(out, name+" changed")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old.Parts)) {
		if _, ok := new.Parts[name]; !ok {
			out = append(out, name+" removed")
		}
	}
	return out
}

func (b *builder) build(cfg *PipelineConfig, routes *Routes) *Pipeline {
	pl := &Pipeline{Name: PipelineName(b.doc.File), File: b.doc.File, Description: cfg.Description}
	base := b.source(cfg, pl, routes)
	stepConfigs := b.stepConfigs(cfg)
	var stepNames []string
	for _, c := range stepConfigs {
		if c != nil {
			stepNames = append(stepNames, c.Name)
		}
	}
	if cfg.Filter != "" {
		sc := base.before(stepNames, func(step string) string {
			return fmt.Sprintf("step %q runs after the filter, so the filter cannot read it", step)
		})
		pl.Filter = b.expression(yamlpos.Path{"filter"}, cfg.Filter, true, sc)
	}
	sc := base.with("now", spec.String())
	k := 0 // cfgStep's index in stepNames
	for i, cfgStep := range stepConfigs {
		if cfgStep == nil {
			continue // not a mapping: the schema said so
		}
		own := cfgStep.Name
		stepScope := sc.before(stepNames[k:], func(step string) string {
			if step == own {
				return fmt.Sprintf("a step cannot read its own result (%q)", step)
			}
			return fmt.Sprintf("step %q runs after this one (steps run in order), so it cannot be read here; move it above this step", step)
		})
		k++
		st := b.step(yamlpos.Path{"steps", i}, cfgStep, stepScope, pl.Steps)
		if st == nil {
			continue
		}
		pl.Steps = append(pl.Steps, st)
		sc = sc.with(st.Name, spec.Any())
	}
	switch {
	case cfg.Target != nil && cfg.Respond != nil:
		b.errorAtKey(yamlpos.Path{"respond"}, "a pipeline has a target or a respond, not both: target sends a request per event, respond answers the caller")
	case cfg.Target != nil:
		pl.Target = b.call(yamlpos.Path{"target"}, cfg.Target, sc)
	case cfg.Respond != nil:
		if pl.Source.Type != nil && pl.Source.Type.Kind != spec.HTTPSource {
			b.errorAtKey(yamlpos.Path{"respond"}, "respond answers an HTTP caller, so it needs an HTTP source, not %s", pl.Source.Type.Name)
		}
		pl.Respond = b.respond(yamlpos.Path{"respond"}, cfg.Respond, sc, base)
		for i, st := range cfg.Steps {
			if st.IfNotFound == NotFoundDrop {
				// Dropped, the request was answered as one the filter
				// refused, and the cache kept its copy of a user the
				// peer had just said does not exist (a review).
				b.errorAt(yamlpos.Path{"steps", i, "if_not_found"}, "a respond pipeline answers 404 when a lookup finds nothing (the default, fail); drop is for pipelines that queue; use continue to answer without the lookup, or leave it out")
			}
		}
	default:
		b.add(1, 1, nil, diag.Error, "a pipeline needs a target (the request each event sends) or respond (the answer of a synchronous pipeline); add one")
	}
	pl.Delivery = b.delivery(&cfg.Delivery, base.with("now", spec.String()))
	pl.reads = readsOf(base.read)
	pl.EventReads = b.events.eventReads()
	if c := pl.Respond; c != nil && c.Cache != nil && c.Cache.Key == nil && pl.reads.allHeaders {
		b.warnAt(yamlpos.Path{"respond", "cache"}, "the pipeline reads request.headers as a whole, so the cache's default key holds every request header and two callers share an answer only when all their headers match; set respond.cache.key to what makes two answers the same")
	}
	if a := pl.Source.Auth; a != nil && a.HMAC != nil && pl.reads.requestQuery && pl.Respond == nil {
		// The dedupe id leaves the query out (it is not signed): events
		// told apart only by it would be taken for repeats.
		b.warnAt(yamlpos.Path{"source", "auth", "hmac"}, "the pipeline reads request.query, which an HMAC signature does not cover: anyone who saw one signed request could change it, and two requests that differ only there are one event (the second is taken for a repeat); put what it reads there in the body")
	}
	return pl
}

// source builds the source and returns the scope its events give.
func (b *builder) source(cfg *PipelineConfig, pl *Pipeline, routes *Routes) *scope {
	path := yamlpos.Path{"source"}
	src := cfg.Source
	st, ok := b.loader.Catalog.Sources[src.Type]
	sc := newScope()
	if !ok {
		// The schema reported the type. The rest is still checked, with
		// every binding a source could give, so all problems show at once.
		for _, name := range []string{"event", "request", "row"} {
			sc = sc.with(name, spec.Any())
		}
		return sc.with("pipeline", pipelineShape)
	}
	pl.Source.Type = st
	event := st.Event
	if event == nil {
		event = spec.Any()
	}
	sc = sc.with("event", event)
	switch st.Kind {
	case spec.HTTPSource:
		pl.Source.Method = cmpOr(src.Method, st.DefaultMethod)
		params := map[string]*spec.Shape{}
		for i, p := range src.Path {
			pp := b.sourcePathAt(path, len(src.Path), i)
			for _, name := range spec.Placeholders(p) {
				if !identRE.MatchString(name) {
					b.errorAt(pp, "placeholder {%s} must be a name of letters, digits and _", name)
				}
				params[name] = spec.String()
			}
			for _, msg := range routes.Overlaps(pl.Source.Method, p, pl.Name) {
				b.warnAt(pp, "%s", msg)
			}
			if msg, _ := routes.Claim(pl.Source.Method, p, pl.Name, http.NotFoundHandler()); msg != "" {
				b.errorAt(pp, "%s", msg)
				continue
			}
			pl.Source.Paths = append(pl.Source.Paths, p)
			n, _ := b.doc.Lookup(pp)
			pl.Source.pathsAt = append(pl.Source.pathsAt, struct{ line, col int }{n.Line, n.Column})
		}
		sc = sc.with("request", spec.Object(map[string]*spec.Shape{
			"method":  spec.String(),
			"path":    spec.String(),
			"params":  spec.Object(params),
			"query":   spec.OpenObject(),
			"headers": spec.OpenObject(),
		}))
		pl.Source.MaxBody = DefaultMaxBody
		if src.MaxBody != "" && !b.hasProblem(path.Child("max_body")) {
			n, err := parseSize(src.MaxBody)
			if err != nil {
				b.errorAt(path.Child("max_body"), "%v", err)
			}
			pl.Source.MaxBody = n
		}
		pl.Source.Auth = src.Auth
		if a := src.Auth; a != nil {
			b.checkInboundAuth(path.Child("auth"), a, pl.Source.Method)
			if a.Basic != nil && a.Basic.UsernameInPath != "" {
				if _, ok := params[a.Basic.UsernameInPath]; !ok {
					b.errorAt(path.Child("auth").Child("basic").Child("username_in_path"), "no path of this source has a {%s} placeholder; name one that holds the user name, or leave username_in_path out", a.Basic.UsernameInPath)
				}
			}
			if a.HMAC != nil {
				a.HMAC.Algorithm = cmpOr(a.HMAC.Algorithm, "sha256")
				a.HMAC.Encoding = cmpOr(a.HMAC.Encoding, "hex")
				if !bodiless(pl.Source.Method) {
					b.warnUnsignedPath(path, src.Path) // a GET is refused already
				}
			}
		}
	case spec.CSVSource:
		if src.Inbox != "" {
			inbox := src.Inbox
			if !filepath.IsAbs(inbox) {
				inbox = filepath.Join(filepath.Dir(b.doc.File), inbox)
			}
			pl.Source.Inbox = inbox
			n, _ := b.doc.Lookup(path.Child("inbox"))
			pl.Source.inboxAt.line, pl.Source.inboxAt.col = n.Line, n.Column
		}
		pl.Source.Delimiter = ','
		if src.Delimiter != "" {
			d, _ := utf8.DecodeRuneInString(src.Delimiter)
			if d == '"' || d == '\r' || d == '\n' || d == utf8.RuneError {
				b.errorAt(path.Child("delimiter"), "%q cannot separate fields; use a character such as , ; | or a tab", src.Delimiter)
			}
			pl.Source.Delimiter = d
		}
		sc = sc.with("row", spec.Object(map[string]*spec.Shape{"number": spec.Integer(), "file": spec.String()}))
	}
	return sc.with("pipeline", pipelineShape)
}

// checkInboundAuth refuses credentials that resolve to nothing (an empty
// variable or secret file): an empty token or secret would let any caller
// in, or anyone sign a body.
func (b *builder) checkInboundAuth(path yamlpos.Path, a *InboundAuth, method string) {
	const why = "is empty (an empty variable or secret file?); it would let any caller in"
	for _, field := range []yamlpos.Path{path, path.Child("bearer"), path.Child("basic").Child("username"), path.Child("basic").Child("password"), path.Child("hmac").Child("secret")} {
		if b.hasProblem(field) {
			return // reported already: an unset variable or secret, or the shape
		}
	}
	// As a connection's secret fields: a value written in the file is a
	// credential in version control.
	for _, field := range []yamlpos.Path{path.Child("bearer"), path.Child("basic").Child("password"), path.Child("hmac").Child("secret")} {
		if n, ok := b.doc.Lookup(field); ok && strings.TrimSpace(n.Value) != "" && !b.referenced[field.String()] {
			b.errorAt(field, "%s is a credential: write ${secret:NAME} (a file under --secrets-dir, or the environment) or ${env:NAME}, not the value itself", field[len(field)-1])
			return
		}
	}
	_, hasBearer := b.doc.Lookup(path.Child("bearer"))
	// HTTP drops the spaces around a header's value, so a caller's token
	// arrives without them: a variable's " tok " let no request in.
	a.Bearer = strings.TrimSpace(a.Bearer)
	switch {
	case hasBearer && a.Bearer == "":
		b.errorAt(path.Child("bearer"), "the bearer token %s", why)
	case a.Basic != nil && (strings.TrimSpace(a.Basic.Username) == "" || strings.TrimSpace(a.Basic.Password) == ""):
		b.errorAt(path.Child("basic"), "the user name or the password %s", why)
	case a.Basic != nil && strings.Contains(a.Basic.Username, ":"):
		b.errorAt(path.Child("basic").Child("username"), "the user name holds a colon, which Basic auth cannot carry (the first colon ends the user name, RFC 7617 §2): no request could match; use a user name without one")
	case a.HMAC != nil && strings.TrimSpace(a.HMAC.Secret) == "":
		b.errorAt(path.Child("hmac").Child("secret"), "the signing secret %s", why)
	case a.HMAC != nil && bodiless(method):
		// Every bodiless request would carry the same signature, which
		// anyone who saw one could send with any path.
		b.errorAt(path.Child("hmac"), "an HMAC signature covers the body, and a %s has none; use bearer or basic for this route", method)
	}
}

// sourcePathAt is where the i-th of a source's n paths is in the file:
// path: /x, or one item of path: [...].
func (b *builder) sourcePathAt(source yamlpos.Path, n, i int) yamlpos.Path {
	pp := source.Child("path")
	if n > 1 || b.isSeq(pp) {
		pp = pp.Child(i)
	}
	return pp
}

// bodiless reports whether requests of method carry no body to sign.
func bodiless(method string) bool {
	return strings.EqualFold(method, http.MethodGet) || strings.EqualFold(method, http.MethodHead)
}

// warnUnsignedPath warns about placeholders in the paths of an HMAC
// route: the signature covers the body only, so whoever saw one signed
// request can send its body to another {user_id}, and each such path is
// another event.
func (b *builder) warnUnsignedPath(path yamlpos.Path, paths []string) {
	for i, p := range paths {
		names := spec.Placeholders(p)
		if len(names) == 0 {
			continue
		}
		verb := "is"
		if len(names) > 1 {
			verb = "are"
		}
		b.warnAt(b.sourcePathAt(path, len(paths), i), "an HMAC signature covers the body, not the path: {%s} %s not signed, so whoever saw one signed request could send its body with another %s; put what the pipeline reads from the path in the body instead",
			strings.Join(names, "}, {"), verb, names[0])
	}
}

// pipelineShape is what templates see as `pipeline`.
var pipelineShape = spec.Object(map[string]*spec.Shape{"name": spec.String(), "version": spec.String(), "description": spec.String()})

func (b *builder) isSeq(path yamlpos.Path) bool {
	n, ok := b.doc.Lookup(path)
	return ok && n.Kind == yaml.SequenceNode
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// stepConfigs returns the steps by their index in the file: decoding the
// list drops null items, which would shift every later step's position.
func (b *builder) stepConfigs(cfg *PipelineConfig) []*StepConfig {
	n, ok := b.doc.Lookup(yamlpos.Path{"steps"})
	if !ok || n.Kind != yaml.SequenceNode {
		out := make([]*StepConfig, len(cfg.Steps))
		for i := range cfg.Steps {
			out[i] = &cfg.Steps[i]
		}
		return out
	}
	out := make([]*StepConfig, len(n.Content))
	for i, item := range n.Content {
		if item = yamlpos.Resolve(item); item.Kind == yaml.MappingNode {
			out[i] = &StepConfig{}
			_ = item.Decode(out[i]) // wrong types were reported by the schema
		}
	}
	return out
}

func (b *builder) step(path yamlpos.Path, cfg *StepConfig, sc *scope, before []*Step) *Step {
	st := &Step{Name: cfg.Name}
	switch {
	case cfg.Name == "":
		return nil // reported by the schema
	case slices.Contains(reservedNames, cfg.Name):
		b.errorAt(path.Child("name"), "%q is a name the engine binds itself (%s); choose another", cfg.Name, strings.Join(reservedNames, ", "))
	case slices.ContainsFunc(before, func(s *Step) bool { return s.Name == cfg.Name }):
		b.errorAt(path.Child("name"), "another step is already called %q", cfg.Name)
	case filter.IsFunction(cfg.Name):
		// Templates read it; in an expression the function wins, and
		// reading the step there failed with a puzzling type error.
		b.warnAt(path.Child("name"), "%q is also an expression function: templates can read this step, but a filter or expr step cannot; choose another name to read it there", cfg.Name)
	}
	hasCall := cfg.Connection != "" || cfg.Endpoint != "" || cfg.Method != "" || cfg.Path != ""
	switch {
	case cfg.Expr != "" && hasCall:
		b.errorAtKey(path.Child("expr"), "a step computes a value (expr) or calls a connection, not both")
	case cfg.Expr != "":
		st.Expr = b.expression(path.Child("expr"), cfg.Expr, false, sc)
	case cfg.Connection == "" && !b.hasProblem(path.Child("expr")):
		b.errorAt(path, "a step needs expr (a value to compute) or connection and endpoint (a lookup)")
	case cfg.Connection == "":
	default:
		st.Call = b.call(path, &cfg.CallConfig, sc)
	}
	switch cfg.IfNotFound {
	case "", NotFoundFail:
	case NotFoundContinue, NotFoundDrop:
		if st.Call == nil && !b.hasProblem(path) {
			b.errorAtKey(path.Child("if_not_found"), "if_not_found is for a lookup (a step with a connection); an expr step finds nothing to miss")
		}
		st.IfNotFound = cfg.IfNotFound
	default:
		if b.hasProblem(path.Child("if_not_found")) {
			break // the schema named the values
		}
		b.errorAt(path.Child("if_not_found"), "if_not_found is fail (the default: a dead letter), continue (the step is null and the event goes on) or drop (the event is dropped, as by a false filter), not %q", cfg.IfNotFound)
	}
	return st
}

// call builds a request to a connection.
func (b *builder) call(path yamlpos.Path, cfg *CallConfig, sc *scope) *Call {
	c := &Call{masker: b.loader.Resolver.Masker()}
	conn := b.connection(path.Child("connection"), cfg.Connection)
	if conn == nil {
		b.templatesOnly(path, cfg, sc)
		return c
	}
	b.used[conn.Name] = true
	c.Conn = conn
	c.public = conn.Public()
	sc = sc.with("connection", publicShape(conn))
	var bodyShape *spec.Shape
	switch {
	case cfg.Endpoint != "" && (cfg.Method != "" || cfg.Path != ""):
		b.errorAtKey(path.Child("endpoint"), "give endpoint, or method and path for a raw call, not both")
		b.templatesOnly(path, cfg, sc)
		return c
	case cfg.Endpoint != "":
		ep, ok := conn.Type.Endpoint(cfg.Endpoint)
		if !ok {
			names := conn.Type.EndpointNames()
			if len(names) == 0 {
				b.errorAt(path.Child("endpoint"), "connection %q (type %s) has no named endpoints; call it with method and path", conn.Name, conn.Type.Name)
			} else {
				b.errorAt(path.Child("endpoint"), "connection %q (type %s) has no endpoint %q; it has %s%s", conn.Name, conn.Type.Name, cfg.Endpoint, strings.Join(names, ", "), diag.Suggest(cfg.Endpoint, names))
			}
			b.templatesOnly(path, cfg, sc)
			return c
		}
		c.Endpoint, c.Method, c.Path, c.ContentType = ep, ep.Method, ep.Path, ep.ContentType
		bodyShape = ep.Body
	default:
		if cfg.Method == "" || cfg.Path == "" {
			hint := ""
			if names := conn.Type.EndpointNames(); len(names) > 0 {
				hint = fmt.Sprintf(", or endpoint (one of %s)", strings.Join(names, ", "))
			}
			b.errorAt(path, "give method and path for a raw call%s", hint)
			b.templatesOnly(path, cfg, sc)
			return c
		}
		c.Method, c.Path = cfg.Method, cfg.Path
	}
	c.fromConnection = map[string]string{}
	if strings.Contains(c.Path, "{{") || strings.Contains(c.Path, "{%") {
		// Placeholders are {name}, filled from params: the path itself
		// is never rendered, and {{ event.p }} read as one was garbled.
		b.errorAt(path.Child("path"), "a path is not a template: write {name} where a value goes and give it under params, e.g. path: /users/{user_id} with params: { user_id: \"{{ event.user.id }}\" } (each value is escaped as one path segment)")
	}
	needed := spec.Placeholders(strings.ReplaceAll(strings.ReplaceAll(c.Path, "{{", ""), "{%", ""))
	if c.Endpoint != nil {
		for ph, field := range c.Endpoint.FromConnection {
			c.fromConnection[ph] = conn.Fields[field]
		}
		needed = c.Endpoint.PathParams()
	}
	for _, ph := range needed {
		switch {
		case cfg.Params[ph] != "" || b.hasProblem(path.Child("params").Child(ph)):
		case c.Endpoint == nil && c.public[ph] != nil && ph != "name" && ph != "type" && ph != "base_url":
			c.fromConnection[ph] = fmt.Sprint(c.public[ph]) // a raw path may name a connection field: {retailer_id}
		default:
			b.errorAt(path, "the path %s needs {%s}: add params: { %s: \"{{ ... }}\" }", c.Path, ph, ph)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Params)) {
		p := path.Child("params").Child(name)
		if !slices.Contains(spec.Placeholders(c.Path), name) {
			b.errorAtKey(p, "the path %s has no {%s}", c.Path, name)
			continue
		}
		c.Params = append(c.Params, param{name, b.template(p, cfg.Params[name], false, sc)})
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Query)) {
		c.Query = append(c.Query, param{name, b.template(path.Child("query").Child(name), cfg.Query[name], false, sc)})
	}
	auth, err := conn.Auth()
	if err != nil {
		b.errorAt(path.Child("connection"), "connection %q: %v", conn.Name, err)
	}
	c.auth = auth
	c.Headers = b.headers(path.Child("headers"), cfg.Headers, auth, sc)
	if hv := headerValue(c.Headers, "Content-Type"); hv != "" {
		c.ContentType = hv
	}
	c.Body, c.BodyTemplate = b.body(path, &cfg.Body, cfg.BodyTemplate, bodyShape, sc)
	b.checkWrittenTotal(path.Child("body"), c)
	hasBody := c.Body != nil || c.BodyTemplate != nil
	// Written, though it did not build (its own problem is reported): a
	// body_template with an unclosed tag was also said to lack campaign_id.
	written := cfg.Body.Kind != 0 || cfg.BodyTemplate != ""
	switch {
	case hasBody && c.Method == http.MethodGet:
		b.errorAtKey(path.Child(bodyKey(cfg)), "a GET request has no body; remove it or use another method")
	case !written && bodyShape != nil && len(missingRequired(bodyShape, c.Endpoint)) > 0:
		b.errorAt(path, "endpoint %s needs a body with %s", c.Endpoint.Name, strings.Join(missingRequired(bodyShape, c.Endpoint), ", "))
	case c.Body != nil && c.Body.kind == objectValue && bodyShape != nil && !b.hasProblem(path.Child("body")):
		// The body's own required fields, but those the connection fills
		// in: a campaign trigger written without campaign_id validated
		// ok and failed every event (a QA run).
		var missing []string
		for _, r := range missingRequired(bodyShape, c.Endpoint) {
			if !slices.Contains(c.Body.keys, r) {
				missing = append(missing, strconv.Quote(r))
			}
		}
		if len(missing) > 0 {
			b.errorAt(path.Child("body"), "endpoint %s needs %s in its body", c.Endpoint.Name, strings.Join(missing, ", "))
		}
	}
	if hasBody && c.ContentType == "" {
		c.ContentType = "application/json"
	}
	c.prepare()
	return c
}

// checkWrittenTotal bounds the items of a body's written lists (as many
// as the file has "-" lines) by the connection's users_track_max_updates,
// as Build does per event: validate said ok to a body that every event
// then failed with (a QA run).
func (b *builder) checkWrittenTotal(path yamlpos.Path, c *Call) {
	if c.Body == nil || c.Body.kind != objectValue || c.Endpoint == nil || c.Endpoint.MaxTotal == nil {
		return
	}
	written := map[string]any{}
	for i, item := range c.Body.items {
		if item.kind == arrayValue {
			written[c.Body.keys[i]] = make([]any, len(item.items))
		}
	}
	if v, over := c.overTotal(written); over {
		b.errorAtKey(path, "%s: split the lists over two calls, or raise the setting if your Braze workspace allows more", v.Message)
	}
}

// templatesOnly builds the templates of a call whose connection or
// endpoint is unknown, for their own problems: validate reported only the
// connection's, and those of the templates came a round of fixes later (a
// QA run). Nothing is checked against an endpoint, which is unknown.
func (b *builder) templatesOnly(path yamlpos.Path, cfg *CallConfig, sc *scope) {
	if !slices.Contains(sc.names, "connection") {
		sc = sc.with("connection", spec.OpenObject())
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Params)) {
		b.template(path.Child("params").Child(name), cfg.Params[name], false, sc)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Query)) {
		b.template(path.Child("query").Child(name), cfg.Query[name], false, sc)
	}
	b.headers(path.Child("headers"), cfg.Headers, spec.Auth{}, sc)
	b.body(path, &cfg.Body, cfg.BodyTemplate, nil, sc)
}

func bodyKey(cfg *CallConfig) string {
	if cfg.BodyTemplate != "" {
		return "body_template"
	}
	return "body"
}

// missingRequired lists the required body fields the connection does not fill.
func missingRequired(s *spec.Shape, ep *Endpoint) []string {
	var out []string
	for _, r := range s.Required {
		if ep == nil || ep.BodyDefaults[r] == "" {
			out = append(out, r)
		}
	}
	return out
}

// Endpoint is spec.Endpoint; the alias keeps signatures short.
type Endpoint = spec.Endpoint

func publicShape(c *spec.Connection) *spec.Shape {
	fields := map[string]*spec.Shape{}
	for k := range c.Public() {
		fields[k] = spec.String()
	}
	return spec.Object(fields)
}

func (b *builder) connection(path yamlpos.Path, name string) *spec.Connection {
	if name == "" {
		return nil // reported by the schema
	}
	set := b.conns
	if !set.exists {
		b.errorAt(path, "connection %q is not defined: %s does not exist; create it with a connections: mapping", name, set.file)
		return nil
	}
	if set.broken[name] || set.unreadable {
		b.errorAt(path, "connection %q cannot be used until the problems reported in %s are fixed", name, set.file)
		b.broken[name] = true
		return nil
	}
	conn, ok := set.conns[name]
	if !ok {
		names := slices.Sorted(maps.Keys(set.raw))
		if len(names) == 0 {
			b.errorAt(path, "unknown connection %q; %s defines none (see its own problems)", name, set.file)
			return nil
		}
		b.errorAt(path, "unknown connection %q; %s defines %s%s", name, set.file, strings.Join(names, ", "), diag.Suggest(name, names))
		return nil
	}
	return conn
}

// engineHeaders are the headers a pipeline may not set: the host comes
// only from connections, the framing from the body, and the hop-by-hop
// headers (RFC 9110 §7.6.1) are between the engine and the next hop:
// from event data, Expect or Upgrade would change how the request is sent,
// and Proxy-Authorization would hand a credential to a proxy.
var engineHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authorization": true, "Expect": true}

var headerNameRE = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")

func (b *builder) headers(path yamlpos.Path, cfg map[string]string, auth spec.Auth, sc *scope) []header {
	var out []header
	for _, name := range slices.Sorted(maps.Keys(cfg)) {
		p := path.Child(name)
		switch {
		case !headerNameRE.MatchString(name):
			b.errorAtKey(p, "%q is not a valid header name", name)
			continue
		case auth.Header != "" && strings.EqualFold(name, auth.Header):
			b.errorAtKey(p, "the connection sets %s itself (from its credentials); remove this header", auth.Header)
			continue
		case engineHeaders[http.CanonicalHeaderKey(name)]:
			b.errorAtKey(p, "%s is the engine's to set (the host comes from the connection, the framing from the body, and hop-by-hop headers stop at the engine); remove this header", name)
			continue
		}
		if v := strings.TrimSpace(cfg[name]); IsCredentialHeader(name) && v != "" && !b.referenced[p.String()] && !strings.Contains(v, "{{") && !strings.Contains(v, "{%") {
			// As a connection's secret fields and source.auth: a
			// credential written in the file is in version control, and
			// dry-run cannot tell it to mask (a QA run: X-Api-Key sk_live_...).
			b.warnAt(p, "%s looks like a credential, written here in the file: write ${secret:NAME} (a file under --secrets-dir, or the environment) or ${env:NAME} instead, so it stays out of version control and is masked", name)
		}
		out = append(out, header{http.CanonicalHeaderKey(name), b.template(p, cfg[name], false, sc)})
	}
	return out
}

func headerValue(hs []header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.name, name) && h.value != nil && !strings.Contains(h.value.Source(), "{") {
			return h.value.Source()
		}
	}
	return ""
}

// body builds body (a YAML value with Liquid leaves) or body_template.
func (b *builder) body(path yamlpos.Path, node *yaml.Node, tmpl string, shape *spec.Shape, sc *scope) (*valueTemplate, *liquid.Template) {
	hasBody := node.Kind != 0
	switch {
	case hasBody && tmpl != "":
		b.errorAtKey(path.Child("body_template"), "give body or body_template, not both")
		return nil, nil
	case tmpl != "":
		return nil, b.template(path.Child("body_template"), tmpl, false, sc)
	case hasBody:
		return b.value(path.Child("body"), node, shape, "the body", sc), nil
	}
	return nil, nil
}

// value builds a YAML value whose string leaves are typed templates,
// checking literal keys against the endpoint's body shape.
func (b *builder) value(path yamlpos.Path, n *yaml.Node, shape *spec.Shape, where string, sc *scope) *valueTemplate {
	n = yamlpos.Resolve(n)
	// A list or mapping written where the endpoint takes another kind (a
	// "recipients:" without its "-") failed every event at run time, with
	// validate saying ok (a QA run).
	switch kind := map[yaml.Kind]string{yaml.MappingNode: "object", yaml.SequenceNode: "array"}[n.Kind]; {
	case kind == "":
	case shape.KindProblem(kind) != "" && !b.hasProblem(path):
		b.errorAt(path, "%s", shape.KindProblem(kind))
		shape = nil // its inside is no longer the shape's
	}
	switch n.Kind {
	case yaml.MappingNode:
		v := &valueTemplate{kind: objectValue}
		for _, kv := range mappingPairs(n) {
			if kv[0].Kind != yaml.ScalarNode {
				continue // reported: a key that is not text, or an unquoted {{ }}
			}
			key := kv[0].Value
			fieldShape, msg := shape.Field(where, key)
			if msg != "" {
				b.errorAtKey(path.Child(key), "%s", msg)
			}
			v.keys = append(v.keys, key)
			v.items = append(v.items, b.value(path.Child(key), kv[1], fieldShape, strings.TrimPrefix(where+"."+key, "the body."), sc))
		}
		// What the fields must be together, as far as the written body
		// tells; a body's own required fields are checked by call, which
		// knows those the connection fills in (retailer_id).
		for _, msg := range shape.CheckOutline(v.outline().(map[string]any), where != "the body") {
			b.errorAt(path, "%s", msg)
		}
		return v
	case yaml.SequenceNode:
		v := &valueTemplate{kind: arrayValue}
		for i, c := range n.Content {
			v.items = append(v.items, b.value(path.Child(i), c, shape.Elem(), fmt.Sprintf("%s[%d]", where, i), sc))
		}
		// A written list has as many items as "-" lines, whatever they
		// render to: 76 attributes objects or 51 recipients validated ok
		// and failed every event (a re-QA).
		if shape != nil && shape.Type == "array" && !b.hasProblem(path) {
			switch count := len(n.Content); {
			case shape.MaxItems > 0 && count > shape.MaxItems:
				b.errorAt(path, "holds %d items; the limit is %d", count, shape.MaxItems)
			case count < shape.MinItems:
				b.errorAt(path, "needs at least %d item(s), has %d", shape.MinItems, count)
			}
		}
		return v
	}
	var constant any
	if n.ShortTag() == "!!str" {
		if strings.Contains(n.Value, "{{") || strings.Contains(n.Value, "{%") {
			return &valueTemplate{kind: templateValue, tmpl: b.template(path, n.Value, true, sc)}
		}
		constant = n.Value
	} else {
		constant = jsonval.Normalize(yamlpos.ToValue(n))
	}
	// A value written as is can be checked now rather than per event.
	for _, v := range shape.Validate(constant) {
		b.errorAt(path, "%s", v.Message)
	}
	return &valueTemplate{kind: literalValue, literal: constant}
}

// mappingPairs returns a mapping's key and value nodes in order, with YAML
// merge keys (<<: *defaults, <<: [*a, *b]) expanded: keys written in the
// mapping win over merged ones, and earlier merged maps over later ones.
func mappingPairs(n *yaml.Node) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamlpos.Resolve(n.Content[i+1])
		if k.Tag != "!!merge" {
			own = append(own, [2]*yaml.Node{k, n.Content[i+1]})
			continue
		}
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, src := range sources {
			if src = yamlpos.Resolve(src); src.Kind == yaml.MappingNode {
				merged = append(merged, mappingPairs(src)...)
			}
		}
	}
	seen := map[string]bool{}
	out := make([][2]*yaml.Node, 0, len(own)+len(merged))
	for _, kv := range append(own, merged...) {
		if !seen[kv[0].Value] {
			seen[kv[0].Value] = true
			out = append(out, kv)
		}
	}
	return out
}

func (b *builder) respond(path yamlpos.Path, cfg *RespondConfig, sc, before *scope) *Respond {
	r := &Respond{Status: cmpOr(cfg.Status, http.StatusOK)}
	r.Headers = b.headers(path.Child("headers"), cfg.Headers, spec.Auth{}, sc)
	r.Body, r.BodyTemplate = b.body(path, &cfg.Body, cfg.BodyTemplate, nil, sc)
	r.Deadline = b.duration(path.Child("deadline"), cfg.Deadline, DefaultDeadline)
	switch {
	case r.Deadline >= brazeConnectedContentTimeout:
		b.warnAt(path.Child("deadline"), "a deadline of %s is not under the %s Braze gives Connected Content: Braze gives up first, and its message goes without the answer (or the stale copy the engine would have sent); if Braze calls this pipeline, keep it under %s (default %s)",
			r.Deadline, brazeConnectedContentTimeout, brazeConnectedContentTimeout, DefaultDeadline)
	case r.Deadline > brazeConnectedContentTimeout-connectedContentMargin:
		// Under load an answer at the deadline leaves a few tens of ms
		// after it (a QA run: 65 ms at 1.9 s), and Braze's 2 s include
		// its way to the engine and back.
		b.warnAt(path.Child("deadline"), "a deadline of %s leaves less than %s of the %s Braze gives Connected Content for the way from Braze and back, and an answer can leave a little after its deadline under load: Braze may give up first; keep it at %s or less (default %s)",
			r.Deadline, connectedContentMargin, brazeConnectedContentTimeout, brazeConnectedContentTimeout-connectedContentMargin, DefaultDeadline)
	}
	if c := cfg.Cache; c != nil {
		cpath := path.Child("cache")
		r.Cache = &ResponseCache{
			TTL:        b.duration(cpath.Child("ttl"), c.TTL, time.Minute),
			Stale:      b.duration(cpath.Child("stale"), c.Stale, time.Hour),
			MaxLookups: cmpOr(c.MaxLookups, DefaultMaxLookups),
			RetryWait:  b.duration(cpath.Child("retry_wait"), c.RetryWait, DefaultRetryWait),
		}
		if c.Key != "" {
			// The key is rendered before the steps run, from what the
			// request carries.
			r.Cache.Key = b.template(cpath.Child("key"), c.Key, false, before)
		}
		if c.Until != "" {
			// Rendered with the answer, from what the steps gave.
			r.Cache.Until = b.template(cpath.Child("until"), c.Until, false, sc)
		}
	}
	return r
}

func (b *builder) delivery(cfg *DeliveryConfig, sc *scope) Delivery {
	path := yamlpos.Path{"delivery"}
	d := Delivery{
		Attempts:       cmpOr(cfg.Attempts, DefaultAttempts),
		Concurrency:    cmpOr(cfg.Concurrency, DefaultConcurrency),
		BackoffInitial: b.duration(path.Child("backoff").Child("initial"), cfg.Backoff.Initial, DefaultBackoffInitial),
		BackoffMax:     b.duration(path.Child("backoff").Child("max"), cfg.Backoff.Max, DefaultBackoffMax),
		Linger:         b.duration(path.Child("linger"), cfg.Linger, DefaultLinger),
		Timeout:        b.duration(path.Child("timeout"), cfg.Timeout, 0),
	}
	if d.BackoffInitial > d.BackoffMax {
		b.errorAt(path.Child("backoff").Child("initial"), "the first wait (%s) is longer than the longest (%s)", d.BackoffInitial, d.BackoffMax)
	}
	if cfg.OrderBy != "" {
		if !strings.Contains(cfg.OrderBy, "{{") && !strings.Contains(cfg.OrderBy, "{%") {
			b.errorAt(path.Child("order_by"), "order_by has no {{ }}, so every event has the same key and they go one at a time; write the key as a template, such as {{ event.user.id }} (or {{ 'all' }} if one at a time is what you want)")
		} else {
			d.OrderBy = b.template(path.Child("order_by"), cfg.OrderBy, false, sc)
		}
	}
	return d
}

func (b *builder) duration(path yamlpos.Path, s string, def time.Duration) time.Duration {
	if s == "" || b.hasProblem(path) {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.errorAt(path, "%q is not a positive duration; write it like 500ms, 10s or 5m", s)
		return def
	}
	return d
}

// template parses a Liquid template and reports its problems at their
// place in the file.
func (b *builder) template(path yamlpos.Path, src string, typed bool, sc *scope) *liquid.Template {
	check, shadow, guard, done := b.watchEvent(path, sc)
	defer done()
	t, problems := b.loader.Liquid.Parse(src, liquid.Options{Typed: typed, Check: check, Shadow: shadow, Guard: guard})
	for _, p := range problems {
		b.errorAtOffset(path, p.Offset, "%s", p.Message)
	}
	return t
}

// expression compiles an expr-lang expression and reports its problems at
// their place in the file.
func (b *builder) expression(path yamlpos.Path, src string, asBool bool, sc *scope) *filter.Program {
	// expr has its own now(), so the template variable `now` is left out.
	sc = sc.without("now")
	check, shadow, guard, done := b.watchEvent(path, sc)
	defer done()
	opts := filter.Options{Names: sc.names, Check: check, Shadow: shadow, Guard: guard, Now: b.loader.Now, Mask: b.loader.Resolver.Masker().String}
	compile := filter.CompileValue
	if asBool {
		compile = filter.CompileBool
		opts.Requires = func(p []string) {
			if len(p) == 2 && p[0] == "event" && slices.Contains(sc.names, "event") {
				if b.events.filtered == nil {
					b.events.filtered = map[string]bool{}
				}
				b.events.filtered[p[1]] = true
			}
		}
	}
	prog, problems := compile(src, opts)
	for _, p := range problems {
		b.errorAtOffset(path, byteOffset(src, p.Line, p.Column), "%s", p.Message)
	}
	return prog
}

// byteOffset converts a 1-based line and rune column into a byte offset.
func byteOffset(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(src); c++ {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	return off
}

var sizeRE = regexp.MustCompile(`^([0-9]+) ?(B|KB|MB|KiB|MiB)?$`)

// parseSize reads 512KB, 1MB, 1MiB or a plain number of bytes. KB and MB
// are taken as 1024 multiples, as users of body limits mean.
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size; write it like 256KB or 1MB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	switch m[2] {
	case "KB", "KiB":
		n <<= 10
	case "MB", "MiB":
		n <<= 20
	}
	if n > maxBodyLimit || n <= 0 {
		return 0, fmt.Errorf("%q is more than the largest body accepted, %dMB", s, maxBodyLimit>>20)
	}
	return n, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
