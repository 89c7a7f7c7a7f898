package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel
// reports them in USER_HZ, which is 100 on every architecture Linux's
// /proc ABI supports, whatever the kernel's own tick rate.
const userHZ = 100

// cpuTime returns the user+system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d (this needs Linux): %w", pid, err)
	}
	return parseStatCPU(string(raw))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the text of
// /proc/PID/stat. The second field is the command name in parentheses and
// may itself hold spaces and parentheses, so fields are counted from the
// last ")".
func parseStatCPU(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("/proc stat: no command name in parentheses")
	}
	// After ")": field 3 (state) onwards, so utime is index 14-3.
	fields := strings.Fields(stat[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, expected at least %d", len(fields), stime+1)
	}
	var ticks uint64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: field %d is %q, not a number", i+3, fields[i])
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// peakRSS returns the most resident memory process pid has held, in bytes.
// It must be read while the process runs: the kernel drops the memory
// lines from /proc/PID/status once it exits.
func peakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the memory of process %d (this needs Linux): %w", pid, err)
	}
	return parseStatusKB(string(raw), "VmHWM")
}

// parseStatusKB reads a "Name:   1234 kB" line of /proc/PID/status and
// returns it in bytes.
func parseStatusKB(status, name string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: %s is %q, expected a number of kB", name, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: %s is %q, expected a number of kB", name, strings.TrimSpace(rest))
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("/proc status: no %s line (has the process exited?)", name)
}

// memorySampler follows a process's private (anonymous) resident memory
// and its file-backed resident memory, which /proc gives no peak for. The
// engine's file-backed memory is mostly the inbox file that bbolt maps:
// pages the kernel keeps while memory is plentiful and drops under
// pressure, unlike the private memory, which is what the engine itself
// holds.
type memorySampler struct {
	pid                int
	peakAnon, peakFile int64
	anon               []int64 // every sample, in order: whether memory stays flat
	err                error
	stop, done         chan struct{}
}

func sampleMemory(pid int, every time.Duration) *memorySampler {
	m := &memorySampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			m.sample()
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *memorySampler) sample() {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.pid))
	if err != nil {
		if m.err == nil && m.peakAnon == 0 {
			m.err = fmt.Errorf("reading the memory of process %d (this needs Linux): %w", m.pid, err)
		}
		return // the process has exited: keep the peaks seen
	}
	if exited(string(raw)) {
		return // a zombie has no memory lines; keep the peaks seen
	}
	anon, errA := parseStatusKB(string(raw), "RssAnon")
	file, errF := parseStatusKB(string(raw), "RssFile")
	if errA != nil || errF != nil {
		if m.err == nil {
			m.err = errors.Join(errA, errF)
		}
		return
	}
	m.peakAnon, m.peakFile = max(m.peakAnon, anon), max(m.peakFile, file)
	m.anon = append(m.anon, anon)
}

// exited reports whether a /proc/PID/status is that of a process that has
// exited and not yet been reaped (engine run --until-done ends by itself).
func exited(status string) bool {
	return strings.Contains(status, "\nState:\tZ") || strings.Contains(status, "\nState:\tX")
}

// tenths is the peak private memory in each tenth of the samples, in
// order: flat memory gives about the same figure in each (nil with fewer
// than ten samples). Call it after finish.
func (m *memorySampler) tenths() []int64 {
	if len(m.anon) < 10 {
		return nil
	}
	out := make([]int64, 10)
	for i, v := range m.anon {
		k := i * 10 / len(m.anon)
		out[k] = max(out[k], v)
	}
	return out
}

// finish stops sampling, after one last sample.
func (m *memorySampler) finish() (peakAnon, peakFile int64, err error) {
	close(m.stop)
	<-m.done
	m.sample()
	return m.peakAnon, m.peakFile, m.err
}
