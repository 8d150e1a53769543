package hashring_test

import (
	"fmt"
	"sync/atomic"

	"github.com/ringside-proxy/ringside/hashring"
)

func ExampleNewRing() {
	ring, err := hashring.NewRing([]hashring.Node{
		{ID: "10.0.0.1:8080", Weight: 1},
		{ID: "10.0.0.2:8080", Weight: 1},
		{ID: "10.0.0.3:8080", Weight: 2},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, user := range []string{"user-1", "user-2", "user-3", "user-4", "user-5", "user-6"} {
		i := ring.LookupString(user)
		fmt.Println(user, "->", ring.Node(i).ID)
	}
	// Output:
	// user-1 -> 10.0.0.2:8080
	// user-2 -> 10.0.0.2:8080
	// user-3 -> 10.0.0.3:8080
	// user-4 -> 10.0.0.3:8080
	// user-5 -> 10.0.0.2:8080
	// user-6 -> 10.0.0.1:8080
}

func ExampleNewRing_errors() {
	_, err := hashring.NewRing(nil)
	fmt.Println(err)
	_, err = hashring.NewRing([]hashring.Node{{ID: "a", Weight: 1}, {ID: "a", Weight: 2}})
	fmt.Println(err)
	_, err = hashring.NewMaglev([]hashring.Node{{ID: "a", Weight: 0}})
	fmt.Println(err)
	// Output:
	// hashring: no nodes
	// node "a": hashring: duplicate node ID
	// node "a" weight 0: hashring: node weight below 1
}

// The proxy skips an ejected node by walking on: only that node's keys
// move, and they come back when it recovers.
func ExampleTable_Walk() {
	nodes := []hashring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}}
	var table hashring.Table
	table, _ = hashring.NewRing(nodes)

	h := hashring.HashString("user-7")
	home := table.Lookup(h)
	ejected := map[string]bool{table.Node(home).ID: true}

	w := table.Walk(h)
	for {
		i, ok := w.Next()
		if !ok {
			fmt.Println("every node is ejected")
			return
		}
		if !ejected[table.Node(i).ID] {
			fmt.Printf("home %s is ejected, serving from %s\n", table.Node(home).ID, table.Node(i).ID)
			return
		}
	}
	// Output:
	// home a is ejected, serving from c
}

// Adding a node derives a new ring, copy-on-write; readers of the old one
// are unaffected. Only keys that go to the new node move.
func ExampleRing_Add() {
	var nodes []hashring.Node
	for i := range 10 {
		nodes = append(nodes, hashring.Node{ID: fmt.Sprintf("node-%d", i), Weight: 1})
	}
	var current atomic.Pointer[hashring.Ring]
	old, _ := hashring.NewRing(nodes)
	current.Store(old)

	grown, _ := old.Add(hashring.Node{ID: "node-10", Weight: 1})
	current.Store(grown)

	moved, toNew := 0, 0
	for k := range 10000 {
		key := fmt.Sprintf("key-%d", k)
		before, after := old.Node(old.LookupString(key)).ID, grown.Node(grown.LookupString(key)).ID
		if before != after {
			moved++
			if after == "node-10" {
				toNew++
			}
		}
	}
	fmt.Printf("old ring: %d nodes, new ring: %d nodes\n", old.Len(), current.Load().Len())
	fmt.Printf("%d of 10000 keys moved, %d of them to node-10\n", moved, toNew)
	// Output:
	// old ring: 10 nodes, new ring: 11 nodes
	// 925 of 10000 keys moved, 925 of them to node-10
}

func ExampleNewMaglev() {
	var nodes []hashring.Node
	for i := range 4 {
		nodes = append(nodes, hashring.Node{ID: fmt.Sprintf("10.0.0.%d:8080", i+1), Weight: i + 1})
	}
	table, _ := hashring.NewMaglev(nodes)
	counts := make([]int, table.Len())
	for k := range 100000 {
		counts[table.LookupString(fmt.Sprintf("key-%d", k))]++
	}
	fmt.Println("table size:", table.TableSize())
	for i, c := range counts {
		fmt.Printf("%s weight %d: %.0f%%\n", table.Node(i).ID, table.Node(i).Weight, float64(c)/1000)
	}
	// Output:
	// table size: 65537
	// 10.0.0.1:8080 weight 1: 10%
	// 10.0.0.2:8080 weight 2: 20%
	// 10.0.0.3:8080 weight 3: 30%
	// 10.0.0.4:8080 weight 4: 40%
}

// inflight counts requests in flight per node, as a proxy would.
type inflight struct {
	perNode []atomic.Int64
	total   atomic.Int64
}

func (l *inflight) Load(i int) int64 { return l.perNode[i].Load() }
func (l *inflight) Total() int64     { return l.total.Load() }

func (l *inflight) start(i int) { l.perNode[i].Add(1); l.total.Add(1) }

func ExampleLookupBounded() {
	nodes := []hashring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}}
	ring, _ := hashring.NewRing(nodes)
	loads := &inflight{perNode: make([]atomic.Int64, ring.Len())}

	// One hot key, six concurrent requests, load factor 1.25: a node takes
	// a request only while below ⌈1.25 × (total+1) / 3⌉, so the key's home
	// (c) shares them with the next node on its walk (a).
	h := hashring.HashString("hot-user")
	for range 6 {
		i := hashring.LookupBounded(ring, h, 1.25, loads)
		loads.start(i)
		fmt.Print(ring.Node(i).ID)
	}
	fmt.Println()
	fmt.Println("cap for 6 in flight:", hashring.BoundedCap(1.25, 6, 1, 3))
	// Output:
	// cacaca
	// cap for 6 in flight: 3
}
