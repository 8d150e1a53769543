package proxy

import (
	"bufio"
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// maxStaleRetries bounds how many pooled connections one attempt may find closed by the
// endpoint before it gives up (see attempt).
const maxStaleRetries = 2

// idleCheck is how long a pooled connection may sit idle before it is checked for being
// closed, or for bytes nobody asked for, before a request goes out on it: below the idle
// timeouts endpoints use (seconds), and above the time a connection waits in the pool under
// load, even spread over thousands of endpoints, so that the check (a system call) is rare
// there. A 408 met on a connection idle for less is caught after the fact (attempt).
const idleCheck = time.Second

// smallBody is the largest response body (with a Content-Length) read whole during the
// attempt: the connection goes back to the pool before the client is written to, and a body
// cut short is still a failed attempt, open to a retry. Larger bodies are streamed.
const smallBody = 16 << 10

// maxInterim bounds the 1xx responses skipped before the final one.
const maxInterim = 16

var errInterim = errors.New("too many interim (1xx) responses")

// attempt sends the request to be and reads the response header (and a small body). On
// success, x.ctx.Response holds the response and x.up the connection if its body is still to
// be read. On failure the connection is gone.
//
// fasthttp's HostClient.Do cannot be used here: it reads the whole response under a single
// deadline (ReadTimeout spans the body, which kills long streams), it cannot hand over the
// connection of a 101 response, and it hides whether a failure happened before a byte was
// sent. So the attempt runs the exchange itself over the HostClient's pool (AcquireConn,
// ReleaseConn, CloseConn), with the Transport's buffers (connBufs) and fasthttp's header codec.
func (x *exchange) attempt(be *backend, start time.Time) result {
	var deadline time.Time
	if t := x.h.cfg.Retry.PerTryTimeout; t > 0 {
		deadline = start.Add(t)
	}
	for stale := 0; ; stale++ {
		cc, err := be.hc.AcquireConn(0, false)
		if err != nil {
			return result{fail: classify(err), err: err}
		}
		x.up = upConn{hc: be.hc, bufs: be.bufs, cc: cc, c: cc.Conn()}
		reused := cc.CreatedTime().Before(start)
		// A pooled connection the endpoint closed while it sat idle says nothing about the
		// endpoint: take another. A request that may be sent twice whatever happens to it on
		// the way (idempotent, its body not streamed) just tries, and goes again on the
		// first-byte failure such a connection gives; any other is sent only on a connection
		// seen open. So is any request on a connection idle for idleCheck or longer: an
		// endpoint that answers an idle connection with a 408 before closing it leaves a
		// response on it that nobody asked for, which would be taken for this request's.
		repeatable := x.idempotent && x.bodyMode != bodyStreamed
		check := !repeatable || start.Sub(cc.LastUseTime()) >= idleCheck
		if reused && check && stale < maxStaleRetries && !connAlive(x.up.c) {
			x.up.release(false)
			continue
		}
		r := x.roundTrip(start, deadline)
		if reused && repeatable && stale < maxStaleRetries {
			if r.fail == failReset && isStale(r.err) {
				continue
			}
			// The same 408, had it come in after the check, or on a connection too recently
			// used to be checked: it is not the endpoint's answer to this request, which is
			// sent again on another connection (this one is closed: roundTrip kept it out of
			// the pool).
			if r.fail == failNone && r.status == fasthttp.StatusRequestTimeout {
				x.discard()
				continue
			}
		}
		return r
	}
}

// roundTrip writes the request on x.up and reads the response header, and a small body. Unless
// the request body streamed for a while, the clock is read once, at start.
func (x *exchange) roundTrip(start, deadline time.Time) result {
	cfg := &x.h.cfg
	up := &x.up
	fail := func(err error) result {
		up.release(false)
		var ce *clientError
		if errors.As(err, &ce) {
			return result{fail: failClient, err: err}
		}
		return result{fail: classify(err), err: err}
	}

	// A request without a streamed body is sent at start: the response header deadline,
	// counted from start, bounds its write too, as a write still going on then would leave
	// the header read no time anyway (and fail the same way, as a timeout). One SetDeadline
	// then arms the connection's single timer for both directions.
	streamed := x.bodyMode == bodyStreamed
	oneDeadline := !streamed && cfg.ResponseHeaderTimeout <= cfg.StreamIdleTimeout
	if oneDeadline {
		_ = up.c.SetDeadline(earliest(deadline, start.Add(cfg.ResponseHeaderTimeout)))
	} else {
		_ = up.c.SetWriteDeadline(earliest(deadline, start.Add(cfg.StreamIdleTimeout)))
	}
	bw := up.bufs.writer(up.c)
	err := x.writeRequest(bw, up.c)
	if err == nil {
		err = bw.Flush()
	}
	up.bufs.putWriter(bw)
	if err != nil {
		return fail(err)
	}
	sent := start
	if streamed {
		x.bodyDone = true
		sent = time.Now()
		if t := cfg.Retry.PerTryTimeout; t > 0 {
			deadline = sent.Add(t) // an upload takes what it takes
		}
	}

	// One deadline for the header and a small body.
	if !oneDeadline {
		_ = up.c.SetReadDeadline(earliest(deadline, sent.Add(cfg.ResponseHeaderTimeout)))
	}
	up.br = up.bufs.reader(up.c)
	resp := &x.ctx.Response
	for i := 0; ; i++ {
		if err := resp.Header.Read(up.br); err != nil {
			return fail(err)
		}
		st := resp.Header.StatusCode()
		if st >= 200 || st == fasthttp.StatusSwitchingProtocols {
			break
		}
		if st < 100 || i == maxInterim {
			return fail(errInterim)
		}
		// 100 Continue (the client's Expect was answered by the server) and 103 Early
		// Hints are dropped: fasthttp's server cannot send interim responses.
	}
	status := resp.Header.StatusCode()
	// A 408 may be an answer to no request of ours (see attempt), and whatever follows it on
	// the connection could be taken for the next request's: the connection is not reused.
	x.keep = !resp.Header.ConnectionClose() && status != fasthttp.StatusRequestTimeout
	if !resp.Header.IsHTTP11() {
		// An HTTP/1.0 endpoint closes unless it said keep-alive (fasthttp folded that into
		// ConnectionClose); the client is answered in HTTP/1.1 all the same.
		resp.Header.SetProtocol([]byte("HTTP/1.1"))
	}
	switching := status == fasthttp.StatusSwitchingProtocols
	if switching && !x.upgrade {
		return fail(errors.New("101 response to a request that asked for no upgrade"))
	}
	cleanResponse(&resp.Header, switching, &x.dropped)
	if switching {
		return result{status: status}
	}

	cl := resp.Header.ContentLength()
	switch {
	case x.ctx.IsHead() || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified:
		// No body, whatever the header says.
		up.release(x.keep && cl != -2)
	case cl >= 0 && cl <= smallBody:
		if err := readBody(up.br, resp, cl); err != nil {
			return fail(err)
		}
		up.release(x.keep)
	}
	return result{status: status}
}

// readBody appends exactly n bytes from br to the response body.
func readBody(br *bufio.Reader, resp *fasthttp.Response, n int) error {
	for n > 0 {
		p, err := br.Peek(min(n, br.Size()))
		if len(p) == 0 && err != nil {
			return err
		}
		resp.AppendBody(p)
		if _, err := br.Discard(len(p)); err != nil {
			return err
		}
		n -= len(p)
	}
	return nil
}

// earliest returns the earlier of a deadline that may be zero (none) and t.
func earliest(deadline, t time.Time) time.Time {
	if !deadline.IsZero() && deadline.Before(t) {
		return deadline
	}
	return t
}
