package hashring

import (
	"math/bits"
	"unsafe"
)

// Maglev table sizes.
const (
	// MinTableSize is the smallest default Maglev table size (a prime).
	MinTableSize = 65537
	// MaxTableSize bounds the Maglev table size (4 bytes per slot).
	MaxTableSize = 1 << 28
)

// Maglev is an immutable Maglev lookup table (Eisenbud et al., NSDI 2016).
// Build one with [NewMaglev]. All methods are safe for concurrent use
// without locks.
//
// # Table
//
// The table has M slots, M prime (see [WithTableSize]). Node i, hashed as
// x = xxhash64(ID), has the permutation offset + j×skip (mod M) with
// offset = x mod M and skip = splitmix64(x) mod (M-1) + 1, and the nodes take
// turns claiming the next free slot of their permutation until the table is
// full. Weights set the turn frequency: node i takes its t-th turn at
// virtual time t/weight_i, turns in order of virtual time, ties by node
// index (ID order). So equal weights take turns round-robin as in the paper,
// every node takes a first turn (owns at least one slot), and node i owns
// between (M−N)·w_i/Σw and M·w_i/Σw + 1 slots.
//
// # Keys
//
// Key hash h goes to slot s0 = ⌊h×M / 2^64⌋ (a multiply, not a division)
// and its home node is the slot's owner. Its preference order
// ([Maglev.Walk]) is the distinct owners of slot s0, then of slots s1 to
// s64 ([MaglevProbes]) from the SplitMix64 stream seeded with h
// (sk = ⌊splitmix64(h + (k-1)×0x9e3779b97f4a7c15)×M / 2^64⌋), then of the
// slots after s64, walking forward and wrapping, so that every node comes.
// Skipping a node on the walk moves only its keys, to the other nodes in
// proportion to their shares.
//
// Why not simply walk forward from s0: Maglev permutations are arithmetic
// progressions mod M, so a node's slots are often followed by the slots of
// one particular other node; walking forward, that node inherited up to 6%
// of an ejected node's keys at N=100, where independent probes give at most
// 1.4%.
//
// Compared with [Ring]: lookups are one multiply and one load, and balance
// is within 1–2% of the weights, but a membership change also moves keys
// between surviving nodes: adding a 101st node moves 1.6% of the keys
// instead of 1%, a third of them between old nodes.
type Maglev struct {
	nodes       []Node
	table       []uint32 // slot -> node index
	m           uint64
	totalWeight int
}

// NewMaglev builds a Maglev table from nodes (in any order; the slice is
// copied). It returns an error wrapping [ErrNoNodes], [ErrDuplicateID],
// [ErrBadWeight], [ErrTooLarge] or [ErrBadOption].
func NewMaglev(nodes []Node, opts ...Option) (*Maglev, error) {
	o := buildOptions(opts)
	sorted, err := sortedNodes(nodes)
	if err != nil {
		return nil, err
	}
	m, err := tableSize(o.tableSize, len(sorted))
	if err != nil {
		return nil, err
	}
	return &Maglev{
		nodes:       sorted,
		table:       populate(sorted, m, uniformWeights(sorted)),
		m:           m,
		totalWeight: sumWeights(sorted),
	}, nil
}

// Len returns the number of nodes.
func (mg *Maglev) Len() int { return len(mg.nodes) }

// Node returns node i (nodes are sorted by ID).
func (mg *Maglev) Node(i int) Node { return mg.nodes[i] }

// Index returns the index of the node with the given ID, and whether it is
// a member.
func (mg *Maglev) Index(id string) (int, bool) { return searchID(mg.nodes, id) }

// TotalWeight returns Σ weight over the nodes.
func (mg *Maglev) TotalWeight() int { return mg.totalWeight }

// TableSize returns the number of slots M.
func (mg *Maglev) TableSize() uint64 { return mg.m }

// SizeBytes returns the memory held by the table and the node list (node
// ID strings included).
func (mg *Maglev) SizeBytes() int {
	size := 4*cap(mg.table) + int(unsafe.Sizeof(Node{}))*cap(mg.nodes)
	for _, n := range mg.nodes {
		size += len(n.ID)
	}
	return size
}

// slot returns the slot of key hash h.
func (mg *Maglev) slot(h uint64) uint64 {
	s, _ := bits.Mul64(h, mg.m)
	return s
}

// Lookup returns the index of the home node of key hash h: the owner of
// its slot. It returns -1 only on a zero or nil Maglev. It does not
// allocate.
func (mg *Maglev) Lookup(h uint64) int {
	if mg == nil || len(mg.table) == 0 {
		return -1
	}
	return int(mg.table[mg.slot(h)])
}

// LookupString returns Lookup(HashString(key)).
func (mg *Maglev) LookupString(key string) int { return mg.Lookup(HashString(key)) }

// LookupBytes returns Lookup(Hash(key)).
func (mg *Maglev) LookupBytes(key []byte) int { return mg.Lookup(Hash(key)) }

// MaglevProbes is the number of independent slots a Maglev walk probes
// after the key's own slot before it falls back to walking the table
// forward (see [Maglev]).
const MaglevProbes = 64

// Walk returns the preference order of key hash h (see [Maglev]), home node
// first. It does not allocate.
func (mg *Maglev) Walk(h uint64) Walker {
	if mg == nil || len(mg.table) == 0 {
		return Walker{}
	}
	w := Walker{maglev: mg, n: len(mg.nodes), limit: 1 + MaglevProbes + len(mg.table)}
	w.q[0] = h
	return w
}

// step returns the owner of the walker's next slot. The walker has already
// counted this step: steps 1 to 1+MaglevProbes probe the SplitMix64 stream
// of h, the M steps after that scan every slot once, so every node comes.
func (mg *Maglev) step(w *Walker) int {
	var s uint64
	switch {
	case w.steps == 1:
		s = mg.slot(w.q[0])
	case w.steps <= 1+MaglevProbes:
		s = mg.slot(splitmix64(w.q[0]))
		w.q[0] += golden
	default:
		if s = uint64(w.cur[0]) + 1; s == mg.m {
			s = 0
		}
	}
	w.cur[0] = uint32(s)
	return int(mg.table[s])
}
