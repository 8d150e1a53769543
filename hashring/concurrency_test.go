package hashring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentReadersAndUpdates runs lookups and walks on a ring published
// through an atomic pointer while another goroutine swaps in rings derived
// with Add and Remove, as the proxy does. Run with -race.
func TestConcurrentReadersAndUpdates(t *testing.T) {
	nodes := testNodes(60, 12)
	var current atomic.Pointer[Ring]
	current.Store(mustRing(t, nodes[:50]))
	maglev := mustMaglev(t, nodes)
	hashes := keyHashes(2000, 13)

	var (
		wg      sync.WaitGroup
		lookups atomic.Int64
	)
	stop := make(chan struct{})
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := g; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				h := hashes[k%len(hashes)]
				r := current.Load()
				if i := r.Lookup(h); i < 0 || i >= r.Len() {
					t.Errorf("Lookup = %d on %d nodes", i, r.Len())
					return
				}
				w := r.Walk(h)
				w.Next()
				w.Next()
				if i := maglev.Lookup(h); i < 0 || i >= maglev.Len() {
					t.Errorf("maglev Lookup = %d", i)
					return
				}
				lookups.Add(1)
			}
		}()
	}
	for k := range 40 {
		r := current.Load()
		var err error
		if k%2 == 0 {
			r, err = r.Add(nodes[50+k/2%10])
		} else {
			r, err = r.Remove(nodes[50+k/2%10].ID)
		}
		if err != nil {
			t.Error(err)
			break
		}
		current.Store(r)
		// Let the readers run between swaps, so that they overlap them (the swaps alone
		// take about a millisecond, often less than the readers need to start).
		deadline := time.Now().Add(5 * time.Second) // readers that failed and returned
		for start := lookups.Load(); lookups.Load() < start+50 && time.Now().Before(deadline); {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	if n := lookups.Load(); n < 40*50 {
		t.Errorf("%d lookups ran during the swaps, want >= %d", n, 40*50)
	}
}
