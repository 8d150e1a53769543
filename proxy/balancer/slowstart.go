package balancer

import (
	"math/rand/v2"
	"time"
)

// Slow start: an endpoint that joins an upstream already in service, or comes back from
// ejection or from failing active checks, warms up over Config.SlowStart. While it warms, a
// candidate pick of it is kept only with probability warmFraction, which grows linearly from
// warmFloor to 1; otherwise the pick passes it over for the next candidate (coming back to it
// only if nothing better is left).
//
// Under the hash policies the draw is not random but a second hash of the request key (mixed
// with the endpoint's), so the decision is deterministic per key: the keys whose draw is below
// the fraction stay on the warming endpoint, and since the fraction only grows, the keys it
// has taken stay with it while more join them. Envoy leaves its hash balancers out of slow
// start; we do not. A pick passes over at most maxWarmSkips warming endpoints.

// warmFloor is the share of its traffic a warming endpoint takes at the start of its window.
const warmFloor = 0.1

// startWarming starts e's slow-start window now, if slow start is on.
func (u *Upstream) startWarming(e *Endpoint, now int64) {
	if u.cfg.SlowStart > 0 {
		e.warmStart.Store(max(now, 1))
	}
}

// warmFraction returns the share of its traffic e takes at time now: 1 when it is not warming.
// It ends the window of an endpoint whose window is over.
func (u *Upstream) warmFraction(e *Endpoint, now int64) float64 {
	start := e.warmStart.Load()
	if start == 0 || u.cfg.SlowStart <= 0 {
		return 1
	}
	elapsed := time.Duration(now - start)
	if elapsed >= u.cfg.SlowStart {
		e.warmStart.CompareAndSwap(start, 0)
		return 1
	}
	return warmFloor + (1-warmFloor)*float64(max(elapsed, 0))/float64(u.cfg.SlowStart)
}

// warmRoll returns the pick's draw in [0, 1) against warming candidate e's fraction. For a
// keyed pick it is a hash of the key and the endpoint, so it is the same every time for that
// key and endpoint, and independent from one endpoint to the next; otherwise it is random.
func (p *Pick) warmRoll(e *Endpoint) float64 {
	if !p.keyed {
		return rand.Float64()
	}
	return float64(mix64(p.h^e.seed)>>11) / (1 << 53)
}

// mix64 is the splitmix64 finalizer: a bijection of h, independent enough of the hash that
// placed the key on the table.
func mix64(h uint64) uint64 {
	h ^= 0x9e3779b97f4a7c15
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}
