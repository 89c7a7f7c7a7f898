package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/internal/ids"
	"github.com/loyalty-connector/engine/sandbox"
)

// csvPipeline is F2's pipeline: a Braze segment export tags each user in
// SessionM by external id, one call per row.
const csvPipeline = "segment-csv-to-sessionm-tags"

// csvHeader is the header of Braze's "Export User Data" CSV, as in
// examples/csv/braze-segment-export.csv.
const csvHeader = "Appboy ID,country,created_at,date_of_birth,email,user_id,first_name,last_name,gender,city,language,phone_number,random_bucket,timezone"

// writeSegmentCSV writes a segment export of rows generated users.
func writeSegmentCSV(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, csvHeader)
	for i := range rows {
		ext := ids.GeneratedExternalID(i)
		fmt.Fprintf(w, "%s,ES,2024-03-02 10:15:00 UTC,1990-05-14,%s,%s,Ana,García,F,Madrid,es,+34600111222,%d,Europe/Madrid\n",
			ids.GeneratedBrazeID(i), ids.GeneratedEmail(i), ext, i%10000)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runCSVScenario is F2: engine run --csv FILE --until-done imports a
// segment export of cfg.rows rows into the sandbox, and exits when every
// row has an outcome. The rate is rows delivered over the time from the
// engine's start to the last delivery the emulator saw.
func runCSVScenario(ctx context.Context, cfg *config, dir string, progress func(string, ...any)) (*result, error) {
	sb, sandboxBase, get, err := startSandbox(ctx, cfg, "f2", dir, cfg.rows, 2*cfg.rows, 0)
	if err != nil {
		return nil, err
	}
	defer sb.stop(stopTimeout)
	control := sandbox.URLsFor(sandboxBase).Control
	key, err := needSetting(get, "SESSIONM_API_KEY")
	if err != nil {
		return nil, err
	}
	prefix := "/sessionm/core/priv/v1/apps/" + key + "/external/users/"
	sc := &scenario{
		pipeline:    csvPipeline,
		journalPath: prefix + "*",
		recipients: func(e *journalEntry) ([]int, error) {
			ext, ok := strings.CutPrefix(e.Path, prefix)
			ext, ok2 := strings.CutSuffix(ext, "/tags")
			u, ok3 := ids.ParseGeneratedExternalID(ext, cfg.rows)
			if !ok || !ok2 || !ok3 {
				return nil, fmt.Errorf("journal entry %d: %s is not a generated user's tags path", e.ID, e.Path)
			}
			return []int{u}, nil
		},
	}

	csvPath := filepath.Join(dir, "segment.csv")
	if err := writeSegmentCSV(csvPath, cfg.rows); err != nil {
		return nil, fmt.Errorf("writing the CSV: %w", err)
	}
	args, removeData := engineArgs(cfg, dir, "f2", newRunID())
	defer removeData()
	args = append(args, "--csv", csvPipeline+"="+csvPath, "--until-done")
	res := &result{Scenario: "f2", Pipeline: csvPipeline, Events: cfg.rows, Users: cfg.rows}
	sandboxBefore, err := cpuTime(sb.pid())
	if err != nil {
		return nil, err
	}
	// Read once the engine has exited by itself (--until-done).
	tr, finishTracking := startTracker(ctx, control, sc, cfg.rows)

	progress("f2: sandbox pid %d at %s; importing %d rows", sb.pid(), sandboxBase, cfg.rows)
	started := time.Now()
	eng, err := startChild("engine run", cfg.engine, append(args, cfg.pipelines)...)
	if err != nil {
		_ = finishTracking()
		return nil, err
	}
	mem := sampleMemory(eng.pid(), memoryEvery)
	select {
	case <-eng.exited:
	case <-time.After(cfg.wait):
		res.problem("engine run --until-done had not finished after %s", cfg.wait)
	case <-ctx.Done():
	}
	stopErr := eng.stop(stopTimeout)
	res.fillMemory(mem)
	sandboxAfter, cpuErr := cpuTime(sb.pid())
	sandboxPeak, rssErr := peakRSS(sb.pid())
	if err := finishTracking(); err != nil {
		res.problem("%v", err)
	}
	if stopErr != nil {
		res.problem("%v", stopErr)
	}

	want := make([]int32, cfg.rows)
	for i := range want {
		want[i] = 1
	}
	res.Accepted = cfg.rows
	res.Delivered, res.RepeatDeliveries = tr.delivered(want)
	res.TargetRequests, res.TargetRefused = tr.targets, tr.refused
	p := percentiles(tr.service, 50, 99)
	res.TargetServiceP50Ms, res.TargetServiceP99Ms = ms(p[0]), ms(p[1])
	if res.Delivered < cfg.rows {
		res.problem("the emulator saw %d of %d rows delivered", res.Delivered, cfg.rows)
	}
	if !tr.last.IsZero() {
		took := tr.last.Sub(started)
		res.DeliveredSeconds = took.Seconds()
		res.EndToEndRate = perSecond(res.Delivered, took)
	}
	if cpu, peak, ok := childUsage(eng.cmd.ProcessState); ok {
		res.EngineCPUSeconds = cpu.Seconds()
		res.EngineCPUPer10k = cpu.Seconds() / float64(cfg.rows) * 10000
		res.EnginePeakRSSMiB = mib(peak)
	}
	res.MeasuredSeconds = time.Since(started).Seconds()
	if cpuErr == nil && rssErr == nil {
		res.SandboxCPUSeconds = (sandboxAfter - sandboxBefore).Seconds()
		res.SandboxPeakRSSMiB = mib(sandboxPeak)
	}
	if tr.err != nil {
		res.problem("%v", tr.err)
	}
	res.fillStop(eng, cfg.inboxCheck, "when it finished")
	closeIdle(tr.client)
	if err := sb.stop(stopTimeout); err != nil {
		res.problem("%v", err)
	}
	return res, nil
}
