package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Responses without a body (HEAD, 204, 304) must not desynchronise either connection: a
// second request on the same client connection gets its own answer.
func TestBodylessResponses(t *testing.T) {
	b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "1234")
			_, _ = io.WriteString(w, strings.Repeat("x", 1234))
		}
	}))
	s := newStack(t, stackOpts{}, b)
	tests := []struct {
		method, path string
		status       int
		length       string
	}{
		{"HEAD", "/", 200, "1234"},
		{"GET", "/204", 204, ""},
		{"GET", "/304", 304, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n", tt.method, tt.path)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: tt.method})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Length") != tt.length {
				t.Fatalf("%d Content-Length %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Length"), tt.status, tt.length)
			}
			next, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the next response on the connection: %v", err)
			}
			body, _ := io.ReadAll(next.Body)
			if next.StatusCode != 200 || len(body) != 1234 {
				t.Fatalf("next response %d with %d bytes", next.StatusCode, len(body))
			}
		})
	}
}

// An HTTP/1.0 client is answered in a form it can read, and the endpoint is still spoken to
// in HTTP/1.1 (its connection kept alive).
func TestHTTP10Client(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if chunked {
					w.(http.Flusher).Flush()
				}
				fmt.Fprint(w, r.Proto)
			}))
			s := newStack(t, stackOpts{}, b)
			out := rawRoundTrip(t, s.addr, "GET / HTTP/1.0\r\nHost: a\r\n\r\n", 3*time.Second)
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || string(body) != "HTTP/1.1" {
				t.Fatalf("%d %q %v (raw %q)", resp.StatusCode, body, err, out)
			}
			if strings.Contains(strings.ToLower(out), "transfer-encoding") {
				t.Fatalf("chunked answer to an HTTP/1.0 client: %q", out)
			}
		})
	}
}

// Issue: with StripPrefix set, the hop-by-hop header names collected from the raw header
// shared a buffer with the rewritten target and were overwritten by it.
func TestHopByHopDroppedWhenPathRewritten(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{cfg: Config{StripPrefix: "/api", AddPrefix: "/v1"}}, b)
	_, body := rawExchange(t, s.addr, "GET /api/long/path/to/overwrite HTTP/1.1\r\nHost: a\r\n"+
		"Connection: X-Hop-One, X-Hop-Two\r\nX-Hop-One: 1\r\nX-Hop-Two: 2\r\nKeep-Alive: 5\r\n\r\n")
	e := decodeEcho(t, body)
	for _, h := range []string{"X-Hop-One", "X-Hop-Two", "Keep-Alive"} {
		if v := e.Header.Get(h); v != "" {
			t.Errorf("%s = %q reached the endpoint", h, v)
		}
	}
	if e.URI != "/v1/long/path/to/overwrite" {
		t.Errorf("target %q", e.URI)
	}
}

func TestForwardGET(t *testing.T) {
	b := startBackend(t, "a", okHandler("hello"))
	s := newStack(t, stackOpts{cfg: Config{Keys: []string{"header:X-User-ID"}}}, b)
	code, body, id := s.get("/x", "X-User-ID", "1")
	if code != 200 || body != "hello" || id != "a" {
		t.Fatalf("got %d %q from %q", code, body, id)
	}
}

// Issue: an HTTP/1.0 request without a Host header went upstream as HTTP/1.1 without one,
// which endpoints must refuse. The upstream's name stands in.
func TestHTTP10WithoutHost(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{}, b)
	out := rawRoundTrip(t, s.addr, "GET /x HTTP/1.0\r\n\r\n", 3*time.Second)
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if e := decodeEcho(t, body); e.Host != "svc" {
		t.Fatalf("upstream Host %q, want the upstream's name", e.Host)
	}
}
