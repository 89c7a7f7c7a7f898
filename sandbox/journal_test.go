package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestJournalKeepsTheNewestAndCountsDropped(t *testing.T) {
	j := newJournal(3, 0)
	for i := range 5 {
		j.add(Entry{Path: "/braze/users/track", Status: 200 + i})
	}
	page := j.find(journalQuery{})
	if len(page.Requests) != 3 || page.Requests[0].ID != 3 || page.Requests[2].ID != 5 {
		t.Fatalf("kept %+v, want ids 3..5", page.Requests)
	}
	if page.Dropped != 2 || page.NextSince != 5 {
		t.Fatalf("dropped %d next_since %d, want 2 and 5", page.Dropped, page.NextSince)
	}
}

// Across chunks: the oldest are dropped chunk after chunk, and since=
// starts where it says, whatever was dropped before it.
func TestJournalAcrossChunks(t *testing.T) {
	const size, added = 2*journalChunk + 100, 5*journalChunk + 7
	j := newJournal(size, 0)
	for range added {
		j.add(Entry{Path: "/braze/users/track"})
	}
	oldest := int64(added - size + 1)
	tests := []struct {
		since, limit    int64
		firstID, lastID int64 // 0: none
		next            int64
	}{
		{0, 0, oldest, added, added},
		{oldest - 500, 0, oldest, added, added},         // since points into what was dropped
		{oldest + 1500, 0, oldest + 1501, added, added}, // in the middle, in another chunk
		{oldest + 1500, 10, oldest + 1501, oldest + 1510, oldest + 1510},
		{added - 1, 0, added, added, added},
		{added, 0, 0, 0, added},
		{added + 50, 0, 0, 0, added + 50}, // ahead of the journal (after a restart)
	}
	for _, tt := range tests {
		page := j.find(journalQuery{since: tt.since, limit: int(tt.limit)})
		if page.Dropped != added-size || page.NextSince != tt.next {
			t.Errorf("since=%d: dropped %d, next_since %d; want %d and %d", tt.since, page.Dropped, page.NextSince, added-size, tt.next)
		}
		if tt.firstID == 0 {
			if len(page.Requests) != 0 {
				t.Errorf("since=%d: %d requests, want none", tt.since, len(page.Requests))
			}
			continue
		}
		if n := len(page.Requests); n != int(tt.lastID-tt.firstID+1) || page.Requests[0].ID != tt.firstID || page.Requests[n-1].ID != tt.lastID {
			t.Errorf("since=%d limit=%d: %d requests, want ids %d..%d", tt.since, tt.limit, n, tt.firstID, tt.lastID)
			continue
		}
		for i, e := range page.Requests {
			if e.ID != tt.firstID+int64(i) {
				t.Fatalf("since=%d: request %d has id %d, want %d", tt.since, i, e.ID, tt.firstID+int64(i))
			}
		}
	}
	if len(j.chunks) > size/journalChunk+2 {
		t.Errorf("%d chunks for %d entries: dropped chunks are kept", len(j.chunks), size)
	}
	j.reset()
	j.add(Entry{})
	if page := j.find(journalQuery{}); len(page.Requests) != 1 || page.Requests[0].ID != added+1 || page.Dropped != 0 {
		t.Errorf("after reset: %+v", page)
	}
}

// Bodies count against a byte budget too: big ones push the oldest out.
func TestJournalByteBudget(t *testing.T) {
	j := newJournal(100, 1000)
	for range 5 {
		j.add(Entry{Body: strings.Repeat("x", 400)})
	}
	page := j.find(journalQuery{})
	if len(page.Requests) != 2 || page.Dropped != 3 || page.Requests[0].ID != 4 {
		t.Fatalf("kept %d (first id %d), dropped %d; want the two newest within 1000 bytes", len(page.Requests), page.Requests[0].ID, page.Dropped)
	}
	// One entry bigger than the budget is still kept: the newest always is.
	j.add(Entry{Body: strings.Repeat("y", 5000)})
	if page := j.find(journalQuery{}); len(page.Requests) != 1 || page.Requests[0].ID != 6 {
		t.Fatalf("after a huge body: %+v", page.Requests)
	}
}

func TestJournalQueries(t *testing.T) {
	j := newJournal(0, 0)
	j.add(Entry{Emulator: SessionMCore, Method: "POST", Path: "/sessionm/core/priv/v1/apps/k/users/u1/tags"})
	j.add(Entry{Emulator: Braze, Method: "POST", Path: "/braze/campaigns/trigger/send"})
	j.add(Entry{Emulator: SessionMCore, Method: "GET", Path: "/sessionm/core/priv/v1/apps/k/users/u1"})
	j.add(Entry{Emulator: Braze, Method: "POST", Path: "/braze/users/track"})

	tests := []struct {
		query   string
		wantIDs []int64
		next    int64
		count   int // with count=true, which ignores limit
	}{
		{"", []int64{1, 2, 3, 4}, 4, 4},
		{"since=2", []int64{3, 4}, 4, 2},
		{"path=/braze/users/track", []int64{4}, 4, 1},
		{"path=/sessionm/core/*", []int64{1, 3}, 4, 2},
		{"emulator=braze", []int64{2, 4}, 4, 2},
		{"method=get", []int64{3}, 4, 1},
		// With a limit, next_since stops at the last one returned so the
		// rest can be fetched; count=true counts them all.
		{"limit=1&emulator=braze", []int64{2}, 2, 2},
		{"since=4", nil, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			vals, _ := url.ParseQuery(tt.query)
			q, err := parseJournalQuery(vals)
			if err != nil {
				t.Fatal(err)
			}
			page := j.find(q)
			var ids []int64
			for _, e := range page.Requests {
				ids = append(ids, e.ID)
			}
			if len(ids) != len(tt.wantIDs) {
				t.Fatalf("ids %v, want %v", ids, tt.wantIDs)
			}
			for i := range ids {
				if ids[i] != tt.wantIDs[i] {
					t.Fatalf("ids %v, want %v", ids, tt.wantIDs)
				}
			}
			if page.NextSince != tt.next {
				t.Fatalf("next_since %d, want %d", page.NextSince, tt.next)
			}
			q.count = true
			if c := j.countMatches(q); c.Count != tt.count || c.NextSince != 4 {
				t.Fatalf("count=true: count %d, next_since %d; want %d and 4", c.Count, c.NextSince, tt.count)
			}
		})
	}
}

func TestJournalQueryErrors(t *testing.T) {
	for _, q := range []string{"since=-1", "since=x", "limit=1.5", "emulator=shopify", "fields=id,bodies", "fields=,", "count=yes"} {
		vals, _ := url.ParseQuery(q)
		if _, err := parseJournalQuery(vals); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
}

func TestJournalIDsGrowAcrossReset(t *testing.T) {
	j := newJournal(0, 0)
	j.add(Entry{})
	j.reset()
	if id := j.add(Entry{Time: time.Now()}); id != 2 {
		t.Fatalf("id after reset %d, want 2: a poller's since-id must not see old ids again", id)
	}
}

func TestJournalMasksCredentials(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer sandbox-braze-key")
	h.Set("Content-Type", "application/json")
	h.Set("Cookie", "session=1")
	var got map[string]string
	if err := json.Unmarshal(journalHeaders(h), &got); err != nil {
		t.Fatal(err)
	}
	if got["Authorization"] != "Bearer ****" || got["Content-Type"] != "application/json" {
		t.Fatalf("headers %v", got)
	}
	if _, ok := got["Cookie"]; ok {
		t.Fatal("journal keeps headers it has no use for")
	}
	if maskCredential("token") != "****" {
		t.Fatal("a bare credential is not masked")
	}
}

// fields= gives each entry's named fields exactly as the full answer has
// them, and nothing else.
func TestJournalFields(t *testing.T) {
	j := newJournal(0, 0)
	at := time.Date(2026, 11, 29, 16, 4, 5, 123456789, time.UTC)
	j.add(Entry{Time: at, Emulator: Braze, Method: "POST", Path: "/braze/users/track?<x>", Query: "a=1&b=\"2\"",
		Header: journalHeaders(http.Header{"Content-Type": {"application/json"}, "User-Agent": {"a<b"}, "Idempotency-Key": {`k"1`}}), Body: "{\"é\":\"\\n\"}", Truncated: true, Status: 201, Fault: "latency", Duration: 1500 * time.Microsecond})
	j.add(Entry{Time: at.Add(time.Second), Emulator: SessionMCore, Method: "GET", Path: "/sessionm/core/x"})
	for _, fields := range []string{"id,time,path,status,duration_ns", strings.Join(entryFields, ","), "body", "header,truncated,fault,query,emulator,method"} {
		t.Run(fields, func(t *testing.T) {
			q, err := parseJournalQuery(url.Values{"fields": {fields}})
			if err != nil {
				t.Fatal(err)
			}
			page := j.find(q)
			var got, full map[string]any
			if err := json.Unmarshal(page.appendFields(nil, q.fields), &got); err != nil {
				t.Fatal(err)
			}
			all, _ := json.Marshal(page)
			if err := json.Unmarshal(all, &full); err != nil {
				t.Fatal(err)
			}
			want := strings.Split(fields, ",")
			if got["next_since"] != full["next_since"] || got["dropped"] != full["dropped"] {
				t.Fatalf("page %v, want next_since and dropped of %v", got, full)
			}
			gotReqs, fullReqs := got["requests"].([]any), full["requests"].([]any)
			if len(gotReqs) != len(fullReqs) {
				t.Fatalf("%d entries, want %d", len(gotReqs), len(fullReqs))
			}
			for i := range gotReqs {
				g, f := gotReqs[i].(map[string]any), fullReqs[i].(map[string]any)
				if len(g) != len(want) {
					t.Errorf("entry %d has %v, want only %v", i, g, want)
				}
				for _, name := range want {
					if !reflect.DeepEqual(g[name], f[name]) && !(f[name] == nil && isZeroJSON(g[name])) {
						t.Errorf("entry %d: %s = %#v, full answer has %#v", i, name, g[name], f[name])
					}
				}
			}
		})
	}
}

// isZeroJSON: the full answer leaves out empty query, truncated and fault
// (omitempty), fields= prints them as zero values.
func isZeroJSON(v any) bool { return v == "" || v == false || v == nil }

// The headers are kept as the JSON encoding/json gives the same map,
// but for <, > and &, which are left as they are (as the engine sends
// JSON).
func TestJournalHeadersJSON(t *testing.T) {
	for _, h := range []http.Header{
		{},
		{"User-Agent": {"Braze Sender <1>"}, "Authorization": {"Basic abc"}, "Content-Type": {"application/json"}, "Idempotency-Key": {"k\"\\é\n"}, "X-Other": {"x"}},
		{"Idempotency-Key": {"a&b"}},
	} {
		want := map[string]string{}
		for _, name := range []string{"Authorization", "Content-Type", "User-Agent", "Idempotency-Key"} {
			if v := h.Get(name); v != "" {
				if name == "Authorization" {
					v = maskCredential(v)
				}
				want[name] = v
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(want); err != nil {
			t.Fatal(err)
		}
		wantJSON := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := journalHeaders(h); string(got) != string(wantJSON) {
			t.Errorf("journalHeaders(%v) = %s, want %s", h, got, wantJSON)
		}
	}
}

// fields= knows every field of Entry, in the order Entry prints them: a
// field added to Entry must be added to entryFields and appendField too.
func TestEntryFieldsAreEntrysJSONNames(t *testing.T) {
	var tags []string
	et := reflect.TypeFor[Entry]()
	for i := range et.NumField() {
		name, _, _ := strings.Cut(et.Field(i).Tag.Get("json"), ",")
		tags = append(tags, name)
	}
	if !reflect.DeepEqual(tags, entryFields) {
		t.Errorf("Entry's JSON names %v, entryFields %v", tags, entryFields)
	}
}
