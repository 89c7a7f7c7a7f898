// Package emulator is a local stand-in for Braze's REST API
// (specs/braze.md §1-§3): /campaigns/trigger/send, /canvas/trigger/send and
// /users/track with Bearer auth, the documented validation, rate-limit
// headers and 429s. It records what every user would have received, so a
// test can ask "did u-1001 get the winter offer". Paths are served without
// any prefix; the sandbox mounts the handler under /braze.
//
// Assumed behaviours (A in braze.md) are marked where they are coded. The
// switchable ones are fields of Options and keys of the seed's settings
// (examples/sandbox/braze.yaml). Fixed ones that bound memory: each user
// keeps the newest 1,000 messages, not_sent records, events and purchases
// (Delivery counts the dropped ones), and not_sent records are kept for at
// most 100,000 unknown identifiers (the oldest identifier is forgotten
// first).
package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options are the emulator's switches. Every assumed behaviour (marked A)
// that a test might want the other way is one of them, and a key of the
// seed's settings too (max_body, campaign_success_status,
// content_type_status, properties_max_bytes, limits, retry_after), for
// sandbox users who write no Go. A non-zero Options field wins over the
// seed.
type Options struct {
	Now func() time.Time // injected clock; nil means time.Now
	// MaxBody is the request body limit in bytes; 0 means settings.max_body,
	// else 1 MiB. Bigger bodies get 413 in Braze's error shape (A: braze.md
	// §2, no documented body limit).
	MaxBody int64

	// Limits override the seed's rate limits field by field; zero fields
	// keep the seed's value or the documented default (braze.md §1).
	Limits Limits

	// CampaignSuccessStatus is the status of a successful
	// /campaigns/trigger/send; 0 means settings.campaign_success_status,
	// else 201 (A: braze.md §1, the docs never show it; the Canvas example
	// shows 201).
	CampaignSuccessStatus int

	// ContentTypeStatus answers a request whose Content-Type is not
	// application/json; 0 means settings.content_type_status, else 400
	// "Bad Request" (A: braze.md §1 asks for the header but does not say
	// what happens without it). Set http.StatusUnsupportedMediaType for
	// 415, or -1 to accept any type.
	ContentTypeStatus int

	// PropertiesMaxBytes caps trigger_properties and context objects,
	// measured as compact JSON; 0 means settings.properties_max_bytes, else
	// 50 KB = 51,200 bytes (braze.md §2; A: KB read as 1,024 bytes).
	PropertiesMaxBytes int

	// OmitRetryAfter answers a 429 of the rate limits with the
	// x-ratelimit-* headers alone, the ones braze.md §1 says every answer
	// carries (reset in UTC epoch seconds); false means
	// settings.retry_after, else a Retry-After to the window's end as well
	// (A: braze.md §1 neither lists Retry-After nor rules it out). Without
	// it a client is tested on the path real Braze may take: pausing on
	// x-ratelimit-reset alone.
	OmitRetryAfter bool
}

// BannerLine is one credential or setting the sandbox prints at start.
type BannerLine struct {
	Name, Value string
}

// Emulator is a Braze REST workspace in memory. Safe for concurrent use.
type Emulator struct {
	seed  Seed
	opts  Options
	now   func() time.Time
	keys  map[string]map[string]bool // API key → permissions
	camps map[string]*Campaign
	canvs map[string]*Canvas
	segs  map[string]*segment // by id and by name

	mu sync.Mutex
	st *store

	rlMu    sync.Mutex
	buckets [nBuckets]bucket
}

// segment is a seeded segment resolved for membership tests.
type segment struct {
	def   *SegmentDef
	ext   map[string]bool
	braze map[string]bool
}

func (sg *segment) has(u *user) bool {
	if sg == nil || sg.def.AllUsers {
		return true
	}
	return (u.externalID != "" && sg.ext[u.externalID]) || sg.braze[u.brazeID]
}

// New builds an emulator from a seed (checked again here, so a Seed built
// in code gets the same errors as one read from a file).
func New(seed Seed, opts Options) (*Emulator, error) {
	if err := seed.validate(); err != nil {
		return nil, fmt.Errorf("braze seed: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Options win; the seed's settings fill what they leave zero; then
	// the defaults.
	set := seed.Settings
	if opts.MaxBody <= 0 {
		opts.MaxBody = set.MaxBody
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.CampaignSuccessStatus == 0 {
		opts.CampaignSuccessStatus = set.CampaignSuccessStatus
	}
	if opts.CampaignSuccessStatus == 0 {
		opts.CampaignSuccessStatus = http.StatusCreated
	}
	if opts.ContentTypeStatus == 0 {
		opts.ContentTypeStatus = set.ContentTypeStatus
	}
	if opts.ContentTypeStatus == 0 {
		opts.ContentTypeStatus = http.StatusBadRequest
	}
	if opts.PropertiesMaxBytes <= 0 {
		opts.PropertiesMaxBytes = set.PropertiesMaxBytes
	}
	if opts.PropertiesMaxBytes <= 0 {
		opts.PropertiesMaxBytes = 50 * 1024
	}
	if !opts.OmitRetryAfter && set.RetryAfter != nil {
		opts.OmitRetryAfter = !*set.RetryAfter
	}
	e := &Emulator{
		seed:  seed,
		opts:  opts,
		now:   opts.Now,
		keys:  map[string]map[string]bool{},
		camps: map[string]*Campaign{},
		canvs: map[string]*Canvas{},
		segs:  map[string]*segment{},
	}
	for _, k := range seed.Settings.APIKeys {
		perms := map[string]bool{}
		for _, p := range k.Permissions {
			perms[p] = true
		}
		e.keys[k.Key] = perms
	}
	for i := range seed.Segments {
		d := &seed.Segments[i]
		sg := &segment{def: d, ext: map[string]bool{}, braze: map[string]bool{}}
		for _, id := range d.ExternalIDs {
			sg.ext[id] = true
		}
		for _, id := range d.BrazeIDs {
			sg.braze[id] = true
		}
		e.segs[d.ID], e.segs[d.Name] = sg, sg
	}
	for i := range seed.Campaigns {
		c := &seed.Campaigns[i]
		e.camps[c.ID] = c
	}
	for i := range seed.Canvases {
		c := &seed.Canvases[i]
		e.canvs[c.ID] = c
	}
	e.Reset()
	return e, nil
}

// Reset puts the emulator back to the seed's state and clears the
// rate-limit counters.
func (e *Emulator) Reset() {
	st := newStore(&e.seed)
	e.mu.Lock()
	e.st = st
	e.mu.Unlock()

	l := effectiveLimits(e.seed.Settings.Limits, e.opts.Limits)
	e.rlMu.Lock()
	e.buckets[bTrigger] = bucket{limit: l.Trigger.Requests, window: int64(l.Trigger.Window)}
	e.buckets[bBroadcast] = bucket{limit: l.Broadcast.Requests, window: int64(l.Broadcast.Window)}
	e.buckets[bUsersTrack] = bucket{limit: l.UsersTrack.Requests, window: int64(l.UsersTrack.Window)}
	e.rlMu.Unlock()
}

// Banner lists the API keys the emulator accepts. The first key is the one
// examples/sandbox.env carries as BRAZE_API_KEY; the others are named by
// their permissions.
func (e *Emulator) Banner() []BannerLine {
	var out []BannerLine
	for i, k := range e.seed.Settings.APIKeys {
		name := "BRAZE_API_KEY"
		if i > 0 {
			name = "braze API key (" + strings.Join(k.Permissions, ", ") + ")"
		}
		out = append(out, BannerLine{Name: name, Value: k.Key})
	}
	return out
}

// Users lists every profile: seeded, created by the API, and generated.
func (e *Emulator) Users() []User {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]User, 0, len(e.st.users)+e.st.generated)
	e.st.each(false, func(u *user) { out = append(out, u.public()) })
	return out
}

// User finds one profile by external id.
func (e *Emulator) User(externalID string) (User, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.st.byExternalID(externalID, false)
	if !ok {
		return User{}, false
	}
	return u.public(), true
}

// Segment lists the users of a seeded segment, named by name or id.
func (e *Emulator) Segment(name string) ([]User, bool) {
	sg, ok := e.segs[name]
	if !ok {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []User
	e.st.each(false, func(u *user) {
		if sg.has(u) {
			out = append(out, u.public())
		}
	})
	return out, true
}

// apiError is a fatal answer in Braze's shape (braze.md §1).
type apiError struct {
	status  int
	message string
	errors  []any
}

func fatal(status int, message string, errs ...any) *apiError {
	return &apiError{status: status, message: message, errors: errs}
}

func (a *apiError) body() []byte {
	env := struct {
		Message string `json:"message"`
		Errors  []any  `json:"errors,omitempty"`
	}{a.message, a.errors}
	b, _ := json.Marshal(env)
	return b
}

// ErrorBody is Braze's fatal error envelope {"message": ..., "errors": [...]}
// (braze.md §1), for the sandbox's injected faults. Braze has no error code
// field: a non-empty code becomes the single entry of "errors"; an empty
// message becomes the status text.
func ErrorBody(status int, code, message string) []byte {
	if message == "" {
		message = http.StatusText(status)
	}
	a := fatal(status, message)
	if code != "" {
		a.errors = []any{code}
	}
	return a.body()
}

// Messages of the answers the docs do not spell out (A, braze.md §1: "the
// exact error message strings that come back in 401 and 429 bodies are
// unconfirmed").
const (
	msgUnauthorized = "Invalid API key"
	msgRateLimited  = "Rate Limited" // the name errors.md gives the 429
	msgBadRequest   = "Bad Request"
	msgNotFound     = "Not Found"
	msgTooLarge     = "Request Entity Too Large"
)

type route struct {
	permission string
	bucket     bucketID
	// parse checks a decoded body; broadcast tells the rate limiter which
	// pool the call belongs to, even when the body is otherwise invalid.
	parse   func(e *Emulator, body map[string]json.RawMessage, now time.Time) (req any, broadcast bool, err *apiError)
	process func(e *Emulator, req any, now time.Time) (status int, resp any, err *apiError)
}

var routes = map[string]*route{
	"/campaigns/trigger/send": {permission: "campaigns.trigger.send", bucket: bTrigger, parse: parseCampaignTrigger, process: processTrigger},
	"/canvas/trigger/send":    {permission: "canvas.trigger.send", bucket: bTrigger, parse: parseCanvasTrigger, process: processTrigger},
	"/users/track":            {permission: "users.track", bucket: bUsersTrack, parse: parseTrack, process: processTrack},
}

// Handler serves /campaigns/trigger/send, /canvas/trigger/send and
// /users/track.
func (e *Emulator) Handler() http.Handler { return http.HandlerFunc(e.serve) }

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	now := e.now()
	rt := routes[r.URL.Path]
	if rt == nil {
		// Unknown routes report the trigger pool without counting (A).
		e.reply(w, e.rate(bTrigger, now, false), fatal(http.StatusNotFound, msgNotFound,
			fmt.Sprintf("no endpoint %s; this emulator serves /campaigns/trigger/send, /canvas/trigger/send and /users/track", r.URL.Path)))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.reply(w, e.rate(rt.bucket, now, false), fatal(http.StatusMethodNotAllowed, "Method Not Allowed",
			fmt.Sprintf("%s takes POST, not %s", r.URL.Path, r.Method)))
		return
	}
	perms, aerr := e.authenticate(r)
	if aerr != nil {
		// A request without a valid key belongs to no workspace, so it
		// counts against no limit (A).
		e.reply(w, e.rate(rt.bucket, now, false), aerr)
		return
	}
	if !perms[rt.permission] {
		e.reply(w, e.rate(rt.bucket, now, true), fatal(http.StatusForbidden, "Access Denied",
			fmt.Sprintf("this API key lacks the %s permission", rt.permission)))
		return
	}

	var preErr *apiError
	var req any
	broadcast := false
	body, err := e.readBody(r)
	switch {
	case err != nil:
		preErr = err
	case !e.jsonContentType(r):
		preErr = fatal(e.opts.ContentTypeStatus, msgBadRequest,
			fmt.Sprintf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type")))
	default:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
			preErr = fatal(http.StatusBadRequest, msgBadRequest, "the body must be a JSON object: "+jsonProblem(err))
		} else {
			req, broadcast, preErr = rt.parse(e, obj, now)
		}
	}
	b := rt.bucket
	if broadcast {
		b = bBroadcast
	}
	rl := e.rate(b, now, true)
	if rl.exceeded {
		if !e.opts.OmitRetryAfter {
			w.Header().Set("Retry-After", strconv.FormatInt(rl.retryAfter, 10))
		}
		e.reply(w, rl, fatal(http.StatusTooManyRequests, msgRateLimited,
			fmt.Sprintf("at most %d requests per window; the window resets at %d (UTC epoch seconds)", rl.limit, rl.reset)))
		return
	}
	if preErr != nil {
		e.reply(w, rl, preErr)
		return
	}
	status, resp, perr := rt.process(e, req, now)
	if perr != nil {
		e.reply(w, rl, perr)
		return
	}
	out, _ := json.Marshal(resp)
	e.write(w, rl, status, out)
}

// authenticate reads "Authorization: Bearer KEY" (braze.md §1): a missing,
// unknown or quoted key is 401.
func (e *Emulator) authenticate(r *http.Request) (map[string]bool, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, fatal(http.StatusUnauthorized, msgUnauthorized, "send the REST API key as Authorization: Bearer YOUR-REST-API-KEY")
	}
	scheme, key, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, fatal(http.StatusUnauthorized, msgUnauthorized, "the Authorization header must read Bearer YOUR-REST-API-KEY")
	}
	key = strings.TrimSpace(key)
	if strings.ContainsAny(key, `"'`) {
		return nil, fatal(http.StatusUnauthorized, msgUnauthorized, "the API key must not be wrapped in quotes")
	}
	perms, ok := e.keys[key]
	if !ok {
		return nil, fatal(http.StatusUnauthorized, msgUnauthorized, "this API key is not valid for this workspace")
	}
	return perms, nil
}

func (e *Emulator) readBody(r *http.Request) ([]byte, *apiError) {
	tooLarge := fatal(http.StatusRequestEntityTooLarge, msgTooLarge, fmt.Sprintf("the request body is larger than %d bytes", e.opts.MaxBody))
	if r.ContentLength > e.opts.MaxBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, e.opts.MaxBody+1))
	if err != nil {
		return nil, fatal(http.StatusBadRequest, msgBadRequest, "the request body could not be read")
	}
	if int64(len(body)) > e.opts.MaxBody {
		return nil, tooLarge
	}
	return body, nil
}

func (e *Emulator) jsonContentType(r *http.Request) bool {
	if e.opts.ContentTypeStatus < 0 {
		return true
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// jsonProblem turns a decoding error into words without Go type names.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "got null"
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	case errors.As(err, &te):
		return "got " + jsonKind(te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(v string) string {
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	case "string", "number":
		return "a " + v
	}
	return v
}

// rate counts (or only looks at) a request against a pool.
func (e *Emulator) rate(b bucketID, now time.Time, consume bool) rlState {
	e.rlMu.Lock()
	defer e.rlMu.Unlock()
	return e.buckets[b].take(now, consume)
}

// RateLimitHeaders returns the X-RateLimit-Limit, -Remaining and -Reset
// headers the emulator would put on an answer to path now, without
// counting a request: the trigger pool for /campaigns/trigger/send,
// /canvas/trigger/send and any unknown path (as the emulator's own 404s
// report), the /users/track pool for /users/track. A path alone cannot
// tell a broadcast, so trigger paths report the trigger pool. The sandbox
// puts these on its injected fault answers, so that every Braze answer
// carries them (braze.md §1).
func (e *Emulator) RateLimitHeaders(path string) http.Header {
	b := bTrigger
	if rt := routes[path]; rt != nil {
		b = rt.bucket
	}
	h := http.Header{}
	setRateHeaders(h, e.rate(b, e.now(), false))
	return h
}

func (e *Emulator) reply(w http.ResponseWriter, rl rlState, a *apiError) {
	e.write(w, rl, a.status, a.body())
}

// write sends a JSON answer with the rate-limit headers that every Braze
// response carries (braze.md §1). Braze sends them lowercase (HTTP/2); Go
// writes header names in canonical form (X-Ratelimit-Limit), which HTTP/1.1
// treats as the same header, and Go's client canonicalises what it reads.
func (e *Emulator) write(w http.ResponseWriter, rl rlState, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setRateHeaders(h, rl)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func setRateHeaders(h http.Header, rl rlState) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(rl.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(rl.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(rl.reset, 10))
}
