package emulator

import (
	"slices"
	"strings"
	"time"
)

// Delivery is what one user holds in SessionM now: points, live tags and
// wallet. It is what GET /_sandbox/deliveries shows for SessionM.
type Delivery struct {
	UserID          string              `json:"user_id"`
	ExternalID      *string             `json:"external_id"`
	AvailablePoints int64               `json:"available_points"`
	Tags            map[string]TagState `json:"tags"`
	Wallet          []WalletEntry       `json:"wallet"`
}

// TagState is {"count":n} for a counter tag or {"expires_at":"YYYY-MM-DD HH:MM:SS"}
// for an expiring one.
type TagState struct {
	Count     int    `json:"count,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// WalletEntry is a user-offer, named in en-US, dates as Connect writes them.
type WalletEntry struct {
	UserOfferID         string  `json:"user_offer_id"`
	OfferID             string  `json:"offer_id"`
	Name                string  `json:"name"`
	AcquireDate         string  `json:"acquire_date"`
	ExpirationDate      *string `json:"expiration_date"`
	RedeemDate          *string `json:"redeem_date"`
	IsRedeemable        bool    `json:"is_redeemable"`
	PendingExtendedData bool    `json:"pending_extended_data"`
	Quantity            int     `json:"quantity"`
}

// Deliveries returns the Delivery of the user named by SessionM id,
// external id or email, and whether such a user exists.
func (e *Emulator) Deliveries(user string) (any, bool) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.lookupAny(user)
	if !ok {
		return nil, false
	}
	return e.delivery(i, now), true
}

// lookupAny finds a user by SessionM id, external id or email. Callers
// hold e.mu.
func (e *Emulator) lookupAny(user string) (int, bool) {
	if i, ok := e.lookupID(user); ok {
		return i, true
	}
	if i, ok := e.lookupExt(user); ok {
		return i, true
	}
	if strings.Contains(user, "@") {
		return e.lookupEmail(user)
	}
	return 0, false
}

// AllDeliveries returns the Delivery of every user whose tags or wallet a
// request changed since the seed (or the last Reset), in user order. It
// walks only touched users, so generated users cost nothing.
func (e *Emulator) AllDeliveries() any {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var touched []int
	for i, st := range e.state {
		if st.dirty {
			touched = append(touched, i)
		}
	}
	slices.Sort(touched)
	out := make([]Delivery, 0, len(touched))
	for _, i := range touched {
		out = append(out, e.delivery(i, now))
	}
	return out
}

// delivery builds user i's Delivery. Callers hold e.mu.
func (e *Emulator) delivery(i int, now time.Time) Delivery {
	u := e.userAt(i)
	d := Delivery{UserID: u.id, ExternalID: nullable(u.externalID), AvailablePoints: u.availablePoints, Tags: map[string]TagState{}, Wallet: []WalletEntry{}}
	st := e.state[i]
	if st == nil {
		return d
	}
	for _, t := range st.tags {
		switch {
		case t.count > 0:
			d.Tags[t.name] = TagState{Count: t.count}
		case t.expires.After(now):
			d.Tags[t.name] = TagState{ExpiresAt: coreTime(t.expires)}
		}
	}
	for _, uo := range st.wallet {
		d.Wallet = append(d.Wallet, WalletEntry{
			UserOfferID: uo.id, OfferID: uo.offer.id, Name: uo.offer.text(defaultCulture).Name,
			AcquireDate: e.connectTime(uo.acquired), ExpirationDate: e.connectTimePtr(uo.expires), RedeemDate: e.connectTimePtr(uo.redeemed),
			IsRedeemable: uo.redeemable, PendingExtendedData: uo.pending, Quantity: uo.quantity,
		})
	}
	return d
}
