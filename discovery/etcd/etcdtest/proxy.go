package etcdtest

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// proxy is a TCP relay from the server's public client address to etcd's own listener. Clients
// only ever see the public address, so cutting the relay is how Stop takes etcd away from them
// at once, like a crash or a network failure: every connection is reset, and new ones are
// refused until the relay listens again.
//
// Without it, stopping an embedded etcd shuts its gRPC server down gracefully, which may wait
// for clients to end their long-lived streams (watches, lease keep-alives) up to etcd's request
// timeout: Stop was seen to take 6s, and the clients then reconnected late, after gRPC's
// backoff had grown meanwhile.
//
// A proxy is safe for concurrent use.
type proxy struct {
	addr   string // public address, the same across restarts
	target string // etcd's client listener

	mu    sync.Mutex
	l     net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and the relays
}

// listen starts relaying from p.addr to p.target.
func (p *proxy) listen() error {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("proxy listen on %s: %w", p.addr, err)
	}
	p.mu.Lock()
	p.l = l
	p.conns = make(map[net.Conn]struct{})
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(l)
	return nil
}

func (p *proxy) accept(l net.Listener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // the listener was closed by cut
		}
		p.wg.Add(1)
		go p.relay(c)
	}
}

// relay copies between c and a new connection to etcd until either side ends or cut closes
// them.
func (p *proxy) relay(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	var copies sync.WaitGroup
	copies.Add(2)
	pipe := func(dst, src net.Conn) {
		defer copies.Done()
		_, _ = io.Copy(dst, src)
		// One direction ended: end both, so the other copy returns too.
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	copies.Wait()
	p.untrack(c, up)
}

// track registers a relayed pair, unless the proxy was cut meanwhile.
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l == nil {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

// cut stops listening, resets every relayed connection and waits for the relays to end. It is
// idempotent.
func (p *proxy) cut() {
	p.mu.Lock()
	l := p.l
	p.l = nil
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as from a crashed host, not an orderly close
		}
		c.Close()
	}
	p.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
	p.wg.Wait()
}
