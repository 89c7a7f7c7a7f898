package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors/csvfile"
	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/internal/ids"
)

func TestPercentiles(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sample []time.Duration
		ps     []float64
		want   []time.Duration
	}{
		{"empty", nil, []float64{50, 99}, ms(0, 0)},
		{"one", ms(7), []float64{50, 99, 100}, ms(7, 7, 7)},
		// Nearest rank: p50 of 1..10 is the 5th value, p99 the 10th.
		{"ten, unsorted", ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), []float64{50, 90, 99, 100}, ms(5, 9, 10, 10)},
		{"hundred", ms(seq(1, 100)...), []float64{1, 50, 99}, ms(1, 50, 99)},
		{"tiny p", ms(3, 1, 2), []float64{0.001}, ms(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := percentiles(tt.sample, tt.ps...)
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Errorf("p%g = %v, want %v", tt.ps[i], got[i], tt.want[i])
				}
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a ")" must not shift the fields.
	const stat = "4242 (my (odd) engine) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 2000000 5000 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v (325 ticks of 10 ms)", got, want)
	}
	for _, bad := range []string{"4242 no parentheses S 1", "4242 (engine) S 1 2 3", "4242 (engine) S 1 2 3 4 5 6 7 8 9 10 x 5"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) gave no error", bad)
		}
	}
}

func TestExited(t *testing.T) {
	for status, want := range map[string]bool{
		"Name:\tengine\nUmask:\t0022\nState:\tZ (zombie)\nTgid:\t7\n":            true,
		"Name:\tengine\nState:\tX (dead)\n":                                      true,
		"Name:\tengine\nUmask:\t0022\nState:\tS (sleeping)\nRssAnon:\t 100 kB\n": false,
		"Name:\tZombie\nState:\tR (running)\n":                                   false,
	} {
		if got := exited(status); got != want {
			t.Errorf("exited(%q) = %v, want %v", status, got, want)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	const status = "Name:\tengine\nVmPeak:\t 2000000 kB\nVmHWM:\t   48640 kB\nVmRSS:\t   40000 kB\n"
	got, err := parseStatusKB(status, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(48640 * 1024); got != want {
		t.Errorf("VmHWM = %d, want %d", got, want)
	}
	if _, err := parseStatusKB("Name:\tzombie\nState:\tZ (zombie)\n", "VmHWM"); err == nil {
		t.Error("a status without VmHWM gave no error")
	}
	if _, err := parseStatusKB("VmHWM:\t12 MB\n", "VmHWM"); err == nil {
		t.Error("a value not in kB gave no error")
	}
}

func TestGeneratedIndexes(t *testing.T) {
	for _, i := range []int{0, 1, 255, 999_999, 9_999_999} {
		if got, ok := generatedUserIndex(sessionmemu.GeneratedUserID(i)); !ok || got != i {
			t.Errorf("generatedUserIndex(GeneratedUserID(%d)) = %d, %v", i, got, ok)
		}
		if got, ok := generatedExternalIndex(sessionmemu.GeneratedExternalID(i)); !ok || got != i {
			t.Errorf("generatedExternalIndex(GeneratedExternalID(%d)) = %d, %v", i, got, ok)
		}
	}
	for _, bad := range []string{"", "u-1001", "3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "00000001-32f5-11ef-8000-000000000002"} {
		if _, ok := generatedUserIndex(bad); ok {
			t.Errorf("generatedUserIndex(%q) accepted it", bad)
		}
	}
	for _, bad := range []string{"load-1", "load-+00001", "u-1001", "load-"} {
		if _, ok := generatedExternalIndex(bad); ok {
			t.Errorf("generatedExternalIndex(%q) accepted it", bad)
		}
	}
}

func TestOfferBody(t *testing.T) {
	example, err := os.ReadFile("../../examples/events/sessionm-offer-issued.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := offerBody(example, "run1")
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		EventID   string `json:"event_id"`
		EventType string `json:"event_type"`
		User      struct {
			ID         string `json:"id"`
			ExternalID string `json:"external_id"`
		} `json:"user"`
		Campaign struct {
			BrazeCampaignID string `json:"braze_campaign_id"`
		} `json:"campaign"`
		Offer struct {
			Name string `json:"name"`
		} `json:"offer"`
	}
	raw := body(7, 3)
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	if ev.EventID != "run1-7" || ev.User.ID != sessionmemu.GeneratedUserID(3) || ev.User.ExternalID != "load-000003" ||
		ev.Campaign.BrazeCampaignID != brazeCampaignID || ev.EventType != "offer_issued" || ev.Offer.Name == "" {
		t.Errorf("body(7, 3) = %s", raw)
	}
	if string(body(8, 3)) == string(raw) {
		t.Error("two events got the same body; event_id must differ")
	}
}

func TestTrackerCountsDeliveries(t *testing.T) {
	sc := &scenario{recipients: triggerRecipients, maxRecipients: triggerRecipientsMax}
	tr := newTracker(nil, "http://sandbox/_sandbox", sc, 4)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.add(&journalPage{NextSince: 3, Requests: []journalEntry{
		{ID: 1, Time: t0, Duration: time.Millisecond, Status: 201, Body: `{"recipients":[{"external_user_id":"load-000000"},{"external_user_id":"load-000001"}]}`},
		{ID: 2, Time: t0.Add(time.Second), Status: 429, Body: `{"recipients":[{"external_user_id":"load-000002"}]}`},
		// A repeat for user 1 (an at-least-once redelivery), and user 2.
		{ID: 3, Time: t0.Add(2 * time.Second), Duration: time.Millisecond, Status: 201, Body: `{"recipients":[{"external_user_id":"load-000001"},{"external_user_id":"load-000002"}]}`},
	}})
	if tr.since != 3 || tr.targets != 3 || tr.refused["429"] != 1 || tr.names != 4 {
		t.Errorf("since %d, targets %d, refused %v, names %d", tr.since, tr.targets, tr.refused, tr.names)
	}
	delivered, repeats := tr.delivered([]int32{1, 1, 1, 1})
	if delivered != 3 || repeats != 1 {
		t.Errorf("delivered %d, repeats %d; want 3 and 1", delivered, repeats)
	}
	if want := t0.Add(time.Millisecond); !tr.first[1].Equal(want) {
		t.Errorf("user 1 first delivered at %v, want %v (the first answer, not the repeat)", tr.first[1], want)
	}
	if want := t0.Add(2*time.Second + time.Millisecond); !tr.last.Equal(want) {
		t.Errorf("last delivery %v, want %v", tr.last, want)
	}
	tr.add(&journalPage{Requests: []journalEntry{{ID: 4, Status: 200, Body: `{"recipients":[{"external_user_id":"u-1001"}]}`}}})
	if tr.err == nil || !strings.Contains(tr.err.Error(), "not a generated user") {
		t.Errorf("err = %v, want one about a recipient that is not a generated user", tr.err)
	}
}

// While the engine works the tracker only counts target requests; it reads
// them once there are enough to carry every accepted event, and then only
// when more have come.
func TestTrackerReadsOnlyWhenEnough(t *testing.T) {
	var mu sync.Mutex
	var journal []journalEntry
	reads := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		var fresh []journalEntry
		for _, e := range journal {
			if e.ID > since {
				fresh = append(fresh, e)
			}
		}
		next := since
		if len(journal) > 0 {
			next = max(since, journal[len(journal)-1].ID)
		}
		if r.URL.Query().Get("count") == "true" {
			fmt.Fprintf(w, `{"count":%d,"next_since":%d,"dropped":0}`, len(fresh), next)
			return
		}
		reads++
		_ = json.NewEncoder(w).Encode(journalPage{Requests: fresh, NextSince: next})
	}))
	defer srv.Close()
	deliver := func(users ...int) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range users {
			path := "/sessionm/core/priv/v1/apps/k/users/" + sessionmemu.GeneratedUserID(u) + "/tags"
			journal = append(journal, journalEntry{ID: int64(len(journal) + 1), Path: path, Status: 200})
		}
	}
	sc, err := f1(func(string) (string, bool) { return "k", true }, "run")
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracker(srv.Client(), srv.URL+"/_sandbox", sc, 5)
	want := []int32{1, 1, 1, 1, 1}
	ctx := context.Background()
	steps := []struct {
		deliver   []int
		reads     int
		delivered int
	}{
		{[]int{0, 1, 2}, 0, 0}, // 3 of the 5 needed: counted, not read
		{[]int{3, 4}, 1, 5},    // enough: read, all delivered
		{nil, 1, 5},            // nothing new: not read again
		{[]int{4}, 2, 5},       // a repeat comes: read, still 5 (one repeat)
	}
	for i, step := range steps {
		deliver(step.deliver...)
		if err := tr.catchUp(ctx, 5); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := reads
		mu.Unlock()
		if delivered, _ := tr.delivered(want); got != step.reads || delivered != step.delivered {
			t.Errorf("step %d: %d reads, %d delivered; want %d and %d", i, got, delivered, step.reads, step.delivered)
		}
	}
}

func TestAcceptHistogram(t *testing.T) {
	const scrape = `# HELP engine_accept_duration_seconds ...
engine_accept_duration_seconds_bucket{pipeline="other",le="0.001"} 100
engine_accept_duration_seconds_bucket{pipeline="f1",le="0.001"} 40
engine_accept_duration_seconds_bucket{pipeline="f1",le="0.002"} 90
engine_accept_duration_seconds_bucket{pipeline="f1",le="0.005"} 99
engine_accept_duration_seconds_bucket{pipeline="f1",le="0.01"} 99
engine_accept_duration_seconds_bucket{pipeline="f1",le="+Inf"} 100
engine_accept_duration_seconds_sum{pipeline="f1"} 0.2
engine_accept_duration_seconds_count{pipeline="f1"} 100
`
	h, err := parseAcceptHistogram(strings.NewReader(scrape), "f1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ q, want float64 }{{0.4, 0.001}, {0.5, 0.002}, {0.9, 0.002}, {0.99, 0.005}, {1, math.Inf(1)}} {
		if got := h.quantileBound(tt.q); got != tt.want {
			t.Errorf("q%g: %g, want %g", tt.q, got, tt.want)
		}
	}
	if _, err := parseAcceptHistogram(strings.NewReader(scrape), "f4"); err == nil {
		t.Error("a pipeline with no histogram gave no error")
	}
	if _, err := parseAcceptHistogram(strings.NewReader(`engine_accept_duration_seconds_bucket{pipeline="f1",le="x"} 1`), "f1"); err == nil {
		t.Error("a bad bound gave no error")
	}
}

// The generated segment export reads back with the engine's CSV reader,
// each row naming its generated user.
func TestSegmentCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	if err := writeSegmentCSV(path, 3); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := csvfile.NewReader(f, path, ',')
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		row, err := r.Next()
		if err != nil {
			t.Fatalf("row %d: %v", i+1, err)
		}
		if got := row.Values["user_id"]; got != ids.GeneratedExternalID(i) {
			t.Errorf("row %d: user_id %v", i+1, got)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last row: %v", err)
	}
}

func TestMemorySampler(t *testing.T) {
	m := sampleMemory(os.Getpid(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	anon, file, err := m.finish()
	if err != nil || anon <= 0 || file <= 0 {
		t.Fatalf("own process: private %d, file %d, %v", anon, file, err)
	}
	m = sampleMemory(1<<30, time.Millisecond) // no such process
	if _, _, err := m.finish(); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

// tenths gives the peak of each tenth of the samples, in order.
func TestMemoryTenths(t *testing.T) {
	m := &memorySampler{}
	if m.tenths() != nil {
		t.Fatal("tenths of no samples")
	}
	for i := range 25 { // 0..24: tenths of 2 or 3 samples
		m.anon = append(m.anon, int64(i))
	}
	m.anon[3] = 100 // a spike in the second tenth
	want := []int64{2, 100, 7, 9, 12, 14, 17, 19, 22, 24}
	got := m.tenths()
	if len(got) != 10 {
		t.Fatalf("%d tenths", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("tenths %v, want %v", got, want)
		}
	}
}

// The peak RSS row says its parts are peaks of their own: read as a sum,
// 78 MiB = 60 + 44 looked like a miscount.
func TestPeakRSSRowSaysThePartsPeakApart(t *testing.T) {
	var b strings.Builder
	writeTable(&b, []*result{{Scenario: "f1", EnginePeakRSSMiB: 78, EnginePeakAnonMiB: 60, EnginePeakFileMiB: 44}})
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "engine peak RSS") {
			if want := "78 MiB (peaks apart: private 60 MiB, file-mapped 44 MiB)"; !strings.HasSuffix(strings.TrimSpace(line), want) {
				t.Errorf("row %q; want it to end %q", line, want)
			}
			return
		}
	}
	t.Errorf("no engine peak RSS row in:\n%s", b.String())
}

// --keep keeps the inbox made under --data too, so a run's inbox can be
// looked at, or an engine restarted on it, afterwards (a QA run lost it).
func TestKeepKeepsTheInboxUnderData(t *testing.T) {
	for _, keep := range []bool{false, true} {
		data := t.TempDir()
		cfg := &config{dataDir: data, keepTempDir: keep, sandboxEnv: "sandbox.env"}
		args, removeData := engineArgs(cfg, t.TempDir(), "f1", "run1")
		inbox := args[slices.Index(args, "--data")+1]
		if err := os.MkdirAll(inbox, 0o755); err != nil {
			t.Fatal(err)
		}
		removeData()
		if _, err := os.Stat(inbox); (err == nil) != keep {
			t.Errorf("--keep %v: the inbox under --data is there after the run: %v", keep, err == nil)
		}
	}
}
