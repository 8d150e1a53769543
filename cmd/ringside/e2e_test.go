package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

// The end-to-end tests run the real thing: the ringside binary built from this package, a real
// Consul agent, three app instances each with its own ringside registering it, and a caller's
// ringside routing to them by X-User-ID.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary ringsideBinary built, so that runs do not pile them up in the
// temporary folder (33 MB each).
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// ringsideBinary builds the binary once per test run.
func ringsideBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ringside-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ringside")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a ringside process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	logMu *sync.Mutex
	done  chan error
	admin string
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func startRingside(t *testing.T, name, cfgText string, admin string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, log: new(bytes.Buffer), logMu: new(sync.Mutex), done: make(chan error, 1), admin: admin}
	p.cmd = exec.Command(ringsideBinary(t), "-config", path)
	p.cmd.Stdout = lockedWriter{p.logMu, p.log}
	p.cmd.Stderr = lockedWriter{p.logMu, p.log}
	p.cmd.Env = append(os.Environ(), "CONSUL_HTTP_TOKEN=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", p.name, p.logs())
		}
	})
	return p
}

func (p *proc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

func (p *proc) signal(sig os.Signal) {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
		return -1
	}
}

func (p *proc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	consultest.WaitFor(t, timeout, p.name+" ready", func() bool {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// app is a demo app instance answering its name.
type app struct {
	name string
	port int
	srv  *http.Server
	hits atomic.Int64
}

func startApp(t *testing.T, name string) *app {
	t.Helper()
	a := &app{name: name, port: freePort(t)}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", a.port))
	if err != nil {
		t.Fatal(err)
	}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			a.hits.Add(1)
		}
		_, _ = io.WriteString(w, a.name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(func() { _ = a.srv.Close() })
	return a
}

// cluster is the whole end-to-end set-up.
type cluster struct {
	agent    *consultest.Agent
	apps     []*app
	sidecars []*proc
	caller   *proc
	url      string
	client   *http.Client
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and runs a Consul agent")
	}
	c := &cluster{agent: consultest.Start(t), client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(c.client.CloseIdleConnections)
	for i := range 3 {
		a := startApp(t, fmt.Sprintf("app-%d", i+1))
		c.apps = append(c.apps, a)
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := fmt.Sprintf(`admin: {listen: %q}
discovery:
  kind: consul
  consul: {address: %q}
register:
  id: %s
  service: app
  address: 127.0.0.1
  port: %d
  check: {http: "http://127.0.0.1:%d/healthz", interval: 1s, timeout: 1s, deregister_after: 1m}
lifecycle: {drain_delay: 1s, grace_period: 10s}
log: {level: info}
`, admin, c.agent.Addr(), a.name, a.port, a.port)
		c.sidecars = append(c.sidecars, startRingside(t, "sidecar-"+a.name, cfg, admin))
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`admin: {listen: %q}
discovery:
  kind: consul
  consul: {address: %q, passing_only: true}
upstreams:
  - name: app
    listen: %q
    hash_key: [header:X-User-ID]
    timeouts: {dial: 500ms}
lifecycle: {drain_delay: 100ms, grace_period: 5s}
`, admin, c.agent.Addr(), listen)
	c.caller = startRingside(t, "caller", cfg, admin)
	c.url = "http://" + listen + "/"
	c.caller.waitReady(t, 20*time.Second)
	consultest.WaitFor(t, 20*time.Second, "three instances registered and passing", func() bool {
		entries, _, err := c.agent.Client().Health().Service("app", "", true, nil)
		return err == nil && len(entries) == 3
	})
	// The caller's view follows within a blocking-query round trip; wait until it reaches all 3.
	consultest.WaitFor(t, 10*time.Second, "caller routes to all three", func() bool {
		seen := make(map[string]bool)
		for u := range 60 {
			if got, err := c.get(fmt.Sprintf("warm-%d", u)); err == nil {
				seen[got] = true
			}
		}
		return len(seen) == 3
	})
	return c
}

func (c *cluster) get(user string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, c.url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-User-ID", user)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return string(body), nil
}

// routeAll sends one request per user and returns where each landed.
func (c *cluster) routeAll(t *testing.T, users int) map[string]string {
	t.Helper()
	got := make(map[string]string, users)
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		name, err := c.get(user)
		if err != nil {
			t.Fatalf("GET as %s: %v", user, err)
		}
		got[user] = name
	}
	return got
}

// load sends GETs from workers until stop, counting outcomes.
type load struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       atomic.Bool
	wg         sync.WaitGroup
}

func (c *cluster) startLoad(workers int, maxDuration time.Duration) *load {
	l := &load{}
	deadline := time.Now().Add(maxDuration)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; !l.stop.Load() && time.Now().Before(deadline); i++ {
				if _, err := c.get(fmt.Sprintf("load-%d-%d", w, i%200)); err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) finish() (ok, failed int64) {
	l.stop.Store(true)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load()
}

func TestE2EStickiness(t *testing.T) {
	c := startCluster(t)
	home := c.routeAll(t, 1000)
	perApp := make(map[string]int)
	for _, a := range home {
		perApp[a]++
	}
	for round := 1; round < 10; round++ {
		for user, was := range c.routeAll(t, 1000) {
			if was != home[user] {
				t.Fatalf("round %d: %s moved from %s to %s with nothing changed", round, user, home[user], was)
			}
		}
	}
	t.Logf("10,000 requests from 1,000 users: every user on one instance; users per instance %v", perApp)
	if len(perApp) != 3 {
		t.Errorf("users reached %d instances, want 3", len(perApp))
	}
}

// TestE2EHardKill: an instance killed hard (app and sidecar, SIGKILL) loses only its own
// users, they move within a second, and no GET fails meanwhile.
func TestE2EHardKill(t *testing.T) {
	c := startCluster(t)
	home := c.routeAll(t, 1000)
	victim := c.apps[1]
	l := c.startLoad(4, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	c.sidecars[1].signal(syscall.SIGKILL)
	_ = victim.srv.Close() // the app dies with it: connections refused from now on
	killed := time.Now()
	time.Sleep(time.Second)
	ok, failed := l.finish()
	after := c.routeAll(t, 1000)
	moved, others := 0, 0
	for user, was := range home {
		switch {
		case after[user] == victim.name:
			t.Fatalf("%s still reaches the killed instance", user)
		case was == victim.name:
			moved++
		case after[user] != was:
			others++
		}
	}
	t.Logf("kill: %d GETs ok, %d failed during the %s after the kill; %d users moved (the victim's), %d others moved",
		ok, failed, time.Since(killed).Round(time.Millisecond), moved, others)
	if failed != 0 {
		t.Errorf("%d GETs failed (last: %v)", failed, l.lastErr.Load())
	}
	if others != 0 {
		t.Errorf("%d users of surviving instances moved", others)
	}
	if moved == 0 {
		t.Error("no user was on the victim: the test proves nothing")
	}
}

// TestE2ESigtermDrain: a sidecar sent SIGTERM during steady load deregisters its app and
// drains; the caller sees zero failed requests, and the sidecar exits 0.
func TestE2ESigtermDrain(t *testing.T) {
	c := startCluster(t)
	l := c.startLoad(8, 30*time.Second)
	time.Sleep(time.Second)
	before := l.ok.Load()
	start := time.Now()
	c.sidecars[0].signal(syscall.SIGTERM)
	code := c.sidecars[0].wait(t, 15*time.Second)
	hitsAtExit := c.apps[0].hits.Load()
	time.Sleep(time.Second)
	ok, failed := l.finish()
	rate := float64(ok-before) / time.Since(start).Seconds()
	t.Logf("SIGTERM drain: exit %d after %s; %d requests ok (%.0f/s during the drain), %d failed",
		code, time.Since(start).Round(time.Millisecond), ok, rate, failed)
	if code != 0 {
		t.Errorf("sidecar exited %d after SIGTERM, want 0", code)
	}
	if failed != 0 {
		t.Errorf("%d requests failed at the caller (last: %v)", failed, l.lastErr.Load())
	}
	if rate < 500 {
		t.Logf("note: load was %.0f requests/s, under the 500/s the issue asks for (shared 2-core machine)", rate)
	}
	if got := c.apps[0].hits.Load(); got != hitsAtExit {
		t.Errorf("app-1 still got %d requests after its sidecar deregistered it and exited", got-hitsAtExit)
	}
	entries, _, err := c.agent.Client().Health().Service("app", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Service.ID == c.apps[0].name {
			t.Errorf("%s is still registered after its sidecar drained", e.Service.ID)
		}
	}
}

// TestE2EConsulOutage: with the agent down for 10s, traffic keeps flowing on the last
// snapshot; after it restarts (empty, as a -dev agent does), the sidecars register their apps
// again and the caller resyncs.
func TestE2EConsulOutage(t *testing.T) {
	c := startCluster(t)
	home := c.routeAll(t, 300)
	l := c.startLoad(4, 60*time.Second)
	c.agent.Stop()
	time.Sleep(10 * time.Second)
	okDown, failedDown := l.ok.Load(), l.failed.Load()
	c.agent.Restart()
	consultest.WaitFor(t, 30*time.Second, "three instances registered again", func() bool {
		entries, _, err := c.agent.Client().Health().Service("app", "", true, nil)
		return err == nil && len(entries) == 3
	})
	time.Sleep(time.Second)
	ok, failed := l.finish()
	t.Logf("outage: %d ok / %d failed during the 10s outage; %d ok / %d failed in all", okDown, failedDown, ok, failed)
	if failed != 0 {
		t.Errorf("%d requests failed (last: %v)", failed, l.lastErr.Load())
	}
	for user, was := range c.routeAll(t, 300) {
		if home[user] != was {
			t.Errorf("%s moved from %s to %s across the outage", user, home[user], was)
		}
	}
}

func TestE2EBadConfigExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	text := "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    balancer: sticky\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runExpectingExit2(t, path)
	if want := "bad.yaml:4: upstreams[0].balancer:"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// runExpectingExit2 runs the binary on the configuration at path, fails the test unless it
// exits 2 (bad configuration), and returns what it printed.
func runExpectingExit2(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ringsideBinary(t), "-config", path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, out)
	}
	return string(out)
}

// TestE2ESecondSignalExitsAtOnce: the first SIGTERM drains (here for a 10s drain delay); a
// second one ends the process at once.
func TestE2ESecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	services := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(services, []byte("services:\n  app:\n    - {address: 127.0.0.1:9}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startRingside(t, "signals", fmt.Sprintf(`admin: {listen: %q}
discovery: {kind: file, file: {path: %q}}
upstreams: [{name: app, listen: "127.0.0.1:0"}]
lifecycle: {drain_delay: 10s, grace_period: 20s}
`, admin, services), admin)
	p.waitReady(t, 10*time.Second)
	p.signal(syscall.SIGTERM)
	consultest.WaitFor(t, 5*time.Second, "not ready while draining", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(t, 3*time.Second); code != 1 {
		t.Errorf("exit %d after the second signal, want 1", code)
	}
	t.Logf("exited %s after the second signal (drain delay was 10s)", time.Since(start).Round(time.Millisecond))
}
