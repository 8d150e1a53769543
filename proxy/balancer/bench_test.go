package balancer

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/hashring"
)

// cpuTime returns the process's CPU time so far. On a shared machine, CPU time per operation
// (reported as cpu-ns/op next to ns/op) is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times, reporting allocations and CPU time per operation.
func measure(b *testing.B, op func(i int)) {
	b.ReportAllocs()
	start := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op(i)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// benchKeys are request keys, hashed inside the benchmark as the proxy would.
var benchKeys = func() []string {
	out := make([]string, 1024)
	for i := range out {
		out[i] = fmt.Sprintf("user-%d", i)
	}
	return out
}()

// pickOnce is one request's work in the balancer: hash the key, choose, start, finish.
func pickOnce(u *Upstream, key string) {
	var p Pick
	u.Begin(&p, hashring.HashString(key), true)
	e, err := p.Next()
	if err != nil {
		panic(err)
	}
	e.Start()
	e.Finish(Outcome{Status: 200})
}

// BenchmarkPick measures key hash + target choice + Start + Finish, per policy and size.
func BenchmarkPick(b *testing.B) {
	for _, kind := range allKinds {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				u, _, _ := newTest(b, Config{Kind: kind}, snap(ids(n)...))
				measure(b, func(i int) { pickOnce(u, benchKeys[i&1023]) })
			})
		}
	}
}

// BenchmarkPickFeatures measures ring_hash/100 with the optional features on.
func BenchmarkPickFeatures(b *testing.B) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"bounded_load", Config{BoundedLoad: 1.25}},
		{"max_requests", Config{MaxRequests: 100}},
		{"slow_start", Config{SlowStart: 1 << 62}},
		{"no_key_random", Config{}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			u, _, _ := newTest(b, tt.cfg, snap(ids(100)...))
			if tt.cfg.SlowStart > 0 { // every endpoint warming: the slowest path
				for _, e := range u.Endpoints() {
					e.warmStart.Store(u.nowNanos())
				}
			}
			hasKey := tt.name != "no_key_random"
			var p Pick
			measure(b, func(i int) {
				u.Begin(&p, hashring.HashString(benchKeys[i&1023]), hasKey)
				e, _ := p.Next()
				e.Start()
				e.Finish(Outcome{Status: 200})
			})
		})
	}
}

// BenchmarkPickRetry measures a first try and two retries, with an ejected endpoint on the way.
func BenchmarkPickRetry(b *testing.B) {
	u, _, _ := newTest(b, Config{}, snap(ids(100)...))
	failN(handle(u, "e007"), 5, connectRefused)
	var p Pick
	measure(b, func(i int) {
		u.Begin(&p, hashring.HashString(benchKeys[i&1023]), true)
		for range 3 {
			e, _ := p.Next()
			e.Start()
			e.Finish(Outcome{Status: 200})
		}
	})
}

// BenchmarkPickParallel measures contention between cores.
func BenchmarkPickParallel(b *testing.B) {
	for _, kind := range []Kind{RingHash, RoundRobin, LeastRequest} {
		b.Run(string(kind), func(b *testing.B) {
			u, _, _ := newTest(b, Config{Kind: kind}, snap(ids(100)...))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					pickOnce(u, benchKeys[i&1023])
					i++
				}
			})
		})
	}
}

// BenchmarkUpdate measures installing a snapshot that changes membership (a rebuild).
func BenchmarkUpdate(b *testing.B) {
	for _, kind := range allKinds {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				u, _, _ := newTest(b, Config{Kind: kind}, nil)
				snaps := [2]*discovery.Snapshot{snap(ids(n)...), snap(ids(n + 1)...)}
				measure(b, func(i int) { u.Update(snaps[i&1]) })
			})
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	for _, kind := range allKinds {
		for _, hasKey := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/key=%v", kind, hasKey), func(t *testing.T) {
				cfg := Config{Kind: kind, MaxRequests: 1000, SlowStart: 1 << 62}
				if kind.hashed() {
					cfg.BoundedLoad = 1.5
				}
				u, _, _ := newTest(t, cfg, snap(ids(100)...))
				handle(u, "e003").warmStart.Store(u.nowNanos())
				failN(handle(u, "e042"), 5, connectRefused) // some walks pass an ejected endpoint
				// and some a drained one, with and without a keep-keys window
				if err := errors.Join(u.Drain("e010", 0), u.Drain("e011", time.Hour)); err != nil {
					t.Fatal(err)
				}
				i := 0
				allocs := testing.AllocsPerRun(2000, func() {
					var p Pick // on the stack, as in the proxy: it must not escape
					u.Begin(&p, hashring.HashString(benchKeys[i&1023]), hasKey)
					i++
					for range 3 { // a first try and two retries
						e, err := p.Next()
						if err != nil {
							t.Fatal(err)
						}
						e.Start()
						e.Finish(Outcome{Status: 200})
					}
				})
				if allocs != 0 {
					t.Errorf("%v allocations per request, want 0", allocs)
				}
			})
		}
	}
}

// BenchmarkPickOverhead compares a full pick with the bare hash walk it is built on, in the
// same run: the difference is the balancer's own cost (state load, admission, in-flight).
func BenchmarkPickOverhead(b *testing.B) {
	for _, n := range []int{10, 1000} {
		u, _, _ := newTest(b, Config{}, snap(ids(n)...))
		table := u.state.Load().table
		b.Run(fmt.Sprintf("walk_only/%d", n), func(b *testing.B) {
			sink := 0
			measure(b, func(i int) {
				w := table.Walk(hashring.HashString(benchKeys[i&1023]))
				j, _ := w.Next()
				sink += j
			})
			_ = sink
		})
		b.Run(fmt.Sprintf("pick/%d", n), func(b *testing.B) {
			measure(b, func(i int) { pickOnce(u, benchKeys[i&1023]) })
		})
	}
}

// BenchmarkAdmin measures what the admin API pays: one route explain, one key-share
// measurement (DefaultShareSamples picks). Neither is on the request path.
func BenchmarkAdmin(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		u, _, _ := newTest(b, Config{}, snap(ids(n)...))
		failN(handle(u, "e003"), 5, connectRefused)
		b.Run(fmt.Sprintf("explain/%d", n), func(b *testing.B) {
			measure(b, func(i int) { u.Explain(hashring.HashString(benchKeys[i&1023]), true) })
		})
		b.Run(fmt.Sprintf("key_shares/%d", n), func(b *testing.B) {
			measure(b, func(int) { u.KeyShares(DefaultShareSamples) })
		})
	}
}
