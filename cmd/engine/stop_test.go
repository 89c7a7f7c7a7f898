package main

// How engine run stops, tested on the built binary with real signals:
// a second signal stops at once, and --drain keeps the listener open.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stopAtOnce is how soon engine run must exit after the signal that
// stops it at once: well under --grace, and under the 10 s a request to
// SessionM may take, which the process would otherwise wait for.
const stopAtOnce = 5 * time.Second

// TestSecondSignalStopsAtOnce stops an engine whose delivery hangs: the
// first SIGTERM waits for it, the second abandons it, and the event is
// delivered by the next run.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, 10)
	h.flags = []string{"--grace", "1m"}
	// SessionM holds the first request for an hour; the connection's
	// timeout ends it after 10 s.
	client := &http.Client{Timeout: 10 * time.Second}
	addFault(t, client, h.sandbox, `{"emulator":"sessionm_core","latency":"1h","count":1}`)
	e := h.startEngine(0)
	led := newLedger()
	if err := led.send(newSenderClient(t), e.base, 1); err != nil || led.acceptedCount() != 1 {
		t.Fatalf("the webhook was not accepted: %v (%s)", err, led.why())
	}
	waitFaultsUsed(t, client, h.sandbox, e.exited) // the request is in flight

	sendSignal(t, e, syscall.SIGTERM)
	if !e.stdout.waitFor("engine run: stopping", e.exited, 10*time.Second) {
		t.Fatalf("%s did not say it was stopping (exit: %v)", e.name, e.exitErr())
	}
	if e.done() {
		t.Fatalf("%s exited at the first SIGTERM with a request in flight: %v", e.name, e.exitErr())
	}
	sent := sendSignal(t, e, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(stopAtOnce):
		t.Fatalf("%s still running %v after a second SIGTERM (--grace 1m)", e.name, stopAtOnce)
	}
	t.Logf("exited %v after the second SIGTERM", time.Since(sent).Round(time.Millisecond))
	if e.err != nil {
		t.Errorf("%s: %v, want exit 0", e.name, e.err)
	}
	if want := "engine run: SIGTERM while stopping: stopping now; in-flight deliveries are abandoned"; !strings.Contains(e.stdout.String(), want) {
		t.Errorf("stdout lacks %q", want)
	}
	for _, want := range []string{"stopping now: a second signal", "stopping: requests on the wire were cut"} {
		if !strings.Contains(e.stderr.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	// Its request was on the wire: the peer may have it.
	if want := "engine run: cut on the wire by the stop (the peer may have taken them), so the next run may send them twice, from the inbox or, for CSV rows, from their file: ordered-tags 1"; !strings.Contains(e.stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, e.stdout.String())
	}
	if line := stoppedLine(e.stdout.String()); !strings.Contains(line, "still queued for the next run: ordered-tags 1") {
		t.Errorf("last word %q, want the abandoned event still queued", line)
	}
	if want := `msg="stopped; events are still queued for the next run" events=1 queued="ordered-tags 1"`; !strings.Contains(e.stderr.String(), want) {
		t.Errorf("stderr lacks the log line %q", want)
	}

	next := h.startEngine(e.port)
	if left := leftByLastRun(next.stdout.String()); left == "" {
		t.Errorf("%s found nothing left by the last run", next.name)
	}
	// SessionM may have applied the abandoned request once its client
	// went away: the event can count twice.
	h.checkDelivered(next, led, 1)
}

// TestDrainKeepsTakingWebhooks stops an engine run with --drain: after
// SIGTERM, /readyz answers 503 and webhooks are still taken, so a load
// balancer sees the engine leave before its listener closes; a second
// SIGTERM ends the drain at once, and what it took is delivered.
func TestDrainKeepsTakingWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, 10)
	h.flags = []string{"--drain", "1m"}
	e := h.startEngine(0)
	sendSignal(t, e, syscall.SIGTERM)
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(e.base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the drain: %v (exit: %v)", err, e.exitErr())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			if !strings.Contains(string(body), `"status":"stopping"`) {
				t.Errorf("/readyz during the drain: %s, want it to say the engine is stopping", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still answers %d 10 s after SIGTERM", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	led := newLedger()
	if err := led.send(newSenderClient(t), e.base, 1); err != nil || led.acceptedCount() != 1 {
		t.Fatalf("a webhook during the drain was not accepted: %v (%s)", err, led.why())
	}
	// The workers still deliver: the engine counts the event delivered.
	delivered := regexp.MustCompile(`(?m)^engine_events_handled_total\{[^}]*outcome="delivered"[^}]*\} 1$`)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := client.Get(e.base + "/metrics")
		if err != nil {
			t.Fatalf("/metrics during the drain: %v", err)
		}
		metrics, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if delivered.Match(metrics) {
			break
		}
		if e.done() || time.Now().After(deadline) {
			t.Fatalf("the webhook taken during the drain was not delivered (exit: %v)", e.exitErr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sendSignal(t, e, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(stopAtOnce):
		t.Fatalf("%s still running %v after a second SIGTERM (--drain 1m)", e.name, stopAtOnce)
	}
	if e.err != nil {
		t.Errorf("%s: %v, want exit 0", e.name, e.err)
	}
	if line := stoppedLine(e.stdout.String()); !strings.Contains(line, "every accepted event was handled") {
		t.Errorf("last word %q, want every event handled", line)
	}
}

// A stop takes --drain plus --grace at most, what an orchestrator's kill
// timeout is set from: the workers got a second more than what the
// listener left of the grace. A reload asked for during the stop is
// refused (503), as a SIGHUP is: it waited for the stop, then reported
// versions that never ran, after the stop's last word.
func TestStopKeepsToDrainAndGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	const drain, grace = time.Second, 2 * time.Second
	h := newCrashHarness(t, 10)
	h.flags = []string{"--drain", drain.String(), "--grace", grace.String(), "--log-format", "json"}
	client := &http.Client{Timeout: 10 * time.Second}
	addFault(t, client, h.sandbox, `{"emulator":"sessionm_core","latency":"1h","count":1}`)
	e := h.startEngine(0)
	admin := regexp.MustCompile(`admin on (http://\S+) `).FindStringSubmatch(e.stdout.String())
	if admin == nil {
		t.Fatalf("no admin address in the banner:\n%s", e.stdout.String())
	}
	led := newLedger()
	if err := led.send(newSenderClient(t), e.base, 1); err != nil || led.acceptedCount() != 1 {
		t.Fatalf("the webhook was not accepted: %v (%s)", err, led.why())
	}
	waitFaultsUsed(t, client, h.sandbox, e.exited) // the request hangs on the wire
	// A webhook still uploading holds the listener for the whole grace,
	// which left the workers nothing but the floor.
	slow, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /hooks/campaign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"tags\":")
	sent := sendSignal(t, e, syscall.SIGTERM)
	if !e.stdout.waitFor("engine run: stopping", e.exited, 10*time.Second) {
		t.Fatalf("%s did not say it was stopping (exit: %v)", e.name, e.exitErr())
	}
	resp, err := client.Post(admin[1]+"/-/reload", "application/json", nil)
	if err != nil {
		t.Fatalf("POST /-/reload during the stop: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "the engine is stopping: nothing is reloaded") {
		t.Errorf("POST /-/reload during the stop: %d %s; want 503 saying it is stopping", resp.StatusCode, body)
	}
	if took := time.Since(sent); took > drain {
		t.Errorf("POST /-/reload took %v to answer: it waited for the stop", took)
	}
	select {
	case <-e.exited:
	case <-time.After(drain + grace + 5*time.Second):
		t.Fatalf("%s still running %v after SIGTERM", e.name, time.Since(sent).Round(time.Millisecond))
	}
	// Some slack for the process to exit; the floor added a whole second.
	if took := time.Since(sent); took > drain+grace+700*time.Millisecond {
		t.Errorf("the stop took %v, over --drain %v plus --grace %v", took.Round(time.Millisecond), drain, grace)
	}
	for _, want := range []string{`"msg":"stopping: requests on the wire were cut`, `"events":"ordered-tags 1"`, `"msg":"not reloaded: the engine is stopping"`} {
		if !strings.Contains(e.stderr.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, e.stderr.String())
		}
	}
	if strings.Contains(e.stderr.String(), `"msg":"reloaded"`) {
		t.Errorf("a reload ran during the stop:\n%s", e.stderr.String())
	}
	// The admin listener's answers come before the stop's last word.
	if log := e.stderr.String(); strings.Index(log, `"msg":"not reloaded`) > strings.Index(log, `"msg":"stopped`) {
		t.Errorf("a reload was answered after the last word:\n%s", log)
	}
}

// sendSignal sends sig to the engine and returns when.
func sendSignal(t *testing.T, e *engineRun, sig syscall.Signal) time.Time {
	t.Helper()
	if err := e.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", e.name, sig, err)
	}
	return time.Now()
}

// addFault adds a sandbox fault rule.
func addFault(t *testing.T, client *http.Client, sandbox, rule string) {
	t.Helper()
	resp, err := client.Post(sandbox+"/_sandbox/faults", "application/json", strings.NewReader(rule))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /_sandbox/faults %s: HTTP %d", rule, resp.StatusCode)
	}
}

// waitFaultsUsed waits until the sandbox has no fault rule left: a rule
// with a count goes once that many requests have arrived.
func waitFaultsUsed(t *testing.T, client *http.Client, sandbox string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got struct {
			Faults []json.RawMessage `json:"faults"`
		}
		resp, err := client.Get(sandbox + "/_sandbox/faults")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET /_sandbox/faults: %v", err)
		}
		if len(got.Faults) == 0 {
			return
		}
		select {
		case <-exited:
			t.Fatal("the engine exited before its request reached the sandbox")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request reached the sandbox's fault in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// engine run exits 1 when it did not do its job: the listener failed, or
// a --csv file of an --until-done run was not imported.
func TestRunExitStatus(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.csv")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mac := filepath.Join(t.TempDir(), "mac.csv")
	if err := os.WriteFile(mac, []byte("user_id,tag\rload-000001,vip\r"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		failing   bool // the listener fails at its first Accept
		args      []string
		want      int
		wantInErr string
	}{
		{"listener fails", true, []string{"--env-file", "examples/sandbox.env", "engine/runner/testdata/pipelines/"},
			exitProblem, "the listener stopped"},
		{"csv not imported", false, []string{"--sandbox", "--csv", empty, "--until-done", "pipelines/"},
			exitProblem, "the file is empty"},
		{"csv with CR-only line endings", false, []string{"--sandbox", "--csv", mac, "--until-done", "pipelines/"},
			exitProblem, "mac.csv: the line endings are CR only"},
		{"csv imported", false, []string{"--sandbox", "--csv", "examples/csv/braze-segment-export.csv", "--until-done", "pipelines/"},
			exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.failing {
				was := listen
				t.Cleanup(func() { listen = was })
				listen = func(network, addr string) (net.Listener, error) {
					ln, err := was(network, addr)
					return failingListener{ln}, err
				}
			}
			// Warnings only: the info lines of the CSV inbox watcher would
			// race with runImports on a bytes.Buffer (not on os.Stderr).
			args := append([]string{"run", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", t.TempDir(), "--log-level", "warn"}, tt.args...)
			done := make(chan struct{})
			var stdout, stderr string
			var code int
			go func() {
				defer close(done)
				stdout, stderr, code = runEngine(args...)
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("engine run still running after a minute")
			}
			if code != tt.want || !strings.Contains(stderr, tt.wantInErr) {
				t.Errorf("exit %d, want %d and %q on stderr\n--- stdout:\n%s\n--- stderr:\n%s", code, tt.want, tt.wantInErr, stdout, stderr)
			}
		})
	}
}

// failingListener fails as a listener whose socket broke does.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) {
	return nil, errors.New("accept tcp: use of a broken socket")
}

// TestUntilDoneStopsWithoutADrain: a batch job (--until-done) has no load
// balancer to wait for, so a signal stops it without the --drain.
func TestUntilDoneStopsWithoutADrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	file := writeSegment(t, 2000, 100)
	h := newCrashHarness(t, 100)
	h.flags = []string{"--csv", file, "--until-done", "--drain", "1m"}
	h.pipelines = csvPipelineFile
	// Slow enough that the file is still being sent at the signal.
	addFault(t, &http.Client{Timeout: 10 * time.Second}, h.sandbox, `{"emulator":"sessionm_core","latency":"50ms"}`)
	e := h.launchEngine(0)
	sendSignal(t, e, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(stopAtOnce):
		t.Fatalf("%s still running %v after SIGTERM: an --until-done run waited out --drain 1m", e.name, stopAtOnce)
	}
	if strings.Contains(e.stdout.String(), "webhooks are still taken") {
		t.Errorf("an --until-done run announced a drain:\n%s", e.stdout.String())
	}
}

// countingSessionM is a SessionM that answers every request ok after
// delay, and counts them; it returns its host:port for csvJob.
func countingSessionM(t *testing.T, delay time.Duration) (string, *atomic.Int32) {
	requests := new(atomic.Int32)
	sessionm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","payload":{}}`)
	}))
	t.Cleanup(sessionm.Close)
	return strings.TrimPrefix(sessionm.URL, "http://"), requests
}

// csvJob prepares an engine run --csv --until-done of the shipped
// pipelines with the CSV pipeline's delivery settings set to delivery and
// SessionM Core at target (host:port): the pipelines folder, the CSV
// pipeline's file in it, and an env file.
func csvJob(t *testing.T, delivery, target string) (dir, csvFile, envFile string) {
	t.Helper()
	dir = copyDir(t, "pipelines")
	csvFile = filepath.Join(dir, filepath.Base(csvPipelineFile))
	raw, err := os.ReadFile(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, csvFile, strings.Replace(string(raw), "concurrency: 32", delivery, 1))
	env, err := os.ReadFile("examples/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	envFile = filepath.Join(t.TempDir(), "test.env")
	env = append(env, "\nSESSIONM_CORE_URL=http://"+target+"/sessionm/core\n"...)
	if err := os.WriteFile(envFile, env, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, csvFile, envFile
}

// segmentFile writes a CSV of n users (and extra lines) into a new folder.
func segmentFile(t *testing.T, name string, n int, extra string) string {
	t.Helper()
	var rows strings.Builder
	rows.WriteString("user_id,tag\n")
	for i := range n {
		fmt.Fprintf(&rows, "user-%d,vip\n", i)
	}
	rows.WriteString(extra)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type runResult struct {
	stdout, stderr string
	code           int
}

// runUntilDone starts engine run in the background with args after the
// env file, listeners and data folder.
func runUntilDone(t *testing.T, envFile string, args ...string) <-chan runResult {
	finished := make(chan runResult, 1)
	data := t.TempDir()
	go func() {
		stdout, stderr, code := runEngine(append([]string{"run", "--env-file", envFile, "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", data, "--log-level", "error"}, args...)...)
		finished <- runResult{stdout, stderr, code}
	}()
	return finished
}

// engine run --csv --until-done whose pipeline is removed half-way
// through the first file: the imports fail, and the run exits 1 once the rows
// the lane held have their outcome, although the rows it moved to the
// inbox for a retry cannot be delivered by this run. It waited for them,
// and for rows given back by the retired lane, for ever.
func TestRunUntilDoneExitsWhenItsPipelineIsRemoved(t *testing.T) {
	// SessionM takes the connections and never answers: the requests in
	// flight time out and their rows go to the inbox for a retry.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
			accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	dir, csvFile, envFile := csvJob(t, "concurrency: 4\n  timeout: 300ms\n  backoff: {initial: 1m, max: 1m}", hang.Addr().String())
	// Two files: the second, not begun when the pipeline goes, fails at
	// once and must not be waited for either.
	segment, later := segmentFile(t, "segment.csv", 2000, ""), segmentFile(t, "later.csv", 2000, "user-x,vip\n")
	finished := runUntilDone(t, envFile, "--csv", segment, "--csv", later, "--until-done", dir)
	waitFor(t, "requests in flight", func() bool { return accepted.Load() >= 4 })
	time.Sleep(500 * time.Millisecond) // a first round timed out and went to the inbox
	if err := os.Remove(csvFile); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-finished:
		if res.code != exitProblem || !strings.Contains(res.stdout, "was removed while it imported") || !strings.Contains(res.stdout, "later.csv: not imported: ") {
			t.Fatalf("code %d (want %d)\n%s\n%s", res.code, exitProblem, res.stdout, res.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("engine run --until-done still runs 30 s after its pipeline was removed")
	}
}

// engine run --csv F --csv F --until-done (or a --csv file that also sits
// in the pipeline's inbox folder) where a few rows need a retry: each
// import's rows settle in its own record, and the run exits 0 once all
// are delivered. The retries settled in the second import's record, the
// first's never settled, and --until-done never exited.
func TestRunUntilDoneSameFileTwiceWithRetries(t *testing.T) {
	var requests atomic.Int32
	sessionm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if requests.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","payload":{}}`)
	}))
	defer sessionm.Close()
	dir, _, envFile := csvJob(t, "concurrency: 4\n  backoff: {initial: 1s, max: 1s}", strings.TrimPrefix(sessionm.URL, "http://"))
	segment := segmentFile(t, "segment.csv", 50, "")
	select {
	case res := <-runUntilDone(t, envFile, "--csv", segment, "--csv", segment, "--until-done", dir):
		if res.code != exitOK || strings.Count(res.stdout, "; done") != 2 || requests.Load() != 53 {
			t.Fatalf("code %d, %d requests (want 0 and 53: 50 rows, 3 of them retried)\n%s\n%s", res.code, requests.Load(), res.stdout, res.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("engine run --until-done still runs 20 s later; %d requests made (50 rows, 3 answered 503 then retried after 1 s)", requests.Load())
	}
}

// The stop's last word went to stdout only: a collector of the JSON log
// never learned whether a stop left events queued. It is logged too, a
// warning when events stay.
func TestStopSummaryIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name      string
		left      map[string]int
		unremoved map[string]int
		cut       map[string]int
		unwritten map[string]int
		stranded  map[string]int
		stdout    string
		log       map[string]any
	}{
		{"all handled", nil, nil, nil, nil, nil, "engine run: stopped; every accepted event was handled\n",
			map[string]any{"level": "INFO", "msg": "stopped; every accepted event was handled"}},
		{"some left", map[string]int{"ordered-tags": 1, "any-campaign": 2}, nil, nil, nil, nil, "engine run: stopped; still queued for the next run: any-campaign 2, ordered-tags 1\n",
			map[string]any{"level": "WARN", "msg": "stopped; events are still queued for the next run", "events": float64(3), "queued": "any-campaign 2, ordered-tags 1"}},
		{"some delivered but not removed", map[string]int{"any-campaign": 5}, map[string]int{"any-campaign": 3}, nil, nil, nil,
			"engine run: stopped; still queued for the next run: any-campaign 5\n" +
				"engine run: of these, delivered already but not removed from the inbox (see the errors above: a full disk?), so the next run sends them again: any-campaign 3\n",
			map[string]any{"level": "WARN", "msg": "stopped; events are still queued for the next run", "events": float64(5), "queued": "any-campaign 5", "delivered_not_removed": "any-campaign 3"}},
		{"some cut on the wire", map[string]int{"any-campaign": 5, "ordered-tags": 2}, nil, map[string]int{"any-campaign": 4}, nil, nil,
			"engine run: stopped; still queued for the next run: any-campaign 5, ordered-tags 2\n" +
				"engine run: cut on the wire by the stop (the peer may have taken them), so the next run may send them twice, from the inbox or, for CSV rows, from their file: any-campaign 4\n",
			map[string]any{"level": "WARN", "msg": "stopped; events are still queued for the next run", "events": float64(7), "queued": "any-campaign 5, ordered-tags 2", "cut_on_wire": "any-campaign 4"}},
		// CSV rows are read again from their file, not queued.
		{"CSV rows cut on the wire, nothing queued", nil, nil, map[string]int{"segment": 8}, nil, nil,
			"engine run: stopped; nothing is queued for the next run\n" +
				"engine run: cut on the wire by the stop (the peer may have taken them), so the next run may send them twice, from the inbox or, for CSV rows, from their file: segment 8\n",
			map[string]any{"level": "WARN", "msg": "stopped; requests on the wire were cut", "cut_on_wire": "segment 8"}},
		// A removed pipeline's events wait for a file of its name.
		{"some of a removed pipeline", map[string]int{"any-campaign": 3, "old-name": 2}, nil, nil, nil, map[string]int{"old-name": 2},
			"engine run: stopped; still queued for the next run: any-campaign 3, old-name 2\n" +
				"engine run: of these, for pipelines no file defines now (a removed or renamed file, or one that answers its callers), which stay until a pipeline of that name with a target runs: old-name 2\n",
			map[string]any{"level": "WARN", "msg": "stopped; events are still queued for the next run", "events": float64(5), "queued": "any-campaign 3, old-name 2", "no_pipeline": "old-name 2"}},
		// Failed on a full disk: their dead letters wait to be written.
		{"some without their dead letter", map[string]int{"any-campaign": 3}, nil, nil, map[string]int{"any-campaign": 2}, nil,
			"engine run: stopped; still queued for the next run: any-campaign 3\n" +
				"engine run: of these, failed but their dead letter could not be written (see the errors above: a full disk?), so the next run sends them again: any-campaign 2\n",
			map[string]any{"level": "WARN", "msg": "stopped; events are still queued for the next run", "events": float64(3), "queued": "any-campaign 3", "dead_letter_unwritten": "any-campaign 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, logs strings.Builder
			reportStopped(&stdout, slog.New(slog.NewJSONHandler(&logs, nil)), stopCounts{left: tc.left, unremoved: tc.unremoved, cut: tc.cut, deadUnwritten: tc.unwritten, stranded: tc.stranded})
			if stdout.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(logs.String()), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			delete(line, "time")
			if !reflect.DeepEqual(line, tc.log) {
				t.Errorf("logged %v, want %v", line, tc.log)
			}
		})
	}
}

// The JSON log writes durations as the text log does, with their unit.
func TestJSONLogDurationsHaveUnits(t *testing.T) {
	var logs strings.Builder
	logger, err := newLogger(&logs, "json", "info", nil)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("will retry", "in", 79*time.Millisecond, "attempt", 2)
	var line map[string]any
	if err := json.Unmarshal([]byte(logs.String()), &line); err != nil {
		t.Fatalf("%q: %v", logs.String(), err)
	}
	if line["in"] != "79ms" || line["attempt"] != float64(2) {
		t.Errorf("logged %v; want in \"79ms\" and attempt 2", line)
	}
}

// The log says the engine started, with the pipeline versions it runs,
// and warns of each route anyone who reaches the listener can call: a JSON
// log had neither, only the text banner on stdout (an operator's QA pass).
func TestStartIsLogged(t *testing.T) {
	dir := copyDir(t, "pipelines")
	open := `source: { type: http, path: "/open/{user_id}" }
target:
  connection: sessionm_core
  endpoint: tags
  params: { user_id: "{{ request.params.user_id }}" }
  body: { tags: [open] }
`
	if err := os.WriteFile(filepath.Join(dir, "open-route.yaml"), []byte(open), 0o644); err != nil {
		t.Fatal(err)
	}
	loader, masker, err := (&configFlags{envFiles: listFlag{"examples/sandbox.env"}}).loader()
	if err != nil {
		t.Fatal(err)
	}
	proj := loader.Load([]string{dir})
	if err := proj.Diagnostics.Err(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logStarted(slog.New(slog.NewJSONHandler(&logs, nil)), "127.0.0.1:8080", "127.0.0.1:8079", "data", proj.Pipelines, masker)
	var started, warned []map[string]any
	for _, text := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(text), &line); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		switch line["msg"] {
		case "engine started":
			started = append(started, line)
		default:
			warned = append(warned, line)
		}
	}
	if len(started) != 1 || len(started[0]["pipelines"].([]any)) != len(proj.Pipelines) || started[0]["addr"] != "127.0.0.1:8080" {
		t.Errorf("started lines %v; want one naming the %d pipelines", started, len(proj.Pipelines))
	}
	// The shipped routes all take auth; the added one does not.
	if len(warned) != 1 || warned[0]["level"] != "WARN" || warned[0]["pipeline"] != "open-route" || warned[0]["path"] != "/open/{user_id}" {
		t.Errorf("warnings %v; want one, for open-route", warned)
	}
	// validate says so too, once for all such routes, and still says ok
	stdout, _, code := runEngine("validate", "--env-file", "examples/sandbox.env", dir)
	if code != exitOK || !strings.Contains(stdout, "note: no source.auth, so anyone who reaches the listener can call: open-route\nok: ") {
		t.Errorf("validate: exit %d, stdout:\n%s", code, stdout)
	}
}

// With --log-format json, what a failed start says reaches stderr as JSON
// lines too: the pipelines' problems and the reason nothing started.
func TestJSONLogStartErrors(t *testing.T) {
	dir := copyDir(t, "pipelines")
	file := filepath.Join(dir, "offer-issued-to-braze-campaign.yaml")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(src), "filter: ", "filter: ((", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", t.TempDir(), "--log-format", "json", dir)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, text := range lines {
		if !json.Valid([]byte(text)) {
			t.Errorf("not a JSON line: %q", text)
		}
	}
	if code != exitProblem || len(lines) < 2 || !strings.Contains(lines[0], "offer-issued-to-braze-campaign.yaml:") || !strings.Contains(lines[len(lines)-1], "nothing was started") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	// and a --csv file that cannot be imported
	_, stderr, code = runEngine("run", "--env-file", "examples/sandbox.env", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", t.TempDir(), "--log-format", "json",
		"--csv", "cmd/engine/testdata/no-header.csv", "--until-done", "pipelines/")
	for _, text := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !json.Valid([]byte(text)) {
			t.Errorf("not a JSON line: %q", text)
		}
	}
	if code != exitProblem || !strings.Contains(stderr, `"msg":"CSV file not imported"`) {
		t.Errorf("--csv: exit %d, stderr:\n%s", code, stderr)
	}
}
