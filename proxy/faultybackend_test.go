package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// strayResponse is a whole response a faulty endpoint sends that no request asked for. If it
// ever reaches a client, one client got bytes meant for nobody (or for someone else).
const strayResponse = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"

// faultyBackend answers each request by its path: the faults below, or, for any other path,
// a well-formed 200 whose body is the path, so that a client can tell its own answer.
func faultyBackend(t *testing.T) *testBackend {
	return rv2Backend(t, "faulty", func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
		var err error
		switch req.URL.Path {
		case "/late": // a second response, a moment after the first
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(30 * time.Millisecond)
			_, _ = io.WriteString(c, strayResponse)
		case "/head": // a body on a HEAD response
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"+strayResponse)
		case "/204", "/304": // a body on a response that has none
			_, err = io.WriteString(c, "HTTP/1.1 "+req.URL.Path[1:]+" X\r\n\r\n"+strayResponse)
		case "/short": // a Content-Length that undercounts the body
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+strayResponse)
		case "/short-late": // the same, the rest a moment later
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(30 * time.Millisecond)
			_, _ = io.WriteString(c, "xx"+strayResponse)
		default:
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
		}
		return err == nil
	})
}

// TestExtraBytesFromEndpointNeverReachAnotherRequest pins the rule that an endpoint connection
// is reused only when it is known clean: whatever an endpoint sends beyond the response it
// declared (a second response, a body on HEAD, 204 or 304, more than its Content-Length, at
// once or a moment later) never becomes the answer to a later request, from any client.
func TestExtraBytesFromEndpointNeverReachAnotherRequest(t *testing.T) {
	cases := []struct {
		method, path string
	}{
		{"GET", "/late"},
		{"HEAD", "/head"},
		{"GET", "/204"},
		{"GET", "/304"},
		{"GET", "/short"},
		{"GET", "/short-late"},
	}
	for _, loop := range loopEngines() {
		for _, tc := range cases {
			t.Run(engineName(loop)+tc.path, func(t *testing.T) {
				b := faultyBackend(t)
				s := newStack(t, stackOpts{loop: loop}, b)
				// The faulty exchange, on its own client connection.
				c1, br1 := rvDial(t, s.addr)
				if _, err := io.WriteString(c1, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				if _, _, err := rvReadResponse(br1, tc.method); err != nil {
					t.Fatalf("faulty exchange: %v", err)
				}
				time.Sleep(100 * time.Millisecond) // the late bytes have come
				// Other clients, each on a new connection: each gets its own answer.
				for i := range 3 {
					path := "/next" + strconv.Itoa(i)
					c, br := rvDial(t, s.addr)
					if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
						t.Fatal(err)
					}
					resp, body, err := rvReadResponse(br, "GET")
					if err != nil {
						t.Fatalf("request %s: %v", path, err)
					}
					if resp.StatusCode != 200 || body != path {
						t.Fatalf("request %s got %d %q: another exchange's bytes", path, resp.StatusCode, body)
					}
				}
			})
		}
	}
}

func engineName(loop bool) string {
	if loop {
		return "loop"
	}
	return "goroutines"
}

// stallingBackend answers by path: /stall-head sends a header for a 100,000-byte body and
// nothing more; /stall-body sends 20,000 bytes of it and stalls; /trickle sends it a byte every
// 50 ms; /slow-head waits 2 s before its answer; any other path gets a 200 with the path.
func stallingBackend(t *testing.T, id string) *testBackend {
	return rv2Backend(t, id, func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
		const head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
		switch req.URL.Path {
		case "/stall-head":
			_, _ = io.WriteString(c, head)
			time.Sleep(3 * time.Second)
			return false
		case "/stall-body":
			_, _ = io.WriteString(c, head+strings.Repeat("x", 20000))
			time.Sleep(3 * time.Second)
			return false
		case "/trickle":
			_, _ = io.WriteString(c, head)
			for range 60 {
				time.Sleep(50 * time.Millisecond)
				if _, err := io.WriteString(c, "x"); err != nil {
					return false
				}
			}
			return false
		case "/slow-head":
			time.Sleep(2 * time.Second)
		}
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
		return err == nil
	})
}

// getWithin sends GET path on a new connection to addr and reads the response to its end or
// the connection's; it fails the test if that takes longer than limit (a hang). It returns
// the status, the body bytes read and whether the body was cut short.
func getWithin(t *testing.T, addr, path string, limit time.Duration) (status, n int, truncated bool) {
	t.Helper()
	c, br := rvDial(t, addr)
	start := time.Now()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("GET %s: no response after %v: %v", path, time.Since(start), err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took > limit {
		t.Fatalf("GET %s took %v, more than %v", path, took, limit)
	}
	return resp.StatusCode, len(body), err != nil
}

// TestStalledResponseBody pins what a client gets from an endpoint that stalls after its
// response header: before the body's first byte the attempt fails as a timeout (retried, or
// 504); after it, the body is broken off once StreamIdleTimeout or RequestTimeout passes, the
// client's connection closed, and the abort counted.
func TestStalledResponseBody(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := stallingBackend(t, "stall")
			s := newStack(t, stackOpts{loop: loop, metrics: true, cfg: Config{
				ResponseHeaderTimeout: 300 * time.Millisecond,
				StreamIdleTimeout:     300 * time.Millisecond,
				Retry:                 RetryConfig{Attempts: 1},
			}}, b)
			if st, _, _ := getWithin(t, s.addr, "/stall-head", 2*time.Second); st != http.StatusGatewayTimeout {
				t.Errorf("header then nothing: status %d, want 504", st)
			}
			st, n, cut := getWithin(t, s.addr, "/stall-body", 2*time.Second)
			if st != http.StatusOK || !cut || n < 20000 || n >= 100000 {
				t.Errorf("stall mid-body: status %d, %d bytes, cut short %v; want 200, the 20000 bytes sent, cut short", st, n, cut)
			}
			if got := metricValue(t, s.metrics.aborts.WithLabelValues("svc", "idle_timeout")); got != 1 {
				t.Errorf("idle_timeout aborts counted: %v, want 1", got)
			}
		})
	}
}

// TestStalledHeaderRetriedElsewhere: an endpoint that stalls after its header is an attempt
// that timed out, retried on another endpoint before anything reached the client.
func TestStalledHeaderRetriedElsewhere(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			stall := stallingBackend(t, "stall")
			good := startBackend(t, "good", func(ctx *fasthttp.RequestCtx) { ctx.SetBody(make([]byte, 100000)) })
			s := newStack(t, stackOpts{loop: loop, cfg: Config{ResponseHeaderTimeout: 300 * time.Millisecond}}, stall, good)
			for range 12 { // random picks: the stalling endpoint comes first in about half
				if st, n, cut := getWithin(t, s.addr, "/stall-head", 3*time.Second); st != 200 || n != 100000 || cut {
					t.Fatalf("status %d, %d bytes, cut short %v; want the other endpoint's 200 with 100000 bytes", st, n, cut)
				}
			}
			if stall.hits.Load() == 0 {
				t.Fatal("the stalling endpoint was never tried: the test proves nothing")
			}
		})
	}
}

// TestRequestTimeoutBoundsTheWholeExchange: Config.RequestTimeout ends an exchange whose
// endpoint keeps sending, too slowly to trip the idle timeout (the body is broken off), and one
// whose header is late (504, before ResponseHeaderTimeout).
func TestRequestTimeoutBoundsTheWholeExchange(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := stallingBackend(t, "slow")
			s := newStack(t, stackOpts{loop: loop, metrics: true, cfg: Config{
				StreamIdleTimeout: time.Second,
				RequestTimeout:    500 * time.Millisecond,
			}}, b)
			st, n, cut := getWithin(t, s.addr, "/trickle", 2*time.Second)
			if st != 200 || !cut || n == 0 {
				t.Errorf("trickled body: status %d, %d bytes, cut short %v; want 200, some bytes, cut short", st, n, cut)
			}
			if got := metricValue(t, s.metrics.aborts.WithLabelValues("svc", "request_timeout")); got != 1 {
				t.Errorf("request_timeout aborts counted: %v, want 1", got)
			}
			if st, _, _ := getWithin(t, s.addr, "/slow-head", 1500*time.Millisecond); st != http.StatusGatewayTimeout {
				t.Errorf("late header: status %d, want 504", st)
			}
		})
	}
}

// TestSlowRequestHeadGets408: a client that starts a request head and does not finish it
// within ReadHeaderTimeout gets a 408 and a closed connection, on both engines alike.
func TestSlowRequestHeadGets408(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := startBackend(t, "a", okHandler("ok"))
			s := newStack(t, stackOpts{loop: loop, scfg: ServerConfig{ReadHeaderTimeout: 300 * time.Millisecond}}, b)
			out := rawRoundTrip(t, s.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ", 3*time.Second)
			if !strings.HasPrefix(out, "HTTP/1.1 408 ") || !strings.HasSuffix(out, "\r\n\r\nrequest timeout\n") {
				t.Fatalf("got %q, want a 408 with the body %q", out, "request timeout\n")
			}
		})
	}
}
