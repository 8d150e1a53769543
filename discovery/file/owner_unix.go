//go:build unix

package file

import (
	"os"
	"syscall"
)

// fileOwner returns fi's owner and group, or -1, -1 when the platform does not say.
func fileOwner(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
