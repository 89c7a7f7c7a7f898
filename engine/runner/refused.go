package runner

import (
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
	r.metrics.refused.WithLabelValues(p.Name, reason).Inc()
	ok, left := r.refusals.allow(p.Name+"\x00"+reason, r.clock.Now())
	if !ok {
		return
	}
	args := []any{"pipeline", p.Name, "version", p.Version, "reason", reason, "status", status, "remote", req.RemoteAddr}
	if left > 0 {
		args = append(args, "left_out", left)
	}
	r.log.Warn("webhook refused", args...)
}
