package proxy

import (
	"bufio"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"
)

// maxStaleRetries bounds how many pooled connections one attempt may find closed by the
// endpoint after it sent the request on them (see attempt).
const maxStaleRetries = 2

// maxDirtyConns bounds how many pooled connections one attempt may find closed or unclean
// before it sends anything, and close, before it gives up as if the pool were full: each such
// connection is closed, so the pool empties long before this in practice.
const maxDirtyConns = 64

var errNoCleanConn = errors.New("no clean pooled connection")

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
	deadline := x.deadline
	if t := x.h.cfg.Retry.PerTryTimeout; t > 0 {
		deadline = sooner(deadline, start.Add(t))
	}
	if x.bodyMode == bodyStreamed {
		// The slot is held until the body is sent and the response header is in.
		if !be.holdStreaming() {
			return result{fail: failPoolFull, err: errStreamingFull}
		}
		defer be.streaming.Add(-1)
	}
	dirty := 0
	for stale := 0; ; stale++ {
		cc, err := be.hc.AcquireConn(0, false)
		if err != nil {
			return result{fail: classify(err), err: err}
		}
		x.up = upConn{hc: be.hc, bufs: be.bufs, cc: cc, c: cc.Conn()}
		reused := !cc.LastUseTime().IsZero() // fasthttp sets it when a connection goes back to the pool
		// A pooled connection is used only when it is known clean: nothing arrived on it since
		// its last response ended (see upConn.release for what was buffered then). Bytes
		// nobody asked for - a second response, a body on a HEAD, 204 or 304, more than the
		// Content-Length said - would be taken for this request's answer; an end of stream
		// means the endpoint closed it while it sat idle, which says nothing about the
		// endpoint. Either way it is closed and another taken, before anything is sent.
		if reused && !connAlive(x.up.c) {
			x.up.release(false)
			if dirty++; dirty == maxDirtyConns {
				return result{fail: failPoolFull, err: errNoCleanConn}
			}
			stale--
			continue
		}
		r := x.roundTrip(start, deadline)
		// The endpoint may still close a connection just after the check. A request that may
		// be sent twice whatever happens to it on the way (idempotent, its body not streamed)
		// goes again on the first-byte failure that gives.
		repeatable := x.idempotent && x.bodyMode != bodyStreamed
		if reused && repeatable && stale < maxStaleRetries {
			if r.fail == failReset && !r.afterHead && isStale(r.err) {
				continue
			}
			// A 408 that came in after the check (an endpoint answers an idle connection with
			// one before closing it): it is not the endpoint's answer to this request, which is
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
		deadline = x.deadline
		if t := cfg.Retry.PerTryTimeout; t > 0 {
			deadline = sooner(deadline, sent.Add(t)) // an upload takes what it takes
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
	// From here on a failure is not a stale connection's: a response header came.
	failAfterHead := func(err error) result {
		r := fail(err)
		r.afterHead = true
		return r
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
		return failAfterHead(errors.New("101 response to a request that asked for no upgrade"))
	}
	cleanResponse(&resp.Header, switching, &x.dropped)
	if switching {
		return result{status: status}
	}

	cl := resp.Header.ContentLength()
	switch classifyBody(x.ctx.IsHead(), status, cl) {
	case respNoBody:
		up.release(x.keep && cl != -2)
	case respSmall:
		if err := readBody(up.br, resp, cl); err != nil {
			return failAfterHead(err)
		}
		up.release(x.keep)
	case respFirstByte:
		// Under the header's deadline.
		if err := firstByte(up.br); err != nil {
			return failAfterHead(err)
		}
	}
	return result{status: status}
}

// firstByte waits for the first byte of a response body. An end of stream there is a body cut
// short, not a connection found closed (see isStale).
func firstByte(br *bufio.Reader) error {
	_, err := br.Peek(1)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
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

// sooner returns the earlier of two deadlines, either of which may be zero (none).
func sooner(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return earliest(b, a)
}
