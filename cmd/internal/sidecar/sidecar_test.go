package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
)

func TestMain(m *testing.M) {
	// fasthttp's own background goroutines: a HostClient's pool cleaner and a Server's worker
	// pool cleaner sleep (idle timeout, 10s) before they notice they are stopped and exit, and
	// the Date header updater lives as long as the process. None grows with traffic.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// testBackend answers its name on every path.
type testBackend struct {
	name, addr string
	srv        *http.Server
	hits       atomic.Int64
}

func startTestBackend(t *testing.T, name string) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{name: name, addr: ln.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, b.name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// fixture is a sidecar on the file source in front of three backends.
type fixture struct {
	t        *testing.T
	dir      string
	backends []*testBackend
	sc       *Sidecar
	cancel   context.CancelFunc
	done     chan error
	client   *http.Client
}

func writeServices(t *testing.T, path string, bs []*testBackend) {
	t.Helper()
	var b strings.Builder
	b.WriteString("services:\n  app:\n")
	for _, be := range bs {
		fmt.Fprintf(&b, "    - {id: %s, address: %q}\n", be.name, be.addr)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const baseConfig = `admin: {listen: "127.0.0.1:0"}
discovery:
  kind: file
  file: {path: %s, poll_interval: 20ms}
upstreams:
  - name: app
    listen: 127.0.0.1:0
    hash_key: [header:X-User-ID]
%s
lifecycle: {drain_delay: %s, grace_period: 5s}
`

// testEngineConfig is the engine section of the test configurations: RINGSIDE_TEST_ENGINE=loop
// runs the suite on the event-loop engine.
func testEngineConfig() string {
	if os.Getenv("RINGSIDE_TEST_ENGINE") == "loop" {
		return "engine: {kind: event_loop}\n"
	}
	return ""
}

func parseConfig(t *testing.T, dir, upstreamExtra, drain string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(baseConfig, filepath.Join(dir, "services.yaml"), upstreamExtra, drain) + testEngineConfig()
	cfg, err := config.Parse("test.yaml", []byte(text), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newFixture(t *testing.T, upstreamExtra, drain string) *fixture {
	t.Helper()
	return newFixtureWith(t, upstreamExtra, drain, nil)
}

// newFixtureWith lets prepare change the sidecar before Run starts.
func newFixtureWith(t *testing.T, upstreamExtra, drain string, prepare func(*Sidecar)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), client: &http.Client{Timeout: 5 * time.Second}}
	for i := range 3 {
		f.backends = append(f.backends, startTestBackend(t, fmt.Sprintf("b%d", i+1)))
	}
	writeServices(t, filepath.Join(f.dir, "services.yaml"), f.backends)
	sc, err := New(parseConfig(t, f.dir, upstreamExtra, drain), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.sc = sc
	if prepare != nil {
		prepare(sc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		f.stop()
		f.client.CloseIdleConnections()
	})
	f.waitReady()
	return f
}

func (f *fixture) stop() error {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		return err
	case <-time.After(10 * time.Second):
		f.t.Fatal("Run did not return within 10s of cancel")
		return nil
	}
}

func (f *fixture) waitReady() {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f.sc.Readiness().Ready {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("not ready: %+v", f.sc.Readiness())
}

func (f *fixture) get(path, user string) (string, int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+f.sc.UpstreamAddr("app")+path, nil)
	if err != nil {
		return "", 0, err
	}
	if user != "" {
		req.Header.Set("X-User-ID", user)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode, err
}

func TestStickyThroughSidecar(t *testing.T) {
	f := newFixture(t, "", "10ms")
	home := make(map[string]string)
	for round := range 5 {
		for u := range 200 {
			user := fmt.Sprintf("user-%d", u)
			got, code, err := f.get("/", user)
			if err != nil || code != 200 {
				t.Fatalf("GET as %s: %d %v", user, code, err)
			}
			if round == 0 {
				home[user] = got
			} else if home[user] != got {
				t.Fatalf("%s moved from %s to %s with no change", user, home[user], got)
			}
		}
	}
	used := make(map[string]int)
	for _, b := range home {
		used[b]++
	}
	if len(used) != 3 {
		t.Errorf("200 users reached %d backends, want all 3: %v", len(used), used)
	}
}

func TestDiscoveryChangeMovesOnlyThatBackendsUsers(t *testing.T) {
	f := newFixture(t, "", "10ms")
	home := make(map[string]string)
	for u := range 300 {
		user := fmt.Sprintf("u%d", u)
		got, _, err := f.get("/", user)
		if err != nil {
			t.Fatal(err)
		}
		home[user] = got
	}
	// Remove b2 from the registry (not a failure: a scale-down).
	writeServices(t, filepath.Join(f.dir, "services.yaml"), []*testBackend{f.backends[0], f.backends[2]})
	deadline := time.Now().Add(5 * time.Second)
	for f.backends[1].hits.Load() > 0 && time.Now().Before(deadline) {
		before := f.backends[1].hits.Load()
		time.Sleep(100 * time.Millisecond)
		if _, _, err := f.get("/", "probe"); err != nil {
			t.Fatal(err)
		}
		if f.backends[1].hits.Load() == before {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	moved, wrong := 0, 0
	for user, was := range home {
		got, _, err := f.get("/", user)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case got == "b2":
			t.Fatalf("%s still reaches b2 after its removal", user)
		case was == "b2":
			moved++
		case got != was:
			wrong++
		}
	}
	if wrong != 0 {
		t.Errorf("%d users of surviving backends moved; want 0", wrong)
	}
	if moved == 0 {
		t.Error("no user was on b2: the test proves nothing")
	}
	t.Logf("%d of %d users moved (b2's), 0 others", moved, len(home))
}

func TestReadyzAndMetrics(t *testing.T) {
	f := newFixture(t, "", "10ms")
	if _, _, err := f.get("/", "alice"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + f.sc.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"app":"ready"`) {
		t.Errorf("/readyz = %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + f.sc.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"ringside_build_info", "ringside_discovery_snapshot_age_seconds{service=\"app\"}", "ringside_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDrainUnderLoad: during the drain (not ready, drain_delay) requests keep being served;
// requests in flight when the listener stops finish; Run returns nil.
func TestDrainUnderLoad(t *testing.T) {
	f := newFixture(t, "", "300ms")
	var (
		wg           sync.WaitGroup
		ok, failed   atomic.Int64
		stopLoad     atomic.Bool
		sawNotReady  atomic.Bool
		lastErr      atomic.Value
		drainStarted = make(chan struct{})
		inflightSlow = make(chan error, 1)
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stopLoad.Load() && i < 5000; i++ {
				_, code, err := f.get("/", fmt.Sprintf("w%d-%d", w, i%50))
				if err != nil || code != 200 {
					select {
					case <-drainStarted:
						// After drain_delay the listener closes: new connections are refused,
						// which callers see only if they ignore the deregistration.
					default:
						failed.Add(1)
						lastErr.Store(fmt.Sprint(code, err))
					}
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	go func() { _, _, err := f.get("/slow", "slow"); inflightSlow <- err }()
	time.Sleep(50 * time.Millisecond)
	f.cancel()
	go func() {
		for !stopLoad.Load() {
			if f.sc.draining.Load() {
				sawNotReady.Store(!f.sc.Readiness().Ready)
				time.Sleep(250 * time.Millisecond) // within drain_delay: still serving
				close(drainStarted)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	err := <-f.done
	f.cancel = nil
	stopLoad.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Run after drain: %v", err)
	}
	if e := <-inflightSlow; e != nil {
		t.Errorf("a request in flight at SIGTERM failed: %v", e)
	}
	if !sawNotReady.Load() {
		t.Error("readiness stayed ready while draining")
	}
	if failed.Load() != 0 {
		t.Errorf("%d requests failed before the listener closed (last: %v); %d ok", failed.Load(), lastErr.Load(), ok.Load())
	}
	t.Logf("%d requests served during the test, 0 failed before the drain delay ended", ok.Load())
}

func reloadConfig(t *testing.T, f *fixture, upstreamExtra string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(baseConfig, filepath.Join(f.dir, "services.yaml"), upstreamExtra, "10ms") + testEngineConfig()
	cfg, err := config.Parse("test.yaml", []byte(text), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestReloadAddsChangesAndRemovesUpstreams(t *testing.T) {
	f := newFixture(t, "", "10ms")
	addr := f.sc.UpstreamAddr("app")
	// Change app's balancer and add a second upstream, round robin, on its own new listener.
	cfg := reloadConfig(t, f, "    balancer: maglev\n  - name: second\n    listen: 127.0.0.1:0\n    service: app\n    balancer: round_robin")
	if err := f.sc.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := f.sc.UpstreamAddr("app"); got != addr {
		t.Errorf("app's listener moved from %s to %s", addr, got)
	}
	second := f.sc.UpstreamAddr("second")
	if second == "" || second == addr {
		t.Fatalf("second upstream's listener %q (app's is %s)", second, addr)
	}
	f.sc.mu.Lock()
	kind := f.sc.upstreams["app"].bal.Config().Kind
	f.sc.mu.Unlock()
	if kind != "maglev" {
		t.Errorf("app's balancer after reload: %s, want maglev", kind)
	}
	// app stays sticky; second spreads one user over every backend.
	home, _, err := f.get("/", "alice")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for range 6 {
		got, _, err := f.get("/", "alice")
		if err != nil || got != home {
			t.Fatalf("app after reload: %q %v, want %s every time", got, err, home)
		}
		resp, err := f.client.Get("http://" + second + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(body)] = true
	}
	if len(seen) != 3 {
		t.Errorf("round robin on second reached %v, want all 3 backends", seen)
	}
	// Removing second closes its listener.
	if err := f.sc.Reload(reloadConfig(t, f, "    balancer: maglev")); err != nil {
		t.Fatal(err)
	}
	if f.sc.UpstreamAddr("second") != "" {
		t.Error("second still has a listener after its removal")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", second, 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("second's listener still accepts 5s after its removal")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReloadRefusals(t *testing.T) {
	f := newFixture(t, "", "10ms")
	bad := reloadConfig(t, f, "")
	bad.Discovery.File.PollInterval = time.Hour
	if err := f.sc.Reload(bad); !errors.Is(err, ErrNeedsRestart) {
		t.Errorf("discovery change: %v, want ErrNeedsRestart", err)
	}
	// A listener whose TLS changes at the same address cannot be bound twice.
	withTLS := reloadConfig(t, f, "")
	withTLS.Upstreams[0].TLS = &config.TLSServer{CertFile: "c", KeyFile: "k"}
	if err := f.sc.Reload(withTLS); !errors.Is(err, ErrNeedsRestart) {
		t.Errorf("tls change at the same address: %v, want ErrNeedsRestart", err)
	}
	if _, code, err := f.get("/", "alice"); err != nil || code != 200 {
		t.Fatalf("after refused reloads: %d %v", code, err)
	}
	// Quick reloads in a row, under -race, while requests flow.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_, _, _ = f.get("/", "bob")
			}
		}
	}()
	for i := range 6 {
		extra := "    balancer: maglev"
		if i%2 == 0 {
			extra = "    balancer: ring_hash"
		}
		if err := f.sc.Reload(reloadConfig(t, f, extra)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	// Once draining, reloads are refused (a reload then would bind what the drain never closes).
	f.cancel()
	deadline := time.Now().Add(5 * time.Second)
	for !f.sc.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for time.Now().Before(deadline) {
		f.sc.mu.Lock()
		closing := f.sc.closing
		f.sc.mu.Unlock()
		if closing {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.sc.Reload(reloadConfig(t, f, "")); !errors.Is(err, ErrDraining) {
		t.Errorf("reload while draining: %v, want ErrDraining", err)
	}
	select {
	case err := <-f.done:
		f.cancel = nil
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a refused reload during the drain")
	}
}

func startListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// A registry that suddenly lists no instances (a Consul agent restarted without state) must
// not take the service down: the last endpoints keep serving until it lists some again.
func TestEmptySnapshotKeepsLastEndpoints(t *testing.T) {
	f := newFixture(t, "", "10ms")
	path := filepath.Join(f.dir, "services.yaml")
	if err := os.WriteFile(path+".tmp", []byte("services:\n  app: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, code, err := f.get("/", "alice"); err != nil || code != 200 {
			t.Fatalf("after the registry emptied: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A non-empty change applies again.
	writeServices(t, path, f.backends[:1])
	deadline = time.Now().Add(5 * time.Second)
	for {
		got, _, err := f.get("/", fmt.Sprintf("u%d", time.Now().UnixNano()%1000))
		if err == nil && got == "b1" {
			ok := true
			for u := range 30 {
				if got, _, _ := f.get("/", fmt.Sprintf("user-%d", u)); got != "b1" {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("a non-empty snapshot after an empty one was not applied")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runSidecar parses text, checks it, runs the sidecar until stop is called and waits until it
// is ready.
func runSidecar(t *testing.T, text string) (sc *Sidecar, stop func()) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatal(err)
	}
	if sc, err = New(cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); !sc.Readiness().Ready && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return sc, func() { cancel(); <-done }
}
