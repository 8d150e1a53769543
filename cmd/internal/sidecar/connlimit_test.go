package sidecar

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// max_connections from the file caps the upstream's listener on both engines: the
// connection past it is answered 503 and closed, and /metrics counts it.
func TestMaxConnectionsCapsTheListenerOnBothEngines(t *testing.T) {
	engines := []string{"goroutines", "loop"}
	if os.Getenv("RINGSIDE_TEST_ENGINE") == "loop" {
		engines = []string{"loop"}
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Setenv("RINGSIDE_TEST_ENGINE", engine)
			f := newFixture(t, "    max_connections: 2", "10ms")
			addr := f.sc.UpstreamAddr("app")
			for i := range 2 {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\nX-User-ID: u\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("connection %d of 2: %v %v", i+1, resp, err)
				}
				resp.Body.Close()
			}
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil) // answered before a request
			if err != nil {
				t.Fatalf("the third connection: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 || string(body) != "too many connections\n" || !resp.Close {
				t.Fatalf("the third connection: %d %q (close %v), want 503 %q and close", resp.StatusCode, body, resp.Close, "too many connections\n")
			}
			if got := gatheredValue(t, f, "ringside_client_connections_refused_total"); got != 1 {
				t.Errorf("ringside_client_connections_refused_total = %v, want 1", got)
			}
			if got := gatheredValue(t, f, "ringside_client_connections_max"); got != 2 {
				t.Errorf("ringside_client_connections_max = %v, want 2", got)
			}
		})
	}
}

// gatheredValue returns the value of the metric name of the app listener.
func gatheredValue(t *testing.T, f *fixture, name string) float64 {
	t.Helper()
	f.sc.mu.Lock()
	listen := f.sc.listeners["app"].ln.Addr().String() // as bound: the label's value
	f.sc.mu.Unlock()
	mfs, err := f.sc.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "listen" && lp.GetValue() == listen {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s for the app listener", name)
	return 0
}

// tunnels.max and tunnels.idle_timeout reach the upstream's handler, with their defaults
// when the file leaves them out.
func TestTunnelLimitsFromTheFile(t *testing.T) {
	tests := []struct {
		extra    string
		wantMax  int
		wantIdle time.Duration
	}{
		{"", 1024, 5 * time.Minute},
		{"    tunnels: {max: 3, idle_timeout: 45s}", 3, 45 * time.Second},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		writeServices(t, filepath.Join(dir, "services.yaml"), nil)
		cfg := parseConfig(t, dir, tt.extra, "10ms")
		pc, err := proxyConfig(cfg.Upstreams[0])
		if err != nil {
			t.Fatal(err)
		}
		if pc.MaxTunnels != tt.wantMax || pc.TunnelIdleTimeout != tt.wantIdle {
			t.Errorf("%q: MaxTunnels %d, TunnelIdleTimeout %v; want %d, %v", tt.extra, pc.MaxTunnels, pc.TunnelIdleTimeout, tt.wantMax, tt.wantIdle)
		}
	}
}

// TestMetricsWithTwoListenersOnPortZero: listeners are labelled by the address they are bound
// to, so two upstreams configured on 127.0.0.1:0 do not make /metrics fail with duplicate
// series.
func TestMetricsWithTwoListenersOnPortZero(t *testing.T) {
	dir := t.TempDir()
	a := startTestBackend(t, "cart")
	services := fmt.Sprintf("services:\n  cart: [{address: %q}]\n", a.addr)
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
discovery: {kind: file, file: {path: %q, poll_interval: 20ms}}
%supstreams:
  - {name: one, service: cart, listen: "127.0.0.1:0"}
  - {name: two, service: cart, listen: "127.0.0.1:0"}
`, filepath.Join(dir, "s.yaml"), testEngineConfig())
	sc, stop := runSidecar(t, text)
	defer stop()
	resp, err := http.Get("http://" + sc.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
}
