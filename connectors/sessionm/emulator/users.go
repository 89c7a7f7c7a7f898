package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/internal/ids"
)

// user is a Core user (sessionm.md §3, O). Values are replaced, never
// mutated in place, once the emulator serves: PUT stores a changed copy.
type user struct {
	id, externalID, email                    string
	moreExtIDs                               []string // further external-id mappings (sessionm.md §2, O); externalID is the one answered
	firstName, lastName, dob                 string
	address, city, zip, state, country, dma  string
	optedIn, activated                       bool
	availablePoints, totalPoints, testPoints int64
	tierPoints                               float64
	tier                                     int // index into tierLevels; -1 none
	tierJoin                                 time.Time
	proxyIDs                                 []string
	createdAt, updatedAt, registeredAt       time.Time
	suspended, testAccount                   bool
	accountStatus, photoURL, referrerCode    string
	profile                                  map[string]any
	phones                                   []Phone
}

type tierLevel struct {
	id, name string
	rank     int
}

// generatedCreatedAt is when every generated user "registered": fixed, so
// answers are deterministic.
var generatedCreatedAt = time.Date(2024, 6, 25, 13, 22, 49, 0, time.UTC)

func (e *Emulator) userFromSeed(s *SeedUser) *user {
	u := &user{
		id: s.ID, externalID: s.ExternalID, email: s.Email,
		firstName: s.FirstName, lastName: s.LastName, dob: s.DOB,
		address: s.Address, city: s.City, zip: s.Zip, state: s.State, country: s.Country, dma: s.DMA,
		optedIn: s.OptedIn == nil || *s.OptedIn, activated: s.Activated == nil || *s.Activated,
		availablePoints: s.AvailablePoints, totalPoints: s.TotalPoints, testPoints: s.TestPoints,
		tierPoints: s.TierPoints, tier: -1, proxyIDs: s.ProxyIDs,
		suspended: s.Suspended, testAccount: s.TestAccount,
		accountStatus: s.AccountStatus, photoURL: s.ProfilePhotoURL, referrerCode: s.ReferrerCode,
		profile: s.UserProfile, phones: normalPhones(s.PhoneNumbers),
		createdAt: generatedCreatedAt,
	}
	if u.accountStatus == "" {
		u.accountStatus = "good"
	}
	u.moreExtIDs = s.ExternalIDs
	u.promoteExtID()
	if s.CreatedAt != nil {
		u.createdAt = s.CreatedAt.Time
	}
	u.updatedAt, u.registeredAt = u.createdAt, u.createdAt
	if s.UpdatedAt != nil {
		u.updatedAt = s.UpdatedAt.Time
	}
	if s.RegisteredAt != nil {
		u.registeredAt = s.RegisteredAt.Time
	}
	for i, l := range e.tierLevels {
		if l.name == s.Tier && s.Tier != "" {
			u.tier = i
		}
	}
	u.tierJoin = u.registeredAt
	if s.TierJoinDate != nil {
		u.tierJoin = s.TierJoinDate.Time
	}
	return u
}

// normalPhones fills the defaults real answers show: phone_type "mobile",
// preference_flags [] (sessionm.md §3, O).
func normalPhones(in []Phone) []Phone {
	out := slices.Clone(in)
	for i := range out {
		if out[i].PhoneType == "" {
			out[i].PhoneType = "mobile"
		}
		if out[i].PreferenceFlags == nil {
			out[i].PreferenceFlags = []string{}
		}
	}
	return out
}

// generatedUser builds generated user i on demand: they are not stored.
func generatedUser(i int) *user {
	return &user{
		id: GeneratedUserID(i), externalID: GeneratedExternalID(i), email: ids.GeneratedEmail(i),
		firstName: "Load", lastName: fmt.Sprintf("User %06d", i),
		optedIn: true, activated: true, tier: -1, accountStatus: "good",
		createdAt: generatedCreatedAt, updatedAt: generatedCreatedAt, registeredAt: generatedCreatedAt, tierJoin: generatedCreatedAt,
	}
}

// userAt returns user i as it is now. Callers hold e.mu.
func (e *Emulator) userAt(i int) *user {
	if st := e.state[i]; st != nil && st.profile != nil {
		return st.profile
	}
	switch {
	case i < e.nSeeded:
		return e.seeded[i]
	case i < e.nSeeded+e.nGenerated:
		return generatedUser(i - e.nSeeded)
	default:
		return e.created[i-e.nSeeded-e.nGenerated]
	}
}

// lookupID finds a user by SessionM id. Callers hold e.mu.
func (e *Emulator) lookupID(id string) (int, bool) {
	if i, ok := e.idx.byID[id]; ok {
		return i, true
	}
	if g, ok := ids.ParseGeneratedSessionMID(id, e.nGenerated); ok {
		return e.nSeeded + g, true
	}
	return 0, false
}

// lookupExt finds a user by external id; a PUT may have moved a generated
// user's external id, so the parsed guess is checked. Callers hold e.mu.
func (e *Emulator) lookupExt(ext string) (int, bool) {
	if ext == "" {
		return 0, false
	}
	if i, ok := e.idx.byExt[ext]; ok {
		return i, true
	}
	if g, ok := ids.ParseGeneratedExternalID(ext, e.nGenerated); ok {
		i := e.nSeeded + g
		if st := e.state[i]; st == nil || st.profile == nil || st.profile.externalID == ext {
			return i, true
		}
	}
	return 0, false
}

// lookupEmail finds a user by email, without case. Callers hold e.mu.
func (e *Emulator) lookupEmail(email string) (int, bool) {
	key := strings.ToLower(email)
	if i, ok := e.idx.byEmail[key]; ok {
		return i, true
	}
	if g, ok := ids.ParseGeneratedEmail(key, e.nGenerated); ok {
		i := e.nSeeded + g
		if st := e.state[i]; st == nil || st.profile == nil || strings.EqualFold(st.profile.email, email) {
			return i, true
		}
	}
	return 0, false
}

// userJSON is the Core user object with the fields seen in real create
// responses, opted_in and activated first (sessionm.md §3, O).
type userJSON struct {
	OptedIn                   bool             `json:"opted_in"`
	Activated                 bool             `json:"activated"`
	ID                        string           `json:"id"`
	ExternalID                *string          `json:"external_id"`
	Email                     *string          `json:"email"`
	FirstName                 *string          `json:"first_name"`
	LastName                  *string          `json:"last_name"`
	DOB                       *string          `json:"dob"`
	Address                   *string          `json:"address"`
	City                      *string          `json:"city"`
	Zip                       *string          `json:"zip"`
	State                     *string          `json:"state"`
	Country                   *string          `json:"country"`
	DMA                       *string          `json:"dma"`
	AvailablePoints           int64            `json:"available_points"`
	TestPoints                int64            `json:"test_points"`
	UnclaimedAchievementCount int              `json:"unclaimed_achievement_count"`
	TierPoints                float64          `json:"tier_points"`
	ProxyIDs                  []string         `json:"proxy_ids"`
	CreatedAt                 string           `json:"created_at"`
	UpdatedAt                 string           `json:"updated_at"`
	RegisteredAt              string           `json:"registered_at"`
	Suspended                 bool             `json:"suspended"`
	TestAccount               bool             `json:"test_account"`
	AccountStatus             string           `json:"account_status"`
	ProfilePhotoURL           *string          `json:"profile_photo_url"`
	ReferrerCode              *string          `json:"referrer_code"`
	TierLevels                []tierLevelJSON  `json:"tier_levels"`
	PhoneNumbers              []Phone          `json:"phone_numbers"`
	UserProfile               map[string]any   `json:"user_profile,omitempty"`
	Identifiers               []identifierJSON `json:"identifiers,omitempty"`
}

type tierLevelJSON struct {
	TierSystemID     string        `json:"tier_system_id"`
	TierLevelID      string        `json:"tier_level_id"`
	UserID           string        `json:"user_id"`
	JoinDate         string        `json:"join_date"`
	TierOverview     tierOverview  `json:"tier_overview"`
	NextTierOverview *tierOverview `json:"next_tier_overview"`
	TierProgress     []any         `json:"tier_progress"`
}

type tierOverview struct {
	ID           string `json:"id"`
	TierSystemID string `json:"tier_system_id"`
	RetailerID   string `json:"retailer_id"`
	Name         string `json:"name"`
	Rank         int    `json:"rank"`
	Status       string `json:"status"`
}

// identifierJSON answers show_identifiers=true (sessionm.md §3, O; the
// shape is A).
type identifierJSON struct {
	ExternalID     string `json:"external_id"`
	ExternalIDType string `json:"external_id_type"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type userView struct{ profile, identifiers bool }

// userObject builds the user object; view adds the parts the query flags
// ask for.
func (e *Emulator) userObject(u *user, view userView) *userJSON {
	j := &userJSON{
		OptedIn: u.optedIn, Activated: u.activated, ID: u.id,
		ExternalID: nullable(u.externalID), Email: nullable(u.email),
		FirstName: nullable(u.firstName), LastName: nullable(u.lastName), DOB: nullable(u.dob),
		Address: nullable(u.address), City: nullable(u.city), Zip: nullable(u.zip),
		State: nullable(u.state), Country: nullable(u.country), DMA: nullable(u.dma),
		AvailablePoints: u.availablePoints, TestPoints: u.testPoints, TierPoints: u.tierPoints,
		ProxyIDs:  u.proxyIDs,
		CreatedAt: coreTime(u.createdAt), UpdatedAt: coreTime(u.updatedAt), RegisteredAt: coreTime(u.registeredAt),
		Suspended: u.suspended, TestAccount: u.testAccount, AccountStatus: u.accountStatus,
		ProfilePhotoURL: nullable(u.photoURL), ReferrerCode: nullable(u.referrerCode),
		TierLevels: []tierLevelJSON{},
	}
	if j.ProxyIDs == nil {
		j.ProxyIDs = []string{}
	}
	if len(u.phones) > 0 { // an empty list echoes as null (sessionm.md §3, O)
		j.PhoneNumbers = u.phones
	}
	if u.tier >= 0 {
		l := e.tierLevels[u.tier]
		tl := tierLevelJSON{
			TierSystemID: e.tierSystemID, TierLevelID: l.id, UserID: u.id, JoinDate: dotnetTime(u.tierJoin),
			TierOverview: e.tierOverview(l), TierProgress: []any{},
		}
		next := -1
		for i, o := range e.tierLevels {
			if o.rank > l.rank && (next < 0 || o.rank < e.tierLevels[next].rank) {
				next = i
			}
		}
		if next >= 0 {
			ov := e.tierOverview(e.tierLevels[next])
			tl.NextTierOverview = &ov
		}
		j.TierLevels = append(j.TierLevels, tl)
	}
	if view.profile {
		j.UserProfile = u.profile
		if j.UserProfile == nil {
			j.UserProfile = map[string]any{}
		}
	}
	if view.identifiers {
		j.Identifiers = []identifierJSON{}
		// every mapping, the answered one first; their types are not
		// public (A)
		if u.externalID != "" {
			j.Identifiers = append(j.Identifiers, identifierJSON{ExternalID: u.externalID, ExternalIDType: "default"})
		}
		for _, ext := range u.moreExtIDs {
			j.Identifiers = append(j.Identifiers, identifierJSON{ExternalID: ext, ExternalIDType: "default"})
		}
	}
	return j
}

func (e *Emulator) tierOverview(l tierLevel) tierOverview {
	return tierOverview{ID: l.id, TierSystemID: e.tierSystemID, RetailerID: e.retailerID, Name: l.name, Rank: l.rank, Status: "active"}
}

// usStates are the values a US user's state may take; SessionM answers
// "not a valid state" for others (sessionm.md §1, O). Other countries are
// not checked (A).
var usStates = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Fields("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP") {
		m[s] = true
	}
	return m
}()

// userStringFields are the text keys POST /users and PUT accept in
// {"user":{...}}, next to opted_in, user_profile and phone_numbers; other
// keys are ignored, as Rails-style strong parameters would (A).
var userStringFields = []string{"email", "external_id", "first_name", "last_name", "dob", "address", "city", "zip", "state", "country", "dma", "referrer_code", "profile_photo_url"}

// applyUserBody validates a {"user":{...}} body and applies it to a copy
// of base (nil: a new user). idx is the user's own index when updating, so
// its own email and external id are not "in use". Callers hold e.mu.
func (e *Emulator) applyUserBody(body []byte, base *user, idx int) (*user, *apiError) {
	top, perr := parseObject(body)
	if perr != nil {
		return nil, perr
	}
	raw, ok := top["user"]
	if !ok || isNull(raw) {
		return nil, &apiError{code: "missing_data", message: "user is required: send {\"user\":{...}}", resource: "user", fields: map[string]string{"user": "can't be blank"}}
	}
	obj, err := objectOf(raw)
	if err != nil {
		return nil, fieldErrors("validation", "user", map[string]string{"user": "must be an object"})
	}
	f := &fields{m: obj, errs: map[string]string{}}
	var u user
	if base != nil {
		u = *base
	} else {
		u = user{tier: -1, optedIn: true, activated: true, accountStatus: "good"}
	}
	targets := map[string]*string{
		"email": &u.email, "external_id": &u.externalID, "first_name": &u.firstName, "last_name": &u.lastName,
		"dob": &u.dob, "address": &u.address, "city": &u.city, "zip": &u.zip, "state": &u.state,
		"country": &u.country, "dma": &u.dma, "referrer_code": &u.referrerCode, "profile_photo_url": &u.photoURL,
	}
	for _, name := range userStringFields {
		if v, present := f.str(name); present {
			*targets[name] = v
		}
	}
	if v, present := f.boolean("opted_in"); present {
		u.optedIn = v
	}
	if raw, present := obj["user_profile"]; present && !isNull(raw) {
		prof, err := objectOf(raw)
		if err != nil {
			f.errs["user_profile"] = "must be an object"
		} else {
			// Attributes merge key by key; null removes one (A).
			merged := maps.Clone(u.profile)
			if merged == nil {
				merged = map[string]any{}
			}
			for k, v := range prof {
				if isNull(v) {
					delete(merged, k)
					continue
				}
				var val any
				_ = json.Unmarshal(v, &val)
				merged[k] = val
			}
			u.profile = merged
		}
	}
	if raw, present := obj["phone_numbers"]; present {
		// Lists are replaced wholesale; [] clears (sessionm.md §3, O).
		var phones []Phone
		if isNull(raw) {
			u.phones = nil
		} else if err := json.Unmarshal(raw, &phones); err != nil {
			f.errs["phone_numbers"] = "must be a list of {phone_number, phone_type, preference_flags, verified_ownership}"
		} else {
			for i := range phones {
				if phones[i].PhoneNumber == "" {
					f.errs[fmt.Sprintf("phone_numbers[%d].phone_number", i)] = "can't be blank"
				}
			}
			u.phones = normalPhones(phones)
		}
	}
	if u.email == "" {
		f.errs["email"] = "can't be blank"
	} else if !strings.Contains(u.email, "@") {
		f.errs["email"] = "is not a valid email"
	} else if other, used := e.lookupEmail(u.email); used && other != idx {
		f.errs["email"] = "Email Already In Use" // sessionm.md §1, O
	}
	if u.externalID != "" {
		if other, used := e.lookupExt(u.externalID); used && other != idx {
			f.errs["external_id"] = "External ID Already In Use"
		}
	}
	if base != nil && u.externalID != base.externalID && slices.Contains(u.moreExtIDs, u.externalID) {
		// The answered mapping becomes one the user already had: it is
		// listed once. The one it replaces is dropped (A: a PUT replaces
		// external_id; whether SessionM keeps the old mapping is not
		// public).
		u.moreExtIDs = slices.DeleteFunc(slices.Clone(u.moreExtIDs), func(x string) bool { return x == u.externalID })
	}
	// An emptied external_id drops the answered mapping; the user still
	// has others, and sessionm.md §2 (O) says "The REST API returns the
	// most recently updated one", so the next one is answered.
	u.promoteExtID()
	if u.dob != "" {
		if _, err := time.Parse("2006-01-02", u.dob); err != nil {
			f.errs["dob"] = "not a valid date"
		}
	}
	if c := strings.ToUpper(u.country); (c == "US" || c == "USA") && u.state != "" && !usStates[strings.ToUpper(u.state)] {
		f.errs["state"] = "not a valid state" // sessionm.md §1, O
	}
	if len(f.errs) > 0 {
		return nil, fieldErrors("validation", "user", f.errs)
	}
	u.proxyIDs = slices.Clone(u.proxyIDs)
	return &u, nil
}

// promoteExtID makes the first further mapping the answered one when
// externalID is empty (A: which mapping SessionM answers then is not
// public), and keeps moreExtIDs nil when it is empty. It never writes to
// moreExtIDs' array, which a stored user may share.
func (u *user) promoteExtID() {
	if u.externalID == "" && len(u.moreExtIDs) > 0 {
		u.externalID, u.moreExtIDs = u.moreExtIDs[0], u.moreExtIDs[1:]
	}
	if len(u.moreExtIDs) == 0 {
		u.moreExtIDs = nil
	}
}

// reindex moves user i's id/external id/email entries from old to u.
// Callers hold e.mu.
func (e *Emulator) reindex(i int, old, u *user) {
	if old != nil {
		if old.externalID != u.externalID {
			if j, ok := e.idx.byExt[old.externalID]; ok && j == i {
				delete(e.idx.byExt, old.externalID)
			}
		}
		if !strings.EqualFold(old.email, u.email) {
			if j, ok := e.idx.byEmail[strings.ToLower(old.email)]; ok && j == i {
				delete(e.idx.byEmail, strings.ToLower(old.email))
			}
		}
	}
	e.idx.byID[u.id] = i
	if u.externalID != "" {
		e.idx.byExt[u.externalID] = i
	}
	for _, ext := range u.moreExtIDs {
		e.idx.byExt[ext] = i
	}
	if u.email != "" {
		e.idx.byEmail[strings.ToLower(u.email)] = i
	}
}
