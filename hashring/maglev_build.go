package hashring

import (
	"fmt"
	"math/big"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// tableSize validates the requested size, or picks the default for n nodes.
func tableSize(want uint64, n int) (uint64, error) {
	if want == 0 {
		m := nextPrime(max(MinTableSize, 100*uint64(n)))
		if m > MaxTableSize {
			return 0, fmt.Errorf("%d nodes need a %d-slot table, at most %d: %w", n, m, MaxTableSize, ErrTooLarge)
		}
		return m, nil
	}
	if want < uint64(n) || want > MaxTableSize || !isPrime(want) {
		return 0, fmt.Errorf("table size %d for %d nodes: want a prime in [%d, %d]: %w",
			want, n, n, MaxTableSize, ErrBadOption)
	}
	return want, nil
}

// uniformWeights reports whether all nodes have the same weight.
func uniformWeights(nodes []Node) bool {
	for _, n := range nodes {
		if n.Weight != nodes[0].Weight {
			return false
		}
	}
	return true
}

// emptySlot marks a slot no node has claimed yet.
const emptySlot = ^uint32(0)

// populate fills an m-slot table (m prime, >= len(nodes)). With uniform
// weights, turns go round-robin; otherwise a heap orders them by virtual
// time. Both give the same order when the weights are equal.
func populate(nodes []Node, m uint64, uniform bool) []uint32 {
	table := make([]uint32, m)
	for s := range table {
		table[s] = emptySlot
	}
	next := make([]uint64, len(nodes)) // next candidate slot of each node's permutation
	skip := make([]uint64, len(nodes))
	for i, n := range nodes {
		x := xxhash.Sum64String(n.ID)
		next[i] = x % m
		skip[i] = splitmix64(x)%(m-1) + 1
	}
	claim := func(i int) {
		s := next[i]
		for table[s] != emptySlot {
			if s += skip[i]; s >= m {
				s -= m
			}
		}
		table[s] = uint32(i)
		if s += skip[i]; s >= m {
			s -= m
		}
		next[i] = s
	}
	filled := uint64(0)
	if uniform {
		for filled < m {
			for i := 0; i < len(nodes) && filled < m; i++ {
				claim(i)
				filled++
			}
		}
		return table
	}
	h := newTurnHeap(nodes)
	for ; filled < m; filled++ {
		i := h.top()
		claim(i)
		h.advance()
	}
	return table
}

// turnHeap orders weighted Maglev turns: node i's t-th turn (t from 0) is
// at virtual time t/weight_i; earlier times first, ties by lower index.
// Times are compared exactly by cross-multiplying in 128 bits.
type turnHeap struct {
	heap   []int32  // node indexes, a binary min-heap
	turns  []uint64 // turns taken per node
	weight []uint64
}

func newTurnHeap(nodes []Node) *turnHeap {
	h := &turnHeap{
		heap:   make([]int32, len(nodes)),
		turns:  make([]uint64, len(nodes)),
		weight: make([]uint64, len(nodes)),
	}
	for i, n := range nodes {
		h.heap[i] = int32(i) // every time is 0: index order is a valid heap
		h.weight[i] = uint64(n.Weight)
	}
	return h
}

// less reports whether node a's next turn comes before node b's.
func (h *turnHeap) less(a, b int32) bool {
	// turns[a]/weight[a] < turns[b]/weight[b]
	ah, al := bits.Mul64(h.turns[a], h.weight[b])
	bh, bl := bits.Mul64(h.turns[b], h.weight[a])
	if ah != bh {
		return ah < bh
	}
	if al != bl {
		return al < bl
	}
	return a < b
}

// top returns the node whose turn it is.
func (h *turnHeap) top() int { return int(h.heap[0]) }

// advance records that the top node took its turn and restores the heap.
func (h *turnHeap) advance() {
	h.turns[h.heap[0]]++
	n := len(h.heap)
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h.less(h.heap[c+1], h.heap[c]) {
			c++
		}
		if !h.less(h.heap[c], h.heap[i]) {
			return
		}
		h.heap[i], h.heap[c] = h.heap[c], h.heap[i]
		i = c
	}
}

// isPrime reports whether n is prime. big.Int.ProbablyPrime(0) is exact
// (Baillie-PSW) below 2^64; this runs only when a table is built.
func isPrime(n uint64) bool {
	return new(big.Int).SetUint64(n).ProbablyPrime(0)
}

// nextPrime returns the smallest prime >= n, for n >= 2 well below 2^64.
func nextPrime(n uint64) uint64 {
	if n <= 2 {
		return 2
	}
	if n%2 == 0 {
		n++
	}
	for !isPrime(n) {
		n += 2
	}
	return n
}
