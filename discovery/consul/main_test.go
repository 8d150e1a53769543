package consul

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is an UpdateFunc sink: it keeps every snapshot delivered, per service.
type recorder struct {
	mu      sync.Mutex
	history map[string][]*discovery.Snapshot
	changed chan struct{} // closed and replaced on every update
}

func newRecorder() *recorder {
	return &recorder{history: make(map[string][]*discovery.Snapshot), changed: make(chan struct{})}
}

func (r *recorder) update(s *discovery.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history[s.Service] = append(r.history[s.Service], s)
	close(r.changed)
	r.changed = make(chan struct{})
}

// count returns how many snapshots of svc were delivered.
func (r *recorder) count(svc string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.history[svc])
}

// last returns the last snapshot of svc, or nil.
func (r *recorder) last(svc string) *discovery.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.history[svc]
	if len(h) == 0 {
		return nil
	}
	return h[len(h)-1]
}

// waitFor waits until the last snapshot of svc satisfies ok, and returns it; it fails the
// test after timeout, showing the last snapshot.
func (r *recorder) waitFor(t testing.TB, svc string, timeout time.Duration, what string, ok func(*discovery.Snapshot) bool) *discovery.Snapshot {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		h, ch := r.history[svc], r.changed
		r.mu.Unlock()
		if len(h) > 0 && ok(h[len(h)-1]) {
			return h[len(h)-1]
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("service %q: no snapshot with %s after %v; last: %s", svc, what, timeout, describe(r.last(svc)))
		}
	}
}

// describe renders a snapshot for failure messages.
func describe(s *discovery.Snapshot) string {
	if s == nil {
		return "none"
	}
	var b strings.Builder
	b.WriteString("rev ")
	b.WriteString(strconv.FormatUint(s.Revision, 10))
	for _, e := range s.Endpoints {
		b.WriteString("\n  ")
		b.WriteString(e.ID + " " + e.Address + " " + e.Health.String() + " w=" + strconv.Itoa(e.Weight) + " zone=" + e.Zone)
	}
	return b.String()
}

// countingObserver counts what a source reports. Safe for concurrent use.
type countingObserver struct {
	synced, failed atomic.Int64
	mu             sync.Mutex
	malformed      []string
	lastErr        error
	lastCall       map[string]string // "synced" or "failed", by service
}

func (o *countingObserver) Synced(service string, _ time.Time) {
	o.synced.Add(1)
	o.called(service, "synced")
}

func (o *countingObserver) Failed(service string, err error) {
	o.failed.Add(1)
	o.mu.Lock()
	o.lastErr = err
	o.mu.Unlock()
	o.called(service, "failed")
}

func (o *countingObserver) called(service, what string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lastCall == nil {
		o.lastCall = make(map[string]string)
	}
	o.lastCall[service] = what
}

// last returns the last of Synced and Failed called for service: "synced", "failed" or "".
func (o *countingObserver) last(service string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastCall[service]
}

func (o *countingObserver) Malformed(_, entry string, _ error) {
	o.mu.Lock()
	o.malformed = append(o.malformed, entry)
	o.mu.Unlock()
}

func (o *countingObserver) malformedEntries() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.malformed...)
}

func (o *countingObserver) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastErr
}

// testConfig returns a Config for agent a with test-sized timings.
func testConfig(a *consultest.Agent) Config {
	return Config{
		Address:              a.Addr(),
		Scheme:               "http",
		Backoff:              discovery.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Pacing:               discovery.Pacing{Settle: 500 * time.Millisecond, Coalesce: 10 * time.Millisecond},
		RegistrationInterval: 100 * time.Millisecond,
		RequestTimeout:       5 * time.Second,
	}
}

// offerTo adapts an UpdateFunc to a serviceWatch's offer, for tests that publish without a
// pacer.
func offerTo(update discovery.UpdateFunc) func(*discovery.Snapshot, bool) {
	return func(s *discovery.Snapshot, _ bool) { update(s) }
}

// observedLogger returns a logger that records every entry, at every level.
func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// startWatch runs src.Watch in a goroutine until the test ends, then checks that it returned
// context.Canceled.
func startWatch(t testing.TB, src *Source, services []string, update discovery.UpdateFunc) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, services, update) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Watch returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Watch did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// register registers a service with the agent, failing the test on error.
func register(t testing.TB, c *api.Client, reg *api.AgentServiceRegistration) {
	t.Helper()
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register %s: %v", reg.ID, err)
	}
}

// nodeName returns the agent's node name, part of every endpoint ID.
func nodeName(t testing.TB, c *api.Client) string {
	t.Helper()
	name, err := c.Agent().NodeName()
	if err != nil {
		t.Fatalf("node name: %v", err)
	}
	return name
}
