package sidecar

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// host_routing routed an absolute-form request by its Host header, then forwarded it with the
// target's authority (RFC 9112 section 3.2.2): a request for search reached cart's instances
// carrying search's host. Routing and forwarding use the same authority: the target's.
func TestHostRoutingByRequestTargetAuthority(t *testing.T) {
	var addrs []string
	for _, name := range []string{"cart", "search"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "%s saw %s", name, r.Host)
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	sc, stop := runHostRouting(t, addrs[0], addrs[1])
	defer stop()
	tests := []struct {
		target, host string
		wantCode     int
		wantBody     string
	}{
		{"http://search.internal/", "cart.internal", 200, "search saw search.internal"},
		{"http://SEARCH.internal:8080/x", "cart.internal", 200, "search saw SEARCH.internal:8080"},
		{"http://cart.internal/", "search.internal", 200, "cart saw cart.internal"},
		{"http://other.internal/", "cart.internal", 404, "ringside: no upstream for this host\n"},
		{"/", "search.internal", 200, "search saw search.internal"},
	}
	for _, tt := range tests {
		code, body := rawGet(t, sc.HostRoutingAddr(), "GET "+tt.target+" HTTP/1.1\r\nHost: "+tt.host+"\r\n\r\n")
		if code != tt.wantCode || body != tt.wantBody {
			t.Errorf("%s with Host %s: %d %q, want %d %q", tt.target, tt.host, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

// rawGet sends raw on a new connection to addr and returns the response's status and body.
func rawGet(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// runHostRouting runs a sidecar whose host_routing listener serves cart (hosts cart.internal
// and Cart.Example, endpoint cartAddr) and search (search.internal, searchAddr).
func runHostRouting(t *testing.T, cartAddr, searchAddr string) (*Sidecar, func()) {
	t.Helper()
	dir := t.TempDir()
	services := fmt.Sprintf("services:\n  cart: [{address: %q}]\n  search: [{address: %q}]\n", cartAddr, searchAddr)
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	return runSidecar(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
discovery: {kind: file, file: {path: %q, poll_interval: 20ms}}
host_routing: {listen: "127.0.0.1:0"}
upstreams:
  - {name: cart, hosts: [cart.internal, Cart.Example]}
  - {name: search, hosts: [search.internal]}
lifecycle: {drain_delay: 10ms}
`, filepath.Join(dir, "s.yaml"))+testEngineConfig())
}
