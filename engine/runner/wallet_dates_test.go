package runner_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/sandbox"
)

// F3 keeps the offers a message can still use whichever way Connect
// writes datetimes, which no public source shows (sessionm.md §4, §8, A):
// Ana's wallet holds an offer expiring in 2099 and one expired in 2025.
func TestWalletReadsEachConnectDatetimeFormat(t *testing.T) {
	for format, expires := range map[string]string{
		"iso":            "2099-12-31T23:59:59Z",
		"dotnet":         "2099-12-31T23:59:59.0000000Z",
		"dotnet_no_zone": "2099-12-31T23:59:59.0000000",
	} {
		t.Run(format, func(t *testing.T) {
			sb, err := sandbox.New(sandbox.Options{RandSeed: 3, SessionM: sessionmemu.Options{ConnectDatetimeFormat: format}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(sb.Handler())
			t.Cleanup(srv.Close)
			h := start(t, setup{sandbox: srv.URL})
			a := h.wallet(ana)
			var reply struct {
				OfferCount int `json:"offer_count"`
				Offers     []struct {
					Name           string `json:"name"`
					ExpirationDate string `json:"expiration_date"`
				} `json:"offers"`
			}
			if a.status != 200 || json.Unmarshal([]byte(a.body), &reply) != nil {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if reply.OfferCount != 1 || len(reply.Offers) != 1 || reply.Offers[0].Name != "20% off winter coats" || reply.Offers[0].ExpirationDate != expires {
				t.Fatalf("offers %s, want only the winter coats offer, expiring %s", a.body, expires)
			}
		})
	}
}
