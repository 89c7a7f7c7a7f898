package emulator

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// payload decodes an ok Connect answer's payload.
func payload(t *testing.T, r resp) map[string]any {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	if m["status"] != "ok" {
		t.Fatalf("status %v: %s", m["status"], r.body)
	}
	return m["payload"].(map[string]any)
}

func offerNames(p map[string]any) []string {
	var names []string
	for _, o := range p["user_offers"].([]any) {
		names = append(names, o.(map[string]any)["name"].(string))
	}
	return names
}

// subset reports where got lacks or differs from a key of want (recursively).
func subset(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: got %v, want an object", path, got)
			return
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s.%s missing", path, k)
				continue
			}
			subset(t, path+"."+k, v, gv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: got %v, want %d items", path, got, len(w))
			return
		}
		for i := range w {
			subset(t, path+"["+string(rune('0'+i))+"]", w[i], g[i])
		}
	default:
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: got %v, want %v", path, got, want)
		}
	}
}

// examples/fixtures/wallet.json is the project's picture of Ana's wallet,
// redeemed offer included; with settings.include_redeemed the emulator
// must answer it (task; sessionm.md §4 C payload keys).
func TestWalletFixture(t *testing.T) {
	data, err := os.ReadFile("../../../examples/fixtures/wallet.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	e, _ := newEmu(t, Options{}, func(s *Seed) { s.Settings.IncludeRedeemed = true })
	r := connect(e, getOffers(offersBody(`,"culture":"en-US","skip":0,"take":1000,"include_pending_extended_data":false`)))
	got := r.json(t)
	subset(t, "wallet", want, got)
}

var offerFields = []string{"offer_id", "offer_group_id", "offer_type", "user_offer_id", "root_offer_id", "name", "description", "terms",
	"start_date", "end_date", "acquire_date", "expiration_date", "redemption_start_date", "redemption_end_date", "redeem_date",
	"is_redeemable", "media", "pos_discount_id", "quantity", "points_spent", "pending_extended_data", "custom_data", "user_offer_status", "store_id"}

func TestGetUserOffers(t *testing.T) {
	e, _ := newEmu(t, Options{})
	// sessionm.md §4: every payload key and every user_offers field of the table
	p := payload(t, connect(e, getOffers(offersBody(""))))
	for _, k := range []string{"user", "user_id", "user_offers", "total_records", "offer_groups", "offer_categories", "total_points", "available_points"} {
		if _, ok := p[k]; !ok {
			t.Errorf("payload lacks %s", k)
		}
	}
	first := p["user_offers"].([]any)[0].(map[string]any)
	for _, k := range offerFields {
		if _, ok := first[k]; !ok {
			t.Errorf("user_offers[0] lacks %s", k)
		}
	}
	if len(first) != len(offerFields) {
		t.Errorf("user_offers[0] has %d fields, want %d", len(first), len(offerFields))
	}
	// sessionm.md §4 (I; A logo rule): media carries the Logo
	media := first["media"].([]any)[0].(map[string]any)
	if media["category_name"] != "Logo" || media["content_type"] != 1.0 || !strings.HasPrefix(media["uri"].(string), "https://") {
		t.Errorf("media: %v", media)
	}
	// sessionm.md §4 (C/I): user is the Core user object (opted_in, activated first)
	if u := p["user"].(map[string]any); u["opted_in"] != true || u["activated"] != true || u["id"] != ana || u["tier_levels"] == nil {
		t.Errorf("user: %v", u)
	}
	// sessionm.md §4 (A): Connect datetimes are ISO-8601 UTC
	iso := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	if !iso.MatchString(first["acquire_date"].(string)) || !iso.MatchString(first["start_date"].(string)) {
		t.Errorf("dates: %v %v", first["acquire_date"], first["start_date"])
	}

	tests := []struct {
		name  string
		extra string
		user  string
		names []string
		total float64
	}{
		// sessionm.md §4 (C): culture defaults to en-US; C "in the issued
		// state": the redeemed gift wrapping is left out, the expired (never
		// redeemed) coffee offer stays
		{"default culture", ``, ana, []string{"20% off winter coats", "$5 off your next coffee"}, 2},
		// sessionm.md §4 (C field; A fallback): per-culture texts, then en-US
		{"es-ES", `,"culture":"es-ES"`, ana, []string{"20 % de descuento en abrigos de invierno", "$5 off your next coffee"}, 2},
		{"culture without case", `,"culture":"ES-es"`, ana, []string{"20 % de descuento en abrigos de invierno", "$5 off your next coffee"}, 2},
		{"unknown culture falls back to en-US", `,"culture":"fr-FR"`, ana, []string{"20% off winter coats", "$5 off your next coffee"}, 2},
		{"empty culture is en-US", `,"culture":""`, ana, []string{"20% off winter coats", "$5 off your next coffee"}, 2},
		// sessionm.md §4 (C): skip/take paging; total_records counts before paging
		{"skip 1 take 1", `,"skip":1,"take":1`, ana, []string{"$5 off your next coffee"}, 2},
		{"skip past the end", `,"skip":5`, ana, nil, 2},
		{"take 1", `,"take":1`, ana, []string{"20% off winter coats"}, 2},
		// sessionm.md §4 (A): take 0 means the default, more than 1000 is capped
		{"take 0", `,"take":0`, ana, []string{"20% off winter coats", "$5 off your next coffee"}, 2},
		{"take 5000", `,"take":5000`, ana, []string{"20% off winter coats", "$5 off your next coffee"}, 2},
		// sessionm.md §4 (C field, A meaning): pending user-offers only with include_pending_extended_data true
		{"pending hidden by default", ``, sam, nil, 0},
		{"pending hidden when false", `,"include_pending_extended_data":false`, sam, nil, 0},
		{"pending shown when true", `,"include_pending_extended_data":true`, sam, []string{"Birthday treat"}, 1},
		// sessionm.md §4: a user with an empty wallet
		{"empty wallet", ``, claire, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"retailer_id":"` + retailer + `","user_id":"` + tt.user + `"` + tt.extra + `}`
			p := payload(t, connect(e, getOffers(body)))
			if got := offerNames(p); !reflect.DeepEqual(got, tt.names) {
				t.Errorf("offers %q, want %q", got, tt.names)
			}
			if p["total_records"] != tt.total {
				t.Errorf("total_records %v, want %v", p["total_records"], tt.total)
			}
			if p["user_id"] != tt.user {
				t.Errorf("user_id %v", p["user_id"])
			}
		})
	}
}

func TestConnectErrors(t *testing.T) {
	tests := []struct {
		name   string
		q      req
		status int
		code   string
		has    string
	}{
		// sessionm.md §4 (C): retailer_id and user_id are required
		{"no retailer_id", getOffers(`{"user_id":"` + ana + `"}`), 422, "validation", `"request":{"retailer_id":"can't be blank"}`},
		{"no user_id", getOffers(`{"retailer_id":"` + retailer + `"}`), 422, "validation", `"user_id":"can't be blank"`},
		{"retailer_id a number", getOffers(`{"retailer_id":5,"user_id":"` + ana + `"}`), 422, "validation", `"retailer_id":"must be a string"`},
		// sessionm.md §4 (C: identifies the tenant; A: access_denied 403)
		{"wrong retailer_id", getOffers(`{"retailer_id":"00000000-1d2e-4f50-9a6b-7c8d9e0f1a2b","user_id":"` + ana + `"}`), 403, "access_denied", ""},
		{"retailer_id upper case", getOffers(`{"retailer_id":"8F9A2B3C-1D2E-4F50-9A6B-7C8D9E0F1A2B","user_id":"` + ana + `"}`), 200, "", ""},
		// sessionm.md §4 (C): user_id is the SessionM id; unknown → user_not_found
		{"unknown user", getOffers(`{"retailer_id":"` + retailer + `","user_id":"nobody"}`), 404, "user_not_found", ""},
		{"external id is not a user_id", getOffers(`{"retailer_id":"` + retailer + `","user_id":"u-1001"}`), 404, "user_not_found", ""},
		// sessionm.md §4 (C paging; A negative refused)
		{"negative skip", getOffers(offersBody(`,"skip":-1`)), 422, "validation", `"skip":"must be 0 or more"`},
		{"negative take", getOffers(offersBody(`,"take":-1`)), 422, "validation", `"take":"must be 0 or more"`},
		{"take a string", getOffers(offersBody(`,"take":"10"`)), 422, "validation", `"take":"must be an integer"`},
		{"culture a number", getOffers(offersBody(`,"culture":1`)), 422, "validation", `"culture":"must be a string"`},
		{"pending a string", getOffers(offersBody(`,"include_pending_extended_data":"yes"`)), 422, "validation", `"include_pending_extended_data":"must be true or false"`},
		{"bad JSON", getOffers(`{"retailer_id":`), 422, "argument_error", ""},
		// sessionm.md §1 (C/O): Connect Basic authorization
		{"no auth", req{path: offersBase + "/get_user_offers", body: offersBody(""), auth: "-"}, 401, "invalid_auth_token", ""},
		{"core credentials", req{path: offersBase + "/get_user_offers", body: offersBody(""), auth: coreAuth}, 401, "invalid_auth_token", ""},
		{"without the Basic scheme", req{path: offersBase + "/get_user_offers", body: offersBody(""), auth: strings.TrimPrefix(connectAuth, "Basic ")}, 401, "invalid_auth_token", ""},
		{"scheme without case", req{path: offersBase + "/get_user_offers", body: offersBody(""), auth: "BASIC " + strings.TrimPrefix(connectAuth, "Basic ")}, 200, "", ""},
		// contract: unknown route 404, wrong method 405 with Allow
		{"unknown endpoint", req{path: offersBase + "/acquisition/revoke", body: `{}`}, 404, "not_found", ""},
		{"outside the prefix", req{path: "/incentives/api/1.0/user_points/all_balances", body: `{}`}, 404, "not_found", ""},
		{"GET", req{method: "GET", path: offersBase + "/get_user_offers"}, 405, "method_not_allowed", ""},
		// sessionm.md §4 (O): acquisition/issue validation
		{"issue without offer_id", issue(offersBody("")), 422, "validation", `"offer_id":"can't be blank"`},
		{"issue quantity 0", issue(offersBody(`,"offer_id":"` + winter + `","quantity":0`)), 422, "validation", `"quantity":"must be between 1 and 100"`},
		{"issue quantity 101", issue(offersBody(`,"offer_id":"` + winter + `","quantity":101`)), 422, "validation", `"quantity"`},
		{"issue quantity string", issue(offersBody(`,"offer_id":"` + winter + `","quantity":"2"`)), 422, "validation", `"quantity":"must be an integer"`},
		// sessionm.md §4 (A): unknown offer not_found 404; outside its window not_available 422
		{"issue unknown offer", issue(offersBody(`,"offer_id":"99999999-0000-4000-8000-000000000000"`)), 404, "not_found", ""},
		{"issue ended offer", issue(offersBody(`,"offer_id":"` + coffee + `"`)), 422, "not_available", ""},
		{"issue unknown user", issue(`{"retailer_id":"` + retailer + `","user_id":"nobody","offer_id":"` + winter + `"}`), 404, "user_not_found", ""},
		{"issue wrong retailer", issue(`{"retailer_id":"x","user_id":"` + ana + `","offer_id":"` + winter + `"}`), 403, "access_denied", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{})
			r := connect(e, tt.q)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" && errorCode(t, r) != tt.code {
				t.Fatalf("code: %s", r.body)
			}
			if !strings.Contains(r.body, tt.has) {
				t.Fatalf("body %s lacks %s", r.body, tt.has)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST" {
				t.Fatalf("Allow %q", r.header.Get("Allow"))
			}
			if tt.status >= 400 {
				if d, _ := e.Deliveries(ana); len(d.(Delivery).Wallet) != 3 {
					t.Fatal("a refused call changed the wallet")
				}
			}
		})
	}
}

var v4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestIssue(t *testing.T) {
	e, c := newEmu(t, Options{})
	c.Advance(90 * time.Minute)
	// sessionm.md §4 (O): {"status":"ok","payload":{"status_list":[{user_id,user_offer_id,offer_id,root_offer_id,pending_extended_data,fail_reason}]}}
	p := payload(t, connect(e, issue(offersBody(`,"offer_id":"`+winter+`","quantity":1,"issue_exact_version":false`))))
	list := p["status_list"].([]any)
	st := list[0].(map[string]any)
	if len(list) != 1 || st["user_id"] != ana || st["offer_id"] != winter || st["root_offer_id"] != winter || st["pending_extended_data"] != false ||
		st["fail_reason"] != 0.0 || !v4.MatchString(st["user_offer_id"].(string)) {
		t.Fatalf("status_list: %v", list)
	}
	// the new user-offer is in the wallet: acquire_date now, expiry from the offer (redemption_end_date, A)
	p = payload(t, connect(e, getOffers(offersBody(""))))
	if p["total_records"] != 3.0 {
		t.Fatalf("total_records %v", p["total_records"])
	}
	uo := p["user_offers"].([]any)[2].(map[string]any)
	if uo["user_offer_id"] != st["user_offer_id"] || uo["acquire_date"] != "2026-11-29T11:30:00Z" || uo["expiration_date"] != "2099-12-31T23:59:59Z" ||
		uo["is_redeemable"] != true || uo["redeem_date"] != nil || uo["quantity"] != 1.0 {
		t.Fatalf("issued user-offer: %v", uo)
	}

	tests := []struct {
		name, extra  string
		n            int
		offer, root  string
		pending      bool
		expiresAfter time.Duration
	}{
		// sessionm.md §4 (I): quantity adds; A: one user-offer each
		{"quantity 3", `,"offer_id":"` + winter + `","quantity":3`, 3, winter, winter, false, 0},
		// sessionm.md §4 (C: offer_id changes on revision; A: without issue_exact_version the current version is issued)
		{"old version id gives the current", `,"offer_id":"` + doubleV1 + `"`, 1, doubleV2, doubleV1, false, 30 * 24 * time.Hour},
		{"exact old version", `,"offer_id":"` + doubleV1 + `","issue_exact_version":true`, 1, doubleV1, doubleV1, false, 30 * 24 * time.Hour},
		{"exact current version", `,"offer_id":"` + doubleV2 + `","issue_exact_version":true`, 1, doubleV2, doubleV1, false, 30 * 24 * time.Hour},
		// sessionm.md §4 (O: pending_extended_data on issue answers; A: from the offer definition)
		{"pending offer", `,"offer_id":"` + birthday + `"`, 1, birthday, birthday, true, 14 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c := newEmu(t, Options{})
			p := payload(t, connect(e, issue(offersBody(tt.extra))))
			list := p["status_list"].([]any)
			if len(list) != tt.n {
				t.Fatalf("%d entries, want %d", len(list), tt.n)
			}
			ids := map[string]bool{}
			for _, it := range list {
				st := it.(map[string]any)
				if st["offer_id"] != tt.offer || st["root_offer_id"] != tt.root || st["pending_extended_data"] != tt.pending {
					t.Fatalf("entry %v", st)
				}
				ids[st["user_offer_id"].(string)] = true
			}
			if len(ids) != tt.n {
				t.Fatal("user_offer_ids repeat")
			}
			all := payload(t, connect(e, getOffers(offersBody(`,"include_pending_extended_data":true`))))
			if all["total_records"] != float64(2+tt.n) {
				t.Fatalf("total_records %v", all["total_records"])
			}
			last := all["user_offers"].([]any)[1+tt.n].(map[string]any)
			if tt.expiresAfter > 0 && last["expiration_date"] != e.connectTime(c.Now().Add(tt.expiresAfter)) {
				t.Fatalf("expiration_date %v", last["expiration_date"])
			}
			if tt.pending {
				if hidden := payload(t, connect(e, getOffers(offersBody("")))); hidden["total_records"] != 2.0 {
					t.Fatalf("pending offer not hidden: %v", hidden["total_records"])
				}
			}
		})
	}
}

// sessionm.md §7 (A): a culture missing even en-US falls back to the first text.
func TestCultureFirstAvailable(t *testing.T) {
	const de = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
	e, _ := newEmu(t, Options{}, func(s *Seed) {
		s.Offers = append(s.Offers, SeedOffer{OfferID: de, Texts: []SeedOfferText{{Culture: "de-DE", Name: "Gratis Kaffee"}, {Culture: "fr-FR", Name: "Café offert"}}})
	})
	payload(t, connect(e, issue(offersBody(`,"offer_id":"`+de+`"`))))
	for culture, want := range map[string]string{"en-US": "Gratis Kaffee", "fr-FR": "Café offert", "it-IT": "Gratis Kaffee"} {
		p := payload(t, connect(e, getOffers(offersBody(`,"culture":"`+culture+`"`))))
		if names := offerNames(p); names[2] != want {
			t.Errorf("%s: %q, want %q", culture, names[2], want)
		}
	}
}

// sessionm.md §4 (C): get_user_offers returns the offers "in the issued
// state". A user-offer redeemed since the seed (redeem_date set) leaves the
// answer and total_records; an expired one stays; settings.include_redeemed
// brings redeemed ones back, with paging over the longer list.
func TestIncludeRedeemed(t *testing.T) {
	redeemedOn := &Time{t0.Add(-time.Hour)}
	expiredOn := &Time{t0.Add(-24 * time.Hour)}
	twoMore := func(s *Seed) {
		s.Wallets[ana] = append(s.Wallets[ana],
			SeedUserOffer{UserOfferID: "1b7a5f4e-3d2c-4b1a-8f9e-d8c7b6a5e4f3", OfferID: winter, AcquireDate: &Time{t0.Add(-48 * time.Hour)}, RedeemDate: redeemedOn},
			SeedUserOffer{UserOfferID: "2b7a5f4e-3d2c-4b1a-8f9e-d8c7b6a5e4f3", OfferID: winter, AcquireDate: &Time{t0.Add(-48 * time.Hour)}, ExpirationDate: expiredOn})
	}
	ids := func(p map[string]any) []string {
		var out []string
		for _, o := range p["user_offers"].([]any) {
			out = append(out, o.(map[string]any)["user_offer_id"].(string))
		}
		return out
	}
	const (
		winterUO = "7e4d2c1b-0a9f-4e8d-b7c6-a5b4c3d2e1f0"
		coffeeUO = "8f5e3d2c-1b0a-4f9e-8d7c-b6a5c4d3e2f1" // expired 2025-02-01, never redeemed
		wrapUO   = "9a6f4e3d-2c1b-4a0f-9e8d-c7b6a5d4e3f2" // redeemed
		newRedUO = "1b7a5f4e-3d2c-4b1a-8f9e-d8c7b6a5e4f3"
		newExpUO = "2b7a5f4e-3d2c-4b1a-8f9e-d8c7b6a5e4f3"
	)
	tests := []struct {
		name    string
		include bool
		extra   string
		want    []string
		total   float64
	}{
		{"issued only", false, ``, []string{winterUO, coffeeUO, newExpUO}, 3},
		{"issued only, paged", false, `,"skip":1,"take":1`, []string{coffeeUO}, 3},
		{"include_redeemed", true, ``, []string{winterUO, coffeeUO, wrapUO, newRedUO, newExpUO}, 5},
		{"include_redeemed, paged", true, `,"skip":2,"take":2`, []string{wrapUO, newRedUO}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{}, twoMore, func(s *Seed) { s.Settings.IncludeRedeemed = tt.include })
			p := payload(t, connect(e, getOffers(offersBody(tt.extra))))
			if got := ids(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("user_offer_ids %v, want %v", got, tt.want)
			}
			if p["total_records"] != tt.total {
				t.Errorf("total_records %v, want %v", p["total_records"], tt.total)
			}
		})
	}
	// the seed key reads from YAML and defaults to false
	if s := shippedSeed(t); s.Settings.IncludeRedeemed {
		t.Error("the shipped seed turns include_redeemed on")
	}
	s, err := ParseSeed("x.yaml", []byte(minimalSeed+"  include_redeemed: true\n"))
	if err != nil || !s.Settings.IncludeRedeemed {
		t.Fatalf("include_redeemed from YAML: %v %+v", err, s.Settings)
	}
}

// sessionm.md §4, §8 (A): the Connect datetime format is assumed, so it is
// a setting; every Connect datetime follows it, in UTC.
func TestConnectDatetimeFormat(t *testing.T) {
	tests := []struct {
		seed, opt           string
		expiration, acquire string
	}{
		{"", "", "2099-12-31T23:59:59Z", "2026-11-20T14:03:11Z"},
		{"iso", "", "2099-12-31T23:59:59Z", "2026-11-20T14:03:11Z"},
		{"dotnet", "", "2099-12-31T23:59:59.0000000Z", "2026-11-20T14:03:11.0000000Z"},
		{"dotnet_no_zone", "", "2099-12-31T23:59:59.0000000", "2026-11-20T14:03:11.0000000"},
		{"iso", "dotnet_no_zone", "2099-12-31T23:59:59.0000000", "2026-11-20T14:03:11.0000000"}, // Options win
	}
	for _, tt := range tests {
		e, _ := newEmu(t, Options{ConnectDatetimeFormat: tt.opt}, func(s *Seed) { s.Settings.ConnectDatetimeFormat = tt.seed })
		first := payload(t, connect(e, getOffers(offersBody(""))))["user_offers"].([]any)[0].(map[string]any)
		if first["expiration_date"] != tt.expiration || first["acquire_date"] != tt.acquire {
			t.Errorf("seed %q, options %q: expiration_date %v, acquire_date %v; want %s, %s", tt.seed, tt.opt, first["expiration_date"], first["acquire_date"], tt.expiration, tt.acquire)
		}
	}
	if _, err := New(shippedSeed(t), Options{ConnectDatetimeFormat: "rfc1123"}); err == nil || !strings.Contains(err.Error(), `"rfc1123"`) {
		t.Errorf("an unknown format: %v", err)
	}
}

// sessionm.md §4, §8: what include_pending_extended_data does is assumed,
// so settings.filter_pending_extended_data turns the filter off.
func TestFilterPendingExtendedData(t *testing.T) {
	off, on := false, true
	tests := []struct {
		name    string
		setting *bool
		extra   string
		want    []string
	}{
		{"default filters", nil, ``, nil},
		{"default, flag true", nil, `,"include_pending_extended_data":true`, []string{"Birthday treat"}},
		{"on filters", &on, `,"include_pending_extended_data":false`, nil},
		{"off returns pending offers", &off, ``, []string{"Birthday treat"}},
		{"off, flag false", &off, `,"include_pending_extended_data":false`, []string{"Birthday treat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, Options{}, func(s *Seed) { s.Settings.FilterPendingExtendedData = tt.setting })
			p := payload(t, connect(e, getOffers(`{"retailer_id":"`+retailer+`","user_id":"`+sam+`"`+tt.extra+`}`)))
			if got := offerNames(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("offers %q, want %q", got, tt.want)
			}
		})
	}
	// with the filter off the flag is still checked
	e, _ := newEmu(t, Options{}, func(s *Seed) { s.Settings.FilterPendingExtendedData = &off })
	if r := connect(e, getOffers(`{"retailer_id":"`+retailer+`","user_id":"`+sam+`","include_pending_extended_data":"yes"}`)); r.status != 422 {
		t.Errorf("a string flag with the filter off: %d %s", r.status, r.body)
	}
	s, err := ParseSeed("x.yaml", []byte(minimalSeed+"  filter_pending_extended_data: false\n"))
	if err != nil || s.Settings.FilterPendingExtendedData == nil || *s.Settings.FilterPendingExtendedData {
		t.Fatalf("from YAML: %v %+v", err, s.Settings)
	}
	if v := shippedSeed(t).Settings.FilterPendingExtendedData; v != nil && !*v {
		t.Error("the shipped seed turns the filter off")
	}
}
