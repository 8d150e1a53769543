package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// testIdleConns is the pool idle timeout of test transports: short, so that fasthttp's pool
// cleaner goroutines are gone by the time goleak looks.
const testIdleConns = 300 * time.Millisecond

// backend is a real HTTP server on loopback that counts its requests.
type testBackend struct {
	id   string
	addr string
	hits atomic.Int64
	stop func()
	hs   *httptest.Server // net/http backends only
}

// startBackend serves h with fasthttp on a loopback port.
func startBackend(t testing.TB, id string, h fasthttp.RequestHandler) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{id: id, addr: ln.Addr().String()}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			b.hits.Add(1)
			ctx.Response.Header.Set("X-Backend", id)
			h(ctx)
		},
		CloseOnShutdown:       true,
		NoDefaultServerHeader: true, // so that a Server header in a response is the proxy's
		IdleTimeout:           10 * time.Second,
		MaxIdleWorkerDuration: testIdleConns, // its cleaner goroutine outlives Serve by this
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.ShutdownWithContext(ctx)
			_ = ln.Close() // Shutdown before Serve got going does not close it
			<-done
		})
	}
	t.Cleanup(b.stop)
	return b
}

// startHTTPBackend serves h with net/http on a loopback port.
func startHTTPBackend(t testing.TB, id string, h http.Handler) *testBackend {
	t.Helper()
	b := &testBackend{id: id}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", id)
		h.ServeHTTP(w, r)
	}))
	b.addr = srv.Listener.Addr().String()
	b.hs = srv
	var once sync.Once
	b.stop = func() { once.Do(func() { srv.CloseClientConnections(); srv.Close() }) }
	t.Cleanup(b.stop)
	return b
}

// refusingAddr returns a loopback address nothing listens on.
func refusingAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// stack is a proxy in front of test backends: a Transport, an Upstream, a Handler and a
// fasthttp server on loopback.
type stack struct {
	t       testing.TB
	name    string
	up      *balancer.Upstream
	tr      *Transport
	h       *Handler
	addr    string
	client  *fasthttp.HostClient
	metrics *Metrics
	rev     uint64
	loop    *LoopServer // nil unless the stack is served by event loops
	srv     *fasthttp.Server
	ln      *Listener // the goroutine engine's listener; nil when loop is set
}

// connStats returns what the stack's listener counted, on either engine.
func (s *stack) connStats() ConnStats {
	if s.loop != nil {
		return s.loop.Stats().Conns
	}
	return s.ln.Stats()
}

type stackOpts struct {
	cfg     Config
	bcfg    balancer.Config
	tcfg    TransportConfig
	scfg    ServerConfig
	opts    Options
	now     func() time.Time
	events  balancer.Events
	metrics bool
	loop    bool // serve with a LoopServer (the fasthttp server as its fallback)
	loops   int  // its event loops; 0 means 1
}

// testEngine is RINGSIDE_TEST_ENGINE: "loop" serves every stack with a LoopServer, so that
// the whole suite runs against the event-loop engine.
var testEngine = os.Getenv("RINGSIDE_TEST_ENGINE")

func newStack(t testing.TB, so stackOpts, backends ...*testBackend) *stack {
	t.Helper()
	s := &stack{t: t, name: "svc"}
	if so.metrics {
		m, err := NewMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		s.metrics = m
		so.opts.Metrics = m
	}
	if so.tcfg.IdleConnTimeout == 0 {
		so.tcfg.IdleConnTimeout = testIdleConns
	}
	tr, err := NewTransport(s.name, so.tcfg, s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	s.tr = tr
	up, err := balancer.New(s.name, so.bcfg, tr.BalancerOptions(balancer.Options{Now: so.now, Events: so.events}))
	if err != nil {
		t.Fatal(err)
	}
	s.up = up
	s.setBackends(backends...)
	h, err := New(so.cfg, up, so.opts)
	if err != nil {
		t.Fatal(err)
	}
	s.h = h
	srv, err := NewServer(h.ServeFastHTTP, so.scfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	srv.MaxIdleWorkerDuration = testIdleConns // its cleaner goroutine outlives Serve by this
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	done := make(chan struct{})
	var ls *LoopServer
	if so.loop || testEngine == "loop" {
		ls, err = NewLoopServer(func(*fasthttp.RequestCtx) *Handler { return h }, srv, so.scfg, so.loops)
		if err != nil {
			t.Fatal(err)
		}
		s.loop = ls
		go func() { defer close(done); _ = ls.Serve(WrapListener(ln)) }()
	} else {
		s.ln = NewListener(WrapListener(ln), so.scfg, false) // as the sidecar serves
		go func() { defer close(done); _ = srv.Serve(s.ln) }()
	}
	s.client = testClient(s.addr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		wg.Add(2)
		if ls != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = ls.Shutdown(ctx) }()
		}
		go func() { defer wg.Done(); _ = srv.ShutdownWithContext(ctx) }()
		go func() { defer wg.Done(); _ = h.Drain(ctx) }()
		wg.Wait()
		_ = ln.Close() // Shutdown before Serve got going does not close it
		<-done
		s.client.CloseIdleConnections()
		s.setBackends() // OnRemove closes the transport's idle connections
	})
	return s
}

// setBackends installs a snapshot holding exactly backends.
func (s *stack) setBackends(backends ...*testBackend) {
	eps := make([]discovery.Endpoint, 0, len(backends))
	for _, b := range backends {
		eps = append(eps, discovery.Endpoint{ID: b.id, Address: b.addr, Weight: 1})
	}
	s.rev++
	s.up.Update(discovery.NewSnapshot(s.name, s.rev, eps, time.Now()))
}

// get sends a GET for path with the given header pairs and returns the response status,
// body and X-Backend header.
func (s *stack) get(path string, kv ...string) (int, string, string) {
	s.t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + s.addr + path)
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	if err := s.client.DoTimeout(req, resp, 10*time.Second); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode(), string(resp.Body()), string(resp.Header.Peek("X-Backend"))
}

// rawRoundTrip writes raw to a new connection to the proxy and returns everything read
// until the proxy closes the connection or the timeout.
func rawRoundTrip(t testing.TB, addr, raw string, timeout time.Duration) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) {
				_ = err // EOF or reset: the proxy closed
			}
			return string(out)
		}
	}
}

// testClient returns a client of addr whose goroutines end with its connections (fasthttp's
// default dialer keeps a DNS cache goroutine forever).
func testClient(addr string) *fasthttp.HostClient {
	d := &net.Dialer{Timeout: time.Second}
	return &fasthttp.HostClient{
		Addr:                addr,
		MaxIdleConnDuration: testIdleConns,
		MaxConns:            1024,
		Dial:                func(a string) (net.Conn, error) { return d.Dial("tcp", a) },
	}
}

func okHandler(body string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(body) }
}

func statusHandler(code int) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(code)
		ctx.SetBodyString(strconv.Itoa(code))
	}
}

// closeIdleServerConns makes a net/http backend close its connections, as its idle timeout
// would, and gives the FIN time to arrive.
func closeIdleServerConns(t testing.TB, b *testBackend) {
	t.Helper()
	b.hs.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
}

// metricValue reads a counter or a gauge.
func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// startRawBackend answers every connection with reply, whatever it is sent, and closes it.
func startRawBackend(t testing.TB, id, reply string) *testBackend {
	t.Helper()
	return startConnBackend(t, id, func(b *testBackend, c net.Conn) {
		b.hits.Add(1)
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte(reply))
	})
}

// startConnBackend hands each accepted connection, one at a time, to serve, and closes it
// when serve returns.
func startConnBackend(t testing.TB, id string, serve func(*testBackend, net.Conn)) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{id: id, addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(b, c)
			c.Close()
		}
	}()
	b.stop = func() { ln.Close(); wg.Wait() }
	t.Cleanup(b.stop)
	return b
}
