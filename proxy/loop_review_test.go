//go:build linux

package proxy

// Regression tests of the event-loop engine: each pins a bug a review found in its first
// version, now fixed; the comment above each says what the bug was. Tests whose bug crashed
// the process run their scenario in a child process.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rvChild runs scenario in a child test process (the test binary, this test only), so that
// a panic in an event loop fails this test instead of killing the whole run.
func rvChild(t *testing.T, scenario func(t *testing.T)) {
	t.Helper()
	if os.Getenv("RV_CHILD") == t.Name() {
		scenario(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "RV_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := string(out)
		if i := strings.Index(s, "panic:"); i >= 0 {
			s = s[i:]
		}
		if len(s) > 3000 {
			s = s[:3000]
		}
		t.Fatalf("child process failed (%v):\n%s", err, s)
	}
}

// loopEngines is the engines a comparison test runs on: the loop, and the goroutine path as
// the reference it must match (unless the whole suite runs on loops).
func loopEngines() []bool {
	if testEngine == "loop" {
		return []bool{true}
	}
	return []bool{true, false}
}

// rvDial opens a client connection with an overall deadline.
func rvDial(t *testing.T, addr string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn), bufio.NewReader(c)
}

// halfCloseExchange writes raw on a new connection to addr, corked so that it and the FIN
// leave in one segment and arrive together, and returns all that comes back until the proxy
// closes the connection.
func halfCloseExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, _ := rvDial(t, addr)
	time.Sleep(50 * time.Millisecond) // accepted, and found empty
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func rvReadResponse(br *bufio.Reader, method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

// 1. A handed-over connection stays usable to its loopClient: handover sets c.fd = -1 but
// not c.closed, and idle() calls input() right after process() handed the connection over.
// When the socket is marked readable (bytes came while the previous request was served),
// input reads fd -1 (EBADF), calls close, and close indexes l.fds[-1]: the loop panics and
// the process dies.
func TestReviewLoopHandoverFromIdleCrashes(t *testing.T) {
	rvChild(t, func(t *testing.T) {
		b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/slow" {
				time.Sleep(300 * time.Millisecond)
			}
			ctx.SetBodyString("ok:" + string(ctx.Method()) + ":" + string(ctx.PostBody()))
		})
		s := newStack(t, stackOpts{loop: true}, b)
		c, br := rvDial(t, s.addr)
		// One write: the GET and the head of a POST (which the loop hands over) are read together.
		fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // the GET is at the backend
		fmt.Fprint(c, "hello")             // an event while the GET is served: readable
		_, body, err := rvReadResponse(br, "GET")
		if err != nil || body != "ok:GET:" {
			t.Fatalf("GET: %q %v", body, err)
		}
		_, body, err = rvReadResponse(br, "POST")
		if err != nil || body != "ok:POST:hello" {
			t.Fatalf("POST: %q %v", body, err)
		}
	})
}

// 2. A client that sends a whole request and half-closes (shutdown(SHUT_WR), as `nc -N` or
// some health checkers do) gets no answer: when the data and the FIN come in one event, input
// keeps reading (hup), reads 0 and closes the connection with a complete request in c.in.
// fasthttp (the goroutine path) answers the request.
func TestReviewLoopHalfClosedClientGetsAnswer(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop}, b)
			out := halfCloseExchange(t, s.addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.HasSuffix(out, "ok") {
				t.Fatalf("got %q, want the 200 response", out)
			}
		})
	}
}

// 3. An endpoint whose address is a host name (discovery.Endpoint.Address is "host:port,
// ready to dial") cannot be reached from a loop: conn fails the attempt as a connect failure
// (errLoopAddr), which is retried, reported to outlier detection as FailConnect, and ends in
// a 502. The goroutine path dials the name and gets the endpoint's 200.
func TestReviewLoopHostnameEndpoint(t *testing.T) {
	real := startBackend(t, "a", okHandler("ok"))
	_, port, _ := net.SplitHostPort(real.addr)
	b := &testBackend{id: "a", addr: net.JoinHostPort("localhost", port)}
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop}, b)
			if st, body, _ := s.get("/"); st != 200 || body != "ok" {
				t.Fatalf("got %d %q, want the endpoint's 200 ok", st, body)
			}
		})
	}
}

// 4. A response header larger than the server's MaxRequestHeaderSize (but within the
// transport's MaxResponseHeaderSize) is refused by a loop: head() parses it through the
// loop's bufio.Reader l.br, which is sized for request heads (MaxRequestHeaderSize+64), so
// fasthttp fails with ErrSmallBuffer: a 502, and a FailReset against a healthy endpoint.
func TestReviewLoopResponseHeaderOverRequestLimit(t *testing.T) {
	big := strings.Repeat("v", 3000)
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Big", big)
		ctx.SetBodyString("ok")
	})
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, scfg: ServerConfig{MaxRequestHeaderSize: 1024}}, b)
			if st, body, _ := s.get("/"); st != 200 || body != "ok" {
				t.Fatalf("got %d %q, want the endpoint's 200 ok (its header is 3 KB, the transport takes 16 KB)", st, body)
			}
		})
	}
}

// rvServeLoop serves h with a LoopServer of its own (one loop, a fasthttp fallback) on a new
// loopback listener. Cleanup shuts both down, unless noShutdown (the test did it).
func rvServeLoop(t *testing.T, h *Handler, scfg ServerConfig, noShutdown bool) (*LoopServer, string, <-chan struct{}) {
	return rvServeLoopOn(t, h, scfg, noShutdown, &net.ListenConfig{})
}

func rvServeLoopOn(t *testing.T, h *Handler, scfg ServerConfig, noShutdown bool, lc *net.ListenConfig) (*LoopServer, string, <-chan struct{}) {
	t.Helper()
	srv, err := NewServer(h.ServeFastHTTP, scfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.MaxIdleWorkerDuration = testIdleConns
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := NewLoopServer(func(*fasthttp.RequestCtx) *Handler { return h }, srv, scfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = ls.Serve(WrapListener(ln)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		if !noShutdown {
			wg.Go(func() { _ = ls.Shutdown(ctx) })
		}
		wg.Go(func() { _ = srv.ShutdownWithContext(ctx) })
		wg.Wait()
		_ = ln.Close()
		select {
		case <-done:
		case <-ctx.Done():
			t.Error("Serve did not return")
		}
	})
	return ls, ln.Addr().String(), done
}

// 5. Shutdown cuts off responses it promised to finish: closeIdle closes every client with
// no exchange and nothing buffered in c.in (c.x == nil && c.n == 0), including one whose
// request ended (the body was read whole from the endpoint, finish ran) while the tail of the
// response still waits in c.out for a slow client. The client gets a truncated body. (Were
// it spared, flush would then call idle() without looking at closing: the connection would
// wait for another request, and Shutdown for IdleTimeout.)
func TestReviewLoopShutdownTruncatesPendingResponse(t *testing.T) {
	const n, last = 200 << 10, 48 << 10
	body := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	final := make(chan struct{})
	b := startConnBackend(t, "a", func(_ *testBackend, c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// A send buffer that takes the last 48 KB at once: they arrive together, and the loop
		// reads them in one go (in pieces, the loop would pause on the slow client halfway).
		_ = c.(*net.TCPConn).SetWriteBuffer(1 << 20)
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, head)
		_, _ = c.Write(body[:n-last])
		select {
		case <-final:
		case <-time.After(5 * time.Second):
		}
		_, _ = c.Write(body[n-last:]) // one read for the loop (its buffer is 64 KB here)
		_, _ = io.Copy(io.Discard, c)
	})
	s := newStack(t, stackOpts{metrics: true, tcfg: TransportConfig{MaxResponseHeaderSize: 64 << 10}}, b)
	// Small socket buffers (accepted sockets inherit the listener's, the client sets its own).
	sndbuf := func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
	}
	ls, addr, _ := rvServeLoopOn(t, s.h, ServerConfig{}, false, &net.ListenConfig{Control: sndbuf})
	d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	var got bytes.Buffer
	if _, err := io.CopyN(&got, c, int64(len(head)+n-last)); err != nil {
		t.Fatal(err)
	}
	// The client reads no more; the last 48 KB of the body come in one read, fill the
	// sockets, and the rest waits in c.out: the request is over (finish ran) but not its
	// response.
	close(final)
	waitFor(t, "the request to finish", 5*time.Second, func() bool { return metricValue(t, s.h.metrics.inFlight) == 0 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- ls.Shutdown(ctx)
	}()
	time.Sleep(300 * time.Millisecond) // the loop has seen the shutdown
	_, _ = io.Copy(&got, c)
	resp, err := http.ReadResponse(bufio.NewReader(&got), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(rb, body) {
		t.Fatalf("after Shutdown: %d of %d body bytes (%v), want the whole response", len(rb), len(body), err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// 6. wakeAll writes to the eventfd of every loop ever made, also after the loop released it
// (Shutdown called again, or after Serve returned on an error): s.loops is never cleared, so
// 8 bytes go to whatever file now has that descriptor number.
func TestReviewLoopShutdownAgainWritesToReusedFD(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	s := newStack(t, stackOpts{}, b)
	ls, _, done := rvServeLoop(t, s.h, ServerConfig{}, true)
	waitFor(t, "the loop", 5*time.Second, func() bool {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return len(ls.loops) == 1
	})
	ls.mu.Lock()
	wake := ls.loops[0].wake
	ls.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ls.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	// Take descriptors until one of them has the number of the loop's closed eventfd.
	var pairs [][2]int
	defer func() {
		for _, p := range pairs {
			syscall.Close(p[0])
			syscall.Close(p[1])
		}
	}()
	peer := -1
	for range 64 {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]int{fds[0], fds[1]})
		if fds[0] == wake {
			peer = fds[1]
			break
		}
		if fds[1] == wake {
			peer = fds[0]
			break
		}
	}
	if peer < 0 {
		t.Skipf("descriptor %d was not reused", wake)
	}
	if err := ls.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var p [16]byte
	if n, _ := syscall.Read(peer, p[:]); n > 0 {
		t.Fatalf("a second Shutdown wrote %d bytes (% x) to descriptor %d, the loop's closed eventfd, now another file's", n, p[:n], wake)
	}
}

// rvLoopDepth returns the deepest stack of the event loop goroutine seen in samples taken
// until stop is closed.
func rvLoopDepth(stop <-chan struct{}) int {
	elided := regexp.MustCompile(`\.\.\.(\d+) frames elided\.\.\.`)
	buf := make([]byte, 1<<20)
	deepest := 0
	for {
		select {
		case <-stop:
			return deepest
		case <-time.After(time.Millisecond):
		}
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if !strings.Contains(g, ").run(") || !strings.Contains(g, "proxy.(*loop)") {
				continue
			}
			frames := strings.Count(g, "\n\t") // one file:line per frame
			if m := elided.FindStringSubmatch(g); m != nil {
				k, _ := strconv.Atoi(m[1])
				frames += k
			}
			deepest = max(deepest, frames)
		}
	}
}

// 7. Requests the proxy answers itself recurse: respondOwn -> flush -> idle -> process ->
// start -> respondOwn ..., one level (five frames) per pipelined request, for as long as the
// client keeps sending and reading. The stack of the loop grows without bound (up to Go's
// 1 GB limit, a fatal, unrecoverable error that kills the process).
func TestReviewLoopPipelinedOwnAnswersRecurse(t *testing.T) {
	s := newStack(t, stackOpts{loop: true}) // no endpoint: every request is answered 503 by the proxy
	c, br := rvDial(t, s.addr)
	const n = 20000
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	stop := make(chan struct{})
	depth := make(chan int, 1)
	go func() { depth <- rvLoopDepth(stop) }()
	go func() {
		all := strings.Repeat(req, n)
		_, _ = io.WriteString(c, all)
	}()
	answered := 0
	for answered < n {
		resp, _, err := rvReadResponse(br, "GET")
		if err != nil {
			break
		}
		if resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		answered++
	}
	close(stop)
	d := <-depth
	t.Logf("%d answered; deepest loop stack seen: %d frames", answered, d)
	if answered != n {
		t.Fatalf("%d of %d pipelined requests answered", answered, n)
	}
	if d > 200 {
		t.Fatalf("the event loop's stack reached %d frames serving %d pipelined requests: it grows with each one", d, n)
	}
}

// 8. A small response body (with a Content-Length) cut short by the endpoint: the goroutine
// path reads bodies up to smallBody within the attempt, so the cut is a failed attempt
// (FailReset, retried on another endpoint, or a 502). A loop sends the header at once and
// reports the attempt a success to outlier detection; the cut breaks the client's
// connection, and there is no retry.
func TestReviewLoopSmallBodyCutShortRetried(t *testing.T) {
	bad := startRawBackend(t, "bad", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
	good := startBackend(t, "good", okHandler("0123456789"))
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, cfg: Config{Keys: []string{"header:X-User-ID"}}}, bad, good)
			failed := 0
			for i := range 20 {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI("http://" + s.addr + "/")
				req.Header.Set("X-User-ID", fmt.Sprint("user-", i)) // some hash to bad first
				err := s.client.DoTimeout(req, resp, 5*time.Second)
				if err != nil || resp.StatusCode() != 200 || string(resp.Body()) != "0123456789" {
					failed++
					t.Logf("%v %d %q", err, resp.StatusCode(), resp.Body())
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
			}
			if failed > 0 {
				t.Fatalf("%d of 20 requests failed; the goroutine path retries a small body cut short", failed)
			}
			if bad.hits.Load() == 0 {
				t.Fatal("the bad endpoint was never tried")
			}
		})
	}
}

// 10. An edge consumed while ignored: loopUp.event drops EPOLLIN in the upConnecting and
// upWriting states (and does not note readable). An endpoint that answers before it has
// read the whole request (here: a request head larger than the socket buffers, answered at
// once) leaves its response on a socket whose EPOLLIN edge is gone: once the write ends, the
// loop waits in upHead for an edge that never comes, and times out (504) after
// ResponseHeaderTimeout. The goroutine path reads the response at once.
func TestReviewLoopEarlyResponseWhileWriting(t *testing.T) {
	rcvbuf := func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}
	ln, err := (&net.ListenConfig{Control: rcvbuf}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{id: "a", addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly") // before reading
				time.Sleep(300 * time.Millisecond)
				_, _ = io.Copy(io.Discard, c) // then drain the request
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })

	var raw strings.Builder
	raw.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	line := "X-Pad-%04d: " + strings.Repeat("p", 8000) + "\r\n"
	for i := range 750 { // 6 MB of header: more than the sockets between proxy and endpoint hold
		fmt.Fprintf(&raw, line, i)
	}
	raw.WriteString("\r\n")
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			// The bug waits for ResponseHeaderTimeout; writing 6 MB on a loaded machine under
			// -race takes seconds, so the bound sits well between the two.
			s := newStack(t, stackOpts{loop: loop, cfg: Config{ResponseHeaderTimeout: 20 * time.Second},
				scfg: ServerConfig{MaxRequestHeaderSize: 8 << 20}}, b)
			c, br := rvDial(t, s.addr)
			start := time.Now()
			go func() { _, _ = io.WriteString(c, raw.String()) }()
			resp, body, err := rvReadResponse(br, "GET")
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || body != "early" || took > 10*time.Second {
				t.Fatalf("%d %q after %v; want the endpoint's answer, at once", resp.StatusCode, body, took.Round(time.Millisecond))
			}
		})
	}
}

// 11. ServerConfig.MaxConns ("caps the client connections served at once") is not applied
// by the loops: accept takes every connection. The fasthttp server (Concurrency) refuses the
// ones over the cap.
func TestReviewLoopMaxConns(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, scfg: ServerConfig{MaxConns: 1}}, b)
			first, br1 := rvDial(t, s.addr)
			fmt.Fprint(first, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if _, body, err := rvReadResponse(br1, "GET"); err != nil || body != "ok" {
				t.Fatalf("first connection: %q %v", body, err)
			}
			second, br2 := rvDial(t, s.addr) // while the first is open
			fmt.Fprint(second, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body, err := rvReadResponse(br2, "GET"); err == nil && resp.StatusCode == 200 {
				t.Fatalf("a second connection was served (%q) with MaxConns 1 and the first open", body)
			}
		})
	}
}
