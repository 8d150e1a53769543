package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// hijackWait bounds the time between handing a 101 response to the server and the server
// starting the hijack handler. fasthttp skips the handler when writing the 101 fails, and
// says nothing: past this, the tunnel is given up and its endpoint connection closed.
const hijackWait = 30 * time.Second

// reserveTunnel takes one of Config.MaxTunnels for an upgrade request, before its attempts.
// It fails while draining.
func (x *exchange) reserveTunnel() bool {
	h := x.h
	if h.track.isDraining() {
		return false
	}
	if n := h.tunnels.Add(1); h.cfg.MaxTunnels >= 0 && n > int64(h.cfg.MaxTunnels) {
		h.tunnels.Add(-1)
		return false
	}
	x.upgrade = true
	return true
}

// releaseTunnel gives back the reservation of an upgrade request that did not upgrade.
func (x *exchange) releaseTunnel() {
	if x.upgrade {
		x.upgrade = false
		x.h.tunnels.Add(-1)
	}
}

// startTunnel hands the client connection and the endpoint connection of a 101 response to
// a tunnel, which copies bytes both ways once the server has written the 101 and hijacked the
// client connection.
func (x *exchange) startTunnel() {
	h := x.h
	t := &tunnel{h: h, up: x.up, idle: h.cfg.TunnelIdleTimeout}
	x.up = upConn{}
	x.upgrade = false // the reservation is the tunnel's now
	h.track.add(t)
	if h.metrics != nil {
		h.metrics.tunnels.Inc()
	}
	t.timer = time.AfterFunc(hijackWait, t.giveUp)
	x.ctx.Hijack(t.run)
}

// tunnel is one upgraded connection: the client's (hijacked from the server) and the
// endpoint's, with bytes copied both ways until either side closes or both stay silent for
// TunnelIdleTimeout. run owns both connections; abort may be called concurrently by a drain.
type tunnel struct {
	h     *Handler
	up    upConn
	idle  time.Duration
	timer *time.Timer

	started atomic.Bool  // run or giveUp has taken the tunnel
	done    atomic.Bool  // shut: the copies must stop
	last    atomic.Int64 // UnixNano of the last byte either way

	mu      sync.Mutex
	client  net.Conn // set by run before it starts copying
	aborted bool
}

// run is the hijack handler: it tunnels until either side is done. The server closes the
// client connection after it returns.
func (t *tunnel) run(client net.Conn) {
	t.timer.Stop()
	if !t.started.CompareAndSwap(false, true) {
		return // given up already
	}
	t.mu.Lock()
	t.client = client
	aborted := t.aborted
	t.mu.Unlock()
	if !aborted {
		t.last.Store(time.Now().UnixNano())
		done := make(chan struct{})
		go func() {
			defer close(done)
			t.copy(t.up.c, client, client) // client to endpoint
			t.shut()
		}()
		t.copy(client, t.up.br, t.up.c) // endpoint to client, bytes sent along with the 101 first
		t.shut()
		<-done
	}
	t.finish()
}

// giveUp ends a tunnel whose hijack handler never ran.
func (t *tunnel) giveUp() {
	if t.started.CompareAndSwap(false, true) {
		t.finish()
	}
}

// finish releases the tunnel's resources, once.
func (t *tunnel) finish() {
	h := t.h
	h.track.remove(t)
	t.up.release(false)
	h.tunnels.Add(-1)
	if h.metrics != nil {
		h.metrics.tunnels.Dec()
	}
}

// shut unblocks both copies: the endpoint connection is closed; the client connection, which
// the server owns and closes itself, gets a deadline in the past.
func (t *tunnel) shut() {
	t.done.Store(true)
	_ = t.up.c.Close()
	t.mu.Lock()
	if t.client != nil {
		_ = t.client.SetDeadline(time.Unix(1, 0))
	}
	t.mu.Unlock()
}

// abort breaks the tunnel off; called by a drain, under the tracker's lock.
func (t *tunnel) abort() {
	t.mu.Lock()
	t.aborted = true
	t.mu.Unlock()
	t.shut()
}

// copy copies src (which reads srcConn) to dst until either fails or the tunnel is shut. A
// read that times out while the other direction moved within the idle time is retried, so a
// one-way stream stays open.
func (t *tunnel) copy(dst net.Conn, src io.Reader, srcConn net.Conn) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		if t.idle > 0 {
			_ = srcConn.SetReadDeadline(time.Now().Add(t.idle))
		}
		// Checked after the deadline is set: a shut from now on sets its own past deadline
		// after ours, and a shut before is seen here.
		if t.done.Load() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.last.Store(time.Now().UnixNano())
			if t.idle > 0 {
				_ = dst.SetWriteDeadline(time.Now().Add(t.idle))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			continue
		}
		if err != nil {
			if isTimeout(err) && t.idle > 0 && !t.done.Load() &&
				time.Since(time.Unix(0, t.last.Load())) < t.idle {
				continue
			}
			return
		}
	}
}
