//go:build unix

package runner

import (
	"fmt"
	"os"
	"syscall"
)

// fileIdentity names the file on disk behind info, whatever its name: a
// file moved (to done/ and back) keeps it, a new copy does not.
func fileIdentity(info os.FileInfo) string {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
