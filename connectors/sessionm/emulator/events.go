package emulator

import (
	"errors"
	"fmt"
)

// What the sandbox's SessionM event sender needs: the state changes an
// event reports (an offer issued, points awarded) happen here first, so a
// pipeline that looks the wallet up while handling the event finds them.

// EventUser is the user block of a SessionM event (sessionm.md §5, A),
// plus the culture from the user's profile, which Braze templates use.
type EventUser struct {
	ID         string `json:"id"`
	ExternalID string `json:"external_id,omitempty"`
	Email      string `json:"email,omitempty"`
	Culture    string `json:"culture,omitempty"`
}

// RetailerID is the tenant's retailer GUID, which events carry.
func (e *Emulator) RetailerID() string { return e.retailerID }

// EventUser finds a user by SessionM id, external id or email.
func (e *Emulator) EventUser(ref string) (EventUser, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.lookupAny(ref)
	if !ok {
		return EventUser{}, false
	}
	return e.eventUser(i), true
}

func (e *Emulator) eventUser(i int) EventUser {
	u := e.userAt(i)
	culture, _ := u.profile["culture"].(string)
	return EventUser{ID: u.id, ExternalID: u.externalID, Email: u.email, Culture: culture}
}

// IssueForEvent issues one offerID into the user's wallet as
// acquisition/issue would, and returns the user and the new user_offers
// item in the user's culture, as an offer_issued event carries them.
func (e *Emulator) IssueForEvent(ref, offerID string) (EventUser, any, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.lookupAny(ref)
	if !ok {
		return EventUser{}, nil, fmt.Errorf("no SessionM user %q", ref)
	}
	o, a := e.findOffer(offerID, false, now)
	if a != nil {
		return EventUser{}, nil, errors.New(a.message)
	}
	uo := e.issue(i, o, 1, now)[0]
	eu := e.eventUser(i)
	culture := eu.Culture
	if culture == "" {
		culture = defaultCulture
	}
	return eu, e.userOfferObject(uo, culture), nil
}

// CheckOffer says whether acquisition/issue (and IssueForEvent) would
// accept offerID now: nil when it names a catalogue offer, any version or
// the root (the current version is what would be issued), and now is
// inside that version's start_date..end_date; otherwise an error that says
// why, such as `no offer with offer_id "x"` or `offer "y" is outside its
// start_date/end_date window: it ended at 2025-02-01T00:00:00Z`. It
// changes nothing.
func (e *Emulator) CheckOffer(offerID string) error {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, a := e.findOffer(offerID, false, now); a != nil {
		return errors.New(a.message)
	}
	return nil
}

// AwardPoints adds points to the user's available balance and returns the
// user and the new balance, as a points_awarded event carries them.
func (e *Emulator) AwardPoints(ref string, points int64) (EventUser, int64, error) {
	if points <= 0 {
		return EventUser{}, 0, fmt.Errorf("points must be positive, not %d", points)
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.lookupAny(ref)
	if !ok {
		return EventUser{}, 0, fmt.Errorf("no SessionM user %q", ref)
	}
	// Users are copied on write, as a PUT does, so the seed stays intact
	// for Reset.
	u := *e.userAt(i)
	u.availablePoints += points
	u.updatedAt = now
	st := e.stateFor(i)
	st.profile = &u
	st.dirty = true
	return e.eventUser(i), u.availablePoints, nil
}
