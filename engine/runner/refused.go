package runner

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/loyalty-connector/engine/engine"
)

// refuse counts a webhook answered with an error and not stored, and
// logs it: without a line an operator saw only the counter rise, not
// which sender it was. A sender that is refused tends to be refused at
// its own rate (a rotated credential, a full inbox), so each pipeline
// and reason gets at most a line a second. The line names the sender's
// address, never the body or the credentials it sent.
func (r *Runner) refuse(p *engine.Pipeline, req *http.Request, reason string, status int) {
	r.refuseFor(p, req, reason, status, "", nil)
}

// refuseFor is refuse for a refusal caused by err, the engine's own
// failure (the inbox could not store the event): logged at error level,
// with the error and the event's id when it has one, and at the same
// rate, so a full disk does not add a line per webhook to the log on
// that disk.
func (r *Runner) refuseFor(p *engine.Pipeline, req *http.Request, reason string, status int, event string, err error) {
	r.metrics.refused.WithLabelValues(p.Name, reason).Inc()
	remote := req.RemoteAddr
	r.refusals.log(p.Name+"\x00"+reason, r.clock.Now(), func(left int) {
		args := []any{"pipeline", p.Name, "version", p.Version, "reason", reason, "status", status, "remote", remote}
		if event != "" {
			args = append(args, "event", event)
		}
		args = withLeftOut(args, left)
		if err != nil {
			r.log.Error("webhook refused: cannot store the event; the sender should retry", append(args, "error", err)...)
			return
		}
		r.log.Warn("webhook refused", args...)
	})
}

// logLimited writes msg at level through wl: at most one line a second of
// kind, the next (or the last held back, a second later or at the stop)
// saying how many were left out. At debug level, which asks for every
// line, each is written, at each.
func (r *Runner) logLimited(wl *warnLimiter, kind string, level, each slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Log(ctx, each, msg, args...)
		return
	}
	wl.log(kind, r.clock.Now(), func(left int) {
		r.log.Log(ctx, level, msg, withLeftOut(args, left)...)
	})
}

// withLeftOut adds to a line's args how many lines like it were left out
// before it (warnLimiter), when any were.
func withLeftOut(args []any, left int) []any {
	if left > 0 {
		return append(args, "left_out", left)
	}
	return args
}
