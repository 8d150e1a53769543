package hashring

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// testNodes returns n nodes of weight 1 named like endpoints, from a seeded
// generator so that every run tests the same sets.
func testNodes(n int, seed uint64) []Node {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	seen := make(map[string]bool, n)
	nodes := make([]Node, 0, n)
	for len(nodes) < n {
		id := fmt.Sprintf("10.%d.%d.%d:%d", r.IntN(256), r.IntN(256), r.IntN(256), 8000+r.IntN(1000))
		if seen[id] {
			continue
		}
		seen[id] = true
		nodes = append(nodes, Node{ID: id, Weight: 1})
	}
	return nodes
}

// namedNodes returns nodes "node-0" … "node-<n-1>" of weight 1.
func namedNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("node-%d", i), Weight: 1}
	}
	return nodes
}

// nodeSets are the node-ID families the property tests run on: sequential
// names and random endpoint addresses.
func nodeSets(n int) map[string][]Node {
	return map[string][]Node{
		"named":    namedNodes(n),
		"random-1": testNodes(n, 1),
		"random-2": testNodes(n, 2),
	}
}

// testKeys returns n distinct-looking keys of 16 to 32 bytes.
func testKeys(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 42))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	keys := make([]string, n)
	buf := make([]byte, 32)
	for i := range keys {
		l := 16 + r.IntN(17)
		for j := range l {
			buf[j] = alphabet[r.IntN(len(alphabet))]
		}
		keys[i] = string(buf[:l])
	}
	return keys
}

// keyHashes returns the hashes of n keys of 16 to 32 bytes.
func keyHashes(n int, seed uint64) []uint64 {
	keys := testKeys(n, seed)
	hs := make([]uint64, n)
	for i, k := range keys {
		hs[i] = HashString(k)
	}
	return hs
}

// distribution returns how many of hashes each node of t is home to.
func distribution(t Table, hashes []uint64) []int {
	counts := make([]int, t.Len())
	for _, h := range hashes {
		counts[t.Lookup(h)]++
	}
	return counts
}

// peakToMean returns max(counts) / mean(counts).
func peakToMean(counts []int) float64 {
	total, peak := 0, 0
	for _, c := range counts {
		total += c
		peak = max(peak, c)
	}
	return float64(peak) * float64(len(counts)) / float64(total)
}

// walkAll returns the whole walk of h on t.
func walkAll(t Table, h uint64) []int {
	w := t.Walk(h)
	var order []int
	for {
		i, ok := w.Next()
		if !ok {
			return order
		}
		order = append(order, i)
	}
}

func mustRing(tb testing.TB, nodes []Node, opts ...Option) *Ring {
	tb.Helper()
	r, err := NewRing(nodes, opts...)
	if err != nil {
		tb.Fatalf("NewRing: %v", err)
	}
	return r
}

func mustMaglev(tb testing.TB, nodes []Node, opts ...Option) *Maglev {
	tb.Helper()
	m, err := NewMaglev(nodes, opts...)
	if err != nil {
		tb.Fatalf("NewMaglev: %v", err)
	}
	return m
}
