package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// maxTTL bounds ttl so expiry times stay representable: 100 years (A).
const maxTTL = 100 * 365 * 24 * 3600

// maxTagsPerCall bounds the tags list of one POST (A: sessionm.md §2 says
// "multiple tags may be specified in a single invocation" and gives no
// limit). More is a 422 validation error on "tags", so one request cannot
// hold the emulator's lock for long.
const maxTagsPerCall = 1000

const corePrefix = "/priv/v1/apps/"

type coreRoute int

const (
	coreNone     coreRoute = iota
	coreUsers              // POST /users
	coreUser               // GET, PUT /users/{id}
	coreUserTags           // GET, POST /users/{id}/tags
	coreExtUser            // GET, PUT /external/users/{external_id}
	coreExtTags            // GET, POST /external/users/{external_id}/tags
)

var coreAllow = [...]string{coreUsers: "POST", coreUser: "GET, PUT", coreUserTags: "GET, POST", coreExtUser: "GET, PUT", coreExtTags: "GET, POST"}

// matchCore maps the segments after the api key to a route and the user
// reference in the path (sessionm.md §2, §3).
func matchCore(segs []string) (coreRoute, string) {
	switch {
	case len(segs) == 1 && segs[0] == "users":
		return coreUsers, ""
	case len(segs) == 2 && segs[0] == "users":
		return coreUser, segs[1]
	case len(segs) == 3 && segs[0] == "users" && segs[2] == "tags":
		return coreUserTags, segs[1]
	case len(segs) == 3 && segs[0] == "external" && segs[1] == "users":
		return coreExtUser, segs[2]
	case len(segs) == 4 && segs[0] == "external" && segs[1] == "users" && segs[3] == "tags":
		return coreExtTags, segs[2]
	}
	return coreNone, ""
}

// Core serves SessionM Core under /priv/v1/apps/{api_key}/...: user tags
// (sessionm.md §2) and users (§3).
func (e *Emulator) Core() http.Handler { return http.HandlerFunc(e.serveCore) }

func (e *Emulator) serveCore(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r, corePrefix)
	route := coreNone
	var ref string
	if ok && len(segs) >= 2 {
		route, ref = matchCore(segs[1:])
	}
	if route == coreNone {
		e.send(w, errReply(errorf("not_found", "no such Core endpoint: %s %s", r.Method, r.URL.Path)))
		return
	}
	if !allowed(r.Method, coreAllow[route]) {
		a := errorf("method_not_allowed", "%s is not allowed here; use %s", r.Method, coreAllow[route])
		a.allow = coreAllow[route]
		e.send(w, errReply(a))
		return
	}
	// The api key is in the path and is the Basic user name (sessionm.md §1, C).
	key := segs[0]
	if key != e.coreKey {
		e.send(w, errReply(errorf("invalid_api_key", "unknown api key %q", key)))
		return
	}
	if h := r.Header.Get("Authorization"); h != e.coreHeader {
		user, pass, ok := r.BasicAuth()
		if !ok || user != key || pass != e.coreSecret {
			e.send(w, errReply(errorf("invalid_auth_token", "the Authorization header must be Basic base64(api_key:api_secret) of this app")))
			return
		}
	}
	if a := e.rateLimited("core\x00" + key); a != nil {
		e.send(w, errReply(a))
		return
	}
	var body []byte
	if r.Method != http.MethodGet {
		var a *apiError
		if body, a = e.readBody(r); a != nil {
			e.send(w, errReply(a))
			return
		}
	}
	e.send(w, e.idempotent(r, "core", body, func() reply {
		return e.dispatchCore(r, route, ref, body)
	}))
}

func allowed(method, allow string) bool {
	switch allow {
	case "POST":
		return method == http.MethodPost
	case "GET, PUT":
		return method == http.MethodGet || method == http.MethodPut
	case "GET, POST":
		return method == http.MethodGet || method == http.MethodPost
	}
	return false
}

func (e *Emulator) dispatchCore(r *http.Request, route coreRoute, ref string, body []byte) reply {
	byExt := route == coreExtUser || route == coreExtTags
	switch {
	case route == coreUsers:
		return e.createUser(body)
	case (route == coreUserTags || route == coreExtTags) && r.Method == http.MethodPost:
		return e.postTags(byExt, ref, body)
	case route == coreUserTags || route == coreExtTags:
		return e.getTags(byExt, ref)
	case r.Method == http.MethodPut:
		return e.updateUser(byExt, ref, body)
	default:
		q := r.URL.Query()
		return e.getUser(byExt, ref, userView{profile: q.Get("user[user_profile]") == "true", identifiers: q.Get("show_identifiers") == "true"})
	}
}

// lookup finds the user a Core path names. Callers hold e.mu.
func (e *Emulator) lookup(byExt bool, ref string) (int, *apiError) {
	var i int
	var ok bool
	if byExt {
		i, ok = e.lookupExt(ref)
	} else {
		i, ok = e.lookupID(ref)
	}
	if !ok {
		what := "user id"
		if byExt {
			what = "external id"
		}
		return 0, errorf("user_not_found", "no user with %s %q", what, ref)
	}
	return i, nil
}

// parseTags validates {"tags":[...],"ttl"?:seconds} (sessionm.md §2: tags
// C, ttl C with unit I). At most maxTagsPerCall names (A). ttl must be a
// JSON integer literal; "20000" as a string is refused (A). ttl 0 means
// none would be ambiguous, so it is refused too.
func parseTags(body []byte) ([]string, int64, *apiError) {
	if tags, ttl, ok := parseTagsFast(body); ok {
		return tags, ttl, nil
	}
	return parseTagsFull(body)
}

// parseTagsFull is parseTags for any body, with every problem reported.
func parseTagsFull(body []byte) ([]string, int64, *apiError) {
	m, a := parseObject(body)
	if a != nil {
		return nil, 0, a
	}
	errs := map[string]string{}
	var tags []string
	raw, ok := m["tags"]
	raw = bytes.TrimSpace(raw)
	switch {
	case !ok || isNull(raw):
		errs["tags"] = "can't be blank"
	case raw[0] != '[':
		errs["tags"] = "must be a list of strings"
	default:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			errs["tags"] = "must be a list of strings"
			break
		}
		if len(items) == 0 {
			errs["tags"] = "can't be blank"
		}
		if len(items) > maxTagsPerCall {
			errs["tags"] = fmt.Sprintf("at most %d tags per call, not %d", maxTagsPerCall, len(items))
			break
		}
		tags = make([]string, 0, len(items))
		for i, it := range items {
			name, ok := jsonString(it)
			switch {
			case !ok:
				errs["tags["+strconv.Itoa(i)+"]"] = "must be a string"
			case name == "":
				errs["tags["+strconv.Itoa(i)+"]"] = "can't be blank"
			default:
				tags = append(tags, name)
			}
		}
	}
	var ttl int64
	if raw, ok := m["ttl"]; ok && !isNull(raw) {
		n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
		switch {
		case err != nil || n <= 0:
			errs["ttl"] = "must be a positive integer (seconds)"
		case n > maxTTL:
			errs["ttl"] = fmt.Sprintf("must be at most %d seconds (100 years)", maxTTL)
		default:
			ttl = n
		}
	}
	if len(errs) > 0 {
		return nil, 0, fieldErrors("validation", "tag", errs)
	}
	return tags, ttl, nil
}

// jsonString decodes a JSON string; plain ones skip the decoder.
func jsonString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// postTags applies tags to a user (sessionm.md §2, C): without ttl a
// counter tag is created with count 1 or incremented; with ttl an expiring
// tag is set to expire ttl seconds from now. A re-POSTed expiring tag
// restarts from now, or keeps its expiry with settings.tag_ttl_on_repost
// keep (A, configurable). The last call decides a tag's kind (A): a
// counter tag posted with ttl becomes expiring (its count is dropped), and
// an expiring tag posted without ttl becomes a counter at 1. A name
// repeated in one call counts once (A). The answer lists all the user's
// live tags (A, configurable: settings.tag_response status answers the
// bare envelope):
// {"status":"ok","tags":{"a":{"count":3},"b":{"expires_at":"..."}}}.
// The lock is held for time linear in the call's names and the user's
// tags: duplicates are found with a set, existing tags with tagIdx.
func (e *Emulator) postTags(byExt bool, ref string, body []byte) reply {
	names, ttl, a := parseTags(body)
	if a != nil {
		return errReply(a)
	}
	seen := make(map[string]struct{}, len(names))
	uniq := names[:0]
	for _, name := range names {
		if _, dup := seen[name]; !dup {
			seen[name] = struct{}{}
			uniq = append(uniq, name)
		}
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, a := e.lookup(byExt, ref)
	if a != nil {
		return errReply(a)
	}
	st := e.stateFor(i)
	st.pruneTags(now)
	var expires time.Time
	if ttl > 0 {
		expires = now.Add(time.Duration(ttl) * time.Second)
	}
	for _, name := range uniq {
		j, ok := st.tagIdx[name]
		if !ok {
			j = len(st.tags)
			st.tags = append(st.tags, tag{name: name})
			st.tagIdx[name] = j
		}
		t := &st.tags[j]
		if ttl > 0 {
			// pruneTags left only live tags, so a zero count means a live
			// expiring tag here
			if !(ok && t.count == 0 && e.keepTagTTL) {
				t.count, t.expires = 0, expires
			}
		} else if t.count > 0 {
			t.count++
		} else {
			t.count, t.expires = 1, time.Time{}
		}
	}
	st.dirty = true
	if e.tagStatusOnly {
		return okReply(statusOKBody)
	}
	return okReply(appendTagsBody(make([]byte, 0, 64+32*len(st.tags)), st.tags))
}

// getTags answers the user's live tags in the POST's shape (A: the GET
// path is not public, sessionm.md §2).
func (e *Emulator) getTags(byExt bool, ref string) reply {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, a := e.lookup(byExt, ref)
	if a != nil {
		return errReply(a)
	}
	var tags []tag
	if st := e.state[i]; st != nil {
		st.pruneTags(now)
		tags = st.tags
	}
	return okReply(appendTagsBody(nil, tags))
}

// setTags replaces the user's tags and rebuilds tagIdx.
func (st *userState) setTags(tags []tag) {
	st.tags = tags
	st.tagIdx = make(map[string]int, len(tags))
	for j, t := range tags {
		st.tagIdx[t.name] = j
	}
}

// pruneTags drops expired tags in place: an expiring tag disappears when
// its TTL runs out (sessionm.md §2, C). tagIdx is rebuilt only when a tag
// went (or was never built).
func (st *userState) pruneTags(now time.Time) {
	out := st.tags[:0]
	for _, t := range st.tags {
		if t.count > 0 || t.expires.After(now) {
			out = append(out, t)
		}
	}
	clear(st.tags[len(out):])
	if len(out) != len(st.tags) || st.tagIdx == nil {
		st.setTags(out)
	}
}

// statusOKBody is the Core success envelope without resource keys
// (sessionm.md §1, C). Shared: okReply never writes to it.
var statusOKBody = []byte(`{"status":"ok"}`)

func appendTagsBody(b []byte, tags []tag) []byte {
	b = append(b, `{"status":"ok","tags":{`...)
	for i, t := range tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t.name)
		if t.count > 0 {
			b = append(b, `:{"count":`...)
			b = strconv.AppendInt(b, int64(t.count), 10)
			b = append(b, '}')
		} else {
			b = append(b, `:{"expires_at":"`...)
			b = t.expires.UTC().AppendFormat(b, "2006-01-02 15:04:05")
			b = append(b, `"}`...)
		}
	}
	return append(b, "}}"...)
}

func (e *Emulator) userReply(u *user, view userView) reply {
	body, err := json.Marshal(struct {
		Status string    `json:"status"`
		User   *userJSON `json:"user"`
	}{"ok", e.userObject(u, view)})
	if err != nil { // a seed user_profile JSON cannot express
		return errReply(errorf("internal_server_error", "internal server error"))
	}
	return okReply(body)
}

// getUser is GET /users/{id} and /external/users/{id} (sessionm.md §3, O):
// user[user_profile]=true adds user_profile, show_identifiers=true adds
// identifiers.
func (e *Emulator) getUser(byExt bool, ref string, view userView) reply {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, a := e.lookup(byExt, ref)
	if a != nil {
		return errReply(a)
	}
	return e.userReply(e.userAt(i), view)
}

// createUser is POST /users {"user":{...}} (sessionm.md §3, C/O): email
// required (A) and unique ("Email Already In Use", O), external_id unique
// (A), a US state checked (O). The answer is 200 with the new user.
func (e *Emulator) createUser(body []byte) reply {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	u, a := e.applyUserBody(body, nil, -1)
	if a != nil {
		return errReply(a)
	}
	for {
		u.id = newUserID()
		if _, taken := e.lookupID(u.id); !taken {
			break
		}
	}
	u.createdAt, u.updatedAt, u.registeredAt, u.tierJoin = now, now, now, now
	e.created = append(e.created, u)
	e.reindex(e.nSeeded+e.nGenerated+len(e.created)-1, nil, u)
	return e.userReply(u, userView{profile: true})
}

// updateUser is PUT /users/{id} and /external/users/{id} (sessionm.md §3,
// O): given fields change, lists are replaced wholesale, the answer echoes
// the full user.
func (e *Emulator) updateUser(byExt bool, ref string, body []byte) reply {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, a := e.lookup(byExt, ref)
	if a != nil {
		return errReply(a)
	}
	old := e.userAt(i)
	u, a := e.applyUserBody(body, old, i)
	if a != nil {
		return errReply(a)
	}
	u.updatedAt = now
	e.stateFor(i).profile = u
	e.reindex(i, old, u)
	return e.userReply(u, userView{profile: true})
}
