package runner_test

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
)

// Sandbox campaigns and Canvases that answer 201 with a notice and send
// nothing (examples/sandbox/braze.yaml).
const (
	pausedCanvas    = "5a7c9e1b-3d5f-4b8c-8e2a-4f6b8c0e2a3d" // Tier upgrade journey
	stoppedCampaign = "4f6b8d0f-2c3e-4a7b-9d1f-3e5a7b9d1f2c" // Autumn offer (stopped)
)

// A trigger for a paused Canvas is answered 201 with a notice, and Braze
// sends nothing (braze.md §2): the event becomes a not_sent dead letter
// at once, to be replayed once the Canvas resumes, rather than being
// counted as delivered.
func TestPausedCanvasIsDeadLetteredAsNotSent(t *testing.T) {
	h := start(t, setup{})
	body := strings.Replace(mustFile(t, "../../examples/events/sessionm-points-awarded.json"),
		"2c4e6a8b-1d3f-4a5b-9c7d-e1f2a3b4c5d6", pausedCanvas, 1)
	if a := h.post("/hooks/sessionm/points", body, map[string]string{"Authorization": hookAuth}); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.drained()
	if n := len(h.messages("u-1001")); n != 0 {
		t.Fatalf("u-1001 got %d messages from a paused Canvas", n)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if dl.Reason != "not_sent" || dl.Attempts != 1 || !strings.Contains(dl.Error, "The Canvas is paused") ||
		dl.Response == nil || dl.Response.Status != 201 {
		t.Fatalf("dead letter %+v", dl)
	}
	if n := len(h.journal("/braze/canvas/trigger/send")); n != 1 {
		t.Fatalf("%d trigger requests, want 1: a notice is not retried", n)
	}
}

// A merged trigger for a stopped campaign: the notice is about the
// campaign, so every event of the request is a not_sent dead letter, and
// none is sent again alone.
func TestStoppedCampaignDeadLettersTheWholeBatchAsNotSent(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 20})
	const n = 10
	h.postAtOnce(n, "/hooks/campaign", func(i int) (string, map[string]string) {
		return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d}`, stoppedCampaign, i, i), nil
	})
	h.drained()
	reqs := len(h.journal("/braze/campaigns/trigger/send"))
	if reqs >= n {
		t.Fatalf("%d requests for %d events: the test needs them merged", reqs, n)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{Reason: "not_sent"})
	if len(dls) != n {
		t.Fatalf("%d not_sent dead letters, want %d", len(dls), n)
	}
	for _, dl := range dls {
		if !strings.Contains(dl.Error, "The Campaign is stopped") {
			t.Fatalf("dead letter error %q does not give Braze's notice", dl.Error)
		}
	}
}

// Braze finds a user by email whatever its case, and sends one message per
// user of a request (braze.md §2): two events for one user, by emails that
// differ only in case, go in two requests, and the user gets both.
func TestSameUserByEmailsOfAnotherCaseIsNotMerged(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/trigger-by-email"}})
	emails := []string{"ana.garcia@example.com", "Ana.Garcia@Example.com"}
	h.postAtOnce(len(emails), "/hooks/by-email", func(i int) (string, map[string]string) {
		return fmt.Sprintf(`{"campaign_id":%q,"email":%q,"n":%d}`, winter, emails[i], i), nil
	})
	h.drained()
	if n := len(h.journal("/braze/campaigns/trigger/send")); n != 2 {
		t.Fatalf("%d trigger requests, want 2: one per event", n)
	}
	if n := len(h.messages("u-1001")); n != 2 {
		t.Fatalf("u-1001 got %d messages for 2 delivered events", n)
	}
}

// An answer that holds for the whole merged request (a deleted campaign,
// a key Braze refuses) dead-letters every event of the batch with it:
// sent alone, each would be refused the same way, one request each from
// the shared messaging pool.
func TestWholeRequestRefusalDeadLettersTheBatch(t *testing.T) {
	tests := []struct {
		name     string
		campaign string
		apiKey   string // the Braze key the engine sends, when not the sandbox's
		status   int
		says     string
	}{
		{"deleted campaign", "deleted-campaign", "", 400, "Invalid Campaign ID"},
		{"revoked key", winter, "revoked-key", 401, "HTTP 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secretsDir := ""
			if tt.apiKey != "" {
				secretsDir = t.TempDir()
				if err := os.WriteFile(filepath.Join(secretsDir, "BRAZE_API_KEY"), []byte(tt.apiKey), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 50, secrets: secretsDir})
			const n = 40
			h.postAtOnce(n, "/hooks/campaign", func(i int) (string, map[string]string) {
				return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d}`, tt.campaign, i, i), nil
			})
			h.drained()
			if reqs := len(h.journal("/braze/campaigns/trigger/send")); reqs > 5 {
				t.Fatalf("%d trigger requests for %d events: the batch was sent again one event at a time", reqs, n)
			}
			dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
			if len(dls) != n {
				t.Fatalf("%d dead letters, want %d", len(dls), n)
			}
			for _, dl := range dls {
				if dl.Reason != "rejected" || dl.Response == nil || dl.Response.Status != tt.status || !strings.Contains(dl.Error, tt.says) {
					t.Fatalf("dead letter %+v, error %q", dl.Response, dl.Error)
				}
			}
		})
	}
}

// A /users/track object Braze refuses inside a merged request: the dead
// letter keeps the event's own request, of one object, so its error and
// the answer it shows index that request and leave out what Braze said
// about the other events' objects.
func TestUsersTrackDeadLetterIndexesItsOwnRequest(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 20})
	sign := func(body string) string {
		mac := hmac.New(sha256.New, []byte("sandbox-wallet-token"))
		mac.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	const n = 10
	bad := map[int]string{3: "Spain", 7: "Atlantis"} // not ISO-3166
	h.postAtOnce(n, "/hooks/track", func(i int) (string, map[string]string) {
		country, ok := bad[i]
		if !ok {
			country = "ES"
		}
		body := fmt.Sprintf(`{"user":"load-%06d","country":%q,"n":%d}`, i, country, i)
		return body, map[string]string{"X-Signature": sign(body)}
	})
	h.drained()
	if reqs := len(h.journal("/braze/users/track")); reqs >= n {
		t.Fatalf("%d requests for %d events: the test needs them merged", reqs, n)
	}
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(bad))
	}
	for _, dl := range dls {
		var ev struct {
			Data struct{ Country string } `json:"data"`
		}
		if err := json.Unmarshal(dl.Event, &ev); err != nil {
			t.Fatal(err)
		}
		mine, other := ev.Data.Country, "Spain"
		if mine == "Spain" {
			other = "Atlantis"
		}
		if !strings.Contains(dl.Error, "attributes[0]: ") || !strings.Contains(dl.Error, mine) || strings.Contains(dl.Error, other) {
			t.Errorf("dead letter of %s: error %q", mine, dl.Error)
		}
		if x := dl.Response.Excerpt; !strings.Contains(x, `"index":0`) || !strings.Contains(x, mine) || strings.Contains(x, other) || strings.Contains(x, "_processed") {
			t.Errorf("dead letter of %s: response %s", mine, x)
		}
	}
}

// A Braze connection with users_track_max_updates: 50 (a "MAU CY 24-25"
// contract) packs at most 50 objects per /users/track request, the
// attributes and events arrays together.
func TestUsersTrackPackingKeepsToTheConnectionsCap(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/track-capped"}, users: 100})
	const n = 60 // 120 objects
	h.postAtOnce(n, "/hooks/track-both", func(i int) (string, map[string]string) {
		return fmt.Sprintf(`{"user":"load-%06d","n":%d}`, i, i), nil
	})
	h.drained()
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Fatalf("%d dead letters (first: %s)", len(dls), dls[0].Error)
	}
	reqs := h.journal("/braze/users/track")
	objects, largest := 0, 0
	for _, e := range reqs {
		var body struct{ Attributes, Events []any }
		if err := json.Unmarshal([]byte(e["body"].(string)), &body); err != nil {
			t.Fatal(err)
		}
		both := len(body.Attributes) + len(body.Events)
		objects += both
		largest = max(largest, both)
	}
	if objects != 2*n || largest > 50 {
		t.Fatalf("%d requests carried %d objects, the largest %d; want %d, at most 50 per request", len(reqs), objects, largest, 2*n)
	}
	if len(reqs) > 6 {
		t.Fatalf("%d requests for %d objects: want them packed up to the cap", len(reqs), 2*n)
	}
}

// A /users/track request Braze takes in part (the custom event, not the
// attribute): the dead letter keeps the event object Braze took, and its
// replay sends only the attribute, so Braze does not count the custom
// event twice. Refused again, the new dead letter still keeps it.
func TestUsersTrackReplayLeavesOutWhatBrazeTook(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/track-partial"}, users: 5})
	if a := h.post("/hooks/track-partial", `{"user":"load-000001","country":"Atlantis"}`, nil); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.drained()
	taken := func(dl inbox.DeadLetter) []json.RawMessage {
		var ev struct {
			Delivered map[string][]json.RawMessage `json:"delivered"`
		}
		if err := json.Unmarshal(dl.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if n := len(ev.Delivered["attributes"]); n != 0 {
			t.Errorf("the refused attribute is kept as delivered: %s", dl.Event)
		}
		return ev.Delivered["events"]
	}
	onlyDeadLetter := func() inbox.DeadLetter {
		dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
		if len(dls) != 1 || dls[0].Reason != "rejected" {
			t.Fatalf("dead letters %+v, want one rejected", dls)
		}
		return dls[0]
	}
	dl := onlyDeadLetter()
	if events := taken(dl); len(events) != 1 || !strings.Contains(string(events[0]), "partial") {
		t.Fatalf("dead letter event %s: want the custom event Braze took under delivered", dl.Event)
	}

	admin := h.admin()
	if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, dl.ID), "", nil); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	h.eventually("the replay dead-lettered again", func() bool {
		dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
		return len(dls) == 1 && dls[0].ID != dl.ID
	})
	requests := h.journal("/braze/users/track")
	if len(requests) != 2 {
		t.Fatalf("%d /users/track requests, want 2", len(requests))
	}
	var replayed struct{ Attributes, Events []any }
	if err := json.Unmarshal([]byte(requests[1]["body"].(string)), &replayed); err != nil {
		t.Fatal(err)
	}
	if len(replayed.Attributes) != 1 || len(replayed.Events) != 0 {
		t.Errorf("the replay sent %s; want the attribute alone", requests[1]["body"])
	}
	if events := taken(onlyDeadLetter()); len(events) != 1 {
		t.Errorf("the second dead letter keeps %d delivered events, want the 1 from the first request", len(events))
	}
}

// Braze applies the fields of an attributes object but the one its error
// names (users_track_attribute_errors: field, the default): the replay of
// its dead letter sent the increment again, and 5 visits became 10 (a QA
// run). It sends the refused field alone; refused again, it is a dead
// letter again, and the increment still counts once. With "object" (Braze
// refuses the whole object: the sandbox does not) the replay sends it all.
func TestUsersTrackReplaySendsAnAppliedIncrementOnce(t *testing.T) {
	for _, tc := range []struct {
		setting     string
		wantReplay  string // in the replay's body
		wantNot     string // not in it
		wantVisits  float64
		wantDeadSay string
	}{
		{"", "Spain", "inc", 5, "Braze applied the other fields"},
		{"object", `"inc":5`, "", 10, "braze refused part of it"},
	} {
		t.Run("setting "+cmp.Or(tc.setting, "unset"), func(t *testing.T) {
			h := start(t, setup{dirs: []string{"testdata/track-inc"}, users: 5, tweak: func(p *engine.Pipeline) {
				if tc.setting != "" {
					p.Target.Conn.Fields["users_track_attribute_errors"] = tc.setting
				}
			}})
			const user = "load-000001"
			if a := h.post("/hooks/track-inc", `{"user":"`+user+`","country":"Spain"}`, nil); a.status != 200 {
				t.Fatalf("webhook: %d %s", a.status, a.body)
			}
			h.drained()
			visits := func() any {
				d := h.control("GET", "/deliveries?user="+user, "")
				attrs, _ := d["braze"].(map[string]any)["attributes"].(map[string]any)
				return attrs["visits"]
			}
			if v := visits(); v != float64(5) {
				t.Fatalf("visits %v after the first request; want 5", v)
			}
			dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
			if len(dls) != 1 || !strings.Contains(dls[0].Error, tc.wantDeadSay) {
				t.Fatalf("dead letters %+v; want one saying %q", dls, tc.wantDeadSay)
			}
			first := dls[0].ID
			if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", h.admin().URL, first), "", nil); a.status != 200 {
				t.Fatalf("replay: %d %s", a.status, a.body)
			}
			h.eventually("the replay dead-lettered again", func() bool {
				dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
				return len(dls) == 1 && dls[0].ID != first
			})
			requests := h.journal("/braze/users/track")
			if len(requests) != 2 {
				t.Fatalf("%d /users/track requests, want 2", len(requests))
			}
			if body := requests[1]["body"].(string); !strings.Contains(body, tc.wantReplay) || (tc.wantNot != "" && strings.Contains(body, tc.wantNot)) {
				t.Errorf("the replay sent %s; want %q in it, not %q", body, tc.wantReplay, tc.wantNot)
			}
			if v := visits(); v != tc.wantVisits {
				t.Errorf("visits %v after the replay; want %v", v, tc.wantVisits)
			}
		})
	}
}

// A merged request too large for Braze (413) whose halves are too large
// too is halved again: each event went alone, 78 requests for 75 events
// of 30 KB where halving takes about 7 (a re-QA).
func TestTooLargeBatchIsHalvedAgain(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/track-large"}, users: 100})
	const n = 75
	props := map[string]string{} // 30 KB, in values of Braze's 255 characters at most
	for i := range 120 {
		props[fmt.Sprintf("p%03d", i)] = strings.Repeat("x", 250)
	}
	raw, err := json.Marshal(props)
	if err != nil {
		t.Fatal(err)
	}
	h.postAtOnce(n, "/hooks/track-large", func(i int) (string, map[string]string) {
		return fmt.Sprintf(`{"user":"load-%06d","props":%s}`, i, raw), nil
	})
	h.drained()
	if dls, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(dls) != 0 {
		t.Fatalf("%d dead letters (first: %s)", len(dls), dls[0].Error)
	}
	// Every event delivered (the inbox drained, no dead letter), in far
	// fewer requests than one each.
	statuses := map[any]int{}
	reqs := h.journal("/braze/users/track")
	for _, e := range reqs {
		statuses[e["status"]]++
	}
	if statuses[float64(413)] == 0 || len(reqs) > 16 {
		t.Fatalf("%d requests for %d events (statuses %v); want some refused as too large, and then halves", len(reqs), n, statuses)
	}
}

// An empty user id names no user: it is a template dead letter before
// anything is sent, saying what to look at, rather than a request Braze
// refuses (merged with others, a dozen requests to find it: a re-QA).
func TestEmptyRecipientIDIsNotSent(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 3})
	if a := h.post("/hooks/campaign", fmt.Sprintf(`{"campaign_id":%q,"user":"","n":1}`, winter), nil); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 || dls[0].Reason != "template" || !strings.Contains(dls[0].Error, "'external_user_id' is empty, so it names no user") {
		t.Fatalf("dead letters %+v; want one template dead letter for the empty id", dls)
	}
	if n := len(h.journal("/braze/campaigns/trigger/send")); n != 0 {
		t.Fatalf("%d trigger requests; want none", n)
	}
}

// Both halves refused, one as too large (413), are each narrowed: each
// event went alone, 53 requests for 50 events where narrowing takes
// about 14 (a re-QA).
func TestTooLargeHalfBesideABadOneIsNarrowed(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 60})
	// One by one, inside the batch's linger, so the large ones make the
	// first half and the bad one is in the second.
	for i := range 50 {
		note := ""
		switch {
		case i < 25:
			note = strings.Repeat("x", 45<<10) // 25 of them are over 1 MiB together
		case i == 40:
			note = strings.Repeat("x", 60<<10) // over Braze's 50 KB of trigger properties
		}
		if a := h.post("/hooks/campaign", fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d,"note":%q}`, winter, i, i, note), nil); a.status != 200 {
			t.Fatalf("webhook %d: %d %s", i, a.status, a.body)
		}
	}
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 || !strings.Contains(string(dls[0].Event), `"n":40`) {
		t.Fatalf("dead letters %+v; want only event 40", dls)
	}
	if reqs := h.journal("/braze/campaigns/trigger/send"); len(reqs) > 25 {
		t.Fatalf("%d trigger requests for 50 events; want the refused halves narrowed, not each event alone", len(reqs))
	}
}
