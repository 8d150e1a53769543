package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/cmd/internal/sidecar"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

const cliTestToken = "cli-test-token-0123456789"

// cliBackend answers its name in X-Backend.
func cliBackend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Backend", name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// startSidecar runs a sidecar with upstream cart on discovery (a discovery section) and an
// admin token file; it returns the admin address and the token file.
func startSidecar(t *testing.T, discovery string) (adminAddr, tokenFile string, sc *sidecar.Sidecar) {
	t.Helper()
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(cliTestToken), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`admin: {listen: "127.0.0.1:0", token_file: %s}
%s
upstreams:
  - name: cart
    listen: 127.0.0.1:0
    hash_key: [header:X-User-ID]
lifecycle: {drain_delay: 0s, grace_period: 5s}
`, tokenFile, discovery)
	cfg, err := config.Parse("cli.yaml", []byte(text), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	sc, err = sidecar.New(cfg, sidecar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return sc.AdminAddr(), tokenFile, sc
}

// ringside runs an operator command and returns its exit code, stdout and stderr.
func ringside(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// fileSidecar is a sidecar on the file source in front of three backends.
func fileSidecar(t *testing.T) (adminAddr, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	services := filepath.Join(dir, "services.yaml")
	var b strings.Builder
	b.WriteString("services:\n  cart:\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "    - {id: cart-%d, address: %q}\n", i, cliBackend(t, fmt.Sprintf("cart-%d", i)))
	}
	if err := os.WriteFile(services, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	a, tok, sc := startSidecar(t, fmt.Sprintf("discovery: {kind: file, file: {path: %s, poll_interval: 20ms}}", services))
	waitUntil(t, "ready", func() bool { return sc.Readiness().Ready })
	return a, tok
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every operator command against a running sidecar on the file source: tables for people,
// JSON for scripts, and the documented exit codes.
func TestCLICommands(t *testing.T) {
	a, tok := fileSidecar(t)
	tests := []struct {
		name     string
		args     []string
		env      string // RINGSIDE_ADMIN_TOKEN
		code     int
		stdout   string
		stderr   string
		jsonOut  any
		jsonTest func(v any) bool
	}{
		{name: "status table", args: []string{"status", "-admin", a}, stdout: "cart"},
		{name: "status json", args: []string{"status", "-admin", a, "-o", "json"}, jsonOut: &admin.UpstreamsView{},
			jsonTest: func(v any) bool {
				u := v.(*admin.UpstreamsView).Upstreams
				return len(u) == 1 && u[0].Endpoints.Healthy == 3
			}},
		{name: "endpoints table", args: []string{"endpoints", "cart", "-admin", a}, stdout: "KEY SHARE (NOW/TABLE)"},
		{name: "endpoints json", args: []string{"endpoints", "-admin", a, "-o", "json", "cart"}, jsonOut: &admin.EndpointsView{},
			jsonTest: func(v any) bool { return len(v.(*admin.EndpointsView).Endpoints) == 3 }},
		{name: "endpoints of an unknown upstream", args: []string{"endpoints", "nope", "-admin", a}, code: cliRefused, stderr: "unknown upstream"},
		{name: "route a key", args: []string{"route", "cart", "alice", "-admin", a}, stdout: "target:   cart-"},
		{name: "route a request", args: []string{"route", "cart", "--header", "X-User-ID=alice", "-admin", a, "-o", "json"},
			jsonOut: &admin.RouteView{}, jsonTest: func(v any) bool {
				r := v.(*admin.RouteView)
				return r.Key.Source == "header:X-User-ID" && r.Key.Value == "alice" && r.Target != nil && r.Fallback != nil
			}},
		{name: "route key and request", args: []string{"route", "cart", "alice", "--header", "X-User-ID=bob", "-admin", a}, code: cliUsage},
		{name: "drain without a token", args: []string{"drain", "cart", "cart-1", "-admin", a}, code: cliAuth, stderr: "no admin token"},
		{name: "drain with a wrong token", args: []string{"drain", "cart", "cart-1", "-admin", a}, env: "wrong-token-0123456789", code: cliAuth, stderr: "wrong bearer token"},
		{name: "drain", args: []string{"drain", "cart", "cart-1", "-admin", a, "-token-file", tok}, stdout: "cart/cart-1: drain"},
		{name: "status shows the drain", args: []string{"status", "-admin", a, "-o", "json"}, jsonOut: &admin.UpstreamsView{},
			jsonTest: func(v any) bool { return v.(*admin.UpstreamsView).Upstreams[0].Endpoints.Drained == 1 }},
		{name: "undrain with the env token", args: []string{"undrain", "cart", "cart-1", "-admin", a}, env: cliTestToken, stdout: "cart/cart-1: undrain"},
		{name: "eject", args: []string{"eject", "cart", "cart-2", "-for", "5m", "-admin", a, "-token-file", tok, "-o", "json"},
			jsonOut: &admin.ControlView{}, jsonTest: func(v any) bool {
				c := v.(*admin.ControlView)
				return c.State != nil && c.State.Ejection != nil && c.State.Ejection.Reason == "admin"
			}},
		{name: "eject without -for", args: []string{"eject", "cart", "cart-2", "-admin", a, "-token-file", tok}, code: cliUsage},
		{name: "eject an unknown endpoint", args: []string{"eject", "cart", "cart-9", "-for", "1m", "-admin", a, "-token-file", tok}, code: cliRefused, stderr: "cart-1"},
		{name: "return", args: []string{"return", "cart", "cart-2", "-admin", a, "-token-file", tok}, stdout: "healthy"},
		{name: "weight", args: []string{"weight", "cart", "cart-3", "4", "-admin", a, "-token-file", tok}, stdout: "4 (registry 1)"},
		{name: "bad weight", args: []string{"weight", "cart", "cart-3", "0", "-admin", a, "-token-file", tok}, code: cliRefused, stderr: "1 to 1000"},
		{name: "weight again", args: []string{"weight", "cart", "cart-3", "2", "-admin", a, "-token-file", tok}, stdout: "2 (registry 1)"},
		{name: "overrides", args: []string{"overrides", "-admin", a}, stdout: "2 (registry 1)"},
		{name: "overrides json", args: []string{"overrides", "cart", "-admin", a, "-o", "json"}, jsonOut: &admin.OverridesView{},
			jsonTest: func(v any) bool { o := v.(*admin.OverridesView).Overrides; return len(o) == 1 && o[0].Weight == 2 }},
		{name: "clear", args: []string{"clear", "cart", "cart-3", "-admin", a, "-token-file", tok}, stdout: "clear_overrides"},
		{name: "overrides cleared", args: []string{"overrides", "cart", "-admin", a, "-o", "json"}, jsonOut: &admin.OverridesView{},
			jsonTest: func(v any) bool { return len(v.(*admin.OverridesView).Overrides) == 0 }},
		{name: "weight clear", args: []string{"weight", "cart", "cart-3", "clear", "-admin", a, "-token-file", tok}, stdout: "clear_weight"},
		{name: "events", args: []string{"events", "-admin", a}, stdout: "drained"},
		{name: "unreachable", args: []string{"status", "-admin", "127.0.0.1:1"}, code: cliUnreachable, stderr: "admin API at"},
		{name: "usage", args: []string{"endpoints", "-admin", a}, code: cliUsage, stderr: "usage: ringside endpoints"},
		{name: "bad output", args: []string{"status", "-admin", a, "-o", "yaml"}, code: cliUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RINGSIDE_ADMIN_TOKEN", tt.env)
			code, out, errOut := ringside(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %s; stderr %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stdout %q want %q; stderr %q want %q", out, tt.stdout, errOut, tt.stderr)
			}
			if tt.jsonOut != nil {
				if err := json.Unmarshal([]byte(out), tt.jsonOut); err != nil || !tt.jsonTest(tt.jsonOut) {
					t.Errorf("json %v: %s", err, out)
				}
			}
		})
	}
}

// route exits 5 when no endpoint would take the request.
func TestCLIRouteNoTarget(t *testing.T) {
	a, tok := fileSidecar(t)
	for i := 1; i <= 3; i++ {
		if code, _, errOut := ringside("drain", "cart", fmt.Sprintf("cart-%d", i), "-admin", a, "-token-file", tok); code != 0 {
			t.Fatal(errOut)
		}
	}
	code, out, _ := ringside("route", "cart", "alice", "-admin", a)
	if code != cliNoTarget || !strings.Contains(out, "none: no endpoints available") {
		t.Errorf("exit %d, output %s", code, out)
	}
}

// On Consul, the commands see the registry's endpoints and drain one; editing the services is
// refused as the registry's job.
func TestCLIWithConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	for i := 1; i <= 3; i++ {
		addr := cliBackend(t, fmt.Sprintf("cart-%d", i))
		host, port, _ := net.SplitHostPort(addr)
		var p int
		fmt.Sscan(port, &p)
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: fmt.Sprintf("cart-%d", i), Name: "cart", Address: host, Port: p}); err != nil {
			t.Fatal(err)
		}
	}
	a, tok, sc := startSidecar(t, fmt.Sprintf("discovery: {kind: consul, consul: {address: %q}}", agent.Addr()))
	var v admin.EndpointsView
	waitUntil(t, "three endpoints from Consul", func() bool {
		code, out, _ := ringside("endpoints", "cart", "-admin", a, "-o", "json")
		return code == 0 && json.Unmarshal([]byte(out), &v) == nil && len(v.Endpoints) == 3
	})
	id := v.Endpoints[0].ID
	if !strings.HasPrefix(id, "cart-1@") {
		t.Fatalf("endpoint id %q, want cart-1@node", id)
	}
	for _, user := range []string{"alice", "bob", "carol", "dave"} {
		var r admin.RouteView
		code, out, _ := ringside("route", "cart", user, "-admin", a, "-o", "json")
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Target == nil {
			t.Fatalf("route %s: exit %d %s", user, code, out)
		}
		req, _ := http.NewRequest("GET", "http://"+sc.UpstreamAddr("cart")+"/", nil)
		req.Header.Set("X-User-ID", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); !strings.HasPrefix(r.Target.ID, got+"@") {
			t.Errorf("%s: request on %s, route says %s", user, got, r.Target.ID)
		}
	}
	if code, out, errOut := ringside("drain", "cart", id, "-admin", a, "-token-file", tok, "-o", "json"); code != 0 || !strings.Contains(out, `"state": "drained"`) {
		t.Fatalf("drain: exit %d %s %s", code, out, errOut)
	}
	var s admin.UpstreamsView
	code, out, _ := ringside("status", "-admin", a, "-o", "json")
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Upstreams[0].Discovery != "consul" || s.Upstreams[0].Endpoints.Drained != 1 {
		t.Errorf("status: %s", out)
	}
	req, _ := http.NewRequest("DELETE", "http://"+a+"/v1/services/cart/endpoints/cart-1", nil)
	req.Header.Set("Authorization", "Bearer "+cliTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "registry's job") {
		t.Errorf("services edit on Consul: %d %s", resp.StatusCode, body)
	}
}
