package hashring

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// fuzzNodes turns fuzz input into nodes: IDs separated by ',', weight
// 1 + (first byte % 3), at most 40 nodes. It reports whether IDs repeat.
func fuzzNodes(spec string) (nodes []Node, dup bool) {
	seen := map[string]bool{}
	for _, id := range strings.Split(spec, ",") {
		if len(nodes) == 40 {
			break
		}
		w := 1
		if id != "" {
			w += int(id[0] % 3)
		}
		dup = dup || seen[id]
		seen[id] = true
		nodes = append(nodes, Node{ID: id, Weight: w})
	}
	return nodes, dup
}

// FuzzTables: for any key and any node set, building either table never
// panics; a duplicate ID is refused; a lookup returns a member,
// deterministically, whatever the order of the nodes; the walk is a
// permutation that starts at the home node; and removing the home node from
// a ring sends the key to the second node of its walk.
func FuzzTables(f *testing.F) {
	f.Add([]byte("user-42"), "a,b,c")
	f.Add([]byte(""), "")
	f.Add([]byte{0, 0, 0}, "x")
	f.Add([]byte("k"), "a,a")
	f.Add([]byte("session=9f8e7d6c5b4a"), "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80,10.0.0.4:80,10.0.0.5:80,10.0.0.6:80,10.0.0.7:80,10.0.0.8:80,10.0.0.9:80,10.0.0.10:80")
	f.Fuzz(func(t *testing.T, key []byte, spec string) {
		nodes, dup := fuzzNodes(spec)
		vnodes := WithVirtualNodes(1 + len(key)%16)
		r, errR := NewRing(nodes, vnodes)
		m, errM := NewMaglev(nodes, WithTableSize(101))
		if dup {
			if !errors.Is(errR, ErrDuplicateID) || !errors.Is(errM, ErrDuplicateID) {
				t.Fatalf("duplicate IDs accepted: %v, %v", errR, errM)
			}
			return
		}
		if errR != nil || errM != nil {
			t.Fatalf("valid nodes refused: %v, %v", errR, errM)
		}
		h := Hash(key)
		reversed := slices.Clone(nodes)
		slices.Reverse(reversed)
		r2, _ := NewRing(reversed, vnodes)
		m2, _ := NewMaglev(reversed, WithTableSize(101))
		for _, tc := range []struct {
			name  string
			t, t2 Table
		}{{"ring", r, r2}, {"maglev", m, m2}} {
			home := tc.t.Lookup(h)
			if home < 0 || home >= len(nodes) {
				t.Fatalf("%s: Lookup = %d with %d nodes", tc.name, home, len(nodes))
			}
			if again := tc.t.Lookup(h); again != home {
				t.Fatalf("%s: Lookup not deterministic: %d then %d", tc.name, home, again)
			}
			if other := tc.t2.Lookup(h); tc.t2.Node(other).ID != tc.t.Node(home).ID {
				t.Fatalf("%s: node order changed the home: %q vs %q", tc.name, tc.t.Node(home).ID, tc.t2.Node(other).ID)
			}
			order := walkAll(tc.t, h)
			if len(order) != len(nodes) || order[0] != home {
				t.Fatalf("%s: walk %v, home %d, %d nodes", tc.name, order, home, len(nodes))
			}
			if distinct := slices.Compact(slices.Sorted(slices.Values(order))); len(distinct) != len(nodes) {
				t.Fatalf("%s: walk %v repeats a node", tc.name, order)
			}
		}
		if r.LookupBytes(key) != r.Lookup(h) || m.LookupBytes(key) != m.Lookup(h) ||
			r.LookupString(string(key)) != r.Lookup(h) || m.LookupString(string(key)) != m.Lookup(h) {
			t.Fatal("LookupBytes/LookupString disagree with Lookup(Hash(key))")
		}
		if len(nodes) > 1 {
			order := walkAll(r, h)
			less, err := r.Remove(r.Node(order[0]).ID)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := less.Node(less.Lookup(h)).ID, r.Node(order[1]).ID; got != want {
				t.Fatalf("home removed: key went to %q, its walk says %q", got, want)
			}
		}
	})
}
