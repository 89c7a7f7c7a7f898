package main

// Process-level durability tests: the engine binary, the sandbox binary,
// real HTTP and a real bbolt file. What a webhook sender saw acknowledged
// (HTTP 200) must reach SessionM, whether the engine is killed with
// SIGKILL or stopped with SIGTERM, once it runs again on the same --data.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	crashUsers     = 2000 // sandbox --generated-users
	crashSenders   = 16   // concurrent webhook senders
	crashPipelines = "engine/runner/testdata/pipelines/"
	crashGrace     = 10 * time.Second
	// Every ordered worker (delivery.concurrency, 16) may have sent an
	// event that it has not yet removed from the inbox when the process
	// dies; those are sent again after the restart.
	crashInFlight = 16
	// crashBacklog is how many events TestCrashLosesNothing has the engine
	// accept while SessionM answers slowly, so that the kill finds them
	// undelivered (crashBacklogFew once 3 s have passed, on a slow
	// machine). At least crashBacklogMin must be undelivered at the kill
	// (about 2,900 here): with fewer, the newest events, those only in the
	// journal, may all have been delivered already.
	crashBacklog, crashBacklogFew, crashBacklogMin = 3000, 1500, 500
	crashPipeline                                  = "ordered-tags" // the pipeline of /hooks/tags/
)

// crashUserID is the SessionM id of generated user i.
func crashUserID(i int) string { return fmt.Sprintf("%08x-32f5-11ef-8000-%012x", i, i) }

// TestCrashLosesNothing kills the engine with SIGKILL under webhook load,
// restarts it on the same data folder and checks that every event a
// sender saw accepted reaches SessionM, at least once.
//
// Delivery keeps up with the load when SessionM is quick, and then only
// a few events are undelivered at the kill, mostly already sent: losing
// the journal's events went unseen in most runs. So SessionM slows down
// (200 ms a request, some 80 deliveries a second) before the kill, and
// thousands of accepted events wait, many of them only in the journal.
// uncleanStopWarning begins what engine run logs at a start after a run
// that was killed.
const uncleanStopWarning = "did not stop cleanly"

func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes under load")
	}
	h := newCrashHarness(t, crashUsers)
	first := h.startEngine(0)
	began := time.Now()
	// Delivered as they come, some of them still in flight at the kill.
	led, load, next := startLoad(t, first.base, first.exited, 1000, 100, 500*time.Millisecond)
	h.sandboxFaults(http.MethodPost, `{"emulator":"sessionm_core","latency":"200ms"}`)
	atFault := led.acceptedCount()
	if !led.waitLoad(atFault+crashBacklog, atFault+crashBacklogFew, 3*time.Second, 30*time.Second, first.exited) {
		load.halt()
		t.Fatalf("the engine accepted only %d events in the %v after SessionM slowed down", led.acceptedCount()-atFault, time.Since(began).Round(time.Millisecond))
	}
	// Not at once: the count is often reached in the burst of accepts
	// right after the committer has moved the journal into bbolt (its
	// sync slows the journal's), when the journal holds few events.
	time.Sleep(100 * time.Millisecond)
	atKill := led.acceptedCount()
	killedAt := time.Now()
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited // bbolt's lock goes with the process
	load.halt()
	var exitErr *exec.ExitError
	if !errors.As(first.err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the first engine did not die of SIGKILL: %v", first.err)
	}
	unanswered := led.unanswered()
	t.Logf("killed after %v: %d accepted at the kill (%d since SessionM slowed down), %d accepted in all, %d sent, %d without a 200 (%s)",
		time.Since(began).Round(time.Millisecond), atKill, atKill-atFault, led.acceptedCount(), next.Load(), len(unanswered), led.why())
	// The backlog as SessionM saw it, not as the engine reports it.
	sent, err := fetchTagRequestTimes(&http.Client{Timeout: 10 * time.Second}, h.sandbox)
	if err != nil {
		t.Fatalf("reading the sandbox's journal: %v", err)
	}
	undelivered := 0
	for _, k := range led.acceptedKeys() {
		if len(sent[k]) == 0 {
			undelivered++
		}
	}
	if undelivered < crashBacklogMin {
		t.Fatalf("only %d accepted events were undelivered at the kill, want at least %d: with no backlog this run shows little about losing none", undelivered, crashBacklogMin)
	}

	// The killed engine's last requests reach the sandbox a little after
	// the kill was asked for; the new engine's, after this.
	restartedAt := time.Now()
	second := h.startEngine(first.port)
	leftLine := leftByLastRun(second.stdout.String())
	t.Logf("%d accepted events undelivered at the kill; restart: %s", undelivered, leftLine)
	if !strings.Contains(second.stderr.String(), uncleanStopWarning) {
		t.Errorf("the restarted engine did not warn that the killed run may send some events again (%q)", uncleanStopWarning)
	}
	// SessionM is slow until here: the new engine has finished no
	// delivery by the time its banner counts what is left.
	left, err := leftOf(leftLine, crashPipeline)
	if err != nil {
		t.Fatalf("the restarted engine's banner: %v", err)
	}
	h.sandboxFaults(http.MethodDelete, "")
	client := newSenderClient(t)
	// A real sender tries the unanswered ones again, with the same key.
	dupsBefore := led.duplicateAnswers()
	led.sendAll(client, second.base, unanswered)
	resentDup := led.duplicateAnswers() - dupsBefore
	fresh := make([]int, 300)
	for i := range fresh {
		fresh[i] = int(next.Add(1) - 1)
	}
	led.sendAll(client, second.base, fresh)
	if n := len(led.unanswered()); n > 0 {
		t.Errorf("%d events were not accepted by the restarted engine: %v", n, firstN(led.unanswered(), 20))
	}
	t.Logf("after the restart: %d unanswered sent again (%d answered duplicate: stored before the kill), %d new",
		len(unanswered), resentDup, len(fresh))

	dups := h.settle(second, led)
	// Only what the restarted engine found in its inbox can have been
	// sent again: an event counted twice that it did not count among
	// those left came from somewhere else, or the count misleads.
	if len(dups) > left {
		t.Errorf("%d events counted more than once, but the restarted engine said %d were left by the last run", len(dups), left)
	}
	h.checkSentAgainAfterKill(dups, killedAt, restartedAt)
}

// sandboxFaults adds a fault rule (POST, the rule in JSON) or removes
// them all (DELETE) through the sandbox's control API.
func (h *crashHarness) sandboxFaults(method, rule string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.sandbox+"/_sandbox/faults", strings.NewReader(rule))
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		h.t.Fatalf("%s /_sandbox/faults: %v", method, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		h.t.Fatalf("%s /_sandbox/faults %s: HTTP %d %s", method, rule, resp.StatusCode, body)
	}
}

// ackWindow bounds how long a delivered event stays in the inbox before
// its removal is on disk: removals are committed every 20 ms, or with the
// next commit at most 200 ms later; the rest is room for a loaded machine.
const ackWindow = 3 * time.Second

// checkSentAgainAfterKill checks that each event counted twice after a
// kill -9 is one the killed engine delivered just before it died, whose
// removal from the inbox had not reached the disk, and that the new
// engine (started at restartedAt) sent it once more. An acknowledgement that never reached the
// disk, or a restart sending an event twice, fails; how many events were
// in flight at the kill, which depends on the machine's speed, does not.
func (h *crashHarness) checkSentAgainAfterKill(dups []int, killedAt, restartedAt time.Time) {
	t := h.t
	t.Helper()
	if len(dups) == 0 {
		return
	}
	times, err := fetchTagRequestTimes(&http.Client{Timeout: 10 * time.Second}, h.sandbox)
	if err != nil {
		t.Fatalf("reading the sandbox's journal: %v", err)
	}
	var early []string
	for _, k := range dups {
		at := times[k]
		slices.SortFunc(at, time.Time.Compare)
		switch {
		case len(at) != 2:
			t.Errorf("evt_%d was sent %d times, at %v; a kill explains one more send, not more", k, len(at), at)
		case !at[0].Before(restartedAt) || at[1].Before(restartedAt):
			t.Errorf("evt_%d was sent twice by one engine (the second started at %v): at %v", k, restartedAt.Format(time.StampMicro), at)
		case killedAt.Sub(at[0]) > ackWindow:
			early = append(early, fmt.Sprintf("evt_%d %v before the kill", k, killedAt.Sub(at[0]).Round(time.Millisecond)))
		}
	}
	if len(early) > 0 {
		t.Errorf("%d events delivered over %v before the kill were sent again: their acknowledgement never reached the disk, e.g. %v", len(early), ackWindow, firstN(early, 10))
	}
}

// fetchTagRequestTimes reads the sandbox's journal: when SessionM took a
// tags request for evt_k, per k, in order.
func fetchTagRequestTimes(client *http.Client, sandbox string) (map[int][]time.Time, error) {
	resp, err := client.Get(sandbox + "/_sandbox/requests?emulator=sessionm_core&limit=0&fields=time,body,status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var got struct {
		Requests []struct {
			Time   time.Time `json:"time"`
			Body   string    `json:"body"`
			Status int       `json:"status"`
		} `json:"requests"`
		Dropped int `json:"dropped"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return nil, err
	}
	if got.Dropped > 0 {
		return nil, fmt.Errorf("the journal dropped %d requests", got.Dropped)
	}
	times := map[int][]time.Time{}
	for _, r := range got.Requests {
		var body struct{ Tags []string }
		if r.Status/100 != 2 || json.Unmarshal([]byte(r.Body), &body) != nil {
			continue
		}
		for _, tag := range body.Tags {
			raw, ok := strings.CutPrefix(tag, "evt_")
			if k, err := strconv.Atoi(raw); ok && err == nil {
				times[k] = append(times[k], r.Time)
			}
		}
	}
	return times, nil
}

// SIGHUP asks for a reload; once a stop began nobody listened for it, and
// its default action killed the engine mid-drain (QA: exit 129, the next
// run warning of an unclean stop). It must change nothing about the stop.
func TestSIGHUPDuringAStopDoesNotEndIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, 10)
	e := h.startEngine(0, "--drain", "1s")
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !e.stdout.waitFor("stopping", e.exited, 5*time.Second) && !e.stderr.waitFor("stopping", e.exited, time.Second) {
		t.Fatalf("no stopping line after SIGTERM (exit: %v)", e.exitErr())
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.exited:
	case <-time.After(crashGrace + 5*time.Second):
		t.Fatalf("still running after SIGTERM and SIGHUP")
	}
	// Where SIGHUP was ignored when the test started (nohup, some CI
	// runners), the engine inherits that and would live without the fix;
	// the line says the engine heard it.
	if e.err != nil || !strings.Contains(e.stdout.String(), "engine run: stopped") || !strings.Contains(e.stderr.String(), "SIGHUP while stopping: nothing is reloaded now") {
		t.Errorf("exit %v after SIGTERM then SIGHUP, want 0, \"engine run: stopped\" and the SIGHUP noted\nstdout: %s\nstderr: %s", e.err, e.stdout.String(), e.stderr.String())
	}
}

// TestGracefulStop sends SIGTERM while webhooks arrive: the engine must
// exit 0 within --grace saying it stopped, and the next run must deliver
// whatever the first left, with nothing lost and nothing sent twice.
func TestGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes under load")
	}
	h := newCrashHarness(t, crashUsers)
	first := h.startEngine(0)
	led, load, next := startLoad(t, first.base, first.exited, 500, 500, 0)
	atStop := led.acceptedCount()
	elapsed, ok := h.stopEngine(first)
	load.halt()
	if !ok {
		t.FailNow()
	}
	unanswered := led.unanswered()
	t.Logf("SIGTERM after %d accepted: exited in %v; %d accepted in all, %d without a 200 (%s); it said %q",
		atStop, elapsed.Round(time.Millisecond), led.acceptedCount(), len(unanswered), led.why(), stoppedLine(first.stdout.String()))

	second := h.startEngine(first.port)
	if left := leftByLastRun(second.stdout.String()); left != "" {
		t.Logf("restart: %s", left)
	}
	if strings.Contains(second.stderr.String(), uncleanStopWarning) {
		t.Errorf("after a SIGTERM the restarted engine warned that the last run did not stop cleanly")
	}
	client := newSenderClient(t)
	led.sendAll(client, second.base, unanswered)
	fresh := make([]int, 200)
	for i := range fresh {
		fresh[i] = int(next.Add(1) - 1)
	}
	led.sendAll(client, second.base, fresh)
	if n := len(led.unanswered()); n > 0 {
		t.Errorf("%d events were not accepted by the restarted engine: %v", n, firstN(led.unanswered(), 20))
	}

	// In-flight deliveries finished and were removed from the inbox
	// before the exit, so nothing is sent twice; unless the grace ran
	// out, which the log says.
	maxDup := 0
	if strings.Contains(first.stderr.String(), "did not finish in time") {
		t.Logf("the first engine's grace ran out; duplicates are allowed")
		maxDup = crashInFlight
	}
	h.checkDelivered(second, led, maxDup)
}

const (
	csvRows         = 50_000
	csvUsers        = 5_000 // sandbox --generated-users; row n tags user n%csvUsers
	csvPipelineFile = "pipelines/segment-csv-to-sessionm-tags.yaml"
	// csvKillAt is how many tag requests SessionM has answered when the
	// first engine is killed: some thousands, far from all of them.
	csvKillAt = 5_000
	// csvMaxDup bounds the rows sent twice: what the workers
	// (delivery.concurrency 32) had sent, or had delivered but not yet
	// removed from the inbox, when the process died.
	csvMaxDup = 2_000
	csvCore   = "/sessionm/core/*" // the journal's path filter for SessionM Core
)

// writeSegment writes a Braze segment export of rows rows: row n tags
// generated user n%users with row_n.
func writeSegment(t *testing.T, rows, users int) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "segment.csv")
	var csv strings.Builder
	csv.WriteString("user_id,tag\n")
	for n := range rows {
		fmt.Fprintf(&csv, "load-%06d,row_%d\n", n%users, n)
	}
	if err := os.WriteFile(file, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestCSVCrashResumes kills the engine with SIGKILL while it imports and
// delivers a CSV file, then runs it again on the same --data and file
// with --until-done: the checkpoint says how many rows from the top had an
// outcome, the import resumes after them, and every row must reach
// SessionM with few sent twice (those in flight at the kill).
func TestCSVCrashResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes under load")
	}
	file := writeSegment(t, csvRows, csvUsers)
	h := newCrashHarness(t, csvUsers)
	h.flags = []string{"--admin-addr", "", "--csv", file}
	h.pipelines = csvPipelineFile
	client := &http.Client{Timeout: 30 * time.Second}

	began := time.Now()
	first := h.launchEngine(0)
	// Only this engine talks to the sandbox, and only to SessionM Core:
	// journal ids count its tag requests.
	if err := waitJournal(client, h.sandbox, csvKillAt, 30*time.Second, first.exited); err != nil {
		t.Fatalf("%s: %v", first.name, err)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	var exitErr *exec.ExitError
	if !errors.As(first.err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the first engine did not die of SIGKILL: %v", first.err)
	}
	killedAfter := time.Since(began)
	// Requests the engine had sent finish in the sandbox, which journals
	// them once answered; then the newest id is what SessionM got before
	// the kill.
	time.Sleep(200 * time.Millisecond)
	page, err := journalPageOf(client, h.sandbox, fmt.Sprintf("path=%s&since=%d&limit=0", csvCore, csvKillAt))
	if err != nil {
		t.Fatal(err)
	}
	sentBeforeKill := int(page.NextSince)
	if sentBeforeKill >= csvRows {
		t.Fatalf("SessionM had all %d rows before the kill (%d requests): the import finished too fast for this test; make the CSV bigger or kill earlier", csvRows, sentBeforeKill)
	}
	t.Logf("killed after %v, with %d tag requests answered", killedAfter.Round(time.Millisecond), sentBeforeKill)

	restarted := time.Now()
	second := h.launchEngine(0, "--until-done")
	leftover := 0 // rows the first run queued and did not deliver
	if left := leftByLastRun(second.stdout.String()); left != "" {
		t.Logf("restart: %s", left)
		if m := regexp.MustCompile(`(\d+)$`).FindStringSubmatch(left); m != nil {
			leftover = atoi(m[1])
		}
	}
	select {
	case <-second.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s hangs: still running %v after the restart with --until-done", second.name, time.Since(restarted).Round(time.Second))
	}
	finished := time.Since(restarted)
	if second.err != nil {
		t.Errorf("%s: %v, want exit 0", second.name, second.err)
	}
	if resumed := regexp.MustCompile(`resuming a CSV import.* after_row=(\d+)`).FindStringSubmatch(second.stderr.String()); resumed != nil {
		t.Logf("the import was under way at the kill: the checkpoint said %s rows had an outcome", resumed[1])
	} else if strings.Contains(second.stderr.String(), "this file was imported before") {
		t.Logf("the import had read the whole file at the kill; the inbox held what was left to deliver")
	}
	summary := csvSummary(second.stdout.String(), file)
	if summary == nil {
		t.Errorf("%s printed no summary line for %s", second.name, file)
	} else {
		t.Logf("restart: %s", summary[0])
		read, sent, delivered, dead, broken, before := atoi(summary[1]), atoi(summary[2]), atoi(summary[3]), atoi(summary[4]), atoi(summary[5]), atoi(summary[6])
		if summary[7] != "done" || read != csvRows || dead != 0 || broken != 0 || sent+before != csvRows || delivered < sent {
			t.Errorf("summary: %d rows read, %d sent, %d delivered, %d dead-lettered, %d broken, %d handled before; %s; want %d read, sent + handled before = %d, no failures, done",
				read, sent, delivered, dead, broken, before, summary[7], csvRows, csvRows)
		}
		// Rows left by the first run that are delivered before the import
		// of this run has begun are not counted in its summary: a figure,
		// not a loss (the deliveries below are what counts).
		if delivered != leftover+sent {
			t.Logf("the summary counts %d delivered; the inbox held %d and %d were sent", delivered, leftover, sent)
		}
	}
	if !strings.Contains(second.stdout.String(), "engine run: stopped; every accepted event was handled") {
		t.Errorf("%s stopped with events left: %q", second.name, stoppedLine(second.stdout.String()))
	}

	// What SessionM holds: every row's tag, on its user, expiring.
	held, misplaced, err := fetchCSVTags(client, h.sandbox)
	if err != nil {
		t.Fatalf("reading the deliveries: %v", err)
	}
	// What SessionM was sent: POSTs per row, all of them.
	sent, err := journalCSVPosts(client, h.sandbox)
	if err != nil {
		t.Fatalf("reading the journal: %v", err)
	}
	var lost, dups []int
	total, refused := 0, 0
	for n := range csvRows {
		if !held[n] {
			lost = append(lost, n)
		}
		if c := sent.posts[n]; c > 1 {
			dups = append(dups, n)
		}
		total += sent.posts[n]
		refused += sent.posts[n] - sent.ok[n]
	}
	dupBoth := 0 // sent before the kill and again after it
	for _, n := range dups {
		if sent.firstID[n] <= int64(sentBeforeKill) && sent.lastID[n] > int64(sentBeforeKill) {
			dupBoth++
		}
	}
	t.Logf("rows %d; sent before the kill %d; requests in all %d (%d not answered 200, %d foreign); held %d; lost %d; sent twice %d (%d across the kill); restart to exit %v",
		csvRows, sentBeforeKill, total, refused, sent.foreign, len(held), len(lost), len(dups), dupBoth, finished.Round(time.Millisecond))
	if sent.dropped > 0 {
		t.Errorf("the sandbox journal dropped %d requests: the duplicates cannot be counted", sent.dropped)
	}
	if len(lost) > 0 {
		var never, failed []int
		for _, n := range lost {
			if sent.posts[n] == 0 {
				never = append(never, n)
			} else {
				failed = append(failed, n)
			}
		}
		t.Errorf("LOST: %d rows never reached SessionM: %d never sent (e.g. %v), %d sent without success (e.g. %v)",
			len(lost), len(never), firstN(never, 20), len(failed), firstN(failed, 20))
		if out, err := exec.Command(h.bin, "dlq", "list", "--data", h.data).CombinedOutput(); err == nil || len(out) > 0 {
			t.Logf("engine dlq list:\n%s", tail(string(out), 4000))
		}
	}
	if len(misplaced) > 0 {
		t.Errorf("%d row tags on the wrong user or not expiring, e.g. %v", len(misplaced), firstN(misplaced, 10))
	}
	if sent.foreign > 0 {
		t.Errorf("%d requests to SessionM Core were not a row's tag POST", sent.foreign)
	}
	if len(dups) > 0 {
		t.Logf("sent more than once: %v", firstN(dups, 20))
	}
	if len(dups) > csvMaxDup {
		t.Errorf("%d rows sent more than once; at most %d can have been in flight at the kill", len(dups), csvMaxDup)
	}
}

// waitJournal polls the sandbox journal until SessionM Core has answered
// n requests (ids count them when nothing else calls the sandbox).
func waitJournal(client *http.Client, sandbox string, n int, timeout time.Duration, exited <-chan struct{}) error {
	began := time.Now()
	for {
		page, err := journalPageOf(client, sandbox, fmt.Sprintf("path=%s&since=%d&limit=1", csvCore, n-1))
		if err != nil {
			return err
		}
		if len(page.Requests) > 0 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited after %d requests to SessionM", page.NextSince)
		default:
		}
		if time.Since(began) > timeout {
			return fmt.Errorf("only %d requests to SessionM in %v", page.NextSince, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// journalEntry is the part of a /_sandbox/requests entry the tests read.
type journalEntry struct {
	ID     int64  `json:"id"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body"`
	Status int    `json:"status"`
}

type journalAnswer struct {
	Requests  []journalEntry `json:"requests"`
	NextSince int64          `json:"next_since"`
	Dropped   int64          `json:"dropped"`
}

func journalPageOf(client *http.Client, sandbox, query string) (journalAnswer, error) {
	var page journalAnswer
	resp, err := client.Get(sandbox + "/_sandbox/requests?" + query)
	if err != nil {
		return page, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return page, fmt.Errorf("GET /_sandbox/requests?%s: HTTP %d", query, resp.StatusCode)
	}
	return page, json.NewDecoder(resp.Body).Decode(&page)
}

// csvPosts is what the journal says SessionM Core was sent, per row.
type csvPosts struct {
	posts, ok       map[int]int   // tag POSTs of row n, and those answered 200
	firstID, lastID map[int]int64 // journal ids of its first and last POST
	foreign         int           // requests that are no row's tag POST for its user
	dropped         int64
}

var csvTagPath = regexp.MustCompile(`^/sessionm/core/priv/v1/apps/[^/]+/external/users/load-(\d{6})/tags$`)

func journalCSVPosts(client *http.Client, sandbox string) (csvPosts, error) {
	page, err := journalPageOf(client, sandbox, "path="+csvCore+"&limit=0")
	if err != nil {
		return csvPosts{}, err
	}
	s := csvPosts{posts: map[int]int{}, ok: map[int]int{}, firstID: map[int]int64{}, lastID: map[int]int64{}, dropped: page.Dropped}
	for _, e := range page.Requests {
		var body struct {
			Tags []string `json:"tags"`
		}
		m := csvTagPath.FindStringSubmatch(e.Path)
		n := -1
		if e.Method == http.MethodPost && m != nil && json.Unmarshal([]byte(e.Body), &body) == nil && len(body.Tags) == 1 {
			if raw, ok := strings.CutPrefix(body.Tags[0], "row_"); ok {
				if k, err := strconv.Atoi(raw); err == nil && k >= 0 && k < csvRows && k%csvUsers == atoi(m[1]) {
					n = k
				}
			}
		}
		if n < 0 {
			s.foreign++
			continue
		}
		s.posts[n]++
		if e.Status == http.StatusOK {
			s.ok[n]++
		}
		if s.firstID[n] == 0 {
			s.firstID[n] = e.ID
		}
		s.lastID[n] = e.ID
	}
	return s, nil
}

// sessionMUser is a SessionM user's tags in /_sandbox/deliveries.
type sessionMUser struct {
	UserID     string  `json:"user_id"`
	ExternalID *string `json:"external_id"`
	Tags       map[string]struct {
		Count     int    `json:"count"`
		ExpiresAt string `json:"expires_at"`
	} `json:"tags"`
}

// fetchSessionMUsers reads the SessionM users and their tags from
// /_sandbox/deliveries.
func fetchSessionMUsers(client *http.Client, sandbox string) ([]sessionMUser, error) {
	resp, err := client.Get(sandbox + "/_sandbox/deliveries?limit=0")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /_sandbox/deliveries: HTTP %d", resp.StatusCode)
	}
	var got struct {
		SessionM []sessionMUser `json:"sessionm"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return nil, err
	}
	return got.SessionM, nil
}

// fetchCSVTags reads /_sandbox/deliveries: the rows n whose expiring tag
// row_n user load-(n%csvUsers) holds, and the row tags found elsewhere or
// as counters.
func fetchCSVTags(client *http.Client, sandbox string) (map[int]bool, []string, error) {
	users, err := fetchSessionMUsers(client, sandbox)
	if err != nil {
		return nil, nil, err
	}
	held := map[int]bool{}
	var misplaced []string
	for _, u := range users {
		ext := ""
		if u.ExternalID != nil {
			ext = *u.ExternalID
		}
		for name, st := range u.Tags {
			raw, ok := strings.CutPrefix(name, "row_")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(raw)
			if err != nil || n < 0 || n >= csvRows || ext != fmt.Sprintf("load-%06d", n%csvUsers) || st.ExpiresAt == "" {
				misplaced = append(misplaced, fmt.Sprintf("%s: %s %+v", ext, name, st))
				continue
			}
			held[n] = true
		}
	}
	return held, misplaced, nil
}

// csvSummary finds engine run's summary line for file: the match and its
// rows read, sent, delivered, dead-lettered, broken, handled before (the
// filtered-out count is matched, not captured), and the state.
func csvSummary(stdout, file string) []string {
	re := regexp.MustCompile(`(?m)^csv ` + regexp.QuoteMeta(file) +
		` \([^)]*\): (\d+) rows? read, (\d+) sent, (\d+) delivered, \d+ filtered out, (\d+) dead-lettered, (\d+) broken rows?, (\d+) handled before; (.+)$`)
	return re.FindStringSubmatch(stdout)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// crashHarness is one sandbox process and one data folder, shared by the
// engine runs of a test.
type crashHarness struct {
	t       *testing.T
	bin     string
	sandbox string // base URL
	envFile string
	data    string
	runs    int
	// flags go after the common engine run flags, then the pipelines.
	flags     []string
	pipelines string
}

// newCrashHarness starts a sandbox with users generated users. Engines run
// crashPipelines unless the test sets flags and pipelines.
func newCrashHarness(t *testing.T, users int) *crashHarness {
	t.Helper()
	dir := t.TempDir()
	h := &crashHarness{t: t, bin: buildEngine(t), envFile: filepath.Join(dir, "sandbox.env"), data: filepath.Join(dir, "data"),
		pipelines: crashPipelines}
	// Its own process, so that it outlives the engines.
	sb := startChild(t, "engine sandbox", h.bin, "sandbox", "--addr", "127.0.0.1:0", "--env-out", h.envFile,
		"--generated-users", strconv.Itoa(users))
	if !sb.stdout.waitFor("Stop with Ctrl-C.", sb.exited, 30*time.Second) {
		t.Fatalf("the sandbox did not start (exit: %v)", sb.exitErr())
	}
	m := regexp.MustCompile(`emulators on (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(sb.stdout.String())
	if m == nil {
		t.Fatalf("no address in the sandbox banner")
	}
	h.sandbox = m[1]
	return h
}

// engineRun is one engine run process.
type engineRun struct {
	*child
	port int
	base string
}

// startEngine starts engine run on port (0: a free one) and waits until
// /readyz answers 200. If the port was taken meanwhile, it tries another.
func (h *crashHarness) startEngine(port int, extra ...string) *engineRun {
	t := h.t
	t.Helper()
	e := h.launchEngine(port, extra...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(e.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e
			}
		}
		if e.done() || time.Now().After(deadline) {
			t.Fatalf("%s: /readyz never answered 200 (last: %v; exit: %v)", e.name, err, e.exitErr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launchEngine starts engine run on port (0: a free one) with h.flags,
// then extra, then h.pipelines, and waits for its banner only: a run with
// --until-done may be gone before /readyz could be asked.
func (h *crashHarness) launchEngine(port int, extra ...string) *engineRun {
	t := h.t
	t.Helper()
	for try := 1; ; try++ {
		if port == 0 {
			port = freePort(t)
		}
		h.runs++
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{"run", "--addr", addr, "--data", h.data,
			"--grace", crashGrace.String(), "--env-file", h.envFile, "--env-file", "examples/sandbox.env",
			"--admin-addr", "127.0.0.1:0"} // not the default port, which another engine on this machine may hold
		args = append(append(append(args, h.flags...), extra...), h.pipelines)
		c := startChild(t, fmt.Sprintf("engine run #%d", h.runs), h.bin, args...)
		bannerEnd := "Stop with Ctrl-C."
		if slices.Contains(args, "--until-done") {
			bannerEnd = untilDoneBannerEnd
		}
		if !c.stdout.waitFor(bannerEnd, c.exited, 30*time.Second) {
			if c.done() && strings.Contains(c.stderr.String(), "cannot listen") && try < 3 {
				t.Logf("port %d: %s; trying another", port, strings.TrimSpace(c.stderr.String()))
				port = 0
				continue
			}
			t.Fatalf("%s did not start (exit: %v)", c.name, c.exitErr())
		}
		return &engineRun{child: c, port: port, base: "http://" + addr}
	}
}

// stopEngine sends SIGTERM and waits: the engine must exit 0 within
// --grace and say it stopped. It reports how long the exit took and
// whether all went well (errors are reported on t).
func (h *crashHarness) stopEngine(e *engineRun) (time.Duration, bool) {
	t := h.t
	t.Helper()
	sent := time.Now()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("%s: SIGTERM: %v", e.name, err)
		return 0, false
	}
	// Some slack over --grace for the process itself; a stop that takes
	// longer than that is a hang, and the cleanup kills it.
	select {
	case <-e.exited:
	case <-time.After(crashGrace + 5*time.Second):
		t.Errorf("%s hangs: still running %v after SIGTERM (--grace %v)", e.name, time.Since(sent).Round(time.Millisecond), crashGrace)
		return time.Since(sent), false
	}
	elapsed := time.Since(sent)
	ok := true
	if e.err != nil {
		t.Errorf("%s: exit after SIGTERM: %v, want 0", e.name, e.err)
		ok = false
	}
	if elapsed > crashGrace+time.Second {
		t.Errorf("%s took %v to stop, over --grace %v", e.name, elapsed.Round(time.Millisecond), crashGrace)
		ok = false
	}
	if !strings.Contains(e.stdout.String(), "engine run: stopped") {
		t.Errorf("%s did not say \"engine run: stopped\"", e.name)
		ok = false
	}
	return elapsed, ok
}

// checkDelivered waits until SessionM holds every accepted event's tag,
// stops the engine (its inbox must then be empty), and checks the final
// state: nothing lost, no tag on the wrong user, at most maxDup events
// counted more than once.
func (h *crashHarness) checkDelivered(e *engineRun, led *ledger, maxDup int) {
	h.t.Helper()
	if dups := h.settle(e, led); len(dups) > maxDup {
		h.t.Errorf("%d events counted more than once; at most %d can be explained by deliveries in flight at the stop", len(dups), maxDup)
	}
}

// settle is checkDelivered without the bound: it returns the events
// counted more than once.
func (h *crashHarness) settle(e *engineRun, led *ledger) []int {
	t := h.t
	t.Helper()
	accepted := led.acceptedKeys()
	client := &http.Client{Timeout: 10 * time.Second}
	began := time.Now()
	deadline := began.Add(60 * time.Second)
	var last [2]int // distinct tags, total count
	stableSince := time.Time{}
	for {
		counts, _, err := fetchDelivered(client, h.sandbox)
		if err != nil {
			t.Fatalf("reading the deliveries: %v", err)
		}
		covered := true
		for _, k := range accepted {
			if counts[k] == 0 {
				covered = false
				break
			}
		}
		now := [2]int{len(counts), 0}
		for _, n := range counts {
			now[1] += n
		}
		if now != last || stableSince.IsZero() {
			last, stableSince = now, time.Now()
		}
		if covered && time.Since(stableSince) >= time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v SessionM still lacks some accepted events (it holds %d distinct tags)", time.Since(began).Round(time.Second), now[0])
			break
		}
		if e.done() {
			t.Errorf("%s exited while delivering: %v", e.name, e.exitErr())
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	drained := time.Since(began)

	// Stop the engine: nothing can arrive after this, and it says whether
	// its inbox is empty.
	if _, ok := h.stopEngine(e); ok && !strings.Contains(e.stdout.String(), "every accepted event was handled") {
		t.Errorf("%s stopped with events left: %q", e.name, stoppedLine(e.stdout.String()))
	}
	counts, misplaced, err := fetchDelivered(client, h.sandbox)
	if err != nil {
		t.Fatalf("reading the deliveries: %v", err)
	}
	var lost, dups []int
	for _, k := range accepted {
		if counts[k] == 0 {
			lost = append(lost, k)
		}
	}
	extra := 0 // delivered, though its sender never heard 200
	acceptedSet := make(map[int]bool, len(accepted))
	for _, k := range accepted {
		acceptedSet[k] = true
	}
	for k, n := range counts {
		if n > 1 {
			dups = append(dups, k)
		}
		if !acceptedSet[k] {
			extra++
		}
	}
	slices.Sort(dups)
	t.Logf("accepted %d, delivered %d distinct, duplicates %d, lost %d, delivered without a 200 %d; drained in %v",
		len(accepted), len(counts), len(dups), len(lost), extra, drained.Round(time.Millisecond))
	if len(dups) > 0 {
		t.Logf("counted more than once (sent again after the stop): %v", firstN(dups, 20))
	}
	if len(lost) > 0 {
		t.Errorf("LOST: %d accepted events never reached SessionM, e.g. %v", len(lost), firstN(lost, 20))
		if out, err := exec.Command(h.bin, "dlq", "list", "--data", h.data).CombinedOutput(); err == nil || len(out) > 0 {
			t.Logf("engine dlq list:\n%s", out)
		}
	}
	if len(misplaced) > 0 {
		t.Errorf("%d tags on the wrong user, e.g. %v", len(misplaced), firstN(misplaced, 10))
	}
	return dups
}

// fetchDelivered reads /_sandbox/deliveries: how many times SessionM
// counted tag evt_k, per k, and the evt_ tags found on another user than
// k%crashUsers.
func fetchDelivered(client *http.Client, sandbox string) (map[int]int, []string, error) {
	users, err := fetchSessionMUsers(client, sandbox)
	if err != nil {
		return nil, nil, err
	}
	counts := map[int]int{}
	var misplaced []string
	for _, u := range users {
		for name, st := range u.Tags {
			raw, ok := strings.CutPrefix(name, "evt_")
			if !ok {
				continue
			}
			k, err := strconv.Atoi(raw)
			if err != nil {
				misplaced = append(misplaced, u.UserID+": "+name)
				continue
			}
			if crashUserID(k%crashUsers) != u.UserID {
				misplaced = append(misplaced, u.UserID+": "+name)
				continue
			}
			counts[k] += st.Count
		}
	}
	return counts, misplaced, nil
}

// ledger records what each webhook sender was told.
type ledger struct {
	mu         sync.Mutex
	accepted   map[int]bool
	pending    map[int]error // sent, no 200 (yet)
	dupAnswers int           // 200s that said "duplicate":true
	count      atomic.Int64  // len(accepted)
}

func newLedger() *ledger { return &ledger{accepted: map[int]bool{}, pending: map[int]error{}} }

// send posts event k as a Braze webhook would: tag evt_k for user
// k%crashUsers, with Idempotency-Key evt_k. It returns the transport
// error, if the request got no answer.
func (l *ledger) send(c *http.Client, base string, k int) error {
	body := fmt.Sprintf(`{"tags":["evt_%d"]}`, k)
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/tags/"+crashUserID(k%crashUsers), strings.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth("sandbox-core-key", "sandbox-core-secret")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("evt_%d", k))
	resp, err := c.Do(req)
	if err != nil {
		l.record(k, false, false, err)
		return err
	}
	var ans struct {
		Accepted  bool `json:"accepted"`
		Duplicate bool `json:"duplicate"`
	}
	// The status is the acknowledgement: the engine answers 200 only
	// once the event is on disk.
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		l.record(k, true, ans.Duplicate, nil)
	} else {
		l.record(k, false, false, fmt.Errorf("HTTP %d", resp.StatusCode))
	}
	return nil
}

func (l *ledger) record(k int, ok, dup bool, why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		if !l.accepted[k] {
			l.pending[k] = why
		}
		return
	}
	delete(l.pending, k)
	if dup {
		l.dupAnswers++
	}
	if !l.accepted[k] {
		l.accepted[k] = true
		l.count.Add(1)
	}
}

func (l *ledger) acceptedCount() int { return int(l.count.Load()) }

func (l *ledger) duplicateAnswers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dupAnswers
}

func (l *ledger) acceptedKeys() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int, 0, len(l.accepted))
	for k := range l.accepted {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (l *ledger) unanswered() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int, 0, len(l.pending))
	for k := range l.pending {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// why sums up the failures of the requests without a 200.
func (l *ledger) why() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := map[string]int{}
	for _, err := range l.pending {
		kind := err.Error()
		for _, short := range []string{"connection refused", "connection reset", "EOF", "timeout", "HTTP "} {
			if strings.Contains(kind, short) {
				kind = short
				if short == "HTTP " {
					kind = err.Error()
				}
				break
			}
		}
		kinds[kind]++
	}
	parts := make([]string, 0, len(kinds))
	for kind, n := range kinds {
		parts = append(parts, fmt.Sprintf("%s: %d", kind, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// waitLoad polls until enough events were accepted: many, or at least few
// once minTime has passed. It reports false on timeout or when the engine
// exits.
func (l *ledger) waitLoad(many, few int, minTime, timeout time.Duration, exited <-chan struct{}) bool {
	began := time.Now()
	for {
		n := l.acceptedCount()
		if n >= many || n >= few && time.Since(began) >= minTime {
			return true
		}
		select {
		case <-exited:
			return false
		default:
		}
		if time.Since(began) > timeout {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendAll sends the events ks from crashSenders goroutines.
func (l *ledger) sendAll(c *http.Client, base string, ks []int) {
	ch := make(chan int)
	var wg sync.WaitGroup
	for range crashSenders {
		wg.Go(func() {
			for k := range ch {
				_ = l.send(c, base, k)
			}
		})
	}
	for _, k := range ks {
		ch <- k
	}
	close(ch)
	wg.Wait()
}

// senders send events 0, 1, 2, ... until halted; each stops at its first
// request that gets no answer (the engine died or stopped).
type senders struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startSenders(l *ledger, c *http.Client, base string, next *atomic.Int64) *senders {
	s := &senders{stop: make(chan struct{})}
	for range crashSenders {
		s.wg.Go(func() {
			for {
				select {
				case <-s.stop:
					return
				default:
				}
				if l.send(c, base, int(next.Add(1)-1)) != nil {
					return
				}
			}
		})
	}
	return s
}

func (s *senders) halt() {
	close(s.stop)
	s.wg.Wait()
}

// startLoad starts the senders against base and waits until the engine
// has accepted many events, or few once minTime has passed; the test
// fails (the senders halted) if that takes over 30 s or the engine exits.
func startLoad(t *testing.T, base string, exited <-chan struct{}, many, few int, minTime time.Duration) (*ledger, *senders, *atomic.Int64) {
	t.Helper()
	led, next := newLedger(), new(atomic.Int64)
	load := startSenders(led, newSenderClient(t), base, next)
	began := time.Now()
	if !led.waitLoad(many, few, minTime, 30*time.Second, exited) {
		load.halt()
		t.Fatalf("the engine accepted only %d events in %v", led.acceptedCount(), time.Since(began).Round(time.Millisecond))
	}
	return led, load, next
}

func newSenderClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: crashSenders, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// child is a process whose output is collected, printed if the test fails,
// and which is killed when the test ends.
type child struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan struct{} // closed once Wait returned
	err            error         // Wait's result, once exited is closed
}

func startChild(t testing.TB, name, bin string, args ...string) *child {
	t.Helper()
	c := &child{name: name, cmd: exec.Command(bin, args...), stdout: newSyncBuffer(), stderr: newSyncBuffer(), exited: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	c.cmd.WaitDelay = 5 * time.Second
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("%s %s (exit: %v)\n--- stdout:\n%s\n--- stderr:\n%s", name, strings.Join(args, " "), c.err,
				tail(c.stdout.String(), 4000), tail(c.stderr.String(), 12000))
		}
	})
	return c
}

func (c *child) done() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

func (c *child) exitErr() string {
	if !c.done() {
		return "still running"
	}
	if c.err == nil {
		return "exit 0"
	}
	return c.err.Error()
}

// syncBuffer collects a child's output; waitFor waits for a line in it.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor reports whether the output comes to contain s before the
// process exits or timeout passes.
func (b *syncBuffer) waitFor(s string, exited <-chan struct{}, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		found, changed := strings.Contains(b.buf.String(), s), b.changed
		b.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-exited: // Wait has copied all the output by now
			return strings.Contains(b.String(), s)
		case <-timer.C:
			return false
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[...]" + s[len(s)-n:]
}

func firstN[T any](s []T, n int) []T { return s[:min(n, len(s))] }

// stoppedLine is the engine's last word, "engine run: stopped; ...".
func stoppedLine(stdout string) string {
	for line := range strings.Lines(stdout) {
		if strings.HasPrefix(line, "engine run: stopped") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

const leftPrefix = "delivering events left by the last run:"

// leftByLastRun is the banner line about the events an earlier run left.
func leftByLastRun(stdout string) string {
	for line := range strings.Lines(stdout) {
		if strings.HasPrefix(line, leftPrefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// leftOf reads how many events of pipeline a line of leftByLastRun
// counts ("delivering events left by the last run: a 12, b 3"): 0 when
// the line is empty (nothing was left) or does not name the pipeline.
func leftOf(line, pipeline string) (int, error) {
	if line == "" {
		return 0, nil
	}
	list, ok := strings.CutPrefix(line, leftPrefix)
	if !ok {
		return 0, fmt.Errorf("%q does not start with %q", line, leftPrefix)
	}
	left := 0
	for part := range strings.SplitSeq(list, ",") {
		part = strings.TrimSpace(part)
		i := strings.LastIndexByte(part, ' ')
		n, err := strconv.Atoi(part[i+1:])
		if i <= 0 || err != nil || n < 0 {
			return 0, fmt.Errorf("%q in %q is not a pipeline and a count", part, line)
		}
		if part[:i] == pipeline {
			left = n
		}
	}
	return left, nil
}

func TestLeftOf(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
		bad  bool
	}{
		{"", 0, false},
		{"delivering events left by the last run: ordered-tags 2935", 2935, false},
		{"delivering events left by the last run: any-campaign 3, ordered-tags 12, track 7", 12, false},
		{"delivering events left by the last run: track 7", 0, false},
		{"delivering events left by the last run: ordered-tags 1x", 0, true},
		{"delivering events left by the last run: ordered-tags", 0, true},
		{"delivering events left by the last run:", 0, true},
		{"kept in the inbox for pipelines no file defines now: ordered-tags 3", 0, true},
	} {
		got, err := leftOf(tc.line, crashPipeline)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("leftOf(%q) = %d, %v; want %d, error %v", tc.line, got, err, tc.want, tc.bad)
		}
	}
}
