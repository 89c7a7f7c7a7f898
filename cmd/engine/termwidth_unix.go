//go:build linux || darwin

package main

import (
	"os"
	"syscall"
	"unsafe"
)

// fileTerminalWidth asks the terminal f is for its width in columns; 0
// when f is no terminal.
func fileTerminalWidth(f *os.File) int {
	var size struct{ rows, cols, x, y uint16 }
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&size))); errno != 0 {
		return 0
	}
	return int(size.cols)
}
