package runner

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/spec"
)

// A generation is one set of running pipeline versions: what the routes
// serve, and the lanes that deliver. A reload builds the next generation
// completely, then swaps it in with one atomic store, so a webhook is
// served by exactly one version; lanes of versions that did not change are
// carried over untouched (DESIGN §5).
type generation struct {
	pipelines map[string]*engine.Pipeline
	lanes     map[string]*lane        // pipelines that queue (webhook and CSV sources)
	handlers  map[string]http.Handler // webhook routes' handlers, by pipeline
	// responders are the synchronous pipelines' (F3), whose caches the
	// next version of each takes over as stale copies.
	responders map[string]*responder
	routes     *http.ServeMux
}

// retireGrace is how long a replaced or removed version may take to finish
// the requests it has in flight before they are abandoned (their events
// stay queued for the new version), and at least the longest timeout of
// the pipeline's requests and a second (retireGraceOf): a request on the
// wire ends by itself then, and one cut while the peer has it would be
// sent again. Stopping gives its own grace instead.
var retireGrace = 30 * time.Second

func retireGraceOf(p *engine.Pipeline) time.Duration {
	// An event has one request on the wire at a time, a lookup's or the
	// target's: the longest of them bounds the wait.
	longest := p.TargetTimeout()
	for _, st := range p.Steps {
		if st.Call != nil {
			longest = max(longest, st.Call.Conn.Timeout)
		}
	}
	return max(retireGrace, longest+time.Second)
}

type laneLife int

const (
	laneWaiting laneLife = iota // built; starts when the version it replaces is done
	laneRunning
	laneRetired
)

// ReloadReport is the outcome of one reload.
type ReloadReport struct {
	At time.Time `json:"at"`
	// OK is false when a file was rejected (its running version, if any,
	// goes on) or a problem stopped the reload.
	OK      bool             `json:"ok"`
	Changes []PipelineChange `json:"changes"`
	// Problems are the ones that belong to no single pipeline
	// (connections.yaml, a folder).
	Problems []string `json:"problems,omitempty"`
	// Warnings: those of the files the reload added or changed, and the
	// new ones of no pipeline (connections.yaml, a folder), each as
	// engine validate prints it.
	Warnings []string `json:"warnings,omitempty"`
	// Stopping: the engine was stopping, so nothing was reloaded.
	Stopping bool `json:"stopping,omitempty"`
}

// notWhileStopping is the report of a reload asked for during a stop.
func (r *Runner) notWhileStopping() ReloadReport {
	return ReloadReport{At: r.clock.Now(), Stopping: true, Problems: []string{"the engine is stopping: nothing is reloaded; the next start reads the files as they are then"}}
}

// PipelineChange is what a reload did to one pipeline.
type PipelineChange struct {
	Pipeline string `json:"pipeline"`
	// Result: added, changed, removed, rejected, or restored (a file that
	// was rejected gives the running version again).
	Result   string   `json:"result"`
	Version  string   `json:"version,omitempty"`
	Previous string   `json:"previous,omitempty"`
	What     []string `json:"what,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Queued: for a removed pipeline, or one changed to answer
	// synchronously (respond), the events that stay in the inbox until a
	// version of that name with a target runs again.
	Queued int `json:"queued,omitempty"`
}

// Words is the change in a few words, for the log line.
func (c PipelineChange) Words() string {
	switch c.Result {
	case "changed":
		words := c.Pipeline + ": " + strings.Join(c.What, ", ")
		if len(c.What) == 0 {
			words = c.Pipeline + ": changed (comments or layout)"
		}
		if c.Queued > 0 {
			words += fmt.Sprintf("; it no longer queues: %d undelivered event%s in the inbox, kept there until a version with a target runs (counted now; a line follows once its last requests end)", c.Queued, plural(c.Queued))
		}
		return words
	case "rejected":
		kept := "not running"
		if c.Version != "" {
			kept = "version " + c.Version + " goes on"
		}
		return fmt.Sprintf("%s: rejected, %d problem%s; %s", c.Pipeline, len(c.Problems), plural(len(c.Problems)), kept)
	case "restored":
		return c.Pipeline + ": its file is accepted again; version " + c.Version + " goes on"
	case "removed":
		if c.Queued > 0 {
			return fmt.Sprintf("%s: removed; %d undelivered event%s in the inbox, kept there (counted now; a line follows once its last requests end)", c.Pipeline, c.Queued, plural(c.Queued))
		}
		return c.Pipeline + ": removed"
	}
	return c.Pipeline + ": " + c.Result
}

// Summary is the whole report in words.
func (rep ReloadReport) Summary() string {
	var parts []string
	for _, c := range rep.Changes {
		parts = append(parts, c.Words())
	}
	parts = append(parts, rep.Problems...)
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// pipelineState is what /status shows about a pipeline's reloads.
type pipelineState struct {
	lastReload time.Time
	result     string
	problems   []string
	file       string
}

// Apply makes proj's pipelines the running set. Each pipeline is handled
// on its own: one whose file was rejected keeps its running version, an
// unchanged one is not touched, a changed one starts once its previous
// version has finished what it holds, a removed one drains and stops (its
// undelivered events stay in the inbox). Routes switch in one step.
func (r *Runner) Apply(proj *engine.Project) ReloadReport {
	// Asked before the lock too: a stop holds it until it is over, and
	// a reload that waited for it installed versions nothing would run
	// and was logged after the stop's last word (a QA run).
	if r.stopping.Load() {
		return r.notWhileStopping()
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if r.stopping.Load() {
		return r.notWhileStopping()
	}
	old := r.gen.Load()
	rep := ReloadReport{At: r.clock.Now()}
	rejected, files, general := sortProblems(proj)
	rep.Problems = general

	next := map[string]*engine.Pipeline{}
	for _, p := range proj.Pipelines {
		next[p.Name] = p
	}
	loaded := maps.Clone(next)
	for name := range rejected {
		if op := old.pipelines[name]; op != nil {
			next[name] = op // the file is broken: the running version goes on
		}
	}
	if len(general) > 0 {
		// A folder that cannot be read, or a connections file with
		// problems, says nothing about which pipelines should go: a folder
		// swapped mid-deploy would otherwise remove them all.
		for name, op := range old.pipelines {
			if next[name] == nil {
				next[name] = op
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: not removed while the problems above stand", name))
			}
		}
	}
	rep.Problems = append(rep.Problems, keepEmptiedFolders(proj, old, next, files)...)
	for name, p := range next {
		if op := old.pipelines[name]; op != nil && op.Same(p) {
			next[name] = op // same content: keep the running objects
		}
	}

	gen, refused := r.buildGeneration(next, old)
	for name, err := range refused {
		rejected[name] = append(rejected[name], refusal(loaded[name], err, rejected))
		files[name] = loaded[name].File
	}
	rep.Changes = r.changes(old, gen, rejected)
	rep.OK = len(rejected) == 0 && len(rep.Problems) == 0
	rep.Warnings = r.newWarnings(proj, rep.Changes)

	r.gen.Store(gen)
	for _, p := range gen.pipelines {
		r.metrics.expect(p)
	}
	r.switchLanes(old, gen)
	r.recordReload(rep, gen, files)
	return rep
}

// newWarnings lists the warnings a reload is to show. Shown at the start
// only, a route whose auth an edit removed went unmentioned until the next
// restart. The warnings of a file the reload added or changed are all
// shown, as validate would (an overlap of two files' routes is the later
// claimed one's, so the changed file's: see Loader.Running); an
// unchanged, kept or rejected file's are not, so no reload repeats them.
// A warning of no pipeline (of connections.yaml, or a folder) is shown
// when the last load did not have it.
func (r *Runner) newWarnings(proj *engine.Project, changes []PipelineChange) []string {
	result := map[string]string{}
	for _, c := range changes {
		result[c.Pipeline] = c.Result
	}
	var out []string
	all := proj.Warnings(r.opts.Masker.String)
	for _, w := range all {
		switch {
		case w.Pipeline == "" && r.warned[w.Text]:
			continue
		case w.Pipeline == "":
		case result[w.Pipeline] != "added" && result[w.Pipeline] != "changed":
			continue
		}
		if !slices.Contains(out, w.Text) {
			out = append(out, w.Text)
		}
	}
	// Those of this load: one put right and back is shown again (a
	// review), as is one a load that failed to read a folder left out.
	r.warned = generalWarnings(all)
	return out
}

// generalWarnings are the texts of ws that belong to no pipeline.
func generalWarnings(ws []engine.Warning) map[string]bool {
	texts := map[string]bool{}
	for _, w := range ws {
		if w.Pipeline == "" {
			texts[w.Text] = true
		}
	}
	return texts
}

// keepEmptiedFolders puts back into next the running pipelines of a folder
// whose pipeline files are all gone while its connections file stays, and
// says so. A folder left with nothing fails to load, which keeps its
// pipelines (a checkout, a sync or a mount half done is not a wish to stop
// them all); one left with its connections.yaml loaded as a folder of
// connections alone, and every pipeline in it was removed (a README
// walk-through). Such a folder is no problem at the start (a folder of
// shared connections, named beside its subfolders), so this is the
// reload's own check. rejected names the files of rejected pipelines.
func keepEmptiedFolders(proj *engine.Project, old *generation, next map[string]*engine.Pipeline, rejected map[string]string) []string {
	holds := map[string]bool{}
	for _, p := range next {
		holds[filepath.Dir(p.File)] = true
	}
	for _, file := range rejected {
		holds[filepath.Dir(file)] = true
	}
	connections := map[string]string{}
	for _, f := range proj.Files {
		if engine.IsConnectionsFile(f) {
			connections[filepath.Dir(f)] = filepath.Base(f)
		}
	}
	emptied := map[string][]string{}
	for name, op := range old.pipelines {
		if dir := filepath.Dir(op.File); next[name] == nil && !holds[dir] && connections[dir] != "" {
			emptied[dir] = append(emptied[dir], name)
			next[name] = op
		}
	}
	var problems []string
	for _, dir := range slices.Sorted(maps.Keys(emptied)) {
		problems = append(problems, fmt.Sprintf("%s: the folder holds no .yaml pipeline files, only %s", dir, connections[dir]))
		for _, name := range slices.Sorted(slices.Values(emptied[dir])) {
			problems = append(problems, name+": not removed while the problems above stand")
		}
	}
	return problems
}

// sortProblems sorts a load's errors: those of a pipeline file reject that
// pipeline; the others (connections.yaml, a folder) belong to none. A
// pipeline rejected because a connection it uses has problems lists them
// too: its own problem only points at connections.yaml, and /status
// shows a pipeline's problems, not the reload's.
func sortProblems(proj *engine.Project) (rejected map[string][]string, files map[string]string, general []string) {
	rejected, files = map[string][]string{}, map[string]string{}
	for _, d := range proj.Diagnostics.Items() {
		if d.Severity != diag.Error {
			continue
		}
		name := proj.PipelineOfFile(d.File)
		if name == "" {
			general = append(general, d.String())
			continue
		}
		rejected[name] = append(rejected[name], d.String())
		files[name] = d.File
	}
	for name, ds := range proj.ConnectionProblems {
		for _, d := range ds {
			if rejected[name] != nil && !slices.Contains(rejected[name], d.String()) {
				rejected[name] = append(rejected[name], d.String())
			}
		}
	}
	return rejected, files, general
}

// changes says what going from old to gen does to each pipeline.
func (r *Runner) changes(old, gen *generation, rejected map[string][]string) []PipelineChange {
	out := []PipelineChange{} // "changes":[] rather than null when nothing changed
	for _, name := range slices.Sorted(maps.Keys(rejected)) {
		c := PipelineChange{Pipeline: name, Result: "rejected", Problems: rejected[name]}
		if op := gen.pipelines[name]; op != nil {
			c.Version = op.Version
		}
		out = append(out, c)
	}
	for _, name := range slices.Sorted(maps.Keys(gen.pipelines)) {
		p, op := gen.pipelines[name], old.pipelines[name]
		switch {
		case rejected[name] != nil || p == op:
		case op == nil:
			out = append(out, PipelineChange{Pipeline: name, Result: "added", Version: p.Version})
		default:
			c := PipelineChange{Pipeline: name, Result: "changed", Version: p.Version, Previous: op.Version, What: engine.ChangedParts(op, p)}
			if old.lanes[name] != nil && gen.lanes[name] == nil {
				c.Queued = r.undelivered(name, old.lanes[name]) // a respond: now; nothing delivers these
			}
			out = append(out, c)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old.pipelines)) {
		if gen.pipelines[name] == nil {
			out = append(out, PipelineChange{Pipeline: name, Result: "removed", Previous: old.pipelines[name].Version, Queued: r.undelivered(name, old.lanes[name])})
		}
	}
	// A file rejected before that now gives the running version again.
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(r.states)) {
		p := gen.pipelines[name]
		switch {
		case r.states[name].result != "rejected" || rejected[name] != nil:
		case p != nil && p == old.pipelines[name]:
			out = append(out, PipelineChange{Pipeline: name, Result: "restored", Version: p.Version})
		case p == nil && old.pipelines[name] == nil:
			// A rejected file that never ran is gone: its entry leaves
			// /status, and the log said "no change" (a QA run).
			out = append(out, PipelineChange{Pipeline: name, Result: "removed"})
		}
	}
	return out
}

// switchLanes retires the lanes old has and gen does not, and launches
// gen's new ones, each once the lane it replaces is done.
func (r *Runner) switchLanes(old, gen *generation) {
	for name, l := range r.lastLane {
		if gen.lanes[name] == nil && isClosed(l.done) {
			delete(r.lastLane, name)
		}
	}
	for name, l := range gen.lanes {
		r.lastLane[name] = l
	}
	for name, l := range old.lanes {
		if gen.lanes[name] != l {
			// Read here, under reloadMu: read in the goroutine, a test's
			// restore of retireGrace raced with it (go test -race, once).
			grace := retireGraceOf(l.p)
			go func() {
				r.retire(l, grace)
				// A version that waited for the one before it is done
				// only once that one is.
				<-l.done
				r.reportLeftBehind(name, l)
			}()
		}
	}
	if r.started.Load() {
		for name, l := range gen.lanes {
			if old.lanes[name] != l {
				r.launch(l)
			}
		}
		r.watchNewCSVInboxes(gen)
	}
}

// buildGeneration builds the routes and lanes for the pipelines in next,
// reusing old's for the pipelines whose version is running. A new version
// whose routes collide with another pipeline's, or whose CSV inbox folder
// is another's, is refused (the loader catches collisions within one
// load, but not with a version kept running because its new file was
// rejected): it keeps its running version, or is left out.
func (r *Runner) buildGeneration(next map[string]*engine.Pipeline, old *generation) (*generation, map[string]error) {
	refused := map[string]error{}
	for {
		gen := &generation{pipelines: next, lanes: map[string]*lane{}, handlers: map[string]http.Handler{}, responders: map[string]*responder{}}
		for name, p := range next {
			if old != nil && old.pipelines[name] == p {
				if l := old.lanes[name]; l != nil {
					gen.lanes[name] = l
				}
				if h := old.handlers[name]; h != nil {
					gen.handlers[name] = h
				}
				if rs := old.responders[name]; rs != nil {
					gen.responders[name] = rs
				}
				continue
			}
			for _, c := range pipelineConnections(p) {
				r.ensureGovernor(c)
			}
			if queues(p) {
				l := newLane(r, p)
				// The last lane of this name, even one a reload removed
				// that may still be finishing: a pipeline deleted and
				// added back must not read its queue alongside it.
				l.prev = r.lastLane[name]
				gen.lanes[name] = l
			}
			if p.Source.Type.Kind == spec.HTTPSource {
				var rs *responder
				if p.Respond != nil {
					rs = newResponder(r, p)
					gen.responders[name] = rs
				}
				gen.handlers[name] = r.sourceHandler(p, rs)
			}
		}
		// Kept versions first: a collision is then reported against the
		// new one.
		order := slices.SortedFunc(maps.Keys(next), func(a, b string) int {
			ka, kb := old != nil && old.pipelines[a] == next[a], old != nil && old.pipelines[b] == next[b]
			switch {
			case ka && !kb:
				return -1
			case kb && !ka:
				return 1
			}
			return strings.Compare(a, b)
		})
		mux, culprit, err := r.buildRoutes(gen, order)
		if err == nil {
			kept := func(name string) bool { return old != nil && old.pipelines[name] == next[name] }
			culprit, err = r.inboxConflict(next, order, kept)
		}
		if err == nil {
			gen.routes = mux
			if old != nil {
				// Taken over, and linked, only once the version is sure
				// to be installed: linked in each pass, a version the
				// pass refused got the running one's answers, in a
				// cache nobody read (a review).
				for name, rs := range gen.responders {
					if prev := old.responders[name]; prev != nil && prev != rs {
						rs.takeOver(prev)
					}
				}
			}
			return gen, refused
		}
		refused[culprit] = err
		next = maps.Clone(next)
		if old != nil && old.pipelines[culprit] != nil {
			next[culprit] = old.pipelines[culprit]
		} else {
			delete(next, culprit)
		}
	}
}

// refusal is how a reload reports p's new version refused by err. A route
// taken by the running version of a pipeline whose file has problems
// (rejected) is named with where p gives it and what to do: engine
// validate, which knows no running version, finds nothing wrong with p.
func refusal(p *engine.Pipeline, err error, rejected map[string][]string) string {
	var conflict *routeConflict
	if !errors.As(err, &conflict) {
		return fmt.Sprintf("%s: %v", p.File, err)
	}
	at := p.File
	if line, col := p.Source.PathAt(conflict.path); line > 0 {
		at = fmt.Sprintf("%s:%d:%d: source.path", p.File, line, col)
	}
	text := fmt.Sprintf("%s: %s", at, conflict.problem)
	if conflict.other != "" && rejected[conflict.other] != nil {
		text += fmt.Sprintf("; the route is held by the running version of %q, kept because its file has problems: fix them, and this file is taken at the next reload", conflict.other)
	}
	return text
}

// inboxConflict names the first pipeline, in order, whose CSV inbox
// folder another one's claimed before it, and why. The loader refuses
// these within one load, but not a new pipeline on the folder of a
// version kept running because its new file was rejected.
//
// A version kept running (kept) is never named: it cannot be refused,
// only kept again, and a reload that named one looped for ever. Two kept
// versions meet only when the folders became one after they were loaded
// (a link changed); that is logged, and both go on.
func (r *Runner) inboxConflict(next map[string]*engine.Pipeline, order []string, kept func(name string) bool) (culprit string, err error) {
	inboxes := engine.NewInboxes()
	for _, name := range order {
		p := next[name]
		if p.Source.Type.Kind != spec.CSVSource || p.Source.Inbox == "" {
			continue
		}
		problem := inboxes.Claim(p.Source.Inbox, name)
		switch {
		case problem == "":
		case kept(name):
			r.log.Warn("two running pipelines share an inbox folder, which became one after they were loaded; give each a folder of its own", "pipeline", name, "problem", problem)
		default:
			return name, errors.New("source.inbox: " + problem)
		}
	}
	return "", nil
}

// queues reports whether p's events go through the inbox and a lane.
func queues(p *engine.Pipeline) bool {
	return p.Source.Type.Kind == spec.HTTPSource && p.Respond == nil || p.Source.Type.Kind == spec.CSVSource
}

// launch starts l once the version it replaces is done.
func (r *Runner) launch(l *lane) {
	prev := l.prev
	l.prev = nil // let it be collected once done
	r.lanesLive.Add(1)
	l.lifeMu.Lock()
	l.launched = true
	// With nothing to wait for, the lane runs before launch returns, so
	// /status says running, not starting, right after a start or reload.
	waiting := prev != nil && !isClosed(prev.done)
	started := !waiting && r.beginLocked(l)
	l.lifeMu.Unlock()
	go func() {
		defer r.lanesLive.Done()
		if waiting {
			<-prev.done
			l.lifeMu.Lock()
			started = r.beginLocked(l)
			l.lifeMu.Unlock()
		}
		if !started {
			close(l.done) // retired, or the engine stopped, before it began
			return
		}
		<-l.done
	}()
}

// beginLocked starts l unless it was retired or the engine is stopping;
// l.lifeMu is held.
func (r *Runner) beginLocked(l *lane) bool {
	if l.life == laneRetired || r.soft.Err() != nil {
		l.life = laneRetired
		return false
	}
	l.life = laneRunning
	l.start()
	return true
}

// retire stops l: it takes no more events, finishes the requests it has in
// flight (abandoning them after grace; their events stay queued), sends
// its open batches and records its acks. A lane that never started is done
// as soon as the one it waited for is. A grace of 0 is the engine
// stopping: Stop's grace cancels every lane and says so itself, so a
// second clock here would only warn of a replaced version that was not
// replaced.
func (r *Runner) retire(l *lane, grace time.Duration) {
	l.retiring.Do(func() {
		l.lifeMu.Lock()
		was, launched := l.life, l.launched
		l.life = laneRetired
		l.lifeMu.Unlock()
		if was != laneRunning {
			if !launched {
				close(l.done) // replaced before the runner started
			}
			return // launch closes done once the lane before it is done
		}
		l.cancelSoft()
		stopped := make(chan struct{})
		go func() { l.wait(); close(stopped) }()
		var late <-chan time.Time // nil, never ready, when stopping
		if grace > 0 {
			late = time.After(grace)
		}
		select {
		case <-stopped:
		case <-late:
			r.log.Warn("a replaced version did not finish its requests in time; they are abandoned and their events stay queued", "pipeline", l.p.Name, "version", l.p.Version)
			l.cancelHard()
			<-stopped
		}
		l.cancelHard()
		close(l.done)
	})
}

// reportLeftBehind logs what a pipeline that no version delivers any more
// (removed, or changed to answer synchronously) left in the inbox, once its
// last version is done: the reload's own line counts the inbox as it was
// at the reload, before the requests in flight ended and before the
// webhooks the old route was still taking were stored. Only the newest
// version of the name reports, once done: it is done only after every
// version before it (launch), and they would report too early, or twice.
func (r *Runner) reportLeftBehind(name string, l *lane) {
	r.reloadMu.Lock()
	newest := r.lastLane[name]
	r.reloadMu.Unlock()
	if newest != nil && newest != l {
		return
	}
	if r.gen.Load().lanes[name] != nil {
		return // a new version delivers them
	}
	if n := r.undelivered(name); n > 0 {
		r.log.Warn("a pipeline no version delivers any more has finished its last requests; its undelivered events stay in the inbox until a pipeline of that name with a target runs again", "pipeline", name, "queued", n)
	} else {
		r.log.Info("a pipeline no version delivers any more has finished its last requests; it left nothing in the inbox", "pipeline", name)
	}
}

// warnIfStranded warns about an event a route stored just as its pipeline
// went (a webhook taken by the old route during a reload): no version
// delivers it until a pipeline of that name runs again.
func (r *Runner) warnIfStranded(p *engine.Pipeline, id string) {
	if r.gen.Load().lanes[p.Name] != nil {
		return
	}
	r.refusals.log(p.Name+"\x00stranded", r.clock.Now(), func(left int) {
		r.log.Warn("an event was stored as its pipeline was removed: it stays in the inbox until a pipeline of that name with a target runs again", withLeftOut([]any{"pipeline", p.Name, "version", p.Version, "event", id}, left)...)
	})
}

// recordReload updates what /status and the metrics say about reloads.
func (r *Runner) recordReload(rep ReloadReport, gen *generation, files map[string]string) {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	r.lastReload = &rep
	rejected := map[string]bool{}
	for _, c := range rep.Changes {
		r.metrics.reloads.WithLabelValues(c.Pipeline, c.Result).Inc()
		r.states[c.Pipeline] = &pipelineState{lastReload: rep.At, result: c.Result, problems: c.Problems, file: files[c.Pipeline]}
		rejected[c.Pipeline] = c.Result == "rejected"
	}
	for name := range r.states {
		if gen.pipelines[name] == nil && !rejected[name] {
			delete(r.states, name) // removed, or a rejected file that is gone
		}
	}
	if rep.OK {
		r.metrics.lastReloadOK.Set(1)
	} else {
		r.metrics.lastReloadOK.Set(0)
	}
}

// wake tells the running version of pipeline that events were queued. Not
// the version that queued them: after a reload that one may be retiring,
// and the new one would not look until the next event.
func (r *Runner) wake(pipeline string) {
	if l := r.lane(pipeline); l != nil {
		l.wake()
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// lane returns the running lane of pipeline, or nil.
func (r *Runner) lane(pipeline string) *lane { return r.gen.Load().lanes[pipeline] }

// Running returns the running version of pipeline, or nil.
func (r *Runner) Running(name string) *engine.Pipeline { return r.gen.Load().pipelines[name] }
