package balancer

import (
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestHashStickiness(t *testing.T) {
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(ids(10)...))
			other, _, _ := newTest(t, Config{Kind: kind}, snap(ids(10)...))
			hs := keyHashes(100)
			want := homes(u, hs)
			for round := range 100 { // 10k picks
				for i, h := range hs {
					if got := first(u, h); got != want[i] {
						t.Fatalf("round %d key %d: got %s, want %s", round, i, got, want[i])
					}
				}
			}
			// A second proxy with the same snapshot agrees: the choice depends on the key only.
			for i, h := range hs {
				if got := first(other, h); got != want[i] {
					t.Fatalf("key %d: another upstream picks %s, want %s", i, got, want[i])
				}
			}
			// An identical snapshot (a new revision) changes nothing.
			u.Update(snap(ids(10)...))
			for i, h := range hs {
				if got := first(u, h); got != want[i] {
					t.Fatalf("key %d after a new revision: got %s, want %s", i, got, want[i])
				}
			}
		})
	}
}

func TestHashMovementOnRemoveAndAdd(t *testing.T) {
	// maxStray is the share of keys allowed to move between endpoints that stayed: none on
	// the ring; Maglev moves a few percent (see hashring.Maglev).
	tests := []struct {
		kind     Kind
		maxStray float64
	}{
		{RingHash, 0},
		{Maglev, 0.05},
	}
	const n = 10
	hs := keyHashes(10000)
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			eps := ids(n)
			u, _, _ := newTest(t, Config{Kind: tt.kind}, snap(eps...))
			before := homes(u, hs)

			removed := eps[3].ID
			u.Update(snap(append(append([]discovery.Endpoint(nil), eps[:3]...), eps[4:]...)...))
			after := homes(u, hs)
			stray, moved := 0, 0
			for i := range hs {
				switch {
				case before[i] == removed:
					moved++
					if after[i] == removed {
						t.Fatalf("key %d still on removed endpoint", i)
					}
				case after[i] != before[i]:
					stray++
				}
			}
			if moved == 0 {
				t.Fatal("no key was on the removed endpoint")
			}
			if share := float64(stray) / float64(len(hs)); share > tt.maxStray {
				t.Errorf("remove: %d keys (%.2f%%) of remaining endpoints moved, want <= %.0f%%",
					stray, 100*share, 100*tt.maxStray)
			}

			u.Update(snap(append(eps, ep("z-new"))...))
			added := homes(u, hs)
			stray, gained := 0, 0
			for i := range hs {
				switch {
				case added[i] == "z-new":
					gained++
				case added[i] != before[i]:
					stray++
				}
			}
			// The new endpoint takes about 1/(n+1) of the keys, all from the others.
			if lo, hi := len(hs)/(n+1)/2, 2*len(hs)/(n+1); gained < lo || gained > hi {
				t.Errorf("add: new endpoint took %d keys, want %d..%d", gained, lo, hi)
			}
			if share := float64(stray) / float64(len(hs)); share > tt.maxStray {
				t.Errorf("add: %d keys moved between old endpoints, want <= %.0f%%", stray, 100*tt.maxStray)
			}
		})
	}
}

func TestEjectionMovesOnlyEjectedKeys(t *testing.T) {
	hs := keyHashes(10000)
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, clk, _ := newTest(t, Config{Kind: kind, Outlier: OutlierConfig{MaxEjectionPercent: 20}}, snap(ids(10)...))
			before := homes(u, hs)
			victim := "e004"
			// Where each of the victim's keys must go: the next endpoint of its walk.
			s := u.state.Load()
			next := make(map[int]string)
			for i, h := range hs {
				if before[i] != victim {
					continue
				}
				w := s.table.Walk(h)
				w.Next()
				j, _ := w.Next()
				next[i] = s.eps[j].ID
			}

			failN(handle(u, victim), 5, connectRefused)
			if st := handle(u, victim).State(); st != Ejected {
				t.Fatalf("victim state %v, want ejected", st)
			}
			during := homes(u, hs)
			for i := range hs {
				if before[i] == victim {
					if during[i] != next[i] {
						t.Fatalf("key %d of the ejected endpoint went to %s, want the next on its walk %s", i, during[i], next[i])
					}
				} else if during[i] != before[i] {
					t.Fatalf("key %d of healthy %s moved to %s during the ejection", i, before[i], during[i])
				}
			}
			if s2 := u.state.Load(); s2 != s {
				t.Error("ejection replaced the routing state")
			}

			clk.Advance(30 * time.Second)
			back := homes(u, hs)
			for i := range hs {
				if back[i] != before[i] {
					t.Fatalf("key %d on %s after the return, want %s", i, back[i], before[i])
				}
			}
		})
	}
}

func TestTableRebuiltOnlyOnMembershipOrWeight(t *testing.T) {
	eps := ids(4)
	for _, kind := range allKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(eps...))
			s := u.state.Load()
			same := func(what string, want bool) {
				t.Helper()
				s2 := u.state.Load()
				got := s2.table == s.table && sameSlice(s2.schedule, s.schedule) && sameSlice(s2.strides, s.strides)
				if got != want {
					t.Errorf("%s: table kept = %v, want %v", what, got, want)
				}
				s = s2
			}
			failN(handle(u, "e001"), 5, connectRefused)
			u.Update(snap(eps...))
			same("ejection and same snapshot", true)

			warn := append([]discovery.Endpoint(nil), eps...)
			warn[2] = withHealth(warn[2], discovery.HealthWarning)
			u.Update(snap(warn...))
			same("warning with the same weight", true)

			moved := append([]discovery.Endpoint(nil), eps...)
			moved[0].Address = "elsewhere:80"
			u.Update(snap(moved...))
			same("address change", true)

			heavy := append([]discovery.Endpoint(nil), eps...)
			heavy[1].Weight = 3
			u.Update(snap(heavy...))
			same("weight change", false)

			crit := append([]discovery.Endpoint(nil), heavy...)
			crit[3] = withHealth(crit[3], discovery.HealthCritical)
			u.Update(snap(crit...))
			same("critical", false)
		})
	}
}

// sameSlice reports whether a and b are the same slice (not equal contents).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func TestWeightsShareKeys(t *testing.T) {
	hs := keyHashes(20000)
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(weighted("a", 1), weighted("b", 3)))
			count := map[string]int{}
			for _, id := range homes(u, hs) {
				count[id]++
			}
			ratio := float64(count["b"]) / float64(count["a"])
			if ratio < 2.5 || ratio > 3.5 {
				t.Errorf("b/a = %.2f (%v), want about 3", ratio, count)
			}
		})
	}
}

func TestCriticalEndpointsGetNoTraffic(t *testing.T) {
	hs := keyHashes(2000)
	for _, kind := range allKinds {
		t.Run(string(kind), func(t *testing.T) {
			eps := ids(3)
			eps[1] = withHealth(eps[1], discovery.HealthCritical)
			u, _, _ := newTest(t, Config{Kind: kind}, snap(eps...))
			for _, id := range homes(u, hs) {
				if id == eps[1].ID {
					t.Fatalf("critical endpoint %s picked", id)
				}
			}
			if got := handle(u, eps[1].ID).State(); got != Critical {
				t.Errorf("state %v, want critical", got)
			}
			for i := range eps {
				eps[i] = withHealth(eps[i], discovery.HealthCritical)
			}
			u.Update(snap(eps...))
			if got := first(u, hs[0]); got != ErrNoEndpoints.Error() {
				t.Errorf("all critical: got %q, want %v", got, ErrNoEndpoints)
			}
			if got := len(u.Endpoints()); got != 3 {
				t.Errorf("%d handles, want 3 (critical endpoints keep theirs)", got)
			}
		})
	}
}

// A weight-1 endpoint joining endpoints of weight 2 once changed every endpoint's points (the
// weights were divided by their greatest common divisor, which the newcomer changed) and moved
// keys between survivors.
func TestJoinThatChangesWeightDivisorMovesOnlyNewcomersKeys(t *testing.T) {
	u, _, _ := newTest(t, Config{}, snap(weighted("a", 2), weighted("b", 2), weighted("c", 2)))
	hs := keyHashes(20000)
	before := homes(u, hs)
	u.Update(snap(weighted("a", 2), weighted("b", 2), weighted("c", 2), weighted("d", 1)))
	after := homes(u, hs)
	toNew := 0
	for i := range hs {
		switch {
		case after[i] == "d":
			toNew++
		case after[i] != before[i]:
			t.Fatalf("key %d moved from %s to %s, between survivors", i, before[i], after[i])
		}
	}
	if toNew == 0 {
		t.Fatal("no key moved to the newcomer")
	}
	t.Logf("%d of %d keys moved, all to the newcomer (share %.3f, weight share %.3f)", toNew, len(hs),
		float64(toNew)/float64(len(hs)), 1.0/7)
}
