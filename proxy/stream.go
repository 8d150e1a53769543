package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// upConn is a connection to an endpoint checked out of its HostClient's pool.
type upConn struct {
	hc   *fasthttp.HostClient
	bufs *connBufs
	cc   any // the pool's *fasthttp.clientConn, a type that cannot be named outside fasthttp
	c    net.Conn
	br   *bufio.Reader // from bufs, once the request is written; owned by whoever holds u
}

// release gives the connection back to the pool when reuse is true and it is clean, and
// closes it otherwise, and the reader back to bufs. Clean: nothing is buffered beyond the
// response just read (what arrives later is caught before the next use, see attempt). It
// is a no-op on a released connection.
func (u *upConn) release(reuse bool) {
	if u.cc == nil {
		return
	}
	if u.br != nil {
		reuse = reuse && u.br.Buffered() == 0
		u.bufs.putReader(u.br)
	}
	if reuse {
		callWith(u.hc.ReleaseConn, u.cc)
	} else {
		callWith(u.hc.CloseConn, u.cc)
	}
	*u = upConn{}
}

// callWith calls f with v, whose dynamic type is f's parameter type. It lets code outside
// fasthttp hand a *fasthttp.clientConn back to the pool without naming its type.
func callWith[T any](f func(T), v any) { f(v.(T)) }

// The framings of a response body.
const (
	frameFixed   uint8 = iota // Content-Length
	frameChunked              // Transfer-Encoding: chunked
	frameClose                // until the endpoint closes the connection
)

// respStream streams a response body from an endpoint connection to the client: fasthttp's
// server reads it and writes each piece out (chunked, flushed piece by piece, when the length
// is not known), then calls Close, which gives the connection back to the pool if the body
// ended cleanly and closes it otherwise. Every Read extends the read deadline on the endpoint
// and, once data came, the write deadline on the client, by Config.StreamIdleTimeout, up to
// Config.RequestTimeout's end. A Read that fails breaks the body off: fasthttp's server then
// closes the client's connection, and the client sees a truncated body.
//
// Read and Close are called by the one goroutine serving the client connection; abort may be
// called concurrently by a drain, under the tracker's lock, which Close takes too (in remove)
// before it looks at aborted or recycles the stream.
type respStream struct {
	h        *Handler
	be       *backend
	up       upConn
	client   net.Conn
	idle     time.Duration
	deadline time.Time // Config.RequestTimeout's end; zero for none
	frame    uint8
	left     int64 // frameFixed: bytes to go; frameChunked: bytes to go in the current chunk
	keep     bool  // the connection may be reused once the body has ended
	eof      bool
	err      error

	closed  bool
	aborted atomic.Bool // set by abort, under the tracker's lock; read by a failing Read too
}

var streamPool = sync.Pool{New: func() any { return new(respStream) }}

// newRespStream takes over up, the connection to be, for a response body of h's framed by
// contentLength (as fasthttp's ResponseHeader.ContentLength reports it: -1 chunked, -2 until
// close).
func newRespStream(h *Handler, be *backend, up upConn, client net.Conn, deadline time.Time, contentLength int, keep bool) *respStream {
	s := streamPool.Get().(*respStream)
	*s = respStream{h: h, be: be, up: up, client: client, idle: h.cfg.StreamIdleTimeout, deadline: deadline, keep: keep}
	switch {
	case contentLength >= 0:
		s.frame, s.left = frameFixed, int64(contentLength)
	case contentLength == -1:
		s.frame = frameChunked
	default:
		s.frame, s.keep = frameClose, false
	}
	h.track.add(s)
	return s
}

// Read implements io.Reader.
func (s *respStream) Read(p []byte) (int, error) {
	if s.eof {
		return 0, io.EOF
	}
	if s.err != nil {
		return 0, s.err
	}
	if d := s.nextDeadline(); !d.IsZero() {
		_ = s.up.c.SetReadDeadline(d)
	}
	n, err := s.read(p)
	if err != nil && err != io.EOF {
		s.err = err
		if !s.aborted.Load() { // a drain breaking streams off at shutdown is no endpoint's fault
			s.h.bodyAborted(s.be, abortCause(err, s.deadline, time.Now()), err)
		}
	}
	if d := s.nextDeadline(); n > 0 && !d.IsZero() && s.client != nil {
		_ = s.client.SetWriteDeadline(d)
	}
	return n, err
}

// nextDeadline is the deadline of the stream's next step: StreamIdleTimeout from now, up to
// RequestTimeout's end; zero for none.
func (s *respStream) nextDeadline() time.Time {
	var d time.Time
	if s.idle > 0 {
		d = time.Now().Add(s.idle)
	}
	return sooner(s.deadline, d)
}

func (s *respStream) read(p []byte) (int, error) {
	br := s.up.br
	switch s.frame {
	case frameFixed:
		if s.left == 0 {
			s.eof = true
			return 0, io.EOF
		}
		if int64(len(p)) > s.left {
			p = p[:s.left]
		}
		n, err := br.Read(p)
		s.left -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err == nil && s.left == 0 {
			s.eof = true
			err = io.EOF
		}
		return n, err
	case frameChunked:
		if s.left == 0 {
			size, err := readChunkSize(br)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				if err := skipTrailer(br); err != nil {
					return 0, err
				}
				s.eof = true
				return 0, io.EOF
			}
			s.left = size
		}
		if int64(len(p)) > s.left {
			p = p[:s.left]
		}
		n, err := br.Read(p)
		s.left -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err == nil && s.left == 0 {
			err = readCRLF(br)
		}
		return n, err
	}
	n, err := br.Read(p)
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}

// Close implements io.Closer; fasthttp's server calls it once the body is written, or
// abandoned.
func (s *respStream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.h.track.remove(s) // after this, no abort can come: s is ours alone
	s.up.release(s.eof && s.keep && !s.aborted.Load())
	*s = respStream{}
	streamPool.Put(s)
	return nil
}

// abort breaks off the stream by closing the endpoint connection; the blocked Read fails.
// The tracker calls it under its lock, while s is still tracked.
func (s *respStream) abort() {
	s.aborted.Store(true)
	_ = s.up.c.Close()
}

// deliverUntilClose sends a response of unknown length to an HTTP/1.0 client, which cannot
// read chunked encoding: the body is delimited by closing the connection. fasthttp's server
// only writes chunked bodies, so the connection is hijacked and the response written here.
func (x *exchange) deliverUntilClose(s *respStream) {
	hdr := &x.ctx.Response.Header
	hdr.Del("Transfer-Encoding")
	hdr.SetConnectionClose()
	head := hdr.AppendBytes(nil) // rare path: allocates
	// fasthttp skips the hijack handler, silently, if the connection fails first: whoever
	// of the handler and this timer starts first owns the stream.
	var started atomic.Bool
	timer := time.AfterFunc(hijackWait, func() {
		if started.CompareAndSwap(false, true) {
			s.Close()
		}
	})
	x.ctx.HijackSetNoResponse(true)
	x.ctx.Hijack(func(c net.Conn) {
		timer.Stop()
		if !started.CompareAndSwap(false, true) {
			return
		}
		defer s.Close()
		s.client = c
		if _, err := c.Write(head); err != nil {
			return
		}
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		_, _ = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{s}, *bp)
	})
}

// Limits of the chunked decoder.
const maxTrailerLines = 64

var errBadChunk = errors.New("malformed chunked encoding")

// readChunkSize reads a chunk-size line ("1a2b;ext=1\r\n") and returns the size.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	line = bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, errBadChunk
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errBadChunk
		}
		n = n<<4 | int64(c)
	}
	return n, nil
}

// readCRLF reads the line end after a chunk's data.
func readCRLF(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if len(bytes.TrimRight(line, "\r\n")) != 0 {
		return errBadChunk
	}
	return nil
}

// skipTrailer reads and drops the trailer section after the last chunk: the proxy does not
// forward trailers.
func skipTrailer(br *bufio.Reader) error {
	for range maxTrailerLines {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
	return errBadChunk
}
