package discovery

import (
	"context"
	"sync"
	"time"
)

// Defaults of Pacing.
const (
	// DefaultSettle covers instances registering again one by one after a registry restart
	// (the issue this guards against showed partial views for 1 to 4.5 s), while a real
	// removal still lands within a few seconds.
	DefaultSettle = 5 * time.Second
	// DefaultCoalesce bounds rebuilds of a service's ring to 10 a second under a flapping
	// check, and delays a change that follows another by at most a tenth of a second.
	DefaultCoalesce = 100 * time.Millisecond
)

// Pacing says how a source hands on the snapshots of a service. The zero value uses the
// defaults; a negative field turns its rule off.
type Pacing struct {
	// Settle is how long removals are held after the source resynced with a registry that
	// may be warming up: one back after an outage, one whose index went backwards (a Consul
	// agent restarted without state), an etcd watch listed again. Such a registry lists its
	// instances as they register again, one by one; applying each partial view would move
	// users to other instances and back. Within the window additions and changes apply at
	// once, and an instance that a registry drops or reports critical keeps its last state;
	// at its end the registry's full view applies, so a real removal lands within Settle
	// plus one update. Default DefaultSettle.
	Settle time.Duration
	// Coalesce is the least time between two deliveries for one service. A change after a
	// quiet spell is delivered at once; changes that follow within Coalesce are merged into
	// one delivery of the latest state at the end of it, so a flapping check rebuilds a ring
	// at most 1/Coalesce times a second. Default DefaultCoalesce.
	Coalesce time.Duration
}

// withDefaults returns p with zero fields set to their defaults and negative ones to 0 (off).
func (p Pacing) withDefaults() Pacing {
	def := func(d, v time.Duration) time.Duration {
		switch {
		case d == 0:
			return v
		case d < 0:
			return 0
		}
		return d
	}
	return Pacing{Settle: def(p.Settle, DefaultSettle), Coalesce: def(p.Coalesce, DefaultCoalesce)}
}

// Pacer stands between a source's watch of one service and the UpdateFunc: the watch offers
// each complete snapshot it reads, and the pacer's own goroutine (Run) delivers them paced
// by its Pacing — removals held while a resynced registry settles, bursts coalesced, and a
// snapshot equal to the last one delivered dropped (as Dedup does).
//
// Offer is safe for concurrent use and never blocks; Run is called once, and update is
// called only from it, so never concurrently for the service.
type Pacer struct {
	cfg    Pacing
	update UpdateFunc

	mu      sync.Mutex
	offered *Snapshot // the latest offer Run has not taken yet
	resync  bool      // an offer since Run last took one was a resync
	wake    chan struct{}
}

// NewPacer returns a pacer delivering to update.
func NewPacer(cfg Pacing, update UpdateFunc) *Pacer {
	return &Pacer{cfg: cfg.withDefaults(), update: update, wake: make(chan struct{}, 1)}
}

// Offer hands the pacer the service's latest complete snapshot, replacing any offer not yet
// delivered. resync reports that the source had lost track of the registry and this is its
// first read since (after an outage, an index that went backwards, a new list): the
// registry may be warming up, and the settle window starts.
func (p *Pacer) Offer(s *Snapshot, resync bool) {
	if s == nil {
		return
	}
	p.mu.Lock()
	p.offered = s
	p.resync = p.resync || resync
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns the latest offer and whether a resync came with it, and clears both.
func (p *Pacer) take() (*Snapshot, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, r := p.offered, p.resync
	p.offered, p.resync = nil, false
	return s, r
}

// Run delivers offers until ctx ends, then returns ctx.Err(). An offer not yet delivered
// then is dropped: the watch is over.
func (p *Pacer) Run(ctx context.Context) error {
	var (
		view      *Snapshot // the registry's latest full view
		delivered *Snapshot // the last snapshot given to update
		nextAt    time.Time // the earliest time of the next delivery (Coalesce)
		settleEnd time.Time // the end of the settle window; zero outside one
		timer     = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	for {
		if s, resync := p.take(); s != nil {
			view = s
			// The first view of all has nothing to hold back; an ongoing window is not
			// extended, so a registry that keeps flapping still gets its removals applied.
			if resync && delivered != nil && p.cfg.Settle > 0 && settleEnd.IsZero() {
				settleEnd = time.Now().Add(p.cfg.Settle)
			}
		}
		now := time.Now()
		windowEnded := false
		if !settleEnd.IsZero() && !now.Before(settleEnd) {
			// The full view is owed now, whatever Coalesce says: held back, a resync coming
			// meanwhile would open a new window over a view that still holds the removals.
			settleEnd, windowEnded = time.Time{}, true
		}
		var wait time.Duration = -1 // until the next offer
		if view != nil {
			target := view
			if !settleEnd.IsZero() {
				target = holdRemovals(delivered, view)
				wait = settleEnd.Sub(now)
			}
			if !target.Equal(delivered) {
				if d := nextAt.Sub(now); d > 0 && !windowEnded {
					wait = shorter(wait, d)
				} else {
					p.update(target)
					delivered = target
					nextAt = now.Add(p.cfg.Coalesce)
				}
			}
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// shorter returns the shorter of two waits, -1 meaning none.
func shorter(a, b time.Duration) time.Duration {
	if a < 0 || b < a {
		return b
	}
	return a
}

// holdRemovals returns view with what it would take away from prev put back: the endpoints of
// prev it lacks, and the last state of those it reports critical while prev did not. Both are
// sorted by ID, so this is one merge pass. It returns view itself when nothing is held.
func holdRemovals(prev, view *Snapshot) *Snapshot {
	if prev == nil || len(prev.Endpoints) == 0 {
		return view
	}
	a, b := prev.Endpoints, view.Endpoints
	out := make([]Endpoint, 0, max(len(a), len(b)))
	held := false
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].ID < b[j].ID): // gone from view
			out = append(out, a[i])
			held = true
			i++
		case i == len(a) || b[j].ID < a[i].ID: // new in view
			out = append(out, b[j])
			j++
		default: // in both
			if b[j].Health == HealthCritical && a[i].Health != HealthCritical {
				out = append(out, a[i])
				held = true
			} else {
				out = append(out, b[j])
			}
			i++
			j++
		}
	}
	if !held {
		return view
	}
	return &Snapshot{Service: view.Service, Endpoints: out, Revision: view.Revision, Received: view.Received}
}
