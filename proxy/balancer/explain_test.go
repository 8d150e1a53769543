package balancer

import (
	"testing"
	"time"
)

// Explain answers what the request path's pick does, target and fallback, with ejections,
// drains, active-check failures and bounded load in play.
func TestExplainAgreesWithPick(t *testing.T) {
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind, BoundedLoad: 1.25, Outlier: OutlierConfig{MaxEjectionPercent: 50}}, snap(ids(8)...))
			failN(handle(u, "e001"), 5, connectRefused)
			handle(u, "e002").setFlags(statusActiveDown, 0)
			if err := u.Drain("e004", 0); err != nil {
				t.Fatal(err)
			}
			for range 6 { // e006 over its bounded-load cap
				handle(u, "e006").Start()
			}
			reasons := map[string]int{}
			for _, h := range keyHashes(2000) {
				x := u.Explain(h, true)
				if x.Target != first(u, h) || x.Fallback != second(u, h) {
					t.Fatalf("explain %s then %s, pick %s then %s", x.Target, x.Fallback, first(u, h), second(u, h))
				}
				if x.Home != x.Walk[0].Endpoint || !x.Walk[len(x.Walk)-1].Taken || x.Walk[len(x.Walk)-1].Endpoint != x.Target {
					t.Fatalf("walk %+v does not start at home %s and end at target %s", x.Walk, x.Home, x.Target)
				}
				for _, st := range x.Walk[:len(x.Walk)-1] {
					reasons[st.Endpoint+" "+st.Reason]++
				}
			}
			for _, want := range []string{"e001 ejected", "e002 active_unhealthy", "e004 drained", "e006 bounded_load"} {
				if reasons[want] == 0 {
					t.Errorf("no walk passed over %q; reasons seen %v", want, reasons)
				}
			}
		})
	}
}

// The fallback is flagged when taking the target out would tip the upstream into panic mode.
func TestExplainFlagsFallbackIntoPanic(t *testing.T) {
	u, _, _ := newTest(t, Config{PanicThreshold: 50, Outlier: OutlierConfig{MaxEjectionPercent: 50}}, snap(ids(2)...))
	failN(handle(u, "e000"), 5, connectRefused)
	x := u.Explain(keyHashes(1)[0], true)
	if x.Target != "e001" || !x.FallbackPanics {
		t.Errorf("target %s panics %v, want e001 and a fallback into panic mode", x.Target, x.FallbackPanics)
	}
}

// Key shares are measured on the table: the home shares sum to 1, and a drained endpoint's
// share now is 0 while its table share stays.
func TestKeySharesFollowTheCurrentState(t *testing.T) {
	u, _, _ := newTest(t, Config{}, snap(ids(5)...))
	if err := u.Drain("e002", 0); err != nil {
		t.Fatal(err)
	}
	shares := u.KeyShares(DefaultShareSamples)
	var table, now float64
	for _, s := range shares {
		table += s.Table
		now += s.Now
	}
	if table < 0.999 || table > 1.001 || now < 0.999 || now > 1.001 {
		t.Errorf("shares sum to %.4f (table) and %.4f (now), want 1", table, now)
	}
	if s := shares["e002"]; s.Now != 0 || s.Table < 0.1 {
		t.Errorf("drained e002 share %+v, want none now and about 0.2 on the table", s)
	}
	if u.Explain(0, true).Policy != RingHash {
		t.Error("policy not reported")
	}
}

// An endpoint kept for later (here: warming, for keys above its fraction) and taken because
// nothing better is left shows in the walk as a last resort.
func TestExplainShowsLastResort(t *testing.T) {
	u, _, _ := newTest(t, Config{SlowStart: time.Hour}, snap(ep("old")))
	u.Update(snap(ep("a"), ep("b"))) // both new: warming, at 10%
	lastResort := 0
	for _, h := range keyHashes(200) {
		x := u.Explain(h, true)
		if x.Target != first(u, h) {
			t.Fatalf("explain %s, pick %s", x.Target, first(u, h))
		}
		if end := x.Walk[len(x.Walk)-1]; end.Reason == "last_resort" {
			lastResort++
			if !end.Taken || len(x.Walk) != 3 || x.Walk[0].Reason != "slow_start" {
				t.Fatalf("walk %+v", x.Walk)
			}
		}
	}
	if lastResort == 0 {
		t.Error("no key had both warming endpoints above its draw")
	}
}
