package balancer

import (
	"errors"
	"math/rand/v2"

	"github.com/ringside-proxy/ringside/hashring"
)

// The errors of Pick.Next.
var (
	// ErrNoEndpoints: no endpoint can take the request. The upstream has no snapshot yet, or
	// none of its endpoints is routable (all critical), or all are ejected or failing active
	// checks while panic mode is off.
	ErrNoEndpoints = errors.New("no endpoints available")
	// ErrNoKey: the request has no hash key and the upstream's NoKey policy is NoKeyReject.
	ErrNoKey = errors.New("request has no hash key")
	// ErrOverloaded: every endpoint left is at Config.MaxRequests.
	ErrOverloaded = errors.New("all endpoints at max requests")
	// ErrExhausted: every endpoint that could take the request was already returned by this
	// pick.
	ErrExhausted = errors.New("no endpoint left to try")
)

// The ways a Pick produces candidates.
const (
	modeNone       uint8 = iota // no state or no endpoints
	modeWalk                    // walk a hash table from a hash
	modeSequence                // (start + k·stride) mod n
	modeTwoChoices              // the sequence, two candidates at a time
	modeReject                  // no key, and NoKeyReject
)

// maxWarmSkips bounds how many warming endpoints one pick passes over. When many endpoints
// warm up at once (all back from critical), the walk stops at the fourth: slow start then
// shapes the shares among them without walking the whole table.
const maxWarmSkips = 3

// softSkips bounds how many endpoints one pick remembers having passed over for a soft
// reason (bounded load, slow start), to come back to when nothing better is left.
const softSkips = 8

// Pick chooses the endpoints of one request: the first target, then, one call of Next after
// another, distinct fallbacks for retries. It is a value meant for the caller's stack: the
// zero value is ready for Upstream.Begin, and Begin resets it, so one Pick may serve many
// requests in turn. A Pick must not be used by two goroutines at once, nor copied after its
// first Next (its hash walk may share memory with the copy).
type Pick struct {
	u      *Upstream
	s      *state
	walker hashring.Walker
	h      uint64
	now    int64 // the upstream's clock, read at most once per pick; 0 = not read yet

	mode     uint8
	keyed    bool // the walk starts at the request key's hash
	panic    bool // ejection and active health are ignored
	done     bool // the candidates have run out
	overload bool // a candidate was passed over for MaxRequests
	returned int32
	// warmSkips counts the warming candidates passed over, up to maxWarmSkips.
	warmSkips uint8

	// The sequence: candidate k is (start + k·stride) mod len(s.eps).
	start, stride, k uint32
	pending          int32 // two choices: the loser of the last duel, -1 if none

	soft       [softSkips]int32
	nsoft, pos uint8

	// trace, when not nil, is told every candidate passed over and why. Only Upstream.Explain
	// sets it, on a Pick of its own that requests never reuse, so Begin leaves it alone and
	// the take path never looks at it.
	trace *trace
}

// Begin starts choosing endpoints for one request, resetting p. h is the hash of the request
// key (hashring.HashString(key)); hasKey=false means the request has none, and the hash
// policies then follow Config.NoKey. The other policies ignore h and hasKey.
//
// Begin loads the upstream's routing state once: the pick keeps using that state even if
// Update installs another meanwhile. It does not block or allocate.
func (u *Upstream) Begin(p *Pick, h uint64, hasKey bool) {
	s := u.state.Load()
	// Everything but the walker, which only a walk reads and walk overwrites: the walker is
	// most of a Pick, and zeroing it for nothing is measurable.
	p.u, p.s, p.h, p.now = u, s, h, 0
	p.mode, p.keyed, p.panic, p.done, p.overload = modeNone, false, false, false, false
	p.returned, p.warmSkips = 0, 0
	p.start, p.stride, p.k, p.pending = 0, 0, 0, -1
	p.nsoft, p.pos = 0, 0
	if s == nil || len(s.eps) == 0 {
		return
	}
	p.panic = s.panicking(u.down.Load())
	o := u.pol.open(u, s, h, hasKey)
	p.mode = o.mode
	switch o.mode {
	case modeWalk:
		p.keyed, p.h = o.keyed, o.h
		p.walker = s.table.Walk(o.h)
	case modeSequence, modeTwoChoices:
		p.start, p.stride = uint32(o.start), 1
		if o.scrambled {
			p.stride = s.strides[rand.Uint64()%uint64(len(s.strides))]
		}
	}
}

// Next returns the next endpoint to try. The first call returns the target; each later one a
// fallback for a retry, never an endpoint this pick already returned. Hash policies continue
// the walk of the first call, so a key's fallbacks are stable. Endpoints passed over because
// of bounded load or slow start come last, before the errors: ErrNoEndpoints, ErrNoKey,
// ErrOverloaded, or ErrExhausted once every eligible endpoint was returned.
//
// Next does not block or allocate (a walk past more than eight ejected endpoints may). It
// returns an endpoint whose ejection is over to service with a compare-and-swap, and leaves
// logging and telling Events about it to Upstream.Run.
func (p *Pick) Next() (*Endpoint, error) {
	switch p.mode {
	case modeNone:
		return nil, ErrNoEndpoints
	case modeReject:
		return nil, ErrNoKey
	}
	for !p.done {
		i := p.candidate()
		if i < 0 {
			p.done = true
			break
		}
		v := p.admit(i)
		if v == admitTake {
			p.returned++
			return p.s.eps[i], nil
		}
		if p.trace != nil {
			p.trace.add(p.s.eps[i], v)
		}
		if v >= laterBoundedLoad && p.nsoft < softSkips {
			p.soft[p.nsoft] = int32(i)
			p.nsoft++
		}
	}
	if p.pos < p.nsoft {
		i := p.soft[p.pos]
		p.pos++
		p.returned++
		return p.s.eps[i], nil
	}
	switch {
	case p.overload:
		return nil, ErrOverloaded
	case p.returned == 0:
		return nil, ErrNoEndpoints
	}
	return nil, ErrExhausted
}

// candidate returns the index of the next candidate, distinct from every one before it in
// this pick, or -1 when there is none left.
func (p *Pick) candidate() int {
	switch p.mode {
	case modeWalk:
		i, ok := p.walker.Next()
		if !ok {
			return -1
		}
		return i
	case modeTwoChoices:
		a := int(p.pending)
		if a < 0 {
			if a = p.sequenceNext(); a < 0 {
				return -1
			}
		}
		b := p.sequenceNext()
		if b < 0 {
			p.pending = -1
			return a
		}
		if p.lighter(b, a) {
			a, b = b, a
		}
		p.pending = int32(b)
		return a
	}
	return p.sequenceNext()
}

// sequenceNext returns the next index of the sequence, or -1 once it has visited them all.
func (p *Pick) sequenceNext() int {
	n := uint64(len(p.s.eps))
	if uint64(p.k) >= n {
		return -1
	}
	i := (uint64(p.start) + uint64(p.k)*uint64(p.stride)) % n
	p.k++
	return int(i)
}

// lighter reports whether endpoint a has fewer in-flight requests per unit of weight than b.
func (p *Pick) lighter(a, b int) bool {
	la, lb := p.s.eps[a].inflight.Load()+1, p.s.eps[b].inflight.Load()+1
	return la*int64(p.s.weights[b]) < lb*int64(p.s.weights[a])
}

// verdict is what admit decides about a candidate, and why.
type verdict uint8

// The verdicts: take it, skip it (not for this request), or keep it for later (only if
// nothing better is left: laterBoundedLoad and above).
const (
	admitTake        verdict = iota // the one
	skipEjected                     // ejected by outlier detection or an operator
	skipActiveDown                  // failing active health checks
	skipDrained                     // drained by an operator
	skipMaxRequests                 // at Config.MaxRequests
	laterBoundedLoad                // over its bounded-load cap
	laterSlowStart                  // warming up, and the key's draw is above its fraction
	takeLastResort                  // (trace only) taken from the ones kept for later
)

// admit decides whether to take candidate i.
func (p *Pick) admit(i int) verdict {
	e, u := p.s.eps[i], p.u
	if st := e.status.Load(); st&(statusEjected|statusActiveDown|statusDrained) != 0 {
		if st&statusDrained != 0 && !p.keepsDrained(e, i) {
			return skipDrained
		}
		if st&statusEjected != 0 && u.ejectionOver(e, p.clock()) {
			u.unEject(e, st)
			st = e.status.Load()
		}
		if !p.panic {
			switch {
			case st&statusEjected != 0:
				return skipEjected
			case st&statusActiveDown != 0:
				return skipActiveDown
			}
		}
	}
	if limit := u.cfg.MaxRequests; limit > 0 && e.inflight.Load() >= limit {
		p.overload = true
		return skipMaxRequests
	}
	if u.bounded && p.mode == modeWalk {
		limit := hashring.BoundedCap(u.cfg.BoundedLoad, u.inflight.Load(), p.s.weights[i], p.s.totalWeight)
		if e.inflight.Load() >= limit {
			return laterBoundedLoad
		}
	}
	if u.cfg.SlowStart > 0 && p.warmSkips < maxWarmSkips && e.warmStart.Load() != 0 {
		if f := u.warmFraction(e, p.clock()); f < 1 && p.warmRoll(e) >= f {
			p.warmSkips++
			return laterSlowStart
		}
	}
	return admitTake
}

// keepsDrained reports whether drained candidate i still takes this request: only a keyed
// walk's home endpoint does, and only until the end of its drain's keep-keys window (see
// Upstream.Drain).
func (p *Pick) keepsDrained(e *Endpoint, i int) bool {
	if !p.keyed {
		return false
	}
	keep := e.drainKeep.Load()
	return keep != 0 && p.clock() < keep && p.s.table.Lookup(p.h) == i
}

// clock returns the upstream's time, read once per pick.
func (p *Pick) clock() int64 {
	if p.now == 0 {
		p.now = p.u.nowNanos()
	}
	return p.now
}
