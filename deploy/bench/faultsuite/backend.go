package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// backend is a raw-socket HTTP/1.1 server on 127.0.0.1 that answers plain requests (path
// /ok) correctly and requests for /fault... with its fault. Every answer it gives carries
// the request's id (header and body pattern), so a client can recognise its own.
//
// Close stops it: it closes the listener and every connection (a stalled exchange ends
// there) and waits for its goroutines.
type backend struct {
	fault     fault
	ln        net.Listener
	crossings *crossings // where the requests that crossed extra bytes are noted

	quit chan struct{}
	wg   sync.WaitGroup // the accept loop and one per connection

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// The slow reader takes a request body slowReadChunk bytes at a time, slowReadPause apart.
const (
	slowReadChunk = 4 << 10
	slowReadPause = 8 * time.Millisecond
)

// slowReadTime is how long the slow reader takes over a body of n bytes.
func slowReadTime(n int) time.Duration {
	return time.Duration((n+slowReadChunk-1)/slowReadChunk) * slowReadPause
}

// startBackend listens on a fresh loopback port and serves f until Close.
func startBackend(f fault, cr *crossings) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	stampArrivals(ln.(*net.TCPListener))
	b := &backend{fault: f, crossings: cr, ln: ln, quit: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	b.wg.Add(1)
	go b.acceptLoop()
	return b, nil
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// Close is safe to call once.
func (b *backend) Close() {
	close(b.quit)
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *backend) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return // closed
		}
		b.mu.Lock()
		select {
		case <-b.quit:
			b.mu.Unlock()
			c.Close()
			return
		default:
		}
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go b.serveConn(c)
	}
}

// backendConn is one connection a backend serves, and what its last exchange left: the
// time it sent bytes beyond a response, if it did.
type backendConn struct {
	b       *backend
	c       net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	extraAt time.Time // when the last extra bytes went out; zero when none are pending
	// behind is set once a request crossed extra bytes: the proxy, if it kept the
	// connection, is one answer behind on it from then on.
	behind bool
}

// serveConn serves requests on c until the peer closes, a fault ends the connection, or
// Close.
func (b *backend) serveConn(c net.Conn) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
		c.Close()
	}()
	bc := &backendConn{b: b, c: c, br: bufio.NewReader(c), bw: bufio.NewWriterSize(c, 32<<10)}
	for bc.serveOne() {
	}
}

// serveOne reads one request and answers it, and reports whether the connection stays open.
func (bc *backendConn) serveOne() bool {
	b, bw := bc.b, bc.bw
	var at time.Time // when this request arrived, if it follows extra bytes
	pending := !bc.extraAt.IsZero()
	switch {
	case pending && bc.br.Buffered() > 0:
		at = bc.extraAt // it was here already
	case pending:
		var err error
		if at, err = arrival(bc.c); err != nil {
			return false
		}
	}
	h, err := readHead(bc.br)
	if err != nil {
		return false
	}
	if pending && at.IsZero() {
		at = time.Now() // no receive stamp: dated when read
	}
	method, target, _ := strings.Cut(h.first, " ")
	target, _, _ = strings.Cut(target, " ")
	path, query, _ := strings.Cut(target, "?")
	id := h.get(idHeader)
	if pending {
		bc.behind = b.crossings.observe(id, at.Sub(bc.extraAt)) || bc.behind
		bc.extraAt = time.Time{}
	}
	if bc.behind {
		// The proxy took the extra bytes for the answer to this request: from its side,
		// the answer this request gets is extra bytes again.
		defer func() { bc.extraAt = time.Now() }()
	}
	q, _ := url.ParseQuery(query)
	n, _ := strconv.Atoi(q.Get("len"))
	faulty := strings.HasPrefix(path, "/fault")

	body, _, err := bodyReader(bc.br, h, false, false)
	if err != nil {
		return false
	}
	bodyOK, err := b.readBody(body, id, faulty && b.fault == faultSlowReader)
	if err != nil {
		return false
	}
	if !bodyOK {
		// The request body is not this request's: another request's bytes crossed.
		return writeResponseHead(bw, 422, "Unprocessable Entity", id, 0, "X-Body-Mismatch: 1") == nil && bw.Flush() == nil
	}
	if !faulty || b.fault == faultNone || b.fault == faultSlowReader {
		return writeOK(bw, id, n, method == "HEAD") == nil && bw.Flush() == nil
	}
	return bc.misbehave(method, path, id, n)
}

// writeOK writes the correct 200 to id: n bytes of its pattern (none for HEAD).
func writeOK(w io.Writer, id string, n int, headOnly bool) error {
	if err := writeResponseHead(w, 200, "OK", id, n); err != nil || headOnly {
		return err
	}
	_, err := w.Write(patternBody(id, n))
	return err
}

// misbehave answers a /fault request with the backend's fault. It reports whether the
// connection stays open for another request.
func (bc *backendConn) misbehave(method, path, id string, n int) bool {
	bw := bc.bw
	switch bc.b.fault {
	case faultSecondResp:
		if writeOK(bw, id, n, false) != nil {
			return false
		}
		return bc.sendExtra(id, true)
	case faultHeadlessBody:
		var err error
		switch {
		case method == "HEAD":
			err = writeResponseHead(bw, 200, "OK", id, len(strayResponse(id)))
		case strings.HasSuffix(path, "/204"):
			err = writeResponseHead(bw, 204, "No Content", id, -1)
		default:
			err = writeResponseHead(bw, 304, "Not Modified", id, -1, `ETag: "x"`)
		}
		if err != nil {
			return false
		}
		return bc.sendExtra(id, n%2 == 0) // the body a head-only response must not have
	case faultUndercount:
		if writeOK(bw, id, n, false) != nil {
			return false
		}
		return bc.sendExtra(id, n%2 == 0) // beyond the declared length
	case faultStallHeadSmall, faultStallHeadBig:
		if writeResponseHead(bw, 200, "OK", id, n) != nil || bw.Flush() != nil {
			return false
		}
		stall(bc.br)
		return false
	case faultStallMidBody, faultResetMidBody:
		if writeResponseHead(bw, 200, "OK", id, n) != nil {
			return false
		}
		if _, err := bw.Write(patternBody(id, n/2)); err != nil || bw.Flush() != nil {
			return false
		}
		if bc.b.fault == faultStallMidBody {
			stall(bc.br)
			return false
		}
		if tc, ok := bc.c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with a reset
		}
		return false
	}
	return writeOK(bw, id, n, method == "HEAD") == nil && bw.Flush() == nil
}

// sendExtra sends the bytes beyond the declared response: a stray response carrying id.
// Without later they go out with the response. With later the response goes out first, and
// the extra bytes only once the connection has sat idle for a moment (no next request
// within extraDelay), so they reach a proxy whose connection is back in its pool: a proxy
// that reuses only clean connections sees them there. If the next request comes first, the
// extra bytes are not sent. It reports whether the connection stays open.
func (bc *backendConn) sendExtra(id string, later bool) bool {
	if later {
		if bc.bw.Flush() != nil {
			return false
		}
		_ = bc.c.SetReadDeadline(time.Now().Add(extraDelay(id)))
		_, err := bc.br.Peek(1)
		_ = bc.c.SetReadDeadline(time.Time{})
		if err == nil {
			return true // the next request is here
		}
		if !isTimeout(err) {
			return false
		}
	}
	_, err := bc.bw.Write(strayResponse(id))
	if err != nil || bc.bw.Flush() != nil {
		return false
	}
	if later {
		// Sent with the response, extra bytes are there when the proxy reads it: no proxy
		// has an excuse for taking them as the next answer. Sent later, they may cross.
		bc.extraAt = time.Now()
	}
	return true
}

// extraDelay is how long a connection sits idle before the delayed extra bytes: 1–4 ms.
func extraDelay(id string) time.Duration { return time.Duration(1+len(id)%4) * time.Millisecond }

// stall holds the connection, sending nothing, until the peer closes it (or Close does):
// the backend is alive as far as TCP can tell.
func stall(br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) }

// readBody reads a request body whole and reports whether it is id's pattern. slow reads
// it slowReadChunk bytes per slowReadPause, as the slow-reader fault does.
func (b *backend) readBody(body io.Reader, id string, slow bool) (bool, error) {
	buf := make([]byte, slowReadChunk)
	var off int64
	ok := true
	for {
		if slow {
			select {
			case <-b.quit:
				return false, errors.New("backend closed")
			case <-time.After(slowReadPause):
			}
		}
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			ok = ok && matchPattern(buf[:n], id, off)
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ok, nil
		}
		if err != nil {
			return false, fmt.Errorf("request body: %w", err)
		}
	}
}
