package main

import (
	"fmt"
	"sync"
	"time"
)

// HTTP/1.1 has no request ids on the wire. Bytes a backend sends beyond its response while
// the proxy is already sending the next request on that connection cannot be told from the
// answer to that request, by any proxy: the proxy checked the connection was clean, then
// wrote, and the extra bytes were in flight. What a proxy can and must do is refuse to
// reuse a connection on which anything arrived while it sat idle.
//
// So a wrong answer to a request that reached the backend (by the kernel's receive stamp)
// within a window of extra bytes sent on the same connection is counted apart, as
// "crossed": the extra bytes and the request crossed on the wire. From then on that
// connection, if the proxy keeps it, is one answer behind, so each later answer on it is
// extra bytes from the proxy's side, and the same rule applies to the request after it. The
// backend sends delayed extra bytes only on a connection that has been idle for a moment
// (sendExtra), so a correct proxy meets them in its pool, and a proxy that reuses dirty
// connections shows up in the wrong answers that did not cross.
//
// The window covers the time between a proxy's check of a pooled connection and its write
// of the next request, which a busy machine can stretch by descheduling the proxy's thread.
// defaultCrossWindow suits a machine with idle cores; on a loaded one, widen it (-cross-window).
const defaultCrossWindow = 10 * time.Millisecond

// crossings is the set of request ids that reached a backend within window after extra
// bytes on their connection. Safe for concurrent use.
type crossings struct {
	window time.Duration

	mu  sync.Mutex
	ids map[string]bool
	gap map[string]time.Duration // every request that followed extra bytes: how long after
}

func newCrossings(window time.Duration) *crossings {
	return &crossings{window: window, ids: make(map[string]bool), gap: make(map[string]time.Duration)}
}

// observe notes that request id arrived on a connection `since` after extra bytes went out,
// and reports whether they crossed.
func (c *crossings) observe(id string, since time.Duration) bool {
	if id == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gap[id] = since
	if since >= c.window {
		return false
	}
	c.ids[id] = true
	return true
}

// explain says how request id met extra bytes at the backend, for a wrong answer's report.
func (c *crossings) explain(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.gap[id]; ok {
		return fmt.Sprintf("it reached the backend %v after extra bytes on its connection", g.Round(10*time.Microsecond))
	}
	return "it did not follow extra bytes on its connection at the backend"
}

func (c *crossings) crossed(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}
