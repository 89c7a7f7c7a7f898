package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills the child if the load test dies first, so an
// interrupted run leaves no engine holding a port or an inbox.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
