package proxy

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// connGate is the accept rule of one listener, the same on both engines: at most max client
// connections open at once (the ones over it are answered tooManyConns and closed), and a
// pause when accept fails for lack of a file descriptor or of kernel memory. Such a failure
// leaves the connection in the listener's queue, so accepting again at once fails again at
// once: a level-triggered event loop would spin on it, and fasthttp's Serve gives up for good.
// Instead accepting pauses, from acceptPauseMin doubling up to acceptPauseMax while the
// failures go on, and the connections already open are served meanwhile. Each failure is
// counted; an episode (failures until the next accept that succeeds) is logged once when it
// starts and once when it ends. Safe for concurrent use.
type connGate struct {
	max  int64
	open atomic.Int64
	log  *zap.Logger

	refused  atomic.Uint64 // connections over max, answered and closed
	failures atomic.Uint64 // accepts failed for lack of resources
	starved  atomic.Bool   // in an episode: the last accept failed for lack of resources

	mu       sync.Mutex // guards the episode below
	pause    time.Duration
	since    time.Time
	lastFail time.Time
	inEpoch  uint64 // failures in this episode
}

// acceptQuiet is how long accepts must go without a failure for lack of resources before an
// episode ends (and is logged as over): under steady pressure, each descriptor freed lets one
// accept through between failures, and that is still one episode, with its pause growing.
const acceptQuiet = 2 * time.Second

// The pauses after an accept that failed for lack of resources: short at first, since a
// connection closing frees a descriptor at any moment, and never long, since a paused
// listener lets its queue fill and its clients wait.
const (
	acceptPauseMin = 5 * time.Millisecond
	acceptPauseMax = time.Second
)

// tooManyConns is the answer to a connection over the cap, on a plaintext listener.
var tooManyConns = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n")

func newConnGate(max int, log *zap.Logger) *connGate {
	return &connGate{max: int64(max), log: log}
}

// enter counts a new connection in, or reports false (and counts a refusal) when the cap is
// reached; the caller then answers and closes it.
func (g *connGate) enter() bool {
	if g.open.Add(1) > g.max {
		g.open.Add(-1)
		g.refused.Add(1)
		return false
	}
	return true
}

// leave counts a connection entered out again.
func (g *connGate) leave() { g.open.Add(-1) }

// outOfResources reports whether an accept error means a lack of file descriptors (the
// process's or the system's) or of kernel memory: the connection waits in the queue, and
// accepting again succeeds once some is freed.
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// failed records an accept that failed for lack of resources (see outOfResources), at now,
// and returns how long to wait before accepting again.
func (g *connGate) failed(err error, now time.Time, listen string) time.Duration {
	g.failures.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inEpoch++
	g.lastFail = now
	if !g.starved.Load() {
		g.starved.Store(true)
		g.since, g.pause = now, acceptPauseMin
		g.log.Warn("accept failed for lack of resources: pausing accepts, serving the open connections",
			zap.String("listen", listen), zap.Error(err), zap.Int64("open_connections", g.open.Load()))
		return g.pause
	}
	g.pause = min(2*g.pause, acceptPauseMax)
	return g.pause
}

// accepted ends an episode of failures, if one was going on and none came for acceptQuiet:
// cheap when none was.
func (g *connGate) accepted(now time.Time, listen string) {
	if !g.starved.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.starved.Load() || now.Sub(g.lastFail) < acceptQuiet {
		return
	}
	g.starved.Store(false)
	g.log.Info("accepting again after a lack of resources", zap.String("listen", listen),
		zap.Duration("paused", now.Sub(g.since)), zap.Uint64("failed_accepts", g.inEpoch))
	g.inEpoch = 0
}

// ConnStats are what a listener's accept path counted, on either engine.
type ConnStats struct {
	Open    int64  // client connections open now
	Max     int64  // the cap (ServerConfig.MaxConns)
	Refused uint64 // connections over the cap, answered 503 (or closed, under TLS)
	// AcceptFailures are accepts that failed for lack of file descriptors or kernel memory,
	// each followed by a pause (see ServerConfig).
	AcceptFailures uint64
}

func (g *connGate) stats() ConnStats {
	return ConnStats{Open: g.open.Load(), Max: g.max, Refused: g.refused.Load(), AcceptFailures: g.failures.Load()}
}
