package balancer

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/hashring"
)

func TestRetriesAreDistinctAndExhaust(t *testing.T) {
	for _, kind := range allKinds {
		for _, n := range []int{1, 2, 7, 12} {
			t.Run(fmt.Sprintf("%s/%d", kind, n), func(t *testing.T) {
				u, _, _ := newTest(t, Config{Kind: kind}, snap(ids(n)...))
				for _, h := range keyHashes(200) {
					var p Pick
					u.Begin(&p, h, true)
					seen := map[string]bool{}
					for range n {
						e, err := p.Next()
						if err != nil {
							t.Fatalf("after %d endpoints: %v", len(seen), err)
						}
						if seen[e.ID] {
							t.Fatalf("%s returned twice", e.ID)
						}
						seen[e.ID] = true
					}
					for range 2 {
						if _, err := p.Next(); !errors.Is(err, ErrExhausted) {
							t.Fatalf("after all %d: %v, want %v", n, err, ErrExhausted)
						}
					}
				}
			})
		}
	}
}

func TestRetriesFollowTheWalk(t *testing.T) {
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(ids(8)...))
			s := u.state.Load()
			for _, h := range keyHashes(100) {
				w := s.table.Walk(h)
				var p Pick
				u.Begin(&p, h, true)
				for {
					i, ok := w.Next()
					e, err := p.Next()
					if !ok {
						if !errors.Is(err, ErrExhausted) {
							t.Fatalf("walk over, Next: %v", err)
						}
						break
					}
					if err != nil || e != s.eps[i] {
						t.Fatalf("Next = %v %v, want the walk's %s", e, err, s.eps[i].ID)
					}
				}
			}
		})
	}
}

func TestPickErrors(t *testing.T) {
	u, _, _ := newTest(t, Config{}, nil)
	if got := first(u, 1); got != ErrNoEndpoints.Error() {
		t.Errorf("before the first snapshot: %s", got)
	}
	if u.Ready() || u.Snapshot() != nil || u.Endpoints() != nil {
		t.Error("ready before the first snapshot")
	}
	u.Update(snap())
	if got := first(u, 1); got != ErrNoEndpoints.Error() || !u.Ready() {
		t.Errorf("empty snapshot: %s, ready %v", got, u.Ready())
	}
	u.Update(nil) // ignored
	if u.Snapshot() == nil {
		t.Error("nil snapshot replaced the last one")
	}
}

func TestNoKeyPolicies(t *testing.T) {
	tests := []struct {
		kind    Kind
		noKey   NoKeyPolicy
		wantErr error
		exact   bool // every endpoint exactly as often
	}{
		{RingHash, "", nil, false},
		{RingHash, NoKeyRandom, nil, false},
		{Maglev, NoKeyRandom, nil, false},
		{RingHash, NoKeyRoundRobin, nil, true},
		{Maglev, NoKeyRoundRobin, nil, true},
		{RingHash, NoKeyReject, ErrNoKey, false},
		{Maglev, NoKeyReject, ErrNoKey, false},
		{RoundRobin, NoKeyReject, nil, true}, // key-blind policies ignore NoKey
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.kind, tt.noKey), func(t *testing.T) {
			const n, rounds = 5, 400
			u, _, _ := newTest(t, Config{Kind: tt.kind, NoKey: tt.noKey}, snap(ids(n)...))
			count := map[string]int{}
			for range n * rounds {
				var p Pick
				u.Begin(&p, 42, false)
				e, err := p.Next()
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Next: %v, want %v", err, tt.wantErr)
				}
				if err != nil {
					continue
				}
				count[e.ID]++
			}
			if tt.wantErr != nil {
				return
			}
			if len(count) != n {
				t.Fatalf("requests without a key went to %d endpoints, want %d: %v", len(count), n, count)
			}
			for id, c := range count {
				if tt.exact && c != rounds || !tt.exact && (c < rounds*2/3 || c > rounds*4/3) {
					t.Errorf("%s took %d of %d requests", id, c, n*rounds)
				}
			}
		})
	}
}

func TestMaxRequests(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(string(kind), func(t *testing.T) {
			const n, limit = 4, 2
			u, _, _ := newTest(t, Config{Kind: kind, MaxRequests: limit}, snap(ids(n)...))
			h := keyHashes(1)[0]
			var started []*Endpoint
			var order []string
			for range n * limit {
				var p Pick
				u.Begin(&p, h, true)
				e, err := p.Next()
				if err != nil {
					t.Fatalf("after %d requests: %v", len(started), err)
				}
				if e.InFlight() >= limit {
					t.Fatalf("%s picked at %d in flight", e.ID, e.InFlight())
				}
				e.Start()
				started = append(started, e)
				order = append(order, e.ID)
			}
			var p Pick
			u.Begin(&p, h, true)
			if _, err := p.Next(); !errors.Is(err, ErrOverloaded) {
				t.Fatalf("all at max: %v, want %v", err, ErrOverloaded)
			}
			if kind.hashed() {
				// The overflow follows the key's walk: home twice, then the next, ...
				s := u.state.Load()
				w := s.table.Walk(h)
				for k := 0; k < n; k++ {
					i, _ := w.Next()
					if order[2*k] != s.eps[i].ID || order[2*k+1] != s.eps[i].ID {
						t.Fatalf("overflow order %v, want the walk's endpoints two by two", order)
					}
				}
			}
			started[0].Finish(status200)
			u.Begin(&p, h, true)
			if e, err := p.Next(); err != nil || e != started[0] {
				t.Fatalf("after one finished: %v %v, want %s", e, err, started[0].ID)
			}
		})
	}
}

// loads adapts a state's handles to hashring.Loads.
type loads struct{ s *state }

func (l loads) Load(i int) int64 { return l.s.eps[i].InFlight() }
func (l loads) Total() int64 {
	var t int64
	for _, e := range l.s.eps {
		t += e.InFlight()
	}
	return t
}

func TestBoundedLoad(t *testing.T) {
	const c = 1.25
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			eps := []discovery.Endpoint{weighted("a", 1), weighted("b", 2), weighted("c", 1), weighted("d", 3), weighted("e", 1)}
			u, _, _ := newTest(t, Config{Kind: kind, BoundedLoad: c}, snap(eps...))
			s := u.state.Load()
			hs := keyHashes(50)
			var started []*Endpoint
			for round := range 40 {
				// A hot key, then a few others: every request stays in flight.
				for _, h := range append([]uint64{hs[0], hs[0], hs[0]}, hs[1+round%49]) {
					want := hashring.LookupBounded(s.table, h, c, loads{s})
					var p Pick
					u.Begin(&p, h, true)
					e, err := p.Next()
					if err != nil {
						t.Fatal(err)
					}
					if e != s.eps[want] {
						t.Fatalf("request %d went to %s, want %s (the first under its cap on the walk)", len(started), e.ID, s.eps[want].ID)
					}
					total := u.inflight.Load()
					if limit := hashring.BoundedCap(c, total, s.weights[want], s.totalWeight); e.InFlight() >= limit {
						t.Fatalf("%s at %d in flight, cap %d", e.ID, e.InFlight(), limit)
					}
					e.Start()
					started = append(started, e)
				}
				// No endpoint above its cap while another is below.
				total := u.inflight.Load()
				for i, e := range s.eps {
					if limit := hashring.BoundedCap(c, total-1, s.weights[i], s.totalWeight); e.InFlight() > limit {
						t.Fatalf("%s at %d in flight, above its cap %d", e.ID, e.InFlight(), limit)
					}
				}
			}
			for _, e := range started {
				e.Finish(status200)
			}
			if got := u.inflight.Load(); got != 0 {
				t.Errorf("upstream in flight %d after all finished", got)
			}
		})
	}
}

// TestConcurrentPicksAndUpdates runs the hot path, ejections, returns and snapshot swaps
// at once, for the race detector and the counters.
func TestConcurrentPicksAndUpdates(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(string(kind), func(t *testing.T) {
			cfg := Config{Kind: kind, MaxRequests: 50, SlowStart: time.Second,
				Outlier: OutlierConfig{BaseEjectionTime: time.Millisecond, MaxEjectionPercent: 50}}
			if kind.hashed() {
				cfg.BoundedLoad = 2
			}
			u, err := New("svc", cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			u.Update(snap(ids(6)...))
			var wg sync.WaitGroup
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					hs := keyHashes(64)
					for k := range 3000 {
						var p Pick
						u.Begin(&p, hs[k%len(hs)], k%3 != 0)
						for range 2 {
							e, err := p.Next()
							if err != nil {
								break
							}
							e.Start()
							if (k+g)%5 == 0 && e.ID < "e002" {
								e.Finish(connectRefused)
							} else {
								e.Finish(status200)
							}
						}
					}
				}()
			}
			for i := range 30 {
				eps := ids(6 + i%3)
				if i%4 == 0 {
					eps[1] = withHealth(eps[1], discovery.HealthCritical)
				}
				u.Update(snap(eps...))
				u.StateCounts()
				runtime.Gosched()
			}
			wg.Wait()
			var inflight int64
			for _, e := range u.Endpoints() {
				inflight += e.InFlight()
			}
			if inflight != 0 || u.inflight.Load() != 0 {
				t.Errorf("in flight after the end: handles %d, upstream %d", inflight, u.inflight.Load())
			}
			// Let every ejection run out; the counters must come back to zero.
			time.Sleep(5 * time.Millisecond)
			u.sweep()
			if u.ejected.Load() != 0 || u.down.Load() != 0 {
				t.Errorf("counters ejected=%d down=%d, want 0", u.ejected.Load(), u.down.Load())
			}
		})
	}
}
