//go:build !linux

package main

import "os/exec"

// setDeathSignal does nothing here: only Linux has a parent-death signal,
// and only Linux has the /proc figures the load test reports.
func setDeathSignal(*exec.Cmd) {}
