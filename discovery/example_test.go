package discovery_test

import (
	"fmt"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

// A source builds a complete snapshot from each registry read and hands it to an UpdateFunc
// wrapped in Dedup, so that a read that changed nothing reaches no one.
func ExampleDedup() {
	update := discovery.Dedup(func(s *discovery.Snapshot) {
		fmt.Printf("%s revision %d:", s.Service, s.Revision)
		for _, e := range s.Endpoints {
			fmt.Printf(" %s(%s, weight %d)", e.ID, e.Health, e.Weight)
		}
		fmt.Println()
	})
	at := time.Now()
	eps := []discovery.Endpoint{
		{ID: "cart-2", Address: "10.0.0.2:8080", Weight: 1},
		{ID: "cart-1", Address: "10.0.0.1:8080", Weight: 2},
	}
	update(discovery.NewSnapshot("cart", 7, eps, at))

	// The registry's index moved but the instances did not: dropped.
	update(discovery.NewSnapshot("cart", 8, eps, at))

	// cart-2 turns critical: delivered, still sorted by ID.
	eps[0].Health = discovery.HealthCritical
	update(discovery.NewSnapshot("cart", 9, eps, at))
	// Output:
	// cart revision 7: cart-1(passing, weight 2) cart-2(passing, weight 1)
	// cart revision 9: cart-1(passing, weight 2) cart-2(critical, weight 1)
}

func ExampleNewSnapshot() {
	s := discovery.NewSnapshot("search", 1, []discovery.Endpoint{
		{ID: "b", Address: "10.0.0.2:9000", Weight: 1},
		{ID: "a", Address: "10.0.0.1:9000", Weight: 1},
		{ID: "b", Address: "10.0.0.3:9000", Weight: 1}, // same ID: the later one wins
	}, time.Now())
	for _, e := range s.Endpoints {
		fmt.Println(e.ID, e.Address)
	}
	// Output:
	// a 10.0.0.1:9000
	// b 10.0.0.3:9000
}
