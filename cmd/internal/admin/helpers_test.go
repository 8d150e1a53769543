package admin_test

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
	"sync"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/cmd/internal/sidecar"
)

// testToken is the admin token of the fixtures that enable changes.
const testToken = "test-token-0123456789abcdef"

// backend answers its name, in the body and in X-Backend; a request to /hold waits until the
// backend's hold channel is closed (for in-flight requests that stay).
type backend struct {
	name, addr string
	srv        *http.Server
	hold       chan struct{}
	holdOnce   sync.Once
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), hold: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-b.hold
		}
		w.Header().Set("X-Backend", b.name)
		_, _ = io.WriteString(w, b.name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() {
		b.release()
		_ = b.srv.Close()
	})
	return b
}

func (b *backend) release() { b.holdOnce.Do(func() { close(b.hold) }) }

// fixture is a running sidecar on the file source with one upstream, cart, in front of
// backends, and clients for its admin API and cart's listener.
type fixture struct {
	t        *testing.T
	dir      string
	backends []*backend
	sc       *sidecar.Sidecar
	admin    string // http://host:port
	cart     string // http://host:port
	client   *http.Client
	cancel   context.CancelFunc
	done     chan error
	// config returns the fixture's configuration with other lines in cart's entry.
	config func(upstream string) *config.Config
}

type fixtureOptions struct {
	backends  int
	token     bool   // write a token file and configure admin.token_file
	upstream  string // extra lines of cart's upstream entry
	discovery string // a discovery section instead of the file source
}

const fixtureConfig = `admin: {listen: "127.0.0.1:0"%s}
%s
upstreams:
  - name: cart
    listen: 127.0.0.1:0
    hash_key: [header:X-User-ID, cookie:uid]
%s
lifecycle: {drain_delay: 0s, grace_period: 5s}
`

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), client: &http.Client{Timeout: 10 * time.Second}}
	for i := range o.backends {
		f.backends = append(f.backends, startBackend(t, fmt.Sprintf("cart-%d", i+1)))
	}
	services := filepath.Join(f.dir, "services.yaml")
	f.writeServices(services)
	tokenLine := ""
	if o.token {
		path := filepath.Join(f.dir, "admin-token")
		if err := os.WriteFile(path, []byte(testToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tokenLine = ", token_file: " + path
	}
	disc := o.discovery
	if disc == "" {
		disc = fmt.Sprintf("discovery:\n  kind: file\n  file: {path: %s, poll_interval: 20ms}", services)
	}
	f.config = func(upstream string) *config.Config {
		text := fmt.Sprintf(fixtureConfig, tokenLine, disc, upstream)
		if os.Getenv("RINGSIDE_TEST_ENGINE") == "loop" { // as cmd/internal/sidecar's tests
			text += "engine: {kind: event_loop}\n"
		}
		cfg, err := config.Parse("test.yaml", []byte(text), os.LookupEnv)
		if err != nil {
			t.Fatal(err)
		}
		if err := sidecar.Check(cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	sc, err := sidecar.New(f.config(o.upstream), sidecar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.sc, f.admin, f.cart = sc, "http://"+sc.AdminAddr(), "http://"+sc.UpstreamAddr("cart")
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- sc.Run(ctx) }()
	t.Cleanup(f.stop)
	f.waitFor("the first snapshot", func() bool { return sc.Readiness().Ready })
	return f
}

func (f *fixture) writeServices(path string) {
	f.t.Helper()
	var b strings.Builder
	b.WriteString("services:\n  cart:\n")
	for _, be := range f.backends {
		fmt.Fprintf(&b, "    - {id: %s, address: %q, zone: z1, tags: [v1]}\n", be.name, be.addr)
	}
	if err := os.WriteFile(path+".tmp", []byte(b.String()), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	for _, b := range f.backends {
		b.release()
	}
	f.cancel()
	f.cancel = nil
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		f.t.Error("Run did not return within 10s of cancel")
	}
	f.client.CloseIdleConnections()
}

// waitFor polls cond for up to 5s.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// call sends a request to the admin API and returns its status and body; token "" sends none.
func (f *fixture) call(method, path, token string, body any) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.admin+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, out
}

// get decodes the answer of GET path into v, failing on a status other than 200.
func (f *fixture) get(path string, v any) {
	f.t.Helper()
	f.must(http.StatusOK, v, "GET", path, "", nil)
}

// must sends a request, checks its status and decodes the answer into v (if not nil).
func (f *fixture) must(status int, v any, method, path, token string, body any) {
	f.t.Helper()
	got, out := f.call(method, path, token, body)
	if got != status {
		f.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
}

// send sends one request through cart's listener with user's X-User-ID and returns the
// backend that answered.
func (f *fixture) send(user string) string {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.cart+"/", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("X-User-ID", user)
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Backend")
}
