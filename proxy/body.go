package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// How an exchange sends the request body.
const (
	bodyNone     uint8 = iota // no body
	bodyBuffered              // read whole before the first attempt (x.body): replayable
	bodyStreamed              // copied from the client as it arrives: sent once
)

// clientError marks a failure to read the client's request body, as opposed to a failure
// to write it upstream.
type clientError struct{ err error }

func (e *clientError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

var (
	errShortBody    = errors.New("request body shorter than its Content-Length")
	errBodyTooLarge = errors.New("request body larger than the upstream's max_request_body")
)

// copyBufs holds the buffers of streamed request bodies and tunnels.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyOut copies r to w through a pooled buffer, each piece written as it is read. The client
// connections' ReadFrom methods use it: fasthttp's server writes a streamed response body
// through a bufio.Writer, which hands the copy to its connection's ReadFrom while nothing is
// buffered. So the body goes out as it comes from the endpoint, not when 4 KiB have gathered
// (a trickle would wait, and a body broken off would lose what was held back).
func copyOut(w io.Writer, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(w, r, *bp)
}

// writeOnly is a connection with only its Write, so that io.CopyBuffer does not call its
// ReadFrom again. One pointer: it goes into an interface without an allocation.
type writeOnly[C io.Writer] struct{ c C }

func (w writeOnly[C]) Write(p []byte) (int, error) { return w.c.Write(p) }

// prepareBody decides how the request body is sent, and reads it whole when it is small
// enough to be replayed (Config.Retry.ReplayBodySize). A body the server already buffered
// (StreamRequestBody off) is always replayable.
func (x *exchange) prepareBody() error {
	req := &x.ctx.Request
	cl := req.Header.ContentLength()
	switch {
	case !req.IsBodyStream():
		if len(req.Body()) > 0 {
			x.body, x.bodyMode = append(x.body[:0], req.Body()...), bodyBuffered
		}
		return nil
	case cl == 0, cl == -2:
		return nil
	case cl > 0 && cl <= x.h.cfg.Retry.ReplayBodySize && !x.upgrade:
		r := clientReader{ctx: x, r: x.ctx.RequestBodyStream()}
		var err error
		if x.body, err = readGrowing(r, x.body[:0], cl); err != nil {
			return &clientError{err: err}
		}
		x.bodyMode, x.bodyWaited = bodyBuffered, true
		return nil
	}
	x.bodyMode = bodyStreamed
	return nil
}

// readGrowing appends exactly n bytes from r to b and returns it. The buffer grows as bytes
// arrive, never ahead of them by more than what it already holds (or 4 KiB), so that a client
// that declares a body and sends it slowly, or never, holds no more memory than it sent.
func readGrowing(r io.Reader, b []byte, n int) ([]byte, error) {
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), max(len(b), 4<<10)))
		}
		m, err := r.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return b, err
		}
	}
	return b, nil
}

// canResend reports whether the body can be sent again: there is none, it is buffered, or
// not a byte of the stream has been read yet.
func (x *exchange) canResend() bool {
	return x.bodyMode != bodyStreamed || !x.bodyTouched
}

// writeRequest writes the request header and body to bw, which writes to the endpoint
// connection c. A failure to read the client's body is a *clientError.
func (x *exchange) writeRequest(bw *bufio.Writer, c net.Conn) error {
	hdr := &x.ctx.Request.Header
	// Endpoints are always spoken to in HTTP/1.1, whatever the client speaks, so that their
	// connections stay alive; the client's version is restored for the server's own use.
	if !hdr.IsHTTP11() {
		proto := string(hdr.Protocol()) // HTTP/1.0 requests are rare; this allocates
		hdr.SetProtocol("HTTP/1.1")
		defer hdr.SetProtocol(proto)
	}
	x.head = x.appendHead(x.head[:0])
	if _, err := bw.Write(x.head); err != nil {
		return err
	}
	switch x.bodyMode {
	case bodyBuffered:
		_, err := bw.Write(x.body)
		return err
	case bodyStreamed:
		x.bodyTouched = true
		return x.copyBody(bw, c)
	}
	return nil
}

// copyBody streams the client's body to bw: exactly Content-Length bytes, or re-chunked when
// the client sent it chunked (chunks are flushed as they come, trailers are dropped).
func (x *exchange) copyBody(bw *bufio.Writer, c net.Conn) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	r := clientReader{ctx: x, r: x.ctx.RequestBodyStream()}
	idle := x.h.cfg.StreamIdleTimeout
	cl := int64(x.ctx.Request.Header.ContentLength())
	chunked := cl < 0
	var sent int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			sent += int64(n)
			if !chunked && sent > cl {
				return &clientError{err: errors.New("request body longer than its Content-Length")}
			}
			if max := x.h.cfg.MaxRequestBody; max > 0 && sent > max {
				return &clientError{err: errBodyTooLarge} // before a byte over it goes upstream
			}
			_ = c.SetWriteDeadline(sooner(x.deadline, time.Now().Add(idle)))
			if werr := writeData(bw, buf[:n], chunked); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if chunked {
		_, err := bw.WriteString("0\r\n\r\n")
		return err
	}
	if sent != cl {
		return &clientError{err: fmt.Errorf("%w: %d of %d bytes", errShortBody, sent, cl)}
	}
	return nil
}

// writeData writes p as it is, or as one chunk flushed at once.
func writeData(bw *bufio.Writer, p []byte, chunked bool) error {
	if !chunked {
		_, err := bw.Write(p)
		return err
	}
	var size [16]byte
	bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16)) //nolint:errcheck // sticky: seen by Flush
	bw.WriteString("\r\n")                                   //nolint:errcheck
	bw.Write(p)                                              //nolint:errcheck
	bw.WriteString("\r\n")                                   //nolint:errcheck
	return bw.Flush()
}

// clientReader reads the client's request body, extending the client connection's read
// deadline by Config.StreamIdleTimeout (up to Config.RequestTimeout's end) before each read,
// and marks its errors as *clientError.
type clientReader struct {
	ctx *exchange
	r   io.Reader
}

func (r clientReader) Read(p []byte) (int, error) {
	if c := r.ctx.ctx.Conn(); c != nil {
		_ = c.SetReadDeadline(sooner(r.ctx.deadline, time.Now().Add(r.ctx.h.cfg.StreamIdleTimeout)))
	}
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientError{err: err}
	}
	return n, err
}
