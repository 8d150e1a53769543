package hashring

import (
	"sync"
	"sync/atomic"
	"testing"
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

	var wg sync.WaitGroup
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
	}
	close(stop)
	wg.Wait()
}
