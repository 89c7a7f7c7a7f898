package emulator

import (
	"strings"
	"testing"
	"time"
)

// The event sender's helpers change the same state the API serves: an
// offer issued for an event is in get_user_offers, awarded points are in
// the user's balance, and Reset undoes both.
func TestEventHelpers(t *testing.T) {
	e, _ := newEmu(t, Options{})
	if e.RetailerID() != retailer {
		t.Fatalf("retailer %q", e.RetailerID())
	}
	u, ok := e.EventUser("u-1001")
	if !ok || u.ID != ana || u.Email != "ana.garcia@example.com" || u.Culture != "es-ES" {
		t.Fatalf("event user %+v", u)
	}
	if _, ok := e.EventUser("nobody"); ok {
		t.Fatal("an unknown user was found")
	}

	u, item, err := e.IssueForEvent("ana.garcia@example.com", doubleV1)
	if err != nil {
		t.Fatal(err)
	}
	offer := item.(userOfferJSON)
	if u.ID != ana || offer.OfferID != doubleV2 || offer.UserOfferID == "" || offer.AcquireDate != "2026-11-29T10:00:00Z" {
		t.Fatalf("issued %+v to %+v; want the current version issued now", offer, u)
	}
	wallet := connect(e, getOffers(offersBody(`,"include_pending_extended_data":true`))).json(t)["payload"].(map[string]any)["user_offers"].([]any)
	found := false
	for _, uo := range wallet {
		found = found || uo.(map[string]any)["user_offer_id"] == offer.UserOfferID
	}
	if !found {
		t.Fatal("the issued offer is not in get_user_offers")
	}
	if _, _, err := e.IssueForEvent(ana, "no-such-offer"); err == nil {
		t.Fatal("an unknown offer was issued")
	}
	if _, _, err := e.IssueForEvent("nobody", doubleV1); err == nil {
		t.Fatal("an offer was issued to an unknown user")
	}

	_, balance, err := e.AwardPoints(ana, 250)
	if err != nil || balance != 1600 {
		t.Fatalf("balance %d, %v; want 1350+250", balance, err)
	}
	d, _ := e.Deliveries(ana)
	if d.(Delivery).AvailablePoints != 1600 {
		t.Fatalf("deliveries show %d points", d.(Delivery).AvailablePoints)
	}
	if _, _, err := e.AwardPoints(ana, 0); err == nil {
		t.Fatal("zero points were awarded")
	}
	e.Reset()
	d, _ = e.Deliveries(ana)
	if d.(Delivery).AvailablePoints != 1350 || len(d.(Delivery).Wallet) != 3 {
		t.Fatalf("after reset: %+v", d)
	}
}

// CheckOffer answers what acquisition/issue and IssueForEvent would do
// with an offer_id now (sessionm.md §4, A: any version or the root names
// the current version; outside start_date..end_date is not available),
// without issuing anything.
func TestCheckOffer(t *testing.T) {
	const future = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
	e, c := newEmu(t, Options{}, func(s *Seed) {
		start := Time{t0.Add(time.Hour)}
		s.Offers = append(s.Offers, SeedOffer{OfferID: future, StartDate: &start, Texts: []SeedOfferText{{Culture: "en-US", Name: "Soon"}}})
	})
	tests := []struct {
		name, offer string
		want        string // "" for nil
	}{
		{"current offer", winter, ""},
		{"old version", doubleV1, ""},
		{"current version", doubleV2, ""},
		{"pending offer", birthday, ""},
		{"unknown", "no-such-offer", `no offer with offer_id "no-such-offer"`},
		{"empty", "", `no offer with offer_id ""`},
		{"ended", coffee, `offer "` + coffee + `" is outside its start_date/end_date window: it ended at 2025-02-01T00:00:00Z`},
		{"not started", future, `offer "` + future + `" is outside its start_date/end_date window: it starts at 2026-11-29T11:00:00Z`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.CheckOffer(tt.offer)
			if (err == nil) != (tt.want == "") || (err != nil && err.Error() != tt.want) {
				t.Fatalf("CheckOffer(%q) = %v, want %q", tt.offer, err, tt.want)
			}
			// IssueForEvent agrees, and acquisition/issue answers the same words
			_, _, ierr := e.IssueForEvent(sam, tt.offer)
			if (ierr == nil) != (err == nil) || (err != nil && ierr.Error() != err.Error()) {
				t.Fatalf("IssueForEvent: %v; CheckOffer: %v", ierr, err)
			}
			r := connect(e, issue(`{"retailer_id":"`+retailer+`","user_id":"`+claire+`","offer_id":"`+tt.offer+`"}`))
			if tt.want != "" && tt.offer != "" && !strings.Contains(r.body, strings.ReplaceAll(tt.want, `"`, `\"`)) {
				t.Fatalf("acquisition/issue: %s", r.body)
			}
		})
	}
	// CheckOffer changes nothing
	before, _ := e.Deliveries(ana)
	_ = e.CheckOffer(winter)
	if after, _ := e.Deliveries(ana); len(after.(Delivery).Wallet) != len(before.(Delivery).Wallet) {
		t.Fatal("CheckOffer issued an offer")
	}
	// the clock decides: an hour later the future offer is available
	c.Advance(time.Hour)
	if err := e.CheckOffer(future); err != nil {
		t.Fatalf("after its start: %v", err)
	}
}
