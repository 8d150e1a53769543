package hashring

// b2u returns 1 for true; the compiler makes it a SETcc, not a branch.
func b2u(b bool) uint32 {
	var u uint32
	if b {
		u = 1
	}
	return u
}

// locate finds position q (low ownerBits clear) on the ring: j is the index
// of the first point at or after q (n if none), pred and succ the points
// before and after q, wrapping around. The ring must not be empty.
//
// Buckets hold one or two points on average (see indexBits), so the first
// [window] (2) points of the bucket settle almost every lookup. They are
// compared without a branch and the neighbours read from the lines just
// loaded: two dependent loads (index, then points) and no mispredicted
// branch. Only a bucket with more than window points before q takes the
// slow path. Walk uses locate; Lookup uses the same steps, inlined for both
// probes at once (see home).
func (r *Ring) locate(q uint64) (j uint32, pred, succ uint64) {
	pad := r.padded // point k is pad[k+1]; pad has window+1 slots from any lo <= n
	b := q >> r.shift
	lo, hi := r.index[b], r.index[b+1]
	w := pad[lo+1 : lo+1+window : lo+1+window]
	// Points at or past hi belong to later buckets, so they are past q;
	// testing against hi also keeps the wrap-around copies out.
	c := b2u(lo < hi)&b2u(w[0] < q) + b2u(lo+1 < hi)&b2u(w[1] < q)
	j = lo + c // arithmetic, not a branch
	pred, succ = pad[j], pad[j+1]
	// One branch, rarely taken: the bucket has more points before q.
	if b2u(c == window)&b2u(j < hi)&b2u(succ < q) != 0 {
		return r.crowded(q, j, hi)
	}
	return j, pred, succ
}

// crowded is locate's slow path for a bucket with more than window points
// before q: a binary search of [lo, hi).
func (r *Ring) crowded(q uint64, lo, hi uint32) (uint32, uint64, uint64) {
	pts := r.points
	for lo < hi {
		mid := lo + (hi-lo)/2
		if pts[mid] < q {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, r.padded[lo], r.padded[lo+1]
}

// successor returns the index of the first point at or after position q,
// wrapping around to 0.
func (r *Ring) successor(q uint64) uint32 {
	j, _, _ := r.locate(q)
	if int(j) == len(r.points) {
		j = 0
	}
	return j
}

// nearest returns the point nearest to position q and its distance; on a
// tie, the clockwise one. uint64 arithmetic wraps the distances around.
func (r *Ring) nearest(q uint64) (point, dist uint64) {
	_, pred, succ := r.locate(q)
	dr := succ&posMask - q
	dl := q - pred&posMask
	point = succ
	if dl < dr { // one assignment per branch: the compiler emits CMOVs
		point = pred
	}
	return point, min(dl, dr)
}

// Lookup returns the index of the home node of key hash h: the owner of the
// point nearest to either probe (see [Ring]). It returns -1 only on a zero
// or nil Ring. It does not allocate.
func (r *Ring) Lookup(h uint64) int {
	if r == nil || len(r.points) == 0 {
		return -1
	}
	return int(r.home(h) & ownerMask)
}

// home returns the point nearest to either probe of h. It is locate and
// nearest for both probes, interleaved by hand: the loads of probe 1 are
// issued right behind those of probe 0, so their cache misses overlap
// (measured: about 25% faster than two calls of nearest at 1,000 and
// 10,000 nodes).
func (r *Ring) home(h uint64) uint64 {
	pad, index := r.padded, r.index
	q0, q1 := h&posMask, splitmix64(h)&posMask
	b0, b1 := q0>>r.shift, q1>>r.shift
	lo0, hi0 := index[b0], index[b0+1]
	lo1, hi1 := index[b1], index[b1+1]
	w0 := pad[lo0+1 : lo0+1+window : lo0+1+window]
	w1 := pad[lo1+1 : lo1+1+window : lo1+1+window]
	c0 := b2u(lo0 < hi0)&b2u(w0[0] < q0) + b2u(lo0+1 < hi0)&b2u(w0[1] < q0)
	c1 := b2u(lo1 < hi1)&b2u(w1[0] < q1) + b2u(lo1+1 < hi1)&b2u(w1[1] < q1)
	j0, j1 := lo0+c0, lo1+c1
	pred0, succ0 := pad[j0], pad[j0+1]
	pred1, succ1 := pad[j1], pad[j1+1]
	if b2u(c0 == window)&b2u(j0 < hi0)&b2u(succ0 < q0)|
		b2u(c1 == window)&b2u(j1 < hi1)&b2u(succ1 < q1) != 0 {
		return r.homeSlow(h) // a crowded bucket
	}
	dr0, dl0 := succ0&posMask-q0, q0-pred0&posMask
	dr1, dl1 := succ1&posMask-q1, q1-pred1&posMask
	// One assignment per condition: the compiler emits CMOVs, not branches.
	p0, p1 := succ0, succ1
	if dl0 < dr0 {
		p0 = pred0
	}
	if dl1 < dr1 {
		p1 = pred1
	}
	if min(dl1, dr1) < min(dl0, dr0) {
		p0 = p1
	}
	return p0
}

// homeSlow is home through locate, which handles crowded buckets.
func (r *Ring) homeSlow(h uint64) uint64 {
	p0, d0 := r.nearest(h & posMask)
	p1, d1 := r.nearest(splitmix64(h) & posMask)
	if d1 < d0 {
		p0 = p1
	}
	return p0
}

// LookupString returns Lookup(HashString(key)).
func (r *Ring) LookupString(key string) int { return r.Lookup(HashString(key)) }

// LookupBytes returns Lookup(Hash(key)).
func (r *Ring) LookupBytes(key []byte) int { return r.Lookup(Hash(key)) }

// Walk returns the preference order of key hash h: the distinct owners of
// the points in order of distance from the nearer probe (see [Ring]), home
// node first. Removing node X from the ring removes X from every key's
// order and changes nothing else. It does not allocate.
func (r *Ring) Walk(h uint64) Walker {
	if r == nil || len(r.points) == 0 {
		return Walker{}
	}
	w := Walker{ring: r, n: len(r.nodes), limit: 4 * len(r.points)}
	w.q = [2]uint64{h & posMask, splitmix64(h) & posMask}
	pts := r.points
	for p, q := range w.q {
		j := r.successor(q)
		l := j
		if l == 0 {
			l = uint32(len(pts))
		}
		l--
		w.cur[2*p], w.dist[2*p] = j, pts[j]&posMask-q
		w.cur[2*p+1], w.dist[2*p+1] = l, q-pts[l]&posMask
	}
	return w
}

// step takes the nearest of the walker's four heads (the lowest cursor on
// a tie), returns its owner and moves that cursor one point further.
//
// Every point is within 2^63 of each probe in one direction, and heads come
// in order of distance, so all points are met before any cursor has gone
// half way round: the walk meets every node within 2 × len(points) steps.
func (r *Ring) step(w *Walker) int {
	c, d := 0, w.dist[0]
	for k := 1; k < len(w.dist); k++ {
		if w.dist[k] < d {
			c, d = k, w.dist[k]
		}
	}
	pts := r.points
	j := w.cur[c]
	owner := int(pts[j] & ownerMask)
	q := w.q[c>>1]
	if c&1 == 0 { // clockwise
		j++
		if int(j) == len(pts) {
			j = 0
		}
		w.dist[c] = pts[j]&posMask - q
	} else {
		if j == 0 {
			j = uint32(len(pts))
		}
		j--
		w.dist[c] = q - pts[j]&posMask
	}
	w.cur[c] = j
	return owner
}
