package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
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
