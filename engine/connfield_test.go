package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A connection field's own check (braze's users_track_max_updates) is
// reported at the value, whether it is written as a number, as text or
// comes from ${env:...}; the schema bounds a number.
func TestUsersTrackMaxUpdatesIsChecked(t *testing.T) {
	tests := []struct {
		value string
		want  string // the problem, "" for none
	}{
		{"50", ""},
		{`"50"`, ""},
		{"225", ""},
		{"1", ""},
		{"0", "must be at least 1, not 0"},
		{"226", "must be at most 225, not 226"},
		{"fifty", `users_track_max_updates must be a whole number from 1 to 225 (Braze takes at most 75 objects per array, 225 in all), not "fifty"`},
		{`"-5"`, `not "-5"`},
		{"${env:SESSIONM_API_KEY}", "must be a whole number from 1 to 225"}, // resolved: not a number
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			dir := t.TempDir()
			conns := "connections:\n  braze:\n    type: braze\n    base_url: https://rest.iad-01.braze.com\n    api_key: ${secret:API_TOKEN}\n    users_track_max_updates: " + tt.value + "\n"
			if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), []byte(conns), 0o600); err != nil {
				t.Fatal(err)
			}
			l, _ := testLoader(t)
			proj := l.Load([]string{dir})
			items := proj.Diagnostics.Items()
			switch {
			case tt.want == "" && len(items) > 0:
				t.Fatalf("problems: %v", items)
			case tt.want == "":
				if got := proj.Connections["braze"].Fields["users_track_max_updates"]; got != strings.Trim(tt.value, `"`) {
					t.Fatalf("users_track_max_updates %q", got)
				}
			case len(items) != 1 || !strings.Contains(items[0].String(), tt.want):
				t.Fatalf("problems %v, want one with %q", items, tt.want)
			case !strings.Contains(items[0].String(), ConnectionsFileName+":6:30: connections.braze.users_track_max_updates: "):
				t.Fatalf("problem %q is not placed at the value", items[0])
			}
		})
	}
}

// One event's /users/track request over users_track_max_updates does not
// fit the endpoint: the batcher keeps merged requests within the bound,
// but one request over it went as it was, for Braze to refuse (a QA run:
// 60 event objects under a bound of 50).
func TestUsersTrackMaxUpdatesBoundsOneRequest(t *testing.T) {
	dir := t.TempDir()
	conns := "connections:\n  braze:\n    type: braze\n    base_url: https://rest.iad-01.braze.com\n    api_key: ${secret:API_TOKEN}\n    users_track_max_updates: 50\n"
	pipeline := `
source: { type: http, path: /in }
target:
  connection: braze
  endpoint: users_track
  body:
    attributes: "{{ event.attributes }}"
    events: "{{ event.events }}"
`
	writeFiles(t, dir, map[string]string{ConnectionsFileName: conns, "p.yaml": pipeline})
	p := loadOne(t, dir)
	objects := func(n int, object map[string]any) []any {
		list := make([]any, n)
		for i := range list {
			list[i] = object
		}
		return list
	}
	attr := map[string]any{"external_id": "u-1", "points": 1}
	ev := map[string]any{"external_id": "u-1", "name": "visit", "time": "2026-11-29T10:00:00Z"}
	for _, tc := range []struct {
		attributes, events int
		want               string
	}{
		{20, 30, ""},
		{0, 50, ""},
		{20, 31, "51 objects in all, over the 50 one request may carry on connection braze (its users_track_max_updates setting)"},
		{0, 60, "60 objects in all"},
	} {
		out := p.Evaluate(context.Background(), &Event{Data: map[string]any{"attributes": objects(tc.attributes, attr), "events": objects(tc.events, ev)}}, nil, testNow)
		var unfit *BodyError
		switch {
		case tc.want == "" && out.Err != nil:
			t.Errorf("%d+%d objects: %v", tc.attributes, tc.events, out.Err)
		case tc.want != "" && (!errors.As(out.Err, &unfit) || !strings.Contains(out.Err.Error(), tc.want)):
			t.Errorf("%d+%d objects: %v; want a body that does not fit, %q", tc.attributes, tc.events, out.Err, tc.want)
		}
	}
}

// A body whose written lists alone go over users_track_max_updates fails
// every event, so validate says so at the body.
func TestUsersTrackMaxUpdatesBoundsWrittenLists(t *testing.T) {
	pipeline := `
source: { type: http, path: /in }
target:
  connection: braze
  endpoint: users_track
  body:
    attributes:
      - { external_id: "{{ event.user }}", visits: { inc: 1 } }
      - { external_id: "{{ event.friend }}", referrals: { inc: 1 } }
    events:
      - { external_id: "{{ event.user }}", name: visit, time: "{{ event.time }}" }
      - { external_id: "{{ event.user }}", name: shop, time: "{{ event.time }}" }
      - { external_id: "{{ event.friend }}", name: referred, time: "{{ event.time }}" }
    purchases: "{{ event.purchases }}"
`
	for limit, want := range map[string]string{
		"5": "",
		"4": "p.yaml:6:3: target.body: 5 objects in all, over the 4 one request may carry on connection braze (its users_track_max_updates setting): split the lists over two calls",
	} {
		conns := "connections:\n  braze:\n    type: braze\n    base_url: https://rest.iad-01.braze.com\n    api_key: ${secret:API_TOKEN}\n    users_track_max_updates: " + limit + "\n"
		wantProblem(t, "limit "+limit, map[string]string{ConnectionsFileName: conns, "p.yaml": pipeline}, want)
	}
}

// users_track_attribute_errors takes field or object, and says so at the
// value.
func TestUsersTrackAttributeErrorsIsChecked(t *testing.T) {
	for value, want := range map[string]string{
		"field":  "",
		"object": "",
		"fields": ConnectionsFileName + `:6:35: connections.braze.users_track_attribute_errors: "fields" is not one of: field, object; did you mean "field"?`,
	} {
		conns := "connections:\n  braze:\n    type: braze\n    base_url: https://rest.iad-01.braze.com\n    api_key: ${secret:API_TOKEN}\n    users_track_attribute_errors: " + value + "\n"
		wantProblem(t, value, map[string]string{ConnectionsFileName: conns}, want)
	}
}

// Under --sandbox every connection of a type the sandbox emulates goes to
// its emulator, whatever its base_url says: set by variable name alone, a
// literal base_url, or another variable, went to the real host (a QA
// run), and an unset variable there was refused though it goes unused.
// A connection of another type must stay on this machine.
func TestStandInsTakeEveryConnectionOfTheirType(t *testing.T) {
	dir := t.TempDir()
	conns := `connections:
  braze:
    type: braze
    base_url: https://rest.iad-01.braze.com
    api_key: ${secret:API_TOKEN}
  staging_core:
    type: sessionm_core
    base_url: ${env:STAGING_CORE_URL}
    api_key: ${secret:API_TOKEN}
    api_secret: ${secret:API_TOKEN}
  local:
    type: http
    base_url: http://127.0.0.1:9/api
  partner:
    type: http
    base_url: https://api.example.com/v2
`
	if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), []byte(conns), 0o600); err != nil {
		t.Fatal(err)
	}
	l, _ := testLoader(t)
	l.StandIns = map[string]string{"braze": "http://127.0.0.1:8081/braze", "sessionm_core": "http://127.0.0.1:8081/sessionm/core"}
	proj := l.Load([]string{dir})
	items := proj.Diagnostics.Items()
	if len(items) != 1 || !strings.Contains(items[0].String(), ConnectionsFileName+":16:15: connections.partner.base_url: --sandbox has no emulator for connections of type http, and this one goes to api.example.com, off this machine") {
		t.Errorf("problems %v; want one, at partner's base_url", items)
	}
	for name, want := range map[string]string{"braze": "http://127.0.0.1:8081/braze", "staging_core": "http://127.0.0.1:8081/sessionm/core", "local": "http://127.0.0.1:9/api"} {
		if c := proj.Connections[name]; c == nil || c.BaseURL == nil || c.BaseURL.String() != want {
			t.Errorf("connection %s: %+v; want base URL %s", name, c, want)
		}
	}
}

// A written list holds as many items as it has "-" lines: one over the
// endpoint's limit, or short of its least, fails every event, so validate
// says so at the list (a re-QA: 51 recipients validated ok).
func TestWrittenListsKeepToTheirLimits(t *testing.T) {
	recipient := "\n      - external_user_id: \"{{ event.user }}\""
	for name, tc := range map[string]struct{ body, want string }{
		"50 recipients": {"campaign_id: c-1\n    recipients:" + strings.Repeat(recipient, 50), ""},
		"51 recipients": {"campaign_id: c-1\n    recipients:" + strings.Repeat(recipient, 51), "p.yaml:8:7: target.body.recipients: holds 51 items; the limit is 50"},
	} {
		conns := "connections:\n  braze:\n    type: braze\n    base_url: https://rest.iad-01.braze.com\n    api_key: ${secret:API_TOKEN}\n"
		pipeline := "source: { type: http, path: /in }\ntarget:\n  connection: braze\n  endpoint: campaign_trigger\n  body:\n    " + tc.body + "\n"
		wantProblem(t, name, map[string]string{ConnectionsFileName: conns, "p.yaml": pipeline}, tc.want)
	}
}

// wantProblem loads files, written into a folder of their own, and
// checks they have no problem (want ""), or one that says want.
func wantProblem(t *testing.T, name string, files map[string]string, want string) {
	t.Helper()
	dir := t.TempDir()
	for file, text := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := testLoader(t)
	items := l.Load([]string{dir}).Diagnostics.Items()
	switch {
	case want == "" && len(items) > 0:
		t.Errorf("%s: problems %v", name, items)
	case want != "" && (len(items) != 1 || !strings.Contains(items[0].String(), want)):
		t.Errorf("%s: problems %v; want %q", name, items, want)
	}
}
