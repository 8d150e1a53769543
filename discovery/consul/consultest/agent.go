// Package consultest runs a real Consul agent (v1.15.4, "consul agent -dev") for integration
// tests, so that tests talk to Consul itself and never to an imitation of its HTTP API.
//
// The agent binary is built once by agent/build.sh (called by "make test") into
// <repo root>/.cache/bin/consul-1.15.4; RINGSIDE_CONSUL_BIN names another binary. Each Agent
// gets its own free ports and data directory, so tests may run agents in parallel.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// startTimeout bounds how long an agent may take to elect itself leader.
const startTimeout = 60 * time.Second

// Agent is a running single-node Consul agent in -dev mode, stopped when the test ends.
//
// Its methods are safe for concurrent use, but Stop and Restart are meant to be called from
// the test goroutine.
type Agent struct {
	t     testing.TB
	bin   string
	dir   string // t.TempDir(): data directories and the log
	log   string // path of the agent's log file (all starts append to it)
	ports ports
	args  []string // extra arguments given to StartWith

	client    *api.Client
	transport *http.Transport

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	starts int
}

// Options adjust the agent a test starts.
type Options struct {
	// Args are appended to the "consul agent -dev ..." command line, for example
	// []string{"-hcl", "limits { http_max_conns_per_client = 1000 }"}.
	Args []string
}

// Start starts an agent and waits until it is leader of its own one-node cluster. The test
// fails when the binary is missing (run agent/build.sh or "make test"); under -short it is
// skipped instead. The agent is stopped, and its log printed if the test failed, in t.Cleanup.
func Start(t testing.TB) *Agent {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Agent {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if testing.Short() {
			t.Skipf("consultest: %v", err)
		}
		t.Fatalf("consultest: %v", err)
	}
	dir := t.TempDir()
	a := &Agent{
		t:    t,
		bin:  bin,
		dir:  dir,
		log:  filepath.Join(dir, "consul.log"),
		args: append([]string(nil), opts.Args...),
	}
	t.Cleanup(a.cleanup)
	// The ports are found free, then bound by the agent a moment later: another process
	// (another test package runs in parallel) may take one in between. Then the agent exits
	// at once, and it is started again on other ports.
	for try := 1; ; try++ {
		if a.ports, err = freePorts(); err != nil {
			t.Fatalf("consultest: %v", err)
		}
		if a.client, a.transport, err = newClient(a.Addr()); err != nil {
			t.Fatalf("consultest: %v", err)
		}
		err = a.start()
		if err == nil {
			return a
		}
		if !errors.Is(err, errPortTaken) || try == 3 {
			t.Fatalf("consultest: %v", err)
		}
		_ = a.stop() // reaps the exited agent: start refuses while one is recorded
	}
}

// errPortTaken says that the agent exited during start-up because a port was in use.
var errPortTaken = errors.New("a port of the agent was taken")

// Addr returns the agent's HTTP address, host:port.
func (a *Agent) Addr() string {
	return "127.0.0.1:" + strconv.Itoa(a.ports.http)
}

// Client returns a client of the agent's HTTP API. It ignores the CONSUL_* environment
// (scheme, TLS) so tests do not depend on the shell they run in.
func (a *Agent) Client() *api.Client {
	return a.client
}

// LogPath returns the path of the agent's log file.
func (a *Agent) LogPath() string {
	return a.log
}

// Stop stops the agent (SIGTERM, then SIGKILL after a few seconds) and waits for it to exit.
// It is a no-op when the agent is not running.
func (a *Agent) Stop() {
	a.t.Helper()
	if err := a.stop(); err != nil {
		a.t.Errorf("consultest: %v", err)
	}
}

// Restart stops the agent and starts it again on the same ports, with a new, empty data
// directory: like any -dev agent it comes back with no services, checks or KV data, which is
// how an agent that lost its state looks to clients. It waits for the new leader.
func (a *Agent) Restart() {
	a.t.Helper()
	if err := a.stop(); err != nil {
		a.t.Fatalf("consultest: %v", err)
	}
	if err := a.start(); err != nil {
		a.t.Fatalf("consultest: %v", err)
	}
}

// start launches the agent and waits for its leader.
func (a *Agent) start() error {
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		return errors.New("agent already running")
	}
	a.starts++
	data := filepath.Join(a.dir, "data-"+strconv.Itoa(a.starts))
	logf, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.mu.Unlock()
		return fmt.Errorf("agent log: %w", err)
	}
	fmt.Fprintf(logf, "==== consultest: start %d ====\n", a.starts)
	args := append(a.ports.args(data, "ringside-test-"+strconv.Itoa(a.ports.http)), a.args...)
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		a.mu.Unlock()
		return fmt.Errorf("start %s: %w", a.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a stopped agent tells nothing
		logf.Close()
		close(done)
	}()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	return a.waitLeader(done)
}

// waitLeader polls /v1/status/leader until the agent reports a leader, the agent exits or
// startTimeout passes.
func (a *Agent) waitLeader(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log := a.tail()
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("agent on %s exited during start-up: %w; log:\n%s", a.Addr(), errPortTaken, log)
			}
			return fmt.Errorf("agent on %s exited during start-up; log:\n%s", a.Addr(), log)
		default:
		}
		leader, err := a.client.Status().Leader()
		if err == nil && leader != "" {
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	_ = a.stop()
	return fmt.Errorf("agent on %s has no leader after %v (last error: %v); log:\n%s",
		a.Addr(), startTimeout, last, a.tail())
}

// stop signals the running agent and waits for it to exit.
func (a *Agent) stop() error {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd, a.done = nil, nil
	a.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("agent pid %d did not exit", cmd.Process.Pid)
		}
	}
	a.transport.CloseIdleConnections()
	return nil
}

// cleanup stops the agent and, if the test failed, prints the end of its log.
func (a *Agent) cleanup() {
	if err := a.stop(); err != nil {
		a.t.Errorf("consultest: %v", err)
	}
	if a.t.Failed() {
		a.t.Logf("consultest: log of the agent on %s (%s):\n%s", a.Addr(), a.log, a.tail())
	}
}

// tail returns the last 16 KiB of the agent's log.
func (a *Agent) tail() string {
	b, err := os.ReadFile(a.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// newClient returns an API client of addr over a transport of its own, so Stop can close
// its idle connections (goleak would report their goroutines).
func newClient(addr string) (*api.Client, *http.Transport, error) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	c, err := api.NewClient(&api.Config{
		Address:    addr,
		Scheme:     "http",
		HttpClient: &http.Client{Transport: tr},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("api client of %s: %w", addr, err)
	}
	return c, tr, nil
}

// WaitFor polls cond every 20ms until it returns true or timeout passes, then fails the test
// with msg. A helper for the eventual consistency of an agent's catalog.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("consultest: %s: not true after %v", msg, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
