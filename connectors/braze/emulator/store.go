package emulator

import (
	"fmt"
	"strings"

	"github.com/loyalty-connector/engine/internal/ids"
)

// maxHistory caps each list a user (or an unknown identifier) collects:
// messages, not_sent records, events and purchases (A: Braze keeps far
// more, but the emulator runs for hours under load tests). The newest
// entries are kept; Delivery counts the dropped ones (messages_dropped,
// ...).
const maxHistory = 1000

// maxMissing bounds how many unknown identifiers the store remembers
// not_sent records for (A). Past it, the identifier recorded first is
// forgotten, records and all.
const maxMissing = 100_000

// history is a list that keeps its newest maxHistory entries: a ring once
// full, so adding never allocates then.
type history[T any] struct {
	items   []T // oldest first until full; then items[next] is the oldest
	next    int
	dropped int // entries overwritten
}

func (h *history[T]) add(x T) {
	if len(h.items) < maxHistory {
		h.items = append(h.items, x)
		return
	}
	h.items[h.next] = x
	h.next = (h.next + 1) % len(h.items)
	h.dropped++
}

func (h *history[T]) len() int { return len(h.items) }

// appendTo appends the entries to dst, oldest first.
func (h *history[T]) appendTo(dst []T) []T {
	return append(append(dst, h.items[h.next:]...), h.items[:h.next]...)
}

// user is one profile and what happened to it. Generated users exist
// without a user value until a request writes to them.
type user struct {
	externalID string
	brazeID    string
	aliases    []Alias
	gen        int            // index+1 of a generated user, 0 otherwise
	attrs      map[string]any // /users/track names; custom attributes flat
	changed    bool           // attributes differ from the seed
	updated    uint64         // store.seq at the last attribute change
	created    uint64         // store.seq at creation

	messages  history[Message]
	notSent   history[NotSent]
	events    history[Event]
	purchases history[Purchase]
}

func (u *user) hasState() bool {
	return u.changed || u.messages.len() > 0 || u.notSent.len() > 0 || u.events.len() > 0 || u.purchases.len() > 0
}

// missing collects what was meant for an identifier no user has.
type missing struct {
	notSent history[NotSent]
}

// store is the emulator's mutable state; Emulator.mu guards it.
type store struct {
	users     []*user // seeded, created, and generated ones once written, in that order of appearance
	byExt     map[string]*user
	byBraze   map[string]*user
	byAlias   map[string]*user
	byEmail   map[string][]*user // lower-cased email
	byPhone   map[string][]*user
	byGen     map[int]*user // generated users written to, by index
	missing   map[string]*missing
	generated int
	seq       uint64 // orders attribute changes and creations
	created   int    // users created by the API, for their braze ids
	dispatch  int
	maxArr    int

	// missingOrder lists the identifiers of missing in the order they were
	// first recorded, the oldest at missingHead, to forget it first.
	missingOrder []string
	missingHead  int
}

func newStore(seed *Seed) *store {
	s := &store{
		byExt:     map[string]*user{},
		byBraze:   map[string]*user{},
		byAlias:   map[string]*user{},
		byEmail:   map[string][]*user{},
		byPhone:   map[string][]*user{},
		byGen:     map[int]*user{},
		missing:   map[string]*missing{},
		generated: seed.Settings.GeneratedUsers,
		maxArr:    seed.Settings.MaxArrayLength,
	}
	if s.maxArr == 0 {
		s.maxArr = 25
	}
	for _, su := range seed.Users {
		u := &user{externalID: su.ExternalID, brazeID: su.BrazeID, attrs: map[string]any{}}
		if u.brazeID == "" {
			u.brazeID = s.newBrazeID()
		}
		u.aliases = append([]Alias(nil), su.UserAliases...)
		for name, v := range su.Attributes {
			op, _ := parseAttr(name, normalizeYAML(v)) // validated by Seed.validate
			applyOp(u.attrs, op, s.maxArr)
		}
		s.add(u)
	}
	return s
}

func (s *store) newBrazeID() string {
	s.created++
	return fmt.Sprintf("%s%016x", createdBrazePrefix, s.created)
}

// add indexes a new profile.
func (s *store) add(u *user) {
	s.seq++
	u.created, u.updated = s.seq, s.seq
	s.users = append(s.users, u)
	if u.externalID != "" {
		s.byExt[u.externalID] = u
	}
	s.byBraze[u.brazeID] = u
	for _, a := range u.aliases {
		s.byAlias[aliasKey(a)] = u
	}
	s.index(u, "", "")
}

// index files the profile under its email and phone, after they changed
// from oldEmail and oldPhone.
func (s *store) index(u *user, oldEmail, oldPhone string) {
	email, _ := u.attrs["email"].(string)
	phone, _ := u.attrs["phone"].(string)
	if k := strings.ToLower(oldEmail); k != "" && k != strings.ToLower(email) {
		s.byEmail[k] = without(s.byEmail[k], u)
	}
	if k := strings.ToLower(email); k != "" && k != strings.ToLower(oldEmail) {
		s.byEmail[k] = append(s.byEmail[k], u)
	}
	if k := normPhone(oldPhone); k != "" && k != normPhone(phone) {
		s.byPhone[k] = without(s.byPhone[k], u)
	}
	if k := normPhone(phone); k != "" && k != normPhone(oldPhone) {
		s.byPhone[k] = append(s.byPhone[k], u)
	}
}

func without(list []*user, u *user) []*user {
	out := list[:0]
	for _, x := range list {
		if x != u {
			out = append(out, x)
		}
	}
	return out
}

func normPhone(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r == '+' || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// generatedAttrs are the attributes a generated user starts with.
func generatedAttrs(i int) map[string]any {
	return map[string]any{
		"first_name": "Load",
		"last_name":  fmt.Sprintf("User %06d", i),
		"email":      ids.GeneratedEmail(i),
		"language":   "en",
		"country":    "US",
		"time_zone":  "UTC",
		// the SessionM emulator's id for its generated user i
		"sessionm_user_id": ids.GeneratedSessionMID(i),
	}
}

// generatedUser is generated user i: the profile written to, or (write
// false) a fresh unwritten copy, or (write true) a new profile, stored.
func (s *store) generatedUser(i int, write bool) *user {
	if u := s.byGen[i]; u != nil {
		return u
	}
	u := &user{externalID: ids.GeneratedExternalID(i), brazeID: ids.GeneratedBrazeID(i), gen: i + 1, attrs: generatedAttrs(i)}
	if write {
		s.add(u)
		s.byGen[i] = u
	}
	return u
}

// byExternalID finds a profile by external id; generated users are
// materialized only when write is set.
func (s *store) byExternalID(id string, write bool) (*user, bool) {
	if u := s.byExt[id]; u != nil {
		return u, true
	}
	if i, ok := ids.ParseGeneratedExternalID(id, s.generated); ok {
		return s.generatedUser(i, write), true
	}
	return nil, false
}

func (s *store) byBrazeID(id string, write bool) (*user, bool) {
	if u := s.byBraze[id]; u != nil {
		return u, true
	}
	if i, ok := ids.ParseGeneratedBrazeID(id, s.generated); ok {
		return s.generatedUser(i, write), true
	}
	return nil, false
}

// byEmailAddr lists the profiles with an email, in creation order.
func (s *store) byEmailAddr(email string, write bool) []*user {
	list := s.byEmail[strings.ToLower(email)]
	if i, ok := ids.ParseGeneratedEmail(strings.ToLower(email), s.generated); ok {
		if _, written := s.byGen[i]; !written {
			list = append(append([]*user(nil), list...), s.generatedUser(i, write))
		}
	}
	return list
}

// prioritize picks one profile out of several that share an email, the
// way a recipient's "prioritization" asks (braze.md §2); the first
// profile when nothing decides.
func prioritize(list []*user, prio []string) *user {
	cands := list
	for _, p := range prio {
		if len(cands) <= 1 {
			break
		}
		var keep []*user
		switch p {
		case "identified", "unidentified":
			for _, u := range cands {
				if (u.externalID != "") == (p == "identified") {
					keep = append(keep, u)
				}
			}
		case "most_recently_updated", "least_recently_updated", "most_recently_created", "least_recently_created":
			best := cands[0]
			for _, u := range cands[1:] {
				a, b := u.updated, best.updated
				if strings.HasSuffix(p, "created") {
					a, b = u.created, best.created
				}
				if (strings.HasPrefix(p, "most") && a > b) || (strings.HasPrefix(p, "least") && a < b) {
					best = u
				}
			}
			keep = []*user{best}
		default:
			continue
		}
		if len(keep) > 0 {
			cands = keep
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[0]
}

// apply runs attribute updates on a profile (materialized by the caller).
func (s *store) apply(u *user, ops []attrOp) {
	if len(ops) == 0 {
		return
	}
	oldEmail, _ := u.attrs["email"].(string)
	oldPhone, _ := u.attrs["phone"].(string)
	for _, op := range ops {
		applyOp(u.attrs, op, s.maxArr)
	}
	s.seq++
	u.updated, u.changed = s.seq, true
	s.index(u, oldEmail, oldPhone)
}

// noteMissing records what an unknown identifier would have received. At
// most maxMissing identifiers are kept: a new one past that forgets the
// one recorded first.
func (s *store) noteMissing(id string, ns NotSent) {
	m := s.missing[id]
	if m == nil {
		if len(s.missing) >= maxMissing {
			s.forgetOldestMissing()
		}
		m = &missing{}
		s.missing[id] = m
		s.missingOrder = append(s.missingOrder, id)
	}
	m.notSent.add(ns)
}

func (s *store) forgetOldestMissing() {
	delete(s.missing, s.missingOrder[s.missingHead])
	s.missingOrder[s.missingHead] = ""
	s.missingHead++
	if s.missingHead >= 1024 && s.missingHead*2 >= len(s.missingOrder) {
		n := copy(s.missingOrder, s.missingOrder[s.missingHead:])
		clear(s.missingOrder[n:])
		s.missingOrder, s.missingHead = s.missingOrder[:n], 0
	}
}

// each calls f for every user, generated ones included, materializing
// them when write is set. Generated users already written to cost no
// allocation.
func (s *store) each(write bool, f func(*user)) {
	for _, u := range s.users {
		if u.gen == 0 {
			f(u)
		}
	}
	for i := 0; i < s.generated; i++ {
		f(s.generatedUser(i, write))
	}
}

// User is a profile as Liquid sees it (braze.md §6): standard attributes
// under their Liquid names (first_name, last_name, email_address,
// phone_number, city, country, language, time_zone, date_of_birth, gender;
// other profile fields such as email_subscribe keep their API names) and
// custom attributes apart, as {{custom_attribute.${name}}} reads them.
type User struct {
	ExternalID       string         `json:"external_id,omitempty"`
	BrazeID          string         `json:"braze_id"`
	Aliases          []Alias        `json:"user_aliases,omitempty"`
	Attributes       map[string]any `json:"attributes"`
	CustomAttributes map[string]any `json:"custom_attributes"`
}

// Liquid is the user as a Liquid scope: the standard attributes at the top
// with user_id (the external id) and braze_id, and custom_attribute.
func (u User) Liquid() map[string]any {
	m := make(map[string]any, len(u.Attributes)+3)
	for k, v := range u.Attributes {
		m[k] = v
	}
	m["user_id"] = u.ExternalID
	m["braze_id"] = u.BrazeID
	m["custom_attribute"] = u.CustomAttributes
	return m
}

// public copies a profile for callers outside the lock.
func (u *user) public() User {
	out := User{ExternalID: u.externalID, BrazeID: u.brazeID, Attributes: map[string]any{}, CustomAttributes: map[string]any{}}
	if len(u.aliases) > 0 {
		out.Aliases = append([]Alias(nil), u.aliases...)
	}
	for k, v := range u.attrs {
		switch {
		case liquidNames[k] != "":
			out.Attributes[liquidNames[k]] = v
		case standardAttrs[k]:
			out.Attributes[k] = v
		default:
			out.CustomAttributes[k] = v
		}
	}
	return out
}
