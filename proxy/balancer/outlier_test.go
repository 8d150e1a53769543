package balancer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestEjectionByConsecutiveFailures(t *testing.T) {
	// The connect window is off so that only the counts decide.
	cfg := Config{Outlier: OutlierConfig{ConnectFailureWindow: -1}}
	tests := []struct {
		name       string
		cfg        Config
		give       []Outcome
		wantReason string // "" = not ejected
	}{
		{"five 500s", cfg, repeat(status500, 5), reason5xx},
		{"four 500s", cfg, repeat(status500, 4), ""},
		{"five 503s", cfg, repeat(status503, 5), reasonGatewayFailure},
		{"five connect failures", cfg, repeat(connectRefused, 5), reasonGatewayFailure},
		{"timeouts and resets", cfg, []Outcome{{Failure: FailTimeout}, {Failure: FailReset}, {Status: 502},
			{Status: 504}, {Failure: FailTimeout}}, reasonGatewayFailure},
		{"success resets", cfg, append(append(repeat(status500, 4), status200), repeat(status500, 4)...), ""},
		{"404 resets", cfg, append(append(repeat(status503, 4), Outcome{Status: 404}), repeat(status503, 4)...), ""},
		{"no verdict keeps counting", cfg, append(append(repeat(status500, 3), Outcome{}), repeat(status500, 2)...), reason5xx},
		{"500 breaks a gateway run only", Config{Outlier: OutlierConfig{ConnectFailureWindow: -1, Consecutive5xx: -1}},
			append(append(repeat(status503, 4), status500), repeat(status503, 4)...), ""},
		{"5xx disabled", Config{Outlier: OutlierConfig{ConnectFailureWindow: -1, Consecutive5xx: -1}},
			repeat(status500, 20), ""},
		{"gateway disabled", Config{Outlier: OutlierConfig{ConnectFailureWindow: -1, ConsecutiveGatewayFailure: -1,
			Consecutive5xx: 7}}, repeat(status503, 7), reason5xx},
		{"custom threshold", Config{Outlier: OutlierConfig{ConnectFailureWindow: -1, ConsecutiveGatewayFailure: 2}},
			repeat(connectRefused, 2), reasonGatewayFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _, rec := newTest(t, tt.cfg, snap(ids(2)...))
			e := handle(u, "e000")
			for _, o := range tt.give {
				failN(e, 1, o)
			}
			ejected, _, _ := rec.snapshot()
			if tt.wantReason == "" {
				if len(ejected) != 0 || e.State() != Healthy {
					t.Fatalf("ejected %v, state %v; want healthy", ejected, e.State())
				}
				return
			}
			want := fmt.Sprintf("e000 %s 30s", tt.wantReason)
			if len(ejected) != 1 || ejected[0] != want {
				t.Fatalf("ejections %q, want [%q]", ejected, want)
			}
			if e.State() != Ejected || e.InFlight() != 0 {
				t.Errorf("state %v in flight %d, want ejected and 0", e.State(), e.InFlight())
			}
		})
	}
}

func repeat(o Outcome, n int) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func TestEjectionTimeGrowsAndReturns(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	clk, rec := newFakeClock(), &recorder{}
	u, err := New("svc", Config{Outlier: OutlierConfig{BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 25 * time.Second}},
		Options{Now: clk.Now, Events: rec, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	u.Update(snap(ids(3)...))
	runUpstream(t, u) // it reports the returns the requests below make
	e := handle(u, "e001")
	h := homeOf(t, u, "e001")

	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second} {
		failN(e, 5, status500)
		if got := first(u, h); got == "e001" {
			t.Fatalf("ejection %d: its key still goes to it", i+1)
		}
		clk.Advance(want - time.Nanosecond)
		if e.State() != Ejected || first(u, h) == "e001" {
			t.Fatalf("ejection %d back before %v", i+1, want)
		}
		clk.Advance(time.Nanosecond)
		if got := first(u, h); got != "e001" {
			t.Fatalf("ejection %d: key on %s after %v, want it back on e001", i+1, got, want)
		}
	}
	waitFor(t, "the returns to be reported", func() bool {
		ejected, returned, counts := rec.snapshot()
		return len(ejected) == 4 && len(returned) == 4 && counts == StateCounts{Healthy: 3}
	})

	// Long enough in service, the next ejection is short again.
	clk.Advance(25 * time.Second)
	failN(e, 5, status500)
	ejected, _, _ := rec.snapshot()
	if got := ejected[len(ejected)-1]; got != "e001 consecutive_5xx 10s" {
		t.Errorf("ejection after a long healthy run: %q, want 10s", got)
	}

	// The log lines carry the constant keys.
	for _, msg := range []string{"endpoint ejected", "endpoint returned"} {
		entries := logs.FilterMessage(msg).All()
		if len(entries) == 0 {
			t.Fatalf("no %q log line", msg)
		}
		fields := entries[0].ContextMap()
		if fields["upstream"] != "svc" || fields["endpoint"] != "e001" {
			t.Errorf("%q fields %v", msg, fields)
		}
		if msg == "endpoint ejected" && (fields["reason"] != reason5xx || fields["duration"] != 10*time.Second) {
			t.Errorf("%q fields %v", msg, fields)
		}
	}
}

// homeOf returns a key hash whose home is id.
func homeOf(t *testing.T, u *Upstream, id string) uint64 {
	t.Helper()
	for _, h := range keyHashes(10000) {
		if first(u, h) == id {
			return h
		}
	}
	t.Fatalf("no key goes to %s", id)
	return 0
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		percent int
		want    int // ejected at most
	}{
		{"10 of 10 percent", 10, 10, 1},
		{"one endpoint may always go", 1, 10, 1},
		{"3 of 50 percent", 3, 50, 1},
		{"10 of 30 percent", 10, 30, 3},
		{"4 of 100 percent", 4, 100, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, clk, _ := newTest(t, Config{Outlier: OutlierConfig{MaxEjectionPercent: tt.percent}}, snap(ids(tt.n)...))
			for _, e := range u.Endpoints() {
				failN(e, 10, connectRefused)
			}
			if got := u.StateCounts().Ejected; got != tt.want {
				t.Fatalf("%d ejected, want %d", got, tt.want)
			}
			if got := u.ejected.Load(); got != int32(tt.want) {
				t.Errorf("budget counter %d, want %d", got, tt.want)
			}
			// When the ejections are over, the budget frees up even if no request returned them.
			clk.Advance(30 * time.Second)
			var still *Endpoint
			for _, e := range u.Endpoints() {
				if e.status.Load()&statusEjected == 0 {
					still = e
					break
				}
			}
			if still == nil {
				return
			}
			failN(still, 1, connectRefused)
			if still.State() != Ejected {
				t.Errorf("%s not ejected once the earlier ejections were over", still.ID)
			}
		})
	}
}

func TestPanicThreshold(t *testing.T) {
	hs := keyHashes(4000)
	tests := []struct {
		name      string
		threshold float64
		eject     int
		wantPanic bool
	}{
		{"one of four out", 50, 1, false},
		{"two of four out", 50, 2, false},
		{"three of four out", 50, 3, true},
		{"all out, panic disabled", -1, 4, false},
		{"one of four out at 80", 80, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{PanicThreshold: tt.threshold, Outlier: OutlierConfig{MaxEjectionPercent: 100}}
			u, _, _ := newTest(t, cfg, snap(ids(4)...))
			before := homes(u, hs)
			out := map[string]bool{}
			for _, e := range u.Endpoints()[:tt.eject] {
				failN(e, 5, connectRefused)
				out[e.ID] = true
			}
			if got := u.Panicking(); got != tt.wantPanic {
				t.Fatalf("Panicking() = %v, want %v", got, tt.wantPanic)
			}
			during := homes(u, hs)
			for i := range hs {
				switch {
				case tt.wantPanic && during[i] != before[i]:
					t.Fatalf("panic mode: key %d on %s, want its home %s", i, during[i], before[i])
				case !tt.wantPanic && tt.eject == 4 && during[i] != ErrNoEndpoints.Error():
					t.Fatalf("all ejected without panic: got %s, want %v", during[i], ErrNoEndpoints)
				case !tt.wantPanic && out[during[i]]:
					t.Fatalf("key %d sent to ejected %s outside panic mode", i, during[i])
				}
			}
		})
	}
}

func TestConnectFailureWindow(t *testing.T) {
	// The default promise: an endpoint that starts refusing connections stops getting first
	// tries within 1 s or 10 failed requests, whichever comes first.
	tests := []struct {
		name  string
		gaps  []time.Duration // before each failed attempt
		wantN int             // attempts until ejection (0 = never)
	}{
		{"burst", repeatD(time.Millisecond, 10), 5},
		{"one a second", repeatD(time.Second, 10), 2},
		{"slow trickle", repeatD(400*time.Millisecond, 10), 4},
		{"two far apart", []time.Duration{0, time.Minute}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, clk, _ := newTest(t, Config{}, snap(ids(3)...))
			e := handle(u, "e000")
			n := 0
			for _, gap := range tt.gaps {
				clk.Advance(gap)
				n++
				failN(e, 1, connectRefused)
				if e.State() == Ejected {
					break
				}
			}
			if n != tt.wantN || e.State() != Ejected {
				t.Fatalf("ejected after %d attempts (state %v), want %d", n, e.State(), tt.wantN)
			}
		})
	}
	t.Run("a success ends the streak", func(t *testing.T) {
		u, clk, _ := newTest(t, Config{}, snap(ids(3)...))
		e := handle(u, "e000")
		failN(e, 1, connectRefused)
		clk.Advance(2 * time.Second)
		failN(e, 1, status200)
		failN(e, 1, connectRefused)
		if e.State() != Healthy {
			t.Fatalf("state %v, want healthy", e.State())
		}
	})
}

func repeatD(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestHandlesSurviveSwaps(t *testing.T) {
	var made, removed []string
	clk := newFakeClock()
	u, err := New("svc", Config{}, Options{
		Now:        clk.Now,
		OnEndpoint: func(e *Endpoint) any { made = append(made, e.ID); return "client:" + e.Address },
		OnRemove:   func(e *Endpoint) { removed = append(removed, e.ID) },
	})
	if err != nil {
		t.Fatal(err)
	}
	eps := ids(4)
	u.Update(snap(eps...))
	a := handle(u, "e001")
	failN(a, 5, connectRefused)
	a.Start() // an attempt in flight across the swaps

	// Unrelated changes: one endpoint added, another turned warning with a new weight.
	eps2 := append(append([]discovery.Endpoint(nil), eps...), ep("e100"))
	eps2[2] = withHealth(weighted(eps2[2].ID, 2), discovery.HealthWarning)
	eps2[2].Address = eps[2].Address
	u.Update(snap(eps2...))
	if got := handle(u, "e001"); got != a || got.State() != Ejected || got.InFlight() != 1 || got.Data != "client:"+a.Address {
		t.Fatalf("handle after swap: same=%v state=%v inflight=%d data=%v", got == a, got.State(), got.InFlight(), got.Data)
	}
	// Critical in the registry: no traffic, but the handle and its ejection stay.
	eps3 := append([]discovery.Endpoint(nil), eps2...)
	eps3[1] = withHealth(eps3[1], discovery.HealthCritical)
	u.Update(snap(eps3...))
	if got := handle(u, "e001"); got != a || got.State() != Critical {
		t.Fatalf("critical: same=%v state=%v", got == a, got.State())
	}
	u.Update(snap(eps2...))
	if got := handle(u, "e001"); got != a || got.State() != Ejected {
		t.Fatalf("back from critical: same=%v state=%v, want the ejected handle", got == a, got.State())
	}
	a.Finish(status200)

	// A new address is a new endpoint; a missing ID is gone.
	eps4 := append([]discovery.Endpoint(nil), eps2[1:]...)
	eps4[0].Address = "moved:80"
	u.Update(snap(eps4...))
	if got := handle(u, "e001"); got == a || got.State() != Healthy {
		t.Fatalf("moved endpoint kept its old handle or state %v", got.State())
	}
	if want := []string{"e000", "e001", "e002", "e003", "e100", "e001"}; fmt.Sprint(made) != fmt.Sprint(want) {
		t.Errorf("OnEndpoint calls %v, want %v", made, want)
	}
	if want := []string{"e000", "e001"}; fmt.Sprint(slices.Sorted(slices.Values(removed))) != fmt.Sprint(want) {
		t.Errorf("OnRemove calls %v, want %v", removed, want)
	}
	if u.ejected.Load() != 0 || u.down.Load() != 0 {
		t.Errorf("counters ejected=%d down=%d after the ejected handle left, want 0", u.ejected.Load(), u.down.Load())
	}
}

func TestRunSweepsExpiredEjections(t *testing.T) {
	u, clk, rec := newTest(t, Config{}, snap(ids(3)...))
	u.sweepEvery = time.Millisecond
	failN(handle(u, "e002"), 5, connectRefused)
	clk.Advance(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, returned, _ := rec.snapshot(); len(returned) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not return the endpoint")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want %v", err, context.Canceled)
	}
}

// Next returns an endpoint whose ejection is over without taking a lock or calling Events: it
// must not wait behind a slow Events.StateChanged (notifyMu), nor do the O(N) work of the
// state counts. Run reports the return instead.
func TestNextReturnsWithoutLockOrEvents(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	clk, rec := newFakeClock(), &recorder{}
	u, err := New("svc", Config{}, Options{Now: clk.Now, Events: rec, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	u.Update(snap(ids(3)...))
	u.sweepEvery = time.Hour // only the signal of Next can make Run report the return
	h := homeOf(t, u, "e001")
	failN(handle(u, "e001"), 5, status500)
	clk.Advance(30 * time.Second)

	u.notifyMu.Lock() // as if an Events.StateChanged were slow
	got := make(chan string, 1)
	go func() { got <- first(u, h) }()
	select {
	case id := <-got:
		u.notifyMu.Unlock()
		if id != "e001" {
			t.Fatalf("key on %s, want it back on e001", id)
		}
	case <-time.After(5 * time.Second):
		u.notifyMu.Unlock()
		<-got
		t.Fatal("Next waited for the lock of Events.StateChanged")
	}
	if _, returned, _ := rec.snapshot(); len(returned) != 0 {
		t.Fatalf("Events.Returned %v called from Next", returned)
	}

	runUpstream(t, u)
	waitFor(t, "Run to report the return", func() bool {
		_, returned, counts := rec.snapshot()
		return len(returned) == 1 && returned[0] == "e001" && counts == StateCounts{Healthy: 3}
	})
	if n := logs.FilterMessage("endpoint returned").Len(); n != 1 {
		t.Errorf("%d \"endpoint returned\" lines, want 1", n)
	}
}

// Without Run, the next Update reports the returns requests noticed, those of the handles it
// removes included; and an endpoint's return is reported before its next ejection.
func TestReturnsReportedWithoutRun(t *testing.T) {
	u, clk, rec := newTest(t, Config{Outlier: OutlierConfig{MaxEjectionPercent: 100}}, snap(ids(4)...))
	for _, id := range []string{"e001", "e002", "e003"} {
		failN(handle(u, id), 5, status500)
	}
	clk.Advance(30 * time.Second)
	for _, id := range []string{"e001", "e002", "e003"} {
		h := homeOf(t, u, id)
		if got := first(u, h); got != id {
			t.Fatalf("key on %s, want it back on %s", got, id)
		}
	}
	failN(handle(u, "e003"), 5, status500) // ejected again before anyone reported its return
	ejected, returned, _ := rec.snapshot()
	if want := []string{"e003"}; fmt.Sprint(returned) != fmt.Sprint(want) || len(ejected) != 4 {
		t.Fatalf("before Update: returned %v, ejected %v; want %v, and 4 ejections", returned, ejected, want)
	}

	u.Update(snap(ids(2)...)) // e002 leaves
	_, returned, counts := rec.snapshot()
	if want := []string{"e001", "e002", "e003"}; fmt.Sprint(slices.Sorted(slices.Values(returned))) != fmt.Sprint(want) {
		t.Errorf("after Update: returned %v, want %v", returned, want)
	}
	if counts != (StateCounts{Healthy: 2}) {
		t.Errorf("last counts %+v, want 2 healthy", counts)
	}
}
