//go:build linux

package proxy

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// measureConnCost opens n client connections to addr, sends each one request (waits for the
// end of its response, respEnd, unless that is empty) and leaves it open, idle, as a
// keep-alive client would (or with its request in flight); it returns the bytes
// the process holds per connection (Go heap in use plus goroutine stacks, after a GC; kernel
// socket buffers are not counted), then closes them. The clients are raw sockets, so that they cost
// the process nothing of its own beyond a file descriptor.
func measureConnCost(t testing.TB, addr string, n int, request, respEnd string) float64 {
	t.Helper()
	sa := sockaddrOf(t, addr)
	heap0 := memNow()
	fds := make([]int, 0, n)
	defer func() {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
	}()
	buf := make([]byte, 64<<10)
	for range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		tv := syscall.NsecToTimeval(int64(5 * time.Second))
		_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		if err := syscall.Connect(fd, sa); err != nil {
			t.Fatal(err)
		}
		if request == "" {
			continue
		}
		if _, err := syscall.Write(fd, []byte(request)); err != nil {
			t.Fatal(err)
		}
		if respEnd == "" {
			continue // left in flight
		}
		got := 0
		for !bytes.HasSuffix(buf[:got], []byte(respEnd)) {
			m, err := syscall.Read(fd, buf[got:])
			if err != nil || m <= 0 {
				t.Fatalf("response %d: %q %v", len(fds), buf[:got], err)
			}
			got += m
		}
	}
	time.Sleep(200 * time.Millisecond) // the last ones accepted and settled
	return float64(int64(memNow())-int64(heap0)) / float64(n)
}

// memNow returns the Go heap in use plus the goroutine stacks after two GCs (the second
// frees what the first's finalizers and stack shrinking left).
func memNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

func sockaddrOf(t testing.TB, addr string) syscall.Sockaddr {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	p, err := strconv.Atoi(port)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("want a 127.0.0.1 address, not %q", addr)
	}
	return &syscall.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}
}

// BenchmarkIdleClientConnectionCost reports the memory an idle keep-alive client connection
// costs on each engine (after one request, and before any), per connection over 1,000 of
// them: the figures deploy/CONFIG.md's memory model gives.
func BenchmarkIdleClientConnectionCost(b *testing.B) {
	be := startBackend(b, "a", okHandler("ok"))
	const n = 1000
	for _, loop := range []bool{false, true} {
		for _, req := range []string{"", "GET / HTTP/1.1\r\nHost: a\r\nX-User-ID: u\r\n\r\n"} {
			name := fmt.Sprintf("loop=%v/after-request=%v", loop, req != "")
			b.Run(name, func(b *testing.B) {
				s := newStack(b, stackOpts{loop: loop}, be)
				s.get("/") // warm: the endpoint connection, the pools
				var perConn float64
				for b.Loop() {
					perConn = measureConnCost(b, s.addr, n, req, "\r\n\r\nok")
				}
				b.ReportMetric(perConn, "B/idle-conn")
			})
		}
	}
}

// BenchmarkTunnelCost reports the memory an idle upgraded connection (a WebSocket, say)
// costs the proxy, per tunnel over 500 of them: its client connection, its endpoint
// connection, and the copies between them. The endpoint holds its sockets without a Go
// object of its own, so that only the proxy's share is counted.
func BenchmarkTunnelCost(b *testing.B) {
	be := startHoldingBackend(b, upgradeResponse)
	s := newStack(b, stackOpts{}, be)
	var perTunnel float64
	for b.Loop() {
		perTunnel = measureConnCost(b, s.addr, 500, upgradeRequest, "\r\n\r\n")
	}
	b.ReportMetric(perTunnel, "B/idle-tunnel")
}

const upgradeRequest = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

const upgradeResponse = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

// BenchmarkRequestInFlightCost reports the memory a request waiting for its response head
// costs on each engine, per request over 300 of them: the client connection, the exchange,
// the endpoint connection (the endpoint answers nothing).
func BenchmarkRequestInFlightCost(b *testing.B) {
	be := startHoldingBackend(b, "")
	for _, loop := range []bool{false, true} {
		b.Run(fmt.Sprintf("loop=%v", loop), func(b *testing.B) {
			s := newStack(b, stackOpts{loop: loop}, be)
			var perRequest float64
			for b.Loop() {
				perRequest = measureConnCost(b, s.addr, 300, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "")
			}
			b.ReportMetric(perRequest, "B/request-in-flight")
		})
	}
}

// startHoldingBackend answers every request with reply (nothing, if empty) and holds the
// connection, as raw sockets: no goroutine or buffer per connection.
func startHoldingBackend(t testing.TB, reply string) *testBackend {
	t.Helper()
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(lfd, 1024); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(lfd)
	b := &testBackend{id: "ws", addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}
	done := make(chan []int)
	go func() {
		var held []int
		defer func() { done <- held }()
		buf := make([]byte, 4096)
		for {
			fd, _, err := syscall.Accept(lfd)
			if err != nil {
				return // shut down
			}
			held = append(held, fd)
			for got := 0; !bytes.HasSuffix(buf[:got], []byte("\r\n\r\n")); {
				m, err := syscall.Read(fd, buf[got:])
				if err != nil || m <= 0 {
					break
				}
				got += m
			}
			if reply != "" {
				_, _ = syscall.Write(fd, []byte(reply))
			}
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Shutdown(lfd, syscall.SHUT_RDWR) // ends the blocked accept
		for _, fd := range <-done {
			_ = syscall.Close(fd)
		}
		_ = syscall.Close(lfd)
	})
	return b
}

// The memory model of deploy/CONFIG.md, checked: what an idle client connection costs on
// each engine, before its first request and as a keep-alive connection after one. Before
// the read buffers were lent only while in use, the event loop's cost 19 KiB either way and
// the goroutine engine's 23 KiB before a request.
func TestIdleClientConnectionCostWithinTheMemoryModel(t *testing.T) {
	be := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/12k" {
			ctx.SetBody(bytes.Repeat([]byte("b"), 12<<10))
			return
		}
		ctx.SetBodyString("ok")
	})
	const n = 300
	tests := []struct {
		loop     bool
		request  string
		end      string // the end of the response; default "\r\n\r\nok"
		maxBytes float64
	}{
		{loop: true, maxBytes: idleConnBytesLoop},
		{loop: true, request: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", maxBytes: idleConnBytesLoop},
		// A response read whole (up to 16 KiB) goes out through the connection's write
		// buffer: an idle connection keeps neither.
		{loop: true, request: "GET /12k HTTP/1.1\r\nHost: a\r\n\r\n", end: "bbbbbbbbbbbbbbbb", maxBytes: idleConnBytesLoop},
		{loop: false, maxBytes: idleConnBytesGoroutinesNew},
		{loop: false, request: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", maxBytes: idleConnBytesGoroutines},
	}
	for _, tt := range tests {
		if testEngine == "loop" && !tt.loop {
			continue
		}
		t.Run(fmt.Sprintf("loop=%v/after-request=%q", tt.loop, tt.request), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: tt.loop}, be)
			s.get("/")
			end := tt.end
			if end == "" {
				end = "\r\n\r\nok"
			}
			got := measureConnCost(t, s.addr, n, tt.request, end)
			if raceEnabled {
				got /= 1.5 // the race detector's goroutine stacks are larger
			}
			t.Logf("%.0f bytes per idle connection (model: at most %.0f)", got, tt.maxBytes)
			if got > tt.maxBytes {
				t.Errorf("an idle connection costs %.0f bytes, more than the %.0f of the memory model", got, tt.maxBytes)
			}
		})
	}
}

// The memory model's figures per idle client connection (deploy/CONFIG.md), with room for
// the measurement's noise: Go heap and goroutine stacks, kernel socket buffers aside.
const (
	idleConnBytesLoop          = 4 << 10  // loopClient, RequestCtx, its addresses
	idleConnBytesGoroutinesNew = 8 << 10  // before the first request: the goroutine's stack, the conn
	idleConnBytesGoroutines    = 32 << 10 // after one: and fasthttp's read buffer (max_header_bytes)
)

// The memory model's figure per idle tunnel, checked. Each direction used to wait in its
// read holding a 32 KiB copy buffer, and the endpoint side its reader besides: 108 KiB a
// tunnel, measured.
func TestIdleTunnelCostWithinTheMemoryModel(t *testing.T) {
	s := newStack(t, stackOpts{}, startHoldingBackend(t, upgradeResponse))
	got := measureConnCost(t, s.addr, 200, upgradeRequest, "\r\n\r\n")
	if raceEnabled {
		got /= 1.5
	}
	t.Logf("%.0f bytes per idle tunnel (model: at most %d)", got, idleTunnelBytes)
	if got > idleTunnelBytes {
		t.Errorf("an idle tunnel costs %.0f bytes, more than the %d of the memory model", got, idleTunnelBytes)
	}
}

// idleTunnelBytes is the memory model's cost of an idle tunnel (deploy/CONFIG.md): two
// goroutines, two 2 KiB read buffers, fasthttp's read buffer and RequestCtx, both sockets.
const idleTunnelBytes = 40 << 10

// BenchmarkLoopKeepAliveGET sends GETs one after another on one keep-alive connection served
// by an event loop: the path where a connection's read buffer is lent for each request and
// taken back after it. Allocations are the whole process's (client, loop, endpoint).
func BenchmarkLoopKeepAliveGET(b *testing.B) {
	s := newStack(b, stackOpts{loop: true}, startBackend(b, "a", okHandler("ok")))
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, sockaddrOf(b, s.addr)); err != nil {
		b.Fatal(err)
	}
	req := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := syscall.Write(fd, req); err != nil {
			b.Fatal(err)
		}
		for got := 0; !bytes.HasSuffix(buf[:got], []byte("\r\n\r\nok")); {
			m, err := syscall.Read(fd, buf[got:])
			if err != nil || m <= 0 {
				b.Fatalf("response: %q %v", buf[:got], err)
			}
			got += m
		}
	}
}
