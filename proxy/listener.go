package proxy

import (
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Listener is a listener of the forwarding path with its accept rules (see connGate): at most
// ServerConfig.MaxConns client connections open at once, and a pause, not an error, when
// accept fails for lack of file descriptors or kernel memory. fasthttp's Serve returns for
// good on such an error, and the process with it; wrapped, it goes on serving the connections
// it has and accepts again once a descriptor is free.
//
// A connection over the cap is answered 503 "too many connections" and closed, as the event
// loops answer it; under TLS (quiet), it is closed without an answer, since a TLS handshake
// is what the cap is meant to save. The connection counts until it is closed, upgraded
// (tunnelled) ones included.
//
// Wrap the listener (after WrapListener, before any TLS layer) and give it to the goroutine
// engine's Serve; a LoopServer given a Listener counts its connections against the same cap.
type Listener struct {
	net.Listener
	gate   *connGate
	quiet  bool
	listen string

	once   sync.Once
	closed chan struct{}
}

// NewListener returns ln with the accept rules of cfg: MaxConns (0 means DefaultMaxConns())
// and Logger. quiet is for a listener with TLS above it: connections over the cap are closed
// without an answer.
func NewListener(ln net.Listener, cfg ServerConfig, quiet bool) *Listener {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Listener{Listener: ln, gate: newConnGate(orDefault(cfg.MaxConns, DefaultMaxConns()), log),
		quiet: quiet, listen: ln.Addr().String(), closed: make(chan struct{})}
}

// Accept returns the next connection under the cap, pausing while accept fails for lack of
// resources. It fails only when the listener is closed (or fails otherwise).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !outOfResources(err) {
				return nil, err
			}
			t := time.NewTimer(l.gate.failed(err, time.Now(), l.listen))
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		l.gate.accepted(time.Now(), l.listen)
		if !l.gate.enter() {
			if !l.quiet {
				// A new socket's send buffer is empty: the write does not wait.
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(tooManyConns)
			}
			_ = c.Close()
			continue
		}
		return &gatedConn{Conn: c, gate: l.gate}, nil
	}
}

// Close closes the listener, and ends a pause in Accept.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Unwrap returns the listener under l.
func (l *Listener) Unwrap() net.Listener { return l.Listener }

// Stats returns what the listener counted. Safe for concurrent use.
func (l *Listener) Stats() ConnStats { return l.gate.stats() }

// gatedConn is a connection counted by a gate until it is closed.
type gatedConn struct {
	net.Conn
	gate *connGate
	once sync.Once
}

// ReadFrom copies r out piece by piece (see copyOut).
func (c *gatedConn) ReadFrom(r io.Reader) (int64, error) { return copyOut(writeOnly[*gatedConn]{c}, r) }

func (c *gatedConn) Close() error {
	c.once.Do(c.gate.leave)
	return c.Conn.Close()
}
