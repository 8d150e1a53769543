package hashring

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// slotCounts returns how many slots each node owns.
func slotCounts(m *Maglev) []int {
	counts := make([]int, m.Len())
	for _, owner := range m.table {
		counts[owner]++
	}
	return counts
}

// TestMaglevSlotShares: node i of N owns between (M−N)·w/Σw and M·w/Σw + 1
// of the M slots, and at least one slot however small its weight.
func TestMaglevSlotShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		size    uint64
	}{
		{"equal", []int{1, 1, 1, 1, 1, 1, 1}, 0},
		{"1 to 5", []int{1, 2, 3, 4, 5, 1, 2, 3, 4, 5}, 0},
		{"heavy", []int{1, 1000, 7, 1 << 40}, 0},
		{"small table", []int{3, 1, 4, 1, 5, 9, 2, 6}, 101},
		{"as many slots as nodes", []int{1, 100, 10000}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := testNodes(len(tt.weights), 8)
			total := 0
			for i, w := range tt.weights {
				nodes[i].Weight = w
				total += w
			}
			var opts []Option
			if tt.size != 0 {
				opts = append(opts, WithTableSize(tt.size))
			}
			m := mustMaglev(t, nodes, opts...)
			counts := slotCounts(m)
			size, n := float64(m.TableSize()), float64(len(nodes))
			for i, c := range counts {
				share := float64(m.Node(i).Weight) / float64(total)
				lo, hi := (size-n)*share, size*share+1
				if c < 1 || float64(c) < math.Floor(lo) || float64(c) > hi {
					t.Errorf("node %d (share %.3g) owns %d of %.0f slots, want [%.1f, %.1f] and >= 1",
						i, share, c, size, lo, hi)
				}
			}
		})
	}
}

// TestMaglevUniformFastPath: the round-robin fill used for equal weights is
// the weighted fill's order when weights are equal.
func TestMaglevUniformFastPath(t *testing.T) {
	for _, n := range []int{1, 2, 13, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			nodes, _ := sortedNodes(testNodes(n, uint64(n)))
			for _, w := range []int{1, 7} {
				for i := range nodes {
					nodes[i].Weight = w
				}
				fast := populate(nodes, 65537, true)
				heap := populate(nodes, 65537, false)
				if !slices.Equal(fast, heap) {
					t.Fatalf("weight %d: round-robin and weighted fills differ", w)
				}
			}
		})
	}
}

// TestMaglevWalkProbesThenScans: the walk's first MaglevProbes+1 slots are
// the key's slot and the SplitMix64 stream of h, as documented, and then
// the table forward.
func TestMaglevWalkProbesThenScans(t *testing.T) {
	m := mustMaglev(t, testNodes(5, 3), WithTableSize(11))
	h := uint64(0xdeadbeefcafef00d)
	w := m.Walk(h)
	want := []int{int(m.table[m.slot(h)])}
	state := h
	for range MaglevProbes {
		want = append(want, int(m.table[m.slot(splitmix64(state))]))
		state += golden
	}
	last := m.slot(splitmix64(state - golden))
	for k := range m.TableSize() {
		want = append(want, int(m.table[(last+1+k)%m.TableSize()]))
	}
	for k, wantOwner := range want {
		got, ok := w.nextRaw()
		if !ok || got != wantOwner {
			t.Fatalf("raw step %d = %d, %v; want %d", k, got, ok, wantOwner)
		}
	}
	if got, ok := w.nextRaw(); ok {
		t.Fatalf("raw step after the scan = %d, want the end", got)
	}
}
