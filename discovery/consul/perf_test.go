package consul

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

// Targets of the measuring tests.
const (
	propagationChanges  = 250
	propagationP99      = 50 * time.Millisecond
	propagationAttempts = 3
	manyServices        = 200
)

// percentile returns the p-th percentile (0..100) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// TestPropagationLatency measures the time from a registry write (a change of an instance's
// meta, carrying a sequence number) to the delivery of the snapshot that shows it, over
// propagationChanges changes on loopback, and holds p99 to propagationP99. Two write paths:
// a catalog write, which commits through the server's raft log before it returns, timed from
// the start of the call; and a registration with the local agent, which returns once the
// agent has persisted it to its data directory and syncs it to the catalog afterwards, timed
// from the agent's acknowledgement (the agent's fsync is no part of propagation). Both are
// printed from the start of the call too.
func TestPropagationLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measuring test")
	}
	a := consultest.Start(t)
	c := a.Client()
	tests := []struct {
		name    string
		service string
		write   func(seq int) error
		fromAck bool
	}{
		{"catalog write", "prop-catalog", func(seq int) error {
			_, err := c.Catalog().Register(&api.CatalogRegistration{
				Node: "ext-node", Address: "127.0.0.2",
				Service: &api.AgentService{ID: "prop-1", Service: "prop-catalog", Port: 9000,
					Meta: map[string]string{"seq": strconv.Itoa(seq)}},
			}, nil)
			return err
		}, false},
		{"agent registration", "prop-agent", func(seq int) error {
			return c.Agent().ServiceRegister(&api.AgentServiceRegistration{
				ID: "prop-1", Name: "prop-agent", Address: "127.0.0.1", Port: 9000,
				Meta: map[string]string{"seq": strconv.Itoa(seq)},
			})
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// On a shared 2-core machine, a neighbour's burst of CPU can stall the agent or this
			// process for longer than the whole budget, so a miss is measured again, up to
			// propagationAttempts times in all; a real regression misses every time.
			var p99 time.Duration
			for attempt := 1; attempt <= propagationAttempts; attempt++ {
				fromStart, fromAck := measurePropagation(t, a, tt.service, tt.write)
				for _, m := range []struct {
					from string
					lat  []time.Duration
				}{{"the start of the write", fromStart}, {"its acknowledgement", fromAck}} {
					t.Logf("attempt %d: %s, from %s, %d changes (race=%v, load %s): min %v p50 %v p90 %v p99 %v max %v",
						attempt, tt.name, m.from, len(m.lat), raceEnabled, loadAverage(), m.lat[0],
						percentile(m.lat, 50), percentile(m.lat, 90), percentile(m.lat, 99), m.lat[len(m.lat)-1])
					t.Logf("  distribution: %s", histogram(m.lat))
				}
				lat := fromStart
				if tt.fromAck {
					lat = fromAck
				}
				if p99 = percentile(lat, 99); p99 <= propagationP99 {
					return
				}
			}
			t.Errorf("p99 propagation %v in each of %d attempts, target %v", p99, propagationAttempts, propagationP99)
		})
	}
}

// loadAverage returns the 1-minute load average, for the log of a measurement.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.SplitN(string(b), " ", 2)[0]
}

// measurePropagation watches service with a new Source, makes propagationChanges writes one
// after the other, each waiting for its snapshot, and returns the sorted latencies from the
// start of each write and from its return to the delivery.
func measurePropagation(t *testing.T, a *consultest.Agent, service string, write func(seq int) error) (fromStart, fromAck []time.Duration) {
	src, err := NewSource(testConfig(a), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		seq int
		at  time.Time
	}
	got := make(chan delivery, 16)
	update := func(s *discovery.Snapshot) {
		at := time.Now()
		for _, e := range s.Endpoints {
			if seq, err := strconv.Atoi(e.Meta["seq"]); err == nil {
				got <- delivery{seq, at}
			}
		}
	}
	if err := write(0); err != nil {
		t.Fatal(err)
	}
	stop := startWatch(t, src, []string{service}, update)
	defer stop()
	for seq := 0; seq <= propagationChanges; seq++ {
		start := time.Now()
		if seq > 0 {
			if err := write(seq); err != nil {
				t.Fatalf("write %d: %v", seq, err)
			}
		}
		ack := time.Now()
		timeout := time.After(5 * time.Second)
		for waiting := true; waiting; {
			select {
			case d := <-got:
				if d.seq == seq {
					waiting = false
					if seq > 0 { // seq 0 is the first snapshot, not a change
						fromStart = append(fromStart, d.at.Sub(start))
						fromAck = append(fromAck, max(d.at.Sub(ack), 0))
					}
				}
			case <-timeout:
				t.Fatalf("change %d not delivered within 5s", seq)
			}
		}
	}
	slices.Sort(fromStart)
	slices.Sort(fromAck)
	return fromStart, fromAck
}

// histogram renders counts per latency bucket.
func histogram(sorted []time.Duration) string {
	bounds := []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
		20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	counts := make([]int, len(bounds)+1)
	for _, d := range sorted {
		i, _ := slices.BinarySearch(bounds, d)
		counts[i]++
	}
	out := ""
	for i, n := range counts {
		if i < len(bounds) {
			out += fmt.Sprintf("<=%v:%d ", bounds[i], n)
		} else {
			out += fmt.Sprintf(">%v:%d", bounds[len(bounds)-1], n)
		}
	}
	return out
}

// TestManyServices watches manyServices services of two instances each from one agent, as
// one Source: every service gets its snapshot, a change to a tenth of them propagates, and
// nothing fails or logs a warning.
func TestManyServices(t *testing.T) {
	if testing.Short() {
		t.Skip("measuring test")
	}
	// Each watched service holds a connection to the agent for its blocking query, and an
	// agent refuses more than limits.http_max_conns_per_client (200) from one address: a
	// sidecar watching this many services needs the limit raised, as here (see the package
	// doc, and TestConnectionLimit for what happens when it is not).
	a := consultest.StartWith(t, consultest.Options{Args: []string{"-hcl", "limits { http_max_conns_per_client = 1000 }"}})
	c := a.Client()
	names := registerMany(t, c, manyServices)
	logger, logs := observedLogger()
	obs := &countingObserver{}
	src, err := NewSource(testConfig(a), logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		updates int
	)
	rec := newRecorder()
	count := func(s *discovery.Snapshot) {
		mu.Lock()
		updates++
		mu.Unlock()
		rec.update(s)
	}
	start := time.Now()
	startWatch(t, src, names, count)
	for _, n := range names {
		rec.waitFor(t, n, 30*time.Second, "2 endpoints", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 2 })
	}
	synced := time.Since(start)

	start = time.Now()
	for i := 0; i < manyServices; i += 10 {
		if err := c.Agent().ServiceDeregister(names[i] + "-1"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < manyServices; i += 10 {
		rec.waitFor(t, names[i], 30*time.Second, "1 endpoint", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 1 })
	}
	changed := time.Since(start)
	mu.Lock()
	total := updates
	mu.Unlock()
	t.Logf("%d services: all first snapshots in %v; %d deregistrations propagated in %v; %d snapshots, %d reads, %d failures",
		manyServices, synced, manyServices/10, changed, total, obs.synced.Load(), obs.failed.Load())

	if n := obs.failed.Load(); n != 0 {
		t.Errorf("%d failed queries (last: %v)", n, obs.err())
	}
	if w := logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }); w.Len() != 0 {
		t.Errorf("%d warnings logged, first: %v", w.Len(), w.All()[0].Message)
	}
	if want := manyServices + manyServices/10; total != want {
		t.Errorf("%d snapshots delivered, want %d (one per service, one per change)", total, want)
	}
}

// registerMany registers n services of two instances each, and returns their names.
func registerMany(t *testing.T, c *api.Client, n int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%03d", i)
		for j := range 2 {
			register(t, c, &api.AgentServiceRegistration{
				ID: fmt.Sprintf("%s-%d", names[i], j), Name: names[i], Address: "127.0.0.1", Port: 10000 + 2*i + j,
			})
		}
	}
	return names
}

// TestConnectionLimit watches more services than an agent with default limits lets one
// address connect: the refused queries are retried, the lines that say why are rate-limited
// and name the agent setting to change, and services whose query got through are served.
// (net/http may print "Unsolicited response received on idle HTTP channel" for the agent's
// 429 answers: expected here.)
func TestConnectionLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 250 watches")
	}
	a := consultest.Start(t)
	names := registerMany(t, a.Client(), 250)
	logger, logs := observedLogger()
	obs := &countingObserver{}
	cfg := testConfig(a)
	cfg.ErrorLogInterval = time.Hour
	src, err := NewSource(cfg, logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, src, names, rec.update)
	served := func() int {
		n := 0
		for _, name := range names {
			if s := rec.last(name); s != nil && len(s.Endpoints) == 2 {
				n++
			}
		}
		return n
	}
	consultest.WaitFor(t, 20*time.Second, "150 services served and 50 refused queries", func() bool {
		return served() >= 150 && obs.failed.Load() >= 50
	})
	t.Logf("agent with default limits, %d services watched: %d served, %d refused queries", len(names), served(), obs.failed.Load())
	if n := logs.FilterMessage(tooManyMsg).Len(); n != 1 {
		t.Errorf("%d lines saying the agent refuses connections, want 1 (failures: %d, last: %v)", n, obs.failed.Load(), obs.err())
	}
}
