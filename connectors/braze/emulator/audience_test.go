package emulator

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// braze.md §2: "audience ... only users in the audience get the message".
// The filters are those of Braze's Connected Audience page
// (braze-inc/braze-docs:_docs/_api/objects_filters/connected_audience.md).
func TestAudienceFiltersRecipients(t *testing.T) {
	ca := attrFilterJSON
	tests := []struct {
		name       string
		audience   string
		recipients string // "" sends to u-1001, u-1002 and u-1004
		want       []string
	}{
		// the reviewer's case: Sam is Bronze
		{"equals excludes", ca("loyalty_tier", "equals", `"Platinum"`), "", nil},
		{"equals includes", ca("loyalty_tier", "equals", `"Bronze"`), "", []string{"u-1002"}},
		{"not_equal", ca("loyalty_tier", "not_equal", `"Bronze"`), "", []string{"u-1001", "u-1004"}},
		{"AND", `{"AND":[` + ca("loyalty_tier", "equals", `"Silver"`) + `,` + ca("available_points", "greater_than", `1000`) + `]}`, "", []string{"u-1001"}},
		{"OR nested in AND", `{"AND":[{"OR":[` + ca("loyalty_tier", "equals", `"Gold"`) + `,` + ca("interests", "includes_value", `"coffee"`) + `]},` +
			ca("available_points", "less_than_or_equal_to", `5200`) + `]}`, "", []string{"u-1001", "u-1004"}},
		{"does_not_include_value", ca("interests", "does_not_include_value", `"coffee"`), "", nil},
		{"numbers", ca("available_points", "less_than", `1350`), "", []string{"u-1002"}},
		{"regex", ca("loyalty_tier", "matches_regex", `"^(Gold|Silver)$"`), "", []string{"u-1001", "u-1004"}},
		{"not regex", ca("loyalty_tier", "does_not_match_regex", `"^G"`), "", []string{"u-1001", "u-1002"}},
		// regex.md: regexes in segmentation and filters get the /gi
		// modifier; custom_attributes.md: MATCHES REGEX, DOES NOT MATCH
		// REGEX and DOES NOT EQUAL are "Not case sensitive", EQUALS is
		// "Case sensitive"
		{"regex ignores case", ca("loyalty_tier", "matches_regex", `"^gold$"`), "", []string{"u-1004"}},
		{"not regex ignores case", ca("loyalty_tier", "does_not_match_regex", `"^g"`), "", []string{"u-1001", "u-1002"}},
		{"not_equal ignores case", ca("loyalty_tier", "not_equal", `"bRONZE"`), "", []string{"u-1001", "u-1004"}},
		{"equals is case sensitive", ca("loyalty_tier", "equals", `"bronze"`), "", nil},
		// a user without the attribute matches does_not_exist, not exists
		{"exists", `{"custom_attribute":{"custom_attribute_name":"interests","comparison":"exists"}}`, "", []string{"u-1001"}},
		{"does_not_exist", `{"custom_attribute":{"custom_attribute_name":"interests","comparison":"does_not_exist"}}`,
			`{"external_user_id":"u-1001"},{"external_user_id":"u-1002"},{"external_user_id":"u-1004"},{"braze_id":"` + claireBrazeID + `"}`, []string{claireBrazeID, "u-1002", "u-1004"}},
		// custom_attributes.md, "Number attribute details": "'Exactly 0'
		// and 'Less Than' filters include users with NULL fields" (A:
		// the dashboard segment page, applied to API audiences)
		{"less_than includes users without the number", ca("spend", "less_than", `100`),
			`{"external_user_id":"u-1001","attributes":{"spend":50}},{"external_user_id":"u-1002"},{"external_user_id":"u-1004","attributes":{"spend":150}}`,
			[]string{"u-1001", "u-1002"}},
		{"less_than skips a value of another type", ca("spend", "less_than", `100`),
			`{"external_user_id":"u-1001","attributes":{"spend":"50"}}`, nil},
		{"equals 0 includes users without the number", ca("spend", "equals", `0`),
			`{"external_user_id":"u-1001","attributes":{"spend":0}},{"external_user_id":"u-1002"},{"external_user_id":"u-1004","attributes":{"spend":3}}`,
			[]string{"u-1001", "u-1002"}},
		{"equals another number skips users without it", ca("spend", "equals", `3`),
			`{"external_user_id":"u-1002"},{"external_user_id":"u-1004","attributes":{"spend":3}}`, []string{"u-1004"}},
		// the page names Less Than only; the dashboard has no "at most"
		{"less_than_or_equal_to skips users without the number", ca("spend", "less_than_or_equal_to", `100`),
			`{"external_user_id":"u-1001","attributes":{"spend":50}},{"external_user_id":"u-1002"}`, []string{"u-1001"}},
		// arrays: HAS A VALUE "has any value or is not empty", IS EMPTY "is
		// empty or does not exist"; strings: IS NOT BLANK "exists on a
		// user's profile and is not an empty string"
		{"exists skips an empty array", `{"custom_attribute":{"custom_attribute_name":"tags","comparison":"exists"}}`,
			`{"external_user_id":"u-1001","attributes":{"tags":[]}},{"external_user_id":"u-1002","attributes":{"tags":["a"]}},{"external_user_id":"u-1004"}`,
			[]string{"u-1002"}},
		{"does_not_exist takes an empty array", `{"custom_attribute":{"custom_attribute_name":"tags","comparison":"does_not_exist"}}`,
			`{"external_user_id":"u-1001","attributes":{"tags":[]}},{"external_user_id":"u-1002","attributes":{"tags":["a"]}},{"external_user_id":"u-1004"}`,
			[]string{"u-1001", "u-1004"}},
		{"exists skips an empty string", `{"custom_attribute":{"custom_attribute_name":"nick","comparison":"exists"}}`,
			`{"external_user_id":"u-1001","attributes":{"nick":""}},{"external_user_id":"u-1002","attributes":{"nick":"x"}},{"external_user_id":"u-1004","attributes":{"nick":0}}`,
			[]string{"u-1002", "u-1004"}},
		{"does_not_exist takes an empty string", `{"custom_attribute":{"custom_attribute_name":"nick","comparison":"does_not_exist"}}`,
			`{"external_user_id":"u-1001","attributes":{"nick":""}},{"external_user_id":"u-1002","attributes":{"nick":"x"}},{"external_user_id":"u-1004"}`,
			[]string{"u-1001", "u-1004"}},
		// a standard profile field is not a custom attribute
		{"standard field", ca("first_name", "equals", `"Ana"`), "", nil},
		// email_subscribe: Ana and Seán opted_in, Sam subscribed, Claire unset
		// (counted as subscribed, A)
		{"email subscription", `{"email_subscription_status":{"comparison":"is","value":"opted_in"}}`, "", []string{"u-1001", "u-1004"}},
		{"email subscription default", `{"email_subscription_status":{"comparison":"is_not","value":"opted_in"}}`,
			`{"external_user_id":"u-1001"},{"external_user_id":"u-1002"},{"external_user_id":"u-1004"},{"braze_id":"` + claireBrazeID + `"}`, []string{claireBrazeID, "u-1002"}},
		{"push subscription", `{"push_subscription_status":{"comparison":"is","value":"subscribed"}}`, "", []string{"u-1001", "u-1002", "u-1004"}},
		// the recipient's attributes apply before the send (braze.md §2), so
		// before the audience is tested; the clock is 2026-11-20 14:03 UTC
		{"time set by the request", ca("last_purchase", "less_than_x_days_ago", `2`),
			`{"external_user_id":"u-1001","attributes":{"last_purchase":"2026-11-19T10:00:00Z"}},{"external_user_id":"u-1002","attributes":{"last_purchase":"2026-11-10T10:00:00Z"}}`,
			[]string{"u-1001"}},
		{"time after", ca("last_purchase", "after", `"2026-11-15T00:00:00Z"`),
			`{"external_user_id":"u-1001","attributes":{"last_purchase":"2026-11-19"}},{"external_user_id":"u-1002","attributes":{"last_purchase":"2026-11-10"}}`,
			[]string{"u-1001"}},
		{"time in the future", ca("renewal", "greater_than_x_days_in_the_future", `30`),
			`{"external_user_id":"u-1001","attributes":{"renewal":"2027-02-01T00:00:00Z"}},{"external_user_id":"u-1002","attributes":{"renewal":"2026-12-01T00:00:00Z"}}`,
			[]string{"u-1001"}},
		// day counts past time.Duration's ±292 years: 200,000 days is 547
		// years, and 9999-12-31 is some 2.91 million days away
		{"less than many days in the future", ca("renewal", "less_than_x_days_in_the_future", `200000`),
			`{"external_user_id":"u-1001","attributes":{"renewal":"2026-11-30T00:00:00Z"}},{"external_user_id":"u-1002","attributes":{"renewal":"9999-12-31T00:00:00Z"}}`,
			[]string{"u-1001"}},
		{"more than many days in the future", ca("renewal", "greater_than_x_days_in_the_future", `200000`),
			`{"external_user_id":"u-1001","attributes":{"renewal":"2026-11-30T00:00:00Z"}},{"external_user_id":"u-1002","attributes":{"renewal":"9999-12-31T00:00:00Z"}}`,
			[]string{"u-1002"}},
		{"more than 2.9 million days in the future", ca("renewal", "greater_than_x_days_in_the_future", `2900000`),
			`{"external_user_id":"u-1002","attributes":{"renewal":"9999-12-31T00:00:00Z"}}`, []string{"u-1002"}},
		{"more than 3 million days in the future", ca("renewal", "greater_than_x_days_in_the_future", `3000000`),
			`{"external_user_id":"u-1002","attributes":{"renewal":"9999-12-31T00:00:00Z"}}`, nil},
		{"less than 1e300 days in the future", ca("renewal", "less_than_x_days_in_the_future", `1e300`),
			`{"external_user_id":"u-1001","attributes":{"renewal":"2026-11-30T00:00:00Z"}},{"external_user_id":"u-1002","attributes":{"renewal":"9999-12-31T00:00:00Z"}}`,
			[]string{"u-1001", "u-1002"}},
		{"less than many days ago", ca("joined", "less_than_x_days_ago", `200000`),
			`{"external_user_id":"u-1001","attributes":{"joined":"2020-01-01"}},{"external_user_id":"u-1002","attributes":{"joined":"0001-01-01"}}`,
			[]string{"u-1001"}},
		{"more than many days ago", ca("joined", "greater_than_x_days_ago", `200000`),
			`{"external_user_id":"u-1001","attributes":{"joined":"2020-01-01"}},{"external_user_id":"u-1002","attributes":{"joined":"0001-01-01"}}`,
			[]string{"u-1002"}},
		{"more than 1e300 days ago", ca("joined", "greater_than_x_days_ago", `1e300`),
			`{"external_user_id":"u-1002","attributes":{"joined":"0001-01-01"}}`, nil},
		{"fractional days", ca("last_purchase", "less_than_x_days_ago", `0.25`),
			`{"external_user_id":"u-1001","attributes":{"last_purchase":"2026-11-20T10:00:00Z"}},{"external_user_id":"u-1002","attributes":{"last_purchase":"2026-11-20T07:00:00Z"}}`,
			[]string{"u-1001"}},
		{"boolean", ca("vip", "does_not_equal", `true`),
			`{"external_user_id":"u-1001","attributes":{"vip":true}},{"external_user_id":"u-1002","attributes":{"vip":false}}`,
			[]string{"u-1002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, nil, Options{})
			recips := tt.recipients
			if recips == "" {
				recips = `{"external_user_id":"u-1001"},{"external_user_id":"u-1002"},{"external_user_id":"u-1004"}`
			}
			r := post(t, e.Handler(), "/campaigns/trigger/send",
				`{"campaign_id":"`+winterCampaign+`","audience":`+tt.audience+`,"recipients":[`+recips+`]}`)
			// the request is accepted; those outside the audience are not sent
			// to, as with a segment (A: braze.md §2 does not say the answer)
			if r.status != http.StatusCreated || r.message() != "success" {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			var got []string
			for _, d := range e.AllDeliveries().([]Delivery) {
				id := d.ExternalID
				if id == "" {
					id = d.BrazeID
				}
				switch {
				case len(d.Messages) == 1:
					got = append(got, id)
				case len(d.Messages) > 1:
					t.Errorf("%s got %d messages", id, len(d.Messages))
				case len(d.NotSent) != 1 || !strings.Contains(d.NotSent[0].Reason, "audience"):
					t.Errorf("%s got nothing without a not_sent record naming the audience: %+v", id, d.NotSent)
				}
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("delivered to %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAudienceBroadcast(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	// the Spring promo segment is Ana, Claire and Seán; the audience narrows
	// it to Seán
	r := post(t, e.Handler(), "/campaigns/trigger/send", `{"campaign_id":"`+springCampaign+`","broadcast":true,
		"audience":{"custom_attribute":{"custom_attribute_name":"loyalty_tier","comparison":"equals","value":"Gold"}}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	var got []string
	for _, d := range e.AllDeliveries().([]Delivery) {
		if len(d.Messages) > 0 {
			got = append(got, d.ExternalID)
		}
	}
	if fmt.Sprint(got) != "[u-1004]" {
		t.Errorf("broadcast reached %v, want [u-1004]", got)
	}
}

func TestAudienceGeneratedUsers(t *testing.T) {
	// a broadcast with an audience writes only to the generated users it
	// reaches: the others stay unmaterialized
	e, _ := newEmu(t, func(s *Seed) { s.Settings.GeneratedUsers = 1000 }, Options{})
	r := post(t, e.Handler(), "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","broadcast":true,
		"audience":{"custom_attribute":{"custom_attribute_name":"sessionm_user_id","comparison":"matches_regex","value":"^0000000[12]-"}}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	var got []string
	for _, d := range e.AllDeliveries().([]Delivery) {
		got = append(got, d.ExternalID)
	}
	if len(got) != 2 || got[0] != "load-000001" || got[1] != "load-000002" {
		t.Errorf("%d deliveries (%.60v...), want load-000001 and load-000002 only", len(got), got)
	}
	if n := len(e.st.users); n != 4+2 {
		t.Errorf("%d profiles after the broadcast, want the 4 seeded and 2 generated", n)
	}
}

// nestedAudience is depth ANDs, one inside the other, around a filter
// that matches Seán (Gold).
func nestedAudience(depth int) string {
	return strings.Repeat(`{"AND":[`, depth) + attrFilterJSON("loyalty_tier", "equals", `"Gold"`) + strings.Repeat(`]}`, depth)
}

// AND and OR nest at most maxAudienceDepth levels: a deeper audience is
// refused with a 400 naming the limit.
func TestAudienceDepthLimit(t *testing.T) {
	tests := []struct {
		name     string
		depth    int
		status   int
		contains string // in the 400's errors
	}{
		{"at the limit", 32, http.StatusCreated, ""},
		{"one past the limit", 33, http.StatusBadRequest, "nest more than 32 levels"},
		// 4,990 levels in about 50 KB took seconds and half a gigabyte
		// when each level was decoded again from its text
		{"thousands of levels", 4990, http.StatusBadRequest, "nest more than 32 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, nil, Options{})
			r := post(t, e.Handler(), "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","audience":`+nestedAudience(tt.depth)+
				`,"recipients":[{"external_user_id":"u-1001"},{"external_user_id":"u-1004"}]}`)
			if r.status != tt.status || !strings.Contains(r.raw, tt.contains) {
				t.Fatalf("%d %.300s, want %d with %q", r.status, r.raw, tt.status, tt.contains)
			}
			if tt.status != http.StatusCreated {
				return
			}
			var got []string
			for _, d := range e.AllDeliveries().([]Delivery) {
				if len(d.Messages) == 1 {
					got = append(got, d.ExternalID)
				}
			}
			if fmt.Sprint(got) != "[u-1004]" {
				t.Errorf("delivered to %v, want [u-1004]", got)
			}
		})
	}
}

// Reading an audience allocates in proportion to its size, whatever its
// shape: each level is decoded once.
func TestAudienceReadCost(t *testing.T) {
	leaf := attrFilterJSON("loyalty_tier", "equals", `"Gold"`)
	wide := `{"OR":[` + strings.TrimSuffix(strings.Repeat(leaf+",", 50_000/len(leaf)), ",") + `]}`
	tests := []struct {
		name     string
		audience string
		refused  bool
		limit    uint64 // bytes allocated at most; 0: 200 per byte of text
	}{
		{"deep", nestedAudience(4990), true, 0},
		{"as many filters as allowed", `{"OR":[` + strings.TrimSuffix(strings.Repeat(leaf+",", maxAudienceFilters), ",") + `]}`, false, 0},
		{"wide", wide, true, 0},
		{"deep and wide", strings.Repeat(`{"AND":[`+leaf+`,`, 30) + wide + strings.Repeat(`]}`, 30), true, 0},
		// \w{1000} takes about 110 KB to compile: a body full of such
		// regexes stops at the filter limit, at some 11 MB
		{"costly regexes", `{"OR":[` + strings.TrimSuffix(strings.Repeat(attrFilterJSON("loyalty_tier", "matches_regex", `"\\w{1000}"`)+",", 400), ",") + `]}`, true, 16 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := json.RawMessage(tt.audience)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, msg := parseAudience(raw, "audience")
			runtime.ReadMemStats(&after)
			if (msg != "") != tt.refused {
				t.Errorf("refused: %.200q, want refused %v", msg, tt.refused)
			}
			// a decoded JSON tree takes some tens of bytes per byte of text
			// (56 for the deep one); decoding each level again took 40,000
			limit := cmp.Or(tt.limit, uint64(200*len(raw)))
			if n := after.TotalAlloc - before.TotalAlloc; n > limit {
				t.Errorf("reading %d bytes allocated %d bytes, want at most %d", len(raw), n, limit)
			}
		})
	}
}
