//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// LoopServer serves the forwarding path on event loops: each loop is one OS thread that owns
// its sockets, client and endpoint alike, and waits for all of them in one epoll set, as nginx
// and HAProxy do, instead of a goroutine per connection parked in Go's poller.
//
// Why: on loopback, measured side by side, a goroutine per connection costs 4–5 µs of CPU
// more per proxied request than an event loop does (the scheduler's park and wake of each
// read, runtime timers for deadlines, threads handing work to each other; see
// deploy/bench/floorproxy), which is what kept ringside above nginx's CPU per request. See
// the README's performance section.
//
// A loop serves the common request itself: HTTP/1.1, no body, no upgrade, no Expect, to a
// plaintext endpoint at an IP address. It reuses the Handler's checks, key extraction,
// header rewriting, balancer, retry policy, outlier feedback, metrics and access log; only
// the input and output are its own. Any other request — a body, an upgrade, HTTP/1.0, a
// header that does not parse, an endpoint given by host name — is handed over, with its
// connection, to the fasthttp server of the goroutine path before a byte of it goes anywhere
// (or, on a retry, before a byte reaches the client), and that server serves the connection
// from then on. So what the goroutine path does, the LoopServer does too.
//
// Differences from the goroutine path:
//   - a chunked response body is passed on as the endpoint framed it, trailers included;
//   - a response delimited by the endpoint closing its connection is re-chunked for the client;
//   - TransportConfig.MaxConnsPerEndpoint caps each loop's connections together with the
//     goroutine path's, but the goroutine path does not see the loops': with loops, the cap
//     can be passed by the connections of the other loops and of the goroutine path.
type LoopServer struct {
	route    func(*fasthttp.RequestCtx) *Handler
	fallback *fasthttp.Server
	cfg      ServerConfig
	log      *zap.Logger
	n        int

	mu      sync.Mutex
	loops   []*loop
	closing atomic.Bool // shutting down: no new connections, close each after its response
	abort   atomic.Bool // shutdown's context ended: close everything now
	handed  sync.WaitGroup
	served  chan struct{} // closed when Serve has returned

	// Requests the loops served, and connections they handed over.
	loopRequests, handovers atomic.Uint64
	// gate counts the client connections, the loops' and those they handed over, against
	// cfg.MaxConns, and paces accepts that fail for lack of resources. A Listener given to
	// Serve brings its own.
	gate   *connGate
	listen string // the listener's address, for the log
}

// NewLoopServer returns a LoopServer. route returns the Handler of a request (nil hands the
// request to fallback, which answers it: a router's 404, say); fallback is the server of
// the goroutine path, built by NewServer, and serves every connection a loop hands over. cfg
// is fallback's configuration, whose timeouts and limits the loops apply too. loops is the
// number of event loops (threads); 0 means 1.
func NewLoopServer(route func(*fasthttp.RequestCtx) *Handler, fallback *fasthttp.Server, cfg ServerConfig, loops int) (*LoopServer, error) {
	if route == nil || fallback == nil {
		return nil, fmt.Errorf("%w: loop server: nil route or fallback", ErrBadConfig)
	}
	if loops < 0 {
		return nil, fmt.Errorf("%w: loop server: negative loops", ErrBadConfig)
	}
	cfg.ReadHeaderTimeout = orDefault(cfg.ReadHeaderTimeout, defaultReadHeaderTimeout)
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, defaultIdleTimeout)
	cfg.WriteTimeout = orDefault(cfg.WriteTimeout, defaultWriteTimeout)
	cfg.MaxRequestHeaderSize = orDefault(cfg.MaxRequestHeaderSize, defaultMaxRequestHeaderSize)
	cfg.MaxConns = orDefault(cfg.MaxConns, DefaultMaxConns())
	if cfg.MaxConns < 1 {
		return nil, fmt.Errorf("%w: loop server: max conns %d, want >= 1", ErrBadConfig, cfg.MaxConns)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &LoopServer{route: route, fallback: fallback, cfg: cfg, log: log, n: max(loops, 1),
		served: make(chan struct{}), gate: newConnGate(cfg.MaxConns, log)}, nil
}

// Serve runs the loops on ln, which must be a TCP listener (or one wrapped by WrapListener),
// until Shutdown. It returns nil after a shutdown. ln is not closed: the caller owns it.
func (s *LoopServer) Serve(ln net.Listener) error {
	defer close(s.served)
	tl, ok := unwrapListener(ln).(*net.TCPListener)
	if !ok {
		return fmt.Errorf("%w: loop server needs a TCP listener, not %T", ErrBadConfig, ln)
	}
	s.listen = ln.Addr().String()
	f, err := tl.File() // a duplicate, in blocking mode: made non-blocking below
	if err != nil {
		return err
	}
	defer f.Close()
	lfd := int(f.Fd())
	if err := syscall.SetNonblock(lfd, true); err != nil {
		return err
	}
	s.mu.Lock()
	if g := listenerGate(ln); g != nil {
		s.gate = g // before any loop runs: read by the loops' threads from now on
	}
	for range s.n {
		l, err := newLoop(s, lfd)
		if err != nil {
			s.mu.Unlock()
			for _, l := range s.loops {
				l.release()
			}
			return err
		}
		s.loops = append(s.loops, l)
	}
	loops := s.loops
	s.mu.Unlock()
	if s.closing.Load() {
		for _, l := range loops {
			l.release()
		}
		return nil
	}
	// The fallback serves handed-over connections with ServeConn. It is also made to Serve a
	// listener that accepts nothing, because fasthttp's Shutdown does nothing at all for a
	// server that serves no listener: with one, it closes the handed-over connections that
	// are idle, and closes each busy one after its response, as it does its own.
	park := &parkedListener{addr: ln.Addr(), closed: make(chan struct{})}
	fallbackDone := make(chan struct{})
	go func() { defer close(fallbackDone); _ = s.fallback.Serve(park) }()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Go(l.run)
	}
	wg.Wait()
	_ = park.Close()
	<-fallbackDone
	return nil
}

// parkedListener accepts nothing until it is closed.
type parkedListener struct {
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

func (p *parkedListener) Accept() (net.Conn, error) {
	<-p.closed
	return nil, net.ErrClosed
}

func (p *parkedListener) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *parkedListener) Addr() net.Addr { return p.addr }

// Shutdown stops accepting, closes idle connections, and lets each busy one finish its
// response (then closes it), until ctx ends, when everything left is closed. It waits for
// the connections handed to the fallback server too, which the fallback's own
// ShutdownWithContext, run alongside by the caller, closes as it closes its own. It returns
// ctx.Err() if ctx ended first.
func (s *LoopServer) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.wakeAll()
	select {
	case <-s.waitServed():
	case <-ctx.Done():
		s.abort.Store(true)
		s.wakeAll()
		<-s.waitServed()
		return ctx.Err()
	}
	// The loops are gone, so no handover starts any more: waiting for them is safe now.
	handed := make(chan struct{})
	go func() { s.handed.Wait(); close(handed) }()
	select {
	case <-handed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitServed returns a channel closed once Serve has returned, or at once if Serve never ran.
func (s *LoopServer) waitServed() <-chan struct{} {
	s.mu.Lock()
	started := s.loops != nil
	s.mu.Unlock()
	if !started {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.served
}

func (s *LoopServer) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.loops {
		l.wakeUp()
	}
}

// unwrapListener returns the listener under WrapListener's and Listener's.
func unwrapListener(ln net.Listener) net.Listener {
	for {
		w, ok := ln.(interface{ Unwrap() net.Listener })
		if !ok {
			return ln
		}
		ln = w.Unwrap()
	}
}

// listenerGate returns the gate of the Listener in ln's wrappers, or nil.
func listenerGate(ln net.Listener) *connGate {
	for {
		if l, ok := ln.(*Listener); ok {
			return l.gate
		}
		w, ok := ln.(interface{ Unwrap() net.Listener })
		if !ok {
			return nil
		}
		ln = w.Unwrap()
	}
}

// sweepEvery is how often a loop checks its connections' deadlines: timeouts fire up to this
// late, in exchange for no timer per request.
const sweepEvery = 100 * time.Millisecond

// epollET is EPOLLET, whose syscall constant is negative.
const epollET = 1 << 31

// fdHandler is a socket registered in a loop.
type fdHandler interface {
	event(ev uint32)
}

// loop is one event loop: a thread, an epoll set, and the sockets registered in it. All its
// fields are touched by its own thread only, but for wake (written by Shutdown).
type loop struct {
	s       *LoopServer
	ep      int
	lfd     int         // the listener, shared by all loops (EPOLLEXCLUSIVE)
	wake    int         // an eventfd Shutdown writes to
	fds     []fdHandler // by file descriptor
	gens    []int32     // by file descriptor: the registration's generation (see add)
	gen     int32
	nfds    int // registered
	pools   map[*backend]*loopPool
	now     time.Time
	clients int
	// ready are the client connections whose response is out, to go on to their next
	// request: run from the top of the loop, so that a connection sending request after
	// request never deepens the stack.
	ready    []*loopClient
	released bool // its file descriptors are closed: guarded by s.mu
	// resumeAccept, when set, is when the listener goes back into the epoll set: accept
	// failed for lack of resources (see connGate), and the listener, level-triggered, would
	// wake the loop at once and for ever while its queue holds a connection.
	resumeAccept time.Time

	src bytes.Reader // parsing: a head already whole in a buffer
	br  *bufio.Reader

	freeIn  [][]byte // client read buffers taken back from idle connections (loopbuf_linux.go)
	freeOut [][]byte // client write buffers taken back once their response was out
}

func newLoop(s *LoopServer, lfd int) (*loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wake, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", errno)
	}
	l := &loop{s: s, ep: ep, lfd: lfd, wake: int(wake), fds: make([]fdHandler, 1024),
		gens: make([]int32, 1024), pools: make(map[*backend]*loopPool)}
	l.br = bufio.NewReaderSize(&l.src, s.cfg.MaxRequestHeaderSize+64)
	if err := l.watchListener(); err != nil {
		l.releaseLocked()
		return nil, fmt.Errorf("epoll listener: %w", err)
	}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, l.wake,
		&syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.wake)}); err != nil {
		l.releaseLocked()
		return nil, fmt.Errorf("epoll eventfd: %w", err)
	}
	return l, nil
}

// watchListener adds the listener to the epoll set, level-triggered; with EPOLLEXCLUSIVE, a
// connection wakes one of the loops, not all.
func (l *loop) watchListener() error {
	const epollExclusive = 1 << 28
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, l.lfd,
		&syscall.EpollEvent{Events: syscall.EPOLLIN | epollExclusive, Fd: int32(l.lfd)})
}

// release closes the loop's epoll set and eventfd, once.
func (l *loop) release() {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.releaseLocked()
}

// releaseLocked is release with s.mu held.
func (l *loop) releaseLocked() {
	if l.released {
		return
	}
	l.released = true
	syscall.Close(l.ep)
	syscall.Close(l.wake)
}

// wakeUp makes the loop look at the server's state; s.mu is held.
func (l *loop) wakeUp() {
	if l.released {
		return // its eventfd's number may belong to another file now
	}
	one := [8]byte{1}
	_, _ = syscall.Write(l.wake, one[:])
}

// reader returns the loop's reader over the head in b, grown when b is longer than its buffer.
func (l *loop) reader(b []byte) *bufio.Reader {
	if l.br.Size() < len(b) {
		l.br = bufio.NewReaderSize(&l.src, len(b))
	}
	l.src.Reset(b)
	l.br.Reset(&l.src)
	return l.br
}

// add registers fd, edge-triggered, for input, output and the peer's close. The event carries
// a generation beside the fd, so that an event still queued in a batch for a socket closed
// meanwhile is not taken for a new socket that got the same number.
func (l *loop) add(fd int, h fdHandler) error {
	l.gen++
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET,
		Fd: int32(fd), Pad: l.gen}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	for fd >= len(l.fds) {
		l.fds = append(l.fds, make([]fdHandler, len(l.fds))...)
		l.gens = append(l.gens, make([]int32, len(l.gens))...)
	}
	l.fds[fd], l.gens[fd] = h, l.gen
	l.nfds++
	return nil
}

// remove unregisters fd; closing it is the caller's.
func (l *loop) remove(fd int) {
	_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, fd, nil)
	l.fds[fd] = nil
	l.nfds--
}

// run is the loop. It returns after a shutdown once no client connection is left.
func (l *loop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.release()
	events := make([]syscall.EpollEvent, 256)
	l.now = time.Now()
	lastSweep := l.now
	accepting := true
	for {
		if l.s.closing.Load() {
			if accepting {
				accepting = false
				_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.lfd, nil)
				l.closeIdle()
				l.runReady()
			}
			if l.s.abort.Load() {
				l.closeAll()
			}
			if l.clients == 0 {
				l.closeAll()
				return
			}
		}
		timeout := int(sweepEvery / time.Millisecond)
		if !l.resumeAccept.IsZero() {
			timeout = min(timeout, int(max(l.resumeAccept.Sub(l.now), time.Millisecond)/time.Millisecond))
		} else if l.nfds == 0 {
			timeout = -1
		}
		n, err := syscall.EpollWait(l.ep, events, timeout)
		l.now = time.Now()
		if err != nil && !errors.Is(err, syscall.EINTR) {
			l.s.log.Error("event loop stopped", zap.Error(err))
			l.closeAll()
			return
		}
		if !l.resumeAccept.IsZero() && !l.now.Before(l.resumeAccept) {
			l.resumeAccept = time.Time{}
			if accepting {
				if err := l.watchListener(); err != nil {
					// Out of kernel memory still, likely: try again after another pause, or
					// the listener would never come back to this loop.
					l.resumeAccept = l.now.Add(l.s.gate.failed(err, l.now, l.s.listen))
				} else {
					l.accept()
					l.runReady()
				}
			}
		}
		for i := range n {
			fd := int(events[i].Fd)
			switch fd {
			case l.lfd:
				if accepting {
					l.accept()
				}
			case l.wake:
				var b [8]byte
				_, _ = syscall.Read(l.wake, b[:])
			default:
				if fd < len(l.fds) && l.fds[fd] != nil && l.gens[fd] == events[i].Pad {
					l.fds[fd].event(events[i].Events)
				}
			}
			l.runReady()
		}
		if l.now.Sub(lastSweep) >= sweepEvery {
			lastSweep = l.now
			l.sweep()
			l.runReady() // a timeout may have ended a request
		}
	}
}

// accept takes the connections waiting on the listener, under the server's gate: over
// MaxConns, a connection is answered and closed; out of file descriptors (or kernel memory),
// the listener leaves the epoll set until the gate's pause is over.
func (l *loop) accept() {
	for {
		fd, sa, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case outOfResources(err):
				_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.lfd, nil)
				l.resumeAccept = l.now.Add(l.s.gate.failed(err, l.now, l.s.listen))
			case !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
				if ce := l.s.log.Check(zap.DebugLevel, "accept"); ce != nil {
					ce.Write(zap.Error(err))
				}
			}
			return
		}
		l.s.gate.accepted(l.now, l.s.listen)
		if !l.s.gate.enter() {
			_, _ = rawWrite(fd, tooManyConns)
			_ = syscall.Close(fd)
			continue
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
		c := newLoopClient(l, fd, sa)
		if err := l.add(fd, c); err != nil {
			_ = syscall.Close(fd)
			l.s.gate.leave()
			continue
		}
		l.clients++
		c.deadline = l.now.Add(l.s.cfg.ReadHeaderTimeout)
		c.input() // data may have come with the connection
		l.runReady()
	}
}

// schedule queues c to go on to its next request from the top of the loop.
func (l *loop) schedule(c *loopClient) {
	if !c.queued {
		c.queued = true
		l.ready = append(l.ready, c)
	}
}

// runReady lets the queued connections go on to their next request; those that finish one at
// once queue again, and are run in the same call.
func (l *loop) runReady() {
	for i := 0; i < len(l.ready); i++ {
		c := l.ready[i]
		l.ready[i] = nil
		c.queued = false
		c.next()
	}
	l.ready = l.ready[:0]
}

// sweep enforces the deadlines of the loop's connections, and closes pooled endpoint
// connections idle too long.
func (l *loop) sweep() {
	for _, h := range l.fds {
		switch c := h.(type) {
		case nil:
		case *loopClient:
			if !c.deadline.IsZero() && l.now.After(c.deadline) {
				c.timedOut()
			}
		case *loopUp:
			if !c.deadline.IsZero() && l.now.After(c.deadline) {
				c.timedOut()
			}
		}
	}
	for be, p := range l.pools {
		p.expire(l.now, be.hc.MaxIdleConnDuration)
		if p.open == 0 && len(p.idle) == 0 {
			delete(l.pools, be)
		}
	}
}

// closeIdle closes the client connections waiting for a request, at shutdown; one still
// writing its last response closes once the response is out.
func (l *loop) closeIdle() {
	for _, h := range l.fds {
		c, ok := h.(*loopClient)
		if !ok || c.x != nil {
			continue
		}
		c.closeAfter = true
		if !c.pending() && c.n == 0 {
			c.close()
		}
	}
}

// closeAll closes every connection of the loop.
func (l *loop) closeAll() {
	for _, h := range l.fds {
		switch c := h.(type) {
		case *loopClient:
			c.close()
		case *loopUp:
			c.close()
		}
	}
	for _, p := range l.pools {
		for _, u := range p.idle {
			u.close()
		}
		p.idle = nil
	}
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket, without the
// runtime's system-call bookkeeping: they never block.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)))
	return int(r), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)))
	return int(r), e
}

// handover gives a client connection to the fallback server, with the bytes already read
// from it, and forgets it.
func (l *loop) handover(c *loopClient) {
	l.remove(c.fd)
	l.clients--
	c.closed = true // to the loop, it is gone; s.gate counts it until the fallback closes it
	fd := c.fd
	f := os.NewFile(uintptr(fd), "client")
	c.fd = -1
	nc, err := net.FileConn(f) // a duplicate, in the runtime's poller
	if err != nil {
		// At the file-descriptor limit the duplicate fails. Nothing of the request has gone
		// anywhere: the client is told so, not left with a connection closed without a word.
		_, _ = rawWrite(fd, tooManyConns)
		f.Close()
		l.s.gate.leave()
		l.s.log.Debug("hand over connection", zap.Error(err))
		return
	}
	f.Close()
	l.s.handovers.Add(1)
	pc := &prefixConn{Conn: &gatedConn{Conn: wrapConn(nc), gate: l.s.gate}, pre: append([]byte(nil), c.in[:c.n]...)}
	if c.x == nil { // (a retry's handover leaves the exchange to unwind first)
		c.n = 0
		l.takeBackIn(c)
	}
	l.s.handed.Go(func() { _ = l.s.fallback.ServeConn(pc) })
}

// prefixConn is a handed-over connection, whose first bytes were already read: Read returns
// them first. It stays counted by the gate (ServerConfig.MaxConns) until it is closed.
type prefixConn struct {
	net.Conn // a *gatedConn
	pre      []byte
}

// ReadFrom copies r out piece by piece (see copyOut).
func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	return copyOut(writeOnly[*prefixConn]{c}, r)
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func bufPtr(p []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(p)) }

// LoopStats are what a LoopServer counted since it was created.
type LoopStats struct {
	Requests  uint64 // requests the loops served themselves
	Handovers uint64 // connections handed to the fallback server
	Conns     ConnStats
}

// Stats returns the counts so far. Safe for concurrent use once Serve has started (or
// before it, when no Listener is given to Serve).
func (s *LoopServer) Stats() LoopStats {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	return LoopStats{Requests: s.loopRequests.Load(), Handovers: s.handovers.Load(), Conns: g.stats()}
}
