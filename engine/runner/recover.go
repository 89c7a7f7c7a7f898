package runner

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/loyalty-connector/engine/engine"
)

// A panic in a template filter, a connector or the engine's own code would
// end the engine, and, the event that caused it being first in the inbox,
// end it again on every start. Each place that works on events recovers
// instead: the event it hit becomes an internal_error dead letter (to be
// replayed once the bug is fixed), a synchronous caller hears 500, and
// everything else goes on.

// internalError is a panic, recovered.
type internalError struct{ value string }

func (e *internalError) Error() string {
	return "internal error (a bug in the engine; its log has the stack): " + e.value
}

// isInternal reports whether err is a recovered panic. Asked only of an
// error: the target it needs goes to the heap.
func isInternal(err error) bool {
	var internal *internalError
	return errors.As(err, &internal)
}

// caught turns a recovered panic into an *internalError, and logs it once,
// at error level, with its stack. event names what it hit, for the log.
func (r *Runner) caught(v any, p *engine.Pipeline, event any) error {
	msg := r.opts.Masker.String(fmt.Sprint(v))
	r.log.Error("internal error; the engine goes on without what it hit", "pipeline", p.Name, "version", p.Version, "event", event,
		"panic", msg, "stack", r.opts.Masker.String(string(debug.Stack())))
	return &internalError{msg}
}

// survive, deferred around an attempt at it, recovers a panic in it. The
// event is dead-lettered if the attempt still held it: turn is its turn
// when the attempt began (see item.turn). One the attempt had let go (it
// was settled, waits for a retry, or is in a batch) is another's now, and
// is left to it.
func (l *lane) survive(it *item, turn uint32, attempt int, req *engine.Request) {
	v := recover()
	if v == nil {
		return
	}
	if it.turn.Load() != turn {
		l.r.caught(v, l.p, "(let go before the panic)")
		return
	}
	l.deadInternal(it, attempt, l.r.caught(v, l.p, eventLabel(it)), req)
}

// surviveBatch is survive for the events of one batch; turns are theirs
// when it was sent. Which event the panic came from is not known, so each
// the batch still held is dead-lettered.
func (l *lane) surviveBatch(members []*member, turns []uint32) {
	v := recover()
	if v == nil {
		return
	}
	err := l.r.caught(v, l.p, fmt.Sprintf("a batch of %d", len(members)))
	for i, m := range members {
		if m.it.turn.Load() == turns[i] {
			l.deadInternal(m.it, m.attempt, err, m.req)
		}
	}
}

// turnsOf is the turn of each member, for surviveBatch.
func turnsOf(members []*member) []uint32 {
	turns := make([]uint32, len(members))
	for i, m := range members {
		turns[i] = m.it.turn.Load()
	}
	return turns
}

// deadInternal dead-letters an event a panic hit. Should writing the dead
// letter panic as well, the event is let go and stays in the inbox: a
// later start tries it again, rather than this one stopping.
func (l *lane) deadInternal(it *item, attempt int, err error, req *engine.Request) {
	turn := it.turn.Load()
	defer func() {
		if v := recover(); v != nil {
			l.r.log.Error("internal error while dead-lettering an internal error; the event stays queued", "pipeline", l.p.Name, "version", l.p.Version,
				"panic", l.r.opts.Masker.String(fmt.Sprint(v)))
			if it.turn.Load() == turn {
				l.release(it)
			}
		}
	}()
	l.dead(it, attempt, "internal_error", err, req, nil)
}
