package admin

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// DefaultEventLogSize is how many events an EventLog keeps by default.
const DefaultEventLogSize = 1000

// Event is one entry of the event log, as GET /v1/events answers it.
type Event struct {
	// Seq numbers events from 1, in the order they were recorded; ?since= takes one.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is "snapshot", "ejected", "returned", "active_unhealthy", "active_healthy",
	// "drained", "undrained", "weight" (from the balancers), "reload", "service_edit".
	Kind     string `json:"kind"`
	Upstream string `json:"upstream,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	// Reason is why an endpoint was ejected ("consecutive_5xx", "admin", ...), how it
	// failed its active check, or what a reload did with the overrides.
	Reason string `json:"reason,omitempty"`
	// DurationSeconds: an ejection's length, a drain's keep-keys window.
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	// Weight: a weight override set (0 when cleared or dropped).
	Weight int `json:"weight,omitempty"`
	// Revision, Added, Removed: a snapshot's revision and the endpoint IDs that came and went.
	Revision uint64   `json:"revision,omitempty"`
	Added    []string `json:"added,omitempty"`
	Removed  []string `json:"removed,omitempty"`
}

// EventLog is a bounded in-memory log of what changed, newest kept. It is safe for
// concurrent use; Record takes a short lock and never blocks on anything else, so the
// balancers may call it (balancer.Options.OnChange) from any goroutine but a request's pick.
type EventLog struct {
	mu   sync.Mutex
	ring []Event // ring[(next-1) % len] is the newest
	seq  uint64  // the last Seq given
}

// NewEventLog returns a log keeping the last size events (DefaultEventLogSize if size <= 0).
func NewEventLog(size int) *EventLog {
	if size <= 0 {
		size = DefaultEventLogSize
	}
	return &EventLog{ring: make([]Event, 0, size)}
}

// Record adds e to the log, numbering it; a zero Time is set to now.
func (l *EventLog) Record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	if len(l.ring) < cap(l.ring) {
		l.ring = append(l.ring, e)
		return
	}
	l.ring[(l.seq-1)%uint64(cap(l.ring))] = e
}

// RecordChange records a balancer's Change: the balancer.Options.OnChange of every upstream.
func (l *EventLog) RecordChange(c balancer.Change) {
	l.Record(Event{
		Time:            c.Time,
		Kind:            string(c.Kind),
		Upstream:        c.Upstream,
		Endpoint:        c.Endpoint,
		Reason:          c.Reason,
		DurationSeconds: c.Duration.Seconds(),
		Weight:          c.Weight,
		Revision:        c.Revision,
		Added:           c.Added,
		Removed:         c.Removed,
	})
}

// Since returns the events with a Seq above since, newest first, at most limit of them
// (all if limit <= 0), and the last Seq given.
func (l *EventLog) Since(since uint64, limit int) ([]Event, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Event{}
	for s := l.seq; s > since && s > l.seq-uint64(len(l.ring)); s-- {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, l.ring[(s-1)%uint64(cap(l.ring))])
	}
	return out, l.seq
}

// SinceTime is Since for the events recorded after t.
func (l *EventLog) SinceTime(t time.Time, limit int) ([]Event, uint64) {
	all, last := l.Since(0, 0)
	out := []Event{}
	for _, e := range all {
		if !e.Time.After(t) || (limit > 0 && len(out) == limit) {
			break
		}
		out = append(out, e)
	}
	return out, last
}

// EventsView is GET /v1/events.
type EventsView struct {
	// Events are newest first.
	Events []Event `json:"events"`
	// Latest is the Seq of the newest event recorded (0 if none): pass it as ?since= to get
	// only what comes next.
	Latest uint64 `json:"latest"`
}

// getEvents answers GET /v1/events?since=SEQ|RFC3339&limit=N.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad limit "+quote(l), "a whole number >= 1")
			return
		}
		limit = n
	}
	var out EventsView
	since := q.Get("since")
	switch {
	case since == "":
		out.Events, out.Latest = s.opts.Events.Since(0, limit)
	case strings.ContainsAny(since, "T:-"):
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad since "+quote(since), "an event seq (e.g. 42) or an RFC 3339 time (e.g. 2026-12-04T17:00:00Z)")
			return
		}
		out.Events, out.Latest = s.opts.Events.SinceTime(t, limit)
	default:
		n, err := strconv.ParseUint(since, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad since "+quote(since), "an event seq (e.g. 42) or an RFC 3339 time (e.g. 2026-12-04T17:00:00Z)")
			return
		}
		out.Events, out.Latest = s.opts.Events.Since(n, limit)
	}
	writeJSON(w, http.StatusOK, out)
}
