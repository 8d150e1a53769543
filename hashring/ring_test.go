package hashring

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// constructors lets one test run against both tables.
var constructors = []struct {
	name string
	make func([]Node, ...Option) (Table, error)
}{
	{"ring", func(n []Node, o ...Option) (Table, error) { return NewRing(n, o...) }},
	{"maglev", func(n []Node, o ...Option) (Table, error) { return NewMaglev(n, o...) }},
}

func TestConstructorErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    []Node
		opts    []Option
		want    error
		wantMsg string // substring of the message: the offending ID
	}{
		{name: "nil", give: nil, want: ErrNoNodes},
		{name: "empty", give: []Node{}, want: ErrNoNodes},
		{name: "zero weight", give: []Node{{"a", 1}, {"b", 0}}, want: ErrBadWeight, wantMsg: `"b"`},
		{name: "negative weight", give: []Node{{"a", -3}}, want: ErrBadWeight, wantMsg: `"a"`},
		{name: "duplicate", give: []Node{{"a", 1}, {"b", 1}, {"a", 2}}, want: ErrDuplicateID, wantMsg: `"a"`},
		{name: "duplicate empty ID", give: []Node{{"", 1}, {"", 1}}, want: ErrDuplicateID},
	}
	for _, c := range constructors {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				tab, err := c.make(tt.give, tt.opts...)
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if tab != nil && !reflect.ValueOf(tab).IsNil() {
					t.Errorf("table = %v, want nil with an error", tab)
				}
				if tt.wantMsg != "" && !contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %q, want it to name %s", err, tt.wantMsg)
				}
			})
		}
	}
}

func TestOptionErrors(t *testing.T) {
	nodes := namedNodes(3)
	tests := []struct {
		name string
		make func() error
		want error
	}{
		{"ring zero vnodes", func() error { _, err := NewRing(nodes, WithVirtualNodes(0)); return err }, ErrBadOption},
		{"ring negative vnodes", func() error { _, err := NewRing(nodes, WithVirtualNodes(-1)); return err }, ErrBadOption},
		{"ring too many points", func() error {
			_, err := NewRing([]Node{{"a", MaxRingPoints/160 + 1}})
			return err
		}, ErrTooLarge},
		{"ring too many points in sum", func() error {
			_, err := NewRing([]Node{{"a", MaxRingPoints / 2}, {"b", MaxRingPoints/2 + 1}}, WithVirtualNodes(1))
			return err
		}, ErrTooLarge},
		{"ring too many nodes", func() error {
			_, err := NewRing(namedNodes(MaxRingNodes+1), WithVirtualNodes(1))
			return err
		}, ErrTooLarge},
		{"maglev size not prime", func() error { _, err := NewMaglev(nodes, WithTableSize(65536)); return err }, ErrBadOption},
		{"maglev size below nodes", func() error { _, err := NewMaglev(nodes, WithTableSize(2)); return err }, ErrBadOption},
		{"maglev size too large", func() error { _, err := NewMaglev(nodes, WithTableSize(1<<61-1)); return err }, ErrBadOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.make(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOptionsAccepted(t *testing.T) {
	nodes := namedNodes(3)
	r := mustRing(t, nodes, WithVirtualNodes(7), WithTableSize(99991), nil)
	if r.VirtualNodes() != 7 || r.Points() != 21 {
		t.Errorf("vnodes %d points %d, want 7 and 21", r.VirtualNodes(), r.Points())
	}
	m := mustMaglev(t, nodes, WithTableSize(101), WithVirtualNodes(1))
	if m.TableSize() != 101 {
		t.Errorf("table size %d, want 101", m.TableSize())
	}
	if got := mustMaglev(t, namedNodes(1000)).TableSize(); got != 100003 {
		t.Errorf("default table size at 1000 nodes = %d, want 100003 (first prime >= 100000)", got)
	}
	if got := mustMaglev(t, nodes).TableSize(); got != MinTableSize {
		t.Errorf("default table size at 3 nodes = %d, want %d", got, MinTableSize)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestNodesSortedAndCopied(t *testing.T) {
	give := []Node{{"c", 3}, {"a", 1}, {"b", 2}}
	for _, c := range constructors {
		t.Run(c.name, func(t *testing.T) {
			tab, err := c.make(give)
			if err != nil {
				t.Fatal(err)
			}
			give[0].ID = "changed" // the table must not alias the caller's slice
			defer func() { give[0].ID = "c" }()
			var got []Node
			for i := range tab.Len() {
				got = append(got, tab.Node(i))
			}
			want := []Node{{"a", 1}, {"b", 2}, {"c", 3}}
			if !slices.Equal(got, want) {
				t.Errorf("nodes = %v, want %v", got, want)
			}
			idx := tab.(interface{ Index(string) (int, bool) })
			if i, ok := idx.Index("b"); !ok || i != 1 {
				t.Errorf("Index(b) = %d, %v; want 1, true", i, ok)
			}
			if _, ok := idx.Index("zz"); ok {
				t.Error("Index(zz) found a node that is not a member")
			}
			if tw := tab.(weighted).TotalWeight(); tw != 6 {
				t.Errorf("TotalWeight = %d, want 6", tw)
			}
		})
	}
}

// TestWalkVisitsEveryNodeOnce checks the Walker contract on sizes around the
// inline capacity (8) and beyond: every node once, home first, then done.
func TestWalkVisitsEveryNodeOnce(t *testing.T) {
	hashes := keyHashes(200, 3)
	for _, c := range constructors {
		for _, n := range []int{1, 2, 7, 8, 9, 20, 130} {
			t.Run(fmt.Sprintf("%s/%d", c.name, n), func(t *testing.T) {
				tab, err := c.make(testNodes(n, uint64(n)))
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hashes {
					order := walkAll(tab, h)
					if len(order) != n {
						t.Fatalf("walk of %x returned %d nodes, want %d", h, len(order), n)
					}
					if order[0] != tab.Lookup(h) {
						t.Fatalf("walk of %x starts at %d, Lookup says %d", h, order[0], tab.Lookup(h))
					}
					sorted := slices.Sorted(slices.Values(order))
					for i, v := range sorted {
						if v != i {
							t.Fatalf("walk of %x = %v: not a permutation of [0,%d)", h, order, n)
						}
					}
					w := tab.Walk(h)
					for range n {
						w.Next()
					}
					for range 3 {
						if i, ok := w.Next(); ok {
							t.Fatalf("Next after the last node = %d, true", i)
						}
					}
				}
			})
		}
	}
}

func TestZeroValues(t *testing.T) {
	var (
		r  Ring
		m  Maglev
		nr *Ring
		nm *Maglev
		w  Walker
	)
	for name, tab := range map[string]Table{"ring": &r, "maglev": &m} {
		if got := tab.Lookup(42); got != -1 {
			t.Errorf("zero %s: Lookup = %d, want -1", name, got)
		}
		wk := tab.Walk(42)
		if i, ok := wk.Next(); ok {
			t.Errorf("zero %s: Walk returned %d", name, i)
		}
		if tab.Len() != 0 {
			t.Errorf("zero %s: Len = %d", name, tab.Len())
		}
	}
	if nr.Lookup(1) != -1 || nm.Lookup(1) != -1 {
		t.Error("nil tables: Lookup != -1")
	}
	if i, ok := w.Next(); ok {
		t.Errorf("zero Walker returned %d", i)
	}
}

func TestAddRemoveMatchRebuild(t *testing.T) {
	for _, n := range []int{1, 2, 10, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			nodes := testNodes(n+1, uint64(n))
			nodes[n/2].Weight = 3
			nodes[n].Weight = 2
			base := mustRing(t, nodes[:n], WithVirtualNodes(40))
			before := *base
			added, err := base.Add(nodes[n])
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*base, before) {
				t.Fatal("Add changed its receiver")
			}
			assertSameRing(t, added, mustRing(t, nodes, WithVirtualNodes(40)))
			for _, victim := range []int{0, n / 2, n - 1} {
				removed, err := added.Remove(nodes[victim].ID)
				if err != nil {
					t.Fatal(err)
				}
				rest := slices.Delete(slices.Clone(nodes), victim, victim+1)
				assertSameRing(t, removed, mustRing(t, rest, WithVirtualNodes(40)))
			}
		})
	}
}

func assertSameRing(t *testing.T, got, want *Ring) {
	t.Helper()
	if !slices.Equal(got.nodes, want.nodes) {
		t.Fatalf("nodes differ: %v vs %v", got.nodes, want.nodes)
	}
	if !slices.Equal(got.padded, want.padded) || !slices.Equal(got.index, want.index) ||
		got.shift != want.shift || got.totalWeight != want.totalWeight || got.vnodes != want.vnodes {
		t.Fatal("rings over the same member set differ")
	}
}

func TestAddRemoveErrors(t *testing.T) {
	r := mustRing(t, namedNodes(3))
	tests := []struct {
		name string
		do   func() (*Ring, error)
		want error
	}{
		{"add duplicate", func() (*Ring, error) { return r.Add(Node{"node-1", 1}) }, ErrDuplicateID},
		{"add bad weight", func() (*Ring, error) { return r.Add(Node{"x", 0}) }, ErrBadWeight},
		{"add too heavy", func() (*Ring, error) { return r.Add(Node{"x", MaxRingPoints}) }, ErrTooLarge},
		{"remove unknown", func() (*Ring, error) { return r.Remove("x") }, ErrNotFound},
		{"remove last", func() (*Ring, error) {
			one := mustRing(t, namedNodes(1))
			return one.Remove("node-0")
		}, ErrNoNodes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.do()
			if !errors.Is(err, tt.want) || got != nil {
				t.Errorf("got %v, %v; want nil, %v", got, err, tt.want)
			}
		})
	}
}

// TestPrefixIndex checks the index against a plain binary search, including
// buckets crowded enough to be binary-searched.
func TestPrefixIndex(t *testing.T) {
	for _, n := range []int{1, 2, 3, 100, 5000} {
		r := mustRing(t, testNodes(1, uint64(n)), WithVirtualNodes(n))
		for _, h := range keyHashes(2000, 5) {
			q := h & posMask
			want, _ := slices.BinarySearch(r.points, q)
			if want == len(r.points) {
				want = 0
			}
			if got := r.successor(q); int(got) != want {
				t.Fatalf("n=%d successor(%x) = %d, want %d", n, q, got, want)
			}
		}
	}
	// A crowded bucket: every point in bucket 0.
	r := &Ring{padded: []uint64{0}, vnodes: 1}
	for i := range 40 {
		r.padded = append(r.padded, uint64(i)<<20)
	}
	r.padded = append(r.padded, make([]uint64, padding-1)...)
	pad(r.padded)
	r.points = r.padded[1:41]
	r.index, r.shift = buildIndex(r.points)
	if r.index[1]-r.index[0] <= window {
		t.Fatalf("bucket 0 holds %d points, want a crowded one", r.index[1]-r.index[0])
	}
	r.index, r.shift = buildIndex(r.points)
	for i := range 40 {
		q := uint64(i)<<20 - 1<<16
		if got := r.successor(q &^ ownerMask); int(got) != i {
			t.Fatalf("crowded successor(%x) = %d, want %d", q, got, i)
		}
	}
}

func TestPrimes(t *testing.T) {
	tests := []struct{ give, want uint64 }{
		{0, 2}, {2, 2}, {3, 3}, {4, 5}, {65536, 65537}, {65537, 65537}, {100000, 100003}, {1000000, 1000003},
	}
	for _, tt := range tests {
		if got := nextPrime(tt.give); got != tt.want {
			t.Errorf("nextPrime(%d) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

// bruteHome is the Ring's key-to-node rule written as plainly as possible:
// for each probe, every point's distance in both directions; the nearest
// point wins, ties going to probe 0, then to the clockwise point, then to
// the point that sorts first clockwise (last counter-clockwise).
func bruteHome(r *Ring, h uint64) int {
	type cand struct {
		dist  uint64
		order int // probe*2 + direction (0 clockwise, 1 counter-clockwise)
		pos   int // rank within the direction
	}
	best := cand{dist: ^uint64(0), order: 9}
	owner := -1
	n := len(r.points)
	for probe, q := range []uint64{h & posMask, splitmix64(h) & posMask} {
		for k, p := range r.points {
			cw := cand{p&posMask - q, 2 * probe, k}
			ccw := cand{q - p&posMask, 2*probe + 1, n - k}
			for _, c := range []cand{cw, ccw} {
				if c.dist < best.dist || c.dist == best.dist && (c.order < best.order ||
					c.order == best.order && c.pos < best.pos) {
					best, owner = c, int(p&ownerMask)
				}
			}
		}
	}
	return owner
}

// TestLookupMatchesBruteForce checks the fast lookup (interleaved probes,
// branch-free windows, crowded buckets) against bruteHome.
func TestLookupMatchesBruteForce(t *testing.T) {
	rings := map[string]*Ring{}
	for _, n := range []int{1, 2, 3, 17} {
		rings[fmt.Sprintf("%d nodes", n)] = mustRing(t, testNodes(n, uint64(n)), WithVirtualNodes(5))
	}
	// Crowded: three owners whose points all fall in a few buckets.
	crowded := &Ring{nodes: namedNodes(3), padded: []uint64{0}}
	for i := range 60 {
		crowded.padded = append(crowded.padded, uint64(i)<<19|uint64(i%3))
	}
	crowded.padded = append(crowded.padded, make([]uint64, padding-1)...)
	pad(crowded.padded)
	crowded.points = crowded.padded[1:61]
	crowded.index, crowded.shift = buildIndex(crowded.points)
	rings["crowded"] = crowded

	for name, r := range rings {
		hashes := keyHashes(3000, 1)
		// Keys right at, right around, and half way between the points too:
		// the crowded ring's points are 2^19 apart, so its midpoints are
		// exact ties.
		for k, p := range r.points {
			next := r.padded[k+2] & posMask
			mid := p&posMask + (next-p&posMask)/2&posMask
			hashes = append(hashes, p&posMask, p&posMask-1<<ownerBits, p&posMask+1<<ownerBits, mid)
		}
		for _, h := range hashes {
			if got, want := r.Lookup(h), bruteHome(r, h); got != want {
				t.Fatalf("%s: Lookup(%x) = %d, brute force says %d", name, h, got, want)
			}
			if got, want := int(r.homeSlow(h)&ownerMask), bruteHome(r, h); got != want {
				t.Fatalf("%s: homeSlow(%x) = %d, brute force says %d", name, h, got, want)
			}
		}
	}
}
