//go:build linux

package file

import (
	"io/fs"
	"syscall"
)

// sysSig adds the device, inode and change time that Linux's stat reports.
func sysSig(fi fs.FileInfo, s *fileSig) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino, s.ctime = uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
}
