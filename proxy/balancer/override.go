package balancer

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"go.uber.org/zap"
)

// Operator overrides: drain, an ejection for a set time, a weight. They are kept by endpoint
// ID in Upstream.overrides, apart from the handles, so that they survive snapshot swaps and
// address changes (a new handle for the ID takes them over) and an endpoint that leaves the
// snapshot and comes back; they last until cleared (an ejection until its time is up, a weight
// until the registry changes the endpoint's weight). Setting one takes updateMu, never taken by
// a request, and flips status bits the request path already reads: a drain or an ejection
// applies to the next pick, at no cost to the others; a weight rebuilds the table from the
// last snapshot, as a registry change of weight would.
//
// Drain: the endpoint takes no new requests, whatever its health, and panic mode does not
// bring it back (the panic count leaves drained endpoints out). Requests in flight on it
// finish. With a keep-keys window, the keys whose home it is keep going to it until the window
// ends, so that work already mapped there (sessions, caches) finishes, while it takes no
// other keys (no fallbacks of ejected endpoints, no bounded-load overflow, no key-blind
// traffic); after the window it takes nothing. Undrain puts it back at once (with slow start,
// if configured).

// MaxWeight is the largest weight an operator may set (SetWeight).
const MaxWeight = 1000

// The errors of the override methods.
var (
	// ErrUnknownEndpoint: the upstream has no endpoint of that ID in its current snapshot.
	ErrUnknownEndpoint = errors.New("unknown endpoint")
	// ErrBadOverride: a duration or weight out of range.
	ErrBadOverride = errors.New("bad override")
)

// reasonAdmin is the reason of an ejection by an operator.
const reasonAdmin = "admin"

// override is one endpoint's overrides. Guarded by Upstream.updateMu.
type override struct {
	drained    bool
	drainedAt  int64 // UnixNano
	keepUntil  int64 // end of the keep-keys window, UnixNano; 0 = none
	ejectUntil int64 // end of an operator's ejection, UnixNano; 0 = none
	weight     int   // the operator's weight; 0 = none
	base       int   // the registry's weight when weight was set
}

func (o *override) empty(now int64) bool {
	return !o.drained && o.ejectUntil <= now && o.weight == 0
}

// Override is one endpoint's overrides, as Overrides lists them.
type Override struct {
	Endpoint string
	// Present: the endpoint is in the current snapshot. Overrides of an absent endpoint wait
	// for it to come back.
	Present bool
	// Drained since DrainedAt; KeepKeysUntil is the end of its keep-keys window, zero if none.
	Drained       bool
	DrainedAt     time.Time
	KeepKeysUntil time.Time
	// EjectedUntil is the end of an operator's ejection still in force; zero if none.
	EjectedUntil time.Time
	// Weight is the operator's weight, 0 if none; RegistryWeight the registry's weight it
	// overrides (a different one from the registry drops the override).
	Weight, RegistryWeight int
}

// handleLocked returns the handle of id; updateMu is held.
func (u *Upstream) handleLocked(id string) (*Endpoint, error) {
	if e := u.handles[id]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("upstream %q: %w %q", u.name, ErrUnknownEndpoint, id)
}

// lockHandle takes updateMu and returns the handle of id; on error it has let go of updateMu.
func (u *Upstream) lockHandle(id string) (*Endpoint, error) {
	u.updateMu.Lock()
	e, err := u.handleLocked(id)
	if err != nil {
		u.updateMu.Unlock()
	}
	return e, err
}

// clearLocked clears part of id's override with f, and forgets the override if nothing is
// left in it; updateMu is held.
func (u *Upstream) clearLocked(id string, now int64, f func(o *override)) {
	if o := u.overrides[id]; o != nil {
		f(o)
		if o.empty(now) {
			delete(u.overrides, id)
		}
	}
}

// overrideLocked returns id's override, making it if needed; updateMu is held.
func (u *Upstream) overrideLocked(id string) *override {
	o := u.overrides[id]
	if o == nil {
		o = &override{}
		u.overrides[id] = o
	}
	return o
}

// Drain takes endpoint id out of service (see the top of override.go): no new requests, or,
// with keepKeys > 0, only the requests of the keys whose home it is, for keepKeys. Draining a
// drained endpoint starts its window again.
func (u *Upstream) Drain(id string, keepKeys time.Duration) error {
	if keepKeys < 0 {
		return fmt.Errorf("%w: keep-keys window %v, want >= 0", ErrBadOverride, keepKeys)
	}
	e, err := u.lockHandle(id)
	if err != nil {
		return err
	}
	now := u.nowNanos()
	o := u.overrideLocked(id)
	o.drained, o.drainedAt, o.keepUntil = true, now, 0
	if keepKeys > 0 {
		o.keepUntil = now + int64(keepKeys)
	}
	applyDrain(e, o)
	u.updateMu.Unlock()
	u.log.Info("endpoint drained", zap.String("upstream", u.name), zap.String("endpoint", id),
		zap.Duration("keep_keys", keepKeys))
	u.change(Change{Kind: ChangeDrained, Endpoint: id, Duration: keepKeys})
	u.notify()
	return nil
}

// applyDrain marks e drained as o says; the window is stored before the flag that makes
// picks read it.
func applyDrain(e *Endpoint, o *override) {
	e.drainKeep.Store(o.keepUntil)
	e.setFlags(statusDrained, 0)
}

// Undrain puts a drained endpoint back in service, warming up if Config.SlowStart is set.
// Undraining an endpoint that is not drained does nothing.
func (u *Upstream) Undrain(id string) error {
	e, err := u.lockHandle(id)
	if err != nil {
		return err
	}
	now := u.nowNanos()
	u.clearLocked(id, now, func(o *override) { o.drained, o.drainedAt, o.keepUntil = false, 0, 0 })
	old := e.setFlags(0, statusDrained)
	e.drainKeep.Store(0)
	u.updateMu.Unlock()
	if old&statusDrained == 0 {
		return nil
	}
	u.startWarming(e, now)
	u.log.Info("endpoint undrained", zap.String("upstream", u.name), zap.String("endpoint", id))
	u.change(Change{Kind: ChangeUndrained, Endpoint: id})
	u.notify()
	return nil
}

// Eject ejects endpoint id for d, as outlier detection would (panic mode may still route to
// it), with reason "admin". It is never refused by the ejection budget, but counts against it
// while it lasts. Ejecting an ejected endpoint sets its ejection to end d from now.
func (u *Upstream) Eject(id string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%w: ejection time %v, want > 0", ErrBadOverride, d)
	}
	e, err := u.lockHandle(id)
	if err != nil {
		return err
	}
	until := u.nowNanos() + int64(d)
	u.overrideLocked(id).ejectUntil = until
	u.reportReturn(e) // a return not reported yet comes before this ejection
	forceEject(e, until)
	u.updateMu.Unlock()
	u.log.Warn("endpoint ejected", zap.String("upstream", u.name), zap.String("endpoint", id),
		zap.String("reason", reasonAdmin), zap.Duration("duration", d))
	u.events.Ejected(u.name, e, reasonAdmin, d)
	u.change(Change{Kind: ChangeEjected, Endpoint: id, Reason: reasonAdmin, Duration: d})
	u.notify()
	return nil
}

// forceEject ejects e until until, whatever the budget.
func forceEject(e *Endpoint, until int64) {
	e.ejectMu.Lock()
	defer e.ejectMu.Unlock()
	e.ejectedUntil.Store(until)
	e.ejectReason.Store(reasonCode(reasonAdmin))
	e.transition(func(old uint64) (uint64, bool) {
		if old&statusRemoved != 0 {
			return old, false
		}
		return (old | statusEjected) + statusGen, true
	})
	e.warmStart.Store(0)
}

// EndEjection returns endpoint id to service now, whoever ejected it (outlier detection or an
// operator), and forgets an operator's ejection of it.
func (u *Upstream) EndEjection(id string) error {
	e, err := u.lockHandle(id)
	if err != nil {
		return err
	}
	now := u.nowNanos()
	u.clearLocked(id, now, func(o *override) { o.ejectUntil = 0 })
	returned := false
	e.ejectMu.Lock()
	if st := e.status.Load(); st&statusEjected != 0 {
		e.ejectedUntil.Store(now)
		returned = u.unEject(e, st)
	}
	e.ejectMu.Unlock()
	u.updateMu.Unlock()
	if returned {
		u.reportReturn(e)
		u.notify()
	}
	return nil
}

// SetWeight overrides endpoint id's weight with w (1..MaxWeight) until ClearWeight, or until
// the registry gives the endpoint another weight than it has now. The hash table is rebuilt
// from the last snapshot at once, as for a registry change: only keys of the endpoints whose
// share changes move.
func (u *Upstream) SetWeight(id string, w int) error {
	if w < 1 || w > MaxWeight {
		return fmt.Errorf("%w: weight %d, want 1..%d", ErrBadOverride, w, MaxWeight)
	}
	if _, err := u.lockHandle(id); err != nil {
		return err
	}
	o := u.overrideLocked(id)
	o.weight, o.base = w, u.registryWeight(id)
	u.applyLocked(u.snap.Load(), false)
	u.updateMu.Unlock()
	u.log.Info("endpoint weight set", zap.String("upstream", u.name), zap.String("endpoint", id), zap.Int("weight", w))
	u.change(Change{Kind: ChangeWeight, Endpoint: id, Weight: w})
	return nil
}

// ClearWeight drops endpoint id's weight override, going back to the registry's weight.
func (u *Upstream) ClearWeight(id string) error {
	u.updateMu.Lock()
	o := u.overrides[id]
	if o == nil || o.weight == 0 {
		_, err := u.handleLocked(id)
		u.updateMu.Unlock()
		return err // nothing to clear
	}
	u.clearLocked(id, u.nowNanos(), func(o *override) { o.weight, o.base = 0, 0 })
	u.applyLocked(u.snap.Load(), false)
	u.updateMu.Unlock()
	u.log.Info("endpoint weight override cleared", zap.String("upstream", u.name), zap.String("endpoint", id))
	u.change(Change{Kind: ChangeWeight, Endpoint: id})
	return nil
}

// registryWeight returns the weight the last snapshot gives id (at least 1), or 1.
func (u *Upstream) registryWeight(id string) int {
	s := u.snap.Load()
	if s == nil {
		return 1
	}
	i := sort.Search(len(s.Endpoints), func(i int) bool { return s.Endpoints[i].ID >= id })
	if i < len(s.Endpoints) && s.Endpoints[i].ID == id {
		return max(s.Endpoints[i].Weight, 1)
	}
	return 1
}

// weightLocked returns the weight of endpoint id whose registry weight is reg: the operator's
// while the registry keeps reg, else reg, dropping an override the registry made stale (and
// returning its ID in dropped). updateMu is held.
func (u *Upstream) weightLocked(id string, reg int, now int64, dropped *[]string) int {
	o := u.overrides[id]
	if o == nil || o.weight == 0 {
		return reg
	}
	if o.base == reg {
		return o.weight
	}
	u.clearLocked(id, now, func(o *override) { o.weight, o.base = 0, 0 })
	*dropped = append(*dropped, id)
	return reg
}

// adoptLocked applies id's drain and ejection to e, a handle new to the upstream (a new
// endpoint, or a new address for its ID). updateMu is held; e is not yet published.
func (u *Upstream) adoptLocked(e *Endpoint, now int64) {
	o := u.overrides[e.ID]
	if o == nil {
		return
	}
	if o.drained {
		applyDrain(e, o)
	}
	if o.ejectUntil > now {
		forceEject(e, o.ejectUntil)
	}
}

// ClearOverrides drops every override of endpoint id, present or not: it is undrained, an
// operator's ejection of it ends, and its weight goes back to the registry's. It reports
// whether there was anything to clear.
func (u *Upstream) ClearOverrides(id string) (bool, error) {
	u.updateMu.Lock()
	o := u.overrides[id]
	_, present := u.handles[id]
	var ejected bool
	if o != nil {
		// Only an operator's ejection still in force is ended: once it ran out, an ejection in
		// force now is outlier detection's, for a real failure, and stays.
		ejected = o.ejectUntil > u.nowNanos()
		if !present {
			delete(u.overrides, id)
		}
	}
	u.updateMu.Unlock()
	if o == nil || !present {
		return o != nil, nil
	}
	errs := []error{u.Undrain(id), u.ClearWeight(id)}
	if ejected {
		errs = append(errs, u.EndEjection(id))
	}
	return true, errors.Join(errs...)
}

// Overrides lists the overrides in force, sorted by endpoint ID.
func (u *Upstream) Overrides() []Override {
	u.updateMu.Lock()
	defer u.updateMu.Unlock()
	now := u.nowNanos()
	out := make([]Override, 0, len(u.overrides))
	for id, o := range u.overrides {
		if o.empty(now) {
			continue
		}
		ov := Override{Endpoint: id, Drained: o.drained, Weight: o.weight, RegistryWeight: o.base}
		_, ov.Present = u.handles[id]
		if o.drained {
			ov.DrainedAt = time.Unix(0, o.drainedAt)
		}
		if o.keepUntil != 0 {
			ov.KeepKeysUntil = time.Unix(0, o.keepUntil)
		}
		if o.ejectUntil > now {
			ov.EjectedUntil = time.Unix(0, o.ejectUntil)
		}
		out = append(out, ov)
	}
	slices.SortFunc(out, func(a, b Override) int {
		if a.Endpoint < b.Endpoint {
			return -1
		}
		if a.Endpoint > b.Endpoint {
			return 1
		}
		return 0
	})
	return out
}

// CopyOverrides gives u the overrides of from, for a reload that replaces an upstream with a
// new one of the same name. Call it before u's first Update.
func (u *Upstream) CopyOverrides(from *Upstream) int {
	from.updateMu.Lock()
	now := from.nowNanos()
	copied := make(map[string]*override, len(from.overrides))
	for id, o := range from.overrides {
		if !o.empty(now) {
			c := *o
			copied[id] = &c
		}
	}
	from.updateMu.Unlock()
	u.updateMu.Lock()
	defer u.updateMu.Unlock()
	for id, o := range copied {
		u.overrides[id] = o
	}
	return len(copied)
}
