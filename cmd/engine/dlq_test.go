package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// dlqT0 is the clock the dlq tests run at; the seeded dead letters are
// 3 h, 90 min, 30 min and 10 min older.
var dlqT0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

const (
	offerPipeline  = "offer-issued-to-braze-campaign"
	pointsPipeline = "points-awarded-to-braze-canvas"
	csvPipeline    = "segment-csv-to-sessionm-tags"
)

// brokenRowEvent is what the runner keeps for a CSV row it cannot read:
// where the row is, not the row.
const brokenRowEvent = `{"file":"segments.csv","row":3,"line":4}`

const offerEvent = `{"event_type":"offer_issued","user_id":"u-1001","offer":{"id":"o-1","title":"20% off <coats>"}}`

// jsonEqual says whether a holds the same JSON as b: the inbox stores
// events re-encoded (compacted, <, > and & escaped).
func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

const longError = "braze answered HTTP 503 after 10 attempts:\n  upstream connect error or disconnect/reset before headers; reset reason: connection termination; retried with backoff up to 5m"

// seedDeadLetters fixes the dlq clock and makes a data folder with four
// dead letters:
//
//	1 offer-issued  rejected            400, with request, event id evt-1
//	2 points        attempts_exhausted  503, a long two-line error
//	3 segment-csv   csv_row             a broken CSV row: never queued (seq 0), no request
//	4 offer-issued  template            no request
func seedDeadLetters(t *testing.T) string {
	t.Helper()
	old := dlqNow
	dlqNow = func() time.Time { return dlqT0 }
	t.Cleanup(func() { dlqNow = old })

	dir := t.TempDir()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true, Now: func() time.Time { return dlqT0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendOne := func(pipeline, id, payload string) uint64 {
		t.Helper()
		got, err := s.Append(pipeline, inbox.NewEvent{ID: id, Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return got[0].Seq
	}
	dead := func(pipeline string, seq uint64, dl inbox.DeadLetter) {
		t.Helper()
		if _, err := s.DeadLetter(pipeline, seq, dl); err != nil {
			t.Fatal(err)
		}
	}
	dead(offerPipeline, appendOne(offerPipeline, "evt-1", offerEvent), inbox.DeadLetter{
		Version: "7c9a466bc059", EventID: "evt-1", Event: json.RawMessage(offerEvent),
		Request: &inbox.SentRequest{Method: "POST", URL: "https://rest.iad-01.braze.com/campaigns/trigger/send",
			Headers: map[string]string{"Authorization": "Bearer ****", "Content-Type": "application/json"},
			Body:    `{"campaign_id":"9b1f3c2e","recipients":[{"external_user_id":"u-1001"}]}`},
		Response: &inbox.GotResponse{Status: 400, Excerpt: `{"message":"Invalid Campaign ID"}`},
		Reason:   "rejected", Error: "braze answered HTTP 400: Invalid Campaign ID", Attempts: 1,
		Received: dlqT0.Add(-3*time.Hour - time.Minute), At: dlqT0.Add(-3 * time.Hour),
	})
	pointsEvent := `{"event_type":"points_awarded","user_id":"u-1002","points":50}`
	dead(pointsPipeline, appendOne(pointsPipeline, "evt-2", pointsEvent), inbox.DeadLetter{
		Version: "0d41e6a2b7c3", EventID: "evt-2", Event: json.RawMessage(pointsEvent),
		Request:  &inbox.SentRequest{Method: "POST", URL: "https://rest.iad-01.braze.com/canvas/trigger/send", Body: "not json"},
		Response: &inbox.GotResponse{Status: 503, Excerpt: "upstream connect error"},
		Reason:   "attempts_exhausted", Error: longError, Attempts: 10,
		Received: dlqT0.Add(-2 * time.Hour), At: dlqT0.Add(-90 * time.Minute),
	})
	dead(csvPipeline, 0, inbox.DeadLetter{
		Version: "5e5e5e5e5e5e", Event: json.RawMessage(brokenRowEvent),
		Reason: "csv_row", Error: "row 3 (line 4):\n  wrong number of fields", At: dlqT0.Add(-30 * time.Minute),
	})
	dead(offerPipeline, appendOne(offerPipeline, "evt-4", `{"event_type":"offer_issued","user_id":"u-1004"}`), inbox.DeadLetter{
		Version: "7c9a466bc059", EventID: "evt-4", Event: json.RawMessage(`{"event_type":"offer_issued","user_id":"u-1004"}`),
		Reason: "template", Error: `target.body: undefined variable "offer"`,
		Received: dlqT0.Add(-10 * time.Minute), At: dlqT0.Add(-10 * time.Minute),
	})
	return dir
}

// openSeeded reopens the data folder after a command changed it.
func openSeeded(t *testing.T, dir string) *inbox.Store {
	t.Helper()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// listedIDs is the first column of the table, without its header and the
// count line.
func listedIDs(out string) []string {
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 8 && strings.HasSuffix(f[1], "Z") {
			ids = append(ids, f[0])
		}
	}
	return ids
}

func TestDlqList(t *testing.T) {
	dir := seedDeadLetters(t)
	for _, tc := range []struct {
		name   string
		args   []string
		ids    []string
		count  string
		stderr string
	}{
		{"all", nil, []string{"1", "2", "3", "4"}, "4 dead letters", ""},
		{"pipeline", []string{"--pipeline", offerPipeline}, []string{"1", "4"}, "2 dead letters", ""},
		{"reason", []string{"--reason", "csv_row"}, []string{"3"}, "1 dead letter", ""},
		{"since duration", []string{"--since", "1h"}, []string{"3", "4"}, "2 dead letters", ""},
		{"since days", []string{"--since", "7d"}, []string{"1", "2", "3", "4"}, "4 dead letters", ""},
		{"since days and hours", []string{"--since", "0d1h"}, []string{"3", "4"}, "2 dead letters", ""},
		{"since time", []string{"--since", "2026-11-29T08:00:00Z"}, []string{"2", "3", "4"}, "3 dead letters", ""},
		{"since time with offset", []string{"--since", "2026-11-29T09:20:00+01:00"}, []string{"2", "3", "4"}, "3 dead letters", ""},
		{"since a day", []string{"--since", "2026-11-29"}, []string{"1", "2", "3", "4"}, "4 dead letters", ""},
		{"filters together", []string{"--pipeline", offerPipeline, "--since", "1h"}, []string{"4"}, "1 dead letter", ""},
		{"limit cuts", []string{"--limit", "2"}, []string{"1", "2"}, "2 dead letters shown; more match (the next ones: --after 2, or raise --limit)", ""},
		{"the next page", []string{"--limit", "2", "--after", "2"}, []string{"3", "4"}, "2 dead letters", ""},
		{"after a filter's first", []string{"--pipeline", offerPipeline, "--after", "1"}, []string{"4"}, "1 dead letter", ""},
		{"limit fits", []string{"--limit", "4"}, []string{"1", "2", "3", "4"}, "4 dead letters", ""},
		{"limit and filter", []string{"--limit", "1", "--reason", "template"}, []string{"4"}, "1 dead letter", ""},
		{"no match", []string{"--pipeline", offerPipeline, "--reason", "csv_row"}, nil, "no dead letters", ""},
		// A pipeline no dead letter has, a typo say: not silent.
		{"no such pipeline", []string{"--pipeline", "nope"}, nil, "no dead letters",
			`engine dlq list: no dead letter belongs to a pipeline called "nope"; pipelines with dead letters: offer-issued-to-braze-campaign, points-awarded-to-braze-canvas, segment-csv-to-sessionm-tags` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runEngine(append([]string{"dlq", "list", "--data", dir}, tc.args...)...)
			if code != exitOK || stderr != tc.stderr {
				t.Fatalf("code %d, stderr %q; want 0 and %q", code, stderr, tc.stderr)
			}
			if got := listedIDs(stdout); !slices.Equal(got, tc.ids) {
				t.Errorf("ids %v, want %v:\n%s", got, tc.ids, stdout)
			}
			if !strings.HasSuffix(stdout, "\n"+tc.count+"\n") && stdout != tc.count+"\n" {
				t.Errorf("count line is not %q:\n%s", tc.count, stdout)
			}
		})
	}
}

// --format json keeps stdout an array for tools, and notes a pipeline no
// dead letter has on stderr, as the table does.
func TestDlqListJSONNotesAnUnknownPipeline(t *testing.T) {
	dir := seedDeadLetters(t)
	stdout, stderr, code := runEngine("dlq", "list", "--data", dir, "--format", "json", "--pipeline", "nope")
	if code != exitOK || stdout != "[]\n" || !strings.Contains(stderr, `no dead letter belongs to a pipeline called "nope"`) {
		t.Errorf("code %d, stdout %q, stderr %q; want 0, [] and a note", code, stdout, stderr)
	}
}

func TestDlqListTable(t *testing.T) {
	dir := seedDeadLetters(t)
	stdout, _, _ := runEngine("dlq", "list", "--data", dir)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	want := []string{
		"ID  TIME                  PIPELINE                        VERSION       REASON              ATTEMPTS  STATUS  EVENT  ERROR",
		"1   2026-11-29T07:00:00Z  offer-issued-to-braze-campaign  7c9a466bc059  rejected            1         400     evt-1  braze answered HTTP 400: Invalid Camp...",
		"3   2026-11-29T09:30:00Z  segment-csv-to-sessionm-tags    5e5e5e5e5e5e  csv_row             0         -       -      row 3 (line 4): wrong number of fields",
	}
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line\n%s\nin\n%s", w, stdout)
		}
	}
	// Errors are cut at errorWidth, and a two-line error is put on one
	// line (3 above).
	if !slices.Contains(lines, "2   2026-11-29T08:30:00Z  points-awarded-to-braze-canvas  0d41e6a2b7c3  attempts_exhausted  10        503     evt-2  braze answered HTTP 503 after 10 atte...") {
		t.Errorf("long error not shortened:\n%s", stdout)
	}
	// Columns are as wide as their widest cell, and a letter with no
	// version, status or event id shows a dash; a CSV row's event id ends
	// in its row number.
	dir = t.TempDir()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.DeadLetter("f1", 0, inbox.DeadLetter{Reason: "filter", Error: strings.Repeat("é", 60), At: dlqT0})
	s.DeadLetter("f2", 0, inbox.DeadLetter{Reason: "rejected", EventID: "cc63d2a4e0b1f7a9:1016", Error: "x", At: dlqT0})
	s.Close()
	stdout, _, _ = runEngine("dlq", "list", "--data", dir)
	want = []string{
		"ID  TIME                  PIPELINE  VERSION  REASON    ATTEMPTS  STATUS  EVENT                  ERROR",
		"1   2026-11-29T10:00:00Z  f1        -        filter    0         -       -                      " + strings.Repeat("é", errorWidth-3) + "...",
		"2   2026-11-29T10:00:00Z  f2        -        rejected  0         -       cc63d2a4e0b1f7a9:1016  x",
		"2 dead letters",
	}
	if got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", stdout, strings.Join(want, "\n"))
	}
}

// A broken CSV row's error begins with its file's path, absolute for a
// file of an inbox folder: the list cut it there and never showed what was
// wrong. The list shows the line and the reason; show keeps it whole.
func TestDlqListCSVRowErrorWithoutItsPath(t *testing.T) {
	file := "/srv/engine/inbox/segments/" + strings.Repeat("long-name-", 4) + "export.csv"
	for _, tc := range []struct {
		name, event, err, want string
	}{
		{"a row error", `{"file":"` + file + `","row":2,"line":3}`, file + ":3: row 2: has 1 column, the header has 3; check the delimiter", "line 3: has 1 column, the header has ..."},
		{"a path with colons", `{}`, "C:/exports/a:b.csv:3: row 2: bad quoting", "line 3: bad quoting"},
		{"another row than the event's", `{}`, "x.csv:3: row 7: bad", "x.csv:3: row 7: bad"},
		{"another form", `{}`, "x.csv: cannot read", "x.csv: cannot read"},
		{"not a csv_row", "", file + ":3: row 2: bad", file[:errorWidth-3] + "..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := inbox.Open(dir, inbox.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			reason := "csv_row"
			if tc.event == "" {
				reason, tc.event = "template", "{}"
			}
			if _, err := s.DeadLetter("segments", 0, inbox.DeadLetter{Reason: reason, EventID: "cc63d2a4e0b1f7a9:2", Event: []byte(tc.event), Error: tc.err, At: dlqT0}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			stdout, _, _ := runEngine("dlq", "list", "--data", dir)
			lines := strings.Split(stdout, "\n")
			if len(lines) < 2 || !strings.HasSuffix(lines[1], "  "+tc.want) {
				t.Errorf("list:\n%s\nwant its error %q", stdout, tc.want)
			}
			stdout, _, _ = runEngine("dlq", "show", "--data", dir, "1")
			if !strings.Contains(stdout, tc.err) {
				t.Errorf("show leaves out part of the error %q:\n%s", tc.err, stdout)
			}
		})
	}
}

func TestDlqListJSON(t *testing.T) {
	dir := seedDeadLetters(t)
	stdout, _, code := runEngine("dlq", "list", "--data", dir, "--format", "json", "--pipeline", offerPipeline)
	if code != exitOK {
		t.Fatalf("code %d", code)
	}
	var dls []inbox.DeadLetter
	if err := json.Unmarshal([]byte(stdout), &dls); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if len(dls) != 2 || dls[0].ID != 1 || dls[1].ID != 4 {
		t.Fatalf("dead letters %+v", dls)
	}
	first := dls[0]
	if first.Pipeline != offerPipeline || first.Version != "7c9a466bc059" || first.EventID != "evt-1" || first.Reason != "rejected" ||
		first.Attempts != 1 || !first.At.Equal(dlqT0.Add(-3*time.Hour)) || first.Request == nil ||
		first.Request.Headers["Authorization"] != "Bearer ****" || first.Response == nil || first.Response.Status != 400 {
		t.Errorf("first dead letter %+v", first)
	}
	if !jsonEqual(first.Event, offerEvent) {
		t.Errorf("event %s", first.Event)
	}
	if !strings.Contains(stdout, "20% off <coats>") {
		t.Errorf("characters escaped for HTML:\n%s", stdout)
	}
	// Nothing selected is an empty array, not null.
	stdout, _, code = runEngine("dlq", "list", "--data", dir, "--format", "json", "--reason", "not_sent")
	if code != exitOK || stdout != "[]\n" {
		t.Errorf("code %d, %q", code, stdout)
	}
	// A limit that cuts the list says so on stderr, as the table does;
	// one that does not, says nothing.
	for limit, note := range map[string]string{"3": "3 dead letters shown; more match (the next ones: --after 3, or raise --limit)\n", "4": ""} {
		stdout, stderr, _ := runEngine("dlq", "list", "--data", dir, "--format", "json", "--limit", limit)
		if err := json.Unmarshal([]byte(stdout), &dls); err != nil || fmt.Sprint(len(dls)) != limit || stderr != note {
			t.Errorf("--limit %s: %d (%v), stderr %q, want %q", limit, len(dls), err, stderr, note)
		}
	}
}

func TestDlqShow(t *testing.T) {
	dir := seedDeadLetters(t)
	stdout, stderr, code := runEngine("dlq", "show", "1", "--data", dir)
	want := `dead letter 1
pipeline  offer-issued-to-braze-campaign
version   7c9a466bc059
event id  evt-1
received  2026-11-29T06:59:00Z
dead at   2026-11-29T07:00:00Z
reason    rejected
error     braze answered HTTP 400: Invalid Campaign ID
attempts  1
request
  POST https://rest.iad-01.braze.com/campaigns/trigger/send
  Authorization: Bearer ****
  Content-Type: application/json

  {
    "campaign_id": "9b1f3c2e",
    "recipients": [
      {
        "external_user_id": "u-1001"
      }
    ]
  }
response  HTTP 400
  {
    "message": "Invalid Campaign ID"
  }
event
  {
    "event_type": "offer_issued",
    "user_id": "u-1001",
    "offer": {
      "id": "o-1",
      "title": "20% off <coats>"
    }
  }
`
	if code != exitOK || stderr != "" || stdout != want {
		t.Errorf("code %d, stderr %q, output:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}

	for _, tc := range []struct {
		id   string
		want []string
	}{
		// A body and an excerpt that are not JSON are shown as they are;
		// a multi-line error keeps its lines, aligned.
		{"2", []string{"error     braze answered HTTP 503 after 10 attempts:\n            upstream connect error", "\n  not json\n", "response  HTTP 503\n  upstream connect error\n", "attempts  10\n"}},
		// A CSV row never reached a request.
		{"3", []string{"event id  -\n", "received  -\n", "request   none\n", "response  none\n", "event\n  {\n    \"file\": \"segments.csv\","}},
		{"4", []string{"reason    template\n", "request   none\n", "error     target.body: undefined variable \"offer\"\n"}},
	} {
		stdout, _, code := runEngine("dlq", "show", "--data", dir, tc.id)
		for _, w := range tc.want {
			if code != exitOK || !strings.Contains(stdout, w) {
				t.Errorf("show %s: code %d, output lacks %q:\n%s", tc.id, code, w, stdout)
			}
		}
	}

	stdout, _, code = runEngine("dlq", "show", "3", "--data", dir, "--format", "json")
	var dl inbox.DeadLetter
	if err := json.Unmarshal([]byte(stdout), &dl); err != nil || code != exitOK {
		t.Fatalf("code %d, %v:\n%s", code, err, stdout)
	}
	if dl.ID != 3 || dl.Pipeline != csvPipeline || dl.Reason != "csv_row" || dl.Request != nil || !jsonEqual(dl.Event, brokenRowEvent) {
		t.Errorf("json %+v", dl)
	}

	stdout, stderr, code = runEngine("dlq", "show", "42", "--data", dir)
	if code != exitProblem || stdout != "" || stderr != "engine dlq show: no dead letter 42\n" {
		t.Errorf("unknown id: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestDlqReplay(t *testing.T) {
	dir := seedDeadLetters(t)
	stdout, stderr, code := runEngine("dlq", "replay", "--data", dir, "1", "4", "1")
	want := "replayed 1 (offer-issued-to-braze-campaign): queued as event 3\n" +
		"replayed 4 (offer-issued-to-braze-campaign): queued as event 4\n" +
		"replayed 2 dead letters; they go out when engine run next starts on " + dir + "\n"
	if code != exitOK || stderr != "" || stdout != want {
		t.Fatalf("code %d, stderr %q, output:\n%s", code, stderr, stdout)
	}

	// Unknown ids are reported after the others are replayed.
	stdout, stderr, code = runEngine("dlq", "replay", "--data", dir, "42", "2")
	if code != exitProblem || stderr != "engine dlq replay: no dead letter 42\n" ||
		stdout != "replayed 2 (points-awarded-to-braze-canvas): queued as event 2\nreplayed 1 dead letter; it goes out when engine run next starts on "+dir+"\n" {
		t.Errorf("code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runEngine("dlq", "replay", "--data", dir, "1")
	if code != exitProblem || stderr != "engine dlq replay: no dead letter 1\n" || stdout != "replayed no dead letters\n" {
		t.Errorf("replayed twice: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	s := openSeeded(t, dir)
	for _, tc := range []struct {
		pipeline string
		ids      []string
		payloads []string
	}{
		{offerPipeline, []string{"evt-1", "evt-4"}, []string{offerEvent, `{"event_type":"offer_issued","user_id":"u-1004"}`}},
		{pointsPipeline, []string{"evt-2"}, []string{`{"event_type":"points_awarded","user_id":"u-1002","points":50}`}},
	} {
		recs, err := s.ReadAfter(tc.pipeline, 0, math.MaxInt)
		if err != nil || len(recs) != len(tc.ids) {
			t.Fatalf("%s pending %+v (%v)", tc.pipeline, recs, err)
		}
		for i, rec := range recs {
			if rec.ID != tc.ids[i] || !jsonEqual(rec.Payload, tc.payloads[i]) || rec.Attempts != 0 {
				t.Errorf("%s pending %+v", tc.pipeline, rec)
			}
		}
	}
	left, _ := s.DeadLetters(inbox.DeadFilter{})
	if len(left) != 1 || left[0].ID != 3 {
		t.Errorf("dead letters left %+v, want 3 only", left)
	}
}

func TestDlqReplayAll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		replay  []uint64
		skip    bool // the broken row, 3, is selected and skipped
		summary string
	}{
		{"all", nil, []uint64{1, 2, 4}, true, "replayed 3 dead letters"},
		{"pipeline", []string{"--pipeline", offerPipeline}, []uint64{1, 4}, false, "replayed 2 dead letters"},
		{"reason", []string{"--reason", "attempts_exhausted"}, []uint64{2}, false, "replayed 1 dead letter"},
		{"only broken rows", []string{"--reason", "csv_row"}, nil, true, "replayed no dead letters"},
		{"since", []string{"--since", "45m"}, []uint64{4}, true, "replayed 1 dead letter"},
		{"since time", []string{"--since", "2026-11-29T09:30:00Z"}, []uint64{4}, true, "replayed 1 dead letter"},
		{"no match", []string{"--pipeline", offerPipeline, "--reason", "csv_row"}, nil, false, "no dead letters match; nothing to replay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := seedDeadLetters(t)
			stdout, stderr, code := runEngine(append([]string{"dlq", "replay", "--all", "--data", dir}, tc.args...)...)
			if code != exitOK || stderr != "" || !strings.Contains(stdout, tc.summary) {
				t.Fatalf("code %d, stderr %q, output:\n%s", code, stderr, stdout)
			}
			s := openSeeded(t, dir)
			left, _ := s.DeadLetters(inbox.DeadFilter{})
			for _, dl := range left {
				if slices.Contains(tc.replay, dl.ID) {
					t.Errorf("dead letter %d is still there", dl.ID)
				}
			}
			if len(left)+len(tc.replay) != 4 {
				t.Errorf("%d dead letters left, want %d", len(left), 4-len(tc.replay))
			}
			queued := 0
			for _, p := range []string{offerPipeline, pointsPipeline, csvPipeline} {
				queued += s.Depth(p)
			}
			if queued != len(tc.replay) || strings.Count(stdout, ": queued as event ") != len(tc.replay) {
				t.Errorf("%d queued, want %d:\n%s", queued, len(tc.replay), stdout)
			}
			skipped := strings.Contains(stdout, "skipped 3 (segment-csv-to-sessionm-tags, csv_row): a broken row cannot be replayed: put the fixed row, under the header row, in a new file and import that (importing the whole file again would send its other rows again); drop this dead letter when done\n") &&
				strings.HasSuffix(stdout, "skipped 1 dead letter that cannot be replayed; left in place\n")
			if skipped != tc.skip {
				t.Errorf("skipped %v, want %v:\n%s", skipped, tc.skip, stdout)
			}
		})
	}
}

// A broken row's dead letter holds where the row was, and a damaged one
// bytes the engine could not read: queued again, either fails to decode
// and becomes a new "damaged" dead letter whose error has lost what the
// first one said. Replay refuses them and leaves them as they are.
func TestDlqReplayRefusesWhatCannotBeReplayed(t *testing.T) {
	dir := seedDeadLetters(t)
	s := openSeeded(t, dir)
	damaged := inbox.DeadLetter{Version: "7c9a466bc059", Event: json.RawMessage(`"\u0001garbage"`),
		Reason: "damaged", Error: "the stored event is damaged: it ends too early", At: dlqT0}
	if id, err := s.DeadLetter(offerPipeline, 0, damaged); err != nil || id != 5 {
		t.Fatalf("dead letter %d: %v", id, err)
	}
	s.Close()

	stdout, stderr, code := runEngine("dlq", "replay", "--data", dir, "3", "5", "2")
	wantErr := "engine dlq replay: dead letter 3: a broken row cannot be replayed: put the fixed row, under the header row, in a new file and import that (importing the whole file again would send its other rows again); drop this dead letter when done\n" +
		"engine dlq replay: dead letter 5: a damaged event cannot be replayed: the engine could not read it and would only fail again; drop it when done\n"
	want := "replayed 2 (points-awarded-to-braze-canvas): queued as event 2\n" +
		"replayed 1 dead letter; it goes out when engine run next starts on " + dir + "\n"
	if code != exitProblem || stderr != wantErr || stdout != want {
		t.Errorf("code %d, stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}

	stdout, stderr, code = runEngine("dlq", "replay", "--all", "--data", dir)
	want = "replayed 1 (offer-issued-to-braze-campaign): queued as event 3\n" +
		"skipped 3 (segment-csv-to-sessionm-tags, csv_row): a broken row cannot be replayed: put the fixed row, under the header row, in a new file and import that (importing the whole file again would send its other rows again); drop this dead letter when done\n" +
		"replayed 4 (offer-issued-to-braze-campaign): queued as event 4\n" +
		"skipped 5 (offer-issued-to-braze-campaign, damaged): a damaged event cannot be replayed: the engine could not read it and would only fail again; drop it when done\n" +
		"replayed 2 dead letters; they go out when engine run next starts on " + dir + "\n" +
		"skipped 2 dead letters that cannot be replayed; left in place\n"
	if code != exitOK || stderr != "" || stdout != want {
		t.Errorf("--all: code %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}

	s = openSeeded(t, dir)
	left, _ := s.DeadLetters(inbox.DeadFilter{})
	if len(left) != 2 || left[0].ID != 3 || left[0].Error != "row 3 (line 4):\n  wrong number of fields" || !jsonEqual(left[0].Event, brokenRowEvent) ||
		left[1].ID != 5 || left[1].Error != damaged.Error {
		t.Errorf("dead letters left %+v, want 3 and 5 as they were", left)
	}
	if n := s.Depth(csvPipeline); n != 0 {
		t.Errorf("%d events queued for the broken row", n)
	}
}

// Replay and drop work a chunk of dead letters at a time; how they are cut
// does not change what is done or said.
func TestDlqChangeInChunks(t *testing.T) {
	run := func(t *testing.T, chunk int, args ...string) (string, string) {
		t.Helper()
		old := dlqChunk
		dlqChunk = chunk
		defer func() { dlqChunk = old }()
		dir := seedDeadLetters(t)
		stdout, stderr, code := runEngine(append(args, "--data", dir)...)
		if code != exitOK {
			t.Errorf("%v, chunks of %d: code %d, stderr %q", args, chunk, code, stderr)
		}
		s := openSeeded(t, dir)
		left, _ := s.DeadLetters(inbox.DeadFilter{})
		queued := s.Depth(offerPipeline) + s.Depth(pointsPipeline) + s.Depth(csvPipeline)
		return strings.ReplaceAll(stdout, dir, "DIR"), fmt.Sprintf("%d dead letters left, %d queued", len(left), queued)
	}
	for _, args := range [][]string{{"dlq", "replay", "--all"}, {"dlq", "drop", "--all"}} {
		wantOut, wantState := run(t, 1000, args...)
		for _, chunk := range []int{1, 2, 3} {
			if out, state := run(t, chunk, args...); out != wantOut || state != wantState {
				t.Errorf("%v in chunks of %d: %s, output:\n%s\nwant %s, output:\n%s", args, chunk, state, out, wantState, wantOut)
			}
		}
	}
}

// On a full disk, replay says once why it stops, and what became of the
// dead letters: it printed a line for each of 3,000 it could not queue
// (a QA run), and, when it had queued them but could not remove their
// dead letters, "replayed no dead letters" and advice to drop them.
func TestDlqReplayOnAFullDisk(t *testing.T) {
	noSpaceFor := func(kind string) func(string) error {
		return func(write string) error {
			if write == kind {
				return errors.New("write: no space left on device")
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name       string
		opts       inbox.Options
		wantOut    string
		wantErr    string
		leftQueued int // at the next open, with room
		leftDead   int
	}{
		{"events not queued", inbox.Options{Fault: noSpaceFor(inbox.FaultAppend)},
			"replayed no dead letters\nskipped 1 dead letter that cannot be replayed; left in place\n",
			"3 dead letters could not be queued again, and stay dead letters: write: no space left on device; stopped after 4 of the 4 dead letters. Free space in DIR and replay them again",
			0, 4},
		{"dead letters not removed", inbox.Options{Fault: noSpaceFor(inbox.FaultReplayRemoval)},
			"replayed 1 (offer-issued-to-braze-campaign): queued as event 3\n",
			"3 events are queued again, but their dead letters could not be removed yet: write: no space left on device; the next engine run or engine dlq on DIR removes them",
			3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := dlqInboxOptions
			dlqInboxOptions = tc.opts
			defer func() { dlqInboxOptions = old }()
			dir := seedDeadLetters(t)
			stdout, stderr, code := runEngine("dlq", "replay", "--all", "--data", dir)
			stdout, stderr = strings.ReplaceAll(stdout, dir, "DIR"), strings.ReplaceAll(stderr, dir, "DIR")
			if code != exitProblem || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.wantErr) || !strings.Contains(stdout, tc.wantOut) {
				t.Errorf("code %d, stderr %q, output:\n%s", code, stderr, stdout)
			}
			dlqInboxOptions = old
			s := openSeeded(t, dir)
			left, _ := s.DeadLetters(inbox.DeadFilter{})
			queued := s.Depth(offerPipeline) + s.Depth(pointsPipeline) + s.Depth(csvPipeline)
			if queued != tc.leftQueued || len(left) != tc.leftDead {
				t.Errorf("at the next open: %d events queued, %d dead letters; want %d and %d", queued, len(left), tc.leftQueued, tc.leftDead)
			}
		})
	}
}

// An interrupt stops replay and drop between chunks: each chunk is done or
// untouched, and the output says how far they got.
func TestDlqChangeInterrupted(t *testing.T) {
	old, oldInterrupt := dlqChunk, dlqInterrupt
	defer func() { dlqChunk, dlqInterrupt = old, oldInterrupt }()
	dlqChunk = 1
	// Ctrl-C during the second chunk: heard before the third.
	dlqInterrupt = func() (func() bool, func()) {
		checks := 0
		return func() bool { checks++; return checks > 2 }, func() {}
	}
	for _, tc := range []struct {
		cmd  string
		want string
	}{
		{"replay", "replayed 1 (offer-issued-to-braze-campaign): queued as event 3\n" +
			"replayed 2 (points-awarded-to-braze-canvas): queued as event 2\n" +
			"replayed 2 dead letters; they go out when engine run next starts on DIR\n"},
		{"drop", "dropped 1 (offer-issued-to-braze-campaign, rejected): braze answered HTTP 400: Invalid Campaign ID\n" +
			"dropped 2 (points-awarded-to-braze-canvas, attempts_exhausted): braze answered HTTP 503 after 10 attempts: upstream conne...\n" +
			"dropped 2 dead letters\n"},
	} {
		dir := seedDeadLetters(t)
		stdout, stderr, code := runEngine("dlq", tc.cmd, "--all", "--data", dir)
		wantErr := "engine dlq " + tc.cmd + ": interrupted after 2 of the 4 dead letters; the other 2 are untouched\n"
		if code != exitProblem || stderr != wantErr || strings.ReplaceAll(stdout, dir, "DIR") != tc.want {
			t.Errorf("%s: code %d, stderr %q, output:\n%s", tc.cmd, code, stderr, stdout)
		}
		s := openSeeded(t, dir)
		left, _ := s.DeadLetters(inbox.DeadFilter{})
		if len(left) != 2 || left[0].ID != 3 || left[1].ID != 4 {
			t.Errorf("%s: dead letters left %+v, want 3 and 4", tc.cmd, left)
		}
		s.Close()
	}
}

func TestDlqDrop(t *testing.T) {
	dir := seedDeadLetters(t)
	stdout, stderr, code := runEngine("dlq", "drop", "2", "42", "--data", dir)
	want := "dropped 2 (points-awarded-to-braze-canvas, attempts_exhausted): braze answered HTTP 503 after 10 attempts: upstream conne...\n" +
		"dropped 1 dead letter\n"
	if code != exitProblem || stdout != want || stderr != "engine dlq drop: no dead letter 42\n" {
		t.Errorf("code %d, stderr %q, output:\n%s", code, stderr, stdout)
	}
	stdout, stderr, code = runEngine("dlq", "drop", "2", "--data", dir)
	if code != exitProblem || stdout != "dropped no dead letters\n" || stderr != "engine dlq drop: no dead letter 2\n" {
		t.Errorf("dropped twice: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runEngine("dlq", "drop", "--all", "--since", "1h", "--data", dir)
	if code != exitOK || stderr != "" || stdout != "dropped 3 (segment-csv-to-sessionm-tags, csv_row): row 3 (line 4): wrong number of fields\n"+
		"dropped 4 (offer-issued-to-braze-campaign, template): target.body: undefined variable \"offer\"\n"+
		"dropped 2 dead letters\n" {
		t.Errorf("code %d, stderr %q, output:\n%s", code, stderr, stdout)
	}
	stdout, _, code = runEngine("dlq", "drop", "--all", "--reason", "csv_row", "--data", dir)
	if code != exitOK || stdout != "no dead letters match; nothing to drop\n" {
		t.Errorf("code %d, output %q", code, stdout)
	}
	// A pipeline no dead letter has, a typo say, is named, as list does.
	stdout, stderr, code = runEngine("dlq", "drop", "--all", "--pipeline", "nope", "--data", dir)
	if code != exitOK || stdout != "no dead letters match; nothing to drop\n" ||
		!strings.HasPrefix(stderr, `engine dlq drop: no dead letter belongs to a pipeline called "nope"; pipelines with dead letters: `) {
		t.Errorf("code %d, output %q, stderr %q", code, stdout, stderr)
	}
	s := openSeeded(t, dir)
	left, _ := s.DeadLetters(inbox.DeadFilter{})
	if len(left) != 1 || left[0].ID != 1 {
		t.Errorf("dead letters left %+v, want 1 only", left)
	}
	// Dropping sends nothing: the queues stay empty.
	if n := s.Depth(pointsPipeline) + s.Depth(csvPipeline) + s.Depth(offerPipeline); n != 0 {
		t.Errorf("%d events queued after drops", n)
	}
	s.Close()

	stdout, _, code = runEngine("dlq", "drop", "--all", "--data", dir)
	if code != exitOK || !strings.HasSuffix(stdout, "dropped 1 dead letter\n") {
		t.Errorf("drop --all: code %d, %q", code, stdout)
	}
	stdout, _, _ = runEngine("dlq", "list", "--data", dir)
	if stdout != "no dead letters\n" {
		t.Errorf("after drop --all: %q", stdout)
	}
}

func TestDlqUsageErrors(t *testing.T) {
	dir := seedDeadLetters(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "name a subcommand: list, show, replay or drop"},
		{[]string{"dlq", "purge"}, `unknown subcommand "purge"`},
		{[]string{"dlq", "--data", dir, "list"}, "name the subcommand before the flags"},
		{[]string{"dlq", "list", "--bogus"}, "unknown flag --bogus"},
		{[]string{"dlq", "list", "4"}, `takes no arguments, got "4"; to see one dead letter, use engine dlq show ID`},
		{[]string{"dlq", "list", "--format", "xml"}, `--format is text or json, not "xml"`},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit -1: give a positive number, or 0 for all"},
		{[]string{"dlq", "list", "--limit", "many"}, `--limit "many": give a whole number`},
		{[]string{"dlq", "list", "--since", "yesterday"}, `--since "yesterday" is neither a duration such as 2h, 7d or 1d12h nor an RFC 3339 time`},
		{[]string{"dlq", "list", "--since", "-2h"}, `--since "-2h": give a positive duration`},
		{[]string{"dlq", "list", "--since", "9999999999d"}, `--since "9999999999d" reaches back more than 100 years; give fewer days, or leave --since out for every dead letter`},
		{[]string{"dlq", "list", "--since", "1d12"}, `--since "1d12" is neither a duration`},
		{[]string{"dlq", "list", "--since", "29/11/2026"}, "nor an RFC 3339 time such as 2026-11-29T10:00:00Z or a day such as 2026-11-29"},
		{[]string{"dlq", "list", "--since", "2026-11-29T10:00:01Z"}, `--since "2026-11-29T10:00:01Z" is in the future (it is 2026-11-29T10:00:00Z now), and no dead letter is that new`},
		{[]string{"dlq", "list", "--since", "2026-11-30"}, `--since "2026-11-30" is in the future`},
		{[]string{"dlq", "show"}, "name one dead-letter id, e.g. engine dlq show 4"},
		{[]string{"dlq", "show", "1", "2"}, "name one dead-letter id"},
		{[]string{"dlq", "show", "x1"}, `"x1" is not a dead-letter id; ids are the numbers engine dlq list shows`},
		{[]string{"dlq", "show", "1", "--format", "yaml"}, `--format is text or json, not "yaml"`},
		{[]string{"dlq", "show", "1", "--pipeline", "x"}, "unknown flag --pipeline"},
		{[]string{"dlq", "replay"}, "name dead-letter ids (engine dlq list shows them), or pass --all"},
		{[]string{"dlq", "replay", "--pipeline", offerPipeline}, "or pass --all, e.g. engine dlq replay --all --pipeline NAME"},
		{[]string{"dlq", "replay", "1", "--all"}, "name dead-letter ids or pass --all, not both"},
		{[]string{"dlq", "replay", "1", "--reason", "rejected"}, "--pipeline, --reason and --since select with --all"},
		{[]string{"dlq", "replay", "0"}, `"0" is not a dead-letter id`},
		{[]string{"dlq", "replay", "--all", "--since", "soon"}, `--since "soon" is neither`},
		// An unset variable in a script is no filter: it would select all.
		{[]string{"dlq", "drop", "--all", "--pipeline", ""}, "--pipeline is empty; give a value, or leave it out"},
		{[]string{"dlq", "list", "--reason="}, "--reason is empty"},
		{[]string{"dlq", "replay", "--all", "--format", "json"}, "unknown flag --format"},
		{[]string{"dlq", "drop"}, "or pass --all, e.g. engine dlq drop --all --pipeline NAME"},
		{[]string{"dlq", "drop", "-3"}, "unknown flag -3"},
		{[]string{"dlq", "drop", "3", "--since", "1h"}, "--pipeline, --reason and --since select with --all"},
		// A mistyped reason selected nothing, which read as "none of those".
		{[]string{"dlq", "list", "--reason", "lookup"}, `engine dlq list: --reason "lookup" is not a reason dead letters have; ` +
			"the reasons are rejected, not_sent, attempts_exhausted, lookup_rejected, template, filter, internal_error, damaged, csv_row\n"},
		{[]string{"dlq", "replay", "--all", "--reason", "Rejected"}, `--reason "Rejected" is not a reason dead letters have`},
		{[]string{"dlq", "drop", "--all", "--reason", "csv"}, `--reason "csv" is not a reason dead letters have`},
	} {
		// Each runs against a real data folder, so a command that got
		// past its checks would change it and be caught below.
		args := append(slices.Clone(tc.args), "--data", dir)
		if len(tc.args) < 2 || tc.args[1] == "--data" {
			args = tc.args
		}
		stdout, stderr, code := runEngine(args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want it to say %q", args, code, stdout, stderr, tc.want)
		}
	}
	// The subcommands are named in the usage that follows a wrong one.
	_, stderr, _ := runEngine("dlq", "purge")
	if !strings.Contains(stderr, "usage: engine dlq SUBCOMMAND") || !strings.Contains(stderr, "  replay   queue dead letters again") {
		t.Errorf("usage after an unknown subcommand:\n%s", stderr)
	}
	s := openSeeded(t, dir)
	if left, _ := s.DeadLetters(inbox.DeadFilter{}); len(left) != 4 {
		t.Errorf("a wrong command line changed the dead letters: %d left", len(left))
	}
}

func TestDlqHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "--help"}, "usage: engine dlq SUBCOMMAND [flags] [ID...]"},
		{[]string{"dlq", "-h"}, "Run 'engine dlq SUBCOMMAND --help'"},
		{[]string{"help", "dlq"}, "  drop     delete dead letters for good"},
		{[]string{"dlq", "list", "--help"}, "usage: engine dlq list [flags]"},
		{[]string{"dlq", "list", "--pipeline", "x", "-h"}, "-limit N"},
		{[]string{"dlq", "show", "--help"}, "usage: engine dlq show [flags] ID"},
		{[]string{"dlq", "replay", "--help"}, "usage: engine dlq replay [flags] (ID... | --all)"},
		{[]string{"dlq", "drop", "--help"}, "-since DURATION"},
		{[]string{"dlq", "list", "--help"}, "only dead letters with this REASON: rejected, not_sent, attempts_exhausted, lookup_rejected, template, filter, internal_error, damaged, csv_row\n"},
	} {
		stdout, stderr, code := runEngine(tc.args...)
		if code != exitOK || stderr != "" || !strings.Contains(stdout, tc.want) {
			t.Errorf("%v: code %d, stderr %q, stdout:\n%s\nwant it to say %q", tc.args, code, stderr, stdout, tc.want)
		}
	}
	stdout, _, _ := runEngine("--help")
	if !strings.Contains(stdout, "  dlq        list, show, replay or drop dead letters\n") {
		t.Errorf("engine --help does not list dlq:\n%s", stdout)
	}
}

// Without a data folder, or one the engine never used, every subcommand
// says so and leaves nothing behind.
func TestDlqNoDataFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	empty := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cut := t.TempDir()
	if err := os.WriteFile(filepath.Join(cut, "inbox.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The engine ran here and inbox.db went (a QA run was told the engine
	// had not run here).
	removed := t.TempDir()
	if err := os.WriteFile(filepath.Join(removed, "inbox.wal.1"), []byte("journalled events"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range [][]string{{"list"}, {"show", "1"}, {"replay", "1"}, {"drop", "--all"}} {
		for _, tc := range []struct {
			data string
			want string
		}{
			{missing, "no data folder " + missing + ": the engine has not run here; pass --data DIR"},
			{empty, "data folder " + empty + " has no inbox.db: the engine has not run here; pass --data DIR"},
			{file, file + " is not a folder; pass --data DIR"},
			{cut, "data folder " + cut + " has an empty inbox.db, which holds no dead letters: the engine has not run here, or the file was cut; pass --data DIR"},
			{removed, "data folder " + removed + " has a missing or empty inbox.db beside the inbox journal (inbox.wal.0 and .1): the inbox was removed or cut, with its dead letters; restore inbox.db (engine run refuses to start without it)"},
		} {
			args := append([]string{"dlq"}, sub...)
			stdout, stderr, code := runEngine(append(args, "--data", tc.data)...)
			if code != exitProblem || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v --data %s: code %d, stdout %q, stderr %q", sub, tc.data, code, stdout, stderr)
			}
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing data folder was created: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "inbox.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an inbox.db was created: %v", err)
	}
	if entries, _ := os.ReadDir(cut); len(entries) != 1 {
		t.Errorf("files were added next to the empty inbox.db: %v", entries)
	} else if info, _ := entries[0].Info(); info.Size() != 0 {
		t.Errorf("the empty inbox.db was written: %d bytes", info.Size())
	}

	// The default is ./data, the engine's own default.
	t.Chdir(t.TempDir())
	_, stderr, code := runEngine("dlq", "list")
	if code != exitProblem || stderr != "engine dlq list: no data folder ./data: the engine has not run here; pass --data DIR\n" {
		t.Errorf("code %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat("data"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("./data was created: %v", err)
	}
}

// A running engine holds the store; dlq waits for it as long as the inbox
// does (3 s), then says what to do, by who holds it (not engine run's
// advice of another --data), and changes nothing. It named the default
// admin address for an engine on another, and called another dlq a
// running engine.
func TestDlqLockedStore(t *testing.T) {
	dir := seedDeadLetters(t)
	s := openSeeded(t, dir)
	const routes = "GET /dlq lists dead letters, GET /dlq/ID shows one, POST /dlq/ID/replay replays one, DELETE /dlq/ID drops one, POST /dlq/replay?all=true and DELETE /dlq?all=true (with pipeline=, reason=, since=) replay or drop all they select\n"
	for _, tc := range []struct {
		holder *inbox.Holder
		want   string
	}{
		{nil, "is in use by another process, most likely a running engine (its inbox.db is locked); " +
			"stop it first, or, while it runs, use its admin listener (--admin-addr, default 127.0.0.1:8079): " + routes},
		{&inbox.Holder{Command: "engine run", PID: 42, Admin: "127.0.0.1:21011"}, "is in use by engine run (pid 42); " +
			"stop it first, or, while it runs, use its admin listener at http://127.0.0.1:21011: " + routes},
		{&inbox.Holder{Command: "engine run", PID: 42}, "is in use by engine run (pid 42), which has no admin listener (--admin-addr \"\"); stop it first\n"},
		{&inbox.Holder{Command: "engine dlq list", PID: 43}, "is in use by engine dlq list (pid 43); wait for it to finish, then try again\n"},
	} {
		if tc.holder != nil {
			if err := s.SetHolder(*tc.holder); err != nil {
				t.Fatal(err)
			}
		}
		stdout, stderr, code := runEngine("dlq", "drop", "--all", "--data", dir)
		if want := "engine dlq drop: data folder " + dir + " " + tc.want; code != exitProblem || stdout != "" || stderr != want {
			t.Errorf("held by %+v: code %d, stdout %q\nstderr %q\nwant   %q", tc.holder, code, stdout, stderr, want)
		}
	}
	if left, _ := s.DeadLetters(inbox.DeadFilter{}); len(left) != 4 {
		t.Errorf("%d dead letters left, want 4", len(left))
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "holder.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the holder's record outlived its Close: %v", err)
	}
}

// list, list --format json and drop --all hold a few dead letters at a
// time, not all of them: 200,000 F4 dead letters took dlq list to 1.7 GB.
func TestDlqHoldsAFewAtATime(t *testing.T) {
	const n = 96 // 18 MB
	event, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", 192<<10)})
	dir := t.TempDir()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := s.DeadLetter(offerPipeline, 0, inbox.DeadLetter{Reason: "rejected", Error: "x", Event: event, At: dlqT0}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	for _, tc := range []struct {
		args []string
		last string
	}{
		{[]string{"list"}, "96 dead letters\n"},
		{[]string{"list", "--format", "json"}, "}\n]\n"},
		{[]string{"drop", "--all"}, "dropped 96 dead letters\n"},
	} {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		w := &heapWriter{base: m.HeapAlloc}
		var stderr strings.Builder
		code := run(append(append([]string{"dlq"}, tc.args...), "--data", dir), w, &stderr)
		if code != exitOK || !strings.HasSuffix(w.tail, tc.last) {
			t.Fatalf("%s: code %d, stderr %q, output ends %q", tc.args, code, stderr.String(), w.tail)
		}
		if w.grew > 8<<20 {
			t.Errorf("%s: the heap grew by %d MB", tc.args, w.grew>>20)
		}
	}
}

// heapWriter notes how far the heap grew above base, at the first write
// and then every 256 KB written, and keeps the end of what was written.
type heapWriter struct {
	base, grew       uint64
	written, checked int
	tail             string
}

func (w *heapWriter) Write(b []byte) (int, error) {
	if w.written == 0 || w.written-w.checked >= 256<<10 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > w.base {
			w.grew = max(w.grew, m.HeapAlloc-w.base)
		}
		w.checked = w.written
	}
	w.written += len(b)
	w.tail += string(b)
	w.tail = w.tail[max(0, len(w.tail)-64):]
	return len(b), nil
}

// A pipeline whose file now answers its callers (respond:) takes no
// queued events: replayed into it, a dead letter's event waited in the
// inbox for good, out of dlq's reach (a QA run), where the admin route
// refused it.
func TestDlqReplayRefusesRespondPipelines(t *testing.T) {
	dir := seedDeadLetters(t)
	pipes := t.TempDir()
	for name, text := range map[string]string{
		offerPipeline + ".yaml":  "# a pipeline\n",
		pointsPipeline + ".yaml": "source: {type: http, path: /x}\nrespond:\n  body: {ok: true}\n",
		"connections.yaml":       "# connections\n",
	} {
		if err := os.WriteFile(filepath.Join(pipes, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code := runEngine("dlq", "replay", "--data", dir, "--pipelines", pipes, "2")
	if code != exitProblem || stdout != "replayed no dead letters\n" ||
		stderr != "engine dlq replay: dead letter 2 belongs to pipeline points-awarded-to-braze-canvas, which its file in "+pipes+" now makes answer its callers (respond:): "+
			"it takes no queued events, so if it were replayed, its event would wait where nothing delivers it; it is left as it is. Give the pipeline a target again and replay it, or drop it\n" {
		t.Errorf("code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runEngine("dlq", "replay", "--all", "--data", dir, "--pipelines", pipes)
	if code != exitOK || stderr != "" ||
		!strings.Contains(stdout, "skipped 2 (points-awarded-to-braze-canvas, attempts_exhausted): pipeline points-awarded-to-braze-canvas answers its callers (respond:) and takes no queued events; give it a target again and replay it, or drop it\n") ||
		!strings.Contains(stdout, "replayed 1 (offer-issued-to-braze-campaign)") {
		t.Errorf("--all: code %d, stderr %q, output:\n%s", code, stderr, stdout)
	}
	s := openSeeded(t, dir)
	if n := s.Depth(pointsPipeline); n != 0 {
		t.Errorf("%d events queued for %s", n, pointsPipeline)
	}
	if left, _ := s.DeadLetters(inbox.DeadFilter{Pipeline: pointsPipeline}); len(left) != 1 || left[0].ID != 2 {
		t.Errorf("dead letters of %s left %+v, want 2", pointsPipeline, left)
	}
}

// replay knows which pipelines engine run runs (--pipelines, pipelines/
// by default) and refuses a dead letter of one that no file defines (a
// renamed or removed file): queued, its event would wait in the inbox
// where nothing delivers it, and be a dead letter no more, out of reach
// of list, show and drop.
func TestDlqReplayRefusesPipelinesNoFileDefines(t *testing.T) {
	dir := seedDeadLetters(t)
	pipes := t.TempDir()
	for _, name := range []string{offerPipeline + ".yaml", "connections.yaml"} {
		if err := os.WriteFile(filepath.Join(pipes, name), []byte("# a pipeline\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code := runEngine("dlq", "replay", "--data", dir, "--pipelines", pipes, "1", "2")
	if code != exitProblem || stdout != "replayed 1 (offer-issued-to-braze-campaign): queued as event 3\nreplayed 1 dead letter; it goes out when engine run next starts on "+dir+"\n" ||
		stderr != "engine dlq replay: dead letter 2 belongs to pipeline points-awarded-to-braze-canvas, which no file in "+pipes+" defines (renamed or removed?): "+
			"if it were replayed, its event would wait where nothing delivers it, so it is left as it is. Restore the file and replay it, or drop it; if engine run runs other files, name them with --pipelines\n" {
		t.Errorf("code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runEngine("dlq", "replay", "--all", "--data", dir, "--pipelines", pipes)
	if code != exitOK || stderr != "" ||
		!strings.Contains(stdout, "skipped 2 (points-awarded-to-braze-canvas, attempts_exhausted): no file in "+pipes+" defines pipeline points-awarded-to-braze-canvas; restore its file and replay it, or drop it\n") ||
		!strings.Contains(stdout, "replayed 4 (offer-issued-to-braze-campaign)") ||
		!strings.HasSuffix(stdout, "skipped 2 dead letters that cannot be replayed; left in place\n") {
		t.Errorf("--all: code %d, stderr %q, output:\n%s", code, stderr, stdout)
	}

	// Without --pipelines, pipelines/ is asked; where there is none,
	// nothing is replayed.
	t.Chdir(t.TempDir())
	stdout, stderr, code = runEngine("dlq", "replay", "--data", dir, "2")
	if code != exitProblem || stdout != "" || stderr != "engine dlq replay: --pipelines pipelines/: no such file or folder; "+
		"name the pipeline files or folders engine run runs with --pipelines PATH, for replay to know which pipelines there are\n" {
		t.Errorf("no pipelines/: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	s := openSeeded(t, dir)
	if left, _ := s.DeadLetters(inbox.DeadFilter{}); len(left) != 2 || left[0].ID != 2 || left[1].ID != 3 {
		t.Errorf("dead letters left %+v, want 2 and 3", left)
	}
	if n := s.Depth(pointsPipeline); n != 0 {
		t.Errorf("%d events queued for %s", n, pointsPipeline)
	}
}
