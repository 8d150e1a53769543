package main

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"time"
)

// Linux stamps each received TCP segment when SO_TIMESTAMPNS is on, and hands the stamp of
// the bytes read (or peeked) to recvmsg. The backend uses it to tell when the request after
// extra bytes reached the kernel, which its own goroutine, waiting to be scheduled on a busy
// machine, may learn many milliseconds later.

// stampArrivals turns receive timestamps on for c (a connection, or a listener whose
// connections inherit it). The kernel starts stamping a moment after the first socket asks
// (it flips a global switch from a work queue), so the backends ask on their listeners,
// well before the first request.
func stampArrivals(c syscall.Conn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
}

// arrival waits until c has bytes to read, without reading them, and returns when the kernel
// received them (the time it saw them, when the kernel gave no stamp).
func arrival(c net.Conn) (time.Time, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return time.Time{}, nil // the caller dates the request itself
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	var rerr error
	var b [1]byte
	oob := make([]byte, syscall.CmsgSpace(16))
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, e := syscall.Recvmsg(int(fd), b[:], oob, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case e == syscall.EAGAIN:
			return false // wait until readable
		case e != nil:
			rerr = e
		case n == 0:
			rerr = io.EOF
		default:
			at = stampOf(oob[:oobn])
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if at.IsZero() {
		at = time.Now()
	}
	return at, err
}

// stampOf finds the SCM_TIMESTAMPNS stamp among control messages.
func stampOf(oob []byte) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec)
		}
	}
	return time.Time{}
}
