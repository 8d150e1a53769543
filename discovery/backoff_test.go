package discovery

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

func TestBackoffDelayBounds(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name     string
		b        Backoff
		attempt  int
		min, max time.Duration // Delay must be in [min, max]
	}{
		{"zero value, first retry", Backoff{}, 0, 50 * ms, 100 * ms},
		{"zero value, capped at 30s", Backoff{}, 20, 50 * ms, 30 * time.Second},
		{"first retry", Backoff{Base: 10 * ms, Max: time.Second}, 0, 5 * ms, 10 * ms},
		{"grows by doubling", Backoff{Base: 10 * ms, Max: time.Second}, 3, 5 * ms, 80 * ms},
		{"capped", Backoff{Base: 10 * ms, Max: time.Second}, 10, 5 * ms, time.Second},
		{"huge attempt", Backoff{Base: 10 * ms, Max: time.Second}, math.MaxInt, 5 * ms, time.Second},
		{"negative attempt is the first", Backoff{Base: 10 * ms, Max: time.Second}, -3, 5 * ms, 10 * ms},
		{"negative base is the default", Backoff{Base: -1, Max: time.Second}, 0, 50 * ms, 100 * ms},
		{"base equals max", Backoff{Base: 10 * ms, Max: 10 * ms}, 5, 5 * ms, 10 * ms},
		// Once a bug: with Base > 2·Max, Delay returned Base/2, above Max.
		{"base above max", Backoff{Base: time.Second, Max: 100 * ms}, 0, 0, 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bad time.Duration = -1
			for range 2000 {
				if d := tt.b.Delay(tt.attempt); d < tt.min || d > tt.max {
					bad = d
					break
				}
			}
			if bad >= 0 {
				t.Errorf("Delay(%d) = %v, want [%v, %v]", tt.attempt, bad, tt.min, tt.max)
			}
		})
	}
}

// Max: math.MaxInt64 reads as "no cap"; the delay must keep growing, not wrap around.
func TestBackoffDelayHugeMax(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: math.MaxInt64}
	var longest time.Duration
	for range 100 {
		longest = max(longest, b.Delay(40))
	}
	// Correct delays are uniform up to Max: each is above 2^62ns with probability 1/2. Once a
	// bug: Base·2^attempt overflowed and Delay(40) fell back to Base/2.
	if longest < 1<<62 {
		t.Errorf("Delay(40) with a huge Max: longest of 100 = %v, want some above 2^62ns", longest)
	}
}

// Each retry may wait longer than the last could, until the cap, and the waits are spread
// (jittered) rather than all alike.
func TestBackoffDelayGrowsWithJitter(t *testing.T) {
	b := Backoff{Base: 8 * time.Millisecond, Max: 500 * time.Millisecond}
	prevCeiling := b.Base
	for attempt := 1; attempt <= 8; attempt++ {
		var longest, shortest time.Duration = 0, math.MaxInt64
		for range 1000 {
			d := b.Delay(attempt)
			longest, shortest = max(longest, d), min(shortest, d)
		}
		ceiling := min(b.Max, b.Base<<attempt)
		if prevCeiling < b.Max && longest <= prevCeiling {
			t.Errorf("attempt %d: longest of 1000 delays %v, want some above the previous ceiling %v", attempt, longest, prevCeiling)
		}
		if longest-shortest < ceiling/4 {
			t.Errorf("attempt %d: delays span only %v..%v, want jitter across [%v, %v]", attempt, shortest, longest, b.Base/2, ceiling)
		}
		prevCeiling = ceiling
	}
}

func TestSleep(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel2()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"canceled, long sleep", canceled, time.Hour, context.Canceled},
		{"canceled, no sleep", canceled, 0, context.Canceled},
		{"deadline during the sleep", expired, time.Hour, context.DeadlineExceeded},
		{"live, no sleep", context.Background(), 0, nil},
		{"live, negative", context.Background(), -time.Second, nil},
		{"live, short sleep", context.Background(), time.Millisecond, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := Sleep(tt.ctx, tt.d)
			if !errors.Is(err, tt.want) {
				t.Errorf("Sleep = %v, want %v", err, tt.want)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Sleep took %v", elapsed)
			}
			if tt.want == nil && tt.d > 0 && time.Since(start) < tt.d {
				t.Errorf("Sleep returned after %v, before %v", time.Since(start), tt.d)
			}
		})
	}
}

// fakeClock is a LogLimiter clock that the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLogLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := NewLogLimiter(time.Minute)
	l.now = clock.now
	type step struct {
		advance    time.Duration
		key        string
		reset      bool // call Reset(key) instead of Allow
		ok         bool
		suppressed int
	}
	steps := []step{
		{0, "consul", false, true, 0},                 // first: allowed
		{time.Second, "consul", false, false, 0},      // suppressed 1
		{time.Second, "consul", false, false, 0},      // suppressed 2
		{0, "etcd", false, true, 0},                   // another key is independent
		{0, "etcd", false, false, 0},                  // etcd suppressed 1
		{57 * time.Second, "consul", false, false, 0}, // 59s after the first: suppressed 3
		{time.Second, "consul", false, true, 3},       // a minute after the first: allowed, with the count
		{time.Second, "consul", false, false, 0},      // the count starts again
		{time.Minute, "consul", false, true, 1},
		{0, "consul", true, false, 0}, // Reset: recovered
		{0, "consul", false, true, 0}, // logged at once after a reset
		{0, "etcd", false, true, 1},   // etcd kept its own count through consul's reset
	}
	for i, s := range steps {
		clock.advance(s.advance)
		if s.reset {
			l.Reset(s.key)
			continue
		}
		ok, n := l.Allow(s.key)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d: Allow(%q) = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.suppressed)
		}
	}
}

// Run with -race.
func TestLogLimiterConcurrent(t *testing.T) {
	l := NewLogLimiter(time.Hour)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if ok, _ := l.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1 {
		t.Errorf("%d of 800 concurrent calls allowed within one interval, want 1", allowed)
	}
}

func TestBackoffUnreachableDelayCapped(t *testing.T) {
	tests := []struct {
		name string
		b    Backoff
		max  time.Duration
	}{
		{"zero value", Backoff{}, DefaultUnreachable},
		{"own cap", Backoff{Unreachable: 300 * time.Millisecond}, 300 * time.Millisecond},
		{"max lower than the cap", Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			longest := time.Duration(0)
			for range 1000 {
				longest = max(longest, tt.b.UnreachableDelay(30))
			}
			if longest > tt.max {
				t.Errorf("UnreachableDelay(30) up to %v, want <= %v", longest, tt.max)
			}
			if longest < tt.max/2 {
				t.Errorf("UnreachableDelay(30) at most %v over 1000 draws: no jitter up to %v", longest, tt.max)
			}
		})
	}
}

// A registry back from an outage that answers with errors while it starts is retried from
// Base, not after the delay that the outage's failures would have grown the backoff to.
func TestRetriesAnsweredErrorAfterOutageStartsFromBase(t *testing.T) {
	const base = 100 * time.Millisecond
	r := Retries{Backoff: Backoff{Base: base, Max: time.Minute}}
	for range 20 {
		if d := r.Failed(true); d > DefaultUnreachable {
			t.Fatalf("delay %v while unreachable, want <= %v", d, DefaultUnreachable)
		}
	}
	if d := r.Failed(false); d > base {
		t.Errorf("first answered error after 20 unreachable ones: delay %v, want <= Base %v", d, base)
	}
	if n := r.Failures(); n != 21 {
		t.Errorf("Failures() = %d, want 21", n)
	}
	for range 10 {
		r.Failed(false)
	}
	longest := time.Duration(0)
	for range 200 {
		rr := r
		longest = max(longest, rr.Failed(false))
	}
	if longest <= base {
		t.Errorf("answered errors in a row: delays up to %v, want them to grow past Base", longest)
	}
	r.Succeeded()
	if n := r.Failures(); n != 0 {
		t.Errorf("Failures() = %d after Succeeded, want 0", n)
	}
}
