package inbox

import (
	"os"
	"syscall"
)

// syncData flushes f's data without its timestamps: the journal is
// rewritten in place at a size it already had, so nothing else needs to
// reach the disk, and a full fsync would cost a filesystem journal commit
// for the modification time on every append.
func syncData(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
