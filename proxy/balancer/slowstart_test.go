package balancer

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestSlowStartShareGrowsUnderHashing(t *testing.T) {
	const window = 10 * time.Second
	hs := keyHashes(20000)
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, clk, _ := newTest(t, Config{Kind: kind, SlowStart: window}, snap(ids(10)...))
			for _, e := range u.Endpoints() {
				if e.State() != Healthy {
					t.Fatalf("%s is %v: the first snapshot's endpoints must not warm up", e.ID, e.State())
				}
			}
			home := make([]string, len(hs))
			u.Update(snap(append(ids(10), ep("new"))...))
			s := u.state.Load()

			// The keys the new endpoint will own, and where each goes meanwhile. (Maglev may
			// also move a few keys between the others: home is each key's home in the new table.)
			owned := map[int]string{}
			for i, h := range hs {
				w := s.table.Walk(h)
				j, _ := w.Next()
				if home[i] = s.eps[j].ID; home[i] != "new" {
					continue
				}
				k, _ := w.Next()
				owned[i] = s.eps[k].ID
			}
			if len(owned) < len(hs)/20 {
				t.Fatalf("the new endpoint owns only %d keys", len(owned))
			}

			prev := map[int]bool{}
			for _, at := range []time.Duration{0, 2500 * time.Millisecond, 5 * time.Second, 7500 * time.Millisecond} {
				now := homes(u, hs)
				taken := map[int]bool{}
				for i := range hs {
					next, mine := owned[i]
					switch {
					case !mine && now[i] != home[i]:
						t.Fatalf("at %v: key %d on %s, want its home %s", at, i, now[i], home[i])
					case mine && now[i] == "new":
						taken[i] = true
					case mine && now[i] != next:
						t.Fatalf("at %v: key %d passed over the warming endpoint to %s, want the next on its walk %s", at, i, now[i], next)
					}
				}
				want := warmFloor + (1-warmFloor)*float64(at)/float64(window)
				if got := float64(len(taken)) / float64(len(owned)); math.Abs(got-want) > 0.06 {
					t.Errorf("at %v the new endpoint has %.3f of its keys, want %.2f", at, got, want)
				}
				for i := range prev {
					if !taken[i] {
						t.Fatalf("at %v key %d left the warming endpoint", at, i)
					}
				}
				if st := handle(u, "new").State(); st != Warming {
					t.Errorf("at %v state %v, want warming", at, st)
				}
				prev = taken
				clk.Advance(2500 * time.Millisecond)
			}
			clk.Advance(window)
			now := homes(u, hs)
			for i := range owned {
				if now[i] != "new" {
					t.Fatalf("after the window key %d on %s, want the new endpoint", i, now[i])
				}
			}
			if st := handle(u, "new").State(); st != Healthy {
				t.Errorf("after the window: state %v, want healthy", st)
			}
		})
	}
}

func TestSlowStartAfterEjectionAndCritical(t *testing.T) {
	u, clk, _ := newTest(t, Config{SlowStart: time.Minute}, snap(ids(4)...))
	e := handle(u, "e001")
	failN(e, 5, connectRefused)
	clk.Advance(30 * time.Second)
	if got := u.StateCounts(); got != (StateCounts{Healthy: 3, Warming: 1}) {
		t.Errorf("after the ejection: %+v, want one warming", got)
	}
	homeOf(t, u, "e001") // requests return it
	if e.warmStart.Load() != e.ejectedUntil.Load() {
		t.Error("its warm-up does not start at the end of its ejection")
	}

	eps := ids(4)
	eps[2] = withHealth(eps[2], discovery.HealthCritical)
	u.Update(snap(eps...))
	clk.Advance(2 * time.Minute)
	u.Update(snap(ids(4)...))
	if st := handle(u, "e002").State(); st != Warming {
		t.Errorf("back from critical: %v, want warming", st)
	}
}

func TestSlowStartKeyBlind(t *testing.T) {
	for _, kind := range []Kind{RoundRobin, WeightedRoundRobin, Random, LeastRequest} {
		t.Run(string(kind), func(t *testing.T) {
			u, clk, _ := newTest(t, Config{Kind: kind, SlowStart: 10 * time.Second}, snap(ids(3)...))
			u.Update(snap(append(ids(3), ep("new"))...))
			start := clk.ns.Load()
			const n = 20000
			for _, tt := range []struct {
				at   time.Duration
				want float64
			}{{0, 0.1 * 0.25}, {5 * time.Second, 0.55 * 0.25}, {10 * time.Second, 0.25}} {
				clk.ns.Store(start + int64(tt.at))
				got := float64(shares(u, n)["new"]) / n
				if math.Abs(got-tt.want) > 0.03 {
					t.Errorf("at %v the new endpoint takes %.3f, want %.3f", tt.at, got, tt.want)
				}
			}
		})
	}
}

func TestSlowStartAllWarming(t *testing.T) {
	// Every endpoint warming at once (all were critical): a key passes over at most
	// maxWarmSkips of them, so its walk stays short, and it is home once the window is over.
	eps := ids(20)
	crit := make([]discovery.Endpoint, len(eps))
	for i := range eps {
		crit[i] = withHealth(eps[i], discovery.HealthCritical)
	}
	u, clk, _ := newTest(t, Config{SlowStart: time.Minute}, snap(crit...))
	u.Update(snap(eps...))
	if c := u.StateCounts(); c.Warming != 20 {
		t.Errorf("counts %+v, want 20 warming", c)
	}
	s := u.state.Load()
	hs := keyHashes(2000)
	got := homes(u, hs)
	atHome := 0
	for i, h := range hs {
		w := s.table.Walk(h)
		var firsts []string
		for range maxWarmSkips + 1 {
			j, _ := w.Next()
			firsts = append(firsts, s.eps[j].ID)
		}
		if !slices.Contains(firsts, got[i]) {
			t.Fatalf("key %d on %s, want one of the first %d of its walk %v", i, got[i], maxWarmSkips+1, firsts)
		}
		if got[i] == firsts[0] {
			atHome++
		}
	}
	if atHome > len(hs)/5 {
		t.Errorf("%d of %d keys at home at the start of the window, want about 10%%", atHome, len(hs))
	}
	clk.Advance(time.Minute)
	ref, _, _ := newTest(t, Config{}, snap(eps...))
	if got, want := homes(u, hs), homes(ref, hs); !slices.Equal(got, want) {
		t.Error("after the window the keys are not all home")
	}
}

func TestWarmRollIsStablePerKey(t *testing.T) {
	a, b := &Endpoint{seed: 1}, &Endpoint{seed: 2}
	var p Pick
	p.keyed = true
	below, differ := 0, 0
	for i, h := range keyHashes(1000) {
		p.h = h
		r := p.warmRoll(a)
		if r < 0 || r >= 1 {
			t.Fatalf("roll %v out of [0, 1)", r)
		}
		if r2 := p.warmRoll(a); r2 != r {
			t.Fatalf("key %d: roll %v then %v", i, r, r2)
		}
		if r < 0.5 {
			below++
		}
		if (r < 0.5) != (p.warmRoll(b) < 0.5) {
			differ++
		}
	}
	if below < 450 || below > 550 {
		t.Errorf("%d of 1000 rolls below 0.5, want about 500", below)
	}
	if differ < 400 || differ > 600 {
		t.Errorf("rolls of two endpoints disagree for %d of 1000 keys, want about 500 (independent)", differ)
	}
}
