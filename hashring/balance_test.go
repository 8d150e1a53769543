package hashring

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"testing"
)

// millionKeys are the hashes of 1,000,000 keys of 16-32 bytes, shared by
// the measuring tests.
var millionKeys = sync.OnceValue(func() []uint64 { return keyHashes(1_000_000, 11) })

func TestBalance(t *testing.T) {
	tests := []struct {
		name     string
		make     func(testing.TB, []Node) Table
		maxPeak  float64
		maxNodes int
	}{
		{"ring", func(tb testing.TB, n []Node) Table { return mustRing(tb, n) }, 1.20, 100},
		{"maglev", func(tb testing.TB, n []Node) Table { return mustMaglev(tb, n) }, 1.05, 100},
	}
	for _, tt := range tests {
		for set, nodes := range nodeSets(tt.maxNodes) {
			t.Run(tt.name+"/"+set, func(t *testing.T) {
				counts := distribution(tt.make(t, nodes), millionKeys())
				peak := peakToMean(counts)
				sorted := append([]int(nil), counts...)
				sort.Ints(sorted)
				t.Logf("%s %s: 1M keys over %d nodes: min %d median %d max %d, peak/mean %.3f",
					tt.name, set, len(nodes), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], peak)
				if peak > tt.maxPeak {
					t.Errorf("peak/mean = %.3f, want <= %.2f", peak, tt.maxPeak)
				}
			})
		}
	}
}

// weightedNodes returns nodes of weights cycling through 1..5, plus one of
// weight 10.
func weightedNodes(base []Node) []Node {
	nodes := append([]Node(nil), base...)
	for i := range nodes {
		nodes[i].Weight = 1 + i%5
	}
	nodes[len(nodes)-1].Weight = 10
	return nodes
}

func TestWeights(t *testing.T) {
	tests := []struct {
		name   string
		make   func(testing.TB, []Node) Table
		maxDev float64 // relative deviation of a node's share from w/Σw
	}{
		{"ring", func(tb testing.TB, n []Node) Table { return mustRing(tb, n) }, 0.10},
		{"maglev", func(tb testing.TB, n []Node) Table { return mustMaglev(tb, n) }, 0.05},
	}
	for _, tt := range tests {
		for set, base := range nodeSets(20) {
			t.Run(tt.name+"/"+set, func(t *testing.T) {
				nodes := weightedNodes(base)
				tab := tt.make(t, nodes)
				counts := distribution(tab, millionKeys())
				total := 0
				for _, n := range nodes {
					total += n.Weight
				}
				worst := 0.0
				for i, c := range counts {
					w := tab.Node(i).Weight
					want := float64(len(millionKeys())) * float64(w) / float64(total)
					dev := float64(c)/want - 1
					worst = max(worst, dev, -dev)
					if dev > tt.maxDev || dev < -tt.maxDev {
						t.Errorf("node %s weight %d: %d keys, want %.0f ±%.0f%%", tab.Node(i).ID, w, c, want, 100*tt.maxDev)
					}
				}
				t.Logf("%s %s: worst deviation from w/Σw over %d weighted nodes: %.1f%%", tt.name, set, len(nodes), 100*worst)
			})
		}
	}
}

// TestRingMemory measures the heap a ring holds, and asserts at most 3 KB
// per node at the default 160 points per weight unit.
func TestRingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap of 10,000-node rings")
	}
	for _, n := range []int{1000, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			nodes := testNodes(n, 1)
			heap := func() uint64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			before := heap()
			r := mustRing(t, nodes)
			after := heap()
			runtime.KeepAlive(r)
			measured := float64(int64(after)-int64(before)) / float64(n)
			counted := float64(r.SizeBytes()) / float64(n)
			t.Logf("%d nodes: %.0f bytes/node on the heap, SizeBytes %.0f bytes/node", n, measured, counted)
			if measured > 3000 || counted > 3000 {
				t.Errorf("bytes/node = %.0f (heap) / %.0f (counted), want <= 3000", measured, counted)
			}
			if diff := measured - counted; diff > 200 || diff < -200 {
				t.Errorf("SizeBytes (%.0f/node) disagrees with the heap (%.0f/node)", counted, measured)
			}
		})
	}
}
