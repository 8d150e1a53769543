package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// TestPooledConnectionMadeAfterTheRequestIsStillChecked: a pooled connection is peeked at
// before use even when another request created it after this one arrived (a goroutine
// descheduled between its arrival and its attempt, as on a loaded machine): whether a
// connection was used before is what counts, not when it was made.
func TestPooledConnectionMadeAfterTheRequestIsStillChecked(t *testing.T) {
	b := faultyBackend(t)
	s := newStack(t, stackOpts{}, b)
	// A second server on the same Handler, whose requests reach the handler 200 ms after
	// fasthttp stamped them.
	srv, err := NewServer(func(ctx *fasthttp.RequestCtx) {
		time.Sleep(200 * time.Millisecond)
		s.h.ServeFastHTTP(ctx)
	}, ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv.MaxIdleWorkerDuration = testIdleConns
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-served })
	done := make(chan string, 1)
	go func() {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			done <- err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /mine HTTP/1.1\r\nHost: x\r\n\r\n")
		_, body, err := rvReadResponse(bufio.NewReader(c), "GET")
		if err != nil {
			body = err.Error()
		}
		done <- body
	}()
	time.Sleep(20 * time.Millisecond)
	// Meanwhile another client's request makes a new endpoint connection, and leaves stray
	// bytes on it a moment after its answer.
	c1, br1 := rvDial(t, s.addr)
	_, _ = io.WriteString(c1, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, _, err := rvReadResponse(br1, "GET"); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "/mine" {
		t.Fatalf("the delayed request got %q, want its own answer /mine", got)
	}
}

// TestBodyCutShortAfterHeaderIsNoStaleConnection: a failure after a response header on a
// reused connection is a failed attempt (counted, seen by outlier detection, retried only as
// the policy says), never taken for a pooled connection the endpoint had closed and silently
// sent again.
func TestBodyCutShortAfterHeaderIsNoStaleConnection(t *testing.T) {
	for _, loop := range loopEngines() {
		for _, path := range []string{"/small-fin", "/large-reset"} {
			t.Run(engineName(loop)+path, func(t *testing.T) {
				var n atomic.Int64
				b := rv2Backend(t, "r", func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
					switch req.URL.Path {
					case "/small-fin":
						n.Add(1)
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
						return false
					case "/large-reset":
						n.Add(1)
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
						time.Sleep(20 * time.Millisecond)
						_ = c.(*net.TCPConn).SetLinger(0) // the close sends a reset
						return false
					}
					_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					return err == nil
				})
				s := newStack(t, stackOpts{loop: loop, cfg: Config{Retry: RetryConfig{Attempts: 1}}}, b)
				c, br := rvDial(t, s.addr)
				_, _ = io.WriteString(c, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n") // pools a connection
				if _, _, err := rvReadResponse(br, "GET"); err != nil {
					t.Fatal(err)
				}
				_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
				_, _, _ = rvReadResponse(br, "GET")
				if got := n.Load(); got != 1 {
					t.Fatalf("the endpoint got the request %d times with Attempts: 1", got)
				}
			})
		}
	}
}

// TestSlowClientReaderIsNoEndpointAbort: a client that stops reading a large response is the
// client's doing: the response is broken off, but not counted against the endpoint, on either
// engine.
func TestSlowClientReaderIsNoEndpointAbort(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) { ctx.SetBody(make([]byte, 20<<20)) })
			s := newStack(t, stackOpts{loop: loop, metrics: true, cfg: Config{StreamIdleTimeout: 300 * time.Millisecond}}, b)
			c, _ := rvDial(t, s.addr)
			_ = c.SetReadBuffer(4096)
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(1500 * time.Millisecond) // several idle timeouts
			for _, reason := range []string{"idle_timeout", "endpoint"} {
				if got := metricValue(t, s.metrics.aborts.WithLabelValues("svc", reason)); got != 0 {
					t.Errorf("%s aborts counted: %v, want 0", reason, got)
				}
			}
		})
	}
}

// ejections counts outlier ejections.
type ejections struct {
	balancer.NopEvents
	n atomic.Int64
}

func (e *ejections) Ejected(string, *balancer.Endpoint, string, time.Duration) { e.n.Add(1) }

// TestSlowRequestBodyUnderRequestTimeout: RequestTimeout bounds reading the client's body too;
// a client that sends its body too slowly gets a 408, and no endpoint is charged for it.
func TestSlowRequestBodyUnderRequestTimeout(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	ev := &ejections{}
	s := newStack(t, stackOpts{events: ev,
		bcfg: balancer.Config{Outlier: balancer.OutlierConfig{ConsecutiveGatewayFailure: 1, Consecutive5xx: 1, MaxEjectionPercent: 100}},
		cfg:  Config{RequestTimeout: 300 * time.Millisecond}}, b)
	c, br := rvDial(t, s.addr)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"+strings.Repeat("a", 10000))
	time.Sleep(600 * time.Millisecond)
	_, _ = io.WriteString(c, strings.Repeat("b", 10000))
	resp, _, err := rvReadResponse(br, "POST")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || b.hits.Load() != 0 || ev.n.Load() != 0 {
		t.Fatalf("status %d, endpoint hits %d, ejections %d; want 408, 0, 0", resp.StatusCode, b.hits.Load(), ev.n.Load())
	}
}
