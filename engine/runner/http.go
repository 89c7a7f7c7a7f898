package runner

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler serves the webhook routes, /healthz, /readyz and /metrics. It
// never changes: each request is routed by the generation current when it
// arrives, so a reload swaps routes without closing anything, and every
// webhook is served by exactly one version.
func (r *Runner) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.gen.Load().routes.ServeHTTP(w, req)
	})
}

// routeConflict is a route of a pipeline's that cannot be served: it
// collides with another pipeline's (other), or with the engine's own.
type routeConflict struct {
	path    int // the index in Source.Paths
	other   string
	problem string
}

func (c *routeConflict) Error() string { return c.problem }

// buildRoutes serves gen's pipelines, in order. When a pipeline's route
// cannot be served, it returns that pipeline's name and a *routeConflict.
func (r *Runner) buildRoutes(gen *generation, order []string) (mux *http.ServeMux, culprit string, err error) {
	routes := engine.NewRoutes()
	routes.Claim("GET", "/healthz", "", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	routes.Claim("GET", "/metrics", "", r.metrics.handler())
	routes.Claim("GET", "/readyz", "", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !r.ready.Load() {
			// During a drain the listener still takes webhooks: say why
			// the answer is 503 all the same.
			status := "not ready"
			if r.stopping.Load() {
				status = "stopping"
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": status})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}))
	for _, name := range order {
		h := gen.handlers[name]
		if h == nil {
			continue
		}
		p := gen.pipelines[name]
		for i, path := range p.Source.Paths {
			if problem, other := routes.Claim(p.Source.Method, path, name, h); problem != "" {
				return nil, name, &routeConflict{path: i, other: other, problem: problem}
			}
		}
	}
	return routes.Mux(), "", nil
}

// writeAccepted answers a stored event: {"accepted":true,"event_id":...}
// and "duplicate":true for a repeat. It is written by hand because
// encoding/json's reflection took about 1% of a webhook's CPU.
func writeAccepted(w http.ResponseWriter, id string, duplicate bool) {
	b := make([]byte, 0, 64+len(id))
	b = append(b, `{"accepted":true,"event_id":`...)
	b, _ = jsonval.Append(b, id) // a string always encodes
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// sourceHandler serves p's routes; responder answers them when p is
// synchronous (nil otherwise).
func (r *Runner) sourceHandler(p *engine.Pipeline, responder *responder) http.Handler {
	placeholders := map[string][]string{}
	for _, path := range p.Source.Paths {
		placeholders[p.Source.Method+" "+path] = spec.Placeholders(path)
	}
	var unrenderedOnce, emptyPartOnce sync.Once // a warning per version, not per webhook
	// A synchronous pipeline never queues: these series would stay at 0.
	var acceptDuration prometheus.Observer
	var received prometheus.Counter
	storing := r.storingNow(p.Name)
	if responder == nil {
		acceptDuration = r.metrics.acceptDuration.WithLabelValues(p.Name)
		received = r.metrics.received.WithLabelValues(p.Name)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		started := time.Now()
		// One field each (RFC 9110 §11.6.2; the Idempotency-Key draft):
		// with two, which one counts is a guess, and a proxy in front that
		// checked the other would let a caller through on it.
		for _, name := range [...]string{"Authorization", "Idempotency-Key"} {
			if n := len(req.Header[name]); n > 1 {
				r.refuse(p, req, "header_twice", http.StatusBadRequest)
				writeError(w, http.StatusBadRequest, fmt.Sprintf("the request has %d %s headers; send one", n, name))
				return
			}
		}
		// Bearer and basic credentials are checked before the body is
		// read, so an unauthenticated caller cannot make the engine read
		// megabytes; an HMAC signature needs the body.
		// An HMAC route checks its signature once the body is in, but a
		// request without the header cannot pass: refused before its
		// body takes room (with Expect: 100-continue it was asked for).
		if a := p.Source.Auth; a != nil && (a.HMAC == nil && !authorized(a, req, nil) || a.HMAC != nil && strings.TrimSpace(req.Header.Get(a.HMAC.Header)) == "") {
			r.refuse(p, req, "unauthorized", http.StatusUnauthorized)
			w.Header().Set("WWW-Authenticate", authChallenge(a))
			writeError(w, http.StatusUnauthorized, "missing or wrong credentials for this route")
			return
		}
		if req.ContentLength > p.Source.MaxBody {
			r.tooLarge(w, req, p)
			return
		}
		// One byte over max_body is how MaxBytesReader tells a body of
		// unknown length too big; io.ReadAll reads it into a buffer it
		// grows by doubling.
		need := 2 * (p.Source.MaxBody + 1)
		if req.ContentLength >= 0 {
			need = req.ContentLength
		}
		room := &r.bodies.checked
		if a := p.Source.Auth; a == nil || a.HMAC != nil {
			room = &r.bodies.unchecked
		}
		took, ok := room.take(need)
		if !ok {
			r.refuse(p, req, "busy", http.StatusServiceUnavailable)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "too many request bodies are being read at once; try again in a second")
			return
		}
		body, err := readBody(http.MaxBytesReader(w, req.Body, p.Source.MaxBody), req.ContentLength)
		// Once read, the body holds only what it holds: the rest of the
		// room is given back at once, not when the answer is written (a
		// synchronous pipeline's steps take up to its deadline).
		held := min(took, int64(cap(body)))
		room.give(took - held)
		defer room.give(held)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				r.tooLarge(w, req, p)
				return
			}
			// The body did not come whole: the sender was slower than the
			// listener's read timeout, or went away. Refused like any other
			// webhook (such callers made others wait for body room, and
			// were neither counted nor logged: a QA run), and without the
			// error's words, which name the listener's sockets.
			status, msg := http.StatusBadRequest, "the body ended before it was whole (the connection was cut, or it was shorter than its Content-Length); send it again"
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				status, msg = http.StatusRequestTimeout, "the body did not arrive within the time the engine gives one (a minute); send it again"
			}
			r.refuse(p, req, "body_unread", status)
			writeError(w, status, msg)
			return
		}
		if a := p.Source.Auth; a != nil && a.HMAC != nil && !authorized(a, req, body) {
			r.refuse(p, req, "unauthorized", http.StatusUnauthorized)
			w.Header().Set("WWW-Authenticate", authChallenge(p.Source.Auth))
			writeError(w, http.StatusUnauthorized, "missing or wrong credentials for this route")
			return
		}
		if len(body) == 0 && (req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch) {
			r.refuse(p, req, "not_json", http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "the body is empty; send the event as JSON")
			return
		}
		// JSON between systems is UTF-8 (RFC 8259 §8.1); the decoder would
		// turn other bytes into U+FFFD, and SessionM or Braze would get
		// text the sender never wrote. Checked first: the JSON check named
		// a Latin-1 or UTF-16 body's first byte as a character ('ÿ').
		if !utf8.Valid(body) {
			problem := fmt.Sprintf("byte %d is not part of a UTF-8 character", firstInvalidUTF8(body))
			if bytes.HasPrefix(body, []byte("\xFF\xFE")) || bytes.HasPrefix(body, []byte("\xFE\xFF")) {
				problem = "it starts with a UTF-16 byte-order mark"
			}
			r.refuse(p, req, "not_json", http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "the body is not UTF-8 ("+problem+"); JSON must be sent as UTF-8")
			return
		}
		// json.Valid is much cheaper than decoding; the decoder runs only
		// to say where a bad body goes wrong.
		if len(body) > 0 && !json.Valid(body) {
			problem := "it is not one JSON value" // in case the two ever disagree
			if _, err := jsonval.Decode(body); err != nil {
				problem = strings.TrimPrefix(err.Error(), "not JSON: ")
			}
			switch {
			case bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")):
				// The decoder names the mark's first byte as a character.
				problem = "it starts with a UTF-8 byte-order mark (EF BB BF), which JSON does not allow (RFC 8259 §8.1); send it without"
			case bytes.IndexByte(body[:min(len(body), 4)], 0) >= 0:
				// UTF-16 without a mark: ASCII with a NUL byte between.
				problem = "it holds NUL bytes among its first, as UTF-16 text does; JSON must be sent as UTF-8"
			}
			r.refuse(p, req, "not_json", http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "the body is not JSON: "+problem)
			return
		}
		if problem := engine.NotAnObject(p.Source.Type.Name, body); problem != "" {
			r.refuse(p, req, "not_json", http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, problem)
			return
		}
		params := map[string]string{}
		for _, name := range placeholders[req.Pattern] {
			params[name] = req.PathValue(name)
		}
		id := eventID(p, req, params, body)
		if id == "" && unrendered(req.Header.Get("Idempotency-Key")) {
			unrenderedOnce.Do(func() {
				r.log.Warn("the Idempotency-Key header holds template text, so it names no event and repeats are not recognised; check that the sender renders it (Braze webhook headers)", "pipeline", p.Name, "version", p.Version, "key", req.Header.Get("Idempotency-Key"))
			})
		}
		if id != "" && emptyPart(id) && id == strings.TrimSpace(req.Header.Get("Idempotency-Key")) {
			emptyPartOnce.Do(func() {
				r.log.Warn("an Idempotency-Key has an empty part: if it is rendered from a user attribute some users lack (${user_id} for a user with no external id), their events share the key and all but the first are dropped as repeats; use ${braze_id}, which every user has", "pipeline", p.Name, "version", p.Version, "key", id)
			})
		}
		if len(id) > inbox.MaxIDLength {
			r.refuse(p, req, "id_too_long", http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the event id (a SessionM event_id, or the Idempotency-Key header) is %d bytes; at most %d are taken", len(id), inbox.MaxIDLength))
			return
		}
		stored := &storedEvent{ID: id, AcceptedBy: p.Version, Data: body, Request: newStoredRequest(req, params, p.Source.Auth)}
		if responder != nil {
			responder.serve(w, req, stored)
			return
		}
		// Events on their way into the inbox count toward its limit, as
		// they are not in its depth yet: checked against the depth
		// alone, 1,000 concurrent senders took a pipeline of
		// --max-inbox 50 to 239 (a QA run). A copy of one on its way
		// waits for it, and is a repeat once it is in: counted, 50
		// copies of one Braze retry sent at once got 39 503s "inbox
		// full" with one event queued (a QA run); let through uncounted,
		// a copy whose first was refused was stored over the limit (a
		// re-QA: 1,397 held at 300).
		for id != "" {
			first := storing.enter(id)
			if first == nil {
				defer storing.leave(id)
				break
			}
			select {
			case <-first:
			case <-req.Context().Done():
				return // the sender is gone
			}
			if seen, err := r.store.Seen(p.Name, id); err == nil && seen {
				r.repeated(p, id)
				writeAccepted(w, id, true)
				acceptDuration.Observe(time.Since(started).Seconds())
				return
			}
		}
		ahead := storing.count.Add(1) - 1
		appended := false // counted in the depth once Append returns
		defer func() {
			if !appended {
				storing.count.Add(-1)
			}
		}()
		if r.store.Depth(p.Name)+int(ahead) >= r.opts.MaxInbox {
			// A retry of an event the inbox holds is a repeat, full or
			// not: told to try again, its sender would do so for nothing.
			if seen, err := r.store.Seen(p.Name, id); err == nil && seen {
				r.repeated(p, id)
				writeAccepted(w, id, true)
				acceptDuration.Observe(time.Since(started).Seconds())
				return
			}
			// Braze and well-behaved senders back off on 503 + Retry-After
			// (braze.md §4) and send again; nothing is lost.
			r.refuse(p, req, "inbox_full", http.StatusServiceUnavailable)
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the inbox of %s is full (%d events); try again later", p.Name, r.opts.MaxInbox))
			return
		}
		payload, err := encodeStored(stored)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "encoding the event: "+err.Error())
			return
		}
		got, err := r.store.Append(p.Name, inbox.NewEvent{ID: stored.ID, Payload: payload})
		storing.count.Add(-1)
		appended = true
		if err != nil {
			// An event without an id has none yet either: the inbox
			// gives it its number when it stores it.
			r.refuseFor(p, req, "store_failed", http.StatusServiceUnavailable, id, err)
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "the event could not be stored; try again later")
			return
		}
		if id == "" {
			id = noIDLabel(p.Name, got[0].Seq)
		}
		if got[0].Duplicate {
			r.repeated(p, id)
		} else {
			received.Inc()
			r.wake(p.Name)
			r.warnIfStranded(p, id)
		}
		writeAccepted(w, id, got[0].Duplicate)
		acceptDuration.Observe(time.Since(started).Seconds())
	})
}

// firstInvalidUTF8 is the 1-based offset of the first byte of b that is
// not part of a UTF-8 character.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i + 1
		}
		i += size
	}
	return 0
}

// repeated counts and logs a repeat of a stored event, which is answered
// as accepted and not stored again.
//
// Each is logged at debug, and at most one a second at info: a sender's
// retry storm (Braze retries a webhook up to 5 times) logged a line per
// repeat, 11,701 for 11,700 (a QA run).
func (r *Runner) repeated(p *engine.Pipeline, id string) {
	r.metrics.duplicates.WithLabelValues(p.Name).Inc()
	r.logLimited(&r.refusals, p.Name+"\x00repeat", slog.LevelInfo, slog.LevelDebug, "repeat of a stored event ignored",
		"pipeline", p.Name, "version", p.Version, "event", id)
}

// eventID is the event's dedupe id. For a SessionM event it is the
// envelope's event_id (sessionm.md §5, A), which SessionM's own retries
// repeat. Otherwise it is the Idempotency-Key header when the sender gives
// one (a Braze webhook can send {{campaign.${dispatch_id}}}-{{${braze_id}}},
// which Braze's own retries repeat), except on a route that checks an HMAC
// signature: the header is not signed, so anyone holding one signed body
// could send it again under new keys; there the id is the SHA-256 of the
// pipeline, the values of its path's placeholders and the signed body, which
// a sender's retry repeats. The placeholders are part of it because they
// name the user on routes like /hooks/braze/tags/{user_id}, whose bodies
// are the same for everyone; the path as written is not, nor the query:
// neither is signed, and /hooks/%61bc or ?r=2 made one signed request a
// new event each time. Without any of these, repeats cannot be recognised.
func eventID(p *engine.Pipeline, req *http.Request, params map[string]string, body []byte) string {
	if p.Source.Type.Name == "sessionm_event" && len(body) > 0 {
		// An empty event_id names no event: the Idempotency-Key below
		// may, as it does for an event without one.
		if id, ok := jsonval.StringMember(body, "event_id"); ok && id != "" { // the body passed json.Valid
			return id
		}
	}
	if a := p.Source.Auth; a != nil && a.HMAC != nil {
		h := sha256.New()
		// The pipeline, not the route: one signed body sent to each path
		// of a pipeline with several is one event. Escaped, no value holds
		// a newline or =: the body's start is plain.
		io.WriteString(h, p.Name)
		io.WriteString(h, "\n")
		for _, name := range slices.Sorted(maps.Keys(params)) {
			io.WriteString(h, name+"="+url.PathEscape(params[name])+"\n")
		}
		// A path ending in / serves the paths below it too, which no
		// placeholder names: the path itself tells those apart.
		if strings.HasSuffix(req.Pattern, "/") {
			io.WriteString(h, "/="+url.PathEscape(req.URL.Path)+"\n")
		}
		io.WriteString(h, "\n")
		h.Write(body)
		var sum [sha256.Size]byte
		id := make([]byte, len("sha256:")+hex.EncodedLen(sha256.Size))
		hex.Encode(id[copy(id, "sha256:"):], h.Sum(sum[:0]))
		return string(id)
	}
	if key := strings.TrimSpace(req.Header.Get("Idempotency-Key")); !unrendered(key) {
		return key
	}
	return ""
}

// emptyPart reports whether a key has an empty part between its dashes,
// as {{campaign.${dispatch_id}}}-{{${user_id}}} renders for a user with
// no external id.
func emptyPart(key string) bool {
	return strings.HasPrefix(key, "-") || strings.HasSuffix(key, "-") || strings.Contains(key, "--")
}

// unrendered reports whether an Idempotency-Key still holds template
// syntax. Braze's docs do not say that Liquid works in a webhook's header
// values (braze.md §4, unconfirmed): if Braze sent the README's
// {{campaign.${dispatch_id}}}-{{${braze_id}}} as written, every event of
// the campaign would carry the same key and all but the first would be
// dropped as repeats. Such a key is no id.
func unrendered(key string) bool {
	return strings.Contains(key, "{{") || strings.Contains(key, "${") || strings.Contains(key, "{%")
}

func (r *Runner) tooLarge(w http.ResponseWriter, req *http.Request, p *engine.Pipeline) {
	r.refuse(p, req, "too_large", http.StatusRequestEntityTooLarge)
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over this route's limit of %d bytes (source.max_body)", p.Source.MaxBody))
}

// readBody reads a body into a buffer of its Content-Length when it has
// one, rather than one that io.ReadAll grows by doubling, which held up to
// twice the body.
func readBody(body io.Reader, length int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(body)
	}
	buf := make([]byte, length)
	n, err := io.ReadFull(body, buf)
	return buf[:n], err
}

// authorized checks the route's inbound auth in constant time.
func authorized(a *engine.InboundAuth, req *http.Request, body []byte) bool {
	if a == nil {
		return true
	}
	switch {
	case a.Bearer != "":
		// The scheme's name is case-insensitive (RFC 9110 §11.1).
		scheme, got, ok := strings.Cut(req.Header.Get("Authorization"), " ")
		return ok && strings.EqualFold(scheme, "Bearer") && equal(strings.TrimSpace(got), a.Bearer)
	case a.Basic != nil:
		user, pass, ok := req.BasicAuth()
		// Both are compared, always, so timing says nothing about which
		// one was wrong.
		userOK := equal(user, a.Basic.Username)
		passOK := equal(pass, a.Basic.Password)
		// A wildcard never matches an empty segment: "" is a path
		// without the placeholder.
		if name := a.Basic.UsernameInPath; name != "" {
			if inPath := req.PathValue(name); inPath != "" && !equal(inPath, a.Basic.Username) {
				return false
			}
		}
		return ok && userOK && passOK
	case a.HMAC != nil:
		return validSignature(a.HMAC, req.Header.Get(a.HMAC.Header), body)
	}
	// Building refuses an auth without a credential; should one get here,
	// the route stays closed rather than open.
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func validSignature(h *engine.HMACAuth, got string, body []byte) bool {
	got, ok := strings.CutPrefix(strings.TrimSpace(got), h.Prefix)
	if !ok || got == "" {
		return false
	}
	var newHash func() hash.Hash
	switch h.Algorithm {
	case "sha1":
		newHash = sha1.New
	case "sha512":
		newHash = sha512.New
	default:
		newHash = sha256.New
	}
	mac := hmac.New(newHash, []byte(h.Secret))
	mac.Write(body)
	sum := mac.Sum(nil)
	var want string
	if h.Encoding == "base64" {
		want = base64.StdEncoding.EncodeToString(sum)
	} else {
		want = hex.EncodeToString(sum)
		got = strings.ToLower(got)
	}
	return hmac.Equal([]byte(got), []byte(want))
}

// authChallenge is the WWW-Authenticate of a 401: the scheme the route
// wants. RFC 9110 §11.6.1 has a 401 carry at least one challenge, and an
// HMAC signature has no registered scheme; "Bearer" would send the caller
// after a token the route does not take. So an HMAC route names its own
// scheme, Signature (any token is a valid scheme name, §11.1), with the
// header the signature goes in as a parameter.
func authChallenge(a *engine.InboundAuth) string {
	switch {
	case a != nil && a.Basic != nil:
		return `Basic realm="engine"`
	case a != nil && a.HMAC != nil:
		return `Signature realm="engine", header=` + quotedString(a.HMAC.Header)
	}
	return `Bearer realm="engine"`
}

// quotedString writes s as an HTTP quoted-string (RFC 9110 §5.6.4).
func quotedString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
