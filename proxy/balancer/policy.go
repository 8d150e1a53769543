package balancer

import (
	"container/heap"
	"math/rand/v2"

	"github.com/ringside-proxy/ringside/hashring"
)

// policy is one load-balancing policy. A policy value holds configuration only; what it
// builds per snapshot lives in the state.
type policy interface {
	// prepare builds what the policy needs in s from s.nodes (never empty): a hash table, a
	// weighted schedule. Update calls it, only when the routable endpoints or their weights
	// changed.
	prepare(s *state) error
	// open says where one request's candidates start, in state s (with endpoints). It runs
	// on the request path: it must not block or allocate. (It returns a value rather than
	// filling in the Pick: a Pick passed to an interface method would escape to the heap.)
	open(u *Upstream, s *state, h uint64, hasKey bool) opening
}

// opening is where a pick's candidates start.
type opening struct {
	mode      uint8  // modeWalk, modeSequence, modeTwoChoices or modeReject
	h         uint64 // modeWalk: the walk starts at h
	keyed     bool   // modeWalk: h is the request key's hash
	start     int    // the sequences: the first index
	scrambled bool   // the sequences: a random stride instead of 1
}

// Interface guards.
var (
	_ policy = ringHashPolicy{}
	_ policy = maglevPolicy{}
	_ policy = roundRobinPolicy{}
	_ policy = weightedRoundRobinPolicy{}
	_ policy = leastRequestPolicy{}
	_ policy = randomPolicy{}
)

// newPolicy returns the policy of cfg, whose defaults are filled in.
func newPolicy(cfg Config) policy {
	switch cfg.Kind {
	case Maglev:
		return maglevPolicy{size: cfg.MaglevTableSize, noKey: cfg.NoKey}
	case RoundRobin:
		return roundRobinPolicy{}
	case WeightedRoundRobin:
		return weightedRoundRobinPolicy{}
	case LeastRequest:
		return leastRequestPolicy{}
	case Random:
		return randomPolicy{}
	}
	return ringHashPolicy{vnodes: cfg.VirtualNodes, noKey: cfg.NoKey}
}

// ringHashPolicy walks a consistent-hash ring from the key's hash.
type ringHashPolicy struct {
	vnodes int
	noKey  NoKeyPolicy
}

func (r ringHashPolicy) prepare(s *state) error {
	total := 0
	for _, nd := range s.nodes {
		total += nd.Weight
	}
	// Points per weight unit stay fixed whatever the membership, so a change moves only the
	// keys of the endpoints that changed. (Dividing the weights by their greatest common
	// divisor would save points, but the divisor changes with membership — all weights 2,
	// then a weight-1 endpoint joins — and with it every endpoint's points.) Only a ring that
	// would pass maxRingPoints is thinned, which does move keys between survivors: keep
	// weights small (1–10).
	vnodes := r.vnodes
	if total*vnodes > maxRingPoints {
		vnodes = max(1, maxRingPoints/total)
	}
	t, err := hashring.NewRing(s.nodes, hashring.WithVirtualNodes(vnodes))
	if err != nil {
		return err
	}
	s.table = t
	return nil
}

func (r ringHashPolicy) open(u *Upstream, s *state, h uint64, hasKey bool) opening {
	return openHashed(u, s, h, hasKey, r.noKey)
}

// maxRingPoints bounds a ring at 4M points (about 50 MB): 160 points per unit of weight for
// 26,000 units, e.g. 2,600 endpoints of weight 10.
const maxRingPoints = 1 << 22

// maglevPolicy walks a maglev lookup table from the key's hash.
type maglevPolicy struct {
	size  uint64
	noKey NoKeyPolicy
}

func (m maglevPolicy) prepare(s *state) error {
	var opts []hashring.Option
	if m.size > 0 {
		opts = append(opts, hashring.WithTableSize(m.size))
	}
	t, err := hashring.NewMaglev(s.nodes, opts...)
	if err != nil {
		return err
	}
	s.table = t
	return nil
}

func (m maglevPolicy) open(u *Upstream, s *state, h uint64, hasKey bool) opening {
	return openHashed(u, s, h, hasKey, m.noKey)
}

// openHashed opens a hash policy's pick: a walk from the key's hash, or what noKey says.
func openHashed(u *Upstream, s *state, h uint64, hasKey bool, noKey NoKeyPolicy) opening {
	switch {
	case hasKey:
		return opening{mode: modeWalk, h: h, keyed: true}
	case noKey == NoKeyReject:
		return opening{mode: modeReject}
	case noKey == NoKeyRoundRobin:
		return opening{mode: modeSequence, start: int(u.rr.Add(1) % uint64(len(s.eps)))}
	}
	return opening{mode: modeWalk, h: rand.Uint64()}
}

// roundRobinPolicy takes the endpoints in turn, whatever their weights.
type roundRobinPolicy struct{}

func (roundRobinPolicy) prepare(*state) error { return nil }

func (roundRobinPolicy) open(u *Upstream, s *state, _ uint64, _ bool) opening {
	return opening{mode: modeSequence, start: int(u.rr.Add(1) % uint64(len(s.eps)))}
}

// scheduled is embedded in the policies that draw from a weighted schedule: its prepare
// builds the schedule.
type scheduled struct{}

func (scheduled) prepare(s *state) error {
	s.schedule = weightedSchedule(s.nodes)
	return nil
}

// weightedRoundRobinPolicy takes the endpoints in the order of a precomputed smooth weighted
// schedule, advanced by one atomic counter: lock-free, and exact over every cycle.
type weightedRoundRobinPolicy struct{ scheduled }

func (weightedRoundRobinPolicy) open(u *Upstream, s *state, _ uint64, _ bool) opening {
	return opening{mode: modeSequence, start: int(s.schedule[u.rr.Add(1)%uint64(len(s.schedule))])}
}

// leastRequestPolicy is the power of two choices: of two candidates, the first drawn by
// weight and the second at random, it takes the one with fewer in-flight requests per unit of
// weight.
type leastRequestPolicy struct{ scheduled }

func (leastRequestPolicy) open(_ *Upstream, s *state, _ uint64, _ bool) opening {
	return opening{mode: modeTwoChoices, start: weightedStart(s), scrambled: true}
}

// randomPolicy draws an endpoint at random, in proportion to its weight.
type randomPolicy struct{ scheduled }

func (randomPolicy) open(_ *Upstream, s *state, _ uint64, _ bool) opening {
	return opening{mode: modeSequence, start: weightedStart(s), scrambled: true}
}

// weightedStart draws an endpoint at random in proportion to its weight.
func weightedStart(s *state) int {
	return int(s.schedule[rand.Uint64()%uint64(len(s.schedule))])
}

// maxSchedule bounds the length of a weighted schedule; weights whose sum is larger are
// scaled down (each to at least 1), which keeps their proportions to within a percent or so.
const maxSchedule = 1 << 16

// weightedSchedule returns a cycle of node indexes in which each node appears in proportion
// to its weight, spread out by earliest deadline first: node i of n takes its turns at
// (k + φ_i)/weight_i for k = 0, 1, ..., with phases φ_i = (i + ½)/n that keep the light nodes
// from bunching up (for weights 5:1:1, a a a b a a c rather than a a a a a b c). It spreads
// turns at least as evenly as nginx's smooth weighted round-robin, in O(W log n).
func weightedSchedule(nodes []hashring.Node) []int32 {
	ws := make([]int, len(nodes))
	total, g := 0, 0
	for i, nd := range nodes {
		ws[i] = max(nd.Weight, 1)
		total += ws[i]
		g = gcd(g, ws[i])
	}
	if total/g > maxSchedule {
		t := total
		total = 0
		for i := range ws {
			ws[i] = max(1, int(int64(ws[i])*maxSchedule/int64(t)))
			total += ws[i]
		}
	} else {
		for i := range ws {
			ws[i] /= g
		}
		total /= g
	}
	q := make(turnQueue, len(ws))
	for i, w := range ws {
		q[i] = turn{node: int32(i), weight: int64(w), num: 2*int64(i) + 1}
	}
	heap.Init(&q)
	step := 2 * int64(len(ws))
	out := make([]int32, 0, total)
	for range total {
		t := &q[0]
		out = append(out, t.node)
		t.num += step
		heap.Fix(&q, 0)
	}
	return out
}

// turn is a node's next turn in weightedSchedule, due at (k + (i+½)/n)/weight, which is
// num/(2n·weight) with num = 2kn + 2i + 1: the common 2n cancels out of comparisons.
type turn struct {
	node   int32
	weight int64
	num    int64
}

// turnQueue is a min-heap of turns by due time, ties to the lower node.
type turnQueue []turn

func (q turnQueue) Len() int { return len(q) }
func (q turnQueue) Less(a, b int) bool {
	l, r := q[a].num*q[b].weight, q[b].num*q[a].weight
	return l < r || l == r && q[a].node < q[b].node
}
func (q turnQueue) Swap(a, b int) { q[a], q[b] = q[b], q[a] }
func (q *turnQueue) Push(x any)   { *q = append(*q, x.(turn)) }
func (q *turnQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	*q = old[:len(old)-1]
	return t
}
