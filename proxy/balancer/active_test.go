package balancer

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

// healthServer is a loopback backend whose health endpoint answers status.
type healthServer struct {
	*httptest.Server
	status atomic.Int64
	good   atomic.Int64 // probes answered with 200
	bad    atomic.Int64 // probes answered otherwise
	delay  time.Duration

	mu    sync.Mutex
	hosts map[string]bool
	paths map[string]bool

	active, peak atomic.Int64
}

func newHealthServer(t *testing.T, delay time.Duration) *healthServer {
	return startHealthServer(t, delay, false)
}

// startHealthServer starts a healthServer, serving HTTPS when tls is set.
func startHealthServer(t *testing.T, delay time.Duration, tls bool) *healthServer {
	s := &healthServer{delay: delay, hosts: map[string]bool{}, paths: map[string]bool{}}
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.active.Add(1)
		defer s.active.Add(-1)
		for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
		}
		s.mu.Lock()
		s.hosts[r.Host], s.paths[r.URL.Path] = true, true
		s.mu.Unlock()
		if s.delay > 0 {
			select {
			case <-time.After(s.delay):
			case <-r.Context().Done():
				return
			}
		}
		code := int(s.status.Load())
		if code == http.StatusOK {
			s.good.Add(1)
		} else {
			s.bad.Add(1)
		}
		w.WriteHeader(code)
	}))
	if tls {
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes a test fails on purpose
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *healthServer) addr() string { return s.Listener.Addr().String() }

// closedAddr returns a loopback address on which nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runUpstream runs u until the test ends, and checks that Run stops on cancel.
func runUpstream(t *testing.T, u *Upstream) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	waitFor(t, "Run to start", u.running.Load)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want %v", err, context.Canceled)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func activeConfig() Config {
	return Config{Active: ActiveConfig{
		// Timeouts far above a loopback round trip, even on a loaded machine under -race.
		Path: "/healthz", Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond,
		HealthyThreshold: 2, UnhealthyThreshold: 3, Concurrency: 2, Host: "svc.internal",
	}}
}

func TestActiveChecks(t *testing.T) {
	a, b, d := newHealthServer(t, 0), newHealthServer(t, 0), newHealthServer(t, 0)
	eps := []discovery.Endpoint{
		{ID: "a", Address: a.addr(), Weight: 1},
		{ID: "b", Address: b.addr(), Weight: 1},
		{ID: "c", Address: closedAddr(t), Weight: 1},
		{ID: "d", Address: d.addr(), Weight: 1},
	}
	u, _, rec := newTest(t, activeConfig(), snap(eps...))
	runUpstream(t, u)

	state := func(id string) func() bool {
		return func() bool { return handle(u, id).State() == ActiveUnhealthy }
	}
	waitFor(t, "c (refusing connections) to fail its checks", state("c"))
	waitFor(t, "a to pass some checks", func() bool { return a.good.Load() >= 3 })
	if st := handle(u, "a").State(); st != Healthy {
		t.Fatalf("a is %v, want healthy", st)
	}

	a.status.Store(http.StatusServiceUnavailable)
	waitFor(t, "a to fail its checks", state("a"))
	if n := a.bad.Load(); n < 3 {
		t.Errorf("a out after %d failed probes, want at least the threshold 3", n)
	}
	for _, h := range keyHashes(500) {
		if id := first(u, h); id == "a" || id == "c" {
			t.Fatalf("request sent to %s, which fails its active checks", id)
		}
	}
	// The verdict survives an unrelated snapshot.
	u.Update(snap(append(eps, ep("e"))...))
	if st := handle(u, "a").State(); st != ActiveUnhealthy {
		t.Errorf("after a swap a is %v, want active_unhealthy", st)
	}

	goodBefore := a.good.Load()
	a.status.Store(http.StatusOK)
	waitFor(t, "a to pass again", func() bool { return handle(u, "a").State() == Healthy })
	if n := a.good.Load() - goodBefore; n < 2 {
		t.Errorf("a back after %d passing probes, want at least the threshold 2", n)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hosts["svc.internal"] || len(a.hosts) != 1 || !a.paths["/healthz"] || len(a.paths) != 1 {
		t.Errorf("probes came with hosts %v paths %v", a.hosts, a.paths)
	}
	if _, _, c := rec.snapshot(); c.Total() != 5 {
		t.Errorf("last StateChanged %+v, want 5 endpoints", c)
	}
}

func TestActiveChecksTimeoutAndStatusRange(t *testing.T) {
	slow := newHealthServer(t, time.Second)
	redirect := newHealthServer(t, 0)
	redirect.status.Store(http.StatusFound)
	notFound := newHealthServer(t, 0)
	notFound.status.Store(http.StatusNotFound)
	cfg := activeConfig()
	cfg.PanicThreshold = -1
	u, _, _ := newTest(t, cfg, snap(
		discovery.Endpoint{ID: "slow", Address: slow.addr(), Weight: 1},
		discovery.Endpoint{ID: "redirect", Address: redirect.addr(), Weight: 1},
		discovery.Endpoint{ID: "notfound", Address: notFound.addr(), Weight: 1},
	))
	runUpstream(t, u)
	waitFor(t, "the slow endpoint to time out", func() bool { return handle(u, "slow").State() == ActiveUnhealthy })
	waitFor(t, "404 to fail", func() bool { return handle(u, "notfound").State() == ActiveUnhealthy })
	waitFor(t, "more probes of the 302", func() bool { return redirect.bad.Load() >= 5 })
	if st := handle(u, "redirect").State(); st != Healthy {
		t.Errorf("302 (in the default range 200-399) made it %v", st)
	}
}

func TestActiveChecksPoolIsBounded(t *testing.T) {
	// 8 endpoints due at once keep 2 workers busy; the timeout is far enough that no probe is
	// abandoned (an abandoned one may linger in the server and look like a third).
	srv := newHealthServer(t, 10*time.Millisecond)
	var eps []discovery.Endpoint
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		eps = append(eps, discovery.Endpoint{ID: id, Address: srv.addr(), Weight: 1})
	}
	cfg := activeConfig()
	cfg.Active.Interval, cfg.Active.Timeout = 200*time.Millisecond, 200*time.Millisecond
	u, _, _ := newTest(t, cfg, snap(eps...))
	runUpstream(t, u)
	waitFor(t, "many probes", func() bool { return srv.good.Load() >= 24 })
	if p := srv.peak.Load(); p != 2 || srv.bad.Load() != 0 {
		t.Errorf("%d probes at once (%d failed), want Concurrency 2", p, srv.bad.Load())
	}
}

func TestRunTwice(t *testing.T) {
	u, _, _ := newTest(t, activeConfig(), snap(ids(1)...))
	runUpstream(t, u)
	if err := u.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want %v", err, ErrRunning)
	}
}

func TestActiveChecksFollowUpdates(t *testing.T) {
	// Run starts before the first snapshot; endpoints that arrive later get probed.
	u, _, _ := newTest(t, activeConfig(), nil)
	runUpstream(t, u)
	srv := newHealthServer(t, 0)
	srv.status.Store(http.StatusInternalServerError)
	u.Update(snap(discovery.Endpoint{ID: "late", Address: srv.addr(), Weight: 1}, ep("x")))
	waitFor(t, "the late endpoint to be probed", func() bool { return handle(u, "late").State() == ActiveUnhealthy })
	// Once removed, it is probed no more.
	u.Update(snap(ep("x")))
	time.Sleep(10 * time.Millisecond) // a probe already handed out may still land
	n := srv.bad.Load()
	time.Sleep(100 * time.Millisecond)
	if got := srv.bad.Load(); got != n {
		t.Errorf("%d probes of a removed endpoint", got-n)
	}
}

// Timeout may equal Interval, so a probe may last as long as the interval: the next probe of
// an endpoint is scheduled from the end of the last one, never overlapping it.
func TestActiveChecksNeverOverlapOnOneEndpoint(t *testing.T) {
	// Each probe takes 95% of the interval; scheduled from their starts (interval ± 10%),
	// about one in three would begin before the last one ended.
	srv := newHealthServer(t, 95*time.Millisecond)
	cfg := activeConfig()
	cfg.Active.Interval, cfg.Active.Timeout = 100*time.Millisecond, 100*time.Millisecond
	cfg.Active.Concurrency = 4
	u, _, _ := newTest(t, cfg, snap(discovery.Endpoint{ID: "slow", Address: srv.addr(), Weight: 1}))
	runUpstream(t, u)
	waitFor(t, "12 probes", func() bool { return srv.good.Load()+srv.bad.Load() >= 12 })
	if p := srv.peak.Load(); p != 1 {
		t.Errorf("%d probes of one endpoint at once, want 1", p)
	}
}
