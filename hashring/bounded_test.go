package hashring

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestBoundedCap(t *testing.T) {
	tests := []struct {
		name                string
		c                   float64
		total               int64
		weight, totalWeight int
		want                int64
	}{
		{"idle", 1.25, 0, 1, 4, 1},
		{"quarter of 100 at 1.25", 1.25, 99, 1, 4, 32},      // ⌈1.25×100/4⌉ = ⌈31.25⌉
		{"exact", 1, 9, 1, 10, 1},                           // ⌈1×10/10⌉
		{"heavier node", 1.5, 19, 3, 6, 15},                 // ⌈1.5×20×3/6⌉
		{"c below 1 is 1", 0.5, 9, 1, 10, 1},                // as c = 1
		{"NaN c is 1", math.NaN(), 39, 1, 4, 10},            // ⌈40/4⌉
		{"negative total is 0", 2, -7, 1, 2, 1},             // ⌈2×1×1/2⌉
		{"weight below 1 is 1", 1, 9, 0, 10, 1},             // ⌈10/10⌉
		{"total weight below weight", 1, 9, 3, 1, 10},       // as 3/3
		{"infinite c", math.Inf(1), 1, 1, 1, math.MaxInt64}, // clamped
		{"huge total", 4, math.MaxInt64 - 1, 1, 1, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BoundedCap(tt.c, tt.total, tt.weight, tt.totalWeight); got != tt.want {
				t.Errorf("BoundedCap(%v, %d, %d, %d) = %d, want %d", tt.c, tt.total, tt.weight, tt.totalWeight, got, tt.want)
			}
		})
	}
}

// fakeLoads is an in-flight counter per node.
type fakeLoads []int64

func (f fakeLoads) Load(i int) int64 { return f[i] }
func (f fakeLoads) Total() int64 {
	var s int64
	for _, v := range f {
		s += v
	}
	return s
}

// plainTable hides everything but the Table methods, as a Table from
// another package would.
type plainTable struct{ t Table }

func (p plainTable) Len() int             { return p.t.Len() }
func (p plainTable) Node(i int) Node      { return p.t.Node(i) }
func (p plainTable) Lookup(h uint64) int  { return p.t.Lookup(h) }
func (p plainTable) Walk(h uint64) Walker { return p.t.Walk(h) }

// TestLookupBoundedNeverExceedsCap places and completes requests at random
// and checks, at every placement, that the chosen node was below its cap
// and that every node before it on the key's walk was at or over its cap.
func TestLookupBoundedNeverExceedsCap(t *testing.T) {
	nodes := testNodes(20, 4)
	for i := range nodes {
		nodes[i].Weight = 1 + i%3
	}
	for _, c := range constructors {
		for _, factor := range []float64{1, 1.25, 2} {
			tab, err := c.make(nodes)
			if err != nil {
				t.Fatal(err)
			}
			tw := tab.(weighted).TotalWeight()
			loads := make(fakeLoads, len(nodes))
			var inflight []int
			rng := rand.New(rand.NewPCG(uint64(factor*100), 3))
			hot := keyHashes(30, 9) // a few hot keys make caps bind
			skipped := 0
			for step := range 30_000 {
				if len(inflight) > 0 && rng.IntN(100) < 45 {
					k := rng.IntN(len(inflight))
					loads[inflight[k]]--
					inflight[k] = inflight[len(inflight)-1]
					inflight = inflight[:len(inflight)-1]
					continue
				}
				h := hot[rng.IntN(len(hot))]
				total := loads.Total()
				got := LookupBounded(tab, h, factor, loads)
				if via := LookupBounded(plainTable{tab}, h, factor, loads); via != got {
					t.Fatalf("step %d: plain table chose %d, table %d", step, via, got)
				}
				capOf := func(i int) int64 { return BoundedCap(factor, total, tab.Node(i).Weight, tw) }
				if loads[got] >= capOf(got) {
					t.Fatalf("step %d: chose node %d at load %d, cap %d", step, got, loads[got], capOf(got))
				}
				w := tab.Walk(h)
				for i, _ := w.Next(); i != got; i, _ = w.Next() {
					if loads[i] < capOf(i) {
						t.Fatalf("step %d: skipped node %d below its cap (%d < %d)", step, i, loads[i], capOf(i))
					}
					skipped++
				}
				loads[got]++
				inflight = append(inflight, got)
			}
			t.Logf("%s c=%.2f: %d placements passed over a node at its cap", c.name, factor, skipped)
			if skipped == 0 {
				t.Errorf("%s c=%.2f: caps never bound; the test exercised nothing", c.name, factor)
			}
		}
	}
}

func TestLookupBoundedFallback(t *testing.T) {
	r := mustRing(t, namedNodes(10))
	idle := make(fakeLoads, 10)
	full := fakeLoads{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64,
		math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
	for _, h := range keyHashes(100, 1) {
		if got, want := LookupBounded(r, h, 1.25, idle), r.Lookup(h); got != want {
			t.Fatalf("idle: LookupBounded = %d, Lookup = %d", got, want)
		}
		// Every node over its cap (Total inconsistent with the loads): home.
		if got, want := LookupBounded(r, h, 1.25, staleTotal{full}), r.Lookup(h); got != want {
			t.Fatalf("saturated: LookupBounded = %d, want home %d", got, want)
		}
	}
}

// staleTotal reports a total of 0 whatever the loads, as a racing reader
// might see.
type staleTotal struct{ fakeLoads }

func (staleTotal) Total() int64 { return 0 }

// TestLookupBoundedFindsTheLastFreeNode: with every node but one at its
// cap, the answer lies far down the walk, past the raw steps.
func TestLookupBoundedFindsTheLastFreeNode(t *testing.T) {
	const n = 3000
	for _, c := range constructors {
		tab, err := c.make(testNodes(n, 6))
		if err != nil {
			t.Fatal(err)
		}
		loads := make(fakeLoads, n)
		for i := range loads {
			loads[i] = 1
		}
		free := 1234
		loads[free] = 0
		// Total n-1 with c=1: each cap is ⌈n/n⌉ = 1, so only free is below.
		for _, h := range keyHashes(20, 2) {
			if got := LookupBounded(tab, h, 1, loads); got != free {
				t.Fatalf("%s: LookupBounded = %d, want the only free node %d", c.name, got, free)
			}
		}
	}
}
