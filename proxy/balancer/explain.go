package balancer

import (
	"math"
)

// Explaining a pick: Explain runs the request path's own pick (Begin and Pick.Next) with a
// trace attached, which Next tells about every candidate and what it decided, so the answer
// is what a request with that hash would get at that moment, by the same code. (A pick has
// the side effects a request's has: it returns to service an endpoint whose ejection is over.)

// Step is one candidate of a pick, in the order the pick met it.
type Step struct {
	Endpoint string
	// State is the endpoint's state when the pick met it.
	State EndpointState
	// Taken: the pick returned this endpoint (as its target, or as the fallback).
	Taken bool
	// Reason says why it was passed over or kept for later: "ejected", "active_unhealthy",
	// "drained", "max_requests", "bounded_load", "slow_start"; or "last_resort" for an
	// endpoint kept for later and taken because nothing better was left; "" for one taken at
	// once.
	Reason string
}

// The reasons of Step, by verdict.
var verdictReasons = [...]string{
	admitTake:        "",
	skipEjected:      "ejected",
	skipActiveDown:   "active_unhealthy",
	skipDrained:      "drained",
	skipMaxRequests:  "max_requests",
	laterBoundedLoad: "bounded_load",
	laterSlowStart:   "slow_start",
	takeLastResort:   "last_resort",
}

// trace records a pick's candidates for Explain: Next tells it those it passes over, and
// Explain adds those Next returns.
type trace struct{ steps []Step }

func (t *trace) add(e *Endpoint, v verdict) {
	t.steps = append(t.steps, Step{
		Endpoint: e.ID,
		State:    e.State(),
		Taken:    v == admitTake || v == takeLastResort,
		Reason:   verdictReasons[v],
	})
}

// taken records e, just returned by Next: at once, or as a last resort if the pick had kept it
// for later.
func (t *trace) taken(e *Endpoint) {
	v := admitTake
	for _, st := range t.steps {
		if st.Endpoint == e.ID && (st.Reason == verdictReasons[laterBoundedLoad] || st.Reason == verdictReasons[laterSlowStart]) {
			v = takeLastResort
		}
	}
	t.add(e, v)
}

// Explanation is what Explain found.
type Explanation struct {
	Policy Kind
	// Hash is the hash the walk started from; Keyed is false for a request without a key
	// (whose walk starts at random, or which Config.NoKey sends elsewhere) and for the
	// key-blind policies.
	Hash  uint64
	Keyed bool
	// Panic: the upstream is in panic mode (ejection and active health ignored).
	Panic bool
	// Home is the key's home endpoint on the hash table, whatever its state ("" for the
	// key-blind policies and requests without a key).
	Home string
	// Walk is the candidates met up to the target, the target last; Target is the endpoint
	// the request lands on now, or Err says why there is none.
	Walk   []Step
	Target string
	Err    error
	// Fallback is where the request goes if Target is ejected or drained, which is also
	// where a retry goes: the same walk, continued past Target. FallbackWalk is the
	// candidates met after Target; FallbackErr says why there is none.
	FallbackWalk []Step
	Fallback     string
	FallbackErr  error
	// FallbackPanics: taking Target out would put the upstream in panic mode, in which
	// ejected and failing endpoints take traffic again; Fallback does not account for that.
	FallbackPanics bool
}

// Explain says where a request whose key hashes to h (hasKey=false: a request without a key)
// goes now, and why, by running the request path's pick with a trace. It allocates; it is for
// the admin API, not the request path.
func (u *Upstream) Explain(h uint64, hasKey bool) Explanation {
	var p Pick
	u.Begin(&p, h, hasKey)
	tr := &trace{}
	p.trace = tr
	x := Explanation{Policy: u.cfg.Kind, Hash: p.h, Keyed: p.keyed, Panic: p.panic}
	if p.mode == modeWalk && p.keyed {
		x.Home = p.s.eps[p.s.table.Lookup(p.h)].ID
	} else if !p.keyed {
		x.Hash = 0
	}
	e, err := p.Next()
	if err == nil {
		tr.taken(e)
	}
	x.Walk, x.Err = tr.steps, err
	if err != nil {
		return x
	}
	x.Target = e.ID
	mark := len(tr.steps)
	e2, err := p.Next()
	if err == nil {
		tr.taken(e2)
		x.Fallback = e2.ID
	}
	x.FallbackWalk, x.FallbackErr = tr.steps[mark:], err
	if st := e.status.Load(); st&(statusEjected|statusActiveDown|statusDrained) == 0 && !x.Panic {
		x.FallbackPanics = p.s.panicking(u.down.Load() + 1)
	}
	return x
}

// KeyShare is an endpoint's share of the key space, measured on the current table.
type KeyShare struct {
	// Table is the share of keys whose home the endpoint is, by the table alone (weights and
	// the hashing), whatever the endpoints' states.
	Table float64
	// Now is the share of keys a request would land on it with now: the table walked by the
	// request path's pick, with ejections, drains, active checks, bounded load and slow
	// start as they are at the moment.
	Now float64
}

// DefaultShareSamples is the number of keys KeyShares walks by default: shares to within
// about 0.002.
const DefaultShareSamples = 1 << 16

// KeyShares measures each endpoint's share of the key space on the current table by walking
// samples hashes spread evenly over the hash space, with the request path's pick. It returns
// nil for the key-blind policies (their shares are the weights) and before the first
// snapshot. It costs samples picks: for the admin API, not the request path.
func (u *Upstream) KeyShares(samples int) map[string]KeyShare {
	s := u.state.Load()
	if s == nil || s.table == nil || samples <= 0 {
		return nil
	}
	home := make([]int, len(s.eps))
	now := make(map[*Endpoint]int, len(s.eps))
	step := math.MaxUint64 / uint64(samples)
	var p Pick
	for i := range samples {
		h := uint64(i)*step + step/2
		home[s.table.Lookup(h)]++
		u.Begin(&p, h, true)
		if e, err := p.Next(); err == nil {
			now[e]++
		}
	}
	out := make(map[string]KeyShare, len(s.eps))
	for i, e := range s.eps {
		out[e.ID] = KeyShare{Table: float64(home[i]) / float64(samples), Now: float64(now[e]) / float64(samples)}
	}
	return out
}
