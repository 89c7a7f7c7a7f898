package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
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
	admin := h.admin()
	for _, tc := range []struct {
		dl   inbox.DeadLetter
		want string
	}{
		{byReason["damaged"], "(damaged): a damaged event cannot be replayed: the engine could not read it and would only fail again; drop it when done"},
		{byReason["csv_row"], "(csv_row): a broken row cannot be replayed: put the fixed row, under the header row, in a new file and import that (importing the whole file again would send its other rows again); drop this dead letter when done"},
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
	admin := h.admin()
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
		{"yesterday", 400, `since \"yesterday\" is neither a duration such as 2h, 7d or 1d12h nor an RFC 3339 time such as 2026-11-29T10:00:00Z or a day such as 2026-11-29`},
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
	// A + left unescaped in the query reads as a space: the answer says
	// how to write it.
	if a := do(t, "GET", admin.URL+"/dlq?since=2026-11-29T10:00:00+01:00", "", nil); a.status != 400 || !strings.Contains(a.body, "written %2B in a URL") {
		t.Errorf("since with a raw +: %d %s, want 400 and how to write it", a.status, a.body)
	}
}

// GET /dlq answers a page: 100 dead letters unless limit= says otherwise,
// after= the last id of the page before.
func TestAdminListPages(t *testing.T) {
	h := start(t, setup{})
	for i := range 250 {
		reason := "rejected"
		if i%2 == 1 {
			reason = "attempts_exhausted"
		}
		if _, err := h.store.DeadLetter(csvPipeline, 0, inbox.DeadLetter{Reason: reason, Event: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	admin := h.admin()
	for _, tc := range []struct {
		query  string
		status int
		want   string // the first and last id and how many, or the error
	}{
		{"", 200, "1..100 (100)"},
		{"after=100", 200, "101..200 (100)"},
		{"after=200", 200, "201..250 (50)"},
		{"after=250", 200, "none"},
		{"limit=3&after=10", 200, "11..13 (3)"},
		{"limit=0", 200, "1..250 (250)"},
		{"limit=500", 200, "1..250 (250)"},
		{"reason=attempts_exhausted&after=100&limit=2", 200, "102..104 (2)"},
		{"reason=attempts_exhausted&after=200", 200, "202..250 (25)"},
		{"after=x", 400, `after=\"x\" is not a dead letter id`},
		{"after=-1", 400, `after=\"-1\" is not a dead letter id`},
		{"limit=-1", 400, `limit=\"-1\": give a positive number, or 0 for all`},
		{"limit=x", 400, `limit=\"x\": give a positive number, or 0 for all`},
		{"pipline=x", 400, `unknown parameter pipline=; GET /dlq takes pipeline=, reason=, since=, limit=, after=`},
		{"reason=rejected&reason=template", 400, `reason= is given 2 times; give it once`},
		{"reason=lookup", 400, `reason=\"lookup\" is not a reason dead letters have; the reasons are rejected, not_sent, attempts_exhausted, lookup_rejected, template, filter, internal_error, damaged, csv_row`},
	} {
		a := do(t, "GET", admin.URL+"/dlq?"+tc.query, "", nil)
		got := a.body
		if a.status == 200 {
			var dls []inbox.DeadLetter
			if err := json.Unmarshal([]byte(a.body), &dls); err != nil {
				t.Fatalf("%s: %v", tc.query, err)
			}
			got = "none"
			if len(dls) > 0 {
				got = fmt.Sprintf("%d..%d (%d)", dls[0].ID, dls[len(dls)-1].ID, len(dls))
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q", tc.query, ct)
			}
		}
		if a.status != tc.status || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %d %s, want %d %s", tc.query, a.status, got, tc.status, tc.want)
		}
	}
}

// GET /dlq?pipeline= with a name no pipeline runs under and no dead
// letter has (a typo) answered [] as a pipeline with nothing wrong does.
// The answer stays an array; an X-Note header says so.
func TestAdminListNotesAnUnknownPipeline(t *testing.T) {
	h := start(t, setup{})
	if _, err := h.store.DeadLetter("renamed-pipeline", 0, inbox.DeadLetter{Reason: "rejected", Event: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	admin := h.admin()
	for _, tc := range []struct {
		query string
		note  string
	}{
		{"pipeline=nope", `no pipeline called "nope" runs here or has dead letters; running: braze-segment-to-sessionm-tags, offer-issued-to-braze-campaign, points-awarded-to-braze-canvas, segment-csv-to-sessionm-tags, wallet-for-connected-content`},
		{"pipeline=" + csvPipeline, ""},                   // runs, has none
		{"pipeline=renamed-pipeline&reason=template", ""}, // not running, has some
		{"reason=template", ""},                           // no pipeline named
	} {
		a := do(t, "GET", admin.URL+"/dlq?"+tc.query, "", nil)
		if a.status != 200 || strings.TrimSpace(a.body) != "[]" {
			t.Errorf("%s: %d %s; want 200 []", tc.query, a.status, a.body)
		}
		if got := a.header.Get("X-Note"); got != tc.note {
			t.Errorf("%s: X-Note %q, want %q", tc.query, got, tc.note)
		}
	}
}

// GET /dlq writes dead letters as it reads them: asked for all of them,
// the engine holds a few at a time, not the whole answer. It used to
// hold every one of them decoded, and the answer encoded besides, which
// for 200,000 F4 dead letters took it from 9 MB to 1.3 GB.
func TestAdminListHoldsAFewAtATime(t *testing.T) {
	dir := t.TempDir()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	event, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", 192<<10)})
	const n = 64 // 12 MB
	for range n {
		if _, err := s.DeadLetter(csvPipeline, 0, inbox.DeadLetter{Reason: "rejected", Event: event}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	h := start(t, setup{dataDir: dir})
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w := &heapWriter{header: http.Header{}, base: m.HeapAlloc}
	h.r.AdminHandler(nil).ServeHTTP(w, httptest.NewRequest("GET", "/dlq?limit=0", nil))
	if w.status != 200 || w.written < n*len(event) || w.last != ']' {
		t.Fatalf("status %d, %d bytes ending in %q", w.status, w.written, w.last)
	}
	if w.grew > 8<<20 {
		t.Errorf("the heap grew by %d MB while answering %d MB", w.grew>>20, w.written>>20)
	}
}

// heapWriter is a ResponseWriter that notes how far the heap grew above
// base by each write, measured after a collection at the first write and
// at each MiB written after it: what the handler holds, not garbage yet
// to be collected. Read between collections (at GOGC 10), the heap's
// growth was a tenth of what the process held besides, which the tests
// before this one leave behind: 21 MB for the same answer in a package
// run that held 190 MB (-count=10).
type heapWriter struct {
	header   http.Header
	status   int
	base     uint64
	grew     uint64
	written  int
	measured int // the next measurement is due at this many bytes written
	last     byte
}

func (w *heapWriter) Header() http.Header { return w.header }
func (w *heapWriter) WriteHeader(s int)   { w.status = s }
func (w *heapWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	if w.written >= w.measured {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > w.base {
			w.grew = max(w.grew, m.HeapAlloc-w.base)
		}
		w.measured = w.written + 1<<20
	}
	w.written += len(b)
	if n := bytes.TrimSpace(b); len(n) > 0 {
		w.last = n[len(n)-1]
	}
	return len(b), nil
}

// inbox.Reasons, which engine dlq --reason and GET /dlq?reason= accept,
// are the reasons this package gives dead letters, and the README's Dead
// letters says what each means. The --reason help once offered "lookup"
// for what is stored as lookup_rejected, and selected nothing.
func TestDeadLetterReasonsAreTheOnesGiven(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// l.dead(it, attempt, "rejected", ...), reason := "damaged",
	// Reason: "csv_row".
	given := regexp.MustCompile(`(?:\.dead\([^,()]+, [^,()]+, |\breason :?= |\bReason: +)"([a-z_]+)"`)
	found := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range given.FindAllSubmatch(src, -1) {
			found[string(m[1])] = true
		}
	}
	got, want := slices.Sorted(maps.Keys(found)), slices.Sorted(slices.Values(inbox.Reasons))
	if !slices.Equal(got, want) {
		t.Errorf("the code gives dead letters the reasons %v; inbox.Reasons has %v", got, want)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Dead letters\n")
	section, _, _ = strings.Cut(section, "\n## ")
	for _, r := range inbox.Reasons {
		if !strings.Contains(section, "\n- `"+r+"`: ") {
			t.Errorf("the README's Dead letters has no line \"- `%s`: ...\"", r)
		}
	}
}

// The line that says a dead letter was replayed names its event as the
// lines about it before did, so one search of the log follows it: it gave
// the dead letter's number only.
func TestAdminReplayLogNamesTheEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		dirs []string
		// deadLetter makes one dead letter and returns how the log
		// named its event.
		deadLetter func(h *harness) string
	}{
		{"webhook event", []string{"testdata/pipelines"}, func(h *harness) string {
			h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":422,"count":1}`)
			a := h.post("/hooks/tags/"+ana, `{"tags":["a"]}`, map[string]string{"Authorization": coreBasic})
			var answer struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal([]byte(a.body), &answer); err != nil || answer.EventID == "" {
				h.t.Fatalf("setup: %d %s", a.status, a.body)
			}
			return answer.EventID
		}},
		{"CSV row", nil, func(h *harness) string {
			h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":422,"count":1}`)
			file := writeCSV(h.t, h.t.TempDir(), 1, 0)
			if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
				h.t.Fatal(err)
			}
			return "segment.csv row 1 (" + fileHash(h.t, file) + ":1)"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &runner.LockedBuffer{}
			h := start(t, setup{dirs: tc.dirs, users: 2, opts: func(o *runner.Options) {
				o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			}})
			want := tc.deadLetter(h)
			h.drained()
			dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
			if len(dls) != 1 {
				t.Fatalf("setup: dead letters %+v; want 1", dls)
			}
			admin := h.admin()
			if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, dls[0].ID), "", nil); a.status != 200 {
				t.Fatalf("replay: %d %s", a.status, a.body)
			}
			var named []string
			for _, l := range strings.Split(logs.String(), "\n") {
				var line struct{ Msg, Event string }
				if json.Unmarshal([]byte(l), &line) == nil && (line.Msg == "dead-lettered" || line.Msg == "dead letter replayed") {
					named = append(named, line.Msg+": "+line.Event)
				}
			}
			if w := []string{"dead-lettered: " + want, "dead letter replayed: " + want}; !slices.Equal(named, w) {
				t.Errorf("lines name %q; want %q", named, w)
			}
		})
	}
}

// A dead letter replayed while the engine runs that fails again makes a
// dead letter that still says when its event arrived: it said when the
// replay was asked for, though dlq show calls it "when the event arrived".
func TestReplayedDeadLetterKeepsWhenItsEventArrived(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 2})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":422,"count":2}`)
	if a := h.post("/hooks/tags/"+ana, `{"tags":["a"]}`, map[string]string{"Authorization": coreBasic}); a.status != 200 {
		t.Fatalf("webhook: %d %s", a.status, a.body)
	}
	h.drained()
	first, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(first) != 1 {
		t.Fatalf("dead letters %+v; want 1", first)
	}
	time.Sleep(20 * time.Millisecond) // the replay's time is another
	admin := h.admin()
	if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, first[0].ID), "", nil); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	h.eventually("the replay dead-lettered again", func() bool {
		dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
		return len(dls) == 1 && dls[0].ID != first[0].ID
	})
	again, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if !again[0].Received.Equal(first[0].Received) || again[0].EventID != first[0].EventID {
		t.Errorf("the replay's dead letter: event %s received %s; want %s received %s", again[0].EventID, again[0].Received, first[0].EventID, first[0].Received)
	}
}

// A dead letter of a pipeline that now answers its callers, or of one not
// running, is refused with what to do: the answer said "not running here"
// of a respond pipeline /status showed running, and gave no next step.
func TestAdminReplayRefusalSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	s, err := inbox.Open(dir, inbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"wallet-for-connected-content", "renamed-away"} {
		if _, err := s.DeadLetter(p, 0, inbox.DeadLetter{Event: []byte(`{}`), Reason: "rejected"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	h := start(t, setup{users: 2, dataDir: dir})
	admin := h.admin()
	for id, want := range map[int]string{
		1: "dead letter 1 belongs to pipeline wallet-for-connected-content, which now answers its callers (respond:) and takes no queued events; give it a target again and replay the dead letter, or drop it (DELETE /dlq/1)",
		2: "dead letter 2 belongs to pipeline renamed-away, which is not running here (its file was renamed or removed, or does not load: see /status); restore it and replay the dead letter, or drop it (DELETE /dlq/2)",
	} {
		if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, id), "", nil); a.status != 409 || !strings.Contains(a.body, want) {
			t.Errorf("replay %d: %d %s, want 409 and %q", id, a.status, a.body, want)
		}
	}
	if left, _ := h.store.DeadLetters(inbox.DeadFilter{}); len(left) != 2 {
		t.Errorf("dead letters left %+v, want both", left)
	}
}

// A dead letter dropped through the admin listener, which takes no
// credentials, is gone for good: the log says which, and what it was.
func TestAdminDropIsLogged(t *testing.T) {
	logs := &runner.LockedBuffer{}
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 2, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":422,"count":1}`)
	a := h.post("/hooks/tags/"+ana, `{"tags":["a"]}`, map[string]string{"Authorization": coreBasic})
	var answer struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(a.body), &answer); err != nil || answer.EventID == "" {
		t.Fatalf("setup: %d %s", a.status, a.body)
	}
	h.drained()
	dls, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dls) != 1 {
		t.Fatalf("setup: dead letters %+v; want 1", dls)
	}
	if a := do(t, "DELETE", fmt.Sprintf("%s/dlq/%d", h.admin().URL, dls[0].ID), "", nil); a.status != 204 {
		t.Fatalf("drop: %d %s", a.status, a.body)
	}
	var dropped []string
	for _, l := range strings.Split(logs.String(), "\n") {
		var line struct {
			Msg, Pipeline, Version, Reason, Event string
			DeadLetter                            uint64 `json:"dead_letter"`
		}
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "dead letter dropped" {
			dropped = append(dropped, fmt.Sprint(line.DeadLetter, " ", line.Pipeline, " ", line.Version, " ", line.Reason, " ", line.Event))
		}
	}
	if want := []string{fmt.Sprint(dls[0].ID, " ", dls[0].Pipeline, " ", dls[0].Version, " rejected ", answer.EventID)}; dls[0].Version == "" || !slices.Equal(dropped, want) {
		t.Errorf("log lines of the drop %q; want %q", dropped, want)
	}
}
