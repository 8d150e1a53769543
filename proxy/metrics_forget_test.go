package proxy

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// fleetMetrics returns metrics holding the series of n endpoints of upstream "svc" (request
// counters of every class, an ejection and a return each), and the endpoints' IDs.
func fleetMetrics(tb testing.TB, n int) (*Metrics, []string) {
	tb.Helper()
	m, err := NewMetrics(nil)
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)
		m.endpointCodes("svc", ids[i]).inc(200)
		ep := &balancer.Endpoint{ID: ids[i]}
		m.Ejected("svc", ep, []string{"consecutive_5xx", "connect_failure_window"}[i%2], time.Second)
		m.Returned("svc", ep)
	}
	return m, ids
}

// forgetFleet removes every endpoint of m and returns how long it took.
func forgetFleet(m *Metrics, ids []string) time.Duration {
	start := time.Now()
	for _, id := range ids {
		m.forgetEndpoint("svc", id)
	}
	return time.Since(start)
}

// Removing a whole fleet deletes every one of its series, in time linear in its size: 32
// times the endpoints take about 32 times as long (measured: 8x for 8x without the race
// detector, up to 4 times more with it, whose costs grow with the heap), not 1024 (once a
// bug: each removal scanned every series of the vectors, O(N²) for the fleet).
func TestForgetEndpointsLinear(t *testing.T) {
	const small, large = 100, 3200
	timeOf := func(n int) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 3 { // the best of three, against a noisy machine
			m, ids := fleetMetrics(t, n)
			runtime.GC() // not the removal's cost
			best = min(best, forgetFleet(m, ids))
			for name, c := range map[string]int{
				"requests": seriesCount(m.requests), "ejections": seriesCount(m.ejections),
				"returns": seriesCount(m.returns),
			} {
				if c != 0 {
					t.Fatalf("%d %s series left after every endpoint was removed", c, name)
				}
			}
		}
		return best
	}
	ts, tl := timeOf(small), timeOf(large)
	ratio := float64(tl) / float64(max(ts, 1))
	t.Logf("removing %d endpoints: %v; %d: %v (x%.1f for x%d endpoints)", small, ts, large, tl, ratio, large/small)
	if ratio > 256 {
		t.Errorf("removing %d endpoints took %.1f times as long as %d, want about %d (linear)", large, ratio, small, large/small)
	}
}

// BenchmarkForgetFleet removes a whole fleet of endpoints; ns/op is per fleet, so linear
// removal shows as ns/op growing with N, not with N².
func BenchmarkForgetFleet(b *testing.B) {
	for _, n := range []int{250, 1000, 4000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				m, ids := fleetMetrics(b, n)
				b.StartTimer()
				forgetFleet(m, ids)
			}
		})
	}
}

// seriesCount returns how many series c holds.
func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// TestEndpointThatMovesKeepsItsSeries: an endpoint that keeps its ID and changes its address
// (a StatefulSet pod, a Consul ID registered again with a new IP) keeps its metric series; one
// that leaves loses them.
func TestEndpointThatMovesKeepsItsSeries(t *testing.T) {
	a, b := startBackend(t, "x", okHandler("ok")), startBackend(t, "y", okHandler("ok"))
	s := newStack(t, stackOpts{metrics: true}, a)
	if st, _, _ := s.get("/"); st != 200 {
		t.Fatal(st)
	}
	series := func() int { return testutil.CollectAndCount(s.metrics.requests) }
	before := series()
	s.rev++
	s.up.Update(discovery.NewSnapshot(s.name, s.rev, []discovery.Endpoint{{ID: "x", Address: b.addr, Weight: 1}}, time.Now()))
	if got := series(); got != before {
		t.Fatalf("%d request series after the endpoint moved, want the %d it had", got, before)
	}
	if st, _, _ := s.get("/"); st != 200 {
		t.Fatal(st)
	}
	s.setBackends()
	if got := series(); got >= before {
		t.Fatalf("%d request series after the endpoint left, want fewer than %d", got, before)
	}
}
