package consul

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// Budget of one update of a 5,000-endpoint service: decode and publish.
const (
	bigService      = 5000
	publishBudget   = 20 * time.Millisecond
	publishBytesMax = 10 << 20
)

// bigEntries returns n health entries shaped like a real agent's answer: a node and a service
// check each, two tags, two meta keys, weights. Entry gen%n differs from generation 0 in its
// meta, so alternating generations makes every publish a change.
func bigEntries(n, gen int) []*api.ServiceEntry {
	out := make([]*api.ServiceEntry, n)
	for i := range out {
		node := fmt.Sprintf("node-%04d", i/4)
		id := fmt.Sprintf("cart-%05d", i)
		version := "1"
		if gen != 0 && i == gen%n {
			version = "2"
		}
		out[i] = &api.ServiceEntry{
			Node: &api.Node{
				ID: fmt.Sprintf("0000-%04d", i/4), Node: node, Datacenter: "dc1",
				Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			},
			Service: &api.AgentService{
				ID: id, Service: "cart", Port: 8000 + i%1000,
				Tags:    []string{"http", "v" + version},
				Meta:    map[string]string{"version": version, "pod": id},
				Weights: api.AgentWeights{Passing: 1 + i%3, Warning: 1},
			},
			Checks: api.HealthChecks{
				{Node: node, CheckID: "serfHealth", Status: api.HealthPassing},
				{Node: node, CheckID: "service:" + id, Status: api.HealthPassing, ServiceID: id},
			},
		}
	}
	return out
}

// publishStep returns a function running one decode-and-publish of a bigService-endpoint
// service (serviceWatch.publish: entries to endpoints, the snapshot, the Dedup comparison),
// and a count of the snapshots published. Successive steps alternate between two generations
// of entries, so that every step is a change and publishes.
func publishStep(tb testing.TB) (step func(i int), published *int) {
	src, err := NewSource(Config{Address: "127.0.0.1:1"}, zap.NewNop(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	published = new(int)
	w := newServiceWatch(src, "cart", offerTo(discovery.Dedup(func(*discovery.Snapshot) { *published++ })))
	gens := [][]*api.ServiceEntry{bigEntries(bigService, 0), bigEntries(bigService, 1)}
	now := time.Now()
	w.publish(gens[1], 1, now) // the first snapshot; later ones are compared with it
	return func(i int) { w.publish(gens[i%2], uint64(i+2), now) }, published
}

func BenchmarkPublish5000(b *testing.B) {
	step, published := publishStep(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		step(n)
		n++
	}
	if *published != n+1 {
		b.Fatalf("%d snapshots published, want %d: the benchmark did not measure changes", *published, n+1)
	}
}

// TestPublish5000Budget holds one update of a 5,000-endpoint service to its budget: decoded
// and published in <= 20ms with <= 10 MB allocated. The time per update is the wall time,
// or, when other processes crowd the machine, the process's CPU time (GC included); it is
// not asserted under the race detector, which slows code several times over.
func TestPublish5000Budget(t *testing.T) {
	if testing.Short() {
		t.Skip("measuring test")
	}
	step, published := publishStep(t)
	const rounds = 50
	step(0) // warm up
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, wall0 := cpuTime(t), time.Now()
	for i := 1; i <= rounds; i++ {
		step(i)
	}
	wall, cpu := time.Since(wall0)/rounds, (cpuTime(t)-cpu0)/rounds
	runtime.ReadMemStats(&m1)
	bytes, allocs := (m1.TotalAlloc-m0.TotalAlloc)/rounds, (m1.Mallocs-m0.Mallocs)/rounds
	t.Logf("publish of %d endpoints: %v/op wall, %v/op CPU, %.2f MB/op, %d allocs/op (race=%v)",
		bigService, wall, cpu, float64(bytes)/(1<<20), allocs, raceEnabled)
	if *published != rounds+2 {
		t.Fatalf("%d snapshots published, want %d", *published, rounds+2)
	}
	if bytes > publishBytesMax {
		t.Errorf("publish allocates %d bytes/op, budget %d", bytes, publishBytesMax)
	}
	if !raceEnabled && wall > publishBudget && cpu > publishBudget {
		t.Errorf("publish takes %v/op wall and %v/op CPU, budget %v", wall, cpu, publishBudget)
	}
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
