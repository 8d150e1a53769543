package hashring

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"
)

var benchSizes = []int{10, 100, 1000, 10000}

var sink int

// benchLookup runs lookup on a fresh key of 16 to 32 bytes per operation.
// The key lives in one buffer, as a key just parsed from a request would be
// in cache, and a counter written into it sends every lookup to a different
// place in the table, as distinct users do.
func benchLookup(b *testing.B, lookup func(key []byte) int) {
	var buf [32]byte
	copy(buf[:], "session-0123456789abcdefghijklmn")
	length := 16
	cpu := startCPU(b)
	for i := uint64(0); b.Loop(); i++ {
		binary.LittleEndian.PutUint64(buf[8:], i)
		sink += lookup(buf[:length])
		if length++; length > len(buf) {
			length = 16
		}
	}
	cpu.stop(b)
}

func BenchmarkRingLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := mustRing(b, testNodes(n, 1))
			benchLookup(b, r.LookupBytes)
		})
	}
}

func BenchmarkMaglevLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := mustMaglev(b, testNodes(n, 1))
			benchLookup(b, m.LookupBytes)
		})
	}
}

func BenchmarkRingBuild(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := testNodes(n, 1)
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := NewRing(nodes); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(b)
		})
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := testNodes(n, 1)
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := NewMaglev(nodes); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(b)
		})
	}
}

func BenchmarkRingAdd(b *testing.B) {
	for _, n := range benchSizes[1:] {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := testNodes(n+1, 1)
			r := mustRing(b, nodes[:n])
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := r.Add(nodes[n]); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(b)
		})
	}
}

func BenchmarkRingRemove(b *testing.B) {
	for _, n := range benchSizes[1:] {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := testNodes(n, 1)
			r := mustRing(b, nodes)
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := r.Remove(nodes[n/2].ID); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(b)
		})
	}
}

// BenchmarkLookupString is the proxy's call: a string key, hashed once.
func BenchmarkLookupString(b *testing.B) {
	keys := testKeys(1024, 3)
	for _, n := range []int{100, 1000} {
		r := mustRing(b, testNodes(n, 1))
		m := mustMaglev(b, testNodes(n, 1))
		b.Run(fmt.Sprintf("ring/%d", n), func(b *testing.B) {
			cpu := startCPU(b)
			for i := 0; b.Loop(); i++ {
				sink += r.LookupString(keys[i&1023])
			}
			cpu.stop(b)
		})
		b.Run(fmt.Sprintf("maglev/%d", n), func(b *testing.B) {
			cpu := startCPU(b)
			for i := 0; b.Loop(); i++ {
				sink += m.LookupString(keys[i&1023])
			}
			cpu.stop(b)
		})
	}
}

// BenchmarkWalk takes the home node and the next two, as a retry after an
// ejection would: no allocation.
func BenchmarkWalk(b *testing.B) {
	for _, n := range []int{100, 1000} {
		tables := map[string]Table{"ring": mustRing(b, testNodes(n, 1)), "maglev": mustMaglev(b, testNodes(n, 1))}
		for _, name := range []string{"ring", "maglev"} {
			t := tables[name]
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				cpu := startCPU(b)
				for i := uint64(0); b.Loop(); i++ {
					w := t.Walk(splitmix64(i))
					for range 3 {
						j, _ := w.Next()
						sink += j
					}
				}
				cpu.stop(b)
			})
		}
	}
}

// BenchmarkLookupBounded places keys with load factor 1.25 while a quarter
// of the nodes are at their cap.
func BenchmarkLookupBounded(b *testing.B) {
	const n = 100
	loads := make(fakeLoads, n)
	for i := range loads {
		if i%4 == 0 {
			loads[i] = 40
		} else {
			loads[i] = 8
		}
	}
	var l Loads = &boxedLoads{loads, loads.Total()}
	tables := map[string]Table{"ring": mustRing(b, testNodes(n, 1)), "maglev": mustMaglev(b, testNodes(n, 1))}
	for _, name := range []string{"ring", "maglev"} {
		t := tables[name]
		b.Run(name, func(b *testing.B) {
			cpu := startCPU(b)
			for i := uint64(0); b.Loop(); i++ {
				sink += LookupBounded(t, splitmix64(i), 1.25, l)
			}
			cpu.stop(b)
		})
	}
}

// boxedLoads is fakeLoads with a precomputed total, behind a pointer as a
// proxy's counters would be.
type boxedLoads struct {
	loads fakeLoads
	total int64
}

func (l *boxedLoads) Load(i int) int64 { return l.loads[i] }
func (l *boxedLoads) Total() int64     { return l.total }

// BenchmarkRingMemory reports the heap a ring holds per node at the
// default 160 points per weight unit (the target is at most 3 KB).
func BenchmarkRingMemory(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := testNodes(n, 1)
			var r *Ring
			for b.Loop() {
				r = mustRing(b, nodes)
			}
			b.ReportMetric(float64(r.SizeBytes())/float64(n), "bytes/node")
		})
	}
}

func BenchmarkMaglevMemory(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := testNodes(n, 1)
			var m *Maglev
			for b.Loop() {
				m = mustMaglev(b, nodes)
			}
			b.ReportMetric(float64(m.SizeBytes())/float64(n), "bytes/node")
		})
	}
}

// cpuTimer reports CPU time per operation next to the wall-clock ns/op: on
// a shared machine the process's own CPU time is the steadier figure.
type cpuTimer struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuTimer {
	b.ReportAllocs()
	b.ResetTimer()
	return &cpuTimer{start: cpuNow()}
}

func (c *cpuTimer) stop(b *testing.B) {
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-c.start)/float64(b.N), "cpu-ns/op")
}
