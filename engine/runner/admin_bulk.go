package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// deadBulkParams are the query parameters of POST /dlq/replay and
// DELETE /dlq: the filters of GET /dlq, and all=true, which is asked for
// so that a bare request cannot act on every dead letter by mistake.
var deadBulkParams = []string{"pipeline", "reason", "since", "all"}

// deadBulkChunk is how many dead letters a bulk replay or drop changes in
// one go, as engine dlq does: one sync for each of them took 300,000
// requests and a quarter of an hour for 300,000 (a QA run).
const deadBulkChunk = 1000

// deadBulk is the answer of a bulk replay or drop.
type deadBulk struct {
	Done       int            `json:"done"`
	ByPipeline map[string]int `json:"by_pipeline"`
	// Skipped: dead letters the filters selected that cannot be
	// replayed (a broken CSV row, a damaged event, a pipeline that does
	// not run or takes no queued events), by why; they stay.
	Skipped    int            `json:"skipped,omitempty"`
	SkippedWhy map[string]int `json:"skipped_why,omitempty"`
}

// selectedDead is a dead letter a bulk route acts on: its id, and its
// event's, which a CSV import's count of its row needs.
type selectedDead struct {
	id      uint64
	eventID string
}

// bulkDead selects the dead letters of a bulk route, or answers 400.
func (r *Runner) bulkDead(w http.ResponseWriter, req *http.Request, route string) ([]selectedDead, bool) {
	f, ok := r.deadFilter(w, req, route, deadBulkParams)
	if !ok {
		return nil, false
	}
	if all := req.URL.Query().Get("all"); all != "true" {
		msg := route + " acts on every dead letter that pipeline=, reason= and since= select: say so with all=true (as engine dlq's --all)"
		if all != "" {
			msg += ", not all=" + all
		}
		writeError(w, http.StatusBadRequest, msg)
		return nil, false
	}
	// Chosen before any is replayed: one that fails again makes a dead
	// letter the replay must not take up in turn.
	f.Limit = 0
	var selected []selectedDead
	err := r.store.EachDeadLetterSummary(f, func(dl inbox.DeadLetter) error {
		selected = append(selected, selectedDead{dl.ID, dl.EventID})
		return nil
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return nil, false
	}
	if len(selected) == 0 {
		if note := r.unknownPipelineNote(f.Pipeline); note != "" {
			w.Header().Set("X-Note", note)
		}
	}
	return selected, true
}

// replayAllDead replays every dead letter the filters select, a chunk at
// a time; the running versions handle them. Those that cannot be replayed
// are counted, by why, and stay.
func (r *Runner) replayAllDead(w http.ResponseWriter, req *http.Request) {
	selected, ok := r.bulkDead(w, req, "POST /dlq/replay")
	if !ok {
		return
	}
	state := func(pipeline string) inbox.PipelineState {
		switch p := r.Running(pipeline); {
		case r.lane(pipeline) != nil:
			return inbox.PipelineQueues
		case p != nil && p.Respond != nil:
			return inbox.PipelineResponds
		}
		return inbox.PipelineMissing
	}
	res := deadBulk{ByPipeline: map[string]int{}, SkippedWhy: map[string]int{}}
	for chunk := range slices.Chunk(selected, deadBulkChunk) {
		ids := make([]uint64, len(chunk))
		undo := make(map[uint64]func(), len(chunk))
		for i, dl := range chunk {
			ids[i] = dl.id
			undo[dl.id] = r.csv.replaying(dl.id, dl.eventID)
		}
		out, err := r.store.RequeueDeadLetters(ids, state)
		var left *inbox.ReplayLeftError
		if errors.As(err, &left) {
			r.settleReplaysLeft(left)
		} else if err != nil {
			for _, u := range undo {
				u()
			}
			r.bulkFailed(w, res, err, len(selected))
			return
		}
		var notQueued *inbox.NotQueuedError
		unqueued := 0
		for _, o := range out {
			var np *inbox.NoPipelineError
			switch {
			case o.Err == nil:
				res.Done++
				res.ByPipeline[o.Pipeline]++
				r.metrics.replayed.WithLabelValues(o.Pipeline).Inc()
				continue
			case errors.Is(o.Err, inbox.ErrNoSuchDeadLetter):
				// Replayed or dropped by another request meanwhile, which
				// settles its CSV row's count: nothing to undo.
				continue
			case errors.As(o.Err, &np) && np.Responds:
				res.SkippedWhy["its pipeline answers its callers (respond:) and takes no queued events"]++
				res.Skipped++
			case errors.As(o.Err, &np):
				res.SkippedWhy["its pipeline is not running here"]++
				res.Skipped++
			case errors.As(o.Err, &notQueued):
				// The inbox cannot be written (a full disk): not the
				// dead letter's fault; the next chunk fails the same way.
				unqueued++
			default:
				// What to do instead, as dlq replay --all says it: a bare
				// "cannot be replayed" left a csv_row's operator to guess,
				// and the guess, the whole file again, resends its rows.
				res.SkippedWhy[cmp.Or(o.Reason, "damaged")+": "+o.Err.Error()]++
				res.Skipped++
			}
			undo[o.ID]()
		}
		r.wakeAll(res.ByPipeline)
		switch {
		case unqueued > 0:
			r.bulkFailed(w, res, fmt.Errorf("%d of them could not be queued again (they stay dead letters): %w", unqueued, notQueued.Err), len(selected))
			return
		case left != nil:
			r.bulkFailed(w, res, left, len(selected))
			return
		}
	}
	r.logBulk("dead letters replayed", res, slog.LevelInfo)
	writeJSON(w, http.StatusOK, res)
}

// bulkFailed answers a bulk replay that err stopped, saying how far it got.
func (r *Runner) bulkFailed(w http.ResponseWriter, res deadBulk, err error, selected int) {
	msg := fmt.Sprintf("replayed %d of the %d selected, then: %v", res.Done, selected, err)
	if errors.As(err, new(*inbox.ReplayLeftError)) {
		msg += "; the engine removes those dead letters as soon as the data folder can be written again, and replays none until then, so none is queued twice"
	}
	r.logBulk("dead letters replayed, then a failure", res, slog.LevelWarn, "error", err)
	writeError(w, http.StatusInternalServerError, msg)
}

func (r *Runner) wakeAll(pipelines map[string]int) {
	for p := range pipelines {
		r.wake(p)
	}
}

// dropAllDead drops every dead letter the filters select, a chunk at a
// time.
func (r *Runner) dropAllDead(w http.ResponseWriter, req *http.Request) {
	selected, ok := r.bulkDead(w, req, "DELETE /dlq")
	if !ok {
		return
	}
	res := deadBulk{ByPipeline: map[string]int{}}
	for chunk := range slices.Chunk(selected, deadBulkChunk) {
		ids := make([]uint64, len(chunk))
		for i, dl := range chunk {
			ids[i] = dl.id
		}
		out, err := r.store.DropDeadLetters(ids)
		if err != nil {
			r.logBulk("dead letters dropped, then a failure", res, slog.LevelWarn, "error", err)
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("%v; dropped %d of the %d selected before it", err, res.Done, len(selected)))
			return
		}
		for _, o := range out {
			if o.Err == nil {
				r.csv.dropped(o.ID)
				res.Done++
				res.ByPipeline[o.Pipeline]++
			}
		}
	}
	r.logBulk("dead letters dropped", res, slog.LevelInfo)
	writeJSON(w, http.StatusOK, res)
}

// logBulk writes one line for a bulk replay or drop: one per dead letter
// would be 300,000 of them.
func (r *Runner) logBulk(msg string, res deadBulk, level slog.Level, more ...any) {
	if res.Done == 0 && res.Skipped == 0 && len(more) == 0 {
		return // nothing was selected: nothing to say
	}
	args := append([]any{"dead_letters", res.Done, "by_pipeline", DescribeCounts(res.ByPipeline)}, more...)
	if res.Skipped > 0 {
		args = append(args, "skipped", res.Skipped, "skipped_why", DescribeCounts(res.SkippedWhy))
	}
	r.log.Log(context.Background(), level, msg, args...)
}

// settleReplaysLeft has the dead letters a replay queued again, but could
// not remove, removed as soon as the store can write (a full disk got
// room): every second until then, and once more at the stop (Close).
// Until then the store replays nothing, so no event is queued twice, and
// no other replay leaves more (it fails first): one goroutine for each
// such replay is a few at most.
func (r *Runner) settleReplaysLeft(left *inbox.ReplayLeftError) {
	r.log.Warn("replayed dead letters could not be removed; the engine removes them once the data folder can be written again, and replays none until then",
		"events", left.Queued, "error", left.Err)
	go func() {
		for r.clock.Sleep(r.hard, ackRetryEvery) == nil {
			if _, err := r.store.SettleReplaysLeft(); err == nil {
				r.log.Info("the dead letters of replayed events are removed now: the data folder can be written again")
				return
			}
		}
	}()
}
