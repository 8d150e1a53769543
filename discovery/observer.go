package discovery

import "time"

// Observer is told about the health of a source, for metrics. Implementations must be safe for
// concurrent use and must not block: sources call them from their watch goroutines.
type Observer interface {
	// Synced reports a successful read from the registry, whether or not anything changed.
	// While no Failed follows, the snapshot is current (a blocking query may sit for minutes
	// between two Synced); after a Failed, the time since the last Synced is how stale it may be.
	Synced(service string, at time.Time)
	// Failed reports a failed read or watch; the source backs off and retries.
	Failed(service string, err error)
	// Malformed reports one registry entry skipped because it could not be used.
	Malformed(service, entry string, err error)
}

// NopObserver is an Observer that does nothing.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Synced does nothing.
func (NopObserver) Synced(string, time.Time) {}

// Failed does nothing.
func (NopObserver) Failed(string, error) {}

// Malformed does nothing.
func (NopObserver) Malformed(string, string, error) {}
