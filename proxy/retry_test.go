package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// noOutlier turns passive outlier detection off, so that retries alone are tested.
var noOutlier = balancer.OutlierConfig{Consecutive5xx: -1, ConsecutiveGatewayFailure: -1, ConnectFailureWindow: -1}

// do sends method path with body and the header pairs, and returns status, body, backend.
func (s *stack) do(method, path, body string, kv ...string) (int, string, string) {
	s.t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + s.addr + path)
	if body != "" {
		req.SetBodyString(body)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	if err := s.client.DoTimeout(req, resp, 10*time.Second); err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode(), string(resp.Body()), string(resp.Header.Peek("X-Backend"))
}

func TestGETRetriedOnNextEndpoint(t *testing.T) {
	bad := startBackend(t, "bad", statusHandler(503))
	good := startBackend(t, "good", okHandler("ok"))
	s := newStack(t, stackOpts{cfg: Config{Keys: []string{"header:X-User-ID"}}, bcfg: balancer.Config{Outlier: noOutlier}, metrics: true}, bad, good)
	for i := range 40 {
		code, body, id := s.get("/", "X-User-ID", fmt.Sprint("user-", i))
		if code != 200 || body != "ok" || id != "good" {
			t.Fatalf("user %d: %d %q from %q", i, code, body, id)
		}
	}
	if bad.hits.Load() == 0 {
		t.Fatal("no key had the failing endpoint first: the test proves nothing")
	}
	if got := metricValue(t, s.metrics.retries.WithLabelValues("svc", "status")); got != float64(bad.hits.Load()) {
		t.Errorf("retries{reason=status} = %v, want %d", got, bad.hits.Load())
	}
}

func TestPOSTNotRetriedOnceSent(t *testing.T) {
	bad := startBackend(t, "bad", statusHandler(503))
	good := startBackend(t, "good", okHandler("ok"))
	s := newStack(t, stackOpts{cfg: Config{Keys: []string{"header:X-User-ID"}}, bcfg: balancer.Config{Outlier: noOutlier}}, bad, good)
	for i := range 40 {
		code, _, id := s.do("POST", "/", "payload", "X-User-ID", fmt.Sprint("user-", i))
		if id == "bad" && code != 503 {
			t.Fatalf("user %d: %d from the failing endpoint", i, code)
		}
		if id == "good" && code != 200 {
			t.Fatalf("user %d: %d", i, code)
		}
	}
	if bad.hits.Load() == 0 || good.hits.Load()+bad.hits.Load() != 40 {
		t.Fatalf("hits bad=%d good=%d, want each POST sent exactly once, some to bad", bad.hits.Load(), good.hits.Load())
	}
	// The same POST with an Idempotency-Key may be sent twice.
	for i := range 40 {
		code, _, _ := s.do("POST", "/", "payload", "X-User-ID", fmt.Sprint("user-", i), "Idempotency-Key", fmt.Sprint(i))
		if code != 200 {
			t.Fatalf("idempotent POST %d: %d", i, code)
		}
	}
}

func TestPOSTRetriedWhenConnectRefused(t *testing.T) {
	good := startBackend(t, "good", okHandler("ok"))
	refused := &testBackend{id: "refused", addr: refusingAddr(t)}
	s := newStack(t, stackOpts{cfg: Config{Keys: []string{"header:X-User-ID"}}, bcfg: balancer.Config{Outlier: noOutlier}}, refused, good)
	for i := range 40 {
		// A streamed body (above ReplayBodySize) too: it was not touched when the connect failed.
		body := "payload"
		if i%2 == 1 {
			body = strings.Repeat("b", 100<<10)
		}
		code, got, id := s.do("POST", "/", body, "X-User-ID", fmt.Sprint("user-", i))
		if code != 200 || got != "ok" || id != "good" {
			t.Fatalf("user %d: %d %q from %q", i, code, got, id)
		}
	}
	if good.hits.Load() != 40 {
		t.Fatalf("good endpoint got %d POSTs, want 40", good.hits.Load())
	}
}

// A streamed body cannot be replayed: once sent to an endpoint that failed, the failure is
// the client's answer.
func TestStreamedBodyNotReplayed(t *testing.T) {
	bad := startBackend(t, "bad", statusHandler(503))
	good := startBackend(t, "good", okHandler("ok"))
	s := newStack(t, stackOpts{
		cfg:  Config{Keys: []string{"header:X-User-ID"}, Retry: RetryConfig{ReplayBodySize: 1024}},
		bcfg: balancer.Config{Outlier: noOutlier},
	}, bad, good)
	big := strings.Repeat("b", 4096)
	for i := range 40 {
		code, _, id := s.do("PUT", "/", big, "X-User-ID", fmt.Sprint("user-", i))
		if (id == "bad") != (code == 503) {
			t.Fatalf("user %d: %d from %q", i, code, id)
		}
	}
	if bad.hits.Load() == 0 || good.hits.Load()+bad.hits.Load() != 40 {
		t.Fatalf("hits bad=%d good=%d, want each PUT sent once", bad.hits.Load(), good.hits.Load())
	}
}

func TestRetryBudgetCapsStorm(t *testing.T) {
	var backends []*testBackend
	for i := range 3 {
		backends = append(backends, startBackend(t, fmt.Sprint("b", i), statusHandler(503)))
	}
	s := newStack(t, stackOpts{
		cfg:     Config{Retry: RetryConfig{Attempts: 3, Budget: BudgetConfig{Ratio: 0.1, MinPerSecond: 0.1}}},
		bcfg:    balancer.Config{Outlier: noOutlier},
		metrics: true,
	}, backends...)
	const requests = 200
	for range requests {
		if code, _, _ := s.get("/"); code != 503 {
			t.Fatalf("status %d, want the endpoints' 503", code)
		}
	}
	var hits int64
	for _, b := range backends {
		hits += b.hits.Load()
	}
	// Without a budget: 600 attempts. With it: 200 + 10% of 200 + 1 (the minimum).
	if retries := hits - requests; retries > 25 || retries < 15 {
		t.Fatalf("%d retries for %d failing requests, want about 21", retries, requests)
	}
	if got := metricValue(t, s.metrics.budgetExhausted.WithLabelValues("svc")); got < 150 {
		t.Errorf("budget exhausted counted %v times, want about 179", got)
	}
}

func TestErrorMapping(t *testing.T) {
	slow := func(ctx *fasthttp.RequestCtx) {
		time.Sleep(800 * time.Millisecond)
	}
	tests := []struct {
		name     string
		cfg      Config
		bcfg     balancer.Config
		backends func(t *testing.T) []*testBackend
		header   []string
		want     int
		wantBody string
	}{
		{
			name:     "no endpoints",
			backends: func(t *testing.T) []*testBackend { return nil },
			want:     503, wantBody: "no healthy endpoint\n",
		},
		{
			name: "all refuse",
			backends: func(t *testing.T) []*testBackend {
				return []*testBackend{{id: "r1", addr: refusingAddr(t)}, {id: "r2", addr: refusingAddr(t)}}
			},
			bcfg: balancer.Config{Outlier: noOutlier},
			want: 502, wantBody: "upstream unavailable\n",
		},
		{
			name:     "timeout",
			cfg:      Config{ResponseHeaderTimeout: 200 * time.Millisecond, Retry: RetryConfig{Attempts: 1}},
			backends: func(t *testing.T) []*testBackend { return []*testBackend{startBackend(t, "slow", slow)} },
			want:     504, wantBody: "upstream timed out\n",
		},
		{
			name:     "per-try timeout",
			cfg:      Config{Retry: RetryConfig{Attempts: 2, PerTryTimeout: 200 * time.Millisecond}},
			backends: func(t *testing.T) []*testBackend { return []*testBackend{startBackend(t, "slow", slow)} },
			want:     504, wantBody: "upstream timed out\n",
		},
		{
			name:     "no key, reject policy",
			cfg:      Config{Keys: []string{"header:X-User-ID"}},
			bcfg:     balancer.Config{NoKey: balancer.NoKeyReject},
			backends: func(t *testing.T) []*testBackend { return []*testBackend{startBackend(t, "a", okHandler("ok"))} },
			want:     400, wantBody: "request has no routing key\n",
		},
		{
			name: "endpoint header too large",
			backends: func(t *testing.T) []*testBackend {
				return []*testBackend{startBackend(t, "big", func(ctx *fasthttp.RequestCtx) {
					ctx.Response.Header.Set("X-Big", strings.Repeat("b", 20<<10))
				})}
			},
			cfg:  Config{Retry: RetryConfig{Attempts: 1}},
			want: 502, wantBody: "upstream unavailable\n",
		},
		{
			name: "malformed response",
			backends: func(t *testing.T) []*testBackend {
				return []*testBackend{startRawBackend(t, "garbage", "HTTP/1.1 2x0 Nope\r\n\r\n")}
			},
			cfg:  Config{Retry: RetryConfig{Attempts: 1}},
			want: 502, wantBody: "upstream unavailable\n",
		},
		{
			name:     "an endpoint's own 500 goes through",
			backends: func(t *testing.T) []*testBackend { return []*testBackend{startBackend(t, "a", statusHandler(500))} },
			want:     500, wantBody: "500",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackOpts{cfg: tt.cfg, bcfg: tt.bcfg}, tt.backends(t)...)
			start := time.Now()
			code, body, _ := s.get("/", tt.header...)
			if code != tt.want || body != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", code, body, tt.want, tt.wantBody)
			}
			if time.Since(start) > 700*time.Millisecond {
				t.Fatalf("answer took %v", time.Since(start))
			}
		})
	}
}

// A slow endpoint's per-try timeout moves an idempotent request to the next endpoint.
func TestPerTryTimeoutRetries(t *testing.T) {
	slow := startBackend(t, "slow", func(ctx *fasthttp.RequestCtx) { time.Sleep(500 * time.Millisecond) })
	fast := startBackend(t, "fast", okHandler("ok"))
	s := newStack(t, stackOpts{
		cfg:  Config{Keys: []string{"header:X-User-ID"}, Retry: RetryConfig{PerTryTimeout: 150 * time.Millisecond}},
		bcfg: balancer.Config{Outlier: noOutlier},
	}, slow, fast)
	for i := range 10 {
		if code, _, id := s.get("/", "X-User-ID", fmt.Sprint("u", i)); code != 200 || id != "fast" {
			t.Fatalf("user %d: %d from %q", i, code, id)
		}
	}
	if slow.hits.Load() == 0 {
		t.Fatal("no key had the slow endpoint first: the test proves nothing")
	}
}

// An endpoint that closes idle keep-alive connections before the proxy's pool does must not
// cost a request: the stale connection is detected and a fresh one used, for POSTs too.
// Issue: a streamed PUT met a stale connection, was "retried" with its body already
// consumed, and got a 400.
func TestStaleKeepAliveConnection(t *testing.T) {
	srv := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	s := newStack(t, stackOpts{bcfg: balancer.Config{Outlier: noOutlier}}, srv)
	streamed := strings.Repeat("s", 100<<10) // above ReplayBodySize: sent once, as it comes
	for _, tt := range []struct{ method, body string }{{"GET", ""}, {"POST", "x"}, {"PUT", streamed}} {
		if code, _, _ := s.do(tt.method, "/", tt.body); code != 200 {
			t.Fatalf("first %s: %d", tt.method, code)
		}
		// Closing the endpoint's side of idle connections, as its idle timeout would.
		closeIdleServerConns(t, srv)
		if code, body, _ := s.do(tt.method, "/", tt.body); code != 200 || body != "ok" {
			t.Fatalf("%s on a stale pooled connection: %d %q", tt.method, code, body)
		}
	}
}

// An endpoint that answers an idle connection with its own 408 and closes it (as some
// servers do at their idle timeout) leaves bytes nobody asked for, and a FIN, on a pooled
// connection. The next GET must still get the endpoint's 200, and without waiting for a
// timeout. A pooled connection is checked before use; a 408 that comes in after the check is
// read back and taken for what it is (or the write draws a reset).
func TestPooledConnectionClosedWithA408(t *testing.T) {
	tests := []struct {
		name         string
		after, pause time.Duration // the endpoint's 408 after its response; the client's pause
	}{
		{"checked before use", 30 * time.Millisecond, 200 * time.Millisecond},
		{"met in use", 2 * time.Millisecond, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startConnBackend(t, "a", func(b *testBackend, c net.Conn) {
				var req fasthttp.Request
				if err := req.Read(bufio.NewReader(c)); err != nil {
					return
				}
				b.hits.Add(1)
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				time.Sleep(tt.after)
				_, _ = c.Write([]byte("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
			})
			s := newStack(t, stackOpts{
				cfg:  Config{ResponseHeaderTimeout: 5 * time.Second},
				bcfg: balancer.Config{Outlier: noOutlier},
			}, b)
			for i := range 3 {
				start := time.Now()
				if code, body, _ := s.get("/"); code != 200 || body != "ok" {
					t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, code, body)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Fatalf("request %d took %v: it waited for the response header timeout", i, took)
				}
				time.Sleep(tt.pause)
			}
			if n := b.hits.Load(); n < 3 {
				t.Fatalf("%d requests reached the endpoint, want ≥ 3", n)
			}
		})
	}
}

// The 408 of an endpoint in lingering close: it sends the 408 on an idle connection,
// shuts down its side and keeps reading. No reset comes back to a request written there; the
// 408 already waiting on the connection must be read, recognised and the request sent again.
// (Found in review: a variant that waited for readability after the write, instead of
// reading, never saw the 408 and timed out.)
func TestPooledConnectionLingering408(t *testing.T) {
	b := startLingeringBackend(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write([]byte("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, br) // lingering close
	})
	s := newStack(t, stackOpts{cfg: Config{ResponseHeaderTimeout: 3 * time.Second}, bcfg: balancer.Config{Outlier: noOutlier}}, b)
	for i := range 3 {
		start := time.Now()
		if code, body, _ := s.get("/"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, code, body)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("request %d took %v: it waited for the response header timeout", i, took)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A 408 without Connection: close, then the endpoint's answer to the request that was
// written after it: the connection that carried the 408 must not go back to the pool, or
// that answer would be read as the next request's.
func TestPooled408KeptOpenIsNotReused(t *testing.T) {
	b := startLingeringBackend(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write([]byte("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"))
		var req fasthttp.Request
		if err := req.Read(br); err == nil { // the request the proxy wrote after the 408
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"))
		}
		_, _ = io.Copy(io.Discard, br)
	})
	s := newStack(t, stackOpts{bcfg: balancer.Config{Outlier: noOutlier}}, b)
	for i := range 4 {
		if code, body, _ := s.get("/"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 \"ok\" (\"stale\" is another request's answer)", i, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLingeringBackend answers the first request of each connection with 200 "ok", then,
// 5 ms later, hands the connection to after. Connections are served concurrently.
func startLingeringBackend(t *testing.T, after func(net.Conn, *bufio.Reader)) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				var req fasthttp.Request
				if err := req.Read(br); err != nil {
					return
				}
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				time.Sleep(5 * time.Millisecond)
				after(c, br)
			}()
		}
	}()
	b := &testBackend{id: "a", addr: ln.Addr().String()}
	b.stop = func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	t.Cleanup(b.stop)
	return b
}

// An endpoint at balancer.Config.MaxRequests is passed over for the next one; with none left
// the answer is 503.
func TestMaxRequestsOverflow(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	hold := func(ctx *fasthttp.RequestCtx) {
		<-release
		ctx.SetBodyString("ok")
	}
	a := startBackend(t, "a", hold)
	b := startBackend(t, "b", hold)
	defer once.Do(func() { close(release) })
	s := newStack(t, stackOpts{bcfg: balancer.Config{Kind: balancer.RoundRobin, MaxRequests: 1}}, a, b)
	results := make(chan int, 2)
	for range 2 {
		go func() {
			code, _, _ := s.get("/")
			results <- code
		}()
	}
	waitFor(t, "both endpoints busy", 5*time.Second, func() bool { return a.hits.Load() == 1 && b.hits.Load() == 1 })
	if code, body, _ := s.get("/"); code != 503 || body != "upstream overloaded\n" {
		t.Fatalf("third request: %d %q, want 503", code, body)
	}
	once.Do(func() { close(release) })
	for range 2 {
		if code := <-results; code != 200 {
			t.Fatalf("held request: %d", code)
		}
	}
}
