package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTP2PrefaceNeverReachesAnEndpoint: an HTTP/2 client with prior knowledge (h2c, as gRPC
// clients connect) is told in HTTP/2 that this listener speaks HTTP/1.1 only (GOAWAY
// HTTP_1_1_REQUIRED), and its connection preface is never forwarded to an endpoint as an
// HTTP/1.1 request with method PRI. The client is Go's own HTTP/2 implementation.
func TestHTTP2PrefaceNeverReachesAnEndpoint(t *testing.T) {
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			b := startBackend(t, "a", okHandler("ok"))
			s := newStack(t, stackOpts{loop: loop}, b)
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			tr := &http.Transport{Protocols: &p}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			resp, err := client.Get("http://" + s.addr + "/")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("HTTP/2 request answered %s; want the connection refused in HTTP/2", resp.Status)
			}
			if !strings.Contains(err.Error(), "HTTP_1_1_REQUIRED") {
				t.Fatalf("error %q; want a GOAWAY with HTTP_1_1_REQUIRED", err)
			}
			if n := b.hits.Load(); n != 0 {
				t.Fatalf("the endpoint got %d requests", n)
			}
			if st, body, _ := s.get("/"); st != 200 || body != "ok" {
				t.Fatalf("HTTP/1.1 after it: %d %q", st, body)
			}
		})
	}
}
