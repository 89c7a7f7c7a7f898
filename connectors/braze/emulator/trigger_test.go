package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func recipients(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"external_user_id":"u-%d"}`, 5000+i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// audienceBody is a campaign trigger to u-1001 with an audience.
func audienceBody(audience string) string {
	return `{"campaign_id":"` + winterCampaign + `","audience":` + audience + `,"recipients":[{"external_user_id":"u-1001"}]}`
}

func attrFilterJSON(name, cmp, value string) string {
	return `{"custom_attribute":{"custom_attribute_name":"` + name + `","comparison":"` + cmp + `","value":` + value + `}}`
}

func TestTriggerValidation(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("x", 50*1024) + `"}`
	camp := "/campaigns/trigger/send"
	canv := "/canvas/trigger/send"
	tests := []struct {
		name, path, body string
		status           int
		message, errs    string
	}{
		// braze.md §2: at most 50 recipients
		{"51 recipients", camp, `{"campaign_id":"` + winterCampaign + `","recipients":` + recipients(51) + `}`,
			400, "The max number of external_ids and aliases per request was exceeded", "51 recipients"},
		{"50 recipients pass", camp, `{"campaign_id":"` + winterCampaign + `","recipients":` + recipients(50) + `}`, 201, "success", ""},
		{"51 canvas recipients", canv, `{"canvas_id":"` + pointsCanvas + `","recipients":` + recipients(51) + `}`,
			400, "The max number of external_ids and aliases per request was exceeded", ""},
		// braze.md §2 recipient object: exactly one identifier
		{"two identifiers", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001","braze_id":"x"}]}`,
			400, "Bad Request", "recipients[0]: give exactly one of"},
		{"no identifier", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"trigger_properties":{}}]}`,
			400, "Bad Request", "recipients[0]: give exactly one of"},
		{"alias and email", canv, `{"canvas_id":"` + pointsCanvas + `","recipients":[{"user_alias":{"alias_name":"a","alias_label":"b"},"email":"a@b.c","prioritization":["identified"]}]}`,
			400, "Bad Request", "exactly one"},
		{"alias without label", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"user_alias":{"alias_name":"a"}}]}`,
			400, "Bad Request", "alias_label"},
		{"empty external id", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":""}]}`,
			400, "Bad Request", "is empty"},
		// braze.md §2: email needs prioritization
		{"email without prioritization", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"email":"sam.lee@example.com"}]}`,
			400, "Bad Request", "'prioritization' is required"},
		{"email with prioritization", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"email":"sam.lee@example.com","prioritization":["identified","most_recently_updated"]}]}`,
			201, "success", ""},
		// braze.md §2: broadcast true with recipients / attachments
		{"broadcast with recipients", camp, `{"campaign_id":"` + winterCampaign + `","broadcast":true,"recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Bad Request", "'broadcast' cannot be true when 'recipients'"},
		{"broadcast with recipients canvas", canv, `{"canvas_id":"` + pointsCanvas + `","broadcast":true,"recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Bad Request", "'broadcast' cannot be true"},
		{"broadcast with attachments", camp, `{"campaign_id":"` + winterCampaign + `","broadcast":true,"attachments":[{"file_name":"a.pdf","url":"https://example.com/a.pdf"}]}`,
			400, "Bad Request", "'attachments'"},
		{"bad attachment", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001"}],"attachments":[{"file_name":"a.pdf"}]}`,
			400, "Bad Request", "attachments[0]"},
		// braze.md §2: send_to_existing_only false needs attributes, not with aliases
		{"existing false without attributes", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-9","send_to_existing_only":false}]}`,
			400, "Bad Request", "needs 'attributes'"},
		{"existing false with alias", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"user_alias":{"alias_name":"a","alias_label":"b"},"send_to_existing_only":false,"attributes":{"x":1}}]}`,
			400, "Bad Request", "cannot be false for a user alias"},
		// braze.md §2: 50 KB on trigger_properties / context, top level and per recipient
		{"top trigger_properties over 50 KB", camp, `{"campaign_id":"` + winterCampaign + `","trigger_properties":` + big + `,"recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Bad Request", "'trigger_properties' is 51211 bytes"},
		{"recipient trigger_properties over 50 KB", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001","trigger_properties":` + big + `}]}`,
			400, "Bad Request", "recipients[0]: 'trigger_properties'"},
		{"context over 50 KB", canv, `{"canvas_id":"` + pointsCanvas + `","context":` + big + `,"recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Bad Request", "'context'"},
		{"recipient canvas_entry_properties over 50 KB", canv, `{"canvas_id":"` + pointsCanvas + `","recipients":[{"external_user_id":"u-1001","canvas_entry_properties":` + big + `}]}`,
			400, "Bad Request", "'canvas_entry_properties'"},
		{"whitespace does not count", camp, `{"campaign_id":"` + winterCampaign + `","trigger_properties":{"a":   ` + strings.Repeat(" ", 60*1024) + `1},"recipients":[{"external_user_id":"u-1001"}]}`,
			201, "success", ""},
		// braze.md §1 (400 Invalid Campaign ID)
		{"unknown campaign", camp, `{"campaign_id":"nope","recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Invalid Campaign ID", "nope"},
		{"missing campaign id", camp, `{"recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Invalid Campaign ID", "'campaign_id' is required"},
		{"unknown canvas", canv, `{"canvas_id":"nope","recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Invalid Canvas ID", "nope"},
		{"campaign id given to canvas", canv, `{"canvas_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001"}]}`,
			400, "Invalid Canvas ID", ""},
		// braze.md §1 (400 No Recipients), §2: broadcast must be true without recipients
		{"no recipients", camp, `{"campaign_id":"` + winterCampaign + `"}`, 400, "No Recipients", "broadcast"},
		{"empty recipients", canv, `{"canvas_id":"` + pointsCanvas + `","recipients":[]}`, 400, "No Recipients", ""},
		{"broadcast false", camp, `{"campaign_id":"` + winterCampaign + `","broadcast":false}`, 400, "No Recipients", ""},
		// wrong kinds of values (braze.md §1: 400 bad syntax)
		{"broadcast as string", camp, `{"campaign_id":"` + winterCampaign + `","broadcast":"true"}`, 400, "Bad Request", "'broadcast' must be true or false"},
		{"recipients as object", camp, `{"campaign_id":"` + winterCampaign + `","recipients":{"external_user_id":"u-1001"}}`, 400, "Bad Request", "'recipients' must be an array"},
		{"recipient as string", camp, `{"campaign_id":"` + winterCampaign + `","recipients":["u-1001"]}`, 400, "Bad Request", "must be an object"},
		{"campaign id as number", camp, `{"campaign_id":12,"recipients":[{"external_user_id":"u-1001"}]}`, 400, "Invalid Campaign ID", "must be a string"},
		{"trigger_properties as array", camp, `{"campaign_id":"` + winterCampaign + `","trigger_properties":[1],"recipients":[{"external_user_id":"u-1001"}]}`, 400, "Bad Request", "must be an object"},
		{"send_to_existing_only as string", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001","send_to_existing_only":"no"}]}`, 400, "Bad Request", "send_to_existing_only"},
		{"audience not an object", canv, `{"canvas_id":"` + pointsCanvas + `","broadcast":true,"audience":"x"}`, 400, "Bad Request", "'audience' must be an object"},
		// braze.md §2 audience: filters the emulator cannot evaluate are
		// refused, not ignored (connected_audience.md lists them)
		{"audience last_used_app", camp, audienceBody(`{"last_used_app":{"comparison":"after","value":"2026-01-01T00:00:00Z"}}`),
			400, "Bad Request", "cannot evaluate last_used_app"},
		{"audience unknown filter", camp, audienceBody(`{"AND":[{"segment":"x"}]}`), 400, "Bad Request", `audience.AND[0].segment: unknown filter`},
		{"audience two filters in one object", camp, audienceBody(`{"AND":[],"OR":[]}`), 400, "Bad Request", "exactly one filter"},
		{"audience empty AND", canv, `{"canvas_id":"` + pointsCanvas + `","broadcast":true,"audience":{"AND":[]}}`, 400, "Bad Request", "audience.AND is empty"},
		{"audience OR not an array", camp, audienceBody(`{"OR":{}}`), 400, "Bad Request", "audience.OR must be an array"},
		{"audience item not an object", camp, audienceBody(`{"OR":["x"]}`), 400, "Bad Request", "audience.OR[0] must be an object"},
		{"audience unknown comparison", camp, audienceBody(attrFilterJSON("loyalty_tier", "is", `"Gold"`)), 400, "Bad Request", `unknown comparison \"is\"`},
		{"audience misspelt field", camp, audienceBody(`{"custom_attribute":{"custom_attribute_name":"a","comparision":"exists"}}`),
			400, "Bad Request", `unknown field \"comparision\"`},
		{"audience no name", camp, audienceBody(`{"custom_attribute":{"comparison":"exists"}}`), 400, "Bad Request", "custom_attribute_name"},
		{"audience number comparison with a string", camp, audienceBody(attrFilterJSON("points", "greater_than", `"10"`)), 400, "Bad Request", "needs a 'value' that is a number"},
		{"audience not_equal on a boolean", camp, audienceBody(attrFilterJSON("vip", "not_equal", `true`)), 400, "Bad Request", "booleans use does_not_equal"},
		{"audience after without a date", camp, audienceBody(attrFilterJSON("t", "before", `"last week"`)), 400, "Bad Request", "ISO 8601"},
		{"audience number out of range", camp, audienceBody(attrFilterJSON("points", "greater_than", `1e400`)), 400, "Bad Request", "'value' holds a number out of range"},
		{"audience negative days", camp, audienceBody(attrFilterJSON("t", "less_than_x_days_ago", `-1`)), 400, "Bad Request", "0 or more"},
		{"audience regex Go cannot run", camp, audienceBody(attrFilterJSON("t", "matches_regex", `"^(?=a)"`)), 400, "Bad Request", "RE2"},
		{"audience subscription value", camp, audienceBody(`{"email_subscription_status":{"comparison":"is","value":"yes"}}`), 400, "Bad Request", "opted_in, subscribed or unsubscribed"},
		{"several recipient errors", camp, `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001"},{"email":"a@b.c"},{}]}`,
			400, "Bad Request", "recipients[2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, nil, Options{})
			r := post(t, e.Handler(), tt.path, tt.body)
			if r.status != tt.status || r.message() != tt.message {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.message(), tt.status, tt.message, r.raw)
			}
			if tt.errs != "" && !strings.Contains(r.errorsText(), tt.errs) {
				t.Errorf("errors %s, want %q in them", r.errorsText(), tt.errs)
			}
			if tt.status >= 400 {
				if _, ok := r.body["dispatch_id"]; ok {
					t.Errorf("a failed call has a dispatch_id: %s", r.raw)
				}
				if d := e.AllDeliveries().([]Delivery); len(d) != 0 {
					t.Errorf("a failed call changed state: %+v", d)
				}
			}
		})
	}
}

func TestCampaignDelivery(t *testing.T) {
	e, clk := newEmu(t, nil, Options{})
	h := e.Handler()
	// braze.md §2: top-level trigger_properties apply to everyone, a
	// recipient's keys win; the offer-issued pipeline's body.
	r := post(t, h, "/campaigns/trigger/send", `{
		"campaign_id": "`+winterCampaign+`",
		"send_id": "send-1",
		"trigger_properties": {"campaign_name": "Winter double points", "offer_title": "top"},
		"recipients": [
			{"external_user_id": "u-1001", "trigger_properties": {"offer_title": "20% off winter coats", "available_points": "1350"}},
			{"external_user_id": "u-1002"},
			{"external_user_id": "u-1001", "trigger_properties": {"offer_title": "second copy"}},
			{"external_user_id": "u-9999", "trigger_properties": {"offer_title": "nobody"}}
		]}`)
	// braze.md §1: campaign success status is unconfirmed; 201 (A)
	if r.status != http.StatusCreated || r.message() != "success" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	dispatch, _ := r.body["dispatch_id"].(string)
	if dispatch == "" {
		t.Fatalf("no dispatch_id: %s", r.raw)
	}
	if _, ok := r.body["send_id"]; ok {
		t.Errorf("send_id echoed for a send that is not a broadcast: %s", r.raw)
	}

	ana := delivery(t, e, "u-1001")
	msgs := list(ana, "messages")
	// braze.md §2: duplicate recipients are deduped, one message
	if len(msgs) != 1 {
		t.Fatalf("u-1001 got %d messages, want 1: %v", len(msgs), msgs)
	}
	m := obj(msgs[0])
	props := obj(m["properties"])
	if m["kind"] != "campaign" || m["campaign_id"] != winterCampaign || m["dispatch_id"] != dispatch || m["send_id"] != "send-1" ||
		m["name"] != "Winter offer issued" || m["at"] != clk.Now().Format("2006-01-02T15:04:05Z") {
		t.Errorf("message %v", m)
	}
	if props["offer_title"] != "20% off winter coats" || props["campaign_name"] != "Winter double points" || props["available_points"] != "1350" {
		t.Errorf("properties %v: want the recipient's keys over the top level", props)
	}
	sam := obj(list(delivery(t, e, "u-1002"), "messages")[0])
	if obj(sam["properties"])["offer_title"] != "top" {
		t.Errorf("u-1002 properties %v, want the top level", sam["properties"])
	}
	// send_to_existing_only defaults to true: the unknown user gets nothing,
	// no error, and a not_sent record.
	if _, ok := r.body["errors"]; ok {
		t.Errorf("errors for an unknown user: %s", r.raw)
	}
	nobody := delivery(t, e, "u-9999")
	ns := list(nobody, "not_sent")
	if nobody["exists"] != false || len(ns) != 1 || !strings.Contains(obj(ns[0])["reason"].(string), "send_to_existing_only") {
		t.Errorf("u-9999: %v", nobody)
	}
}

func TestRecipientAttributesAndCreation(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	// braze.md §2: send_to_existing_only false + attributes creates the user
	// before the send; attributes of an existing user apply before the send.
	r := post(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","recipients":[
		{"external_user_id":"u-2001","send_to_existing_only":false,"attributes":{"first_name":"Nia","loyalty_tier":"Bronze"}},
		{"external_user_id":"u-1001","attributes":{"available_points":{"inc":250},"country":"Spain"}},
		{"email":"new@example.com","prioritization":["identified"],"send_to_existing_only":false,"attributes":{"first_name":"Eve"}}]}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	// an invalid standard value is a non-fatal error with its index (A)
	if !strings.Contains(r.errorsText(), `"index":1`) || !strings.Contains(r.errorsText(), "country") {
		t.Errorf("errors %s", r.errorsText())
	}
	nia := delivery(t, e, "u-2001")
	if obj(nia["attributes"])["first_name"] != "Nia" || len(list(nia, "messages")) != 1 {
		t.Errorf("u-2001 %v", nia)
	}
	ana := obj(delivery(t, e, "u-1001")["attributes"])
	if ana["available_points"] != float64(1600) || ana["country"] != "ES" {
		t.Errorf("u-1001 attributes %v", ana)
	}
	eve := delivery(t, e, "new@example.com")
	if obj(eve["attributes"])["first_name"] != "Eve" || len(list(eve, "messages")) != 1 {
		t.Errorf("email-created user %v", eve)
	}
	found := false
	for _, u := range e.Users() {
		if u.ExternalID == "u-2001" && u.Attributes["first_name"] == "Nia" && u.CustomAttributes["loyalty_tier"] == "Bronze" {
			found = true
		}
	}
	if !found {
		t.Errorf("Users() lacks the created u-2001")
	}
}

func TestOtherIdentifiers(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	// braze.md §2 recipient object: user_alias, braze_id, email
	r := post(t, h, "/canvas/trigger/send", `{"canvas_id":"`+pointsCanvas+`","recipients":[
		{"user_alias":{"alias_name":"5e3f904c-32f5-11ef-a1c2-0242ac120003","alias_label":"sessionm_user_id"},"context":{"via":"alias"}},
		{"braze_id":"5f3e1a2b9c8d7e6f5a4b3c24","context":{"via":"braze_id"}},
		{"email":"SAM.LEE@example.com","prioritization":["identified"],"context":{"via":"email"}},
		{"user_alias":{"alias_name":"ghost","alias_label":"sessionm_user_id"}}]}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for id, via := range map[string]string{claireBrazeID: "alias", "u-1004": "braze_id", "u-1002": "email"} {
		msgs := list(delivery(t, e, id), "messages")
		if len(msgs) != 1 || obj(obj(msgs[0])["properties"])["via"] != via {
			t.Errorf("%s: %v", id, msgs)
		}
	}
	ghost := delivery(t, e, "sessionm_user_id:ghost")
	if len(list(ghost, "not_sent")) != 1 {
		t.Errorf("alias ghost: %v", ghost)
	}
	// Claire is reachable by her alias in Deliveries too
	if d := delivery(t, e, "sessionm_user_id:5e3f904c-32f5-11ef-a1c2-0242ac120003"); d["braze_id"] != claireBrazeID {
		t.Errorf("alias lookup %v", d)
	}
}

func TestCanvasContext(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string]any
	}{
		// braze.md §2: context (new name) at top level and per recipient
		{"context", `{"canvas_id":"` + pointsCanvas + `","context":{"a":"top","b":"top"},"recipients":[{"external_user_id":"u-1001","context":{"b":"own"}}]}`,
			map[string]any{"a": "top", "b": "own"}},
		// braze.md §2: canvas_entry_properties (old name) is accepted
		{"canvas_entry_properties", `{"canvas_id":"` + pointsCanvas + `","canvas_entry_properties":{"a":"top"},"recipients":[{"external_user_id":"u-1001","canvas_entry_properties":{"points_awarded":"250"}}]}`,
			map[string]any{"a": "top", "points_awarded": "250"}},
		// both names at one level: context wins (A)
		{"both names", `{"canvas_id":"` + pointsCanvas + `","canvas_entry_properties":{"a":"old","c":"old"},"context":{"a":"new"},"recipients":[{"external_user_id":"u-1001"}]}`,
			map[string]any{"a": "new", "c": "old"}},
		{"none", `{"canvas_id":"` + pointsCanvas + `","recipients":[{"external_user_id":"u-1001"}]}`, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, nil, Options{})
			r := post(t, e.Handler(), "/canvas/trigger/send", tt.body)
			// braze.md §2: the Canvas example answers 201
			if r.status != 201 || r.message() != "success" || r.body["dispatch_id"] == nil {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			msgs := list(delivery(t, e, "u-1001"), "messages")
			if len(msgs) != 1 {
				t.Fatalf("messages %v", msgs)
			}
			m := obj(msgs[0])
			if m["kind"] != "canvas" || m["canvas_id"] != pointsCanvas || fmt.Sprint(m["properties"]) != fmt.Sprint(tt.want) {
				t.Errorf("message %v, want properties %v", m, tt.want)
			}
		})
	}
}

func TestInactiveAndSegments(t *testing.T) {
	tests := []struct {
		name, path, body string
		notice           string
		user             string
		delivered        bool
		reason           string
	}{
		// braze.md §2: a paused Canvas answers with a notice and does not send
		{"paused canvas", "/canvas/trigger/send", `{"canvas_id":"` + pausedCanvas + `","recipients":[{"external_user_id":"u-1001"}]}`,
			"The Canvas is paused. Resume the Canvas to ensure trigger requests will take effect.", "u-1001", false, "The Canvas is paused"},
		// braze.md §2: the archived notice
		{"archived canvas", "/canvas/trigger/send", `{"canvas_id":"` + archivedCanvas + `","recipients":[{"external_user_id":"u-1001"}]}`,
			"The Canvas is archived. Unarchive the Canvas to ensure trigger requests will take effect.", "u-1001", false, "archived"},
		// campaigns can be stopped too (A: same wording as the Canvas notice)
		{"stopped campaign", "/campaigns/trigger/send", `{"campaign_id":"` + stoppedCamp + `","recipients":[{"external_user_id":"u-1001"}]}`,
			"The Campaign is stopped. Resume the Campaign to ensure trigger requests will take effect.", "u-1001", false, "stopped"},
		// braze.md §2: recipients plus a segment: only users in both receive it
		{"outside the segment", "/campaigns/trigger/send", `{"campaign_id":"` + springCampaign + `","recipients":[{"external_user_id":"u-1002"}]}`,
			"", "u-1002", false, `segment "Spring promo"`},
		{"inside the segment", "/campaigns/trigger/send", `{"campaign_id":"` + springCampaign + `","recipients":[{"external_user_id":"u-1004"}]}`,
			"", "u-1004", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, nil, Options{})
			r := post(t, e.Handler(), tt.path, tt.body)
			if r.status != 201 || r.message() != "success" {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if got, _ := r.body["notice"].(string); got != tt.notice {
				t.Errorf("notice %q, want %q", got, tt.notice)
			}
			d := delivery(t, e, tt.user)
			if got := len(list(d, "messages")) == 1; got != tt.delivered {
				t.Errorf("delivered %v, want %v: %v", got, tt.delivered, d)
			}
			if tt.reason != "" {
				ns := list(d, "not_sent")
				if len(ns) != 1 || !strings.Contains(obj(ns[0])["reason"].(string), tt.reason) {
					t.Errorf("not_sent %v, want reason %q", ns, tt.reason)
				}
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	e, _ := newEmu(t, nil, Options{})
	h := e.Handler()
	// braze.md §2: broadcast true sends to the campaign's whole segment; §1:
	// a broadcast that names a send_id is tracked per send.
	r := post(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+springCampaign+`","broadcast":true,"send_id":"spring-1","trigger_properties":{"promo":"spring"}}`)
	if r.status != 201 || r.body["send_id"] != "spring-1" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	got := map[string]int{}
	for _, d := range e.AllDeliveries().([]Delivery) {
		got[d.BrazeID] = len(d.Messages)
		if len(d.Messages) == 1 && d.Messages[0].Properties["promo"] != "spring" {
			t.Errorf("%s properties %v", d.BrazeID, d.Messages[0].Properties)
		}
	}
	want := map[string]int{"5f3e1a2b9c8d7e6f5a4b3c21": 1, claireBrazeID: 1, "5f3e1a2b9c8d7e6f5a4b3c24": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("broadcast reached %v, want %v", got, want)
	}
	// a campaign without a segment broadcasts to all users (A)
	r = post(t, h, "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","broadcast":true}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if n := len(list(delivery(t, e, "u-1002"), "messages")); n != 1 {
		t.Errorf("u-1002 got %d messages from the all-users broadcast", n)
	}
	// a paused Canvas broadcast delivers nothing
	r = post(t, h, "/canvas/trigger/send", `{"canvas_id":"`+pausedCanvas+`","broadcast":true}`)
	if r.status != 201 || r.body["notice"] == nil {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if n := len(list(delivery(t, e, "u-1002"), "messages")); n != 1 {
		t.Errorf("paused Canvas broadcast delivered: u-1002 has %d messages", n)
	}
}

func TestCampaignStatusOption(t *testing.T) {
	// braze.md §1: the campaign success status is unconfirmed; switchable (A)
	e, _ := newEmu(t, nil, Options{CampaignSuccessStatus: http.StatusOK})
	r := post(t, e.Handler(), "/campaigns/trigger/send", `{"campaign_id":"`+winterCampaign+`","recipients":[{"external_user_id":"u-1001"}]}`)
	if r.status != http.StatusOK {
		t.Errorf("status %d", r.status)
	}
	r = post(t, e.Handler(), "/canvas/trigger/send", `{"canvas_id":"`+pointsCanvas+`","recipients":[{"external_user_id":"u-1001"}]}`)
	if r.status != http.StatusCreated {
		t.Errorf("canvas status %d", r.status)
	}
}
