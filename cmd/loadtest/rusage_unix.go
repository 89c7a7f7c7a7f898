//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
	"time"
)

// childUsage is the CPU time and peak resident memory of a child that has
// exited, as the kernel counted them.
func childUsage(ps *os.ProcessState) (cpu time.Duration, peakRSS int64, ok bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, false
	}
	peak := int64(ru.Maxrss) << 10 // KiB on Linux and the BSDs
	if runtime.GOOS == "darwin" {
		peak = int64(ru.Maxrss) // bytes on macOS
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), peak, true
}
