package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// BenchmarkForwardGET measures the whole forwarding path of a GET, in process from the
// handler's entry to a fasthttp endpoint on loopback and back: key extraction, the pick,
// header rewriting, the pooled connection, the response read and the metrics. The request is
// parsed once from the wire format and copied in for each iteration, as the server would.
func BenchmarkForwardGET(b *testing.B) {
	for _, metrics := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", metrics), func(b *testing.B) {
			s := newStack(b, stackOpts{cfg: keyedConfig(), metrics: metrics}, benchBackends(b)...)
			req := benchRequest(b)
			var ctx fasthttp.RequestCtx
			ctx.Init2(benchConn{}, nil, false)
			b.ReportAllocs()
			for b.Loop() {
				req.CopyTo(&ctx.Request)
				ctx.Response.Reset()
				s.h.ServeFastHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}

// BenchmarkForwardGETServer adds the client side: a fasthttp client sends each GET to the
// proxy's fasthttp server over an in-memory listener. Allocations are the whole process's:
// client, proxy server, handler and endpoint.
func BenchmarkForwardGETServer(b *testing.B) {
	s := newStack(b, stackOpts{cfg: keyedConfig(), metrics: true}, benchBackends(b)...)
	srv, err := NewServer(s.h.ServeFastHTTP, ServerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	srv.MaxIdleWorkerDuration = testIdleConns
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown(); _ = ln.Close(); <-done }()
	client := &fasthttp.HostClient{Addr: "proxy", Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxIdleConnDuration: testIdleConns}
	defer client.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://front/api/items?id=7")
	req.Header.Set("X-User-ID", "user-4242")
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
}

func benchBackends(b *testing.B) []*testBackend {
	var backends []*testBackend
	for i := range 3 {
		backends = append(backends, startBackend(b, fmt.Sprint("b", i), okHandler("hello, world")))
	}
	return backends
}

// benchRequest parses a typical GET from the wire format.
func benchRequest(b *testing.B) *fasthttp.Request {
	raw := "GET /api/items?id=7 HTTP/1.1\r\nHost: front\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
		"X-User-ID: user-4242\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	return &req
}

// benchConn is the connection of an in-process request: a fixed peer, no I/O.
type benchConn struct{ net.Conn }

var benchPeer = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}

func (benchConn) RemoteAddr() net.Addr             { return benchPeer }
func (benchConn) LocalAddr() net.Addr              { return benchPeer }
func (benchConn) SetReadDeadline(time.Time) error  { return nil }
func (benchConn) SetWriteDeadline(time.Time) error { return nil }
func (benchConn) SetDeadline(time.Time) error      { return nil }
func (benchConn) Close() error                     { return nil }

// BenchmarkKeyAndPick measures what the handler does to choose an endpoint: extract the key
// from a header and pick on the ring.
func BenchmarkKeyAndPick(b *testing.B) {
	s := newStack(b, stackOpts{cfg: keyedConfig()}, benchEndpoints(b, 10)...)
	var req fasthttp.Request
	req.SetRequestURI("/api/items?id=7")
	req.Header.SetHost("front")
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("X-User-ID", "user-4242")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}, nil)
	b.ReportAllocs()
	var pick balancer.Pick
	for b.Loop() {
		h, ok := s.h.keys.Hash(&ctx)
		s.up.Begin(&pick, h, ok)
		if _, err := pick.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEndpoints returns n endpoints that are never dialled.
func benchEndpoints(b *testing.B, n int) []*testBackend {
	eps := make([]*testBackend, n)
	for i := range eps {
		eps[i] = &testBackend{id: fmt.Sprint("e", i), addr: fmt.Sprintf("127.0.0.1:%d", 20000+i)}
	}
	return eps
}

// BenchmarkForwardGETManyEndpoints forwards GETs spread by key over 5,000 endpoints, all
// served by one loopback backend: each endpoint has its own connection pool, and is reached
// only every few thousand requests. It shows what per-endpoint state costs: B/op, and the
// live heap after a GC once the loop is done (buffers still pooled included).
func BenchmarkForwardGETManyEndpoints(b *testing.B) {
	const endpoints = 5000
	be := startBackend(b, "b", okHandler("hello, world"))
	eps := make([]*testBackend, endpoints)
	for i := range eps {
		eps[i] = &testBackend{id: fmt.Sprint("e", i), addr: be.addr}
	}
	// Endpoints are revisited every few thousand requests: their connections must outlast
	// that. The pools' cleaner goroutines then outlive the stack by up to that long, and
	// goleak must not see them: this cleanup, registered first, runs last.
	const idle = 2 * time.Second
	b.Cleanup(func() { time.Sleep(idle + 100*time.Millisecond) })
	s := newStack(b, stackOpts{cfg: keyedConfig(), tcfg: TransportConfig{IdleConnTimeout: idle}}, eps...)
	req := benchRequest(b)
	keys := make([][]byte, 2*endpoints)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user-%d", i)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init2(benchConn{}, nil, false)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.CopyTo(&ctx.Request)
		ctx.Request.Header.SetBytesV("X-User-ID", keys[i%len(keys)])
		i++
		ctx.Response.Reset()
		s.h.ServeFastHTTP(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.StopTimer()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heapMiB")
}

// BenchmarkRewriteRequest measures the header work of one request without the network:
// the scan, the rewrite (hop-by-hop headers out, forwarding headers and a request ID in)
// and the serialisation that writeRequest sends upstream.
func BenchmarkRewriteRequest(b *testing.B) {
	s := newStack(b, stackOpts{cfg: keyedConfig()}, benchBackends(b)...)
	req := benchRequest(b)
	var ctx fasthttp.RequestCtx
	ctx.Init2(benchConn{}, nil, false)
	x := &exchange{h: s.h, ctx: &ctx}
	bw := bufio.NewWriterSize(io.Discard, 4096)
	peer := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		req.CopyTo(&ctx.Request)
		x.scan.scan(ctx.Request.Header.RawHeaders(), false)
		x.extra = s.h.prepareRequest(&ctx, &x.scan, peer, peer, false, false, x.extra)
		if err := x.writeRequest(bw, nil); err != nil {
			b.Fatal(err)
		}
		_ = bw.Flush()
	}
}
