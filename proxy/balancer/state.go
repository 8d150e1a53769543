package balancer

import (
	"fmt"
	"slices"
	"sort"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/hashring"
)

// state is an upstream's routing state: built by Update off the request path, published
// through Upstream.state, and never modified afterwards. The handles it points to are
// mutable (atomics); the slices are not.
type state struct {
	// nodes are the routable endpoints (present, not critical) as the table sees them,
	// sorted by ID; Update compares them to decide whether to rebuild.
	nodes []hashring.Node
	// eps are the handles of nodes, in the same order, which is the table's: the hot path
	// indexes them by table index.
	eps []*Endpoint
	// weights[i] is eps[i]'s weight; totalWeight their sum.
	weights     []int
	totalWeight int
	// all holds every handle, critical ones too, sorted by ID.
	all []*Endpoint

	// What the policy prepared: a hash table, or a weighted schedule of indexes into eps.
	table    hashring.Table
	schedule []int32
	// strides are steps coprime with len(eps), for visiting every endpoint once in a
	// scrambled order.
	strides []uint32

	// panicBelow is the number of healthy endpoints below which the upstream is in panic
	// mode when none is drained; negative when panic mode is off. panicShare is the same as a
	// share of the endpoints that are not drained.
	panicBelow, panicShare float64
	// maxEjected is how many endpoints may be ejected at once.
	maxEjected int32
}

// Update installs s as the upstream's set of endpoints. It keeps the handle of every endpoint
// whose ID and address it already knows, makes handles for new ones (calling
// Options.OnEndpoint), drops the others (calling Options.OnRemove), rebuilds the hash table or
// schedule only when the routable endpoints or their weights changed, and publishes the new
// state atomically. Critical endpoints keep their handles but take no traffic; warning ones
// take the weight the snapshot gives them.
//
// s must keep the discovery.Snapshot contract: its endpoints sorted by ID, with unique IDs
// (discovery.NewSnapshot makes them so). Update does not sort them; it refuses a snapshot
// that breaks the contract, logging an error and keeping the previous state.
//
// Update must not be called concurrently with itself (a discovery source calls it from one
// goroutine per service); it is safe to call concurrently with everything else. If the new
// table cannot be built, Update logs the error and keeps the previous state.
func (u *Upstream) Update(s *discovery.Snapshot) {
	if s == nil {
		return
	}
	u.updateMu.Lock()
	prev := u.snap.Load()
	added, removed, dropped, ok := u.applyLocked(s, true)
	u.updateMu.Unlock()
	if !ok {
		return
	}
	for _, id := range dropped {
		u.log.Info("endpoint weight override dropped: the registry changed the weight",
			zap.String("upstream", u.name), zap.String("endpoint", id))
		u.change(Change{Kind: ChangeWeight, Endpoint: id, Reason: "registry_changed_weight"})
	}
	if prev == nil || !prev.Equal(s) { // a source may deliver the same endpoints again
		u.change(Change{Kind: ChangeSnapshot, Revision: s.Revision, Added: added, Removed: removed})
	}
}

// applyLocked is Update's work, also run by the weight overrides on the last snapshot
// (fresh=false). It returns the IDs that came and went, those whose weight override the
// registry made stale, and whether s was applied. updateMu is held.
func (u *Upstream) applyLocked(s *discovery.Snapshot, fresh bool) (added, removed, dropped []string, ok bool) {
	if s == nil {
		return nil, nil, nil, false
	}
	eps := s.Endpoints
	if !sortedByID(eps) {
		// Not made by discovery.NewSnapshot. The check is one pass of compares, next to the
		// maps and tables below; without it a duplicate ID would publish a handle twice.
		u.log.Error("snapshot rejected, keeping the previous endpoints",
			zap.String("upstream", u.name), zap.Uint64("revision", s.Revision),
			zap.String("reason", "endpoints not sorted by ID or IDs not unique"))
		return nil, nil, nil, false
	}
	now := u.nowNanos()
	old := u.state.Load()
	nodes := make([]hashring.Node, 0, len(eps))
	for _, de := range eps {
		if de.Health != discovery.HealthCritical {
			w := u.weightLocked(de.ID, max(de.Weight, 1), now, &dropped)
			nodes = append(nodes, hashring.Node{ID: de.ID, Weight: w})
		}
	}
	ns := &state{nodes: nodes}
	if old != nil && slices.Equal(old.nodes, nodes) {
		ns.table, ns.schedule, ns.strides = old.table, old.schedule, old.strides
	} else if len(nodes) > 0 {
		err := u.pol.prepare(ns)
		if err == nil {
			err = ns.checkTable()
		}
		if err != nil {
			u.log.Error("snapshot rejected, keeping the previous endpoints",
				zap.String("upstream", u.name), zap.Uint64("revision", s.Revision), zap.Error(err))
			return nil, nil, dropped, false
		}
		ns.strides = coprimeStrides(len(nodes))
	}

	warm := old != nil // the first snapshot's endpoints do not warm up
	byID := make(map[string]*Endpoint, len(eps))
	var gone []*Endpoint
	for _, de := range eps {
		e := u.handles[de.ID]
		if e == nil && fresh {
			added = append(added, de.ID)
		}
		if e != nil && e.Address != de.Address {
			gone = append(gone, e)
			e = nil
		}
		if e == nil {
			e = u.newHandle(de)
			u.adoptLocked(e, now)
			if warm {
				u.startWarming(e, now)
			}
		}
		e.regWeight.Store(int64(max(de.Weight, 1)))
		e.weight.Store(int64(max(de.Weight, 1)))
		if de.Health == discovery.HealthCritical {
			e.setFlags(statusCritical, statusRoutable)
		} else if prev := e.setFlags(statusRoutable, statusCritical); prev&statusCritical != 0 && warm {
			u.startWarming(e, now)
		}
		byID[de.ID] = e
		ns.all = append(ns.all, e)
	}
	for id, e := range u.handles {
		if byID[id] == nil {
			gone = append(gone, e)
			removed = append(removed, id)
		}
	}
	sort.Strings(removed)
	for _, e := range gone {
		e.setFlags(statusRemoved, statusRoutable|statusEjected|statusActiveDown)
	}
	ns.index(byID)
	ns.panicBelow = -1
	if u.cfg.PanicThreshold > 0 {
		ns.panicShare = u.cfg.PanicThreshold / 100
		ns.panicBelow = ns.panicShare * float64(len(ns.eps))
	}
	ns.maxEjected = int32(max(1, len(ns.eps)*u.cfg.Outlier.MaxEjectionPercent/100))

	u.handles = byID
	u.state.Store(ns)
	u.snap.Store(s)
	for _, e := range gone {
		if u.onGone != nil {
			u.onGone(e)
		}
	}
	if old != nil {
		// Returns that requests noticed and Run has not reported (or Run is not running);
		// old.all holds the handles just removed too. The notify below covers them.
		u.reportReturns(old.all)
	}
	select {
	case u.changed <- struct{}{}:
	default:
	}
	u.notify()
	return added, removed, dropped, true
}

// panicking reports whether the state is in panic mode when down is Upstream.down: the
// endpoints ejected or failing active checks, and the drained ones, which are left out of the
// count (an operator took them out; they say nothing about the health of the others).
func (s *state) panicking(down int64) bool {
	if s.panicBelow < 0 {
		return false
	}
	n, bad := len(s.eps), int(int32(down))
	if drained := int(down >> 32); drained != 0 {
		n -= drained
		return float64(n-bad) < s.panicShare*float64(n)
	}
	return float64(n-bad) < s.panicBelow
}

// newHandle returns a handle for de, with its Data set, not yet published.
func (u *Upstream) newHandle(de discovery.Endpoint) *Endpoint {
	e := &Endpoint{ID: de.ID, Address: de.Address, Zone: de.Zone, up: u, seed: hashring.HashString(de.ID)}
	if u.onNew != nil {
		e.Data = u.onNew(e)
	}
	return e
}

// checkTable reports whether the prepared table holds exactly s.nodes in the same order (both
// are sorted by ID), so that a table index is a node index. A table that does not is a bug in
// the table, and the snapshot is refused.
func (s *state) checkTable() error {
	if s.table == nil {
		return nil
	}
	if n := s.table.Len(); n != len(s.nodes) {
		return fmt.Errorf("table holds %d endpoints, want %d", n, len(s.nodes))
	}
	for i, nd := range s.nodes {
		if id := s.table.Node(i).ID; id != nd.ID {
			return fmt.Errorf("table entry %d is %q, want %q", i, id, nd.ID)
		}
	}
	return nil
}

// index fills eps and weights in table order, which is node order. byID holds a handle for
// every node.
func (s *state) index(byID map[string]*Endpoint) {
	s.eps = make([]*Endpoint, len(s.nodes))
	s.weights = make([]int, len(s.nodes))
	for i, nd := range s.nodes {
		s.eps[i], s.weights[i] = byID[nd.ID], nd.Weight
		s.eps[i].weight.Store(int64(nd.Weight))
		s.totalWeight += nd.Weight
	}
}

// sortedByID reports whether eps are sorted by ID with unique IDs, as discovery.Snapshot
// promises.
func sortedByID(eps []discovery.Endpoint) bool {
	for i := 1; i < len(eps); i++ {
		if eps[i-1].ID >= eps[i].ID {
			return false
		}
	}
	return true
}

// coprimeStrides returns up to 8 steps coprime with n, spread over [1, n), so that
// (start + k·stride) mod n visits every index of n once.
func coprimeStrides(n int) []uint32 {
	if n <= 2 {
		return []uint32{1}
	}
	var out []uint32
	for j := 1; j <= 8; j++ {
		for k := max(1, j*n/9); k < n; k++ {
			if gcd(k, n) == 1 {
				if !slices.Contains(out, uint32(k)) {
					out = append(out, uint32(k))
				}
				break
			}
		}
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
