package balancer

import "time"

// Events is told about the endpoints of upstreams, for metrics. Its methods are called
// synchronously from Update's goroutine, Run's, or a request's that ejects an endpoint
// (Endpoint.Finish); never from Pick.Next, which returns an endpoint whose ejection is over
// without telling anyone: Run reports that return (see Upstream.Run). They may be called
// concurrently and must be safe for that; they must be quick and must not block, and must not
// call Update, Pick.Next or Endpoint.Finish (the Endpoint and Upstream accessors are fine).
type Events interface {
	// Ejected: outlier detection ejected ep for d; reason is "consecutive_5xx",
	// "consecutive_gateway_failure" or "connect_failure_window".
	Ejected(upstream string, ep *Endpoint, reason string, d time.Duration)
	// Returned: ep's ejection is over and it is back in service. It may come a moment after
	// the return itself: Upstream.Run reports the returns that requests notice.
	Returned(upstream string, ep *Endpoint)
	// StateChanged gives the number of endpoints in each state after a change: an Update, an
	// ejection, a return, an active-check verdict. Calls are serialised, and the counts of each
	// are taken inside it, so the last call tells the latest state. (Warming endpoints become
	// healthy as time passes, with no call: read Upstream.StateCounts for the exact numbers.)
	StateChanged(upstream string, counts StateCounts)
}

// NopEvents is an Events that does nothing.
type NopEvents struct{}

// Interface guard.
var _ Events = NopEvents{}

// Ejected does nothing.
func (NopEvents) Ejected(string, *Endpoint, string, time.Duration) {}

// Returned does nothing.
func (NopEvents) Returned(string, *Endpoint) {}

// StateChanged does nothing.
func (NopEvents) StateChanged(string, StateCounts) {}

// StateCounts is the number of an upstream's endpoints in each EndpointState.
type StateCounts struct {
	Healthy, Warming, Ejected, ActiveUnhealthy, Critical, Drained int
}

// Total returns the number of endpoints.
func (c StateCounts) Total() int {
	return c.Healthy + c.Warming + c.Ejected + c.ActiveUnhealthy + c.Critical + c.Drained
}

// StateCounts returns the number of the upstream's endpoints in each state now. It reads
// every handle: it is for metrics, not for the request path.
func (u *Upstream) StateCounts() StateCounts {
	var c StateCounts
	s := u.state.Load()
	if s == nil {
		return c
	}
	for _, e := range s.all {
		switch e.State() {
		case Healthy:
			c.Healthy++
		case Warming:
			c.Warming++
		case Ejected:
			c.Ejected++
		case ActiveUnhealthy:
			c.ActiveUnhealthy++
		case Critical:
			c.Critical++
		case Drained:
			c.Drained++
		}
	}
	return c
}

// Panicking reports whether the upstream is in panic mode now: so few of its endpoints are
// healthy (Config.PanicThreshold) that ejection and active health are ignored.
func (u *Upstream) Panicking() bool {
	s := u.state.Load()
	return s != nil && s.panicking(u.down.Load())
}

// notify tells Events.StateChanged the current counts.
func (u *Upstream) notify() {
	u.notifyMu.Lock()
	defer u.notifyMu.Unlock()
	u.events.StateChanged(u.name, u.StateCounts())
}
