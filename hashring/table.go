package hashring

// Table maps key hashes to nodes. It is implemented by [*Ring] and
// [*Maglev].
//
// A Table is immutable once built: all its methods are safe for concurrent
// use without locks, never block, and none of them allocates (a [Walker]
// allocates only past its first 8 distinct nodes).
type Table interface {
	// Len returns the number of nodes, at least 1 for a table returned by a
	// constructor of this package.
	Len() int
	// Node returns node i, for i in [0, Len()). Nodes are sorted by ID, so
	// an index is stable for the table's lifetime (not across tables: use
	// the ID to follow a node from one table to the next).
	Node(i int) Node
	// Lookup returns the index of the home node of the key whose hash is h
	// (see [Hash]): always in [0, Len()) when Len() > 0, and -1 on an empty
	// (zero-value) table. It equals the first index of Walk(h).
	Lookup(h uint64) int
	// Walk returns the key's preference order: every node exactly once,
	// home node first. The order depends only on h and the member set.
	Walk(h uint64) Walker
}

// Interface guards.
var (
	_ Table = (*Ring)(nil)
	_ Table = (*Maglev)(nil)
)

// inlineSeen is how many distinct nodes a Walker remembers without
// allocating.
const inlineSeen = 8

// Walker enumerates the nodes of a [Table] in one key's preference order:
// every node exactly once, home node first. Get one from [Table.Walk].
//
// A Walker is a value: keep it in a local variable and call Next through its
// address; the first 8 distinct nodes cost no allocation, the 9th allocates a
// bitset of Len() bits once. It reads the table it came from and is not safe
// for concurrent use. Do not copy a Walker after its first Next: the copies
// would share the bitset. The zero Walker returns nothing.
type Walker struct {
	ring   *Ring
	maglev *Maglev

	// Cursors. Ring: cur[0..3] are the point indexes at the heads of the
	// four directions (probe 0 clockwise and counter-clockwise, probe 1
	// likewise), dist their distances from the probe, q the probes. Maglev:
	// q[0] is the SplitMix64 state of the probes, cur[0] the last slot.
	cur  [4]uint32
	dist [4]uint64
	q    [2]uint64

	steps int // raw steps taken (points or slots visited)
	limit int // raw steps after which every node has been met
	n     int // nodes in the table
	count int // distinct nodes returned so far

	inline [inlineSeen]int32
	seen   []uint64 // bitset over node indexes, once count > inlineSeen
}

// Next returns the next distinct node of the key's preference order, and
// ok=false once every node has been returned.
func (w *Walker) Next() (i int, ok bool) {
	for w.count < w.n {
		i, ok = w.nextRaw()
		if !ok {
			return -1, false
		}
		if w.visit(i) {
			w.count++
			return i, true
		}
	}
	return -1, false
}

// nextRaw returns the owner of the next point or slot on the walk; a node
// may come more than once. It never allocates.
func (w *Walker) nextRaw() (int, bool) {
	if w.steps >= w.limit {
		return -1, false
	}
	w.steps++
	switch {
	case w.ring != nil:
		return w.ring.step(w), true
	case w.maglev != nil:
		return w.maglev.step(w), true
	}
	return -1, false
}

// visit records node i and reports whether it had not been returned yet.
func (w *Walker) visit(i int) bool {
	if w.seen != nil {
		word, bit := i>>6, uint64(1)<<(uint(i)&63)
		if w.seen[word]&bit != 0 {
			return false
		}
		w.seen[word] |= bit
		return true
	}
	for _, s := range w.inline[:w.count] {
		if int(s) == i {
			return false
		}
	}
	if w.count < inlineSeen {
		w.inline[w.count] = int32(i)
		return true
	}
	w.seen = make([]uint64, (w.n+63)/64)
	for _, s := range w.inline {
		w.seen[s>>6] |= 1 << (uint(s) & 63)
	}
	w.seen[i>>6] |= 1 << (uint(i) & 63)
	return true
}
