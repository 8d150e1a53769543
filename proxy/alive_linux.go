//go:build linux

package proxy

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// connAlive reports whether a pooled connection is still open: a peek that does not wait finds
// nothing to read (EAGAIN). End of stream, an error, or bytes nobody asked for mean the
// endpoint closed it, or it is out of step: unusable.
//
// It costs one system call (plus two small allocations on a connection that is not a
// rawConn), so the proxy asks only of connections that sat idle for a while, or before sending
// a request that could not be sent again if the connection turned out stale (see
// exchange.attempt).
//
// A pooled connection keeps the deadline of its last exchange; once that has passed,
// RawConn.Read fails at once without calling us, and a healthy connection would be called
// dead. So the read deadline is cleared first; the attempt sets its own right after.
func connAlive(c net.Conn) bool {
	if rc, ok := c.(*rawConn); ok {
		_ = c.SetReadDeadline(time.Time{})
		return rc.peekAlive()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	_ = c.SetReadDeadline(time.Time{})
	alive := true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		alive = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && alive
}
