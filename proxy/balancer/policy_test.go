package balancer

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/hashring"
)

// shares picks n times and counts the first endpoint of each pick.
func shares(u *Upstream, n int) map[string]int {
	count := map[string]int{}
	for k := range n {
		var p Pick
		u.Begin(&p, uint64(k), false)
		if e, err := p.Next(); err == nil {
			count[e.ID]++
		}
	}
	return count
}

func TestRoundRobinIsExact(t *testing.T) {
	u, _, _ := newTest(t, Config{Kind: RoundRobin}, snap(weighted("a", 1), weighted("b", 5), weighted("c", 1)))
	var order string
	for range 6 {
		var p Pick
		u.Begin(&p, 0, true)
		e, _ := p.Next()
		order += e.ID
	}
	if order != "bcabca" && order != "cabcab" && order != "abcabc" {
		t.Errorf("order %q, want the endpoints in turn", order)
	}
	for id, c := range shares(u, 3000) {
		if c != 1000 {
			t.Errorf("%s took %d of 3000, want 1000 (round robin ignores weights)", id, c)
		}
	}
}

func TestWeightedRoundRobinIsProportional(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"equal", []int{1, 1, 1}},
		{"1234", []int{1, 2, 3, 4}},
		{"common divisor", []int{10, 20, 30}},
		{"skewed", []int{100, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eps []discovery.Endpoint
			sum := 0
			for i, w := range tt.weights {
				eps = append(eps, weighted(fmt.Sprintf("e%d", i), w))
				sum += w
			}
			u, _, _ := newTest(t, Config{Kind: WeightedRoundRobin}, snap(eps...))
			g := 0
			for _, w := range tt.weights {
				g = gcd(g, w)
			}
			cycle := sum / g
			count := shares(u, 20*cycle)
			for i, w := range tt.weights {
				if got, want := count[fmt.Sprintf("e%d", i)], 20*w/g; got != want {
					t.Errorf("e%d (weight %d) took %d, want %d", i, w, got, want)
				}
			}
		})
	}
}

func TestWeightedScheduleIsSmooth(t *testing.T) {
	// The heaviest endpoint's longest run of turns, the schedule taken as the cycle it is:
	// no longer than nginx's smooth weighted round-robin gives (a naive schedule runs all of
	// the heavy endpoint's turns together: 5 and 10).
	tests := []struct {
		weights []int
		want    string
		maxRun  int
	}{
		{[]int{5, 1, 1}, "aaabaac", 3},
		{[]int{10, 1, 1, 1, 1, 1}, "", 3},
		{[]int{1, 2, 3, 4}, "", 2},
		{[]int{3, 3, 1}, "", 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			var nodes []hashring.Node
			for i, w := range tt.weights {
				nodes = append(nodes, hashring.Node{ID: string(rune('a' + i)), Weight: w})
			}
			sch := weightedSchedule(nodes)
			var got string
			for _, i := range sch {
				got += nodes[i].ID
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("schedule %s, want %s", got, tt.want)
			}
			heavy := slices.Index(tt.weights, slices.Max(tt.weights))
			run, longest := 0, 0
			for i := range 2 * len(sch) {
				if int(sch[i%len(sch)]) == heavy {
					run++
					longest = max(longest, run)
				} else {
					run = 0
				}
			}
			if longest > tt.maxRun {
				t.Errorf("schedule %s runs the heaviest %d times in a row, want <= %d", got, longest, tt.maxRun)
			}
		})
	}
}

func TestWeightedScheduleIsBounded(t *testing.T) {
	nodes := []hashring.Node{{ID: "a", Weight: 1 << 20}, {ID: "b", Weight: 3 << 20}, {ID: "c", Weight: 7}}
	sch := weightedSchedule(nodes)
	if len(sch) > maxSchedule+len(nodes) {
		t.Fatalf("schedule of %d turns, want at most about %d", len(sch), maxSchedule)
	}
	count := make([]int, 3)
	for _, i := range sch {
		count[i]++
	}
	if r := float64(count[1]) / float64(count[0]); math.Abs(r-3) > 0.01 || count[2] < 1 {
		t.Errorf("turns %v: b/a = %.3f, want 3; c at least once", count, r)
	}
}

func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		load    []int
		// want[i]: the share of endpoint i, within 0.05; -1 = do not check
		want []float64
	}{
		// The loaded endpoint only wins a duel against nobody: it never does.
		{"one busy", []int{1, 1, 1, 1}, []int{100, 0, 0, 0}, []float64{0, -1, -1, -1}},
		// Two choices among equals at rest: uniform.
		{"idle", []int{1, 1, 1, 1}, []int{0, 0, 0, 0}, []float64{0.25, 0.25, 0.25, 0.25}},
		// Per unit of weight, 6 on weight 3 is lighter than 3 on weight 1.
		{"weighted", []int{3, 1}, []int{6, 3}, []float64{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eps []discovery.Endpoint
			for i, w := range tt.weights {
				eps = append(eps, weighted(fmt.Sprintf("e%d", i), w))
			}
			u, _, _ := newTest(t, Config{Kind: LeastRequest}, snap(eps...))
			for i, l := range tt.load {
				for range l {
					handle(u, fmt.Sprintf("e%d", i)).Start()
				}
			}
			const n = 8000
			count := shares(u, n)
			for i, w := range tt.want {
				got := float64(count[fmt.Sprintf("e%d", i)]) / n
				if w >= 0 && math.Abs(got-w) > 0.05 {
					t.Errorf("e%d share %.3f, want %.2f (%v)", i, got, w, count)
				}
			}
		})
	}
}

func TestLeastRequestBalancesLoad(t *testing.T) {
	// Requests that stay in flight spread so that no endpoint gets far ahead of the others.
	u, _, _ := newTest(t, Config{Kind: LeastRequest}, snap(ids(5)...))
	for range 1000 {
		var p Pick
		u.Begin(&p, 0, false)
		e, _ := p.Next()
		e.Start()
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, e := range u.Endpoints() {
		lo, hi = min(lo, e.InFlight()), max(hi, e.InFlight())
	}
	if hi-lo > 20 {
		t.Errorf("in flight from %d to %d over 1000 requests, want within 20", lo, hi)
	}
}

func TestRandomDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"uniform", []int{1, 1, 1, 1}},
		{"weighted", []int{1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eps []discovery.Endpoint
			sum := 0
			for i, w := range tt.weights {
				eps = append(eps, weighted(fmt.Sprintf("e%d", i), w))
				sum += w
			}
			u, _, _ := newTest(t, Config{Kind: Random}, snap(eps...))
			const n = 40000
			count := shares(u, n)
			for i, w := range tt.weights {
				want := float64(n*w) / float64(sum)
				if got := float64(count[fmt.Sprintf("e%d", i)]); math.Abs(got-want) > 0.05*want {
					t.Errorf("e%d took %v, want %v ± 5%%", i, got, want)
				}
			}
		})
	}
}

func TestCoprimeStrides(t *testing.T) {
	for n := 1; n < 200; n++ {
		strides := coprimeStrides(n)
		if len(strides) == 0 {
			t.Fatalf("n=%d: no stride", n)
		}
		for _, k := range strides {
			seen := make([]bool, n)
			for j := range n {
				seen[(j*int(k))%n] = true
			}
			for i, ok := range seen {
				if !ok {
					t.Fatalf("n=%d stride %d misses %d", n, k, i)
				}
			}
		}
	}
}
