package hashring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRingDisruption: adding or removing one node moves exactly that node's
// keys, and none between two other nodes, at every size.
func TestRingDisruption(t *testing.T) {
	hashes := keyHashes(200_000, 21)
	for _, n := range []int{1, 2, 3, 10, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			nodes := testNodes(n+1, uint64(n)+100)
			small := mustRing(t, nodes[:n])
			big, err := small.Add(nodes[n])
			if err != nil {
				t.Fatal(err)
			}
			moved := 0
			for _, h := range hashes {
				before := small.Node(small.Lookup(h)).ID
				after := big.Node(big.Lookup(h)).ID
				if before != after {
					moved++
					if after != nodes[n].ID {
						t.Fatalf("key %x moved from %s to %s, a survivor", h, before, after)
					}
				}
			}
			// Removing the node again: the keys that move are exactly its
			// keys, and they go back where they came from.
			back, err := big.Remove(nodes[n].ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hashes {
				if got, want := back.Node(back.Lookup(h)).ID, small.Node(small.Lookup(h)).ID; got != want {
					t.Fatalf("after remove, key %x is on %s, was on %s", h, got, want)
				}
			}
			share := float64(moved) / float64(len(hashes))
			t.Logf("N=%d+1: %.2f%% of keys moved (1/(N+1) = %.2f%%), all to the new node", n, 100*share, 100/float64(n+1))
			if moved == 0 {
				t.Error("no key moved to the new node")
			}
			if lo, hi := 0.5/float64(n+1), 1.5/float64(n+1); n >= 10 && (share < lo || share > hi) {
				t.Errorf("new node took %.2f%% of the keys, want about %.2f%%", 100*share, 100/float64(n+1))
			}
		})
	}
}

// TestRingWalkConsistency: removing node X from the ring removes X from
// every key's preference order and leaves the rest of the order alone, so
// skipping and removing agree, and retries stay sticky across a rebuild.
func TestRingWalkConsistency(t *testing.T) {
	nodes := testNodes(40, 5)
	full := mustRing(t, nodes)
	for _, victim := range []int{0, 17, 39} {
		less, err := full.Remove(nodes[victim].ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range keyHashes(300, uint64(victim)) {
			var want []string
			for _, i := range walkAll(full, h) {
				if id := full.Node(i).ID; id != nodes[victim].ID {
					want = append(want, id)
				}
			}
			var got []string
			for _, i := range walkAll(less, h) {
				got = append(got, less.Node(i).ID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("key %x: walk without %s = %v, want %v", h, nodes[victim].ID, got, want)
			}
		}
	}
}

// TestOrderIndependence: a table depends only on its member set, however
// the nodes were listed or added.
func TestOrderIndependence(t *testing.T) {
	nodes := testNodes(60, 9)
	for i := range nodes {
		nodes[i].Weight = 1 + i%3
	}
	ref := mustRing(t, nodes)
	refMaglev := mustMaglev(t, nodes)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 5 {
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		assertSameRing(t, mustRing(t, shuffled), ref)
		m := mustMaglev(t, shuffled)
		if !slices.Equal(m.table, refMaglev.table) || !slices.Equal(m.nodes, refMaglev.nodes) {
			t.Fatalf("trial %d: maglev tables over the same member set differ", trial)
		}
		// Grow the ring one node at a time in the shuffled order, with a
		// detour: add an extra node and remove it again half way.
		r := mustRing(t, shuffled[:1])
		var err error
		for k, n := range shuffled[1:] {
			if r, err = r.Add(n); err != nil {
				t.Fatal(err)
			}
			if k == len(shuffled)/2 {
				extra := Node{ID: fmt.Sprintf("extra-%d", trial), Weight: 2}
				if r, err = r.Add(extra); err != nil {
					t.Fatal(err)
				}
				if r, err = r.Remove(extra.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		assertSameRing(t, r, ref)
	}
}

// TestMaglevDisruption measures how many keys Maglev moves when one node
// joins 100: about 1/101 to the new node, and a few between survivors.
func TestMaglevDisruption(t *testing.T) {
	nodes := testNodes(101, 3)
	small := mustMaglev(t, nodes[:100])
	big := mustMaglev(t, nodes)
	hashes := millionKeys()
	moved, between := 0, 0
	for _, h := range hashes {
		before := small.Node(small.Lookup(h)).ID
		after := big.Node(big.Lookup(h)).ID
		if before != after {
			moved++
			if after != nodes[100].ID {
				between++
			}
		}
	}
	share := float64(moved) / float64(len(hashes))
	t.Logf("maglev 100+1: %.2f%% of keys moved, %.1f%% of those between survivors", 100*share, 100*float64(between)/float64(moved))
	if share > 3.0/101 {
		t.Errorf("%.2f%% of keys moved, want < 3/101", 100*share)
	}
}
