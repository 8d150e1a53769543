//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// dialLoop opens a client connection to addr with an overall deadline.
func dialLoop(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readResponse reads one response from br, body included.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// The loops serve plain requests themselves, sticky by key, on kept-alive connections.
func TestLoopServesPlainRequests(t *testing.T) {
	backends := []*testBackend{
		startBackend(t, "a", okHandler("A")), startBackend(t, "b", okHandler("B")), startBackend(t, "c", okHandler("C")),
	}
	s := newStack(t, stackOpts{loop: true, cfg: Config{Keys: []string{"header:X-User-ID"}}}, backends...)
	first := map[string]string{}
	for round := range 3 {
		for u := range 50 {
			user := fmt.Sprint("user-", u)
			st, body, be := s.get("/", "X-User-ID", user)
			if st != 200 || body != strings.ToUpper(be) {
				t.Fatalf("%s: %d %q from %q", user, st, body, be)
			}
			if round == 0 {
				first[user] = be
			} else if first[user] != be {
				t.Fatalf("%s moved from %s to %s", user, first[user], be)
			}
		}
	}
	if got := s.loop.loopRequests.Load(); got != 150 {
		t.Errorf("loops served %d requests, want all 150", got)
	}
	if got := s.loop.handovers.Load(); got != 0 {
		t.Errorf("%d connections handed over, want none", got)
	}
}

// What a loop does not serve goes to the goroutine path with its connection, and is answered
// as that path answers it.
func TestLoopHandsOverWhatItDoesNotServe(t *testing.T) {
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString(fmt.Sprintf("%s %s %d", ctx.Method(), ctx.Request.Header.Protocol(), len(ctx.Request.Body())))
	})
	s := newStack(t, stackOpts{loop: true}, b)
	tests := []struct {
		name, raw, want string
	}{
		{"body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", "POST HTTP/1.1 5"},
		{"chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST HTTP/1.1 3"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", "GET HTTP/1.1 0"},
		{"Expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", "PUT HTTP/1.1 2"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := dialLoop(t, s.addr)
			if _, err := io.WriteString(c, tt.raw); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tt.raw, "Expect") {
				if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100") {
					t.Fatalf("got %q, want 100 Continue", line)
				}
				_, _ = br.ReadString('\n')
			}
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != 200 || body != tt.want {
				t.Fatalf("%d %q, want 200 %q", resp.StatusCode, body, tt.want)
			}
			// The connection stays with the goroutine path, which serves its next request.
			if !strings.Contains(tt.raw, "HTTP/1.0") {
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != "GET HTTP/1.1 0" {
					t.Fatalf("next request: %d %q", resp.StatusCode, body)
				}
			}
			if got := s.loop.handovers.Load(); got != uint64(i+1) {
				t.Fatalf("%d handovers, want %d", got, i+1)
			}
		})
	}
	// Malformed requests are answered by the fallback as the goroutine path answers them.
	c, br := dialLoop(t, s.addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 400 {
		t.Fatalf("malformed header: %d, want 400", resp.StatusCode)
	}
}

// Pipelined requests are answered in order, each read once the previous response is out.
func TestLoopPipelinedRequests(t *testing.T) {
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.Path()) })
	s := newStack(t, stackOpts{loop: true}, b)
	c, br := dialLoop(t, s.addr)
	var raw strings.Builder
	for i := range 5 {
		fmt.Fprintf(&raw, "GET /r%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
	}
	if _, err := io.WriteString(c, raw.String()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != fmt.Sprint("/r", i) {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := s.loop.loopRequests.Load(); got != 5 {
		t.Errorf("loops served %d requests, want 5", got)
	}
}

// Bodies of every framing reach the client whole, and the connections are reused after.
func TestLoopResponseFramings(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the socket buffers
	chunked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 50 {
			fmt.Fprintf(w, "piece %d;", i)
			w.(http.Flusher).Flush()
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/chunked", chunked)
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) })
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	b := startHTTPBackend(t, "a", mux)
	s := newStack(t, stackOpts{loop: true}, b)

	c, br := dialLoop(t, s.addr)
	get := func(path, method string) (*http.Response, string) {
		t.Helper()
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: a\r\n\r\n", method, path)
		return readResponse(t, br, method)
	}
	var want strings.Builder
	for i := range 50 {
		fmt.Fprintf(&want, "piece %d;", i)
	}
	if resp, body := get("/chunked", "GET"); body != want.String() || resp.TransferEncoding == nil {
		t.Fatalf("chunked: %q (transfer encoding %v)", body, resp.TransferEncoding)
	}
	if resp, body := get("/trailer", "GET"); body != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("trailer: %q, trailer %v", body, resp.Trailer)
	}
	if resp, body := get("/empty", "GET"); resp.StatusCode != 204 || body != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/big", "HEAD"); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	// A slow reader: the loop waits for the client instead of buffering 4 MiB.
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := sha256.Sum256(big); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("4 MiB body arrived changed")
	}
	if _, body := get("/chunked", "GET"); body != want.String() {
		t.Fatalf("after the big body: %q", body)
	}
	if got := s.loop.handovers.Load(); got != 0 {
		t.Errorf("%d handovers, want none", got)
	}
	if got := b.hits.Load(); got != 6 {
		t.Errorf("backend saw %d requests, want 6", got)
	}
}

// A response delimited by the endpoint's close is re-chunked: the client's connection stays.
func TestLoopCloseDelimitedResponse(t *testing.T) {
	b := startConnBackend(t, "a", func(_ *testBackend, c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
	})
	s := newStack(t, stackOpts{loop: true}, b)
	c, br := dialLoop(t, s.addr)
	for i := range 2 {
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != "until the end" || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
}

// Failed attempts go to the next endpoint; when none is left, the proxy answers 502.
func TestLoopRetriesAndAnswers(t *testing.T) {
	good := startBackend(t, "good", okHandler("ok"))
	dead := &testBackend{id: "dead", addr: refusingAddr(t)}
	s := newStack(t, stackOpts{loop: true, cfg: Config{Keys: []string{"header:X-User-ID"}}}, dead, good)
	for u := range 20 {
		if st, body, _ := s.get("/", "X-User-ID", fmt.Sprint("user-", u)); st != 200 || body != "ok" {
			t.Fatalf("user %d: %d %q", u, st, body)
		}
	}
	s.setBackends(dead)
	if st, body, _ := s.get("/"); st != 502 || body != "upstream unavailable\n" {
		t.Fatalf("all dead: %d %q, want 502", st, body)
	}
	s.setBackends()
	if st, body, _ := s.get("/"); st != 503 || body != "no healthy endpoint\n" {
		t.Fatalf("none: %d %q, want 503", st, body)
	}
}

// Shutdown closes idle connections at once, lets a response in progress finish (and then
// closes its connection), and stops accepting.
func TestLoopShutdown(t *testing.T) {
	release := make(chan struct{})
	b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	s := newStack(t, stackOpts{loop: true}, b)
	idle, idleBR := dialLoop(t, s.addr)
	fmt.Fprintf(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	readResponse(t, idleBR, "GET")
	handed, handedBR := dialLoop(t, s.addr) // an idle connection of the goroutine path
	fmt.Fprintf(handed, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
	readResponse(t, handedBR, "POST")
	busy, busyBR := dialLoop(t, s.addr)
	fmt.Fprintf(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, "the slow request at the backend", 5*time.Second, func() bool { return b.hits.Load() == 3 })

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() { _ = s.srv.ShutdownWithContext(ctx) }() // as the sidecar does
		shut <- s.loop.Shutdown(ctx)
	}()
	start := time.Now()
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if _, err := handedBR.ReadByte(); err != io.EOF {
		t.Fatalf("idle handed-over connection: %v, want EOF", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("idle connections closed after %v", d)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a response in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	resp, body := readResponse(t, busyBR, "GET")
	if body != "done" || !resp.Close {
		t.Fatalf("busy connection: %q, close=%v; want the response and Connection: close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A stream cut by the endpoint is cut for the client too, and the next request still works.
func TestLoopBodyCutShort(t *testing.T) {
	b := startConnBackend(t, "a", func(_ *testBackend, c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/cut": // a streamed body (above smallBody): the client's stream breaks
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly this")
				return
			case "/cut-small": // a small body is read within the attempt: a 502
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	s := newStack(t, stackOpts{loop: true}, b)
	c, br := dialLoop(t, s.addr)
	fmt.Fprintf(c, "GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a body cut short arrived whole")
	}
	if st, body, _ := s.get("/cut-small"); st != 502 {
		t.Fatalf("small body cut short: %d %q, want 502", st, body)
	}
	if st, body, _ := s.get("/"); st != 200 || body != "ok" {
		t.Fatalf("next request: %d %q", st, body)
	}
}

// Several loops share one listener: every connection is served, by whichever loop took it.
func TestLoopSeveralLoops(t *testing.T) {
	backends := []*testBackend{startBackend(t, "a", okHandler("A")), startBackend(t, "b", okHandler("B"))}
	s := newStack(t, stackOpts{loop: true, loops: 3, cfg: Config{Keys: []string{"header:X-User-ID"}}}, backends...)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			for i := range 50 {
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a\r\nX-User-ID: u%d-%d\r\n\r\n", w, i)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || strings.ToLower(string(body)) != resp.Header.Get("X-Backend") {
					errs <- fmt.Errorf("%d %q from %q", resp.StatusCode, body, resp.Header.Get("X-Backend"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.loop.Stats().Requests; got != 800 {
		t.Errorf("loops served %d requests, want 800", got)
	}
}

func BenchmarkLoopHeadEnd(b *testing.B) {
	head := []byte("GET /some/path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nX-User-ID: user-1234\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if headEnd(head) != len(head) {
			b.Fatal("head end not found")
		}
	}
}
