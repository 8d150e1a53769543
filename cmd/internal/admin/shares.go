package admin

import (
	"sync"
	"time"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// shareTTL is how long a key-share measurement is reused. One costs about 10 ms of a core per
// upstream (65,536 picks, each reading counters that requests write), and the reads that
// show it need no token: without a cache, a client looping on /v1/upstreams/{name}/endpoints
// or the status page could keep a core of the sidecar busy. A second is fresh enough for a
// display; a change made through the API measures anew.
const shareTTL = time.Second

// shareCache keeps the last key-share measurement of each upstream. One measurement runs at a
// time: callers that arrive meanwhile wait for it and take its result. Safe for concurrent
// use.
type shareCache struct {
	mu      sync.Mutex
	entries map[*balancer.Upstream]shareEntry
}

type shareEntry struct {
	at     time.Time
	shares map[string]balancer.KeyShare
}

// get returns u's key shares measured with samples keys, at most shareTTL old unless fresh
// is set.
func (c *shareCache) get(u *balancer.Upstream, samples int, fresh bool) map[string]balancer.KeyShare {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if e, ok := c.entries[u]; ok && !fresh && now.Sub(e.at) < shareTTL {
		return e.shares
	}
	if c.entries == nil {
		c.entries = make(map[*balancer.Upstream]shareEntry)
	}
	shares := u.KeyShares(samples)
	c.entries[u] = shareEntry{at: now, shares: shares}
	return shares
}
