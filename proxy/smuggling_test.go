package proxy

import (
	"strings"
	"testing"
	"time"
)

// Request smuggling and malformed requests, written byte for byte on a socket. Each must be
// refused with a 4xx before it reaches an endpoint, and the connection closed, so that no
// byte of it can be read as a second request.
func TestSmugglingShapesRefused(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // status line prefix
	}{
		{"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"duplicate differing CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "HTTP/1.1 400"},
		{"duplicate equal CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"CL with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"TE not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"two TE lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"TE with space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"TE obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"obs-fold elsewhere", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", "HTTP/1.1 400"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"NUL in header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", "HTTP/1.1 400"},
		{"CR alone in header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", "HTTP/1.1 400"},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", "HTTP/1.1 400"},
		{"garbage request line", "GARBAGE\r\n\r\n", "HTTP/1.1 400"},
		{"bad target", "GET nothttp://x HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400"},
		{"userinfo in absolute target", "GET http://u@x/ HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400"},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 40<<10) + "\r\n\r\n", "HTTP/1.1 431"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBackend(t, "a", okHandler("reached"))
			s := newStack(t, stackOpts{}, b)
			// A valid request follows the bad one on the same connection: if the bad one's
			// framing were misread, the second would be answered too.
			out := rawRoundTrip(t, s.addr, tt.raw+"GET /second HTTP/1.1\r\nHost: a\r\n\r\n", 3*time.Second)
			if !strings.HasPrefix(out, tt.want) {
				t.Fatalf("response %q, want %q", firstLine(out), tt.want)
			}
			if n := strings.Count(out, "HTTP/1.1 "); n != 1 {
				t.Errorf("%d responses on the connection, want 1 (the connection must close): %q", n, out)
			}
			if n := b.hits.Load(); n != 0 {
				t.Errorf("the endpoint got %d requests", n)
			}
		})
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
