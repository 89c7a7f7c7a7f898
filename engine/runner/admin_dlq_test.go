package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// A broken row's dead letter holds where the row was, and a damaged one
// bytes the engine could not read. Queued again, either failed to decode
// and became a new "damaged" dead letter whose error had lost what the
// first one said. The admin listener refuses them and leaves them be.
func TestAdminRefusesToReplayWhatCannotBeReplayed(t *testing.T) {
	dir := t.TempDir()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Bytes the engine cannot read, queued before it starts, become a
	// damaged dead letter.
	if _, err := s.Append(csvPipeline, inbox.NewEvent{Payload: []byte("\x01garbage")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	h := start(t, setup{users: 20, dataDir: dir})
	file := writeCSV(t, t.TempDir(), 10, 4)
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	h.drained()
	before, _ := h.store.DeadLetters(inbox.DeadFilter{})
	byReason := map[string]inbox.DeadLetter{}
	for _, dl := range before {
		byReason[dl.Reason] = dl
	}
	if len(before) != 2 || len(byReason) != 2 {
		t.Fatalf("want a damaged and a csv_row dead letter, got %+v", before)
	}
	admin := httptest.NewServer(h.r.AdminHandler(nil))
	defer admin.Close()
	for _, tc := range []struct {
		dl   inbox.DeadLetter
		want string
	}{
		{byReason["damaged"], "(damaged): a damaged event cannot be replayed: the engine could not read it and would only fail again; drop it when done"},
		{byReason["csv_row"], "(csv_row): a broken row cannot be replayed: fix the file and import it again; drop it when done"},
	} {
		a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, tc.dl.ID), "", nil)
		if want := fmt.Sprintf("dead letter %d %s", tc.dl.ID, tc.want); a.status != 409 || !strings.Contains(a.body, want) {
			t.Errorf("replay %s: %d %s, want 409 and %q", tc.dl.Reason, a.status, a.body, want)
		}
	}
	if n := h.r.Depth(csvPipeline); n != 0 {
		t.Errorf("%d events queued by refused replays", n)
	}
	after, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if !reflect.DeepEqual(after, before) {
		t.Errorf("dead letters changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// GET /dlq?since= reads what engine dlq --since reads (2h, 7d, an RFC 3339
// time), and refuses the rest with its message.
func TestAdminListSince(t *testing.T) {
	h := start(t, setup{})
	now := time.Now()
	for _, at := range []time.Duration{3 * 24 * time.Hour, 3 * time.Hour, 10 * time.Minute} {
		if _, err := h.store.DeadLetter(csvPipeline, 0, inbox.DeadLetter{Reason: "rejected", Event: []byte(`{}`), At: now.Add(-at)}); err != nil {
			t.Fatal(err)
		}
	}
	admin := httptest.NewServer(h.r.AdminHandler(nil))
	defer admin.Close()
	for _, tc := range []struct {
		since  string
		status int
		want   string // the number of dead letters, or the error
	}{
		{"1h", 200, "1"},
		{"90m", 200, "1"},
		{"7d", 200, "3"},
		{"2d", 200, "2"},
		{now.Add(-4 * time.Hour).UTC().Format(time.RFC3339), 200, "2"},
		{"yesterday", 400, `since \"yesterday\" is neither a duration such as 2h or 7d nor an RFC 3339 time such as 2026-11-29T10:00:00Z`},
		{"-2h", 400, `since \"-2h\": give a positive duration, how far back to look`},
	} {
		a := do(t, "GET", admin.URL+"/dlq?since="+url.QueryEscape(tc.since), "", nil)
		got := a.body
		if a.status == 200 {
			var dls []inbox.DeadLetter
			if err := json.Unmarshal([]byte(a.body), &dls); err != nil {
				t.Fatalf("since=%s: %v", tc.since, err)
			}
			got = strconv.Itoa(len(dls))
		}
		if a.status != tc.status || !strings.Contains(got, tc.want) {
			t.Errorf("since=%s: %d %s, want %d %s", tc.since, a.status, got, tc.status, tc.want)
		}
	}
}
