package proxy

import (
	"context"
	"sync"
	"time"
)

// aborter is a long-lived exchange that outlives its handler call: a streamed response body
// or an upgraded tunnel. abort breaks it off by closing its connections. The tracker calls it
// under its lock, only while the aborter is tracked, so an aborter that has been removed is
// never aborted; abort must not block and must be safe to call concurrently with the exchange.
type aborter interface {
	abort()
}

// tracker keeps the streams and tunnels in progress, so that a shutdown can wait for them and
// then break off the ones that do not end in time. fasthttp's Server.Shutdown waits for
// streamed responses but not for hijacked (upgraded) connections, and it cannot interrupt
// either. Safe for concurrent use.
type tracker struct {
	mu       sync.Mutex
	active   map[aborter]struct{}
	draining bool
	idle     chan struct{} // closed when draining and nothing is active
}

func (t *tracker) add(a aborter) {
	t.mu.Lock()
	if t.active == nil {
		t.active = make(map[aborter]struct{})
	}
	t.active[a] = struct{}{}
	t.mu.Unlock()
}

func (t *tracker) remove(a aborter) {
	t.mu.Lock()
	delete(t.active, a)
	if t.draining && len(t.active) == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
}

func (t *tracker) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active)
}

// abortGrace is how long drain waits, after breaking off what was left, for it to unwind.
const abortGrace = 5 * time.Second

// drain marks the tracker draining, waits until nothing is active or ctx ends; in the second
// case it aborts everything still active, waits up to abortGrace for it to unwind and returns
// ctx.Err().
func (t *tracker) drain(ctx context.Context) error {
	t.mu.Lock()
	t.draining = true
	if len(t.active) == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()

	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	for a := range t.active {
		a.abort()
	}
	t.mu.Unlock()
	timer := time.NewTimer(abortGrace)
	defer timer.Stop()
	select {
	case <-idle:
	case <-timer.C:
	}
	return ctx.Err()
}
