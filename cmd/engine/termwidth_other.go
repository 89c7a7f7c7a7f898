//go:build !linux && !darwin

package main

import "os"

// fileTerminalWidth cannot ask the terminal here: the status line is not
// fitted to it.
func fileTerminalWidth(*os.File) int { return 0 }
