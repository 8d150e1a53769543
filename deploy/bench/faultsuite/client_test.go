package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scripted is a one-connection server that answers the first request with what reply
// writes for its id, then closes, stalls (until the test ends) or keeps the connection.
type scripted struct {
	ln   net.Listener
	wg   sync.WaitGroup
	quit chan struct{}
}

type after int

const (
	thenClose after = iota
	thenStall
)

func startScripted(t *testing.T, reply func(id string) string, then after) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{ln: ln, quit: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		h, err := readHead(br)
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, reply(h.get(idHeader))); err != nil {
			return
		}
		if then == thenStall {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); <-s.quit; c.Close() }()
			_, _ = io.Copy(io.Discard, br)
		}
	}()
	t.Cleanup(func() {
		close(s.quit)
		ln.Close()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

func ok200(id string, n int) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\n%s: %s\r\nContent-Length: %d\r\n\r\n%s", idHeader, id, n, patternBody(id, n))
}

func TestClientChecksEveryByte(t *testing.T) {
	const n = 100
	tests := []struct {
		name       string
		method     string
		reply      func(id string) string
		then       after
		wantLabel  string
		wantReason string
	}{
		{"its own answer", "GET", func(id string) string { return ok200(id, n) }, thenClose, "200", ""},
		{"its own answer to HEAD, no body", "HEAD", func(id string) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\n%s: %s\r\nContent-Length: %d\r\n\r\n", idHeader, id, n)
		}, thenClose, "200", ""},
		{"another request's answer", "GET", func(string) string { return ok200("rid-other-0-0", n) }, thenClose, outWrong, wrongForeignID},
		{"one body byte that is not its own", "GET", func(id string) string {
			s := []byte(ok200(id, n))
			s[len(s)-n+37] ^= 0x20
			return string(s)
		}, thenClose, outWrong, wrongBodyBytes},
		{"a chunked body that ends cleanly too short", "GET", func(id string) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\n%s: %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", idHeader, id, n/2, patternBody(id, n/2))
		}, thenClose, outWrong, wrongLength},
		{"a declared body cut short by a close", "GET", func(id string) string {
			return ok200(id, n)[:len(ok200(id, n))-n/2]
		}, thenClose, outTruncated, ""},
		{"a head, then nothing", "GET", func(id string) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\n%s: %s\r\nContent-Length: %d\r\n\r\n", idHeader, id, n)
		}, thenStall, outHang, ""},
		{"nothing at all", "GET", func(string) string { return "" }, thenStall, outHang, ""},
		{"a close before any byte", "GET", func(string) string { return "" }, thenClose, outClosed, ""},
		{"a 2xx with no id", "GET", func(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" }, thenClose, outWrong, wrongNoID},
		{"the proxy's own 504", "GET", func(string) string {
			return "HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 16\r\n\r\nupstream timeout"
		}, thenClose, "504", ""},
		{"the proxy's 502 holding another request's bytes", "GET", func(string) string {
			return "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 20\r\n\r\nxxrid-other-0-0.rid-"
		}, thenClose, outWrong, wrongForeignBody},
		{"bytes after a complete answer", "GET", func(id string) string { return ok200(id, n) + "HTTP/1.1 200 OK\r\n" }, thenClose, outWrong, wrongExtraBytes},
		{"an answer the request body was not the client's", "GET", func(id string) string {
			return fmt.Sprintf("HTTP/1.1 422 Unprocessable Entity\r\n%s: %s\r\nX-Body-Mismatch: 1\r\nContent-Length: 0\r\n\r\n", idHeader, id)
		}, thenClose, outWrong, wrongReqBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startScripted(t, tt.reply, tt.then)
			c := &client{addr: addr, deadline: 300 * time.Millisecond}
			defer c.close()
			r := request{id: "rid-t-0-1", method: tt.method, target: fmt.Sprintf("/ok?len=%d", n), wantStatus: 200, wantLen: n}
			got := c.do(r)
			if got.label != tt.wantLabel || got.reason != tt.wantReason {
				t.Errorf("outcome %q (%q: %s), want %q (%q)", got.label, got.reason, got.detail, tt.wantLabel, tt.wantReason)
			}
			if got.label != "200" && c.conn != nil {
				t.Error("the connection stays open after an exchange that did not end cleanly")
			}
		})
	}
}

// Without a proxy in between, the client itself reuses the connection a second response
// arrived on: it must see that answer as another request's.
func TestClientSeesSecondResponseAsForeign(t *testing.T) {
	cr := newCrossings(defaultCrossWindow)
	b, err := startBackend(faultSecondResp, cr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &client{addr: b.addr(), deadline: 2 * time.Second}
	defer c.close()
	first := c.do(request{id: "rid-sr-0-0", method: "GET", target: "/fault?len=10", wantStatus: 200, wantLen: 10})
	if first.label != "200" {
		t.Fatalf("first exchange: %+v", first)
	}
	time.Sleep(30 * time.Millisecond) // the connection sits idle: the second response arrives
	second := c.do(request{id: "rid-sr-0-1", method: "GET", target: "/ok?len=10", wantStatus: 200, wantLen: 10})
	if second.label != outWrong || second.reason != wrongForeignID {
		t.Fatalf("second exchange: %+v, want a wrong answer (foreign id)", second)
	}
	if cr.crossed("rid-sr-0-1") {
		t.Error("a request sent 30 ms after the extra bytes counted as crossed on the wire")
	}
}

// A well-behaved backend and the slow reader, straight to the client: every answer is the
// request's own, every byte checked, request bodies included.
func TestBackendsAnswerEachRequestWithItsOwnBytes(t *testing.T) {
	for _, f := range []fault{faultNone, faultSlowReader} {
		b, err := startBackend(f, newCrossings(defaultCrossWindow))
		if err != nil {
			t.Fatal(err)
		}
		c := &client{addr: b.addr(), deadline: 5 * time.Second}
		for i := range 6 {
			r := request{id: fmt.Sprintf("rid-x-0-%d", i), method: "GET", target: "/ok?len=40960", wantStatus: 200, wantLen: 40960}
			if f == faultSlowReader {
				r.method, r.target, r.bodyLen, r.wantLen = "POST", "/fault?len=7", 20000+i, 7
			}
			if got := c.do(r); got.label != "200" {
				t.Errorf("%s: request %d: %+v", f, i, got)
			}
		}
		c.close()
		b.Close()
	}
}

func TestShortNamesAreDistinct(t *testing.T) {
	seen := map[string]fault{}
	for _, f := range allFaults {
		s := shortName(f)
		if prev, ok := seen[s]; ok {
			t.Errorf("%s and %s share the id prefix %q", prev, f, s)
		}
		seen[s] = f
	}
}

func TestBackendFlagsARequestBodyThatIsNotTheRequests(t *testing.T) {
	b, err := startBackend(faultNone, newCrossings(defaultCrossWindow))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := net.Dial("tcp", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := patternBody("rid-b-0-0", 300)
	body[200] = 'Z'
	fmt.Fprintf(c, "POST /ok?len=1 HTTP/1.1\r\nHost: x\r\n%s: rid-b-0-0\r\nContent-Length: %d\r\n\r\n%s", idHeader, len(body), body)
	h, err := readHead(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := h.status(); st != 422 || h.get("X-Body-Mismatch") == "" {
		t.Errorf("answer %q %v, want 422 with X-Body-Mismatch", h.first, h.fields)
	}
}
