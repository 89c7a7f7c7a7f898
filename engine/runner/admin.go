package runner

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// AdminHandler serves what operators need while the engine runs, on a
// listener that is loopback by default: GET /status, and the dead letters
// (GET /dlq, POST /dlq/{id}/replay, DELETE /dlq/{id}), since engine dlq
// cannot open the inbox a running engine holds.
func (r *Runner) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", r.status)
	mux.HandleFunc("GET /dlq", r.listDead)
	mux.HandleFunc("POST /dlq/{id}/replay", r.replayDead)
	mux.HandleFunc("DELETE /dlq/{id}", r.dropDead)
	return mux
}

// PipelineStatus is one pipeline in GET /status.
type PipelineStatus struct {
	Name     string   `json:"name"`
	File     string   `json:"file"`
	Version  string   `json:"version"`
	Source   string   `json:"source"`
	Routes   []string `json:"routes,omitempty"`
	Inbox    int      `json:"inbox"`
	PausedTo string   `json:"target_paused_until,omitempty"`
}

func (r *Runner) status(w http.ResponseWriter, _ *http.Request) {
	var out []PipelineStatus
	for _, p := range r.opts.Pipelines {
		st := PipelineStatus{Name: p.Name, File: p.File, Version: p.Version, Source: p.Source.Type.Name, Inbox: r.store.Depth(p.Name)}
		for _, path := range p.Source.Paths {
			st.Routes = append(st.Routes, p.Source.Method+" "+path)
		}
		if p.Target != nil {
			if until := r.governor(p.Target.Conn).PausedUntil(); until.After(r.clock.Now()) {
				st.PausedTo = until.UTC().Format(time.RFC3339)
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"ready": r.ready.Load(), "pipelines": out, "csv_imports": r.CSVImports()})
}

func (r *Runner) listDead(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	f := inbox.DeadFilter{Pipeline: q.Get("pipeline"), Reason: q.Get("reason")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since=%q is not an RFC 3339 time", s))
			return
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q is not a whole number", s))
			return
		}
		f.Limit = n
	}
	dls, err := r.store.DeadLetters(f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if dls == nil {
		dls = []inbox.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, dls)
}

func deadID(w http.ResponseWriter, req *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(req.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a dead letter id", req.PathValue("id")))
		return 0, false
	}
	return id, true
}

// replayDead puts a dead letter's event back into its pipeline's queue; the
// running version handles it.
func (r *Runner) replayDead(w http.ResponseWriter, req *http.Request) {
	id, ok := deadID(w, req)
	if !ok {
		return
	}
	dl, err := r.store.GetDeadLetter(id)
	if err == nil && r.lanes[dl.Pipeline] == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("dead letter %d belongs to pipeline %s, which is not running here", id, dl.Pipeline))
		return
	}
	pipeline, seq, err := r.store.Requeue(id)
	if errors.Is(err, inbox.ErrNoSuchDeadLetter) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	r.lanes[pipeline].wake()
	r.log.Info("dead letter replayed", "dead_letter", id, "pipeline", pipeline, "version", r.version(pipeline), "queued_as", seq)
	writeJSON(w, http.StatusOK, map[string]any{"replayed": id, "pipeline": pipeline, "queued_as": seq})
}

func (r *Runner) dropDead(w http.ResponseWriter, req *http.Request) {
	id, ok := deadID(w, req)
	if !ok {
		return
	}
	if err := r.store.DropDeadLetter(id); errors.Is(err, inbox.ErrNoSuchDeadLetter) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
