package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// The bytes an endpoint sends in the same segment as its 101 sit in the endpoint reader; the
// tunnel passes them on before it reads the socket itself.
func TestTunnelPassesOnTheBytesSentWithThe101(t *testing.T) {
	b := startConnBackend(t, "ws", func(b *testBackend, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nhello")
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(c, br) // then an echo
	})
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop}, b)
			c, br := rvDial(t, s.addr)
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			got := make([]byte, 5)
			if _, err := io.ReadFull(br, got); err != nil || string(got) != "hello" {
				t.Fatalf("the bytes sent with the 101: %q %v", got, err)
			}
			fmt.Fprint(c, "ping")
			if _, err := io.ReadFull(br, got[:4]); err != nil || string(got[:4]) != "ping" {
				t.Fatalf("echo through the tunnel: %q %v", got[:4], err)
			}
		})
	}
}
