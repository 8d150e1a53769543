package balancer

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/hashring"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// recorder is an Events that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	ejected  []string // "id reason duration"
	returned []string
	counts   []StateCounts
}

func (r *recorder) Ejected(_ string, ep *Endpoint, reason string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ejected = append(r.ejected, fmt.Sprintf("%s %s %v", ep.ID, reason, d))
}

func (r *recorder) Returned(_ string, ep *Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.returned = append(r.returned, ep.ID)
}

func (r *recorder) StateChanged(_ string, c StateCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = append(r.counts, c)
}

func (r *recorder) snapshot() (ejected, returned []string, last StateCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.counts) > 0 {
		last = r.counts[len(r.counts)-1]
	}
	return slices.Clone(r.ejected), slices.Clone(r.returned), last
}

var _ Events = (*recorder)(nil)

// ep returns a passing endpoint of weight 1 whose address derives from its ID.
func ep(id string) discovery.Endpoint {
	return discovery.Endpoint{ID: id, Address: id + ".test:8080", Weight: 1}
}

// weighted returns ep(id) with weight w.
func weighted(id string, w int) discovery.Endpoint {
	e := ep(id)
	e.Weight = w
	return e
}

// withHealth returns e with health h.
func withHealth(e discovery.Endpoint, h discovery.Health) discovery.Endpoint {
	e.Health = h
	return e
}

// ids returns n passing endpoints e00, e01, ...
func ids(n int) []discovery.Endpoint {
	out := make([]discovery.Endpoint, n)
	for i := range out {
		out[i] = ep(fmt.Sprintf("e%03d", i))
	}
	return out
}

var revision atomic.Uint64

// snap returns a snapshot of eps.
func snap(eps ...discovery.Endpoint) *discovery.Snapshot {
	return discovery.NewSnapshot("svc", revision.Add(1), eps, time.Now())
}

// newTest returns an upstream on a fake clock with a recorder, fed snapshot s (if not nil).
func newTest(t testing.TB, cfg Config, s *discovery.Snapshot) (*Upstream, *fakeClock, *recorder) {
	t.Helper()
	clk, rec := newFakeClock(), &recorder{}
	u, err := New("svc", cfg, Options{Now: clk.Now, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		u.Update(s)
	}
	return u, clk, rec
}

// first returns the first endpoint of a pick for hash h, or its error's text.
func first(u *Upstream, h uint64) string {
	var p Pick
	u.Begin(&p, h, true)
	e, err := p.Next()
	if err != nil {
		return err.Error()
	}
	return e.ID
}

// keyHashes returns the hashes of n request keys.
func keyHashes(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = hashring.HashString(fmt.Sprintf("user-%d", i))
	}
	return out
}

// homes maps every hash to the ID of its first pick.
func homes(u *Upstream, hs []uint64) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = first(u, h)
	}
	return out
}

// handle returns u's handle for id, or nil.
func handle(u *Upstream, id string) *Endpoint {
	for _, e := range u.Endpoints() {
		if e.ID == id {
			return e
		}
	}
	return nil
}

// failN finishes n attempts on e with outcome o.
func failN(e *Endpoint, n int, o Outcome) {
	for range n {
		e.Start()
		e.Finish(o)
	}
}

var (
	connectRefused = Outcome{Failure: FailConnect}
	status500      = Outcome{Status: 500}
	status503      = Outcome{Status: 503}
	status200      = Outcome{Status: 200}
)

// hashKinds are the policies that route by key.
var hashKinds = []Kind{RingHash, Maglev}

// allKinds are all the policies.
var allKinds = []Kind{RingHash, Maglev, RoundRobin, WeightedRoundRobin, LeastRequest, Random}
