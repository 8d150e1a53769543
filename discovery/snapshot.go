package discovery

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Snapshot is the complete set of endpoints of one service at one moment. It is immutable once
// published: neither its fields nor its Endpoints may be modified, so it can be shared between
// goroutines without locks.
type Snapshot struct {
	Service string
	// Endpoints are sorted by ID, with unique IDs.
	Endpoints []Endpoint
	// Revision is the registry's own position: the Consul X-Consul-Index, the etcd revision, a
	// counter of the file's good reads.
	Revision uint64
	// Received is when the source read this state from the registry.
	Received time.Time
}

// NewSnapshot returns a snapshot holding a deep copy of eps, sorted by ID. When two endpoints
// share an ID, the later one in eps wins.
func NewSnapshot(service string, revision uint64, eps []Endpoint, received time.Time) *Snapshot {
	out := make([]Endpoint, 0, len(eps))
	for _, e := range eps {
		out = append(out, e.clone())
	}
	// A stable sort keeps input order among equal IDs, so the last of a run is the last given.
	slices.SortStableFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	uniq := out[:0]
	for i, e := range out {
		if i+1 < len(out) && out[i+1].ID == e.ID {
			continue
		}
		uniq = append(uniq, e)
	}
	return &Snapshot{Service: service, Endpoints: uniq, Revision: revision, Received: received}
}

// Equal reports whether s and o hold the same service and the same endpoints; Revision and
// Received are ignored, since a registry may move its index without any change.
func (s *Snapshot) Equal(o *Snapshot) bool {
	if s == nil || o == nil {
		return s == o
	}
	if s.Service != o.Service || len(s.Endpoints) != len(o.Endpoints) {
		return false
	}
	for i := range s.Endpoints {
		if !s.Endpoints[i].equal(o.Endpoints[i]) {
			return false
		}
	}
	return true
}

// UpdateFunc receives each new snapshot. A Source calls it from its own goroutines: never
// concurrently for the same service, possibly concurrently for different services. It must not
// block for long, since the source's watch of that service waits for it.
type UpdateFunc func(*Snapshot)

// Source watches a registry for the instances of services.
type Source interface {
	// Watch watches services until ctx ends, calling update with the first complete snapshot of
	// each service and then with every change. A snapshot equal to the last one delivered for its
	// service is not delivered again. Watch blocks; it returns ctx.Err() after ctx ends, once all
	// of its goroutines have exited, or an error at once if it cannot start (bad configuration).
	// Registry errors are not returned: they are logged with backoff, reported to the source's
	// Observer and retried, and the last snapshot stays in force meanwhile.
	Watch(ctx context.Context, services []string, update UpdateFunc) error
}

// Dedup wraps update so that a snapshot equal to the last one delivered for the same service is
// dropped. The returned func is safe for concurrent use across services.
func Dedup(update UpdateFunc) UpdateFunc {
	var (
		mu   sync.Mutex
		last = make(map[string]*Snapshot)
	)
	return func(s *Snapshot) {
		if s == nil {
			return
		}
		mu.Lock()
		prev := last[s.Service]
		if prev != nil && prev.Equal(s) {
			mu.Unlock()
			return
		}
		last[s.Service] = s
		mu.Unlock()
		update(s)
	}
}
