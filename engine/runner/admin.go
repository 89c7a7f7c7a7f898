package runner

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// AdminHandler serves what operators need while the engine runs, on a
// listener that is loopback by default: GET /status, the dead letters
// (GET /dlq, GET /dlq/{id}, POST /dlq/{id}/replay, DELETE /dlq/{id}), since engine dlq
// cannot open the inbox a running engine holds, POST /-/reload, which
// runs reload (the same path as a file change or SIGHUP) and answers its
// report, and POST /connections/{name}/resume (Resume).
func (r *Runner) AdminHandler(reload func() ReloadReport) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", r.status)
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if reload == nil {
			writeError(w, http.StatusNotImplemented, "this engine was started without pipeline files to reload")
			return
		}
		rep := reload()
		status := http.StatusOK
		switch {
		case rep.Stopping:
			status = http.StatusServiceUnavailable
		case !rep.OK:
			status = http.StatusUnprocessableEntity
		}
		writeJSON(w, status, rep)
	})
	mux.HandleFunc("GET /dlq", r.listDead)
	mux.HandleFunc("GET /dlq/{id}", r.showDead)
	mux.HandleFunc("POST /dlq/replay", r.replayAllDead)
	mux.HandleFunc("DELETE /dlq", r.dropAllDead)
	mux.HandleFunc("POST /dlq/{id}/replay", r.replayDead)
	mux.HandleFunc("DELETE /dlq/{id}", r.dropDead)
	mux.HandleFunc("POST /connections/{name}/resume", r.resumeConnection)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// /dlq/replay takes POST only; for any other method the mux
		// would take "replay" for a dead letter id (GET, DELETE) or
		// list the methods of /dlq/{id} too (PUT).
		if req.URL.Path == "/dlq/replay" && req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s /dlq/replay: use POST to replay the dead letters its filters match (?all=true for every one)", req.Method))
			return
		}
		mux.ServeHTTP(w, req)
	})
}

// PipelineStatus is one pipeline in GET /status.
type PipelineStatus struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Version is the content hash of the running version ("" when a
	// rejected file has none running).
	Version string   `json:"version,omitempty"`
	Source  string   `json:"source,omitempty"`
	Routes  []string `json:"routes,omitempty"`
	// State: running; starting (its previous version is finishing what it
	// holds); rejected (its file has problems: the version shown goes on,
	// if any); not running (no file defines it, and the inbox holds its
	// events).
	State    string `json:"state"`
	Inbox    int    `json:"inbox"`
	PausedTo string `json:"target_paused_until,omitempty"`
	// PoolsPausedTo: pools of the target connection its peer holds back
	// on their own (a 429 to Braze's broadcasts, a spent window).
	PoolsPausedTo map[string]string `json:"target_pools_paused_until,omitempty"`
	// LookupsPausedTo: connections of its steps' lookups that a 429 has
	// paused, by name; events wait for them as for a paused target.
	LookupsPausedTo map[string]string `json:"lookups_paused_until,omitempty"`
	Reloaded        string            `json:"last_reload,omitempty"`
	Result          string            `json:"last_reload_result,omitempty"`
	Problems        []string          `json:"problems,omitempty"`
}

// Status is what GET /status answers.
type Status struct {
	Ready bool `json:"ready"`
	// DeadLetters is how many dead letters the data folder holds, of
	// every pipeline (engine dlq list and GET /dlq name them).
	DeadLetters int              `json:"dead_letters"`
	Pipelines   []PipelineStatus `json:"pipelines"`
	CSVImports  []CSVProgress    `json:"csv_imports"`
	LastReload  *ReloadReport    `json:"last_reload,omitempty"`
}

func (r *Runner) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, r.Status())
}

// Status says what runs: every pipeline with its version, state and last
// reload, and the files a reload rejected.
func (r *Runner) Status() Status {
	gen := r.gen.Load()
	r.stateMu.Lock()
	states := maps.Clone(r.states)
	last := r.lastReload
	r.stateMu.Unlock()
	var out []PipelineStatus
	for name, p := range gen.pipelines {
		st := PipelineStatus{Name: name, File: p.File, Version: p.Version, Source: p.Source.Type.Name, State: "running", Inbox: r.store.Depth(name)}
		for _, path := range p.Source.Paths {
			// A secret in a path makes it a capability URL: masked, as
			// everywhere the engine prints it.
			st.Routes = append(st.Routes, p.Source.Method+" "+r.opts.Masker.String(path))
		}
		if l := gen.lanes[name]; l != nil {
			l.lifeMu.Lock()
			if l.life == laneWaiting {
				st.State = "starting"
			}
			l.lifeMu.Unlock()
		}
		if p.Target != nil {
			g := r.governor(p.Target.Conn)
			if until := g.PausedUntil(); until.After(r.clock.Now()) {
				st.PausedTo = until.UTC().Format(time.RFC3339Nano)
			}
			for pool, until := range g.PoolsHeldUntil() {
				if st.PoolsPausedTo == nil {
					st.PoolsPausedTo = map[string]string{}
				}
				// The endpoints with no pool of their own share "".
				st.PoolsPausedTo[cmp.Or(pool, "other")] = until.UTC().Format(time.RFC3339Nano)
			}
		}
		for _, step := range p.Steps {
			if step.Call == nil || step.Call.Conn == nil {
				continue
			}
			// A lookup's pause held the pipeline's events back with
			// nothing in /status to say why (a QA run).
			if until := r.governor(step.Call.Conn).PausedUntil(); until.After(r.clock.Now()) {
				if st.LookupsPausedTo == nil {
					st.LookupsPausedTo = map[string]string{}
				}
				st.LookupsPausedTo[step.Call.Conn.Name] = until.UTC().Format(time.RFC3339Nano)
			}
		}
		out = append(out, st)
	}
	for i := range out {
		if s := states[out[i].Name]; s != nil {
			out[i].Reloaded, out[i].Result, out[i].Problems = s.lastReload.UTC().Format(time.RFC3339Nano), s.result, s.problems
			if s.result == "rejected" {
				out[i].State = "rejected"
			}
		}
	}
	for i := range out {
		// What keeps its inbox folder watch from importing.
		if more := r.csvProblems(out[i].Name); len(more) > 0 {
			out[i].Problems = slices.Concat(out[i].Problems, more) // not into the reload's slice
		}
	}
	for name, s := range states {
		if gen.pipelines[name] == nil && s.result == "rejected" {
			out = append(out, PipelineStatus{Name: name, File: s.file, State: "rejected", Inbox: r.store.Depth(name),
				Reloaded: s.lastReload.UTC().Format(time.RFC3339Nano), Result: s.result, Problems: s.problems})
		}
	}
	for name, n := range r.store.Pipelines() {
		// A removed or renamed file leaves its events under its name,
		// for a pipeline of that name to deliver.
		if gen.pipelines[name] == nil && states[name] == nil {
			out = append(out, PipelineStatus{Name: name, State: "not running", Inbox: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	dead, _ := r.store.DeadLetterCount() // 0 if unread: /status still answers
	return Status{Ready: r.ready.Load(), DeadLetters: dead, Pipelines: out, CSVImports: r.CSVImports(), LastReload: last}
}

// deadPage is how many dead letters GET /dlq answers when not told: a
// page an operator reads, where one bare curl used to read 200,000 (450
// MB of JSON, and as much again in the engine's memory).
const deadPage = 100

// deadListParams are the query parameters GET /dlq takes.
var deadListParams = []string{"pipeline", "reason", "since", "limit", "after"}

// deadFilter reads the query parameters of a dead-letter route, which
// takes those named in params, or answers 400 and returns false.
func (r *Runner) deadFilter(w http.ResponseWriter, req *http.Request, route string, params []string) (inbox.DeadFilter, bool) {
	q := req.URL.Query()
	// A misspelt or repeated parameter would quietly select more, or
	// other, dead letters than meant: a replay or drop may follow.
	for name, values := range q {
		if !slices.Contains(params, name) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %s=; %s takes %s", name, route, strings.Join(params, "=, ")+"="))
			return inbox.DeadFilter{}, false
		}
		if len(values) > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s= is given %d times; give it once", name, len(values)))
			return inbox.DeadFilter{}, false
		}
		if values[0] == "" {
			// An unset variable in a script: read as no filter, it
			// would select every dead letter (a drop would drop all).
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s= is empty; give a value, or leave it out", name))
			return inbox.DeadFilter{}, false
		}
	}
	f := inbox.DeadFilter{Pipeline: q.Get("pipeline"), Reason: q.Get("reason"), Limit: deadPage}
	if f.Reason != "" {
		if err := inbox.CheckReason(f.Reason); err != nil {
			writeError(w, http.StatusBadRequest, "reason="+err.Error())
			return inbox.DeadFilter{}, false
		}
	}
	if s := q.Get("since"); s != "" {
		// As engine dlq --since reads it, and with its message.
		t, err := inbox.ParseSince(s, r.clock.Now())
		if err != nil {
			msg := "since " + err.Error()
			if strings.Contains(s, " ") {
				// A + in a URL's query reads as a space.
				msg += "; a time zone's + is written %2B in a URL (since=2026-11-29T10:00:00%2B01:00)"
			}
			writeError(w, http.StatusBadRequest, msg)
			return inbox.DeadFilter{}, false
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: give a positive number, or 0 for all", s))
			return inbox.DeadFilter{}, false
		}
		f.Limit = n
	}
	if s := q.Get("after"); s != "" {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after=%q is not a dead letter id", s))
			return inbox.DeadFilter{}, false
		}
		f.After = id
	}
	return f, true
}

// listDead answers a JSON array of dead letters, oldest first: at most
// limit= of them (deadPage by default, 0 for all) after the id after=.
// They are written as they are read, a few at a time, so the engine holds
// a batch of them, never the whole answer.
func (r *Runner) listDead(w http.ResponseWriter, req *http.Request) {
	f, ok := r.deadFilter(w, req, "GET /dlq", deadListParams)
	if !ok {
		return
	}
	n := 0
	err := r.store.EachDeadLetter(f, func(dl inbox.DeadLetter) error {
		b, err := json.Marshal(dl)
		if err != nil {
			return err
		}
		sep := ","
		if n == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			sep = "["
		}
		n++
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	switch {
	case err != nil && n == 0:
		writeError(w, http.StatusInternalServerError, err.Error())
	case err != nil:
		// Too late for a status: the array is left open, which no JSON
		// reader takes for a whole answer.
		r.log.Warn("listing dead letters stopped", "after", n, "error", err)
	case n == 0:
		if note := r.unknownPipelineNote(f.Pipeline); note != "" {
			w.Header().Set("X-Note", note)
		}
		writeJSON(w, http.StatusOK, []inbox.DeadLetter{})
	default:
		_, _ = io.WriteString(w, "]\n")
	}
}

// unknownPipelineNote says, for an empty answer to pipeline=, when no
// pipeline of that name runs or has dead letters: a misspelt name
// answered [] as a pipeline with nothing wrong does. The answer stays an
// array, for the tools that read it, so the note goes in a header.
func (r *Runner) unknownPipelineNote(pipeline string) string {
	if pipeline == "" || r.Running(pipeline) != nil {
		return ""
	}
	dead, err := r.store.DeadLetterPipelines()
	if err != nil || dead[pipeline] {
		return ""
	}
	return fmt.Sprintf("no pipeline called %q runs here or has dead letters; running: %s",
		pipeline, strings.Join(slices.Sorted(maps.Keys(r.gen.Load().pipelines)), ", "))
}

// deadLetterLabel names a dead letter's event as the lines about it did
// before it was dead (eventLabel), so one search finds them all: a CSV
// row by its file, number and id, any other event by its id.
func deadLetterLabel(dl inbox.DeadLetter) string {
	var ev struct{ Row *storedRow }
	if dl.EventID != "" && json.Unmarshal(dl.Event, &ev) == nil && ev.Row != nil {
		return rowLabel(ev.Row.File, ev.Row.Number, dl.EventID)
	}
	return dl.EventID
}

func deadID(w http.ResponseWriter, req *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(req.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a dead letter id", req.PathValue("id")))
		return 0, false
	}
	return id, true
}

// deadLetter reads the dead letter the path names, or answers why not.
func (r *Runner) deadLetter(w http.ResponseWriter, req *http.Request) (inbox.DeadLetter, bool) {
	id, ok := deadID(w, req)
	if !ok {
		return inbox.DeadLetter{}, false
	}
	dl, err := r.store.GetDeadLetter(id)
	switch {
	case errors.Is(err, inbox.ErrNoSuchDeadLetter):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return dl, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return dl, false
	}
	return dl, true
}

// showDead answers one dead letter in full, as engine dlq show reads it.
func (r *Runner) showDead(w http.ResponseWriter, req *http.Request) {
	if dl, ok := r.deadLetter(w, req); ok {
		writeJSON(w, http.StatusOK, dl)
	}
}

// replayDead puts a dead letter's event back into its pipeline's queue; the
// running version handles it.
func (r *Runner) replayDead(w http.ResponseWriter, req *http.Request) {
	dl, ok := r.deadLetter(w, req)
	if !ok {
		return
	}
	id := dl.ID
	// Asked before whether its pipeline runs: running it would not help.
	if err := dl.Replayable(); err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("dead letter %d (%s): %v", id, dl.Reason, err))
		return
	}
	if r.lane(dl.Pipeline) == nil {
		what := "which is not running here (its file was renamed or removed, or does not load: see /status); restore it and replay the dead letter"
		if p := r.Running(dl.Pipeline); p != nil && p.Respond != nil {
			what = "which now answers its callers (respond:) and takes no queued events; give it a target again and replay the dead letter"
		}
		writeError(w, http.StatusConflict, fmt.Sprintf("dead letter %d belongs to pipeline %s, %s, or drop it (DELETE /dlq/%d)", id, dl.Pipeline, what, id))
		return
	}
	undo := r.csv.replaying(dl.ID, dl.EventID)
	pipeline, seq, err := r.store.Requeue(id)
	var left *inbox.ReplayLeftError
	if errors.As(err, &left) {
		r.settleReplaysLeft(left) // queued: replayed, but listed still
	} else if err != nil && !errors.Is(err, inbox.ErrNoSuchDeadLetter) {
		undo() // still a dead letter; if it is gone, another replay took it, and its row finds the note
	}
	switch {
	case errors.Is(err, inbox.ErrNoSuchDeadLetter):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return
	case err != nil && left == nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	r.wake(pipeline)
	r.metrics.replayed.WithLabelValues(pipeline).Inc()
	r.log.Info("dead letter replayed", "dead_letter", id, "pipeline", pipeline, "version", r.version(pipeline), "event", deadLetterLabel(dl), "queued_as", seq)
	answer := map[string]any{"replayed": id, "pipeline": pipeline, "queued_as": seq}
	if left != nil {
		answer["note"] = fmt.Sprintf("its dead letter could not be removed yet (%v): the engine removes it as soon as the data folder can be written again, and replays none until then", left.Err)
	}
	writeJSON(w, http.StatusOK, answer)
}

func (r *Runner) dropDead(w http.ResponseWriter, req *http.Request) {
	id, ok := deadID(w, req)
	if !ok {
		return
	}
	// Read whole first: its event names a CSV row's file and number,
	// which the log line, the only trace left of it, should say.
	whole, wholeErr := r.store.GetDeadLetter(id)
	out, err := r.store.DropDeadLetters([]uint64{id})
	if err == nil {
		err = out[0].Err
	}
	if err == nil {
		r.csv.dropped(id)
		dl := out[0].DeadLetter
		if wholeErr == nil {
			dl = whole
		}
		r.log.Info("dead letter dropped", "dead_letter", id, "pipeline", dl.Pipeline, "version", dl.Version, "reason", dl.Reason, "event", deadLetterLabel(dl))
	}
	if errors.Is(err, inbox.ErrNoSuchDeadLetter) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
