//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawConn is a TCP connection whose reads and writes are raw system calls on the
// non-blocking socket, still parked on and woken by the runtime's network poller.
//
// Why: net.Conn's Read and Write enter the runtime's syscall state, and a goroutine that
// the kernel preempts inside a loopback write (its peer is woken there) looks blocked to
// the runtime's monitor, which hands its P to another thread and keeps itself waking every
// 20 µs to look for more. On a proxy that does four socket calls per request, that hand-off
// traffic and the monitor's wake-ups cost more CPU than the calls' own bookkeeping. A call
// on a non-blocking socket never blocks, so it can run as a raw call, as the runtime's own
// poller calls do.
//
// Deadlines, close and readiness waits behave as on the wrapped connection: syscall.RawConn
// does the waiting. The zero value is not usable; see wrapConn.
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The pending call's buffer and outcome, one caller's at a time (net.Conn allows
	// concurrent callers). The bound methods are made once, so a call allocates nothing.
	rmu     sync.Mutex
	wmu     sync.Mutex
	rbuf    []byte
	rn      int
	rerr    syscall.Errno
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool

	alive   bool
	peekCtl func(uintptr)
}

// wrapConn returns c with raw reads and writes when it is a *net.TCPConn, else c itself.
func wrapConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{TCPConn: tc, rc: rc}
	r.readFn, r.writeFn, r.peekCtl = r.doRead, r.doWrite, r.doPeek
	return r
}

func (c *rawConn) doRead(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until the poller says readable, then try again
		}
		c.rn, c.rerr = int(n), errno
		return true
	}
}

// Read reads like net.TCPConn.Read: io.EOF at end of stream, *net.OpError otherwise.
func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawConn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until the poller says writable
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

// Write writes all of p, or returns how much was written and a *net.OpError.
func (c *rawConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

func (c *rawConn) doPeek(fd uintptr) { c.alive = fdAlive(int(fd)) }

// ReadFrom copies r to c through a pooled buffer and c's raw writes (see copyOut). Without
// it the embedded TCPConn's ReadFrom would take the copy, and fall back to io.Copy with a new
// 32 KiB buffer for a reader it cannot splice from, which is every one of ours.
func (c *rawConn) ReadFrom(r io.Reader) (int64, error) { return copyOut(writeOnly[*rawConn]{c}, r) }

// peekAlive is connAlive for a rawConn, without its allocations: a peek that does not wait
// finds nothing to read. It goes through Control, not Read, so that neither a deadline that
// has passed nor the poller is involved: the peek never waits.
func (c *rawConn) peekAlive() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.alive = false
	err := c.rc.Control(c.peekCtl)
	return err == nil && c.alive
}

// opError shapes err as net.TCPConn's methods do, so that errors.Is(err, net.ErrClosed),
// os.ErrDeadlineExceeded and net.Error's Timeout see through it. RawConn wraps its own
// errors in an OpError named raw-read or raw-write; the cause is taken out of it.
func (c *rawConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// rawListener wraps each accepted connection in a rawConn.
type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrapConn(c), nil
}

// WrapListener returns ln with raw reads and writes on its TCP connections (see rawConn).
// Wrap before any TLS layer, so that TLS runs over the raw connection.
func WrapListener(ln net.Listener) net.Listener { return rawListener{ln} }

// Unwrap returns the listener under l.
func (l rawListener) Unwrap() net.Listener { return l.Listener }
