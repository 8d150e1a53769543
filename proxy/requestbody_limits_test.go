package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// stallReader gives its bytes, then fails as a client that stopped sending does.
type stallReader struct{ left int }

var errStalled = errors.New("client stalled")

func (r *stallReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, errStalled
	}
	n := min(len(p), r.left)
	r.left -= n
	return n, nil
}

// TestReplayableBodyGrowsAsItArrives: a client that declares a body it may replay and sends
// ten bytes of it holds a buffer of a few KiB, not the declared size.
func TestReplayableBodyGrowsAsItArrives(t *testing.T) {
	b, err := readGrowing(&stallReader{left: 10}, nil, 60000)
	if !errors.Is(err, errStalled) {
		t.Fatalf("err %v, want the reader's", err)
	}
	if len(b) != 10 || cap(b) > 4<<10 {
		t.Fatalf("len %d cap %d after 10 bytes of 60000; want 10 and at most 4 KiB", len(b), cap(b))
	}
	b, err = readGrowing(strings.NewReader(strings.Repeat("x", 60000)), b[:0], 60000)
	if err != nil || len(b) != 60000 {
		t.Fatalf("whole body: len %d, %v", len(b), err)
	}
	if _, err = readGrowing(strings.NewReader("short"), nil, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestMaxRequestBody: a Content-Length above Config.MaxRequestBody gets 413 before anything
// goes upstream; a chunked body that grows past it gets 413 too.
func TestMaxRequestBody(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("got it") })
			s := newStack(t, stackOpts{loop: loop, cfg: Config{MaxRequestBody: 1000}}, b)
			c, br := rvDial(t, s.addr)
			_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"+strings.Repeat("z", 1001))
			resp, _, err := rvReadResponse(br, "POST")
			if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("Content-Length over the limit: %v %v, want 413", resp, err)
			}
			if b.hits.Load() != 0 {
				t.Fatal("the request reached the endpoint")
			}
			c, br = rvDial(t, s.addr)
			chunk := strings.Repeat("y", 600)
			_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"258\r\n"+chunk+"\r\n258\r\n"+chunk+"\r\n0\r\n\r\n")
			resp, _, err = rvReadResponse(br, "POST")
			if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("chunked body over the limit: %v %v, want 413", resp, err)
			}
			if st, body, _ := s.get("/"); st != 200 || body != "got it" {
				t.Fatalf("a request without a body: %d %q", st, body)
			}
		})
	}
}

// TestStreamingBodiesCappedPerEndpoint: slow uploads take at most
// MaxStreamingBodiesPerEndpoint of an endpoint's connections; one more is turned away (503
// with a single endpoint) while requests without a body are still served.
func TestStreamingBodiesCappedPerEndpoint(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
				ctx.SetBodyString("read " + strconv.Itoa(len(ctx.Request.Body())))
			})
			s := newStack(t, stackOpts{loop: loop,
				cfg:  Config{Retry: RetryConfig{ReplayBodySize: -1}},
				tcfg: TransportConfig{MaxStreamingBodiesPerEndpoint: 1}}, b)
			// The first upload sends half its body and waits.
			slow, slowBr := rvDial(t, s.addr)
			_, _ = io.WriteString(slow, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"+strings.Repeat("a", 100000))
			waitFor(t, "the first upload to hold its slot", 5*time.Second, func() bool {
				s.tr.mu.Lock()
				defer s.tr.mu.Unlock()
				for b := range s.tr.backends {
					if b.streaming.Load() == 1 {
						return true
					}
				}
				return false
			})
			c, br := rvDial(t, s.addr)
			_, _ = io.WriteString(c, "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("b", 100000))
			resp, body, err := rvReadResponse(br, "POST")
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("second upload: %v %q %v, want 503", resp, body, err)
			}
			if st, _, _ := s.get("/"); st != 200 {
				t.Fatalf("a request without a body: %d, want 200", st)
			}
			_, _ = io.WriteString(slow, strings.Repeat("a", 100000))
			resp, body, err = rvReadResponse(slowBr, "POST")
			if err != nil || resp.StatusCode != 200 || body != "read 200000" {
				t.Fatalf("slow upload: %v %q %v", resp, body, err)
			}
		})
	}
}
