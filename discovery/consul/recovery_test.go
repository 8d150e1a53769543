package consul

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

// TestWatchSurvivesAgentRestart stops the agent under a running watch: the last snapshots
// stay in force, failures are counted but logged once, and after the agent comes back (empty,
// as a -dev agent does) the watch resyncs to exactly what the new agent holds. No goroutine
// outlives the watch.
func TestWatchSurvivesAgentRestart(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	a := consultest.Start(t)
	c := a.Client()
	node := nodeName(t, c)
	register(t, c, ttlService("pay", "pay-1", 7001))
	register(t, c, ttlService("pay", "pay-2", 7002))
	register(t, c, ttlService("ledger", "ledger-1", 7101))

	logger, logs := observedLogger()
	obs := &countingObserver{}
	cfg := testConfig(a)
	cfg.ErrorLogInterval = time.Hour
	src, err := NewSource(cfg, logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	stop := startWatch(t, src, []string{"pay", "ledger"}, rec.update)
	rec.waitFor(t, "pay", waitSnapshot, "pay-1 and pay-2", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 2 })
	rec.waitFor(t, "ledger", waitSnapshot, "ledger-1", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 1 })
	payBefore, ledgerBefore := rec.count("pay"), rec.count("ledger")

	a.Stop()
	consultest.WaitFor(t, 10*time.Second, "10 failed queries", func() bool { return obs.failed.Load() >= 10 })
	if p, l := obs.last("pay"), obs.last("ledger"); p != "failed" || l != "failed" {
		t.Errorf("while the agent is down, the last Observer calls are %q and %q, want failed", p, l)
	}
	if n, m := rec.count("pay"), rec.count("ledger"); n != payBefore || m != ledgerBefore {
		t.Errorf("snapshots published while the agent was down: pay %d -> %d, ledger %d -> %d", payBefore, n, ledgerBefore, m)
	}
	if got := len(rec.last("pay").Endpoints); got != 2 {
		t.Errorf("last pay snapshot has %d endpoints, want the 2 from before the outage", got)
	}
	if n := logs.FilterMessage("consul unreachable; keeping the last snapshots and retrying").Len(); n != 1 {
		t.Errorf("%d log lines for %d failures of an unreachable agent, want 1", n, obs.failed.Load())
	}

	a.Restart()
	register(t, c, ttlService("pay", "pay-3", 7003))
	rec.waitFor(t, "pay", waitSnapshot, "exactly pay-3", func(s *discovery.Snapshot) bool {
		return len(s.Endpoints) == 1 && s.Endpoints[0].ID == "pay-3@"+node
	})
	rec.waitFor(t, "ledger", waitSnapshot, "no endpoints", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 0 })
	// The first full read after the errors is a successful read: Synced, before it publishes.
	if p, l := obs.last("pay"), obs.last("ledger"); p != "synced" || l != "synced" {
		t.Errorf("after the recovery, the last Observer calls are %q and %q, want synced", p, l)
	}
	if n := logs.FilterMessage("consul reachable again").Len(); n != 1 {
		t.Errorf("%d 'reachable again' lines, want 1", n)
	}

	stop()
	a.Stop()
	goleak.VerifyNone(t, leaks)
}

// TestWatchUnreachable checks a Source whose agent never answers: no snapshot, failures
// counted per retry, one log line for all services, and Watch still ends with its context.
func TestWatchUnreachable(t *testing.T) {
	t.Parallel()
	logger, logs := observedLogger()
	obs := &countingObserver{}
	src, err := NewSource(Config{
		Address:          closedAddr(t),
		Backoff:          discovery.Backoff{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		ErrorLogInterval: time.Hour,
	}, logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	stop := startWatch(t, src, []string{"a", "b", "c"}, rec.update)
	consultest.WaitFor(t, 10*time.Second, "30 failed queries", func() bool { return obs.failed.Load() >= 30 })
	stop()
	if n := rec.count("a") + rec.count("b") + rec.count("c"); n != 0 {
		t.Errorf("%d snapshots published without a registry", n)
	}
	if n := logs.FilterMessageSnippet("consul unreachable").Len(); n != 1 {
		t.Errorf("%d log lines for %d failures, want 1", n, obs.failed.Load())
	}
	if obs.synced.Load() != 0 {
		t.Errorf("Synced reported without a registry")
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
