package sidecar

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/proxy"
)

// listener is one bound address with its fasthttp server. An upstream listener routes to the
// upstream its pointer holds; the host_routing listener routes by Host through its table. A
// reload swaps the pointers; the server and its connections stay.
type listener struct {
	addr     string            // as configured
	tls      *config.TLSServer // as configured; a reload may not change it in place
	timeouts listenerTimeouts  // likewise
	ln       net.Listener
	srv      *fasthttp.Server
	loop     *proxy.LoopServer // engine event_loop, plaintext listeners: serves ln, srv its fallback
	conns    *proxy.Listener   // ln, or under its TLS: the connection cap of both engines
	requests atomic.Uint64     // requests started, for the drain's quiet wait

	target atomic.Pointer[upstream]             // upstream listener
	hosts  atomic.Pointer[map[string]*upstream] // host_routing listener: lower-case host → upstream

	done chan struct{} // closed when Serve returned
}

// listenerTimeouts are the settings of an upstream that belong to its listener: its timeouts
// and limits.
type listenerTimeouts struct {
	readHeader, idle time.Duration
	maxHeaderBytes   int
	maxConns         int
}

func timeoutsOf(uc config.Upstream) listenerTimeouts {
	t := uc.Timeouts
	return listenerTimeouts{readHeader: t.ReadHeader, idle: t.Idle, maxHeaderBytes: t.MaxHeaderBytes,
		maxConns: uc.MaxConnections}
}

// sameSettings reports whether uc asks for exactly what l already is.
func (l *listener) sameSettings(uc config.Upstream) bool {
	return l.addr == uc.Listen && reflect.DeepEqual(l.tls, uc.TLS) && l.timeouts == timeoutsOf(uc)
}

func (s *Sidecar) bindListeners(cfg *config.Config) error {
	for _, uc := range cfg.Upstreams {
		if uc.Listen == "" {
			continue
		}
		l, err := s.newListener(uc.Listen, uc.TLS, timeoutsOf(uc))
		if err != nil {
			return fmt.Errorf("upstream %q: listen %s: %w", uc.Name, uc.Listen, err)
		}
		l.target.Store(s.upstreams[uc.Name])
		s.listeners[uc.Name] = l
	}
	if hr := cfg.HostRouting; hr != nil {
		// The shared listener has the default timeouts; no upstream's own apply to it.
		l, err := s.newListener(hr.Listen, hr.TLS, listenerTimeouts{maxConns: hr.MaxConnections})
		if err != nil {
			return fmt.Errorf("host_routing: listen %s: %w", hr.Listen, err)
		}
		s.hostRoute = l
		s.publishHostsLocked()
	}
	return nil
}

// BindError is a listener address that could not be bound: in use, not an address of this
// host, not permitted. The configuration chose the address, so the binary reports it as a
// configuration error at the field that set Addr (config.Config.ListenError).
type BindError struct {
	Addr string // as configured
	Err  error  // from net.Listen
}

func (e *BindError) Error() string { return e.Err.Error() }
func (e *BindError) Unwrap() error { return e.Err }

// listenTCP binds addr; a failure is a *BindError.
func listenTCP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &BindError{Addr: addr, Err: err}
	}
	return ln, nil
}

func (s *Sidecar) newListener(addr string, tc *config.TLSServer, t listenerTimeouts) (*listener, error) {
	ln, err := listenTCP(addr)
	if err != nil {
		return nil, err
	}
	scfg := proxy.ServerConfig{
		ReadHeaderTimeout:    t.readHeader,
		IdleTimeout:          t.idle,
		MaxRequestHeaderSize: t.maxHeaderBytes,
		MaxConns:             t.maxConns,
		Logger:               s.log,
	}
	// The cap and the accept pacing sit under TLS: a connection over the cap is closed
	// before its handshake. The event loops take the cap from this Listener too.
	conns := proxy.NewListener(proxy.WrapListener(ln), scfg, tc != nil)
	ln = conns
	if tc != nil {
		cr, err := newCertReloader(tc.CertFile, tc.KeyFile, s.log)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: cr.getCertificate, MinVersion: tls.VersionTLS12})
	}
	l := &listener{addr: addr, tls: tc, timeouts: t, ln: ln, conns: conns, done: make(chan struct{})}
	l.srv, err = proxy.NewServer(l.serve, scfg)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	if s.engine.Kind == "event_loop" && tc == nil {
		// TLS listeners stay on goroutines: crypto/tls needs a goroutine per connection.
		l.loop, err = proxy.NewLoopServer(l.loopRoute, l.srv, scfg, s.engine.Loops)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	return l, nil
}

// loopRoute is serve for the event loop: it returns the handler of a request, or nil to
// hand the request to the goroutine path (no upstream for its host, or TLS to the
// endpoints, which the loop does not speak).
func (l *listener) loopRoute(ctx *fasthttp.RequestCtx) *proxy.Handler {
	u := l.route(ctx)
	if u == nil || u.cfg.UpstreamTLS != nil {
		return nil
	}
	l.requests.Add(1)
	return u.handler
}

// serve routes one request to the current upstream of this listener.
func (l *listener) serve(ctx *fasthttp.RequestCtx) {
	l.requests.Add(1)
	if u := l.route(ctx); u != nil {
		u.handler.ServeFastHTTP(ctx)
		return
	}
	if proxy.RefuseHTTP2(ctx) { // an HTTP/2 preface has no Host to route by
		return
	}
	ctx.Error("ringside: no upstream for this host\n", fasthttp.StatusNotFound)
}

// route returns the upstream for a request: the listener's own, or on host_routing the one
// its authority names (port dropped, case folded), or nil. The authority is the one the
// request is forwarded with: an absolute-form target's, else the Host header.
func (l *listener) route(ctx *fasthttp.RequestCtx) *upstream {
	if u := l.target.Load(); u != nil {
		return u
	}
	m := l.hosts.Load()
	if m == nil {
		return nil
	}
	host := proxy.RequestAuthority(&ctx.Request.Header)
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	// The map is keyed by lower-case host; lowering into a stack buffer and looking up with
	// string(bytes) allocates nothing (for hosts up to 253 bytes, the DNS limit).
	var buf [253]byte
	return (*m)[string(appendLower(buf[:0], host))]
}

// publishHostsLocked rebuilds the host_routing table; s.mu is held (or New is running).
func (s *Sidecar) publishHostsLocked() {
	if s.hostRoute == nil {
		return
	}
	m := make(map[string]*upstream)
	for _, u := range s.upstreams {
		for _, h := range u.cfg.Hosts {
			m[strings.ToLower(h)] = u
		}
	}
	s.hostRoute.hosts.Store(&m)
}

// serveListener starts l's server; s.mu is held.
func (s *Sidecar) serveListener(l *listener) {
	s.log.Info("serving", zap.String("listen", l.ln.Addr().String()),
		zap.Int64("max_connections", l.conns.Stats().Max), zap.Bool("event_loop", l.loop != nil))
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		defer close(l.done)
		serve := l.srv.Serve
		if l.loop != nil {
			serve = l.loop.Serve
		}
		if err := serve(l.ln); err != nil {
			s.fail(fmt.Errorf("listener %s: %w", l.addr, err))
		}
	}()
}

// shutdown stops accepting, lets in-flight requests finish until ctx ends, and closes the rest.
func (l *listener) shutdown(ctx context.Context, log *zap.Logger) {
	var loopErr error
	var wg sync.WaitGroup
	if l.loop != nil {
		wg.Go(func() { loopErr = l.loop.Shutdown(ctx) })
	}
	err := l.srv.ShutdownWithContext(ctx)
	wg.Wait()
	if l.loop != nil {
		_ = l.ln.Close() // the loops only borrow it; fasthttp closes it when it serves
	}
	if err := errors.Join(err, loopErr); err != nil {
		log.Warn("listener shutdown: connections cut at the end of the grace period",
			zap.String("listen", l.addr), zap.Error(err))
	}
}

func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
