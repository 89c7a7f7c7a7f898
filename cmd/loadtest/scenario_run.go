package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/sandbox"
)

// The messages engine run prints when it stops (cmd/engine/run.go).
const (
	stoppedEmpty = "every accepted event was handled"
	stoppedLeft  = "still queued for the next run"
)

const (
	startTimeout = 30 * time.Second
	pollEvery    = 100 * time.Millisecond
	memoryEvery  = 100 * time.Millisecond
	// stopTimeout covers engine run's default --grace of 30 s.
	stopTimeout = 45 * time.Second
)

// runScenario starts a sandbox and an engine in dir, runs one scenario
// against them, and stops both. Once sending has started, what goes wrong
// is recorded in the result's problems, so that partial figures are still
// reported.
func runScenario(ctx context.Context, cfg *config, name, dir string, progress func(string, ...any)) (*result, error) {
	// Room in the journal for every request of the run (F4 makes a lookup
	// per event plus the trigger requests; retries add some), so it drops
	// nothing the tracker has not read yet.
	// F4's trigger bodies carry about 530 bytes per recipient: past some
	// 230,000 events the default 128 MiB of bodies dropped the oldest
	// requests, and the run failed with nothing lost (a QA run).
	bodies := 0
	if name == "f4" {
		bodies = cfg.events << 10
	}
	sb, sandboxBase, get, err := startSandbox(ctx, cfg, name, dir, cfg.users, 3*cfg.events, bodies)
	if err != nil {
		return nil, err
	}
	defer sb.stop(stopTimeout)
	control := sandbox.URLsFor(sandboxBase).Control
	runID := newRunID()
	var sc *scenario
	switch name {
	case "f1":
		sc, err = f1(get, runID)
	case "f4":
		sc, err = f4(get, runID, cfg.offerEvent)
	}
	if err != nil {
		return nil, err
	}

	args, removeData := engineArgs(cfg, dir, name, runID)
	defer removeData()
	eng, err := startChild("engine run", cfg.engine, append(args, cfg.pipelines)...)
	if err != nil {
		return nil, err
	}
	defer eng.stop(stopTimeout)
	line, err := eng.waitLine(ctx, "engine run: listening on ", startTimeout)
	if err != nil {
		return nil, err
	}
	addr, _, _ := strings.Cut(strings.TrimPrefix(line, "engine run: listening on "), " ")
	base := "http://" + addr
	// Built before the trackers start, which an error here would leave running.
	proto, err := newSender(base, sc.header)
	if err != nil {
		return nil, err
	}
	client := newClient(cfg.senders)
	if err := waitReady(ctx, client, base+"/readyz", eng); err != nil {
		return nil, err
	}
	progress("%s: sandbox pid %d at %s, engine pid %d at %s; sending %d events", name, sb.pid(), sandboxBase, eng.pid(), base, cfg.events)

	res := &result{Scenario: name, Pipeline: sc.pipeline, Events: cfg.events, Users: cfg.users, Senders: cfg.senders, Rate: cfg.rate, HoldSeconds: cfg.holdTarget.Seconds()}
	if cfg.holdTarget > 0 {
		if err := holdTarget(ctx, control, sc.journalPath, cfg.holdTarget); err != nil {
			return nil, err
		}
	}
	before, err := snapshot(eng, sb)
	if err != nil {
		return nil, err
	}
	// The tracker has its own connections, closed before the sandbox
	// stops: see closeIdle.
	mem := sampleMemory(eng.pid(), memoryEvery)
	tr, finishTracking := startTracker(ctx, control, sc, cfg.users)

	s := sendAll(ctx, proto, sc, cfg)
	res.fillSent(s)
	progress("%s: %d accepted in %.2f s; waiting for deliveries", name, res.Accepted, res.SendSeconds)

	// What each user should receive: one delivery per accepted event.
	want := make([]int32, cfg.users)
	for i, st := range s.status {
		if st >= 200 && st < 300 {
			want[i%cfg.users]++
		}
	}
	waitErr := waitDelivered(ctx, tr, want, res.Accepted, sc.maxRecipients, cfg.wait, eng)
	after, snapErr := snapshot(eng, sb)
	res.fillMemory(mem)
	if h, err := readAcceptHistogram(ctx, client, base, sc.pipeline); err != nil {
		res.problem("%v", err)
	} else {
		res.EngineAcceptP50Ms, res.EngineAcceptP99Ms = 1000*h.quantileBound(0.5), 1000*h.quantileBound(0.99)
	}
	if err := finishTracking(); err != nil {
		res.problem("%v", err)
	}
	res.fillDelivered(tr, s, want, cfg.users >= cfg.events)
	if waitErr != nil {
		res.problem("%v", waitErr)
	}
	if snapErr != nil {
		res.problem("%v", snapErr)
	} else {
		res.fillResources(before, after)
	}
	if tr.err != nil {
		res.problem("%v", tr.err)
	}

	// Stopping the engine is part of the test: it must leave nothing in
	// the inbox.
	closeIdle(client, tr.client)
	if err := eng.stop(stopTimeout); err != nil {
		res.problem("%v", err)
	}
	res.fillStop(eng, cfg.inboxCheck, "when stopped")
	if err := sb.stop(stopTimeout); err != nil {
		res.problem("%v", err)
	}
	return res, nil
}

// engineArgs are the arguments of engine run for a scenario, up to the
// pipelines; removeData removes the inbox folder made under --data.
func engineArgs(cfg *config, dir, name, runID string) (args []string, removeData func()) {
	dataDir, removeData := filepath.Join(dir, "data"), func() {}
	if cfg.dataDir != "" {
		dataDir = filepath.Join(cfg.dataDir, "loadtest-"+runID)
		// --keep keeps this inbox too, as it keeps the temporary one.
		if !cfg.keepTempDir {
			removeData = func() { os.RemoveAll(dataDir) }
		}
	}
	args = []string{"run", "--addr", "127.0.0.1:0", "--data", dataDir,
		"--env-file", sandboxEnvFile(dir), "--env-file", cfg.sandboxEnv, "--log-level", "warn"}
	if cfg.adminFlag {
		// The admin listener's default port would collide with any other
		// engine on the machine, and the load test does not use it.
		args = append(args, "--admin-addr", "")
	}
	if cfg.cpuProfile != "" {
		// engine run writes the profile when it stops, so it covers the
		// whole run, the drain and the stop included.
		args = append(args, "--cpu-profile", profilePath(cfg.cpuProfile, name, len(cfg.scenarios)))
	}
	return args, removeData
}

// startTracker makes the scenario's tracker, on connections of its own
// (closed before the sandbox stops: see closeIdle). finish reads what the
// journal holds by then, so the figures include everything the emulators
// saw.
func startTracker(ctx context.Context, control string, sc *scenario, users int) (tr *tracker, finish func() error) {
	tr = newTracker(&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}, control, sc, users)
	return tr, func() error { return tr.poll(ctx) }
}

// fillStop records how engine run ended: its log, its stop message, and
// (with check) a problem unless it reported an empty inbox.
func (r *result) fillStop(eng *child, check bool, when string) {
	r.EngineLogLines = eng.stderrCount()
	r.EngineLogTail = eng.lastStderr()
	r.StopMessage = stopMessage(eng.stdout())
	r.InboxEmpty = strings.Contains(r.StopMessage, stoppedEmpty)
	if check && !r.InboxEmpty {
		r.problem("engine run did not report an empty inbox %s: %q", when, r.StopMessage)
	}
}

// holdTarget adds a sandbox fault: one 429 burst of length d on the
// target requests, starting with the first.
func holdTarget(ctx context.Context, control, path string, d time.Duration) error {
	rule, err := json.Marshal(map[string]any{"path": path, "method": http.MethodPost, "throttle": map[string]string{"for": d.String()}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, control+"/faults", bytes.NewReader(rule))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("adding the hold on the target: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("adding the hold on the target: HTTP %d: %s", resp.StatusCode, body)
	}
	return nil
}

// sandboxEnvFile is where the sandbox writes its settings (--env-out),
// which engine run then reads.
func sandboxEnvFile(dir string) string { return filepath.Join(dir, "sandbox.env") }

// startSandbox starts engine sandbox with users generated users and room
// for journal requests and journalBytes of their bodies, and reads its
// address and settings.
func startSandbox(ctx context.Context, cfg *config, name, dir string, users, journal, journalBytes int) (sb *child, base string, get lookup, err error) {
	envOut := sandboxEnvFile(dir)
	args := []string{"sandbox", "--addr", "127.0.0.1:0", "--env-out", envOut,
		"--generated-users", strconv.Itoa(users),
		"--journal-size", strconv.Itoa(max(sandbox.DefaultJournalSize, journal)),
		"--journal-mib", strconv.Itoa(max(sandbox.DefaultJournalBytes, journalBytes) >> 20)}
	if cfg.cpuProfile != "" {
		args = append(args, "--cpu-profile", profilePath(cfg.cpuProfile, name, len(cfg.scenarios))+".sandbox")
	}
	sb, err = startChild("engine sandbox", cfg.engine, args...)
	if err != nil {
		return nil, "", nil, err
	}
	banner, err := sb.waitLine(ctx, "emulators on http://", startTimeout)
	if err == nil {
		base, _, _ = strings.Cut(banner[strings.Index(banner, "http://"):], " ")
		get, err = settings(envOut, cfg.sandboxEnv)
	}
	if err != nil {
		sb.stop(stopTimeout)
		return nil, "", nil, err
	}
	return sb, base, get, nil
}

// closeIdle closes the clients' idle connections before the servers
// stop. A connection that was dialled but never carried a request (the
// transport dials ahead, and a cancelled poll leaves one) holds up a Go
// server's Shutdown for 5 s, which is all engine sandbox allows itself:
// it would then exit 1 with "context deadline exceeded".
func closeIdle(clients ...*http.Client) {
	for _, c := range clients {
		c.CloseIdleConnections()
	}
}

// settings resolves names as engine run does with --env-file envOut
// --env-file sandboxEnv: the environment first, then the files in order.
func settings(files ...string) (lookup, error) {
	var maps []map[string]string
	for _, f := range files {
		m, err := secrets.ReadEnvFile(f)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	return secrets.LookupChain(maps...), nil
}

// newRunID makes event ids and idempotency keys unique to this run, so a
// kept --data folder cannot answer "duplicate" for a new run's events.
func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "lt" + hex.EncodeToString(b[:])
}

// waitReady polls /readyz until the engine says its pipelines run.
func waitReady(ctx context.Context, client *http.Client, url string, eng *child) error {
	deadline := time.Now().Add(startTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := eng.running(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("engine run was not ready within %s", startTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitDelivered returns when the journal shows a delivery for every
// accepted event, or with an error when wait runs out or the engine dies.
func waitDelivered(ctx context.Context, tr *tracker, want []int32, accepted, maxRecipients int, wait time.Duration, eng *child) error {
	deadline := time.Now().Add(wait)
	// The fewest target requests that can carry every accepted event.
	enough := (accepted + max(maxRecipients, 1) - 1) / max(maxRecipients, 1)
	for {
		if err := tr.catchUp(ctx, enough); err != nil {
			return err
		}
		got, _ := tr.delivered(want)
		if got >= accepted {
			return nil
		}
		if err := eng.running(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			// Read what the journal holds, which fewer target requests than
			// enough (events dead-lettered, say) left unread.
			if err := tr.poll(ctx); err != nil {
				return err
			}
			got, _ = tr.delivered(want)
			return fmt.Errorf("after %s the emulators had seen %d of %d accepted events delivered", wait, got, accepted)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// profilePath is where scenario name's CPU profile goes: file itself when
// one scenario runs, file.name when several do.
func profilePath(file, name string, scenarios int) string {
	if scenarios == 1 {
		return file
	}
	return file + "." + name
}

// resources is what the processes under test have used, at one moment.
type resources struct {
	engineCPU, sandboxCPU, selfCPU time.Duration
	enginePeak, sandboxPeak        int64
	at                             time.Time
}

func snapshot(eng, sb *child) (resources, error) {
	u := resources{at: time.Now()}
	var errs []error
	var err error
	u.engineCPU, err = cpuTime(eng.pid())
	errs = append(errs, err)
	u.sandboxCPU, err = cpuTime(sb.pid())
	errs = append(errs, err)
	u.selfCPU, err = cpuTime(os.Getpid())
	errs = append(errs, err)
	u.enginePeak, err = peakRSS(eng.pid())
	errs = append(errs, err)
	u.sandboxPeak, err = peakRSS(sb.pid())
	errs = append(errs, err)
	return u, errors.Join(errs...)
}

// stopMessage is engine run's last "stopped" line.
func stopMessage(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "engine run: stopped") {
			return lines[i]
		}
	}
	return "(no stop message)"
}
