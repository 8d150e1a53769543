package proxy

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// "Connection: Content-Length" once made the proxy delete the request's framing before it read
// the body: the POST went upstream without its body, and the rest of the body was read from
// the client's connection as a second request (a CL.0 desync).
func TestConnectionHeaderCannotStripRequestFraming(t *testing.T) {
	var mu sync.Mutex
	var seen, bodies []string
	b := startBackend(t, "b", func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		seen = append(seen, string(ctx.Method())+" "+string(ctx.Path()))
		bodies = append(bodies, string(ctx.PostBody()))
		mu.Unlock()
		ctx.SetBodyString("ok")
	})
	s := newStack(t, stackOpts{}, b)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	body := strings.Repeat("x", 8192) + smuggled
	raw := "POST /b HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	out := rawRoundTrip(t, s.addr, raw, 2*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "POST /b" || bodies[0] != body {
		t.Errorf("backend saw %q (body lengths %d), want one POST /b carrying the whole %d-byte body",
			seen, len(bodies), len(body))
	}
	if n := strings.Count(out, "HTTP/1.1 "); n > 1 {
		t.Errorf("client got %d responses to one request", n)
	}
}

// "Connection: Content-Length" on a response once made the proxy forget the body's length and
// return the connection to the pool with the body unread: the next client got it.
func TestConnectionHeaderCannotStripResponseFraming(t *testing.T) {
	evil := "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPWNED!"
	b := startRawKeepAliveBackend(t, "b",
		"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: "+strconv.Itoa(len(evil))+"\r\n\r\n"+evil,
		"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nvictim")
	s := newStack(t, stackOpts{}, b)
	if code, body, _ := s.get("/first"); code != 200 || body != evil {
		t.Errorf("first: %d %q, want the endpoint's whole body", code, body)
	}
	if code, body, _ := s.get("/victim"); body == "PWNED!" {
		t.Fatalf("the next request got the previous response's body: %d %q", code, body)
	}
}

// With one endpoint answering 503, the client once got the proxy's own 502 (the response was
// dropped for a retry that had nowhere to go).
func TestLastEndpointsGatewayErrorIsDelivered(t *testing.T) {
	b := startBackend(t, "b", func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("maintenance, retry later")
	})
	s := newStack(t, stackOpts{bcfg: balancer.Config{Outlier: balancer.OutlierConfig{Consecutive5xx: -1, ConsecutiveGatewayFailure: -1}}}, b)
	if code, body, _ := s.get("/"); code != 503 || body != "maintenance, retry later" {
		t.Errorf("got %d %q, want the endpoint's own 503", code, body)
	}
}

// An upgrade request that also says "Connection: close" once held a tunnel slot for 30s.
func TestUpgradeWithConnectionCloseHoldsNoTunnel(t *testing.T) {
	b := startRawBackend(t, "b", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	s := newStack(t, stackOpts{cfg: Config{MaxTunnels: 1}}, b)
	raw := "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nConnection: close\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_ = rawRoundTrip(t, s.addr, raw, 2*time.Second)
	if n := s.h.tunnels.Load(); n != 0 {
		t.Errorf("%d tunnel slots held after an upgrade request with Connection: close", n)
	}
}

// startRawKeepAliveBackend serves one connection at a time, answering its n-th request with
// replies[n] (the last one again after that). Each reply's header goes out first and its body
// 50ms later, as a slow endpoint's would.
func startRawKeepAliveBackend(t testing.TB, id string, replies ...string) *testBackend {
	t.Helper()
	return startConnBackend(t, id, func(b *testBackend, c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			b.hits.Add(1)
			head, body, _ := strings.Cut(replies[min(n, len(replies)-1)], "\r\n\r\n")
			_, _ = c.Write([]byte(head + "\r\n\r\n"))
			time.Sleep(50 * time.Millisecond)
			_, _ = c.Write([]byte(body))
		}
	})
}

// A pooled connection keeps its last exchange's deadline; once that passed, the stale-connection
// check once called every healthy connection dead.
func TestConnAliveIgnoresAnOldDeadline(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connAlive peeks only on Linux; elsewhere it takes every connection to be open")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := wrapConn(d) // as the Transport's dialer returns it
	defer c.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	if !connAlive(c) {
		t.Error("a healthy connection with a past deadline was called dead")
	}
	peer.Close()
	time.Sleep(50 * time.Millisecond)
	if connAlive(c) {
		t.Error("a connection closed by its peer was called alive")
	}
}
