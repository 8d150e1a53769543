//go:build linux

package proxy

// A client connection's read buffer (MaxRequestHeaderSize, 16 KiB by default) is most of
// what it costs, and an idle keep-alive connection holds nothing in it. So a loop lends the
// buffer for as long as the connection holds bytes or a request, and takes it back when the
// connection is idle with nothing buffered; an idle connection then costs its loopClient and
// RequestCtx, not the buffer. The buffers a loop takes back wait in its free list for the
// next connection that reads (no allocation on a keep-alive connection's next request), up
// to maxFreeInBufs of them; a busier moment allocates, and the GC takes what overflows.
// Only the loop's own thread touches the list.

// maxFreeInBufs bounds a loop's free read buffers: 64 × 16 KiB = 1 MiB per loop at most.
const maxFreeInBufs = 64

// The write buffer (the response on its way out) is lent the same way, from the start of a
// response to the moment it is all written with no request in progress, so that an idle
// connection does not keep its last response. Buffers that grew past maxFreeOutCap (a burst
// of a streamed body the client was slow to take) are left to the GC rather than kept.
const (
	maxFreeOutBufs = 64
	maxFreeOutCap  = 64 << 10
)

// lendOut gives c a write buffer, if it has none.
func (l *loop) lendOut(c *loopClient) {
	if c.out != nil {
		return
	}
	if n := len(l.freeOut); n > 0 {
		c.out = l.freeOut[n-1][:0]
		l.freeOut[n-1] = nil
		l.freeOut = l.freeOut[:n-1]
	}
}

// takeBackOut takes c's write buffer back once nothing is left in it.
func (l *loop) takeBackOut(c *loopClient) {
	if c.out == nil || c.pending() {
		return
	}
	if len(l.freeOut) < maxFreeOutBufs && cap(c.out) <= maxFreeOutCap {
		l.freeOut = append(l.freeOut, c.out[:0])
	}
	c.out, c.off = nil, 0
}

// lendIn gives c a read buffer, if it has none.
func (l *loop) lendIn(c *loopClient) {
	if c.in != nil {
		return
	}
	if n := len(l.freeIn); n > 0 {
		c.in = l.freeIn[n-1]
		l.freeIn[n-1] = nil
		l.freeIn = l.freeIn[:n-1]
		return
	}
	c.in = make([]byte, l.s.cfg.MaxRequestHeaderSize)
}

// takeBackIn takes c's read buffer back when it holds nothing: no byte, no request in
// progress (whose head, until it is answered, lies in the buffer).
func (l *loop) takeBackIn(c *loopClient) {
	if c.in == nil || c.n > 0 || c.x != nil {
		return
	}
	if len(l.freeIn) < maxFreeInBufs {
		l.freeIn = append(l.freeIn, c.in)
	}
	c.in = nil
}
