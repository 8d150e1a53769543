package discovery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff paces retries after failures: capped exponential backoff with full jitter, so that
// many sidecars that lost the registry at once do not come back in step. The zero value uses a
// base of 100ms, a cap of 30s, and a cap of 1s while the registry is unreachable.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
	// Unreachable caps the delay while the registry cannot be reached at all (no connection,
	// no answer): see UnreachableDelay. Zero means DefaultUnreachable.
	Unreachable time.Duration
}

// DefaultUnreachable is the zero Backoff's cap while the registry is unreachable: a sidecar
// notices a registry that is back within about a second.
const DefaultUnreachable = time.Second

// Delay returns how long to wait before retry number attempt (0 for the first retry): a random
// duration in [min(Base/2, Max), min(Max, Base·2^attempt)], so a broken registry is not
// hammered and many sidecars do not retry in step.
func (b Backoff) Delay(attempt int) time.Duration {
	base, ceiling := b.Base, b.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if ceiling <= 0 {
		ceiling = 30 * time.Second
	}
	d := base
	for i := 0; i < attempt && d < ceiling; i++ {
		if d > ceiling/2 {
			d = ceiling // doubling would pass the cap, or overflow when the cap is huge
			break
		}
		d *= 2
	}
	d = min(d, ceiling)
	floor := min(base/2, ceiling)
	return floor + rand.N(max(d-floor, 1))
}

// UnreachableDelay is Delay for a retry while the registry cannot be reached at all, capped
// at Unreachable (and at Max, if lower). Backing off up to Max protects a registry that
// answers but is struggling; one that refuses connections or does not answer is down, and a
// connection attempt costs it nothing. Capped at Max, the delay grows to half a minute over
// a long outage, and the registry's return goes unnoticed for that long: after a Consul agent
// restart, an instance that died meanwhile stayed in the ring 16s longer. Jitter still keeps
// many sidecars out of step.
func (b Backoff) UnreachableDelay(attempt int) time.Duration {
	ceiling := b.Unreachable
	if ceiling <= 0 {
		ceiling = DefaultUnreachable
	}
	if b.Max <= 0 || b.Max > ceiling {
		b.Max = ceiling
	}
	return b.Delay(attempt)
}

// Sleep waits for d or until ctx ends, whichever is first; it returns ctx.Err() in the second
// case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// LogLimiter decides when a repeating error is worth a log line: the first time for a key,
// then at most once per interval, telling how many were suppressed meanwhile. An unreachable
// registry is then logged once, not once per retry. Safe for concurrent use. The zero value
// allows every call; NewLogLimiter sets the interval.
type LogLimiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*logState
}

type logState struct {
	last       time.Time
	suppressed int
}

// NewLogLimiter returns a limiter that allows one line per key per interval every.
func NewLogLimiter(every time.Duration) *LogLimiter {
	return &LogLimiter{every: every, now: time.Now, keys: make(map[string]*logState)}
}

// Allow reports whether to log now for key, and how many calls for key were suppressed since
// the last allowed one.
func (l *LogLimiter) Allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil { // the zero value logs every time (every = 0)
		l.keys = make(map[string]*logState)
	}
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	st := l.keys[key]
	if st == nil {
		l.keys[key] = &logState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.every {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// Reset forgets key, so that the next failure after a recovery is logged at once.
func (l *LogLimiter) Reset(key string) {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
}

// Retries counts the consecutive failures of one retry loop and picks the delay before each
// next try: UnreachableDelay while the registry cannot be reached, Delay while it answers
// with errors. Delay counts only the failures since the registry last answered, so that a
// registry just back from an outage that answers with errors while it starts up (no leader
// yet, 500s) is retried from Base, not after the delay the outage's failures would have grown
// the backoff to. The zero value is ready to use; it is not safe for concurrent use.
type Retries struct {
	Backoff Backoff

	failures int // consecutive failures
	answered int // of which the last ones in a row were answers from the registry
}

// Failed records a failure and returns how long to wait before the next try. unreachable
// reports that the registry could not be reached or did not answer at all.
func (r *Retries) Failed(unreachable bool) time.Duration {
	r.failures++
	if unreachable {
		r.answered = 0
		return r.Backoff.UnreachableDelay(r.failures - 1)
	}
	r.answered++
	return r.Backoff.Delay(r.answered - 1)
}

// Succeeded records a success: the next failure is the first again.
func (r *Retries) Succeeded() { r.failures, r.answered = 0, 0 }

// Failures returns the number of consecutive failures.
func (r *Retries) Failures() int { return r.failures }
