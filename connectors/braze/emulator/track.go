package emulator

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/connectors/braze"
)

// POST /users/track (braze.md §3).

// MaxTrackObjects is the most objects per array of one /users/track call
// (braze.md §3).
const MaxTrackObjects = 75

// Event is a custom event recorded by /users/track.
type Event struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	AppID      string         `json:"app_id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Purchase is a purchase recorded by /users/track.
type Purchase struct {
	ProductID  string         `json:"product_id"`
	Currency   string         `json:"currency"`
	Price      float64        `json:"price"`
	Quantity   int            `json:"quantity"`
	Time       time.Time      `json:"time"`
	AppID      string         `json:"app_id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// ident is how one /users/track object names its user.
type ident struct {
	kind       string // external_id | user_alias | braze_id | email | phone
	id         string // lower-cased for email; "label:name" for an alias
	raw        string // as sent
	alias      Alias
	updateOnly bool
}

type trackAttr struct {
	ident
	ops []attrOp
}

type trackEvent struct {
	ident
	ev Event
}

type trackPurchase struct {
	ident
	p Purchase
}

type trackReq struct {
	has       [3]bool // attributes, events, purchases were sent
	attrs     []trackAttr
	events    []trackEvent
	purchases []trackPurchase
	minor     []any
}

var trackArrays = [3]string{"attributes", "events", "purchases"}

func parseTrack(e *Emulator, f fields, now time.Time) (any, bool, *apiError) {
	req := &trackReq{}
	var raws [3][]json.RawMessage
	for i, name := range trackArrays {
		a, present, msg := getArray(f, name)
		if msg != "" {
			return nil, false, fatal(http.StatusBadRequest, msgBadRequest, msg)
		}
		if len(a) > MaxTrackObjects {
			return nil, false, fatal(http.StatusBadRequest, "Max Input Length Exceeded",
				fmt.Sprintf("'%s' has %d objects; at most %d per request", name, len(a), MaxTrackObjects))
		}
		raws[i], req.has[i] = a, present
	}
	if !req.has[0] && !req.has[1] && !req.has[2] {
		// A: the docs do not say what an empty call answers.
		return nil, false, fatal(http.StatusBadRequest, msgBadRequest, "send at least one of 'attributes', 'events' or 'purchases'")
	}
	for i, raw := range raws[0] {
		a, msg := parseTrackAttr(raw, i, &req.minor)
		if msg != "" {
			req.minor = append(req.minor, minorError(msg, "attributes", i))
			continue
		}
		req.attrs = append(req.attrs, a)
	}
	for i, raw := range raws[1] {
		ev, msg := parseTrackEvent(raw, now)
		if msg != "" {
			req.minor = append(req.minor, minorError(msg, "events", i))
			continue
		}
		req.events = append(req.events, ev)
	}
	for i, raw := range raws[2] {
		p, msg := parseTrackPurchase(raw, now)
		if msg != "" {
			req.minor = append(req.minor, minorError(msg, "purchases", i))
			continue
		}
		req.purchases = append(req.purchases, p)
	}
	return req, false, nil
}

// parseIdent reads the identifier of a /users/track object. In an
// attributes object with an external_id, user_alias or braze_id, email and
// phone are profile fields; otherwise they identify the user, email first
// (braze.md §3).
func parseIdent(f fields) (ident, string) {
	var id ident
	n := 0
	for _, k := range []string{"external_id", "braze_id"} {
		s, present, msg := getString(f, k)
		if msg != "" {
			return id, msg
		}
		if present {
			if s == "" {
				return id, fmt.Sprintf("'%s' is empty", k)
			}
			n++
			id.kind, id.id, id.raw = k, s, s
		}
	}
	if raw, present, msg := getObject(f, "user_alias"); msg != "" {
		return id, msg
	} else if present {
		a, msg := parseAlias(raw)
		if msg != "" {
			return id, msg
		}
		n++
		id.kind, id.id, id.raw, id.alias = "user_alias", aliasKey(a), aliasKey(a), a
	}
	switch {
	case n > 1:
		return id, "only one of 'external_id', 'braze_id' or 'user_alias' may be given"
	case n == 0:
		for _, k := range []string{"email", "phone"} {
			s, present, msg := getString(f, k)
			if msg != "" {
				return id, msg
			}
			if present && s != "" {
				id.kind, id.id, id.raw = k, s, s
				if k == "email" {
					id.id = strings.ToLower(s)
				} else {
					id.id = normPhone(s)
				}
				break
			}
		}
		if id.kind == "" {
			return id, "'external_id' or 'braze_id' or 'user_alias' or 'email' or 'phone' is required"
		}
	}
	// "Update only" is the default for aliases (braze.md §3) and for
	// braze_id, which cannot create a user (A).
	id.updateOnly = id.kind == "user_alias" || id.kind == "braze_id"
	if v, present, msg := getBool(f, "_update_existing_only"); msg != "" {
		return id, msg
	} else if present {
		id.updateOnly = v
	}
	return id, ""
}

func parseTrackAttr(raw json.RawMessage, index int, minor *[]any) (trackAttr, string) {
	var a trackAttr
	f, ok := asFields(raw)
	if !ok {
		return a, "each attributes object must be an object"
	}
	id, msg := parseIdent(f)
	if msg != "" {
		return a, msg
	}
	a.ident = id
	for _, name := range sortedRawKeys(f) {
		if reservedAttr[name] || name == id.kind { // email/phone used as the identifier
			continue
		}
		v, ok := decodeValue(f[name])
		if !ok {
			*minor = append(*minor, minorError(fmt.Sprintf("'%s' is not a number Braze can store", name), "attributes", index))
			continue
		}
		op, bad := parseAttr(name, v)
		if bad != "" {
			// The field is dropped, the rest of the object applies (A).
			*minor = append(*minor, minorError(bad, "attributes", index))
			continue
		}
		a.ops = append(a.ops, op)
	}
	return a, ""
}

// requiredString reads a field that must be a non-empty string of at most
// 255 characters (braze.md §3: event names, product ids).
func requiredString(f fields, name string) (string, string) {
	v, present, msg := getString(f, name)
	switch {
	case msg != "":
		return "", msg
	case !present || v == "":
		return "", "'" + name + "' is required"
	case utf8.RuneCountInString(v) > 255:
		return "", "'" + name + "' is longer than 255 characters"
	}
	return v, ""
}

func parseTrackEvent(raw json.RawMessage, now time.Time) (trackEvent, string) {
	var ev trackEvent
	f, ok := asFields(raw)
	if !ok {
		return ev, "each events object must be an object"
	}
	id, msg := parseIdent(f)
	if msg != "" {
		return ev, msg
	}
	ev.ident = id
	if ev.ev.Name, msg = requiredString(f, "name"); msg != "" {
		return ev, msg
	}
	if ev.ev.Time, msg = readTime(f, now); msg != "" {
		return ev, msg
	}
	if ev.ev.AppID, _, msg = getString(f, "app_id"); msg != "" {
		return ev, msg
	}
	if ev.ev.Properties, msg = readProperties(f, 100*1024, "100 KB"); msg != "" {
		return ev, msg
	}
	return ev, ""
}

func parseTrackPurchase(raw json.RawMessage, now time.Time) (trackPurchase, string) {
	var p trackPurchase
	f, ok := asFields(raw)
	if !ok {
		return p, "each purchases object must be an object"
	}
	id, msg := parseIdent(f)
	if msg != "" {
		return p, msg
	}
	p.ident = id
	if p.p.ProductID, msg = requiredString(f, "product_id"); msg != "" {
		return p, msg
	}
	cur, present, msg := getString(f, "currency")
	switch {
	case msg != "":
		return p, msg
	case !present:
		return p, "'currency' is required"
	case !braze.IsCurrency(cur):
		return p, fmt.Sprintf("'currency' must be an ISO-4217 code such as \"EUR\", not %q", cur)
	}
	p.p.Currency = strings.ToUpper(cur)
	priceRaw, ok := f["price"]
	if !ok || isNull(priceRaw) {
		return p, "'price' is required"
	}
	if json.Unmarshal(priceRaw, &p.p.Price) != nil || math.IsInf(p.p.Price, 0) {
		return p, "'price' must be a number"
	}
	p.p.Quantity = 1
	if qRaw, ok := f["quantity"]; ok && !isNull(qRaw) {
		var q float64
		if json.Unmarshal(qRaw, &q) != nil || q != math.Trunc(q) || q < 1 || q > 100 {
			return p, "'quantity' must be a whole number from 1 to 100"
		}
		p.p.Quantity = int(q)
	}
	if p.p.Time, msg = readTime(f, now); msg != "" {
		return p, msg
	}
	if p.p.AppID, _, msg = getString(f, "app_id"); msg != "" {
		return p, msg
	}
	if p.p.Properties, msg = readProperties(f, 50*1024, "50 KB"); msg != "" {
		return p, msg
	}
	return p, ""
}

// readTime reads the required "time"; a future time becomes now
// (braze.md §3).
func readTime(f fields, now time.Time) (time.Time, string) {
	s, present, msg := getString(f, "time")
	switch {
	case msg != "":
		return time.Time{}, "'time' must be an ISO-8601 time string"
	case !present || s == "":
		return time.Time{}, "'time' is required"
	}
	if t, ok := braze.ParseTime(s); ok {
		if t.After(now) {
			t = now
		}
		return t, ""
	}
	return time.Time{}, fmt.Sprintf("'time' is not a valid ISO-8601 time: %q", s)
}

// readProperties checks event and purchase properties (braze.md §3): names
// non-empty, at most 255 characters, no leading "$", not "time" or
// "event_name"; string values at most 255 characters; nested values
// within the size limit.
func readProperties(f fields, limit int, limitText string) (map[string]any, string) {
	raw, present, msg := getObject(f, "properties")
	if msg != "" || !present {
		return nil, msg
	}
	props, ok := decodeObject(raw)
	if !ok {
		return nil, "'properties' holds a number out of range"
	}
	nested := false
	for _, k := range sortedKeys(props) {
		if msg := checkName(k, "property"); msg != "" {
			return nil, msg
		}
		if k == "time" || k == "event_name" {
			return nil, fmt.Sprintf("property name '%s' is reserved", k)
		}
		switch v := props[k].(type) {
		case string:
			if utf8.RuneCountInString(v) > 255 {
				return nil, fmt.Sprintf("property '%s' is longer than 255 characters", k)
			}
		case map[string]any, []any:
			nested = true
		}
	}
	if nested && compactLen(raw) > limit {
		return nil, fmt.Sprintf("'properties' with nested values must be at most %s", limitText)
	}
	return props, ""
}

type trackResp struct {
	Message             string `json:"message"`
	AttributesProcessed *int   `json:"attributes_processed,omitempty"`
	EventsProcessed     *int   `json:"events_processed,omitempty"`
	PurchasesProcessed  *int   `json:"purchases_processed,omitempty"`
	Errors              []any  `json:"errors,omitempty"`
}

func processTrack(e *Emulator, reqAny any, now time.Time) (int, any, *apiError) {
	req := reqAny.(*trackReq)
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st
	// Objects whose user does not exist and may not be created still count
	// as processed: Braze processes /users/track asynchronously, so its
	// answer cannot know (A).
	for _, a := range req.attrs {
		if u := st.resolveTrack(&a.ident); u != nil {
			st.apply(u, a.ops)
		}
	}
	for _, ev := range req.events {
		if u := st.resolveTrack(&ev.ident); u != nil {
			u.events.add(ev.ev)
		}
	}
	for _, p := range req.purchases {
		if u := st.resolveTrack(&p.ident); u != nil {
			u.purchases.add(p.p)
		}
	}
	resp := trackResp{Message: "success", Errors: req.minor}
	counts := [3]int{len(req.attrs), len(req.events), len(req.purchases)}
	if req.has[0] {
		resp.AttributesProcessed = &counts[0]
	}
	if req.has[1] {
		resp.EventsProcessed = &counts[1]
	}
	if req.has[2] {
		resp.PurchasesProcessed = &counts[2]
	}
	return http.StatusCreated, resp, nil
}

// resolveTrack finds the object's profile, creating it unless the object
// is "update only". Called with e.mu held.
func (s *store) resolveTrack(id *ident) *user {
	var u *user
	switch id.kind {
	case "external_id":
		u, _ = s.byExternalID(id.id, true)
	case "braze_id":
		u, _ = s.byBrazeID(id.id, true)
	case "user_alias":
		u = s.byAlias[id.id]
	case "email":
		u = prioritize(s.byEmailAddr(id.id, true), []string{"most_recently_updated"})
	case "phone":
		u = prioritize(s.byPhone[id.id], []string{"most_recently_updated"})
	}
	if u != nil || id.updateOnly || id.kind == "braze_id" {
		return u
	}
	u = &user{brazeID: s.newBrazeID(), attrs: map[string]any{}}
	switch id.kind {
	case "external_id":
		u.externalID = id.id
	case "user_alias":
		u.aliases = []Alias{id.alias}
	case "email":
		u.attrs["email"] = id.raw
	case "phone":
		u.attrs["phone"] = id.raw
	}
	s.add(u)
	return u
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedRawKeys(m fields) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
