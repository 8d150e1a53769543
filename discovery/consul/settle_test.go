package consul

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

// The agent restarts without its state, and the instances register again one by one; pay-3
// died meanwhile and never does. Applying each partial view would move users to other
// instances and back (3 -> 1 -> 2 endpoints): while the agent settles, removals are held, so
// the set never shrinks, and at the end of the window the full view applies and pay-3 goes,
// within the window plus one update.
func TestWatchHoldsRemovalsWhileAgentRefills(t *testing.T) {
	const settle = 2 * time.Second
	a := consultest.Start(t)
	c := a.Client()
	node := nodeName(t, c)
	for i, id := range []string{"pay-1", "pay-2", "pay-3"} {
		register(t, c, ttlService("pay", id, 7001+i))
	}
	cfg := testConfig(a)
	cfg.Pacing = discovery.Pacing{Settle: settle, Coalesce: 10 * time.Millisecond}
	src, err := NewSource(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, []string{"pay"}, rec.update)
	rec.waitFor(t, "pay", waitSnapshot, "3 endpoints", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 3 })
	before := rec.count("pay")

	restarting := time.Now() // the settle window starts after this, once the agent answers
	a.Restart()
	restarted := time.Now() // and before this
	register(t, c, ttlService("pay", "pay-1", 7001))
	time.Sleep(300 * time.Millisecond)
	register(t, c, ttlService("pay", "pay-2", 7002))

	rec.waitFor(t, "pay", waitSnapshot, "pay-1 and pay-2", func(s *discovery.Snapshot) bool {
		return slices.Equal(endpointIDs(s), []string{"pay-1@" + node, "pay-2@" + node})
	})
	removed, sinceRestarting := time.Since(restarted), time.Since(restarting)
	rec.mu.Lock()
	after := slices.Clone(rec.history["pay"][before:])
	rec.mu.Unlock()
	for _, s := range after[:len(after)-1] {
		if ids := endpointIDs(s); len(ids) != 3 {
			t.Errorf("while the agent refilled, a snapshot of %v was delivered: a partial view, want all 3 held", ids)
		}
	}
	if sinceRestarting < settle {
		t.Errorf("pay-3 removed %v after the agent's restart began, within the %v settle window", sinceRestarting.Round(time.Millisecond), settle)
	}
	if limit := settle + time.Second; removed > limit {
		t.Errorf("pay-3 removed %v after the agent came back, want within %v", removed.Round(time.Millisecond), limit)
	}
}

// The agent stays down long enough for the backoff to grow, then comes back: every service's
// watch must notice within about a second, and the registrar must register its app again as
// soon (retries while the agent is unreachable are capped at Backoff.Unreachable, 1s), not
// after the many seconds a backoff grown towards its cap would wait.
func TestAgentBackNoticedWithinASecond(t *testing.T) {
	a := consultest.Start(t)
	services := []string{"a", "b", "c", "d"}
	for _, svc := range services {
		register(t, a.Client(), ttlService(svc, svc+"-1", 7001))
	}
	cfg := testConfig(a)
	cfg.Backoff = discovery.Backoff{Base: time.Second, Max: 30 * time.Second}
	obs := &syncTimes{}
	src, err := NewSource(cfg, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, services, rec.update)
	for _, svc := range services {
		rec.waitFor(t, svc, waitSnapshot, "1 endpoint", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 1 })
	}
	r, err := NewRegistrar(cfg, discovery.Registration{ID: "app-1", Service: "app", Address: "127.0.0.1", Port: 7070}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-runErr
	}()
	consultest.WaitFor(t, 5*time.Second, "app-1 registered", func() bool { return hasService(a.Client(), "app-1") })

	a.Stop()
	time.Sleep(8 * time.Second) // five or so failures each: a backoff from 1s would be at 8-16s
	a.Restart()
	back := time.Now()
	consultest.WaitFor(t, 10*time.Second, "app-1 registered again", func() bool { return hasService(a.Client(), "app-1") })
	if d := time.Since(back); d > 1500*time.Millisecond {
		t.Errorf("app-1 registered again %v after the agent was back, want within ~1s", d.Round(time.Millisecond))
	}
	consultest.WaitFor(t, 10*time.Second, "every service synced after the restart", func() bool {
		return obs.allSyncedAfter(services, back)
	})
	for _, svc := range services {
		if d := obs.firstSyncAfter(svc, back).Sub(back); d > 1500*time.Millisecond {
			t.Errorf("service %s: first read %v after the agent was back, want within ~1s", svc, d.Round(time.Millisecond))
		}
	}
}

// Checks that flap as fast as the agent takes updates make a change every few milliseconds;
// the source delivers at most one snapshot per Coalesce, so a large ring is not rebuilt
// hundreds of times a second, and the last delivery is the last state.
func TestWatchCoalescesFlappingChecks(t *testing.T) {
	const (
		coalesce  = 250 * time.Millisecond
		instances = 8
		flapFor   = 2 * time.Second
	)
	a := consultest.Start(t)
	c := a.Client()
	for i := range instances {
		register(t, c, ttlService("pay", fmt.Sprintf("pay-%d", i), 7001+i))
	}
	cfg := testConfig(a)
	cfg.Pacing = discovery.Pacing{Coalesce: coalesce}
	src, err := NewSource(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, []string{"pay"}, rec.update)
	all := func(s *discovery.Snapshot) bool { return len(s.Endpoints) == instances }
	rec.waitFor(t, "pay", waitSnapshot, "every instance", all)
	before := rec.count("pay")

	var (
		wg    sync.WaitGroup
		flips atomic.Int64
	)
	start := time.Now()
	for i := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check := fmt.Sprintf("ttl:pay-%d", i)
			for n := 0; time.Since(start) < flapFor || n%2 == 1; n++ { // end passing
				status := api.HealthCritical
				if n%2 == 1 {
					status = api.HealthPassing
				}
				if err := c.Agent().UpdateTTL(check, "", status); err != nil {
					t.Error(err)
					return
				}
				flips.Add(1)
			}
		}()
	}
	wg.Wait()
	rec.waitFor(t, "pay", waitSnapshot, "every instance", all)
	time.Sleep(2 * coalesce) // let a trailing delivery land
	delivered := rec.count("pay") - before
	// One delivery per Coalesce over the flapping, plus the leading and the trailing one.
	if limit := int(flapFor/coalesce) + 3; delivered > limit {
		t.Errorf("%d check flips over %v made %d deliveries, want at most %d (one per %v)", flips.Load(), flapFor, delivered, limit, coalesce)
	}
	t.Logf("%d check flips over %v: %d deliveries", flips.Load(), flapFor, delivered)
}

func endpointIDs(s *discovery.Snapshot) []string {
	ids := make([]string, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		ids = append(ids, e.ID)
	}
	return ids
}

// syncTimes is an Observer that keeps the time of every Synced, per service.
type syncTimes struct {
	discovery.NopObserver
	mu     sync.Mutex
	synced map[string][]time.Time
}

func (o *syncTimes) Synced(service string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.synced == nil {
		o.synced = make(map[string][]time.Time)
	}
	o.synced[service] = append(o.synced[service], at)
}

// firstSyncAfter returns the first Synced of service after t, or the zero time.
func (o *syncTimes) firstSyncAfter(service string, t time.Time) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, at := range o.synced[service] {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

func (o *syncTimes) allSyncedAfter(services []string, t time.Time) bool {
	for _, svc := range services {
		if o.firstSyncAfter(svc, t).IsZero() {
			return false
		}
	}
	return true
}
