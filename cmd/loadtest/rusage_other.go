//go:build !unix

package main

import (
	"os"
	"time"
)

// childUsage: Windows keeps no rusage; the report leaves those figures out.
func childUsage(*os.ProcessState) (time.Duration, int64, bool) { return 0, 0, false }
