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
	if !aborted && t.sendBuffered(client) {
		t.last.Store(time.Now().UnixNano())
		done := make(chan struct{})
		go func() {
			defer close(done)
			t.copy(t.up.c, client, client) // client to endpoint
			t.shut()
		}()
		t.copy(client, t.up.c, t.up.c) // endpoint to client
		t.shut()
		<-done
	}
	t.finish()
}

// sendBuffered passes on the bytes the endpoint sent along with the 101, which its reader
// holds, and gives the reader back to its pool: from here on the tunnel reads the socket
// itself, and an idle tunnel holds no reader. It reports whether the client took them.
func (t *tunnel) sendBuffered(client net.Conn) bool {
	br := t.up.br
	if br == nil {
		return true
	}
	ok := true
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if t.idle > 0 {
			_ = client.SetWriteDeadline(time.Now().Add(t.idle))
		}
		// A shut that came before the deadline was set would be undone by it (as in copy).
		if ok = !t.done.Load(); ok {
			_, err := client.Write(b)
			ok = err == nil
		}
	}
	t.up.bufs.putReader(br)
	t.up.br = nil
	return ok
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

// tunnelQuietBuf is the buffer a tunnel's copy reads into while its traffic is light. An idle
// tunnel waits in a read in each direction, holding its buffer: 2 × 2 KiB with this one
// instead of 2 × 32 KiB. A read that fills it takes a 32 KiB copy buffer for the reads that
// follow, until one is light again, so a bulk transfer still moves 32 KiB a call.
const tunnelQuietBuf = 2 << 10

var quietBufs = sync.Pool{New: func() any { b := make([]byte, tunnelQuietBuf); return &b }}

// copy copies src (which reads srcConn) to dst until either fails or the tunnel is shut. A
// read that times out while the other direction moved within the idle time is retried, so a
// one-way stream stays open.
func (t *tunnel) copy(dst net.Conn, src io.Reader, srcConn net.Conn) {
	qp := quietBufs.Get().(*[]byte)
	defer quietBufs.Put(qp)
	var bp *[]byte // a copy buffer, while reads fill the quiet one
	defer func() {
		if bp != nil {
			copyBufs.Put(bp)
		}
	}()
	buf := *qp
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
			switch {
			case n == len(buf) && bp == nil:
				bp = copyBufs.Get().(*[]byte)
				buf = *bp
			case n < tunnelQuietBuf && bp != nil:
				copyBufs.Put(bp)
				bp, buf = nil, *qp
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
