package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
)

// metric is the value of the series series (a regular expression) on
// /metrics, and whether it is there.
func (h *harness) metric(series string) (float64, bool) {
	h.t.Helper()
	body := do(h.t, "GET", h.engine.URL+"/metrics", "", nil).body
	m := regexp.MustCompile(`(?m)^` + series + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		h.t.Fatalf("%s: %v", series, err)
	}
	return v, true
}

// A 429 with Retry-After pauses braze; the request that got it waits the
// pause in its events' retry timers, not in the governor, and read 0 s in
// engine_rate_limit_wait_seconds_total even when every request was
// throttled. The pause is counted once per request: the events of a
// merged request wait it together and go again as one request.
func TestRateLimitWaitCountsThePausedRetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    setup
		post func(h *harness)
	}{
		{"one event", setup{users: 1, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 20 * time.Millisecond }}, func(h *harness) {
			h.post("/hooks/sessionm/offers", generatedOffer("rl-0", 0, "load-000000"), map[string]string{"Authorization": hookAuth})
		}},
		{"three events merged", setup{dirs: []string{"testdata/pipelines"}, users: 3}, func(h *harness) {
			h.postAtOnce(3, "/hooks/campaign", func(i int) (string, map[string]string) {
				return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d}`, winter, i, i), nil
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.s)
			// Retry-After: 1 (the sandbox rounds up to whole seconds).
			h.control("POST", "/faults", `{"emulator":"braze","throttle":{"for":"1s"}}`)
			tc.post(h)
			h.drained()
			if pauses, _ := h.metric(`engine_connection_pauses_total\{connection="braze"\}`); pauses != 1 {
				t.Fatalf("setup: %v pauses of braze, want 1", pauses)
			}
			if sent := len(h.journal("/braze/campaigns/trigger/send")); sent != 2 {
				t.Fatalf("setup: %d trigger requests, want 2: the one throttled and its retry", sent)
			}
			waited, _ := h.metric(`engine_rate_limit_wait_seconds_total\{connection="braze"\}`)
			if waited < 0.99 || waited > 1.5 {
				t.Errorf("engine_rate_limit_wait_seconds_total is %v; the request waited braze's pause of 1 s once", waited)
			}
		})
	}
}

// A pause is counted in engine_rate_limit_wait_seconds_total as it is
// waited, not in advance: a Retry-After of 3 s read 3 the moment it came,
// and a stop a second into it left the seconds nobody waited counted.
func TestRateLimitWaitCountsAPauseAsItPasses(t *testing.T) {
	h := start(t, setup{users: 1, tweak: func(p *engine.Pipeline) { p.Delivery.Linger = 20 * time.Millisecond }})
	h.control("POST", "/faults", `{"emulator":"braze","throttle":{"for":"3s"}}`)
	h.post("/hooks/sessionm/offers", generatedOffer("rl-0", 0, "load-000000"), map[string]string{"Authorization": hookAuth})
	h.eventually("braze paused", func() bool {
		pauses, _ := h.metric(`engine_connection_pauses_total\{connection="braze"\}`)
		return pauses == 1
	})
	paused := time.Now()
	time.Sleep(time.Second)
	waited, _ := h.metric(`engine_rate_limit_wait_seconds_total\{connection="braze"\}`)
	if limit := time.Since(paused).Seconds(); waited > limit {
		t.Errorf("engine_rate_limit_wait_seconds_total is %v %.1f s into a pause of 3 s; nothing was waited beyond those", waited, limit)
	}
	h.drained()
	if waited, _ := h.metric(`engine_rate_limit_wait_seconds_total\{connection="braze"\}`); waited < 2.99 || waited > 3.5 {
		t.Errorf("engine_rate_limit_wait_seconds_total is %v once the pause of 3 s is over", waited)
	}
}

// A merged request Braze refuses with 400 is sent again one event at a
// time: engine_batch_events has one observation per request that went
// out, with the events it carried, so its mean is the recipients per
// request F4's target is judged by.
func TestBatchEventsCountsTheRequestsSent(t *testing.T) {
	h := start(t, setup{dirs: []string{"testdata/pipelines"}, users: 3})
	h.postAtOnce(3, "/hooks/campaign", func(i int) (string, map[string]string) {
		note := ""
		if i == 1 {
			note = strings.Repeat("x", 60<<10) // Braze refuses trigger properties over 50 KB
		}
		return fmt.Sprintf(`{"campaign_id":%q,"user":"load-%06d","n":%d,"note":%q}`, winter, i, i, note), nil
	})
	h.drained()
	requests := h.journal("/braze/campaigns/trigger/send")
	recipients := 0
	for _, r := range requests {
		body, _ := r["body"].(string)
		recipients += strings.Count(body, `"external_user_id"`)
	}
	if len(requests) != 4 || recipients != 6 {
		t.Fatalf("setup: %d requests with %d recipients, want the merged one of 3 and 3 alone", len(requests), recipients)
	}
	count, _ := h.metric(`engine_batch_events_count\{pipeline="any-campaign"\}`)
	sum, _ := h.metric(`engine_batch_events_sum\{pipeline="any-campaign"\}`)
	if int(count) != len(requests) || int(sum) != recipients {
		t.Errorf("engine_batch_events: %v requests carrying %v events; %d went out carrying %d", count, sum, len(requests), recipients)
	}
}

// A CSV row read from its file is a received event, counted once: not
// again when it is retried from the inbox, nor when the file is imported
// again. A broken row never becomes an event, as a webhook body that is
// not JSON does not; it is counted as a csv_row dead letter only.
func TestCSVRowsCountAsReceived(t *testing.T) {
	h := start(t, setup{users: 20})
	// The first tag request fails: its row retries from the inbox.
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":503,"count":1}`)
	file, _ := h.importText("r.csv", "user_id,tag\nload-000001,a\nload-000002,too,many\nload-000003,c\n")
	if _, err := h.r.ImportCSV(context.Background(), csvPipeline, file); err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`engine_events_received_total\{pipeline="` + csvPipeline + `"\}`:                       2,
		`engine_events_handled_total\{outcome="delivered",pipeline="` + csvPipeline + `"\}`:    2,
		`engine_events_retried_total\{pipeline="` + csvPipeline + `"\}`:                        1,
		`engine_events_dead_lettered_total\{pipeline="` + csvPipeline + `",reason="csv_row"\}`: 1,
	} {
		if got, _ := h.metric(series); got != want {
			t.Errorf("%s is %v, want %v", strings.ReplaceAll(series, `\`, ""), got, want)
		}
	}
}

// A labelled counter had no series until its first increment, so after a
// restart a dashboard showed no data and an absent() alert fired for a
// pipeline that was only quiet. The series whose labels are known in
// advance are there from the start, at 0; the synchronous pipeline, which
// never queues, has none of the queue's (it had received and accept
// duration series that stayed at 0 for ever).
func TestMetricsSeriesExistFromTheStart(t *testing.T) {
	h := start(t, setup{})
	const (
		queued  = "offer-issued-to-braze-campaign"
		csv     = "segment-csv-to-sessionm-tags"
		respond = "wallet-for-connected-content"
	)
	for _, tc := range []struct {
		series string
		there  bool
	}{
		{`engine_events_received_total\{pipeline="` + queued + `"\}`, true},
		{`engine_events_received_total\{pipeline="` + csv + `"\}`, true},
		{`engine_events_duplicate_total\{pipeline="` + queued + `"\}`, true},
		{`engine_events_retried_total\{pipeline="` + queued + `"\}`, true},
		{`engine_events_handled_total\{outcome="filtered",pipeline="` + csv + `"\}`, true},
		{`engine_events_dead_lettered_total\{pipeline="` + queued + `",reason="attempts_exhausted"\}`, true},
		{`engine_events_dead_lettered_total\{pipeline="` + csv + `",reason="csv_row"\}`, true},
		{`engine_events_refused_total\{pipeline="` + queued + `",reason="inbox_full"\}`, true},
		{`engine_events_refused_total\{pipeline="` + respond + `",reason="unauthorized"\}`, true},
		{`engine_reload_total\{pipeline="` + queued + `",result="rejected"\}`, true},
		{`engine_rate_limit_wait_seconds_total\{connection="braze"\}`, true},
		{`engine_rate_limit_wait_seconds_total\{connection="sessionm_connect"\}`, true},
		{`engine_connection_pauses_total\{connection="sessionm_core"\}`, true},
		{`engine_accept_duration_seconds_count\{pipeline="` + queued + `"\}`, true},
		// Not for a webhook pipeline: no row is ever broken.
		{`engine_events_dead_lettered_total\{pipeline="` + queued + `",reason="csv_row"\}`, false},
		// Not for the synchronous pipeline: it never queues.
		{`engine_events_received_total\{pipeline="` + respond + `"\}`, false},
		{`engine_accept_duration_seconds_count\{pipeline="` + respond + `"\}`, false},
		{`engine_events_retried_total\{pipeline="` + respond + `"\}`, false},
		{`engine_events_refused_total\{pipeline="` + respond + `",reason="inbox_full"\}`, false},
	} {
		v, there := h.metric(tc.series)
		name := strings.ReplaceAll(tc.series, `\`, "")
		switch {
		case there != tc.there:
			t.Errorf("%s: there %v, want %v", name, there, tc.there)
		case there && v != 0:
			t.Errorf("%s is %v before anything happened, want 0", name, v)
		}
	}
}

// The 429s of one burst, answered to requests sent together, are one
// pause of the connection: engine_connection_pauses_total counted each
// (3 for one throttled second in a QA run).
func TestConnectionPausesCountABurstOnce(t *testing.T) {
	const users = 20
	logs := &runner.LockedBuffer{}
	h := start(t, setup{users: users, opts: func(o *runner.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}})
	// Slow answers, so that the requests of the first events are all on
	// the wire before the first 429 comes back.
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","latency":"300ms","count":5}`)
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","throttle":{"for":"1s"}}`)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := h.tagWebhook(i, fmt.Sprintf("burst-%d", i)); a.status != 200 {
				t.Errorf("webhook %d: %d %s", i, a.status, a.body)
			}
		}()
	}
	wg.Wait()
	h.drained()
	throttled := 0
	for _, e := range h.journal("/sessionm/core/*") {
		if e["status"] == 429.0 {
			throttled++
		}
	}
	if throttled < 2 {
		t.Fatalf("setup: %d requests answered 429, want several sent together", throttled)
	}
	if pauses, _ := h.metric(`engine_connection_pauses_total\{connection="sessionm_core"\}`); pauses != 1 {
		t.Errorf("engine_connection_pauses_total is %v after %d 429s of one throttled second; want 1", pauses, throttled)
	}
	// And the log says so, once: it said nothing of a pause at all.
	lines, leftOut := runner.LinesOf(logs.String(), "connection paused: its peer asked to wait (a 429 or Retry-After); every pipeline that uses it waits")
	if lines != 1 || leftOut != 0 || !strings.Contains(logs.String(), `"connection":"sessionm_core","status":429,"until":"`) {
		t.Errorf("%d lines (%d left out) about the pause; want one naming the connection, its status and end:\n%s", lines, leftOut, logs)
	}
}

// The counts add up across replays and restarts: received + replayed +
// queued at the start = handled + dead-lettered + what is still queued.
// A replayed event is no new event, and its outcome was counted with
// nothing to say where it came from (a QA run could not tell it from a
// lost one); events left in the inbox by a stopped run, or queued by
// engine dlq replay meanwhile, were delivered after a restart with
// received at 0.
func TestEventCountsAddUpAcrossReplaysAndRestarts(t *testing.T) {
	dir := t.TempDir()
	count := func(h *harness, series string) float64 {
		v, _ := h.metric(series)
		return v
	}
	balance := func(h *harness) (in, out float64) {
		const p = `\{pipeline="braze-segment-to-sessionm-tags"\}`
		in = count(h, "engine_events_received_total"+p) + count(h, "engine_events_replayed_total"+p) + count(h, "engine_events_queued_at_start"+p)
		out = count(h, `engine_events_handled_total\{outcome="delivered",pipeline="braze-segment-to-sessionm-tags"\}`) +
			count(h, `engine_events_dead_lettered_total\{pipeline="braze-segment-to-sessionm-tags",reason="rejected"\}`) +
			count(h, "engine_inbox_depth"+p)
		return in, out
	}
	h := start(t, setup{users: 5, dataDir: dir})
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","error_ratio":1,"error_status":400,"count":3}`)
	for i := range 5 {
		if a := h.tagWebhook(i, fmt.Sprintf("count-%d", i)); a.status != 200 {
			t.Fatalf("webhook %d: %d %s", i, a.status, a.body)
		}
	}
	h.drained()
	dead, _ := h.store.DeadLetters(inbox.DeadFilter{})
	if len(dead) != 3 {
		t.Fatalf("setup: %d dead letters, want 3", len(dead))
	}
	admin := h.admin()
	if a := do(t, "POST", fmt.Sprintf("%s/dlq/%d/replay", admin.URL, dead[0].ID), "", nil); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", admin.URL+"/dlq/replay?all=true", "", nil); a.status != 200 {
		t.Fatalf("replay all: %d %s", a.status, a.body)
	}
	h.drained()
	if got := count(h, `engine_events_replayed_total\{pipeline="braze-segment-to-sessionm-tags"\}`); got != 3 {
		t.Errorf("engine_events_replayed_total is %v after three replays", got)
	}
	if in, out := balance(h); in != 8 || out != 8 {
		t.Errorf("in %v (received, replayed, queued at the start), out %v (delivered, dead-lettered, queued); want 8 and 8", in, out)
	}
	// Two events queued when the engine stops, behind a pause (which the
	// restart waits out).
	h.control("POST", "/faults", `{"path":"/sessionm/core/*","throttle":{"for":"2s"}}`)
	for i := range 2 {
		if a := h.tagWebhook(i, fmt.Sprintf("left-%d", i)); a.status != 200 {
			t.Fatalf("webhook %d: %d %s", i, a.status, a.body)
		}
	}
	// The first is answered 429, which pauses the connection for both.
	h.eventually("the connection paused", func() bool { return len(h.journal("/sessionm/core/*")) >= 9 })
	sb := h.sbURL
	h.control("DELETE", "/faults", "")
	h.stop()
	h2 := start(t, setup{users: 5, dataDir: dir, sandbox: sb})
	h2.drained()
	if got := count(h2, `engine_events_queued_at_start\{pipeline="braze-segment-to-sessionm-tags"\}`); got != 2 {
		t.Errorf("engine_events_queued_at_start is %v; two events were left queued", got)
	}
	if in, out := balance(h2); in != 2 || out != 2 {
		t.Errorf("after the restart: in %v, out %v; want 2 and 2", in, out)
	}
}
