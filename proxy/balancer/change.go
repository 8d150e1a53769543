package balancer

import (
	"time"
)

// ChangeKind names what happened to an upstream, in a Change.
type ChangeKind string

// The kinds of Change.
const (
	// ChangeSnapshot: a snapshot was applied; Added and Removed list the endpoint IDs that
	// came and went, Revision is its revision.
	ChangeSnapshot ChangeKind = "snapshot"
	// ChangeEjected: the endpoint was ejected for Duration, by outlier detection (Reason
	// "consecutive_5xx", "consecutive_gateway_failure", "connect_failure_window") or by an
	// operator (Reason "admin").
	ChangeEjected ChangeKind = "ejected"
	// ChangeReturned: the endpoint's ejection is over (or an operator ended it).
	ChangeReturned ChangeKind = "returned"
	// ChangeActiveDown and ChangeActiveUp: the endpoint failed or passed active health checks
	// (Reason says how the last probe failed).
	ChangeActiveDown ChangeKind = "active_unhealthy"
	ChangeActiveUp   ChangeKind = "active_healthy"
	// ChangeDrained and ChangeUndrained: an operator drained the endpoint (Duration is its
	// keep-keys window) or undrained it.
	ChangeDrained   ChangeKind = "drained"
	ChangeUndrained ChangeKind = "undrained"
	// ChangeWeight: an operator set the endpoint's weight override to Weight, or cleared it
	// (Weight 0), or the registry changed the endpoint's weight and the override was dropped
	// (Reason "registry_changed_weight").
	ChangeWeight ChangeKind = "weight"
)

// Change is one thing that happened to an upstream, for an operator's event log.
type Change struct {
	Time     time.Time
	Upstream string
	Kind     ChangeKind
	Endpoint string // "" for ChangeSnapshot
	Reason   string
	Duration time.Duration
	Weight   int
	Revision uint64
	Added    []string
	Removed  []string
}

// change tells Options.OnChange about c, stamped with the upstream's name and clock. It is
// called off the request path only (Update, Run, an ejecting Finish, the operator methods).
func (u *Upstream) change(c Change) {
	if u.onChange == nil {
		return
	}
	c.Time, c.Upstream = u.clock(), u.name
	u.onChange(c)
}
