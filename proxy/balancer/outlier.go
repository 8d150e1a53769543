package balancer

import (
	"strconv"
	"time"

	"go.uber.org/zap"
)

// FailureKind says how an attempt failed without an HTTP response.
type FailureKind uint8

// The failure kinds.
const (
	// FailNone: the attempt got a response (whatever its status), or gave up for a reason
	// that says nothing about the endpoint.
	FailNone FailureKind = iota
	// FailConnect: the connection could not be made; the request never reached the endpoint.
	FailConnect
	// FailTimeout: the endpoint did not answer in time.
	FailTimeout
	// FailReset: the connection broke before a complete response.
	FailReset
)

// String returns "none", "connect", "timeout" or "reset".
func (f FailureKind) String() string {
	switch f {
	case FailNone:
		return "none"
	case FailConnect:
		return "connect"
	case FailTimeout:
		return "timeout"
	case FailReset:
		return "reset"
	}
	return "failure(" + strconv.Itoa(int(f)) + ")"
}

// failureBase is added to a FailureKind in Endpoint.lastFailWhat, apart from statuses.
const failureBase = 1000

// Outcome is the result of one attempt, fed back to passive outlier detection.
type Outcome struct {
	// Status is the HTTP status of the response, 0 when there was none.
	Status int
	// Failure is how the attempt failed without a response; FailNone otherwise.
	Failure FailureKind
	// Latency is the time from Start to the response (or the failure).
	Latency time.Duration
}

// The reasons of an ejection, in logs and Events.Ejected.
const (
	reason5xx            = "consecutive_5xx"
	reasonGatewayFailure = "consecutive_gateway_failure"
	reasonConnectWindow  = "connect_failure_window"
)

// reasonCodes are the reasons of ejections by their code in Endpoint.ejectReason.
var reasonCodes = [...]string{"", reason5xx, reasonGatewayFailure, reasonConnectWindow, reasonAdmin}

// reasonCode returns the code of an ejection reason.
func reasonCode(r string) uint32 {
	for i, s := range reasonCodes {
		if s == r {
			return uint32(i)
		}
	}
	return 0
}

// Finish records the end of an attempt that Start began and feeds its outcome to passive
// outlier detection: a failure counts toward ejection (see OutlierConfig), a response below
// 500 resets the counts, and an outcome with neither a status nor a failure (the client gave
// up) counts for nothing. When a count reaches its threshold and the upstream's ejection
// budget allows, e is ejected: logged, and reported to Events.Ejected and StateChanged, from
// the calling goroutine. Finish does not allocate, and takes a lock only to eject.
func (e *Endpoint) Finish(o Outcome) {
	e.inflight.Add(-1)
	u := e.up
	if u.bounded {
		u.inflight.Add(-1)
	}
	if reason := u.observe(e, o); reason != "" {
		u.eject(e, reason)
	}
}

// observe updates e's failure counts with o and returns the reason to eject e, if any.
func (u *Upstream) observe(e *Endpoint, o Outcome) string {
	oc := &u.cfg.Outlier
	if o.Failure == FailNone && o.Status < 500 {
		if o.Status > 0 {
			resetCounts(e)
		}
		return ""
	}
	// A failure: remember it for the admin API. Successes never get here.
	e.lastFailAt.Store(u.nowNanos())
	if o.Failure != FailNone {
		e.lastFailWhat.Store(failureBase + uint32(o.Failure))
	} else {
		e.lastFailWhat.Store(uint32(o.Status))
	}
	reason := ""
	if oc.Consecutive5xx > 0 && e.consec5xx.Add(1) >= int32(oc.Consecutive5xx) {
		reason = reason5xx
	}
	if o.Failure != FailNone || o.Status == 502 || o.Status == 503 || o.Status == 504 {
		if oc.ConsecutiveGatewayFailure > 0 && e.consecGateway.Add(1) >= int32(oc.ConsecutiveGatewayFailure) {
			reason = reasonGatewayFailure
		}
	} else if e.consecGateway.Load() != 0 {
		e.consecGateway.Store(0)
	}
	if o.Failure == FailConnect && oc.ConnectFailureWindow > 0 {
		now := max(u.nowNanos(), 1)
		if began := e.connectStreak.Load(); began == 0 {
			e.connectStreak.CompareAndSwap(0, now)
		} else if time.Duration(now-began) >= oc.ConnectFailureWindow && reason == "" {
			reason = reasonConnectWindow
		}
	} else if e.connectStreak.Load() != 0 {
		e.connectStreak.Store(0)
	}
	return reason
}

// resetCounts zeroes e's failure counts, writing only those that are not zero already, so
// that successes do not bounce the cache line between cores.
func resetCounts(e *Endpoint) {
	if e.consec5xx.Load() != 0 {
		e.consec5xx.Store(0)
	}
	if e.consecGateway.Load() != 0 {
		e.consecGateway.Store(0)
	}
	if e.connectStreak.Load() != 0 {
		e.connectStreak.Store(0)
	}
}

// eject ejects e for reason, unless it is ejected already, gone or critical, or the ejection
// budget (OutlierConfig.MaxEjectionPercent) is spent.
func (u *Upstream) eject(e *Endpoint, reason string) {
	if e.status.Load()&(statusEjected|statusRoutable) != statusRoutable {
		return
	}
	d, ok := u.tryEject(e)
	if !ok {
		return
	}
	// A return that a request noticed and Run has not reported yet: report it first, so that
	// the endpoint's log lines and events keep their order (unless Run is reporting it at
	// this very moment).
	e.ejectReason.Store(reasonCode(reason))
	u.reportReturn(e)
	u.log.Warn("endpoint ejected", zap.String("upstream", u.name), zap.String("endpoint", e.ID),
		zap.String("reason", reason), zap.Duration("duration", d))
	u.events.Ejected(u.name, e, reason, d)
	u.change(Change{Kind: ChangeEjected, Endpoint: e.ID, Reason: reason, Duration: d})
	u.notify()
}

// tryEject does eject's work under e's ejection lock and returns the ejection's length.
func (u *Upstream) tryEject(e *Endpoint) (time.Duration, bool) {
	e.ejectMu.Lock()
	defer e.ejectMu.Unlock()
	if e.status.Load()&(statusEjected|statusRoutable) != statusRoutable {
		return 0, false
	}
	now := u.nowNanos()
	if !u.reserveEjection(now) {
		return 0, false
	}
	defer u.ejected.Add(-1) // the reservation; the transition below counts the ejection itself

	oc := &u.cfg.Outlier
	if last := e.lastReturned.Load(); last != 0 && time.Duration(now-last) >= oc.MaxEjectionTime {
		e.timesEjected.Store(0) // long enough in service: start again from one
	}
	// Past the count at which the ejection reaches its cap, counting on could only overflow.
	capped := int32(min(oc.MaxEjectionTime/oc.BaseEjectionTime+1, 1<<20))
	times := min(e.timesEjected.Load()+1, capped)
	d := min(oc.BaseEjectionTime*time.Duration(times), oc.MaxEjectionTime)
	e.ejectedUntil.Store(now + int64(d))
	_, ok := e.transition(func(old uint64) (uint64, bool) {
		if old&(statusEjected|statusRoutable) != statusRoutable {
			return old, false
		}
		return (old | statusEjected) + statusGen, true
	})
	if !ok {
		return 0, false
	}
	e.timesEjected.Store(times)
	resetCounts(e)
	e.warmStart.Store(0)
	return d, true
}

// budgetSweepEvery is how often a spent ejection budget may trigger a sweep.
const budgetSweepEvery = 100 * time.Millisecond

// reserveEjection takes one unit of the ejection budget, returning expired ejections first if
// the budget looks spent. The caller gives the unit back once the ejection is counted.
func (u *Upstream) reserveEjection(now int64) bool {
	s := u.state.Load()
	if s == nil {
		return false
	}
	swept := false
	for {
		n := u.ejected.Load()
		if n < s.maxEjected {
			if u.ejected.CompareAndSwap(n, n+1) {
				return true
			}
			continue
		}
		// Failures of an endpoint the budget keeps in service come here one after another:
		// sweep for them at most every budgetSweepEvery.
		next := u.budgetSweep.Load()
		if swept || now < next || !u.budgetSweep.CompareAndSwap(next, now+int64(budgetSweepEvery)) {
			return false
		}
		u.sweepAt(now)
		swept = true
	}
}

// ejectionOver reports whether e's ejection is over at time now.
func (u *Upstream) ejectionOver(e *Endpoint, now int64) bool {
	return now >= e.ejectedUntil.Load()
}

// unEject returns e, seen ejected with status st, to service, unless someone else did it
// first. It reports whether it did. It takes no lock and calls nothing, so that a request
// (Pick.Next) may run it: it flips the status with a compare-and-swap, counts the return as
// unreported, and signals Run, whose goroutine logs it and tells Events (reportReturns).
func (u *Upstream) unEject(e *Endpoint, st uint64) bool {
	_, ok := e.transition(func(old uint64) (uint64, bool) {
		if old&statusEjected == 0 || old&^statusFlags != st&^statusFlags {
			return old, false // returned already, or ejected again since st was read
		}
		return old &^ statusEjected, true
	})
	if !ok {
		return false
	}
	// The ejection ended at its deadline, whenever it was noticed: date the return (and the
	// slow start) from then, as State already does.
	until := e.ejectedUntil.Load()
	e.lastReturned.Store(until)
	resetCounts(e)
	u.startWarming(e, until)
	e.unreported.Add(1)
	select {
	case u.returned <- struct{}{}:
	default: // Run has a signal pending already
	}
	return true
}

// reportReturns logs the returns from ejection of eps that were not reported yet and tells
// Events.Returned about each; it returns how many there were, for the caller to follow with
// one notify. It reads every handle of eps: it is for Run and Update, not the request path.
func (u *Upstream) reportReturns(eps []*Endpoint) int {
	n := 0
	for _, e := range eps {
		n += u.reportReturn(e)
	}
	return n
}

// reportReturn logs e's unreported returns and tells Events.Returned about each; it returns
// how many there were.
func (u *Upstream) reportReturn(e *Endpoint) int {
	if e.unreported.Load() == 0 {
		return 0 // the common case: a load, not a write to every handle
	}
	n := int(e.unreported.Swap(0))
	for range n {
		u.log.Info("endpoint returned", zap.String("upstream", u.name), zap.String("endpoint", e.ID))
		u.events.Returned(u.name, e)
		u.change(Change{Kind: ChangeReturned, Endpoint: e.ID})
	}
	return n
}

// sweep returns every endpoint whose ejection is over, whether or not a request looked at it.
// Like a request, it leaves reporting the returns to Run (reportReturns).
func (u *Upstream) sweep() { u.sweepAt(u.nowNanos()) }

func (u *Upstream) sweepAt(now int64) {
	s := u.state.Load()
	if s == nil {
		return
	}
	for _, e := range s.all {
		if st := e.status.Load(); st&statusEjected != 0 && u.ejectionOver(e, now) {
			u.unEject(e, st)
		}
	}
}
