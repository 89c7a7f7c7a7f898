package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// POST /campaigns/trigger/send and /canvas/trigger/send (braze.md §2).

// MaxRecipients is the most recipients one trigger request may carry
// (braze.md §2).
const MaxRecipients = 50

// Message is what one user would have received from one trigger call.
type Message struct {
	Kind       string `json:"kind"` // campaign | canvas
	CampaignID string `json:"campaign_id,omitempty"`
	CanvasID   string `json:"canvas_id,omitempty"`
	Name       string `json:"name"` // of the campaign or Canvas
	DispatchID string `json:"dispatch_id"`
	SendID     string `json:"send_id,omitempty"`
	Broadcast  bool   `json:"broadcast,omitempty"`
	// Properties are the trigger_properties (campaign) or context (Canvas):
	// the top-level object merged with the recipient's, the recipient's
	// keys winning (braze.md §2). Shared between messages: read only.
	Properties map[string]any `json:"properties"`
	At         time.Time      `json:"at"`
}

// NotSent is a recipient of a trigger call who received nothing, and why.
type NotSent struct {
	Kind       string    `json:"kind"`
	CampaignID string    `json:"campaign_id,omitempty"`
	CanvasID   string    `json:"canvas_id,omitempty"`
	Name       string    `json:"name,omitempty"`
	DispatchID string    `json:"dispatch_id"`
	Identifier string    `json:"identifier"` // as the request named the user, e.g. "email:ana@example.com"
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

var emptyProps = map[string]any{}

type triggerReq struct {
	canvas     bool
	id         string
	sendID     string
	broadcast  bool
	props      map[string]any
	audience   audience // nil: no audience given
	recipients []recipient
}

type recipient struct {
	index        int
	kind         string // external_user_id | user_alias | email | braze_id
	id           string // the identifier's value; "label:name" for an alias
	prio         []string
	props        map[string]any
	existingOnly bool
	ops          []attrOp
	minor        []any
}

// label names the recipient's identifier in not_sent records.
func (r *recipient) label() string {
	switch r.kind {
	case "external_user_id":
		return r.id
	case "user_alias":
		return "user_alias:" + r.id
	}
	return r.kind + ":" + r.id
}

func parseCampaignTrigger(e *Emulator, f fields, _ time.Time) (any, bool, *apiError) {
	req, broadcast, err := e.parseTrigger(f, false)
	return req, broadcast || targetsAudience(f), err
}

func parseCanvasTrigger(e *Emulator, f fields, _ time.Time) (any, bool, *apiError) {
	req, broadcast, err := e.parseTrigger(f, true)
	return req, broadcast || targetsAudience(f), err
}

// targetsAudience: a call with a Connected Audience counts against the
// broadcast pool even beside recipients (A: braze.md §1 limits a call that
// "targets a segment or Connected Audience"; the engine counts it so too).
func targetsAudience(f fields) bool {
	r, ok := f["audience"]
	return ok && !isNull(r)
}

func (e *Emulator) parseTrigger(f fields, canvas bool) (any, bool, *apiError) {
	idField, invalidID, propFields := "campaign_id", "Invalid Campaign ID", []string{"trigger_properties"}
	if canvas {
		// context is the current name, canvas_entry_properties the old one
		// (braze.md §2); both are read, context winning (A).
		idField, invalidID, propFields = "canvas_id", "Invalid Canvas ID", []string{"canvas_entry_properties", "context"}
	}
	bad := func(format string, a ...any) *apiError {
		return fatal(http.StatusBadRequest, msgBadRequest, fmt.Sprintf(format, a...))
	}
	req := &triggerReq{canvas: canvas}
	var msg string
	var present bool
	if req.broadcast, _, msg = getBool(f, "broadcast"); msg != "" {
		return nil, false, bad("%s", msg)
	}
	id, present, msg := getString(f, idField)
	switch {
	case msg != "":
		return nil, req.broadcast, fatal(http.StatusBadRequest, invalidID, msg)
	case !present || id == "":
		return nil, req.broadcast, fatal(http.StatusBadRequest, invalidID, fmt.Sprintf("'%s' is required", idField))
	}
	req.id = id
	if !canvas {
		if req.sendID, _, msg = getString(f, "send_id"); msg != "" {
			return nil, req.broadcast, bad("%s", msg)
		}
	}
	// audience: only users it matches get the message (braze.md §2);
	// audience.go evaluates it, or refuses what it cannot evaluate.
	if raw, present, msg := getObject(f, "audience"); msg != "" {
		return nil, req.broadcast, bad("%s", msg)
	} else if present {
		if req.audience, msg = parseAudience(raw, "audience"); msg != "" {
			return nil, req.broadcast, bad("%s", msg)
		}
	}
	recips, hasRecips, msg := getArray(f, "recipients")
	if msg != "" {
		return nil, req.broadcast, bad("%s", msg)
	}
	var attachments []json.RawMessage
	if !canvas {
		if attachments, _, msg = getArray(f, "attachments"); msg != "" {
			return nil, req.broadcast, bad("%s", msg)
		}
		for i, a := range attachments {
			af, ok := asFields(a)
			name, _, m1 := getString(af, "file_name")
			url, _, m2 := getString(af, "url")
			if !ok || m1 != "" || m2 != "" || name == "" || url == "" {
				return nil, req.broadcast, bad("attachments[%d] must be an object with a file_name and a url", i)
			}
		}
	}
	if len(recips) > MaxRecipients {
		return nil, req.broadcast, fatal(http.StatusBadRequest, "The max number of external_ids and aliases per request was exceeded",
			fmt.Sprintf("%d recipients; at most %d per request", len(recips), MaxRecipients))
	}
	// An empty recipients array counts as no recipients (A).
	if req.broadcast && hasRecips && len(recips) > 0 {
		return nil, true, bad("'broadcast' cannot be true when 'recipients' are given")
	}
	if req.broadcast && len(attachments) > 0 {
		return nil, true, bad("'broadcast' cannot be true when 'attachments' are given")
	}
	if !req.broadcast && len(recips) == 0 {
		return nil, false, fatal(http.StatusBadRequest, "No Recipients",
			"give 'recipients', or set 'broadcast' to true to send to the whole segment")
	}
	props, perr := e.readProps(f, propFields, "")
	if perr != nil {
		return nil, req.broadcast, perr
	}
	req.props = props

	var errs []any
	for i, raw := range recips {
		r, err := e.parseRecipient(i, raw, propFields)
		if err != "" {
			errs = append(errs, err)
			continue
		}
		req.recipients = append(req.recipients, r)
	}
	if len(errs) > 0 {
		return nil, req.broadcast, fatal(http.StatusBadRequest, msgBadRequest, errs...)
	}
	return req, req.broadcast, nil
}

// readProps reads and merges the properties objects of one level (later
// names win), each at most PropertiesMaxBytes as compact JSON.
func (e *Emulator) readProps(f fields, names []string, where string) (map[string]any, *apiError) {
	var out map[string]any
	for _, name := range names {
		raw, present, msg := getObject(f, name)
		if msg != "" {
			return nil, fatal(http.StatusBadRequest, msgBadRequest, where+msg)
		}
		if !present {
			continue
		}
		if n := compactLen(raw); n > e.opts.PropertiesMaxBytes {
			return nil, fatal(http.StatusBadRequest, msgBadRequest,
				fmt.Sprintf("%s'%s' is %d bytes; at most %d", where, name, n, e.opts.PropertiesMaxBytes))
		}
		m, ok := decodeObject(raw)
		if !ok {
			return nil, fatal(http.StatusBadRequest, msgBadRequest, fmt.Sprintf("%s'%s' holds a number out of range", where, name))
		}
		if out == nil {
			out = m
			continue
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

func (e *Emulator) parseRecipient(i int, raw json.RawMessage, propFields []string) (recipient, string) {
	r := recipient{index: i, existingOnly: true}
	where := fmt.Sprintf("recipients[%d]: ", i)
	f, ok := asFields(raw)
	if !ok {
		return r, where + "each recipient must be an object"
	}
	n := 0
	for _, k := range []string{"external_user_id", "email", "braze_id"} {
		s, present, msg := getString(f, k)
		if msg != "" {
			return r, where + msg
		}
		if present {
			if s == "" {
				return r, where + fmt.Sprintf("'%s' is empty", k)
			}
			n++
			r.kind, r.id = k, s
		}
	}
	if aliasRaw, present, msg := getObject(f, "user_alias"); msg != "" {
		return r, where + msg
	} else if present {
		a, msg := parseAlias(aliasRaw)
		if msg != "" {
			return r, where + msg
		}
		n++
		r.kind, r.id = "user_alias", aliasKey(a)
	}
	if n != 1 {
		return r, where + "give exactly one of external_user_id, user_alias, email or braze_id"
	}
	if r.kind == "email" {
		r.id = strings.ToLower(r.id)
	}
	prio, present, msg := getArray(f, "prioritization")
	if msg != "" {
		return r, where + msg
	}
	for _, p := range prio {
		var s string
		if json.Unmarshal(p, &s) != nil {
			return r, where + "'prioritization' must be an array of strings"
		}
		r.prio = append(r.prio, s)
	}
	if r.kind == "email" && (!present || len(prio) == 0) {
		return r, where + "'prioritization' is required when the recipient is identified by email"
	}
	if v, present, msg := getBool(f, "send_to_existing_only"); msg != "" {
		return r, where + msg
	} else if present {
		r.existingOnly = v
	}
	attrsRaw, hasAttrs, msg := getObject(f, "attributes")
	if msg != "" {
		return r, where + msg
	}
	if !r.existingOnly {
		if r.kind == "user_alias" {
			return r, where + "'send_to_existing_only' cannot be false for a user alias"
		}
		if !hasAttrs {
			return r, where + "'send_to_existing_only' false needs 'attributes' to create the user"
		}
	}
	if hasAttrs {
		attrs, ok := decodeObject(attrsRaw)
		if !ok {
			return r, where + "'attributes' holds a number out of range"
		}
		for _, name := range sortedKeys(attrs) {
			if reservedAttr[name] {
				continue
			}
			op, bad := parseAttr(name, attrs[name])
			if bad != "" {
				r.minor = append(r.minor, minorError(bad, "recipients", i))
				continue
			}
			r.ops = append(r.ops, op)
		}
	}
	props, perr := e.readProps(f, propFields, where)
	if perr != nil {
		return r, perr.errors[0].(string)
	}
	r.props = props
	return r, ""
}

func parseAlias(raw json.RawMessage) (Alias, string) {
	f, _ := asFields(raw)
	name, _, m1 := getString(f, "alias_name")
	label, _, m2 := getString(f, "alias_label")
	if m1 != "" || m2 != "" || name == "" || label == "" {
		return Alias{}, "'user_alias' needs a non-empty alias_name and alias_label"
	}
	return Alias{AliasName: name, AliasLabel: label}, ""
}

// minorError is a non-fatal error in the shape Braze gives them:
// {"type": ..., "input_array": "attributes", "index": 2}.
func minorError(msg, array string, index int) MinorError {
	return MinorError{Type: msg, InputArray: array, Index: index}
}

// MinorError is one non-fatal error of a successful answer.
type MinorError struct {
	Type       string `json:"type"`
	InputArray string `json:"input_array"`
	Index      int    `json:"index"`
}

type triggerResp struct {
	Notice     string `json:"notice,omitempty"`
	DispatchID string `json:"dispatch_id"`
	SendID     string `json:"send_id,omitempty"`
	Message    string `json:"message"`
	Errors     []any  `json:"errors,omitempty"`
}

func processTrigger(e *Emulator, reqAny any, now time.Time) (int, any, *apiError) {
	req := reqAny.(*triggerReq)
	kind, name, status, segName := "campaign", "", "", ""
	if req.canvas {
		c := e.canvs[req.id]
		if c == nil {
			return 0, nil, fatal(http.StatusBadRequest, "Invalid Canvas ID", fmt.Sprintf("no API-triggered Canvas has id %q", req.id))
		}
		kind, name, status, segName = "canvas", c.Name, c.Status, c.Segment
	} else {
		c := e.camps[req.id]
		if c == nil {
			return 0, nil, fatal(http.StatusBadRequest, "Invalid Campaign ID", fmt.Sprintf("no API-triggered campaign has id %q", req.id))
		}
		name, status, segName = c.Name, c.Status, c.Segment
	}
	var sg *segment
	if segName != "" {
		sg = e.segs[segName]
	}
	active := status == "" || status == "active"
	notice := ""
	if !active {
		notice = inactiveNotice(kind, status)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st
	st.dispatch++
	dispatchID := fmt.Sprintf("d15ba7c4%024x", st.dispatch)
	tmpl := Message{Kind: kind, Name: name, DispatchID: dispatchID, SendID: req.sendID, Broadcast: req.broadcast, At: now.UTC()}
	nsTmpl := NotSent{Kind: kind, Name: name, DispatchID: dispatchID, At: now.UTC()}
	if req.canvas {
		tmpl.CanvasID, nsTmpl.CanvasID = req.id, req.id
	} else {
		tmpl.CampaignID, nsTmpl.CampaignID = req.id, req.id
	}
	topProps := req.props
	if topProps == nil {
		topProps = emptyProps
	}

	resp := triggerResp{Notice: notice, DispatchID: dispatchID, Message: "success"}
	if req.broadcast {
		if req.sendID != "" {
			resp.SendID = req.sendID // a broadcast can be tracked per send (braze.md §1)
		}
		// A paused or archived campaign/Canvas sends nothing; a broadcast to
		// one records nothing per user either (A), to keep it cheap: no
		// user is visited. Otherwise each member gets one record; a member
		// at maxHistory overwrites its oldest without allocating.
		if active {
			m := tmpl
			m.Properties = topProps
			e.eachMember(sg, req.audience, now, func(u *user) { u.messages.add(m) })
		}
	} else {
		seen := make(map[*user]bool, len(req.recipients))
		for i := range req.recipients {
			r := &req.recipients[i]
			resp.Errors = append(resp.Errors, r.minor...)
			u, reason := st.resolveRecipient(r)
			if u == nil {
				ns := nsTmpl
				ns.Identifier, ns.Reason = r.label(), reason
				st.noteMissing(r.label(), ns)
				continue
			}
			st.apply(u, r.ops) // attributes apply before the send (braze.md §2)
			if seen[u] {
				continue // duplicates are deduped; the first property set wins (A)
			}
			seen[u] = true
			reason = ""
			switch {
			case !active:
				reason = notice
			case !sg.has(u):
				reason = fmt.Sprintf("not in the %s's segment %q", kind, sg.def.Name)
			case req.audience != nil && !req.audience.match(u, now):
				// accepted, as for a user outside the segment (A: braze.md
				// §2 does not say what Braze answers)
				reason = "not in the request's audience"
			}
			if reason != "" {
				ns := nsTmpl
				ns.Identifier, ns.Reason = r.label(), reason
				u.notSent.add(ns)
				continue
			}
			m := tmpl
			m.Properties = mergeProps(topProps, r.props)
			u.messages.add(m)
		}
	}
	code := http.StatusCreated
	if !req.canvas {
		code = e.opts.CampaignSuccessStatus
	}
	return code, resp, nil
}

// inactiveNotice is the notice of a paused or archived Canvas (braze.md
// §2), and the same wording for campaigns (A).
func inactiveNotice(kind, status string) string {
	what := "Canvas"
	if kind == "campaign" {
		what = "Campaign"
	}
	verb := "Resume"
	if status == "archived" {
		verb = "Unarchive"
	}
	return fmt.Sprintf("The %s is %s. %s the %s to ensure trigger requests will take effect.", what, status, verb, what)
}

func mergeProps(top, own map[string]any) map[string]any {
	switch {
	case len(own) == 0:
		return top
	case len(top) == 0:
		return own
	}
	out := make(map[string]any, len(top)+len(own))
	for k, v := range top {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// eachMember calls f for every member of a segment (every user when sg is
// nil) that the audience (when not nil) matches, materializing those
// generated users only. Called with e.mu held.
func (e *Emulator) eachMember(sg *segment, aud audience, now time.Time, f func(*user)) {
	st := e.st
	keep := func(u *user) (*user, bool) {
		if aud != nil && !aud.match(u, now) {
			return nil, false
		}
		if u.gen > 0 {
			u = st.generatedUser(u.gen-1, true)
		}
		return u, true
	}
	// Without an audience every member is written to, so generated ones
	// are materialized as they are visited (one allocation each); with
	// one, they are tested unwritten first.
	write := aud == nil
	if sg == nil || sg.def.AllUsers {
		if write {
			st.each(true, f)
			return
		}
		st.each(false, func(u *user) {
			if u, ok := keep(u); ok {
				f(u)
			}
		})
		return
	}
	seen := map[*user]bool{}
	visit := func(u *user, ok bool) {
		if ok {
			u, ok = keep(u)
		}
		if ok && !seen[u] {
			seen[u] = true
			f(u)
		}
	}
	for _, id := range sg.def.ExternalIDs {
		visit(st.byExternalID(id, write))
	}
	for _, id := range sg.def.BrazeIDs {
		visit(st.byBrazeID(id, write))
	}
}

// resolveRecipient finds (or, with send_to_existing_only false, creates)
// the recipient's profile; nil and the reason when there is none.
func (s *store) resolveRecipient(r *recipient) (*user, string) {
	switch r.kind {
	case "external_user_id":
		if u, ok := s.byExternalID(r.id, true); ok {
			return u, ""
		}
		if !r.existingOnly {
			u := &user{externalID: r.id, brazeID: s.newBrazeID(), attrs: map[string]any{}}
			s.add(u)
			return u, ""
		}
		return nil, "no user has this external_user_id and send_to_existing_only is true"
	case "braze_id":
		if u, ok := s.byBrazeID(r.id, true); ok {
			return u, ""
		}
		return nil, "no user has this braze_id"
	case "user_alias":
		if u := s.byAlias[r.id]; u != nil {
			return u, ""
		}
		return nil, "no user has this user alias"
	case "email":
		if u := prioritize(s.byEmailAddr(r.id, true), r.prio); u != nil {
			return u, ""
		}
		if !r.existingOnly {
			u := &user{brazeID: s.newBrazeID(), attrs: map[string]any{"email": r.id}}
			s.add(u)
			return u, ""
		}
		return nil, "no user has this email and send_to_existing_only is true"
	}
	return nil, "unknown identifier"
}
