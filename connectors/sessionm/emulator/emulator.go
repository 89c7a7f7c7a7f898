package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/internal/ids"
)

// Options are the switches a test or the sandbox sets; the zero value is the
// default behaviour. RateLimit, RateBurst, Idempotency and MaxBody can also
// be set in the seed's settings (rate_limit, rate_burst, idempotency,
// max_body), for sandbox users who write no Go; a non-zero Options field
// wins over the seed.
type Options struct {
	Now func() time.Time // injected clock; nil means time.Now
	// MaxBody is the request body limit in bytes; 0 means settings.max_body,
	// else 1 MiB (A: no public limit). Bigger bodies get the error envelope
	// with 413.
	MaxBody int64

	// ErrorsAs200 answers errors with HTTP 200 and "status":"error", as
	// SessionM documents (sessionm.md §1, C/A), except those whose status
	// the docs name (401, 404, 500; C) and our own 429 rate_limited: see
	// keepsStatus. Off: 404 for user_not_found and not_found, 401 for
	// auth, 403 for a wrong retailer_id, 422 for validation, missing_data
	// and argument_error, 413, 405, 429 and 500 (sessionm.md §1, A).
	// Settings.ErrorsAs200 turns it on as well.
	ErrorsAs200 bool

	// RateLimit is a token bucket per Core api key and per Connect key, in
	// requests per second; 0 means settings.rate_limit, whose 0 turns it off
	// (the default: no public limit exists, sessionm.md §7, A). Over the
	// limit: 429, {"status":"error","errors":{"code":"rate_limited"}} and
	// Retry-After.
	RateLimit float64
	// RateBurst is the bucket size; 0 means settings.rate_burst, whose 0
	// means max(1, RateLimit).
	RateBurst int

	// Idempotency honours an Idempotency-Key header on POST and PUT: a
	// repeated key (same credentials, method and path) answers the stored
	// response, with the header Idempotent-Replayed: true, without touching
	// state; the same key with another body is a
	// 422 argument_error, and one still running a 409 request_in_progress.
	// No real SessionM endpoint has this (sessionm.md §7, A), so it is off
	// unless this or settings.idempotency is true.
	Idempotency bool
	// IdempotencyKeys bounds the stored responses (oldest dropped first);
	// 0 means 10000.
	IdempotencyKeys int

	// ConnectDatetimeFormat is how Connect answers write datetimes: "iso",
	// "dotnet" or "dotnet_no_zone"; "" means settings.connect_datetime_format,
	// whose "" means "iso". No public source shows it (sessionm.md §4, §8,
	// A): "iso" is 2026-12-31T23:59:59Z; "dotnet" adds the seven fraction
	// digits of the .NET join_date SessionM was seen to send (§3, O),
	// 2026-12-31T23:59:59.0000000Z; "dotnet_no_zone" is that without the
	// zone, as .NET writes a DateTime of unspecified kind.
	ConnectDatetimeFormat string
}

// connectLayouts are the names Options.ConnectDatetimeFormat and
// settings.connect_datetime_format accept, with their Go layouts.
var connectLayouts = map[string]string{
	"iso":            "2006-01-02T15:04:05Z",
	"dotnet":         "2006-01-02T15:04:05.0000000Z",
	"dotnet_no_zone": "2006-01-02T15:04:05.0000000",
}

// BannerLine is a credential or setting the emulator accepts, printed by
// `engine sandbox` at start.
type BannerLine struct {
	Name, Value string
}

// Emulator is one SessionM tenant. Its handlers are safe for concurrent use;
// one mutex guards all state.
type Emulator struct {
	seed              Seed
	now               func() time.Time
	maxBody           int64
	errorsAs200       bool
	connectTimeLayout string  // a value of connectLayouts
	keepTagTTL        bool    // settings.tag_ttl_on_repost: keep
	tagStatusOnly     bool    // settings.tag_response: status
	filterPending     bool    // settings.filter_pending_extended_data, default true
	opts              Options // with the seed's settings filled in where Options left them zero

	coreKey, coreSecret, coreHeader string // coreHeader: "Basic base64(key:secret)"
	connectKey, connectSecret       string
	connectHeader                   string
	retailerID                      string

	nSeeded, nGenerated int
	seeded              []*user // read-only after New
	seedIndex           indexes // read-only after New; cloned by Reset

	offers       []*offer
	offerByID    map[string]*offer
	latestByRoot map[string]*offer
	groups       []offerGroupJSON
	categories   []offerCategoryJSON
	tierSystemID string
	tierLevels   []tierLevel
	seedTags     map[int][]tag
	seedWallets  map[int][]*userOffer
	defaultGroup string
	idemCapacity int

	mu       sync.Mutex
	created  []*user // users made by POST /users, index nSeeded+nGenerated+k
	idx      indexes
	state    map[int]*userState
	buckets  map[string]*bucket
	idem     map[string]*idemEntry
	idemFIFO []string
}

// indexes find a user's index by SessionM id, external id and lower-cased
// email. Generated users are not in them: their ids are parsed.
type indexes struct {
	byID, byExt, byEmail map[string]int
}

func (x indexes) clone() indexes {
	c := indexes{make(map[string]int, len(x.byID)), make(map[string]int, len(x.byExt)), make(map[string]int, len(x.byEmail))}
	for k, v := range x.byID {
		c.byID[k] = v
	}
	for k, v := range x.byExt {
		c.byExt[k] = v
	}
	for k, v := range x.byEmail {
		c.byEmail[k] = v
	}
	return c
}

// userState is what requests changed or the seed preset for one user.
type userState struct {
	tags    []tag          // in creation order; expired ones are pruned on access
	tagIdx  map[string]int // tag name → index in tags; see setTags and pruneTags
	wallet  []*userOffer   // in acquisition order
	profile *user          // set once a PUT changed the user
	dirty   bool           // tags or wallet changed since the seed
}

// tag is a counter tag (count > 0) or an expiring tag (expires set), never
// both (sessionm.md §2, C).
type tag struct {
	name    string
	count   int
	expires time.Time
}

type userOffer struct {
	id          string
	offer       *offer
	acquired    time.Time
	expires     *time.Time
	redeemed    *time.Time
	redeemable  bool
	pending     bool
	quantity    int
	pointsSpent float64
	customData  *string
	status      int
	storeID     *string
}

func (uo *userOffer) clone() *userOffer { c := *uo; return &c }

// New checks the seed and builds the emulator in its seed state.
func New(seed Seed, opts Options) (*Emulator, error) {
	if problems := checkSeed(&seed); len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.path.String() + ": " + p.msg
		}
		return nil, fmt.Errorf("invalid sessionm seed: %s", strings.Join(msgs, "; "))
	}
	// The seed's settings fill what Options leaves zero (Options win).
	set := seed.Settings
	if opts.MaxBody <= 0 {
		opts.MaxBody = set.MaxBody
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = set.RateLimit
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = set.RateBurst
	}
	opts.Idempotency = opts.Idempotency || set.Idempotency
	if opts.ConnectDatetimeFormat == "" {
		opts.ConnectDatetimeFormat = set.ConnectDatetimeFormat
	}
	if opts.ConnectDatetimeFormat == "" {
		opts.ConnectDatetimeFormat = "iso"
	}
	layout, ok := connectLayouts[opts.ConnectDatetimeFormat]
	if !ok {
		return nil, fmt.Errorf("unknown Connect datetime format %q; use %s", opts.ConnectDatetimeFormat, datetimeFormatNames())
	}
	e := &Emulator{
		seed:              seed,
		now:               opts.Now,
		maxBody:           opts.MaxBody,
		errorsAs200:       opts.ErrorsAs200 || seed.Settings.ErrorsAs200,
		connectTimeLayout: layout,
		keepTagTTL:        set.TagTTLOnRepost == "keep",
		tagStatusOnly:     set.TagResponse == "status",
		filterPending:     set.FilterPendingExtendedData == nil || *set.FilterPendingExtendedData,
		opts:              opts,
		coreKey:           seed.Settings.Core.APIKey,
		coreSecret:        seed.Settings.Core.APISecret,
		connectKey:        seed.Settings.Connect.Key,
		retailerID:        seed.Settings.RetailerID,
		nSeeded:           len(seed.Users),
		nGenerated:        seed.Settings.GeneratedUsers,
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.maxBody <= 0 {
		e.maxBody = 1 << 20
	}
	e.idemCapacity = opts.IdempotencyKeys
	if e.idemCapacity <= 0 {
		e.idemCapacity = 10000
	}
	e.connectSecret = seed.Settings.Connect.Secret
	e.coreHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte(e.coreKey+":"+e.coreSecret))
	e.connectHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte(e.connectKey+":"+e.connectSecret))

	if t := seed.Tiers; t != nil {
		e.tierSystemID = t.SystemID
		for _, l := range t.Levels {
			e.tierLevels = append(e.tierLevels, tierLevel{id: l.ID, name: l.Name, rank: l.Rank})
		}
	}
	for _, g := range seed.OfferGroups {
		e.groups = append(e.groups, offerGroupJSON{ID: g.ID, Name: g.Name, SortOrder: g.SortOrder})
	}
	e.defaultGroup = "00000000-0000-0000-0000-000000000000"
	if len(e.groups) > 0 {
		e.defaultGroup = e.groups[0].ID
	}
	for _, c := range seed.OfferCategories {
		types := c.OfferTypes
		if types == nil {
			types = []string{}
		}
		e.categories = append(e.categories, offerCategoryJSON{ID: c.ID, Name: c.Name, SortOrder: c.SortOrder, OfferTypes: types})
	}
	e.buildOffers()

	e.seedIndex = indexes{map[string]int{}, map[string]int{}, map[string]int{}}
	e.seedTags = map[int][]tag{}
	for i := range seed.Users {
		u := e.userFromSeed(&seed.Users[i])
		e.seeded = append(e.seeded, u)
		e.seedIndex.byID[u.id] = i
		if u.externalID != "" {
			e.seedIndex.byExt[u.externalID] = i
		}
		for _, ext := range u.moreExtIDs {
			e.seedIndex.byExt[ext] = i
		}
		if u.email != "" {
			e.seedIndex.byEmail[strings.ToLower(u.email)] = i
		}
		if tags := seed.Users[i].Tags; len(tags) > 0 {
			var ts []tag
			for _, name := range sortedKeys(tags) {
				t := tags[name]
				if t.ExpiresAt != nil {
					ts = append(ts, tag{name: name, expires: t.ExpiresAt.Time})
				} else {
					ts = append(ts, tag{name: name, count: t.Count})
				}
			}
			e.seedTags[i] = ts
		}
	}
	e.seedWallets = map[int][]*userOffer{}
	for owner, entries := range seed.Wallets {
		i, ok := e.seedIndex.byID[owner]
		if !ok {
			i = e.seedIndex.byExt[owner]
		}
		for _, so := range entries {
			e.seedWallets[i] = append(e.seedWallets[i], e.userOfferFromSeed(so))
		}
	}
	e.Reset()
	return e, nil
}

// Reset puts the emulator back to its seed: tags, wallets, created and
// updated users, rate-limit buckets and stored idempotent responses.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.created = nil
	e.idx = e.seedIndex.clone()
	e.state = make(map[int]*userState, len(e.seedTags)+len(e.seedWallets))
	for i, ts := range e.seedTags {
		e.stateFor(i).setTags(append([]tag(nil), ts...))
	}
	for i, w := range e.seedWallets {
		st := e.stateFor(i)
		for _, uo := range w {
			st.wallet = append(st.wallet, uo.clone())
		}
	}
	e.buckets = map[string]*bucket{}
	e.idem = map[string]*idemEntry{}
	e.idemFIFO = nil
}

// stateFor returns user i's state, creating it. Callers hold e.mu.
func (e *Emulator) stateFor(i int) *userState {
	st := e.state[i]
	if st == nil {
		st = &userState{}
		e.state[i] = st
	}
	return st
}

// Banner lists the credentials the emulator accepts, with the names of
// examples/sandbox.env.
func (e *Emulator) Banner() []BannerLine {
	return []BannerLine{
		{"SESSIONM_API_KEY", e.coreKey},
		{"SESSIONM_API_SECRET", e.coreSecret},
		{"SESSIONM_CONNECT_AUTH", strings.TrimPrefix(e.connectHeader, "Basic ")},
		{"SESSIONM_RETAILER_ID", e.retailerID},
	}
}

// Error codes and their HTTP statuses (sessionm.md §1: C for the codes,
// A for the statuses other than 401, 404 and 500).
var codeStatus = map[string]int{
	"user_not_found":        http.StatusNotFound,
	"not_found":             http.StatusNotFound,
	"invalid_api_key":       http.StatusUnauthorized,
	"invalid_auth_token":    http.StatusUnauthorized,
	"access_denied":         http.StatusForbidden,
	"validation":            http.StatusUnprocessableEntity,
	"missing_data":          http.StatusUnprocessableEntity,
	"argument_error":        http.StatusUnprocessableEntity,
	"not_available":         http.StatusUnprocessableEntity,
	"method_not_allowed":    http.StatusMethodNotAllowed,
	"request_too_large":     http.StatusRequestEntityTooLarge,
	"request_in_progress":   http.StatusConflict,
	"rate_limited":          http.StatusTooManyRequests,
	"internal_server_error": http.StatusInternalServerError,
}

var defaultMessages = map[string]string{
	"internal_server_error": "internal server error",
	"rate_limited":          "too many requests; retry after the Retry-After delay",
	"invalid_auth_token":    "invalid or missing authorization",
	"invalid_api_key":       "invalid api key",
	"not_found":             "not found",
	"user_not_found":        "user not found",
	"argument_error":        "invalid request",
	"not_available":         "service not available",
}

// ErrorBody is SessionM's error envelope,
// {"status":"error","errors":{"code":...,"message":...}} (sessionm.md §1,
// C/O), the same for Core and Connect, for an answer with HTTP status
// status. The status is not part of the body: an empty code is the one
// the emulator itself answers with that status (statusCode), and an empty
// message the default one for the code.
func ErrorBody(status int, code, message string) []byte {
	if code == "" {
		code = statusCode(status)
	}
	if message == "" {
		message = defaultMessages[code]
	}
	return (&apiError{code: code, message: message}).body()
}

// statusCode is the error code for an HTTP status, the inverse of
// codeStatus where the status has one code (A, sessionm.md §1): 401
// invalid_auth_token, 404 not_found, 422 validation, 503 not_available,
// another 4xx argument_error, another 5xx internal_server_error.
func statusCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "invalid_auth_token"
	case http.StatusForbidden:
		return "access_denied"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "request_in_progress"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusUnprocessableEntity:
		return "validation"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "not_available"
	}
	if status >= 400 && status < 500 {
		return "argument_error"
	}
	return "internal_server_error"
}

// apiError is one error answer; fields become {"<resource>":{field:msg}},
// as in {"user":{"email":"Email Already In Use"},"code":"validation"}
// (sessionm.md §1, O).
type apiError struct {
	code, message string
	resource      string
	fields        map[string]string
	retryAfter    string
	allow         string
}

func (a *apiError) status() int {
	if s, ok := codeStatus[a.code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func (a *apiError) body() []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"status":"error","errors":{"code":`...)
	b = appendString(b, a.code)
	if a.message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, a.message)
	}
	if len(a.fields) > 0 {
		b = append(b, ',')
		b = appendString(b, a.resource)
		b = append(b, ":{"...)
		for i, k := range sortedKeys(a.fields) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, a.fields[k])
		}
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

// fieldErrors is a validation error on one resource's fields; the message
// repeats the first problem so a one-line log says what went wrong.
func fieldErrors(code, resource string, fields map[string]string) *apiError {
	k := sortedKeys(fields)[0]
	msg := k + ": " + fields[k]
	if len(fields) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(fields)-1)
	}
	return &apiError{code: code, message: msg, resource: resource, fields: fields}
}

// reply is a finished answer, written by send and kept for idempotent replays.
type reply struct {
	status     int
	body       []byte
	retryAfter string
	allow      string
	replayed   bool // answered from the idempotency store
}

func errReply(a *apiError) reply {
	return reply{status: a.status(), body: a.body(), retryAfter: a.retryAfter, allow: a.allow}
}

func okReply(body []byte) reply { return reply{status: http.StatusOK, body: body} }

func (e *Emulator) send(w http.ResponseWriter, rp reply) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if rp.allow != "" {
		h.Set("Allow", rp.allow)
	}
	if rp.retryAfter != "" {
		h.Set("Retry-After", rp.retryAfter)
	}
	if rp.replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(e.WireStatus(rp.status))
	_, _ = w.Write(rp.body)
}

// WireStatus is the HTTP status an answer of status goes out with: 200
// for most errors under errors_as_200 (keepsStatus). The sandbox's
// injected faults go out as the emulator's own errors do.
func (e *Emulator) WireStatus(status int) int {
	if status >= 400 && e.errorsAs200 && !keepsStatus(status) {
		return http.StatusOK
	}
	return status
}

// keepsStatus says which error statuses errors_as_200 leaves alone. The
// docs give 200 (whose body may say "status":"error"), 401 not
// authorized, 404 not found by id and 500 internal error (sessionm.md §1,
// C, S4): those stay, as do other 5xx. So does 429: rate_limited is our
// own code (§7, A), and a client that sees it as 200 gives up on what it
// should retry. The rest (422 validation, missing_data, argument_error,
// 403, 405, 409, 413) are the errors the docs send as 200.
func keepsStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

// readBody reads at most maxBody bytes; more is a 413 (contract).
func (e *Emulator) readBody(r *http.Request) ([]byte, *apiError) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > e.maxBody {
		return nil, e.tooBig()
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, e.maxBody+1))
	if err != nil {
		return nil, errorf("argument_error", "could not read the request body")
	}
	if int64(len(buf)) > e.maxBody {
		return nil, e.tooBig()
	}
	return buf, nil
}

// tooBig is built only when needed: formatting it for every request was
// a fortieth of the sandbox's CPU under load.
func (e *Emulator) tooBig() *apiError {
	return &apiError{code: "request_too_large", message: fmt.Sprintf("the request body is larger than %d bytes", e.maxBody)}
}

// rateLimited takes one token from key's bucket; callers hold no lock.
func (e *Emulator) rateLimited(key string) *apiError {
	if e.opts.RateLimit <= 0 {
		return nil
	}
	now := e.now()
	burst := float64(e.opts.RateBurst)
	if burst <= 0 {
		burst = max(1, e.opts.RateLimit)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.buckets[key]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		e.buckets[key] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed*e.opts.RateLimit)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := math.Ceil((1 - b.tokens) / e.opts.RateLimit)
	a := errorf("rate_limited", "more than %g requests per second for this key; retry after %g s", e.opts.RateLimit, wait)
	a.retryAfter = strconv.Itoa(max(1, int(wait)))
	return a
}

type bucket struct {
	tokens float64
	last   time.Time
}

type idemEntry struct {
	bodyHash [32]byte
	done     bool
	rp       reply
}

// idempotent runs handle at most once per Idempotency-Key (Options.Idempotency).
func (e *Emulator) idempotent(r *http.Request, scope string, body []byte, handle func() reply) reply {
	key := r.Header.Get("Idempotency-Key")
	if !e.opts.Idempotency || key == "" || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
		return handle()
	}
	id := scope + "\x00" + r.Method + "\x00" + r.URL.Path + "\x00" + key
	sum := sha256.Sum256(body)
	e.mu.Lock()
	if ent, ok := e.idem[id]; ok {
		same, done, rp := ent.bodyHash == sum, ent.done, ent.rp
		e.mu.Unlock()
		switch {
		case !same:
			return errReply(errorf("argument_error", "the Idempotency-Key %q was used before with a different request body", key))
		case !done:
			return errReply(errorf("request_in_progress", "a request with this Idempotency-Key is still being processed"))
		}
		rp.replayed = true
		return rp
	}
	ent := &idemEntry{bodyHash: sum}
	e.idem[id] = ent
	e.idemFIFO = append(e.idemFIFO, id)
	if len(e.idemFIFO) > e.idemCapacity {
		delete(e.idem, e.idemFIFO[0])
		e.idemFIFO = e.idemFIFO[1:]
	}
	e.mu.Unlock()

	rp := handle()
	e.mu.Lock()
	if rp.status >= 500 {
		delete(e.idem, id) // a failure is worth retrying for real
	} else {
		ent.rp, ent.done = rp, true
	}
	e.mu.Unlock()
	return rp
}

// newUserID is a v1-shaped lower-case uuid like SessionM's
// (xxxxxxxx-32f5-11ef-xxxx-xxxxxxxxxxxx, sessionm.md §2, O): a random v4
// uuid with the version fields replaced, never in the generated users'
// 8000 clock-sequence group.
func newUserID() string {
	for {
		u := ids.NewUUID()
		if u[19:23] != "8000" {
			return u[:9] + "32f5-11ef" + u[18:]
		}
	}
}

// Time formats: Core writes "YYYY-MM-DD HH:MM:SS" in UTC (sessionm.md §1,
// §3, O); Connect in UTC as Options.ConnectDatetimeFormat says
// (sessionm.md §4, A); tier join dates the .NET way with seven fraction
// digits (sessionm.md §3, O).
func coreTime(t time.Time) string   { return t.UTC().Format("2006-01-02 15:04:05") }
func dotnetTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (e *Emulator) connectTime(t time.Time) string { return t.UTC().Format(e.connectTimeLayout) }

func (e *Emulator) connectTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := e.connectTime(*t)
	return &s
}

// datetimeFormatNames lists connectLayouts for messages.
func datetimeFormatNames() string {
	return strings.Join(sortedKeys(connectLayouts), ", ")
}

// splitPath returns the escaped segments after prefix, unescaped one by one
// (so "a%2Fb" stays one segment). Empty segments make the path unknown.
func splitPath(r *http.Request, prefix string) ([]string, bool) {
	p, escaped := r.URL.Path, false
	if r.URL.RawPath != "" {
		p, escaped = r.URL.RawPath, true
	}
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok || rest == "" {
		return nil, false
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		if s == "" {
			return nil, false
		}
		if escaped {
			u, err := unescapeSegment(s)
			if err != nil {
				return nil, false
			}
			segs[i] = u
		}
	}
	return segs, true
}
