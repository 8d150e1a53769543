//go:build linux

package proxy

// Regression tests from the second review of the event-loop engine (after commit 9804608).
// Each pins a bug it found, now fixed; the comment above each says what the bug was. Tests
// that take an engine list run the goroutine path too, as the reference the loop must match.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rv2Backend serves every connection concurrently: it reads requests one after the other and
// hands each to serve, which writes the answer and says whether to go on with the connection.
func rv2Backend(t *testing.T, id string, serve func(c net.Conn, br *bufio.Reader, req *http.Request) bool) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{id: id, addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b.hits.Add(1)
					if !serve(c, br, req) {
						return
					}
				}
			})
		}
	})
	b.stop = func() { ln.Close(); wg.Wait() }
	t.Cleanup(b.stop)
	return b
}

// A. The ready queue is run after each epoll event and after accept, but not after sweep.
// A response sweep produces (a 504 for a ResponseHeaderTimeout, a 502/504 after a connect
// or per-try timeout) ends in flush -> schedule, and the client then waits in l.ready until
// some unrelated event reaches the loop: epoll_wait's 100 ms timeouts return n == 0, and
// runReady is only called inside the per-event loop (loop_linux.go:381-397). A request the
// client pipelined behind the timed-out one is never served.
func TestReview2LoopPipelinedAfterSweepTimeout(t *testing.T) {
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		ctx.SetBodyString("ok")
	})
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, cfg: Config{ResponseHeaderTimeout: 200 * time.Millisecond}}, b)
			c, br := rvDial(t, s.addr)
			fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, _, err := rvReadResponse(br, "GET")
			if err != nil || resp.StatusCode != 504 {
				t.Fatalf("first response: %v %v, want the proxy's 504", resp, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			resp, body, err := rvReadResponse(br, "GET")
			if err != nil || resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("the request pipelined behind the timed-out one was not answered within 1s: %v", err)
			}
		})
	}
}

// A (bis). Same root cause: after a response produced by sweep, next() never runs, so the
// connection's deadline stays zero (process cleared it) and IdleTimeout never closes it.
func TestReview2LoopIdleTimeoutAfterSweepTimeout(t *testing.T) {
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		time.Sleep(1500 * time.Millisecond)
		ctx.SetBodyString("ok")
	})
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, cfg: Config{ResponseHeaderTimeout: 200 * time.Millisecond},
				scfg: ServerConfig{IdleTimeout: 300 * time.Millisecond}}, b)
			c, br := rvDial(t, s.addr)
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, _, err := rvReadResponse(br, "GET")
			if err != nil || resp.StatusCode != 504 {
				t.Fatalf("response: %v %v, want the proxy's 504", resp, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			var p [1]byte
			_, err = br.Read(p[:])
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the idle connection was still open 2s after its response (IdleTimeout 300ms)")
			}
		})
	}
}

// B. On a retry, nextAttempt passes over an endpoint the loop cannot dial (a host name, or
// TLS) with Start/Finish and moves on (loopup_linux.go:97-108). When that endpoint is the only
// one left, the pick is exhausted and the client gets a 502, although the endpoint is healthy:
// the goroutine path dials it and gets a 200. (After a 502/503/504 in hand, the endpoint's
// own answer is also replaced by the proxy's 502.)
func TestReview2LoopRetrySkipsHostnameEndpoint(t *testing.T) {
	real := startBackend(t, "b", okHandler("ok"))
	_, port, _ := net.SplitHostPort(real.addr)
	named := &testBackend{id: "b", addr: net.JoinHostPort("localhost", port)}
	dead := &testBackend{id: "a", addr: refusingAddr(t)}
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, cfg: Config{Keys: []string{"header:X-User-ID"}}}, dead, named)
			failed := 0
			for i := range 20 { // a connection each: a handover takes the whole connection
				c, br := rvDial(t, s.addr)
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a\r\nX-User-ID: user-%d\r\n\r\n", i)
				resp, body, err := rvReadResponse(br, "GET")
				c.Close()
				if err != nil || resp.StatusCode != 200 || body != "ok" {
					failed++
					code := 0
					if resp != nil {
						code = resp.StatusCode
					}
					t.Logf("user-%d: %d %q %v", i, code, body, err)
				}
			}
			if failed > 0 {
				t.Fatalf("%d of 20 requests failed with a healthy endpoint (host name) left to retry on", failed)
			}
		})
	}
}

// C. MaxConns counts only the connections the loops hold: handover decrements l.s.conns
// (loop_linux.go:541), so a connection handed to the fallback is no longer counted, and
// accept lets a new one in past the cap (the fallback's Concurrency only caps its own).
func TestReview2LoopMaxConnsIgnoresHandedOver(t *testing.T) {
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, scfg: ServerConfig{MaxConns: 1}}, b)
			first, br1 := rvDial(t, s.addr)
			fmt.Fprint(first, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx") // a body: handed over
			if _, body, err := rvReadResponse(br1, "POST"); err != nil || body != "ok" {
				t.Fatalf("first connection: %q %v", body, err)
			}
			second, br2 := rvDial(t, s.addr) // while the first is open
			fmt.Fprint(second, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body, err := rvReadResponse(br2, "GET"); err == nil && resp.StatusCode == 200 {
				t.Fatalf("a second connection was served (%q) with MaxConns 1 and the first (handed over) open", body)
			}
		})
	}
}

// D. A client that pipelines two requests and half-closes gets only the first answered:
// process sets closeAfter when eof is seen (loopclient_linux.go:131), although the second
// request is whole in c.in. fasthttp answers both.
func TestReview2LoopHalfClosedPipelined(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop}, b)
			out := halfCloseExchange(t, s.addr, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
			if n := strings.Count(out, "HTTP/1.1 200"); n != 2 {
				t.Fatalf("%d of 2 pipelined requests answered before the close: %q", n, out)
			}
		})
	}
}

// F. A pooled connection whose endpoint half-closed it in the same event as the response
// (EPOLLIN|EPOLLRDHUP together) keeps the FIN unread: read() goes on reading only while
// readable, small()/bodyDone release the connection to the pool, and conn() then clears
// readable and hup on reuse (loopup_linux.go:408). The edge is gone: the next request on it
// waits for an event that never comes, and ends in a 504 after ResponseHeaderTimeout. The
// goroutine path reads the EOF at once and retries on a new connection (a stale one).
func TestReview2LoopPooledConnFINEdgeLost(t *testing.T) {
	b := rv2Backend(t, "a", func(c net.Conn, br *bufio.Reader, _ *http.Request) bool {
		tc := c.(*net.TCPConn)
		if rc, err := tc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		_ = tc.CloseWrite() // the response and the FIN in one segment
		// A lingering close: what comes is read, never answered, and the socket stays open.
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, br)
		return false
	})
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, cfg: Config{ResponseHeaderTimeout: time.Second}}, b)
			if st, body, _ := s.get("/"); st != 200 || body != "ok" {
				t.Fatalf("first: %d %q", st, body)
			}
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			st, body, _ := s.get("/")
			if took := time.Since(start); st != 200 || took > 800*time.Millisecond {
				t.Fatalf("second request on the pooled (half-closed) connection: %d %q after %v", st, body, took.Round(time.Millisecond))
			}
		})
	}
}

// Balance: in-flight gauges and endpoint in-flight counts come back to zero after requests
// that end in every way the review looked at (a small body cut short, a timeout in upSmall,
// the client leaving in upHead, upSmall and upBody, a 503 whose small body is pooled and
// retried elsewhere). Evidence, not a bug, if it passes.
func TestReview2LoopInFlightBalance(t *testing.T) {
	big := make([]byte, 64<<10)
	b := rv2Backend(t, "a", func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
		switch req.URL.Path {
		case "/cut":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			return false
		case "/stall", "/stall-leave":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			time.Sleep(800 * time.Millisecond)
			return false
		case "/slowhead":
			time.Sleep(800 * time.Millisecond)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		case "/stream":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
			_, _ = c.Write(big)
			time.Sleep(800 * time.Millisecond)
			return false
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	unavailable := rv2Backend(t, "u", func(c net.Conn, _ *bufio.Reader, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
		return true
	})
	good := rv2Backend(t, "g", func(c net.Conn, _ *bufio.Reader, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	s := newStack(t, stackOpts{loop: true, metrics: true, cfg: Config{ResponseHeaderTimeout: 300 * time.Millisecond,
		StreamIdleTimeout: 300 * time.Millisecond}}, b)
	s2 := newStack(t, stackOpts{loop: true, metrics: true, cfg: Config{Keys: []string{"header:X-User-ID"}}}, unavailable, good)
	one := func(path string, leaveAfter time.Duration, readHead bool) {
		c, br := rvDial(t, s.addr)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path)
		if leaveAfter > 0 {
			if readHead {
				_, _ = br.ReadString('\n')
			}
			time.Sleep(leaveAfter)
			c.Close()
			return
		}
		resp, _, err := rvReadResponse(br, "GET")
		if err != nil {
			t.Logf("%s: %v", path, err)
			return
		}
		t.Logf("%s: %d", path, resp.StatusCode)
	}
	one("/cut", 0, false)
	one("/stall", 0, false)
	one("/slowhead", 100*time.Millisecond, false)
	one("/stall-leave", 100*time.Millisecond, false)
	one("/stream", 100*time.Millisecond, true)
	for i := range 30 { // half home on u: its 503 (small, pooled) is dropped for g
		if st, body, _ := s2.get("/", "X-User-ID", fmt.Sprint("user-", i)); st != 200 || body != "ok" {
			t.Errorf("user-%d: %d %q", i, st, body)
		}
	}
	for _, st := range []*stack{s, s2} {
		waitFor(t, "in-flight to come back to 0", 5*time.Second, func() bool {
			if metricValue(t, st.h.metrics.inFlight) != 0 {
				return false
			}
			for _, ep := range st.up.Endpoints() {
				if ep.InFlight() != 0 {
					return false
				}
			}
			return true
		})
	}
}
