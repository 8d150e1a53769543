//go:build linux

package proxy

import (
	"errors"
	"io"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// loopExchange is the state of one request a loop forwards: the goroutine path's forward
// loop, turned into steps run on events.
type loopExchange struct {
	c *loopClient
	h *Handler
	x *exchange

	pick    balancer.Pick
	attempt int // attempts made so far
	last    result
	next    *balancer.Endpoint // a retry's endpoint, chosen before a response is dropped
	ep      *balancer.Endpoint // the current attempt's, between Start and Finish
	be      *backend
	up      *loopUp

	began    time.Time // the request's arrival
	start    time.Time // the current attempt's start
	deadline time.Time // the current attempt's per-try deadline; zero for none
	stale    int       // connections found closed or stale by this attempt
	status   int
}

// start begins the request in c.ctx on h.
func (c *loopClient) start(h *Handler) {
	l := c.l
	x := h.exchanges.Get().(*exchange)
	x.ctx = c.ctx
	resp := &c.ctx.Response
	resp.Reset()
	resp.Header.SetNoDefaultContentType(true)
	x.observeStart()
	lx := &c.lx
	*lx = loopExchange{c: c, h: h, x: x, began: l.now, start: l.now}
	c.x = lx
	hash, hasKey, status, ok := x.begin(l.now)
	if !ok {
		lx.respondOwn(status)
		return
	}
	h.up.Begin(&lx.pick, hash, hasKey)
	lx.nextAttempt()
}

// nextAttempt picks the next endpoint and sends the request to it.
func (lx *loopExchange) nextAttempt() {
	x := lx.x
	for {
		ep := lx.next
		lx.next = nil
		if ep == nil {
			var err error
			if ep, err = lx.pick.Next(); err != nil {
				if lx.attempt > 0 && errors.Is(err, balancer.ErrExhausted) {
					lx.respondOwn(x.failed(lx.last))
					return
				}
				lx.respondOwn(x.noEndpoint(err, lx.last))
				return
			}
		}
		be, ok := ep.Data.(*backend)
		if !ok {
			x.missingTransport(ep)
			continue
		}
		if x.pastDeadline(lx.c.l.now) {
			lx.respondOwn(x.failed(result{fail: failTimeout, err: errRequestTimeout}))
			return
		}
		if be.tls || !be.ip.IsValid() {
			// A loop dials IP addresses in plaintext only. Nothing has gone to the client yet,
			// and the request's head is still in the client buffer: the goroutine path takes
			// the whole connection, and serves the request from the start (on a retry, the
			// request is one that may be sent again, or it would not be retried).
			lx.giveBack()
			return
		}
		lx.attempt++
		if x.log != nil {
			x.log.endpoint, x.log.attempts = be.id, lx.attempt
		}
		ep.Start()
		lx.ep, lx.be, lx.stale = ep, be, 0
		lx.deadline = x.deadline
		if t := lx.h.cfg.Retry.PerTryTimeout; t > 0 {
			lx.deadline = sooner(lx.deadline, lx.start.Add(t))
		}
		lx.send()
		return
	}
}

// giveBack undoes start, before an attempt, and hands the connection, the request's head
// still in it, to the goroutine path. Attempts already made stay counted.
func (lx *loopExchange) giveBack() {
	c, x, h := lx.c, lx.x, lx.h
	if h.metrics != nil {
		h.metrics.inFlight.Dec()
	}
	x.reset()
	h.exchanges.Put(x)
	*lx = loopExchange{}
	c.x, c.headLen = nil, 0
	c.l.s.loopRequests.Add(^uint64(0))
	c.l.handover(c)
}

// send takes a connection to the attempt's endpoint and writes the request on it.
func (lx *loopExchange) send() {
	x := lx.x
	u, r := lx.c.l.conn(lx.be)
	if u == nil {
		lx.attemptDone(r)
		return
	}
	lx.up, u.lx = u, lx
	if len(x.head) == 0 {
		x.head = x.appendHead(x.head[:0])
	}
	u.out, u.off = x.head, 0
	if u.state == upConnecting {
		u.deadline = earliest(lx.deadline, lx.start.Add(lx.be.dialTimeout))
		return
	}
	u.state = upWriting
	u.write()
}

// attemptDone ends an attempt with r: the response header is in hand (r.fail == failNone),
// or the attempt failed and its connection is closed. It then delivers, retries or answers
// with the proxy's own response, as forward does.
func (lx *loopExchange) attemptDone(r result) {
	x, h, l := lx.x, lx.h, lx.c.l
	u := lx.up
	if u != nil && u.reused && x.idempotent && lx.stale < maxStaleRetries {
		// A pooled connection the endpoint had closed, or a 408 it left there: not the
		// endpoint's answer to this request, which goes again on another connection.
		if (r.fail == failReset && isStale(r.err) && !u.gotByte) || (r.fail == failNone && r.status == fasthttp.StatusRequestTimeout) {
			u.close()
			lx.up = nil
			lx.stale++
			lx.send()
			return
		}
	}
	if r.fail != failNone && u != nil {
		u.close()
		lx.up = nil
	}
	lx.last = r
	x.ended = l.now
	lx.ep.Finish(balancer.Outcome{Status: r.status, Failure: r.fail.outcome(), Latency: l.now.Sub(lx.start)})
	lx.ep = nil
	if r.fail != failNone {
		h.logAttemptFailed(lx.be, lx.attempt, r)
	}
	var retry bool
	if lx.next, retry = x.retryAfter(&lx.pick, lx.attempt, r, l.now); !retry {
		if r.fail == failNone {
			lx.deliver(r.status)
			return
		}
		lx.respondOwn(x.failed(r))
		return
	}
	if h.metrics != nil {
		h.metrics.retries[r.fail].Inc()
	}
	if u := lx.up; u != nil && u.state != upIdle {
		u.close() // a dropped response's body is not read (a small one is, and its connection pooled)
	}
	lx.up = nil
	lx.start = l.now
	lx.nextAttempt()
}

// deliver sends the response whose header the attempt read, and streams its body.
func (lx *loopExchange) deliver(status int) {
	x, c, u := lx.x, lx.c, lx.up
	c.consumeHead()
	lx.be.codes.inc(status)
	lx.status = status
	resp := &x.ctx.Response
	cl := resp.Header.ContentLength()
	if u.state == upIdle || u.closed {
		// The body, if any, was read whole with the header (see head), and the connection
		// is back in the pool or closed.
		lx.up = nil
		c.appendHead(&resp.Header, false)
		c.out = append(c.out, resp.Body()...)
		lx.finish()
		c.flush()
		return
	}
	u.keep = x.keep
	switch kind := classifyBody(x.ctx.IsHead(), status, cl); {
	case kind == respNoBody:
		u.frame, u.remain = frameFixed, 0
		u.keep = u.keep && cl != -2
	case kind != respStreamed:
		u.frame, u.remain = frameFixed, int64(cl)
	case cl == -1:
		u.frame, u.chunks = frameChunked, chunkScanner{}
	default:
		// Delimited by the endpoint's close: re-chunked, so that the client's connection
		// stays open.
		u.frame, u.keep = frameClose, false
		resp.Header.SetContentLength(-1)
	}
	c.appendHead(&resp.Header, false)
	u.state = upBody
	u.deadline = lx.bodyDeadline()
	u.body()
}

// bodyDeadline is the deadline of the response body's next step: StreamIdleTimeout from now,
// up to RequestTimeout's end.
func (lx *loopExchange) bodyDeadline() time.Time {
	return sooner(lx.x.deadline, lx.c.l.now.Add(lx.h.cfg.StreamIdleTimeout))
}

// respondOwn sends the proxy's own answer, which x has put in the response, and ends the
// request.
func (lx *loopExchange) respondOwn(status int) {
	x, c := lx.x, lx.c
	c.consumeHead()
	if u := lx.up; u != nil {
		u.close()
		lx.up = nil
	}
	resp := &x.ctx.Response
	body := resp.Body()
	resp.Header.SetContentLength(len(body))
	c.appendHead(&resp.Header, resp.ConnectionClose())
	if !x.ctx.IsHead() {
		c.out = append(c.out, body...)
	}
	lx.status = status
	lx.finish()
	c.flush()
}

// finish records the request (metrics, access log), returns the exchange to its pool and
// frees the client connection for its next request.
func (lx *loopExchange) finish() {
	x, h, c := lx.x, lx.h, lx.c
	x.observeEnd(lx.status, lx.began, c.l.now)
	c.ctx.Response.ResetBody() // a body read whole was copied out: its buffer goes back to its pool
	x.reset()
	h.exchanges.Put(x)
	*lx = loopExchange{}
	c.done()
}

// abandon ends the request of a client connection that closed.
func (lx *loopExchange) abandon() {
	if lx.x == nil {
		return
	}
	if u := lx.up; u != nil {
		u.close()
		lx.up = nil
	}
	if lx.ep != nil {
		lx.ep.Finish(balancer.Outcome{}) // says nothing about the endpoint
		lx.ep = nil
	}
	lx.finish()
}

// bodyDone ends the response body: the endpoint connection goes back to the pool when it
// is clean, and the request ends.
func (lx *loopExchange) bodyDone(u *loopUp) {
	lx.up = nil
	u.release(u.keep)
	lx.finish()
}

// The states of an endpoint connection.
const (
	upIdle       uint8 = iota // in the pool
	upConnecting              // connect(2) in progress
	upWriting                 // writing the request
	upHead                    // waiting for the response header
	upSmall                   // reading a small body whole, within the attempt
	upFirst                   // waiting for the first byte of a larger body, within the attempt
	upBody                    // passing the response body on
)

// loopUp is a connection to an endpoint, owned by one loop.
type loopUp struct {
	l     *loop
	fd    int
	be    *backend
	pool  *loopPool
	lx    *loopExchange // nil while idle
	state uint8

	reused  bool // taken from the pool: may be stale
	gotByte bool // a byte of the response came
	lastUse time.Time
	in      []byte
	n       int
	out     []byte
	off     int

	deadline time.Time

	frame   uint8 // the body's framing (frameFixed, frameChunked, frameClose)
	remain  int64 // frameFixed: body bytes still to come
	chunks  chunkScanner
	keep    bool // reusable once the body is read
	interim int  // 1xx responses skipped
	paused  bool // the client has not taken what was read: reading waits
	closed  bool
	// readable and hup are loopClient's.
	readable, hup bool
}

// loopPool is a loop's connections to one endpoint.
type loopPool struct {
	idle []*loopUp // most recently used last
	open int       // idle and busy
}

// conn returns a connection to be for an attempt: a pooled one known clean, or a new one,
// possibly still connecting. On failure it returns the attempt's result instead.
//
// A pooled connection is peeked at before every use, as the goroutine path does (see
// exchange.attempt): the epoll event that says an idle connection turned readable (closed,
// or bytes nobody asked for) closes it (loopUp.event), but only once the loop gets to it. In a
// batch of events, or after the loop's thread was descheduled, a client's request can come
// first and would take the connection with the bytes on it for its answer.
func (l *loop) conn(be *backend) (*loopUp, result) {
	p := l.pools[be]
	if p == nil {
		p = &loopPool{}
		l.pools[be] = p
	}
	for len(p.idle) > 0 {
		u := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !fdAlive(u.fd) {
			u.close()
			continue
		}
		u.reused, u.gotByte, u.n, u.interim, u.paused, u.readable, u.hup = true, false, 0, 0, false, false, false
		return u, result{}
	}
	// The cap counts this loop's connections and the goroutine path's (the HostClient's);
	// other loops' are not seen, so with several loops it is a cap per loop.
	if max := be.hc.MaxConns; max > 0 && p.open+be.hc.ConnsCount() >= max {
		return nil, result{fail: failPoolFull, err: fasthttp.ErrNoFreeConns}
	}
	fd, connecting, err := dialNonblock(be)
	if err != nil {
		return nil, result{fail: failConnect, err: &connectError{err: err}}
	}
	u := &loopUp{l: l, fd: fd, be: be, pool: p, in: make([]byte, be.bufs.readSize)}
	if err := l.add(fd, u); err != nil {
		_ = syscall.Close(fd)
		return nil, result{fail: failConnect, err: &connectError{err: err}}
	}
	p.open++
	if connecting {
		u.state = upConnecting
	}
	return u, result{}
}

// dialNonblock starts a connection to be: connected reports connect(2) still in progress.
func dialNonblock(be *backend) (fd int, connecting bool, err error) {
	a := be.ip.Addr()
	var sa syscall.Sockaddr
	domain := syscall.AF_INET
	if a.Is4() || a.Is4In6() {
		sa = &syscall.SockaddrInet4{Port: int(be.ip.Port()), Addr: a.Unmap().As4()}
	} else {
		domain = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(be.ip.Port()), Addr: a.As16()}
	}
	fd, err = syscall.Socket(domain, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, os.NewSyscallError("socket", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
	switch err = syscall.Connect(fd, sa); {
	case err == nil:
		return fd, false, nil
	case errors.Is(err, syscall.EINPROGRESS), errors.Is(err, syscall.EINTR):
		return fd, true, nil
	}
	_ = syscall.Close(fd)
	return -1, false, os.NewSyscallError("connect", err)
}

// fdAlive reports whether a pooled connection is still open with nothing unread on it.
func fdAlive(fd int) bool {
	var b [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(bufPtr(b[:])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}

func (u *loopUp) event(ev uint32) {
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		u.readable = true
		u.hup = u.hup || ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	}
	switch u.state {
	case upIdle:
		// The endpoint closed a pooled connection, or sent what nobody asked for.
		u.close()
	case upConnecting:
		if ev&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		if soErr, err := syscall.GetsockoptInt(u.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || soErr != 0 {
			if err == nil {
				err = os.NewSyscallError("connect", syscall.Errno(soErr))
			}
			u.fail(result{fail: failConnect, err: &connectError{err: err}})
			return
		}
		u.state = upWriting
		u.deadline = time.Time{}
		u.write()
	case upWriting:
		if ev&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			u.write()
		}
	default:
		u.read()
	}
}

// write writes the request; once it is out, the response header is awaited.
func (u *loopUp) write() {
	lx := u.lx
	for u.off < len(u.out) {
		n, errno := rawWrite(u.fd, u.out[u.off:])
		if errno == syscall.EINTR {
			continue
		}
		if errno == syscall.EAGAIN {
			u.deadline = earliest(lx.deadline, lx.start.Add(lx.h.cfg.ResponseHeaderTimeout))
			return
		}
		if errno != 0 {
			u.fail(result{fail: failReset, err: errno})
			return
		}
		u.off += n
	}
	u.out, u.off = nil, 0
	u.state = upHead
	// As on the goroutine path, the response header (and a small body) is due within
	// ResponseHeaderTimeout of the attempt's start.
	u.deadline = earliest(lx.deadline, lx.start.Add(lx.h.cfg.ResponseHeaderTimeout))
	u.read() // an endpoint may have answered before the request was all written
}

// read reads the response: its header, then its body, passed on to the client.
func (u *loopUp) read() {
	for u.readable && !u.closed && !u.paused && u.state >= upHead {
		if u.n == len(u.in) {
			// Only a header can fill the buffer: a body is passed on as it comes.
			u.fail(result{fail: failReset, err: errors.New("response header too large")})
			return
		}
		want := len(u.in) - u.n
		n, errno := rawRead(u.fd, u.in[u.n:])
		if errno == syscall.EINTR {
			continue
		}
		if errno == syscall.EAGAIN {
			u.readable = false
			return
		}
		if errno != 0 || n == 0 {
			var err error = io.EOF
			if errno != 0 {
				err = errno
			}
			u.ended(err)
			return
		}
		u.gotByte = true
		u.n += n
		if n < want && !u.hup {
			u.readable = false
		}
		switch u.state {
		case upHead:
			u.head()
		case upSmall:
			u.small()
		case upFirst:
			u.deadline = time.Time{}
			u.lx.attemptDone(result{status: u.lx.x.ctx.Response.StatusCode()})
		default:
			u.deadline = u.lx.bodyDeadline()
			u.body()
		}
	}
}

// head parses the response header once it is whole, skipping interim responses.
func (u *loopUp) head() {
	l, lx := u.l, u.lx
	for u.state == upHead {
		end := headEnd(u.in[:u.n])
		if end < 0 {
			return
		}
		resp := &lx.x.ctx.Response
		err := resp.Header.Read(l.reader(u.in[:end]))
		u.n = copy(u.in, u.in[end:u.n])
		if err != nil {
			u.fail(result{fail: failReset, err: err})
			return
		}
		st := resp.Header.StatusCode()
		if st < 200 && st != fasthttp.StatusSwitchingProtocols {
			if u.interim++; st < 100 || u.interim > maxInterim {
				u.fail(result{fail: failReset, err: errInterim})
				return
			}
			continue // 100 Continue and 103 Early Hints are dropped, as on the goroutine path
		}
		if st == fasthttp.StatusSwitchingProtocols {
			u.fail(result{fail: failReset, err: errors.New("101 response to a request that asked for no upgrade")})
			return
		}
		x := lx.x
		x.keep = !resp.Header.ConnectionClose() && st != fasthttp.StatusRequestTimeout
		cleanResponse(&resp.Header, false, &x.dropped)
		cl := resp.Header.ContentLength()
		switch classifyBody(x.ctx.IsHead(), st, cl) {
		case respSmall:
			// Read whole within the attempt: a body cut short is then a failed attempt, open
			// to a retry and seen by outlier detection, and the connection goes back to the
			// pool before the client is written to.
			u.state, u.remain = upSmall, int64(cl)
			resp.ResetBody() // a failed attempt's may be there
			u.small()
			return
		case respFirstByte:
			if u.n == 0 {
				u.state = upFirst // under the header's deadline
				return
			}
		}
		u.deadline = time.Time{}
		lx.attemptDone(result{status: st})
		return
	}
}

// small moves the bytes read of a small body into the response, and ends the attempt once
// the body is whole.
func (u *loopUp) small() {
	lx := u.lx
	k := min(int64(u.n), u.remain)
	lx.x.ctx.Response.AppendBody(u.in[:k])
	if int64(u.n) > k {
		lx.x.keep = false // more than the Content-Length: the connection is not clean
	}
	u.n = 0
	if u.remain -= k; u.remain > 0 {
		return
	}
	u.deadline = time.Time{}
	u.release(lx.x.keep) // upIdle, or closed: deliver sends the body from the response
	lx.attemptDone(result{status: lx.x.ctx.Response.StatusCode()})
}

// body passes on the body bytes in u.in, framed as the response says, and ends the request
// when the body is complete.
func (u *loopUp) body() {
	lx := u.lx
	c := lx.c
	p := u.in[:u.n]
	u.n = 0
	complete := false
	switch u.frame {
	case frameFixed:
		k := int64(len(p))
		if k > u.remain {
			k = u.remain
			u.keep = false // more than the Content-Length: the connection is not clean
		}
		c.out = append(c.out, p[:k]...)
		u.remain -= k
		complete = u.remain == 0
	case frameChunked:
		k, done, err := u.chunks.scan(p)
		c.out = append(c.out, p[:k]...)
		if err != nil {
			u.abort(abortEndpoint, err)
			return
		}
		if done && k < len(p) {
			u.keep = false
		}
		complete = done
	case frameClose:
		if len(p) > 0 {
			c.out = appendChunk(c.out, p)
		}
	}
	if complete {
		lx.bodyDone(u)
		c.flush()
		return
	}
	c.flush()
	if !c.closed && c.pending() {
		u.paused = true
	}
}

// ended handles the end of the endpoint's side: an error, or its close.
func (u *loopUp) ended(err error) {
	switch {
	case u.state != upBody: // before the body streams: the attempt failed
		u.fail(result{fail: failReset, err: err})
	case u.frame == frameClose && err == io.EOF:
		c := u.lx.c
		c.out = append(c.out, "0\r\n\r\n"...)
		u.keep = false
		u.lx.bodyDone(u)
		c.flush()
	default:
		u.abort(abortEndpoint, err) // the body was cut short
	}
}

// fail ends the attempt on this connection with r; attemptDone closes the connection.
func (u *loopUp) fail(r result) {
	if r.fail == failReset && u.state == upConnecting {
		r.fail = failConnect
	}
	u.lx.attemptDone(r)
}

// abort breaks off a response whose body went wrong after its header was sent, for why: the
// client's connection is closed, as the goroutine path does, and the abort reported.
func (u *loopUp) abort(why abortReason, err error) {
	u.lx.h.bodyAborted(u.lx.be, why, err)
	u.breakOff()
}

// breakOff closes the endpoint and client connections of a response under way.
func (u *loopUp) breakOff() {
	lx := u.lx
	c := lx.c
	lx.up = nil
	u.close()
	c.closeAfter = true
	c.close() // abandons lx, which finishes the request
}

// timedOut handles a passed deadline: connecting, the response header, or a pause in the body.
func (u *loopUp) timedOut() {
	if u.closed || u.lx == nil {
		return // closed since the sweep listed it, or idle in the pool
	}
	switch u.state {
	case upConnecting:
		u.fail(result{fail: failConnect, err: &connectError{err: os.ErrDeadlineExceeded}})
	case upWriting, upHead, upSmall, upFirst:
		u.fail(result{fail: failTimeout, err: os.ErrDeadlineExceeded})
	case upBody:
		if u.paused {
			// The client has not taken what was read: the client is slow, not the endpoint
			// (the goroutine engine's client write times out, and reports nothing either).
			u.breakOff()
			return
		}
		u.abort(abortCause(os.ErrDeadlineExceeded, u.lx.x.deadline, u.l.now), os.ErrDeadlineExceeded)
	}
}

// release returns the connection to its pool, or closes it.
func (u *loopUp) release(keep bool) {
	// hup: the endpoint closed its side (its FIN came with the response, and its edge is
	// spent): the connection would look open, and take the next request to nobody.
	if !keep || u.hup || u.closed || u.l.s.closing.Load() {
		u.close()
		return
	}
	u.lx, u.state, u.deadline, u.lastUse = nil, upIdle, time.Time{}, u.l.now
	u.pool.idle = append(u.pool.idle, u)
}

// close closes the connection and takes it out of its pool.
func (u *loopUp) close() {
	if u.closed {
		return
	}
	u.closed = true
	u.l.remove(u.fd)
	_ = syscall.Close(u.fd)
	u.pool.open--
	if u.state == upIdle {
		if i := slices.Index(u.pool.idle, u); i >= 0 {
			u.pool.idle = slices.Delete(u.pool.idle, i, i+1)
		}
	}
}

// expire closes the pooled connections idle for longer than maxIdle.
func (p *loopPool) expire(now time.Time, maxIdle time.Duration) {
	if maxIdle <= 0 {
		maxIdle = 10 * time.Second
	}
	for len(p.idle) > 0 && now.Sub(p.idle[0].lastUse) > maxIdle {
		p.idle[0].close()
	}
}
