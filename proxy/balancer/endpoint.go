package balancer

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// EndpointState is the routing state of an endpoint, as State reports it.
type EndpointState uint8

// The states, in the order State checks them: an endpoint both critical and ejected is
// Critical.
const (
	// Healthy endpoints take their full share of traffic.
	Healthy EndpointState = iota
	// Warming endpoints are in their slow-start window and take a growing share.
	Warming
	// Ejected endpoints failed passive outlier detection and take no traffic (unless the
	// upstream is in panic mode) until their ejection time is up.
	Ejected
	// ActiveUnhealthy endpoints failed active health checks and take no traffic (unless the
	// upstream is in panic mode) until they pass again.
	ActiveUnhealthy
	// Critical endpoints are critical in the registry and take no traffic at all.
	Critical
	// Drained endpoints were drained by an operator (Upstream.Drain): they take no new keys,
	// whatever their health, and panic mode does not bring them back. It is reported before
	// Ejected, ActiveUnhealthy and Warming, after Critical.
	Drained
)

// String returns "healthy", "warming", "ejected", "active_unhealthy", "critical" or "drained".
func (s EndpointState) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Warming:
		return "warming"
	case Ejected:
		return "ejected"
	case ActiveUnhealthy:
		return "active_unhealthy"
	case Critical:
		return "critical"
	case Drained:
		return "drained"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Endpoint is the handle of one endpoint of an upstream. There is one handle per endpoint ID,
// and it survives snapshot swaps for as long as the ID stays in the upstream's snapshots with
// the same address, keeping its ejection, failure counters, active-check results, in-flight
// count and Data. A new address makes a new handle.
//
// Its methods are safe for concurrent use. An Endpoint must not be copied: it holds atomics
// and a mutex, and only pointers handed out by the Upstream are live.
type Endpoint struct {
	// ID, Address and Zone come from the discovery.Endpoint; they never change.
	ID, Address, Zone string
	// Data is what Options.OnEndpoint returned for this handle. It is set before the handle is
	// first published and is read-only afterwards.
	Data any

	up   *Upstream
	seed uint64 // hash of ID: the per-endpoint part of a key's slow-start draw

	// inflight sits alone on its cache line: every attempt writes it, while every pick
	// reads status.
	inflight atomic.Int64
	_        [56]byte

	// status holds the flag bits below and, above them, an ejection generation that makes a
	// stale compare-and-swap of a returning endpoint fail (no ABA).
	status atomic.Uint64
	// weight is the endpoint's weight in the current snapshot, for Endpoints() readers; the
	// hot path reads the state's copy.
	weight atomic.Int64
	// regWeight is the weight the registry gives e (weight differs while an operator
	// overrides it).
	regWeight atomic.Int64

	// Passive outlier detection (outlier.go).
	consec5xx     atomic.Int32
	consecGateway atomic.Int32
	connectStreak atomic.Int64 // when the current run of connect failures began, UnixNano; 0 = none
	ejectedUntil  atomic.Int64 // UnixNano; meaningful while statusEjected is set
	timesEjected  atomic.Int32
	lastReturned  atomic.Int64 // UnixNano of the last return from ejection; 0 = never ejected
	unreported    atomic.Int32 // returns from ejection not yet logged and told to Events
	ejectMu       sync.Mutex   // serialises ejections of this endpoint; never taken by a pick

	// Slow start (slowstart.go): when the current warm-up began, UnixNano; 0 = not warming.
	warmStart atomic.Int64

	// Operator overrides (override.go): while statusDrained is set, the keys whose home is e
	// keep going to it until drainKeep (UnixNano; 0 = none). ejectReason is the reason code
	// of the last ejection (reasonCodes).
	drainKeep   atomic.Int64
	ejectReason atomic.Uint32

	// The last failed attempt (outlier.go): when, UnixNano, and what (its status, or
	// 1000 + its FailureKind). Written only when an attempt fails.
	lastFailAt   atomic.Int64
	lastFailWhat atomic.Uint32

	// Active checks (active.go): consecutive probe results. Written by one probe at a time.
	probeOK   atomic.Int32
	probeFail atomic.Int32
}

// The bits of Endpoint.status.
const (
	statusRoutable   uint64 = 1 << iota // in the current table: present and not critical
	statusCritical                      // critical in the registry
	statusRemoved                       // gone from the snapshots; the handle is dead
	statusEjected                       // ejected by outlier detection
	statusActiveDown                    // failing active health checks
	statusDrained                       // drained by an operator

	statusFlags = 1<<8 - 1
	statusGen   = 1 << 8 // one ejection generation
)

// InFlight returns the number of attempts started on e and not yet finished.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Weight returns e's weight in the current table: the last snapshot's, or an operator's
// override (Upstream.SetWeight).
func (e *Endpoint) Weight() int { return int(e.weight.Load()) }

// State returns e's routing state now. An ejection that is over counts as over, even before
// a request or Run's sweep notices it. A handle that has left the upstream reports Critical.
func (e *Endpoint) State() EndpointState {
	st, u := e.status.Load(), e.up
	now := u.nowNanos()
	switch {
	case st&(statusCritical|statusRemoved) != 0:
		return Critical
	case st&statusDrained != 0:
		return Drained
	case st&statusEjected != 0:
		// Ejected, or over its ejection and waiting for a request or the sweep to notice.
		if until := e.ejectedUntil.Load(); now < until {
			return Ejected
		} else if st&statusActiveDown == 0 && u.cfg.SlowStart > 0 && time.Duration(now-until) < u.cfg.SlowStart {
			return Warming
		}
	}
	switch {
	case st&statusActiveDown != 0:
		return ActiveUnhealthy
	case u.warmFraction(e, now) < 1:
		return Warming
	}
	return Healthy
}

// Start records the beginning of an attempt on e. Call it once per attempt, before sending,
// and Finish once when the attempt ends.
func (e *Endpoint) Start() {
	e.inflight.Add(1)
	if e.up.bounded {
		e.up.inflight.Add(1)
	}
}

// down returns what a status adds to Upstream.down: 1 for a routable endpoint ejected or
// failing active checks (which counts against the healthy endpoints of panic mode), or
// drainedUnit for a drained one (which panic mode leaves out of its count altogether).
func down(st uint64) int64 {
	switch {
	case st&statusRoutable == 0:
		return 0
	case st&statusDrained != 0:
		return drainedUnit
	case st&(statusEjected|statusActiveDown) != 0:
		return 1
	}
	return 0
}

// drainedUnit is one drained endpoint in Upstream.down, whose low 32 bits count the endpoints
// down and high 32 bits the drained ones: Begin reads both with one load.
const drainedUnit = 1 << 32

// ejected reports whether a status counts against the upstream's ejection budget.
func ejected(st uint64) int32 {
	if st&statusRoutable != 0 && st&statusEjected != 0 {
		return 1
	}
	return 0
}

// transition changes e's status with f, retrying on contention, and keeps the upstream's
// counters of down and ejected endpoints in step with every change. f returns the new status,
// or false to leave it alone. transition returns the status it replaced and whether it did.
func (e *Endpoint) transition(f func(old uint64) (uint64, bool)) (uint64, bool) {
	for {
		old := e.status.Load()
		st, ok := f(old)
		if !ok {
			return old, false
		}
		if e.status.CompareAndSwap(old, st) {
			if d := down(st) - down(old); d != 0 {
				e.up.down.Add(d)
			}
			if d := ejected(st) - ejected(old); d != 0 {
				e.up.ejected.Add(d)
			}
			return old, true
		}
	}
}

// setFlags sets and clears flag bits of e's status.
func (e *Endpoint) setFlags(set, clear uint64) (old uint64) {
	old, _ = e.transition(func(old uint64) (uint64, bool) {
		return old&^clear | set, true
	})
	return old
}

// Status is everything an operator may want to know about an endpoint, read at one moment
// (each field atomically, not all together).
type Status struct {
	State EndpointState
	// The flags behind State: an endpoint may be drained and ejected at once.
	Critical, Drained, Ejected, ActiveUnhealthy bool
	// EjectReason and EjectedUntil describe the current ejection; TimesEjected counts the
	// ejections in a row that set its length.
	EjectReason  string
	EjectedUntil time.Time
	TimesEjected int
	// DrainKeepKeysUntil is the end of a drain's keep-keys window; zero if none.
	DrainKeepKeysUntil time.Time
	// WarmFraction is the share of its traffic a warming endpoint takes; 1 otherwise.
	WarmFraction float64
	InFlight     int64
	// Weight is the endpoint's weight in the table; RegistryWeight the registry's, which
	// differs while an operator overrides it.
	Weight, RegistryWeight int
	// LastFailure is when the last attempt on it failed (zero if none has), and
	// LastFailureWhat how: "status 503", "connect", "timeout", "reset".
	LastFailure     time.Time
	LastFailureWhat string
}

// Status returns e's status now. It is for the admin API, not the request path.
func (e *Endpoint) Status() Status {
	u, st := e.up, e.status.Load()
	s := Status{
		State:           e.State(),
		Critical:        st&(statusCritical|statusRemoved) != 0,
		Drained:         st&statusDrained != 0,
		ActiveUnhealthy: st&statusActiveDown != 0,
		WarmFraction:    u.warmFraction(e, u.nowNanos()),
		InFlight:        e.inflight.Load(),
		Weight:          e.Weight(),
		RegistryWeight:  int(e.regWeight.Load()),
	}
	if st&statusEjected != 0 {
		if until := e.ejectedUntil.Load(); u.nowNanos() < until {
			s.Ejected, s.EjectedUntil = true, time.Unix(0, until)
			if c := e.ejectReason.Load(); int(c) < len(reasonCodes) {
				s.EjectReason = reasonCodes[c]
			}
		}
	}
	s.TimesEjected = int(e.timesEjected.Load())
	if k := e.drainKeep.Load(); k > u.nowNanos() && s.Drained { // a window that ran out is not shown
		s.DrainKeepKeysUntil = time.Unix(0, k)
	}
	if at := e.lastFailAt.Load(); at != 0 {
		s.LastFailure = time.Unix(0, at)
		if w := e.lastFailWhat.Load(); w >= failureBase {
			s.LastFailureWhat = FailureKind(w - failureBase).String()
		} else {
			s.LastFailureWhat = "status " + strconv.Itoa(int(w))
		}
	}
	return s
}
