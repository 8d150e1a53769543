package hashring

import (
	"testing"
)

// pick returns the first node on h's walk that is not ejected, as the proxy
// does, or -1 if all are.
func pick(t Table, h uint64, ejected map[int]bool) int {
	w := t.Walk(h)
	for {
		i, ok := w.Next()
		if !ok || !ejected[i] {
			return i
		}
	}
}

// TestEjection ejects a node by skipping it on the walk, at N=100: no key of
// a healthy node moves, the ejected node's keys spread over at least 80% of
// the others with none taking more than 5% of them, and every key comes back
// when the node recovers.
func TestEjection(t *testing.T) {
	hashes := millionKeys()
	for _, c := range constructors {
		for set, nodes := range nodeSets(100) {
			t.Run(c.name+"/"+set, func(t *testing.T) {
				tab, err := c.make(nodes)
				if err != nil {
					t.Fatal(err)
				}
				home := make([]int, len(hashes))
				for k, h := range hashes {
					home[k] = tab.Lookup(h)
				}
				for _, victim := range []int{0, 42, 99} {
					ejected := map[int]bool{victim: true}
					took := make(map[int]int)
					orphans := 0
					for k, h := range hashes {
						got := pick(tab, h, ejected)
						if home[k] != victim {
							if got != home[k] {
								t.Fatalf("healthy key %x moved from %d to %d", h, home[k], got)
							}
							continue
						}
						if got == victim || got < 0 {
							t.Fatalf("key %x stayed on ejected node %d", h, victim)
						}
						orphans++
						took[got]++
					}
					peak := 0
					for _, n := range took {
						peak = max(peak, n)
					}
					spread := float64(len(took)) / float64(len(nodes)-1)
					peakShare := float64(peak) / float64(orphans)
					t.Logf("%s %s: node %d ejected: its %d keys went to %.0f%% of the others, at most %.1f%% to one",
						c.name, set, victim, orphans, 100*spread, 100*peakShare)
					if spread < 0.80 {
						t.Errorf("ejected keys reached %.0f%% of the other nodes, want >= 80%%", 100*spread)
					}
					if peakShare > 0.05 {
						t.Errorf("one node took %.1f%% of the ejected keys, want <= 5%%", 100*peakShare)
					}
					// Recovery: nothing is skipped, every key is home again.
					for k, h := range hashes[:100_000] {
						if got := pick(tab, h, nil); got != home[k] {
							t.Fatalf("after recovery key %x is on %d, home is %d", h, got, home[k])
						}
					}
				}
			})
		}
	}
}

// TestEjectionMatchesRemoval: on the ring, skipping a node sends each of its
// keys exactly where removing the node would, and two ejections move only
// the two nodes' keys.
func TestEjectionMatchesRemoval(t *testing.T) {
	nodes := testNodes(30, 77)
	r := mustRing(t, nodes)
	less, err := r.Remove(nodes[3].ID)
	if err != nil {
		t.Fatal(err)
	}
	i3, _ := r.Index(nodes[3].ID)
	i8, _ := r.Index(nodes[8].ID)
	for _, h := range keyHashes(50_000, 8) {
		if got, want := r.Node(pick(r, h, map[int]bool{i3: true})).ID, less.Node(less.Lookup(h)).ID; got != want {
			t.Fatalf("key %x: ejected to %s, removal sends it to %s", h, got, want)
		}
		two := pick(r, h, map[int]bool{i3: true, i8: true})
		if home := r.Lookup(h); home != i3 && home != i8 && two != home {
			t.Fatalf("key %x of healthy node %d moved to %d", h, home, two)
		}
		if two == i3 || two == i8 {
			t.Fatalf("key %x placed on an ejected node", h)
		}
	}
}
