package runner

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/spec"
)

// An operator can end a connection's pause before the time its peer gave
// (POST /connections/{name}/resume): a pause outlives restarts and lasts
// up to a day, and a peer whose limit was raised meanwhile, or a proxy
// whose Retry-After asked for a day by mistake, left no way out but to
// wait it through.

// resumeSlack: a retry is taken as held back by a pause when it is due
// by this long after the pause's end. A 429's retry is due at the end of
// the pause it began, read a moment after the governor set it; and a pause
// restored after a restart ends up to two seconds after its retries.
const resumeSlack = time.Second

// endedEarly: a next attempt read from the inbox is taken as held back
// by a pause an operator ended when it is due from this long before the
// end that pause had when it began to its end: the retries of a burst's
// 429s, and of a pause restored after a restart (stored up to two seconds
// late, and begun again at that end). A 5xx's backoff due outside that
// span keeps its time when a reload or restart reads it again.
const endedEarly = time.Minute

// endedPause spans the next attempts a pause an operator ended had held
// back (Resume); stored in the inbox so a restart knows it too.
type endedPause struct {
	From, Through time.Time
}

func (e endedPause) holds(due time.Time) bool {
	return !due.Before(e.From) && !due.After(e.Through)
}

// resumeSignal wakes what waits for a pause when an operator ends one.
type resumeSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// next is closed at the next resume.
func (s *resumeSignal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *resumeSignal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// ResumedConnection is one connection whose pause an operator ended, as
// POST /connections/{name}/resume answers it: two folders may each define
// a connection of the name, to two accounts.
type ResumedConnection struct {
	Connection string `json:"connection"`
	// Files are the connections files that define it for this account.
	Files []string `json:"files"`
	// PausedUntil is the end of the pause that was ended, if the
	// connection was paused; PoolsPausedUntil, those of the pools its
	// peer held back on their own (Braze's broadcasts, a spent window).
	PausedUntil      string            `json:"paused_until,omitempty"`
	PoolsPausedUntil map[string]string `json:"pools_paused_until,omitempty"`
	// Warning says what could not be done: the pause ended, but its
	// stored end could not be cleared, so a restart before it would wait
	// for it again.
	Warning string `json:"warning,omitempty"`
}

// UnknownConnectionError: no running pipeline uses a connection of the
// name asked for.
type UnknownConnectionError struct {
	Name  string
	Known []string
}

func (e *UnknownConnectionError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("no running pipeline uses a connection named %q, and none uses a connection at all", e.Name)
	}
	return fmt.Sprintf("no running pipeline uses a connection named %q; the running pipelines use %s", e.Name, strings.Join(e.Known, ", "))
}

// Resume ends now the pauses of the connections named name that the
// running pipelines use (targets and lookups), and of the pools their
// peers held back: requests waiting for them go, retries that wait for
// them and next attempts stored inside them (read from the inbox now or
// after a restart) go at once, Braze batches kept open for them are sent
// a linger later, and their stored ends are cleared so that a restart
// does not restore them. A peer that still refuses answers 429 again,
// which pauses the connection again.
func (r *Runner) Resume(name string) ([]ResumedConnection, error) {
	gen := r.gen.Load()
	conns := map[string][]*spec.Connection{} // by GovernorKey: two folders may reach one account
	known := map[string]bool{}
	for _, p := range gen.pipelines {
		for _, c := range connectionsOf(p) {
			known[c.Name] = true
			if c.Name == name && !slices.ContainsFunc(conns[c.GovernorKey()], func(o *spec.Connection) bool { return o.File == c.File }) {
				conns[c.GovernorKey()] = append(conns[c.GovernorKey()], c)
			}
		}
	}
	if len(conns) == 0 {
		return nil, &UnknownConnectionError{Name: name, Known: slices.Sorted(maps.Keys(known))}
	}
	var out []ResumedConnection
	resumed := map[*delivery.Governor]bool{}
	for _, key := range slices.Sorted(maps.Keys(conns)) {
		c := conns[key][0]
		var files []string
		for _, o := range conns[key] {
			files = append(files, o.File)
		}
		g := r.governor(c)
		// What is ended is known first, and the stored pause cleared
		// while the governor is still paused: no request goes meanwhile,
		// so no new pause is stored and then cleared with it.
		var ended endedPause
		if from, until := g.Held(); until.After(r.clock.Now()) {
			ended = endedPause{From: from.Add(-endedEarly), Through: until.Add(resumeSlack)}
			r.govMu.Lock()
			r.pauseEnded[key] = ended
			r.govMu.Unlock()
		}
		rc := ResumedConnection{Connection: c.Name, Files: files}
		if err := r.forgetPause(key, ended); err != nil {
			rc.Warning = "the pause is over, but the inbox could not record it (" + err.Error() + "): a restart would restore the pause, or leave its events' retries waiting for its end; resume again after a restart"
			r.log.Warn("cannot record in the inbox that a connection's pause was ended; a restart would wait for it again", "connection", c.Name, "files", files, "error", err)
		}
		paused, pools := g.Resume()
		resumed[g] = true
		args := []any{"connection", c.Name, "files", files}
		if !paused.IsZero() {
			rc.PausedUntil = paused.UTC().Format(time.RFC3339Nano)
			args = append(args, "was_paused_until", rc.PausedUntil)
		}
		for pool, until := range pools {
			if rc.PoolsPausedUntil == nil {
				rc.PoolsPausedUntil = map[string]string{}
			}
			rc.PoolsPausedUntil[cmp.Or(pool, "other")] = until.UTC().Format(time.RFC3339Nano)
		}
		if rc.PoolsPausedUntil != nil {
			args = append(args, "pools_were_paused_until", rc.PoolsPausedUntil)
		}
		if ended.Through.IsZero() {
			r.log.Info("connection resume asked by an operator: it was not paused", args...)
		} else {
			r.log.Info("connection resumed by an operator: its requests go now, and its events' retries held back by the pause are tried at once", args...)
		}
		out = append(out, rc)
	}
	r.resumes.broadcast()
	for _, l := range gen.lanes {
		if l.batcher != nil && resumed[l.gov] {
			l.batcher.reconsiderHeld()
		}
	}
	return out, nil
}

// connectionsOf lists the connections p sends to: its target's, then its
// lookups'.
func connectionsOf(p *engine.Pipeline) []*spec.Connection {
	var out []*spec.Connection
	if p.Target != nil && p.Target.Conn != nil {
		out = append(out, p.Target.Conn)
	}
	for _, step := range p.Steps {
		if step.Call != nil && step.Call.Conn != nil {
			out = append(out, step.Call.Conn)
		}
	}
	return out
}

// forgetPause clears the stored pauses of the governor under key, so that
// a restart does not restore what an operator ended, and stores ended
// (pauseEnded), unless zero.
func (r *Runner) forgetPause(key string, ended endedPause) error {
	r.govMu.Lock()
	forget := r.pauseForget[key]
	r.govMu.Unlock()
	if forget == nil {
		return nil
	}
	return forget(ended)
}

// resumeConnection serves POST /connections/{name}/resume.
func (r *Runner) resumeConnection(w http.ResponseWriter, req *http.Request) {
	resumed, err := r.Resume(req.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"resumed": resumed})
}

// held is the latest end of what the peers of the lane's connections (its
// target's and its lookups') asked to wait for; ended, the spans of the
// pauses of those connections an operator ended (Resume).
func (l *lane) held() (until time.Time, ended []endedPause) {
	for _, c := range connectionsOf(l.p) {
		if _, u := l.r.governor(c).Held(); u.After(until) {
			until = u
		}
		l.r.govMu.Lock()
		if e, ok := l.r.pauseEnded[c.GovernorKey()]; ok {
			ended = append(ended, e)
		}
		l.r.govMu.Unlock()
	}
	return until, ended
}

// sleepUntil sleeps until due, unless the lane stops first (its error).
// A wait forPause (a 429's retry, or a next attempt read from the inbox)
// due by the end of a pause of one of the lane's connections ends early
// when an operator ends that pause, and one due within a pause an operator
// has ended already does not begin; resumed says so. Any other wait (a
// 5xx's backoff) keeps its time.
func (l *lane) sleepUntil(due time.Time, forPause bool) (resumed bool, err error) {
	for {
		wake := l.r.resumes.next() // before reading the pauses: a resume in between still wakes it
		held, ended := l.held()
		switch {
		case !forPause:
		case !due.After(held.Add(resumeSlack)):
			woken, err := delivery.SleepUnless(l.soft, l.r.clock, due.Sub(l.r.clock.Now()), wake)
			if err != nil || !woken {
				return resumed, err
			}
			resumed = true // another connection's pause may still hold it: look again
			continue
		case slices.ContainsFunc(ended, func(e endedPause) bool { return e.holds(due) }):
			return true, nil // its pause was ended
		}
		return resumed, l.r.clock.Sleep(l.soft, due.Sub(l.r.clock.Now()))
	}
}

// reconsiderHeld has the batches kept open past their linger for a pause
// or a spent window look again, a linger from now, whether they may go:
// the retries the resume woke join them meanwhile, as they join a pause's
// batch a linger before its end (lane.retry). Sent at once, the batch
// left as they came, and they went in a request of their own.
func (b *batcher) reconsiderHeld() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bt := range b.open {
		if bt.heldByPeer {
			bt.timer.Reset(b.linger)
		}
	}
}
