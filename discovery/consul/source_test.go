package consul

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

const waitSnapshot = 10 * time.Second

// ttlService returns an agent registration of service svc with a TTL check "ttl:<id>"
// that starts passing, so tests set its health directly.
func ttlService(svc, id string, port int) *api.AgentServiceRegistration {
	return &api.AgentServiceRegistration{
		ID: id, Name: svc, Address: "127.0.0.1", Port: port,
		Tags:    []string{"t1", "t2"},
		Meta:    map[string]string{"id": id},
		Weights: &api.AgentWeights{Passing: 5, Warning: 2},
		Check: &api.AgentServiceCheck{
			CheckID: "ttl:" + id, TTL: "10m", Status: api.HealthPassing,
		},
	}
}

// TestWatchMapping checks the whole endpoint mapping against what a real agent returns.
func TestWatchMapping(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	node := nodeName(t, c)
	register(t, c, ttlService("web", "web-1", 8081))
	register(t, c, &api.AgentServiceRegistration{ID: "web-2", Name: "web", Port: 8082}) // no address, no weights

	src, err := NewSource(testConfig(a), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, []string{"web"}, rec.update)
	snap := rec.waitFor(t, "web", waitSnapshot, "2 endpoints", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 2 })

	want := []discovery.Endpoint{
		{ID: "web-1@" + node, Address: "127.0.0.1:8081", Weight: 5, Health: discovery.HealthPassing, Zone: "dc1",
			Tags: []string{"t1", "t2"}, Meta: map[string]string{"id": "web-1"}},
		{ID: "web-2@" + node, Address: "127.0.0.1:8082", Weight: 1, Health: discovery.HealthPassing, Zone: "dc1",
			Tags: []string{}, Meta: map[string]string{}},
	}
	// Equal, since whether Consul sends an empty list or null is no concern of ours.
	if !discovery.NewSnapshot("web", 0, want, time.Time{}).Equal(snap) {
		t.Errorf("endpoints:\n%+v\nwant\n%+v", snap.Endpoints, want)
	}
	if snap.Service != "web" || snap.Revision == 0 || snap.Received.IsZero() {
		t.Errorf("snapshot header: service %q revision %d received %v", snap.Service, snap.Revision, snap.Received)
	}
}

// TestWatchChanges drives a service through registrations, health changes, weight changes
// and deregistrations, under each health policy, and checks each resulting snapshot.
func TestWatchChanges(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	node := nodeName(t, c)
	ttl := func(id, status string) func() error {
		return func() error { return c.Agent().UpdateTTL("ttl:"+id, "set by test", status) }
	}
	reg := func(r *api.AgentServiceRegistration) func() error {
		return func() error { return c.Agent().ServiceRegister(r) }
	}
	heavier := ttlService("api", "api-1", 9001)
	heavier.Weights = &api.AgentWeights{Passing: 9, Warning: 3}

	// Each step acts on the agent, then expects id:health:weight of the endpoints, per policy.
	steps := []struct {
		name string
		act  func() error
		want map[HealthPolicy]string
	}{
		{"register api-1", reg(ttlService("api", "api-1", 9001)),
			map[HealthPolicy]string{PassingOrWarning: "api-1:passing:5", PassingOnly: "api-1:passing:5", AnyHealth: "api-1:passing:5"}},
		{"register api-2", reg(ttlService("api", "api-2", 9002)),
			map[HealthPolicy]string{PassingOrWarning: "api-1:passing:5 api-2:passing:5", PassingOnly: "api-1:passing:5 api-2:passing:5", AnyHealth: "api-1:passing:5 api-2:passing:5"}},
		{"api-1 warning", ttl("api-1", api.HealthWarning),
			map[HealthPolicy]string{PassingOrWarning: "api-1:warning:2 api-2:passing:5", PassingOnly: "api-2:passing:5", AnyHealth: "api-1:warning:2 api-2:passing:5"}},
		{"api-1 critical", ttl("api-1", api.HealthCritical),
			map[HealthPolicy]string{PassingOrWarning: "api-2:passing:5", PassingOnly: "api-2:passing:5", AnyHealth: "api-1:critical:1 api-2:passing:5"}},
		{"api-1 passing again", ttl("api-1", api.HealthPassing),
			map[HealthPolicy]string{PassingOrWarning: "api-1:passing:5 api-2:passing:5", PassingOnly: "api-1:passing:5 api-2:passing:5", AnyHealth: "api-1:passing:5 api-2:passing:5"}},
		{"api-1 weights change", reg(heavier),
			map[HealthPolicy]string{PassingOrWarning: "api-1:passing:9 api-2:passing:5", PassingOnly: "api-1:passing:9 api-2:passing:5", AnyHealth: "api-1:passing:9 api-2:passing:5"}},
		{"api-2 maintenance", func() error { return c.Agent().EnableServiceMaintenance("api-2", "test") },
			map[HealthPolicy]string{PassingOrWarning: "api-1:passing:9", PassingOnly: "api-1:passing:9", AnyHealth: "api-1:passing:9 api-2:critical:1"}},
		{"deregister api-2", func() error { return c.Agent().ServiceDeregister("api-2") },
			map[HealthPolicy]string{PassingOrWarning: "api-1:passing:9", PassingOnly: "api-1:passing:9", AnyHealth: "api-1:passing:9"}},
		{"deregister api-1", func() error { return c.Agent().ServiceDeregister("api-1") },
			map[HealthPolicy]string{PassingOrWarning: "", PassingOnly: "", AnyHealth: ""}},
	}

	policies := []HealthPolicy{PassingOrWarning, PassingOnly, AnyHealth}
	recs := make(map[HealthPolicy]*recorder)
	for _, p := range policies {
		cfg := testConfig(a)
		cfg.Health = p
		src, err := NewSource(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		recs[p] = newRecorder()
		startWatch(t, src, []string{"api"}, recs[p].update)
		recs[p].waitFor(t, "api", waitSnapshot, "the first (empty) snapshot", func(*discovery.Snapshot) bool { return true })
	}
	for _, st := range steps {
		if err := st.act(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, p := range policies {
			want := st.want[p]
			recs[p].waitFor(t, "api", waitSnapshot, st.name+" ("+p.String()+"): "+want, func(s *discovery.Snapshot) bool {
				return summary(s, node) == want
			})
		}
	}
}

// summary renders the endpoints as "id:health:weight ...", without the node part of IDs.
func summary(s *discovery.Snapshot, node string) string {
	out := ""
	for i, e := range s.Endpoints {
		if i > 0 {
			out += " "
		}
		id := e.ID[:len(e.ID)-len("@"+node)]
		out += id + ":" + e.Health.String() + ":" + strconv.Itoa(e.Weight)
	}
	return out
}

// TestWatchSkipsMalformed registers, through the catalog, entries a real agent accepts but
// no proxy can dial, next to good ones: only the bad ones are skipped.
func TestWatchSkipsMalformed(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	node := nodeName(t, c)
	catalog := func(id, nodeAddr, svcAddr string, port int) {
		t.Helper()
		_, err := c.Catalog().Register(&api.CatalogRegistration{
			Node: "ext-" + id, Address: nodeAddr, SkipNodeUpdate: false,
			Service: &api.AgentService{ID: id, Service: "db", Address: svcAddr, Port: port},
		}, nil)
		if err != nil {
			t.Fatalf("catalog register %s: %v", id, err)
		}
	}
	register(t, c, ttlService("db", "db-good-1", 5432))
	catalog("db-port-0", "10.9.0.1", "", 0)
	catalog("db-port-big", "10.9.0.2", "", 70000)
	catalog("db-addr-port", "10.9.0.3", "10.9.0.3:5432", 5432)
	catalog("db-good-2", "10.9.0.4", "", 5433)

	logger, logs := observedLogger()
	obs := &countingObserver{}
	src, err := NewSource(testConfig(a), logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, []string{"db"}, rec.update)
	snap := rec.waitFor(t, "db", waitSnapshot, "the good entries", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 2 })
	if got, want := []string{snap.Endpoints[0].ID, snap.Endpoints[1].ID}, []string{"db-good-1@" + node, "db-good-2@ext-db-good-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if snap.Endpoints[1].Address != "10.9.0.4:5433" {
		t.Errorf("catalog entry address %q, want the node's 10.9.0.4:5433", snap.Endpoints[1].Address)
	}
	bad := map[string]bool{}
	for _, e := range obs.malformedEntries() {
		bad[e] = true
	}
	for _, id := range []string{"db-port-0@ext-db-port-0", "db-port-big@ext-db-port-big", "db-addr-port@ext-db-addr-port"} {
		if !bad[id] {
			t.Errorf("%s not reported as malformed (reported: %v)", id, obs.malformedEntries())
		}
	}
	if n := logs.FilterMessage("consul entry skipped").Len(); n != 3 {
		t.Errorf("%d log lines for skipped entries, want one per entry (3)", n)
	}
}

// TestWatchDedup checks that a change of Consul's index that changes no endpoint (a TTL
// check's output) publishes nothing, while the loop did see it.
func TestWatchDedup(t *testing.T) {
	t.Parallel()
	// Sync check output to the catalog at once (the default is every 5 minutes), so that an
	// output change moves the index.
	a := consultest.StartWith(t, consultest.Options{Args: []string{"-hcl", `check_update_interval = "0s"`}})
	c := a.Client()
	register(t, c, ttlService("cache", "cache-1", 6379))
	obs := &countingObserver{}
	src, err := NewSource(testConfig(a), nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, []string{"cache"}, rec.update)
	first := rec.waitFor(t, "cache", waitSnapshot, "cache-1", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 1 })

	index := func() uint64 {
		_, meta, err := c.Health().Service("cache", "", false, nil)
		if err != nil {
			t.Fatalf("health: %v", err)
		}
		return meta.LastIndex
	}
	before, syncedBefore := index(), obs.synced.Load()
	for i := range 5 {
		// Same status, new output: a new index, the same endpoints.
		if err := c.Agent().UpdateTTL("ttl:cache-1", "output "+strconv.Itoa(i), api.HealthPassing); err != nil {
			t.Fatal(err)
		}
	}
	consultest.WaitFor(t, 5*time.Second, "the watch to read the new index", func() bool {
		return index() > before && obs.synced.Load() > syncedBefore
	})
	time.Sleep(200 * time.Millisecond) // room for a wrong publish to happen
	if n := rec.count("cache"); n != 1 {
		t.Fatalf("%d snapshots after index-only changes (index %d -> %d), want 1", n, before, index())
	}

	// A real change is published, once.
	if err := c.Agent().UpdateTTL("ttl:cache-1", "", api.HealthWarning); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "cache", waitSnapshot, "warning", func(s *discovery.Snapshot) bool {
		return len(s.Endpoints) == 1 && s.Endpoints[0].Health == discovery.HealthWarning
	})
	if n := rec.count("cache"); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
	if last := rec.last("cache"); last.Revision <= first.Revision {
		t.Errorf("revision %d after %d: the Consul index did not move on", last.Revision, first.Revision)
	}
}

// TestWatchBadArguments checks the errors Watch returns at once.
func TestWatchBadArguments(t *testing.T) {
	src, err := NewSource(Config{Address: "127.0.0.1:1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nop := func(*discovery.Snapshot) {}
	tests := []struct {
		name     string
		services []string
		update   discovery.UpdateFunc
	}{
		{"no services", nil, nop},
		{"empty name", []string{"a", ""}, nop},
		{"duplicate", []string{"a", "b", "a"}, nop},
		{"slash", []string{"a/b"}, nop},
		{"query", []string{"a?passing"}, nop},
		{"nil update", []string{"a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := src.Watch(ctx, tt.services, tt.update); !errors.Is(err, ErrBadServices) {
				t.Errorf("Watch = %v, want ErrBadServices", err)
			}
		})
	}
}

// TestWatchQueryOptions checks each query option against a real agent: the instances it
// keeps, or that the agent refuses the query.
func TestWatchQueryOptions(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	node := nodeName(t, c)
	q1 := ttlService("q", "q-1", 7201)
	q1.Tags = []string{"blue", "canary"}
	q2 := ttlService("q", "q-2", 7202)
	q2.Tags = []string{"blue"}
	register(t, c, q1)
	register(t, c, q2)
	both := "q-1@" + node + " q-2@" + node

	tests := []struct {
		name string
		cfg  func(*Config)
		want string // endpoint IDs, or "fail"
	}{
		{"no options", func(*Config) {}, both},
		{"one tag", func(c *Config) { c.Tags = []string{"canary"} }, "q-1@" + node},
		{"all tags must match", func(c *Config) { c.Tags = []string{"blue", "canary"} }, "q-1@" + node},
		{"unknown tag", func(c *Config) { c.Tags = []string{"green"} }, ""},
		{"filter", func(c *Config) { c.Filter = `Service.Meta.id == "q-2"` }, "q-2@" + node},
		{"stale reads", func(c *Config) { c.Consistency = Stale }, both},
		{"consistent reads", func(c *Config) { c.Consistency = Consistent }, both},
		{"own datacenter", func(c *Config) { c.Datacenter = "dc1" }, both},
		{"unknown datacenter", func(c *Config) { c.Datacenter = "nowhere" }, "fail"},
		{"bad filter", func(c *Config) { c.Filter = `Service.Meta.id ==` }, "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(a)
			tt.cfg(&cfg)
			logger, logs := observedLogger()
			obs := &countingObserver{}
			src, err := NewSource(cfg, logger, obs)
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			stop := startWatch(t, src, []string{"q"}, rec.update)
			defer stop()
			if tt.want == "fail" {
				consultest.WaitFor(t, waitSnapshot, "a failed query", func() bool { return obs.failed.Load() > 0 })
				if rec.count("q") != 0 {
					t.Errorf("snapshot published from a refused query")
				}
				consultest.WaitFor(t, waitSnapshot, "the failure logged", func() bool {
					return logs.FilterMessageSnippet("consul query failed").Len() == 1
				})
				return
			}
			rec.waitFor(t, "q", waitSnapshot, tt.want, func(s *discovery.Snapshot) bool {
				ids := ""
				for i, e := range s.Endpoints {
					if i > 0 {
						ids += " "
					}
					ids += e.ID
				}
				return ids == tt.want
			})
		})
	}
}
