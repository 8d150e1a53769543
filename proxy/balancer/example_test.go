package balancer_test

import (
	"fmt"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/hashring"
	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// users is the snapshot a discovery source would deliver.
var users = discovery.NewSnapshot("users", 1, []discovery.Endpoint{
	{ID: "users-1", Address: "10.0.0.1:8080", Weight: 1},
	{ID: "users-2", Address: "10.0.0.2:8080", Weight: 1},
	{ID: "users-3", Address: "10.0.0.3:8080", Weight: 1},
}, time.Now())

// A request keyed by user: its first try, a retry after a 502, and the next request of the
// same user.
func Example() {
	up, err := balancer.New("users", balancer.Config{Kind: balancer.RingHash}, balancer.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	up.Update(users) // from the discovery goroutine

	h := hashring.HashString("user-42")
	var p balancer.Pick
	up.Begin(&p, h, true)
	first, _ := p.Next()
	first.Start()
	first.Finish(balancer.Outcome{Status: 502, Latency: time.Millisecond})
	retry, _ := p.Next() // the next endpoint on the user's walk
	retry.Start()
	retry.Finish(balancer.Outcome{Status: 200, Latency: time.Millisecond})

	up.Begin(&p, h, true)
	again, _ := p.Next()
	fmt.Println("retried elsewhere:", retry != first)
	fmt.Println("user sticks to its endpoint:", again == first)
	fmt.Println("endpoints:", len(up.Endpoints()), "healthy:", up.StateCounts().Healthy)
	// Output:
	// retried elsewhere: true
	// user sticks to its endpoint: true
	// endpoints: 3 healthy: 3
}

// Round robin ignores the key; a pick that runs out of endpoints says so.
func ExampleUpstream_Begin() {
	up, _ := balancer.New("users", balancer.Config{Kind: balancer.RoundRobin}, balancer.Options{})
	up.Update(users)
	var p balancer.Pick
	for range 4 {
		up.Begin(&p, 0, false)
		e, _ := p.Next()
		fmt.Println(e.ID, e.Address)
	}
	up.Begin(&p, 0, false)
	for {
		_, err := p.Next()
		if err != nil {
			fmt.Println(err)
			break
		}
	}
	// Output:
	// users-2 10.0.0.2:8080
	// users-3 10.0.0.3:8080
	// users-1 10.0.0.1:8080
	// users-2 10.0.0.2:8080
	// no endpoint left to try
}
