package emulator

import (
	"testing"
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
