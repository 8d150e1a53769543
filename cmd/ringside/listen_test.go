package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

const inUseHint = "is already in use (another process is listening there: stop it or choose another port)"

// occupy holds a loopback port for the test's life and returns its address.
func occupy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// writeServices writes a file source listing endpoint as the one instance of cart.
func writeServices(t *testing.T, dir, endpoint string) string {
	t.Helper()
	p := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(p, []byte("services:\n  cart:\n    - {address: "+endpoint+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A listener address that is taken is a configuration error: the binary exits 2 and names
// the file, the line and the field, for every kind of listener.
func TestE2EListenAddressInUseExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	services := writeServices(t, dir, "127.0.0.1:9")
	taken := occupy(t)
	tests := []struct {
		name, config, want string
	}{
		{
			name: "upstream",
			config: "admin: {listen: '127.0.0.1:0'}\ndiscovery: {kind: file, file: {path: " + services + "}}\n" +
				"upstreams:\n  - name: cart\n    listen: '127.0.0.1:0'\n  - name: orders\n    service: cart\n    listen: '" + taken + "'\n",
			want: ":8: upstreams[1].listen: " + taken + " " + inUseHint,
		},
		{
			name: "host_routing",
			config: "admin: {listen: '127.0.0.1:0'}\ndiscovery: {kind: file, file: {path: " + services + "}}\n" +
				"host_routing:\n  listen: '" + taken + "'\nupstreams:\n  - name: cart\n    hosts: [cart.local]\n",
			want: ":4: host_routing.listen: " + taken + " " + inUseHint,
		},
		{
			name: "admin",
			config: "admin:\n  listen: '" + taken + "'\ndiscovery: {kind: file, file: {path: " + services + "}}\n" +
				"upstreams:\n  - name: cart\n    listen: '127.0.0.1:0'\n",
			want: ":2: admin.listen: " + taken + " " + inUseHint,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			out := runExpectingExit2(t, path)
			if want := "ringside: invalid configuration:\n" + path + tt.want + "\n"; out != want {
				t.Errorf("output\n got: %q\nwant: %q", out, want)
			}
		})
	}
}

// A reload whose new listener address is taken is refused with the same message, and the
// running configuration keeps serving.
func TestE2EReloadWithListenAddressInUseKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("cart"))
	}))
	defer backend.Close()
	dir := t.TempDir()
	services := writeServices(t, dir, backend.Listener.Addr().String())
	taken := occupy(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cart := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	text := fmt.Sprintf("admin: {listen: %q}\ndiscovery: {kind: file, file: {path: %q}}\nupstreams:\n  - name: cart\n    listen: %q\n",
		admin, services, cart)
	p := startRingside(t, "reload", text, admin)
	p.waitReady(t, 10*time.Second)

	path := p.cmd.Args[len(p.cmd.Args)-1]
	next := text + fmt.Sprintf("  - name: orders\n    service: cart\n    listen: %q\n", taken)
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	want := path + ":8: upstreams[1].listen: " + taken + " " + inUseHint
	consultest.WaitFor(t, 10*time.Second, "reload refused with the field named", func() bool {
		logs := p.logs()
		return strings.Contains(logs, "reload refused") && strings.Contains(logs, want)
	})
	resp, err := http.Get("http://" + cart + "/")
	if err != nil {
		t.Fatalf("cart's listener after the refused reload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "cart" {
		t.Errorf("cart after the refused reload: %d %q, want 200 \"cart\"", resp.StatusCode, body)
	}
	if resp, err := http.Get("http://" + admin + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("readyz after the refused reload: %v %v", resp, err)
	}
}
