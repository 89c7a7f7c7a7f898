package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one scenario's figures. Times are in seconds or milliseconds
// as the names say; memory in MiB.
type result struct {
	Scenario string  `json:"scenario"`
	Pipeline string  `json:"pipeline"`
	Events   int     `json:"events"`
	Users    int     `json:"users"`
	Senders  int     `json:"senders"`
	Rate     float64 `json:"rate"` // asked for; 0 is as fast as possible
	// HoldSeconds: the emulators refused target requests (429) for this
	// long from the first, so the engine only accepted meanwhile.
	HoldSeconds float64 `json:"hold_target_seconds,omitempty"`

	Accepted      int            `json:"accepted"`
	Refused       map[string]int `json:"refused"` // by status, "no answer" for transport errors
	FirstError    string         `json:"first_error,omitempty"`
	SendSeconds   float64        `json:"send_seconds"`
	AcceptRate    float64        `json:"accept_rate"`
	AcceptP50Ms   float64        `json:"accept_p50_ms"`
	AcceptP99Ms   float64        `json:"accept_p99_ms"`
	AcceptMaxMs   float64        `json:"accept_max_ms"`
	ScheduleLagMs float64        `json:"schedule_lag_max_ms"`
	// The engine's own accept time (webhook headers to answer), from its
	// histogram: each figure is the upper bound of the bucket holding it.
	EngineAcceptP50Ms float64 `json:"engine_accept_p50_ms_at_most"`
	EngineAcceptP99Ms float64 `json:"engine_accept_p99_ms_at_most"`

	Delivered        int     `json:"delivered"`
	RepeatDeliveries int     `json:"repeat_deliveries"`
	DeliveredSeconds float64 `json:"all_delivered_seconds"` // first send to last delivery
	DrainSeconds     float64 `json:"drain_seconds"`         // last accept to last delivery
	EndToEndRate     float64 `json:"end_to_end_rate"`
	DeliveryP50Ms    float64 `json:"delivery_p50_ms"`
	DeliveryP99Ms    float64 `json:"delivery_p99_ms"`
	DeliveryMatched  int     `json:"delivery_matched"` // events with a webhook-to-delivery latency

	TargetRequests       int            `json:"target_requests"`
	TargetRefused        map[string]int `json:"target_refused"`
	RecipientsPerRequest float64        `json:"recipients_per_request,omitempty"`
	TargetServiceP50Ms   float64        `json:"target_service_p50_ms"` // time in the emulator
	TargetServiceP99Ms   float64        `json:"target_service_p99_ms"`

	MeasuredSeconds  float64 `json:"measured_seconds"` // ready to all delivered: the span of the CPU figures
	EngineCPUSeconds float64 `json:"engine_cpu_seconds"`
	EngineCPUPer10k  float64 `json:"engine_cpu_seconds_per_10k"`
	EnginePeakRSSMiB float64 `json:"engine_peak_rss_mib"`
	// Sampled every 100 ms: the peaks of private memory and of
	// file-backed memory (the inbox file bbolt maps, which the kernel can
	// reclaim), each at its own time, so they need not add up to the RSS.
	EnginePeakAnonMiB float64 `json:"engine_peak_private_mib"`
	EnginePeakFileMiB float64 `json:"engine_peak_file_mapped_mib"`
	// EnginePrivateByTenthMiB: the peak private memory in each tenth of
	// the run, to show whether it stays flat.
	EnginePrivateByTenthMiB []float64 `json:"engine_private_by_tenth_mib,omitempty"`
	SandboxCPUSeconds       float64   `json:"sandbox_cpu_seconds"`
	SandboxPeakRSSMiB       float64   `json:"sandbox_peak_rss_mib"`
	LoadtestCPUSeconds      float64   `json:"loadtest_cpu_seconds"`

	EngineLogLines int      `json:"engine_log_lines"`
	EngineLogTail  []string `json:"engine_log_tail,omitempty"`
	InboxEmpty     bool     `json:"inbox_empty"`
	StopMessage    string   `json:"stop_message"`
	Problems       []string `json:"problems,omitempty"`
}

func (r *result) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *result) fillSent(s *sent) {
	r.Accepted, r.Refused = s.summary()
	r.FirstError = s.firstErr
	first, last := s.window()
	send := last.Sub(first)
	r.SendSeconds = send.Seconds()
	r.AcceptRate = perSecond(r.Accepted, send)
	p := percentiles(s.acceptLatencies(), 50, 99, 100)
	r.AcceptP50Ms, r.AcceptP99Ms, r.AcceptMaxMs = ms(p[0]), ms(p[1]), ms(p[2])
	r.ScheduleLagMs = ms(s.behind)
}

// fillDelivered reads the tracker, which nothing else uses by now. With a
// user per event (perEvent), the first delivery a user got is its event's,
// which gives each event its webhook-to-delivery latency.
func (r *result) fillDelivered(tr *tracker, s *sent, want []int32, perEvent bool) {
	r.Delivered, r.RepeatDeliveries = tr.delivered(want)
	r.TargetRequests = tr.targets
	r.TargetRefused = tr.refused
	if ok := tr.targets - sum(tr.refused); tr.sc.maxRecipients > 1 && ok > 0 {
		r.RecipientsPerRequest = float64(tr.names) / float64(ok)
	}
	p := percentiles(tr.service, 50, 99)
	r.TargetServiceP50Ms, r.TargetServiceP99Ms = ms(p[0]), ms(p[1])
	if tr.dropped > 0 && r.Delivered < r.Accepted {
		r.problem("the sandbox journal dropped %d requests; some deliveries may not have been seen", tr.dropped)
	}
	first, lastAccept := s.window()
	if tr.last.IsZero() {
		return
	}
	all := tr.last.Sub(first)
	r.DeliveredSeconds = all.Seconds()
	r.DrainSeconds = max(0, tr.last.Sub(lastAccept).Seconds())
	r.EndToEndRate = perSecond(r.Delivered, all)
	if !perEvent {
		return
	}
	var lat []time.Duration
	for i, st := range s.status {
		if st >= 200 && st < 300 && tr.count[i] > 0 {
			lat = append(lat, tr.first[i].Sub(s.start[i]))
		}
	}
	r.DeliveryMatched = len(lat)
	p = percentiles(lat, 50, 99)
	r.DeliveryP50Ms, r.DeliveryP99Ms = ms(p[0]), ms(p[1])
}

func (r *result) fillMemory(mem *memorySampler) {
	anon, file, err := mem.finish()
	if err != nil {
		r.problem("%v", err)
	}
	r.EnginePeakAnonMiB, r.EnginePeakFileMiB = mib(anon), mib(file)
	for _, v := range mem.tenths() {
		r.EnginePrivateByTenthMiB = append(r.EnginePrivateByTenthMiB, mib(v))
	}
}

func (r *result) fillResources(before, after resources) {
	r.MeasuredSeconds = after.at.Sub(before.at).Seconds()
	cpu := after.engineCPU - before.engineCPU
	r.EngineCPUSeconds = cpu.Seconds()
	if r.Accepted > 0 {
		r.EngineCPUPer10k = cpu.Seconds() / float64(r.Accepted) * 10000
	}
	r.EnginePeakRSSMiB = mib(after.enginePeak)
	r.SandboxCPUSeconds = (after.sandboxCPU - before.sandboxCPU).Seconds()
	r.SandboxPeakRSSMiB = mib(after.sandboxPeak)
	r.LoadtestCPUSeconds = (after.selfCPU - before.selfCPU).Seconds()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func writeJSON(w io.Writer, results []*result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// writeTable prints one column per scenario.
func writeTable(w io.Writer, results []*result) {
	if len(results) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label string, value func(r *result) string) {
		cells := []string{label}
		for _, r := range results {
			cells = append(cells, value(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	// webhookRow is a figure of the webhook scenarios; f2 reads a file.
	webhookRow := func(label string, value func(r *result) string) {
		row(label, func(r *result) string {
			if r.Scenario == "f2" {
				return "-"
			}
			return value(r)
		})
	}
	row("scenario", func(r *result) string { return r.Scenario })
	row("pipeline", func(r *result) string { return r.Pipeline })
	row("load", func(r *result) string {
		if r.Scenario == "f2" {
			return fmt.Sprintf("a CSV of %d rows, one user each", r.Events)
		}
		rate := "as fast as possible"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%g/s", r.Rate)
		}
		s := fmt.Sprintf("%d events, %d users, %d senders, %s", r.Events, r.Users, r.Senders, rate)
		if r.HoldSeconds > 0 {
			s += fmt.Sprintf("; target held (429) for %g s", r.HoldSeconds)
		}
		return s
	})
	webhookRow("accepted (2xx)", func(r *result) string { return fmt.Sprint(r.Accepted) })
	webhookRow("refused", func(r *result) string { return counts(r.Refused) })
	webhookRow("send duration", func(r *result) string { return fmt.Sprintf("%.2f s", r.SendSeconds) })
	webhookRow("accept rate", func(r *result) string { return fmt.Sprintf("%.0f events/s", r.AcceptRate) })
	webhookRow("accept latency p50 / p99 / max", func(r *result) string {
		return fmt.Sprintf("%.2f / %.2f / %.1f ms", r.AcceptP50Ms, r.AcceptP99Ms, r.AcceptMaxMs)
	})
	webhookRow("engine's accept time p50 / p99", func(r *result) string {
		if r.EngineAcceptP99Ms == 0 {
			return "-"
		}
		return fmt.Sprintf("<= %g / <= %g ms (its histogram)", r.EngineAcceptP50Ms, r.EngineAcceptP99Ms)
	})
	if slices.ContainsFunc(results, func(r *result) bool { return r.Rate > 0 }) {
		row("worst lag behind the rate", func(r *result) string { return fmt.Sprintf("%.1f ms", r.ScheduleLagMs) })
	}
	row("delivered", func(r *result) string {
		s := fmt.Sprintf("%d of %d", r.Delivered, r.Accepted)
		if r.RepeatDeliveries > 0 {
			s += fmt.Sprintf(" (+%d repeats)", r.RepeatDeliveries)
		}
		return s
	})
	row("all delivered after", func(r *result) string {
		if r.Scenario == "f2" {
			return fmt.Sprintf("%.2f s from the engine's start", r.DeliveredSeconds)
		}
		return fmt.Sprintf("%.2f s from first send (%.2f s after last accept)", r.DeliveredSeconds, r.DrainSeconds)
	})
	row("end-to-end throughput", func(r *result) string {
		if r.Scenario == "f2" {
			return fmt.Sprintf("%.0f rows/s", r.EndToEndRate)
		}
		return fmt.Sprintf("%.0f events/s", r.EndToEndRate)
	})
	webhookRow("webhook-to-delivery p50 / p99", func(r *result) string {
		if r.DeliveryMatched == 0 {
			return "- (needs --users >= --events)"
		}
		return fmt.Sprintf("%.0f / %.0f ms", r.DeliveryP50Ms, r.DeliveryP99Ms)
	})
	row("target requests (refused)", func(r *result) string {
		return fmt.Sprintf("%d (%s)", r.TargetRequests, counts(r.TargetRefused))
	})
	row("target time in the emulator p50 / p99", func(r *result) string {
		return fmt.Sprintf("%.2f / %.2f ms", r.TargetServiceP50Ms, r.TargetServiceP99Ms)
	})
	if slices.ContainsFunc(results, func(r *result) bool { return r.RecipientsPerRequest > 0 }) {
		row("recipients per trigger request", func(r *result) string {
			if r.RecipientsPerRequest == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", r.RecipientsPerRequest)
		})
	}
	row("engine CPU", func(r *result) string {
		return fmt.Sprintf("%.2f s in %.1f s (%.2f s per 10k events)", r.EngineCPUSeconds, r.MeasuredSeconds, r.EngineCPUPer10k)
	})
	// Each of the three is its own peak, reached at its own time (the
	// kernel's high-water mark, and the highest of the 100 ms samples of
	// each part), so the parts need not add up to the whole.
	row("engine peak RSS", func(r *result) string {
		return fmt.Sprintf("%.0f MiB (peaks apart: private %.0f MiB, file-mapped %.0f MiB)", r.EnginePeakRSSMiB, r.EnginePeakAnonMiB, r.EnginePeakFileMiB)
	})
	row("engine private memory by tenth", func(r *result) string {
		if len(r.EnginePrivateByTenthMiB) == 0 {
			return "-"
		}
		parts := make([]string, len(r.EnginePrivateByTenthMiB))
		for i, v := range r.EnginePrivateByTenthMiB {
			parts[i] = fmt.Sprintf("%.0f", v)
		}
		return strings.Join(parts, " ") + " MiB (peak in each tenth of the run)"
	})
	row("sandbox CPU / peak RSS", func(r *result) string {
		return fmt.Sprintf("%.2f s / %.0f MiB", r.SandboxCPUSeconds, r.SandboxPeakRSSMiB)
	})
	webhookRow("load generator CPU", func(r *result) string { return fmt.Sprintf("%.2f s", r.LoadtestCPUSeconds) })
	row("engine log lines (warn+)", func(r *result) string { return fmt.Sprint(r.EngineLogLines) })
	row("inbox empty at stop", func(r *result) string {
		if r.InboxEmpty {
			return "yes"
		}
		return "NO: " + r.StopMessage
	})
	tw.Flush()
	for _, r := range results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s: first transport error: %s\n", r.Scenario, r.FirstError)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "%s: problem: %s\n", r.Scenario, p)
		}
		if r.EngineLogLines > 0 {
			fmt.Fprintf(w, "%s: the engine's last log lines:\n  %s\n", r.Scenario, strings.Join(r.EngineLogTail, "\n  "))
		}
	}
}

// counts formats {"503": 2, "no answer": 1} as "503: 2, no answer: 1",
// or "none".
func counts(m map[string]int) string {
	if sum(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
