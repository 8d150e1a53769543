//go:build linux

package proxy

import (
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// loopClient is a client connection served by a loop.
type loopClient struct {
	l  *loop
	fd int

	in      []byte // read buffer: the request head, and whatever follows it
	n       int    // bytes held in in
	headLen int    // the head of the request in progress, at the start of in until sent
	out     []byte // bytes to write to the client, from off
	off     int

	ctx *fasthttp.RequestCtx // reused for every request of the connection
	x   *loopExchange        // the request in progress, or nil
	lx  loopExchange         // x points here while a request is in progress

	deadline   time.Time // when the current wait times out; zero for none
	closeAfter bool      // close once out is written
	closed     bool      // closed, or handed over
	queued     bool      // in the loop's ready list
	// readable: the socket may hold unread bytes (an event came, and no read found it empty
	// since). hup: the peer closed or the socket failed, so reads go on until they say so.
	// A read shorter than its buffer, without hup, has emptied the socket: the next bytes
	// will raise an event, and no read is spent on finding EAGAIN. eof: the client has
	// finished sending; what it sent is still served.
	readable, hup, eof bool
}

func newLoopClient(l *loop, fd int, sa syscall.Sockaddr) *loopClient {
	c := &loopClient{l: l, fd: fd, readable: true} // in is lent while it holds bytes
	c.ctx = new(fasthttp.RequestCtx)
	c.ctx.Init2(&addrConn{remote: sockaddrTCP(sa)}, fasthttpLogger{l.s.log.Sugar()}, true) // true: a body buffer goes back to its pool when reset
	return c
}

func (c *loopClient) event(ev uint32) {
	if c.closed {
		return
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		c.readable = true
		c.hup = c.hup || ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	}
	if ev&syscall.EPOLLOUT != 0 && c.pending() {
		c.flush()
	}
	c.input()
}

func (c *loopClient) pending() bool { return c.off < len(c.out) }

// input reads what the client sent and serves the request it completes. While a request is
// in progress, the next is left in the socket: it is read once the response is out.
func (c *loopClient) input() {
	if c.x != nil || c.closed {
		return
	}
	c.l.lendIn(c)
	defer c.l.takeBackIn(c)
	for c.readable && !c.eof && c.n < len(c.in) {
		want := len(c.in) - c.n
		n, errno := rawRead(c.fd, c.in[c.n:])
		if errno == syscall.EINTR {
			continue
		}
		if errno == syscall.EAGAIN {
			c.readable = false
			break
		}
		if errno != 0 {
			c.close()
			return
		}
		if n == 0 {
			c.eof, c.readable = true, false // a request already in is still answered
			break
		}
		if c.n == 0 {
			c.deadline = c.l.now.Add(c.l.s.cfg.ReadHeaderTimeout)
		}
		c.n += n
		if n < want && !c.hup {
			c.readable = false
		}
	}
	c.process()
	if c.eof && c.x == nil && !c.closed && !c.pending() {
		c.close() // nothing more will come, and nothing whole is left to answer
	}
}

// process serves the request at the start of in, if its head is whole, and hands over the
// connection when the request is not one for the loop.
func (c *loopClient) process() {
	if c.x != nil || c.closed || c.n == 0 || c.pending() {
		return
	}
	end := headEnd(c.in[:c.n])
	if end < 0 {
		if c.n == len(c.in) {
			c.l.handover(c) // the fallback answers 431
		}
		return
	}
	l := c.l
	req := &c.ctx.Request
	req.Reset()
	if err := req.Header.Read(l.reader(c.in[:end])); err != nil || !loopable(&req.Header) {
		l.handover(c) // the fallback answers a malformed head 400, with the goroutine path's wording
		return
	}
	h := l.s.route(c.ctx)
	if h == nil {
		l.handover(c)
		return
	}
	// The head stays in in until the response (or the proxy's own answer) starts
	// (consumeHead): up to then, the connection can still be handed over whole.
	c.headLen = end
	c.deadline = time.Time{}
	// A client that finished sending (eof) is still answered every whole request it sent;
	// next closes the connection once none is left.
	c.closeAfter = c.closeAfter || req.Header.ConnectionClose()
	l.s.loopRequests.Add(1)
	c.start(h)
}

// consumeHead drops the head of the request in progress from in: it is being answered, and
// the connection is the loop's for good.
func (c *loopClient) consumeHead() {
	if c.headLen > 0 {
		c.n = copy(c.in, c.in[c.headLen:c.n])
		c.headLen = 0
	}
}

// loopable reports whether a loop serves a request itself: HTTP/1.1 without a body, an
// upgrade, an Expect or the CONNECT method.
func loopable(h *fasthttp.RequestHeader) bool {
	cl := h.ContentLength()
	return h.IsHTTP11() && (cl == 0 || cl == -2) && !h.IsConnect() &&
		h.Peek(fasthttp.HeaderTransferEncoding) == nil && h.Peek(fasthttp.HeaderUpgrade) == nil &&
		h.Peek(fasthttp.HeaderExpect) == nil
}

// flush writes out. What the socket does not take waits for EPOLLOUT, under WriteTimeout.
func (c *loopClient) flush() {
	for c.pending() {
		n, errno := rawWrite(c.fd, c.out[c.off:])
		if errno == syscall.EINTR {
			continue
		}
		if errno == syscall.EAGAIN {
			c.deadline = c.l.now.Add(c.l.s.cfg.WriteTimeout)
			return
		}
		if errno != 0 {
			c.close()
			return
		}
		c.off += n
	}
	c.out, c.off = c.out[:0], 0
	if c.x == nil {
		c.l.takeBackOut(c) // the response is out: an idle connection holds no write buffer
	}
	if x := c.x; x != nil {
		c.deadline = time.Time{}
		if u := x.up; u != nil && u.paused {
			u.paused = false
			u.read()
		}
		return
	}
	if c.closeAfter || c.l.s.closing.Load() {
		c.close()
		return
	}
	c.l.schedule(c) // the response is out: on to the next request
}

// done ends the request in progress: the connection goes on to the next one once the
// response is out, or closes.
func (c *loopClient) done() {
	c.x = nil
	if c.closed {
		return
	}
	if c.l.s.closing.Load() {
		c.closeAfter = true
	}
	if c.pending() {
		return // flush goes on
	}
	if c.closeAfter {
		c.close()
		return
	}
	c.l.schedule(c)
}

// next waits for the next request, serving it at once if it is already in. The loop runs it
// (runReady), never a response's own call chain.
func (c *loopClient) next() {
	if c.closed || c.x != nil || c.pending() {
		return
	}
	if c.l.s.closing.Load() {
		c.close()
		return
	}
	if c.n > 0 {
		c.deadline = c.l.now.Add(c.l.s.cfg.ReadHeaderTimeout)
	} else {
		c.deadline = c.l.now.Add(c.l.s.cfg.IdleTimeout)
	}
	c.input()
}

// timedOut handles a passed deadline: a request head or a response write too slow, or an
// idle keep-alive connection. A head begun and not finished in time gets the 408 the
// goroutine engine sends (errorHandler), written once without waiting: the connection is
// closed either way.
func (c *loopClient) timedOut() {
	if !c.closed && c.x == nil && c.n > 0 && !c.pending() {
		_, _ = rawWrite(c.fd, headerTimeoutResponse)
	}
	c.close() // a no-op on a closed connection, which a sweep may still list
}

var headerTimeoutResponse = []byte("HTTP/1.1 408 Request Timeout\r\nContent-Type: " + contentTypeText + "\r\n" +
	"Content-Length: " + strconv.Itoa(len(msgHeaderTimeout)) + "\r\nConnection: close\r\n\r\n" + msgHeaderTimeout)

// close closes the connection, and gives up the request in progress.
func (c *loopClient) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.l.remove(c.fd)
	c.l.clients--
	c.l.s.gate.leave()
	_ = syscall.Close(c.fd)
	if x := c.x; x != nil {
		x.abandon()
	}
}

// addrConn carries a loop connection's addresses into its fasthttp.RequestCtx, whose
// RemoteAddr the key extractor and the forwarding headers read. It does no I/O.
type addrConn struct {
	net.Conn // nil: any other method panics, and none is called
	remote   *net.TCPAddr
}

func (a *addrConn) RemoteAddr() net.Addr { return a.remote }
func (a *addrConn) LocalAddr() net.Addr  { return zeroTCPAddr }

var zeroTCPAddr = &net.TCPAddr{IP: net.IPv4zero}

func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port, Zone: zoneName(a.ZoneId)}
	}
	return zeroTCPAddr
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(int(id))
}

// appendHead queues the response head h for the client, saying Connection: close when the
// connection closes after it: the client asked, close is set, or the server is shutting down.
func (c *loopClient) appendHead(h *fasthttp.ResponseHeader, close bool) {
	if close || c.closeAfter || c.l.s.closing.Load() {
		c.closeAfter = true
		h.SetConnectionClose()
	}
	c.l.lendOut(c) // a response starts with its head
	c.out = appendResponseHead(c.out, h)
}

// appendResponseHead appends the response line and header of h as sent to a client: always
// HTTP/1.1, the endpoint's headers as they are (no Date or Server of the proxy's own).
func appendResponseHead(dst []byte, h *fasthttp.ResponseHeader) []byte {
	status := h.StatusCode()
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	if msg := h.StatusMessage(); len(msg) > 0 {
		dst = append(dst, msg...)
	} else {
		dst = append(dst, fasthttp.StatusMessage(status)...)
	}
	dst = append(dst, "\r\n"...)
	for k, v := range h.All() {
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}
