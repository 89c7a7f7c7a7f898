//go:build !linux

package inbox

import "os"

func syncData(f *os.File) error { return f.Sync() }
