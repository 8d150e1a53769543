package discovery_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

// A source offers each complete snapshot to the service's Pacer, which delivers them. After
// an outage the registry comes back empty and refills: the new instance d is added at once,
// c — gone for good — is removed only once the settle window is over.
func ExamplePacer() {
	delivered := make(chan *discovery.Snapshot, 4)
	p := discovery.NewPacer(discovery.Pacing{Settle: 300 * time.Millisecond},
		func(s *discovery.Snapshot) { delivered <- s })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	snap := func(ids ...string) *discovery.Snapshot {
		var eps []discovery.Endpoint
		for _, id := range ids {
			eps = append(eps, discovery.Endpoint{ID: id, Address: id + ":80", Weight: 1})
		}
		return discovery.NewSnapshot("cart", 1, eps, time.Now())
	}
	show := func(s *discovery.Snapshot) {
		var ids []string
		for _, e := range s.Endpoints {
			ids = append(ids, e.ID)
		}
		fmt.Println(strings.Join(ids, " "))
	}

	p.Offer(snap("a", "b", "c"), false)
	show(<-delivered)
	p.Offer(snap(), true) // back after an outage, empty
	p.Offer(snap("a", "b", "d"), false)
	show(<-delivered)
	show(<-delivered) // at the end of the settle window
	cancel()
	<-done
	// Output:
	// a b c
	// a b c d
	// a b d
}
