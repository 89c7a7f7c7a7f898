package emulator

import (
	"sort"
	"strings"
)

// Delivery is the state of one user for tests: the profile's attributes
// (with /users/track names, custom attributes flat), what the user would
// have received, the events and purchases recorded, and the trigger
// recipients that resolved to the user (or to an identifier no user has)
// but got nothing. Each list holds the newest 1,000 entries (A); the
// *_dropped counts say how many older ones were dropped, and are left out
// while none were.
type Delivery struct {
	ExternalID string         `json:"external_id,omitempty"`
	BrazeID    string         `json:"braze_id,omitempty"`
	Aliases    []Alias        `json:"user_aliases,omitempty"`
	Identifier string         `json:"identifier,omitempty"` // set when no user has the identifier
	Exists     bool           `json:"exists"`
	Attributes map[string]any `json:"attributes"`
	Messages   []Message      `json:"messages"`
	Events     []Event        `json:"events"`
	Purchases  []Purchase     `json:"purchases"`
	NotSent    []NotSent      `json:"not_sent"`

	MessagesDropped  int `json:"messages_dropped,omitempty"`
	EventsDropped    int `json:"events_dropped,omitempty"`
	PurchasesDropped int `json:"purchases_dropped,omitempty"`
	NotSentDropped   int `json:"not_sent_dropped,omitempty"`
}

// Deliveries returns a Delivery for one user, named by external id, braze
// id, email, phone, or alias as "alias_label:alias_name"; an identifier
// that only appears in not_sent records answers too (Exists false).
func (e *Emulator) Deliveries(id string) (any, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st
	if u := st.find(id); u != nil {
		return st.delivery(u), true
	}
	for _, k := range []string{id, "email:" + strings.ToLower(id), "phone:" + normPhone(id), "braze_id:" + id, "user_alias:" + id} {
		if m := st.missing[k]; m != nil {
			return m.delivery(k), true
		}
	}
	return nil, false
}

// find looks a user up by any identifier, without materializing a
// generated user. Called with e.mu held.
func (s *store) find(id string) *user {
	for _, p := range []string{"email:", "phone:", "braze_id:", "user_alias:"} {
		if rest, ok := strings.CutPrefix(id, p); ok {
			id = rest
		}
	}
	if u, ok := s.byExternalID(id, false); ok {
		return u
	}
	if u, ok := s.byBrazeID(id, false); ok {
		return u
	}
	if u := s.byAlias[id]; u != nil {
		return u
	}
	if u := prioritize(s.byEmailAddr(id, false), []string{"most_recently_updated"}); u != nil {
		return u
	}
	if p := normPhone(id); p != "" && len(p) == len(id) {
		return prioritize(s.byPhone[p], []string{"most_recently_updated"})
	}
	return nil
}

// AllDeliveries lists a Delivery for every user with messages, events,
// purchases, not_sent records or changed attributes, and for every unknown
// identifier a trigger named, sorted by external id (or identifier).
// Generated users nobody wrote to cost nothing here.
func (e *Emulator) AllDeliveries() any {
	e.mu.Lock()
	out := []Delivery{}
	for _, u := range e.st.users {
		if u.hasState() || e.st.missing[u.externalID] != nil {
			out = append(out, e.st.delivery(u))
		}
	}
	for k, m := range e.st.missing {
		if _, known := e.st.byExt[k]; !known {
			out = append(out, m.delivery(k))
		}
	}
	e.mu.Unlock()
	key := func(d *Delivery) string {
		if d.ExternalID != "" {
			return d.ExternalID
		}
		if d.Identifier != "" {
			return d.Identifier
		}
		return "~" + d.BrazeID
	}
	sort.Slice(out, func(i, j int) bool { return key(&out[i]) < key(&out[j]) })
	return out
}

// delivery copies the user's state, so callers can read it outside the
// lock. Recorded properties are shared: they are never written again. What
// was meant for the external id before the user existed comes first in
// not_sent, within the same cap of maxHistory entries.
func (s *store) delivery(u *user) Delivery {
	d := Delivery{
		ExternalID:       u.externalID,
		BrazeID:          u.brazeID,
		Exists:           true,
		Attributes:       make(map[string]any, len(u.attrs)),
		Messages:         u.messages.appendTo(make([]Message, 0, u.messages.len())),
		Events:           u.events.appendTo(make([]Event, 0, u.events.len())),
		Purchases:        u.purchases.appendTo(make([]Purchase, 0, u.purchases.len())),
		MessagesDropped:  u.messages.dropped,
		EventsDropped:    u.events.dropped,
		PurchasesDropped: u.purchases.dropped,
		NotSentDropped:   u.notSent.dropped,
	}
	if m := s.missing[u.externalID]; m != nil && u.externalID != "" {
		d.NotSent = m.notSent.appendTo(make([]NotSent, 0, m.notSent.len()+u.notSent.len()))
		d.NotSentDropped += m.notSent.dropped
	}
	d.NotSent = u.notSent.appendTo(d.NotSent)
	if over := len(d.NotSent) - maxHistory; over > 0 {
		d.NotSent = append([]NotSent(nil), d.NotSent[over:]...)
		d.NotSentDropped += over
	}
	if d.NotSent == nil {
		d.NotSent = []NotSent{}
	}
	if len(u.aliases) > 0 {
		d.Aliases = append([]Alias(nil), u.aliases...)
	}
	for k, v := range u.attrs {
		d.Attributes[k] = v
	}
	return d
}

func (m *missing) delivery(id string) Delivery {
	return Delivery{
		Identifier:     id,
		Attributes:     map[string]any{},
		Messages:       []Message{},
		Events:         []Event{},
		Purchases:      []Purchase{},
		NotSent:        m.notSent.appendTo(make([]NotSent, 0, m.notSent.len())),
		NotSentDropped: m.notSent.dropped,
	}
}
