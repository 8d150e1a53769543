package hashring

import "math"

// Loads reports the in-flight load of a table's nodes, for [LookupBounded].
// Implementations are typically atomic counters kept by the caller; they
// must be safe for concurrent use if the caller shares them, and must not
// block or allocate.
type Loads interface {
	// Load returns the current load of node i (the table's index).
	Load(i int) int64
	// Total returns the sum of the loads of all nodes.
	Total() int64
}

// BoundedCap returns the load cap of a node of weight weight in a table of
// total weight totalWeight when total requests are in flight and the load
// factor is c:
//
//	cap = ⌈c × (total+1) × weight / totalWeight⌉
//
// computed in float64. The +1 counts the request being placed, so the caps
// add up to at least total+1 and some node is always below its cap. c below
// 1 (or NaN) is taken as 1, total below 0 as 0, weight below 1 as 1, and
// totalWeight below weight as weight. The result is at least 1 and at most
// math.MaxInt64.
func BoundedCap(c float64, total int64, weight, totalWeight int) int64 {
	if !(c >= 1) {
		c = 1
	}
	total = max(total, 0)
	weight = max(weight, 1)
	totalWeight = max(totalWeight, weight)
	v := math.Ceil(c * (float64(total) + 1) * float64(weight) / float64(totalWeight))
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(v), 1)
}

// weighted is implemented by the tables of this package.
type weighted interface{ TotalWeight() int }

// rawSteps is how many points or slots LookupBounded tries, repeats
// included, before it switches to a walk over distinct nodes.
const rawSteps = 256

// LookupBounded returns the first node on t's walk for key hash h (see
// [Table.Walk]) whose load is below its [BoundedCap] with load factor c:
// consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam).
// Loads.Total is read once, Loads.Load once or more per node tried. With
// c >= 1 and loads that add up to Total, such a node always exists; if none
// is found (loads changing underneath, or a Table from another package) it
// returns t.Lookup(h).
//
// It does not allocate while the answer is among the first 256 points or
// slots of the walk (dozens of distinct nodes); past that it walks distinct
// nodes, which allocates a bitset once, so that a pathological call (every
// node at its cap) costs one pass over the nodes, not over every point.
func LookupBounded(t Table, h uint64, c float64, loads Loads) int {
	total := loads.Total()
	var totalWeight int
	if tw, ok := t.(weighted); ok {
		totalWeight = tw.TotalWeight()
	} else {
		for i := range t.Len() {
			totalWeight += t.Node(i).Weight
		}
	}
	below := func(i int) bool {
		return loads.Load(i) < BoundedCap(c, total, t.Node(i).Weight, totalWeight)
	}
	// Raw steps first: a node met again was already over its cap, and
	// skipping the bookkeeping keeps this allocation-free.
	w := t.Walk(h)
	for range rawSteps {
		i, ok := w.nextRaw()
		if !ok {
			return t.Lookup(h)
		}
		if below(i) {
			return i
		}
	}
	w = t.Walk(h)
	for {
		i, ok := w.Next()
		if !ok {
			return t.Lookup(h)
		}
		if below(i) {
			return i
		}
	}
}
