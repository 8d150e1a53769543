package discovery

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// delivery is one snapshot a pacer delivered, and when.
type delivery struct {
	snap *Snapshot
	at   time.Time
}

// pacerRig runs a Pacer until the test ends and records what it delivers.
type pacerRig struct {
	p *Pacer

	mu   sync.Mutex
	got  []delivery
	more chan struct{} // closed and replaced on every delivery
}

func startPacer(t *testing.T, cfg Pacing) *pacerRig {
	t.Helper()
	r := &pacerRig{more: make(chan struct{})}
	r.p = NewPacer(cfg, func(s *Snapshot) {
		r.mu.Lock()
		r.got = append(r.got, delivery{s, time.Now()})
		close(r.more)
		r.more = make(chan struct{})
		r.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return r
}

func (r *pacerRig) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitIDs waits until the last delivery holds exactly ids and returns when it was made.
func (r *pacerRig) waitIDs(t *testing.T, timeout time.Duration, ids string) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		n, ch := len(r.got), r.more
		var last delivery
		if n > 0 {
			last = r.got[n-1]
		}
		r.mu.Unlock()
		if n > 0 && idsOf(last.snap) == ids {
			return last.at
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no delivery of [%s] within %v; deliveries: %s", ids, timeout, r.describe())
		}
	}
}

func (r *pacerRig) describe() string {
	var parts []string
	for _, d := range r.deliveries() {
		parts = append(parts, "["+idsOf(d.snap)+"]")
	}
	return strings.Join(parts, " ")
}

// snap returns a snapshot of service "s" with endpoints of the given IDs, all passing.
func snap(ids ...string) *Snapshot {
	eps := make([]Endpoint, 0, len(ids))
	for _, id := range ids {
		eps = append(eps, ep(id, id+":80"))
	}
	return NewSnapshot("s", 1, eps, time.Now())
}

func idsOf(s *Snapshot) string {
	ids := make([]string, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		id := e.ID
		if e.Health != HealthPassing {
			id += "(" + e.Health.String() + ")"
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, " ")
}

// atOnce bounds the delay of a delivery the pacer makes at once: what the scheduler of a
// crowded test machine may add.
const atOnce = 50 * time.Millisecond

func TestPacerDeliversFirstChangeAtOnce(t *testing.T) {
	r := startPacer(t, Pacing{Settle: time.Minute, Coalesce: time.Minute})
	start := time.Now()
	r.p.Offer(snap("a", "b"), false)
	if d := r.waitIDs(t, time.Second, "a b").Sub(start); d > atOnce {
		t.Errorf("first snapshot delivered after %v, want at once", d)
	}
}

// A change after a quiet spell is delivered at once, even with a long Coalesce: coalescing
// delays only changes that follow another closely.
func TestPacerDeliversChangeAfterQuietAtOnce(t *testing.T) {
	r := startPacer(t, Pacing{Settle: -1, Coalesce: 50 * time.Millisecond})
	r.p.Offer(snap("a"), false)
	r.waitIDs(t, time.Second, "a")
	time.Sleep(80 * time.Millisecond) // quiet for longer than Coalesce
	start := time.Now()
	r.p.Offer(snap("a", "b"), false)
	if d := r.waitIDs(t, time.Second, "a b").Sub(start); d > atOnce {
		t.Errorf("change after a quiet spell delivered after %v, want at once", d)
	}
}

// A flapping instance offers a change every millisecond; the pacer delivers at most one
// snapshot per Coalesce, and the last delivery is the last state offered.
func TestPacerCoalescesFlapping(t *testing.T) {
	const coalesce = 50 * time.Millisecond
	r := startPacer(t, Pacing{Settle: -1, Coalesce: coalesce})
	start := time.Now()
	offers := 0
	for time.Since(start) < 500*time.Millisecond {
		if offers%2 == 0 {
			r.p.Offer(snap("a", "b"), false)
		} else {
			r.p.Offer(snap("a"), false)
		}
		offers++
		time.Sleep(time.Millisecond)
	}
	final := "a"
	if offers%2 == 1 {
		final = "a b"
	}
	r.waitIDs(t, time.Second, final)
	got := r.deliveries()
	// 500ms / 50ms = 10 windows, plus the leading delivery and one trailing.
	if len(got) > 12 {
		t.Errorf("%d offers over 500ms made %d deliveries, want at most 12 (one per %v)", offers, len(got), coalesce)
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < coalesce-5*time.Millisecond {
			t.Errorf("deliveries %d and %d %v apart, want >= %v", i-1, i, gap, coalesce)
		}
	}
}

func TestPacerDropsEqualSnapshots(t *testing.T) {
	r := startPacer(t, Pacing{Settle: -1, Coalesce: -1})
	r.p.Offer(snap("a"), false)
	r.waitIDs(t, time.Second, "a")
	again := snap("a")
	again.Revision = 2
	r.p.Offer(again, false)
	r.p.Offer(snap("a", "b"), false)
	r.waitIDs(t, time.Second, "a b")
	if got := r.describe(); got != "[a] [a a b]" && got != "[a] [a b]" {
		t.Errorf("deliveries %s, want [a] [a b]", got)
	}
}

// Without a resync, a removal applies at once: the settle window is for registries coming
// back, not for every removal.
func TestPacerAppliesRemovalAtOnceWithoutResync(t *testing.T) {
	r := startPacer(t, Pacing{Settle: time.Minute, Coalesce: -1})
	r.p.Offer(snap("a", "b", "c"), false)
	r.waitIDs(t, time.Second, "a b c")
	r.p.Offer(snap("a", "b"), false)
	r.waitIDs(t, time.Second, "a b")
}

// A registry that comes back empty and fills up one instance at a time: the delivered set
// never shrinks while it settles, a new instance is added at once, and at the end of the
// window the full view applies, removing the instance that really went away.
func TestPacerHoldsRemovalsWhileSettling(t *testing.T) {
	const settle = 300 * time.Millisecond
	r := startPacer(t, Pacing{Settle: settle, Coalesce: -1})
	r.p.Offer(snap("a", "b", "c"), false)
	r.waitIDs(t, time.Second, "a b c")

	start := time.Now()
	r.p.Offer(snap(), true) // back from an outage, empty
	r.p.Offer(snap("a"), false)
	r.p.Offer(snap("a", "b"), false)
	r.p.Offer(snap("a", "b", "d"), false) // d is new: added at once
	if d := r.waitIDs(t, time.Second, "a b c d").Sub(start); d > atOnce {
		t.Errorf("an addition while settling was delivered after %v, want at once", d)
	}
	// c never registered again: removed at the end of the window, not before.
	at := r.waitIDs(t, 2*settle, "a b d")
	if d := at.Sub(start); d < settle-10*time.Millisecond {
		t.Errorf("c removed %v after the resync, within the %v settle window", d, settle)
	}
	for _, d := range r.deliveries() {
		if n := len(d.snap.Endpoints); n < 3 {
			t.Errorf("a delivery held %d endpoints [%s]: a partial view was applied", n, idsOf(d.snap))
		}
	}
}

// While settling, an instance the registry reports critical keeps its last state, like one
// it does not list: a check that starts critical after a re-registration moves no user.
func TestPacerHoldsCriticalWhileSettling(t *testing.T) {
	const settle = 200 * time.Millisecond
	r := startPacer(t, Pacing{Settle: settle, Coalesce: -1})
	r.p.Offer(snap("a", "b"), false)
	r.waitIDs(t, time.Second, "a b")
	critical := snap("a", "b")
	critical.Endpoints[1].Health = HealthCritical
	r.p.Offer(critical, true)
	time.Sleep(settle / 2)
	if got := r.describe(); got != "[a b]" {
		t.Errorf("deliveries while settling %s, want only [a b]", got)
	}
	r.waitIDs(t, 2*settle, "a b(critical)")
}

// A registry that keeps resyncing does not hold a removal for ever: the window is not
// extended by later resyncs.
func TestPacerSettleWindowNotExtended(t *testing.T) {
	const settle = 200 * time.Millisecond
	r := startPacer(t, Pacing{Settle: settle, Coalesce: -1})
	r.p.Offer(snap("a", "b"), false)
	r.waitIDs(t, time.Second, "a b")
	start := time.Now()
	for time.Since(start) < 2*settle {
		r.p.Offer(snap("a"), true)
		time.Sleep(10 * time.Millisecond)
	}
	// The first window ended at settle; a resync after it may start one more.
	if at := r.waitIDs(t, 3*settle, "a"); at.Sub(start) > 2*settle+50*time.Millisecond {
		t.Errorf("removal applied %v after the first resync, want within %v", at.Sub(start), 2*settle)
	}
}

func TestHoldRemovals(t *testing.T) {
	crit := func(s *Snapshot, i int) *Snapshot { s.Endpoints[i].Health = HealthCritical; return s }
	tests := []struct {
		name       string
		prev, view *Snapshot
		want       string
	}{
		{"no previous", nil, snap("a"), "a"},
		{"nothing removed", snap("a", "b"), snap("a", "b", "c"), "a b c"},
		{"all removed", snap("a", "b"), snap(), "a b"},
		{"removed at both ends", snap("a", "b", "c"), snap("b"), "a b c"},
		{"interleaved", snap("a", "c", "e"), snap("b", "c", "d"), "a b c d e"},
		{"critical held", snap("a", "b"), crit(snap("a", "b"), 0), "a b"},
		{"critical stays critical", crit(snap("a"), 0), crit(snap("a"), 0), "a(critical)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idsOf(holdRemovals(tt.prev, tt.view)); got != tt.want {
				t.Errorf("holdRemovals = [%s], want [%s]", got, tt.want)
			}
		})
	}
}

// The end of a settle window delivers the registry's full view at once, whatever Coalesce
// says: a real removal lands within Settle plus one update, and a resync that came while it
// waited could not hold it again.
func TestPacerDeliversTheFullViewAtTheWindowsEnd(t *testing.T) {
	const settle = 200 * time.Millisecond
	r := startPacer(t, Pacing{Settle: settle, Coalesce: time.Minute})
	r.p.Offer(snap("a", "b", "c"), false)
	r.waitIDs(t, time.Second, "a b c")
	start := time.Now()
	r.p.Offer(snap("a", "c"), true) // a resync without b: held for the window
	if d := r.waitIDs(t, 5*time.Second, "a c").Sub(start); d < settle || d > settle+time.Second {
		t.Errorf("b removed %v after the resync, want at the window's end (%v), not Coalesce's", d, settle)
	}
}
