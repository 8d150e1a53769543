package balancer

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

// changes is an OnChange that remembers what it was told.
type changes struct {
	mu  sync.Mutex
	got []Change
}

func (c *changes) record(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, ch)
}

func (c *changes) kinds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ch := range c.got {
		out = append(out, fmt.Sprintf("%s %s %s", ch.Kind, ch.Endpoint, ch.Reason))
	}
	return out
}

// newWithChanges is newTest with an OnChange recorder.
func newWithChanges(t *testing.T, cfg Config, s *discovery.Snapshot) (*Upstream, *fakeClock, *changes) {
	t.Helper()
	clk, ch := newFakeClock(), &changes{}
	u, err := New("svc", cfg, Options{Now: clk.Now, OnChange: ch.record})
	if err != nil {
		t.Fatal(err)
	}
	u.Update(s)
	return u, clk, ch
}

// Draining an endpoint moves exactly its keys, each to the next endpoint of its walk, and
// undraining brings them all back.
func TestDrainMovesOnlyTheDrainedEndpointsKeys(t *testing.T) {
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(ids(10)...))
			hs := keyHashes(5000)
			before := homes(u, hs)
			next := make([]string, len(hs))
			for i, h := range hs {
				next[i] = second(u, h)
			}
			if err := u.Drain("e003", 0); err != nil {
				t.Fatal(err)
			}
			during := homes(u, hs)
			moved := 0
			for i := range hs {
				switch {
				case before[i] == "e003":
					moved++
					if want := next[i]; during[i] != want {
						t.Fatalf("key %d on %s while e003 drained, want its next endpoint %s", i, during[i], want)
					}
				case during[i] != before[i]:
					t.Fatalf("key %d moved from %s to %s though its endpoint was not drained", i, before[i], during[i])
				}
			}
			if moved == 0 {
				t.Fatal("no key had e003 as home: the test proves nothing")
			}
			if got := handle(u, "e003").State(); got != Drained {
				t.Errorf("state %v, want drained", got)
			}
			if err := u.Undrain("e003"); err != nil {
				t.Fatal(err)
			}
			if after := homes(u, hs); !slices.Equal(after, before) {
				t.Error("keys did not come back after undrain")
			}
		})
	}
}

// second returns the endpoint a pick for h returns after its first: where the key goes when
// its target is out.
func second(u *Upstream, h uint64) string {
	var p Pick
	u.Begin(&p, h, true)
	if _, err := p.Next(); err != nil {
		return err.Error()
	}
	e, err := p.Next()
	if err != nil {
		return err.Error()
	}
	return e.ID
}

// With a keep-keys window, a drained endpoint keeps the keys whose home it is and takes no
// others (not the fallbacks of an ejected endpoint); after the window it takes nothing.
func TestDrainKeepKeysKeepsOnlyHomeKeysUntilTheWindowEnds(t *testing.T) {
	u, clk, _ := newTest(t, Config{}, snap(ids(10)...))
	hs := keyHashes(5000)
	before := homes(u, hs)
	next := make([]string, len(hs))
	for i, h := range hs {
		next[i] = second(u, h)
	}
	if err := u.Drain("e003", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := u.Eject("e005", time.Hour); err != nil {
		t.Fatal(err)
	}
	kept, refused := 0, 0
	for i, h := range hs {
		got := first(u, h)
		switch {
		case before[i] == "e003":
			kept++
			if got != "e003" {
				t.Fatalf("key %d homed on e003 went to %s during the keep-keys window", i, got)
			}
		case got == "e003":
			t.Fatalf("key %d (home %s) went to the drained e003", i, before[i])
		case before[i] == "e005" && next[i] == "e003":
			refused++ // e005's key whose walk passed over e003, checked above
		}
	}
	if kept == 0 || refused == 0 {
		t.Fatalf("%d keys homed on e003, %d keys of e005 whose next was e003: the test proves nothing", kept, refused)
	}
	if got := handle(u, "e003").Status().DrainKeepKeysUntil; got.IsZero() {
		t.Error("status does not show the keep-keys window")
	}
	clk.Advance(time.Minute)
	for i, h := range hs {
		if got := first(u, h); got == "e003" {
			t.Fatalf("key %d still on e003 after the keep-keys window", i)
		}
	}
	if got := handle(u, "e003").Status().DrainKeepKeysUntil; !got.IsZero() {
		t.Errorf("status shows a keep-keys window that ended (%v)", got)
	}
}

// Panic mode leaves drained endpoints out of its count and never routes to them.
func TestDrainedEndpointsStayOutInPanicMode(t *testing.T) {
	u, _, _ := newTest(t, Config{PanicThreshold: 50}, snap(ids(4)...))
	for _, id := range []string{"e000", "e001", "e002"} {
		if err := u.Drain(id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if u.Panicking() {
		t.Fatal("panic mode with three endpoints drained and one healthy")
	}
	for _, h := range keyHashes(200) {
		if got := first(u, h); got != "e003" {
			t.Fatalf("pick %s, want e003, the only one not drained", got)
		}
	}
	failN(handle(u, "e003"), 5, connectRefused)
	if !u.Panicking() {
		t.Fatal("not in panic mode with the only endpoint left ejected")
	}
	for _, h := range keyHashes(200) {
		if got := first(u, h); got != "e003" {
			t.Fatalf("pick %s in panic mode, want the ejected e003, never a drained one", got)
		}
	}
}

// Overrides are kept by endpoint ID: a snapshot swap, a new address for the ID, or the
// endpoint leaving and coming back do not lose them; a weight lasts until the registry
// changes the endpoint's weight.
func TestOverridesSurviveSnapshotSwaps(t *testing.T) {
	u, _, ch := newWithChanges(t, Config{}, snap(ids(5)...))
	if err := u.Drain("e001", 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Eject("e002", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := u.SetWeight("e003", 5); err != nil {
		t.Fatal(err)
	}
	moved := ids(5)
	moved[1].Address = "elsewhere.test:8080"
	u.Update(snap(moved[0], moved[2], moved[3], moved[4])) // e001 leaves
	if ov := u.Overrides(); len(ov) != 3 || ov[0].Endpoint != "e001" || ov[0].Present || !ov[0].Drained {
		t.Fatalf("overrides with e001 gone: %+v", ov)
	}
	u.Update(snap(moved...)) // and comes back at a new address
	for id, want := range map[string]EndpointState{"e001": Drained, "e002": Ejected, "e003": Healthy} {
		if got := handle(u, id).State(); got != want {
			t.Errorf("%s is %v after the swaps, want %v", id, got, want)
		}
	}
	if got := handle(u, "e003").Weight(); got != 5 {
		t.Errorf("e003 weight %d, want the override 5", got)
	}
	rew := slices.Clone(moved)
	rew[3] = weighted("e003", 2)
	u.Update(snap(rew...))
	if st := handle(u, "e003").Status(); st.Weight != 2 || st.RegistryWeight != 2 {
		t.Errorf("e003 weight %d (registry %d) after the registry changed it, want 2", st.Weight, st.RegistryWeight)
	}
	if !slices.Contains(ch.kinds(), "weight e003 registry_changed_weight") {
		t.Errorf("dropping the weight override not reported: %q", ch.kinds())
	}
	if ov := u.Overrides(); len(ov) != 2 {
		t.Errorf("overrides %+v, want e001's drain and e002's ejection", ov)
	}
}

// An operator's weight rebuilds the table at once: the endpoint's share of the keys follows.
func TestSetWeightChangesKeyShare(t *testing.T) {
	for _, kind := range hashKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(ids(4)...))
			if err := u.SetWeight("e000", 4); err != nil {
				t.Fatal(err)
			}
			shares := u.KeyShares(DefaultShareSamples)
			if got := shares["e000"].Table; got < 0.5 || got > 0.64 { // 4/7 = 0.57
				t.Errorf("e000 table share %.3f with weight 4 of 7, want about 0.57", got)
			}
			if err := u.ClearWeight("e000"); err != nil {
				t.Fatal(err)
			}
			if got := u.KeyShares(DefaultShareSamples)["e000"].Now; got < 0.2 || got > 0.3 {
				t.Errorf("e000 share %.3f after clearing its weight, want about 0.25", got)
			}
			if len(u.Overrides()) != 0 {
				t.Errorf("overrides left: %+v", u.Overrides())
			}
		})
	}
}

// An operator's ejection lasts its time, is reported with reason "admin", is never refused by
// the ejection budget, and EndEjection ends it at once.
func TestOperatorEjection(t *testing.T) {
	u, clk, ch := newWithChanges(t, Config{}, snap(ids(4)...))
	failN(handle(u, "e000"), 5, connectRefused) // the budget (one endpoint) is spent
	if err := u.Eject("e001", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	st := handle(u, "e001").Status()
	if !st.Ejected || st.EjectReason != "admin" || st.EjectedUntil.Sub(clk.Now()) != 10*time.Second {
		t.Fatalf("status %+v, want ejected by admin for 10s", st)
	}
	clk.Advance(10 * time.Second)
	if got := handle(u, "e001").State(); got == Ejected {
		t.Error("still ejected after its time")
	}
	if err := u.Eject("e002", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := u.EndEjection("e002"); err != nil {
		t.Fatal(err)
	}
	if got := handle(u, "e002").State(); got != Healthy {
		t.Errorf("e002 %v after EndEjection, want healthy", got)
	}
	want := []string{"ejected e000 consecutive_gateway_failure", "ejected e001 admin", "ejected e002 admin", "returned e002 "}
	got := slices.DeleteFunc(ch.kinds(), func(s string) bool { return s[:8] == "snapshot" })
	if !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
}

// Bad overrides and unknown endpoints are refused with errors that say why.
func TestOverrideErrors(t *testing.T) {
	u, _, _ := newTest(t, Config{}, snap(ids(2)...))
	tests := []struct {
		name string
		err  error
	}{
		{"unknown drain", u.Drain("nope", 0)},
		{"negative keep", u.Drain("e000", -time.Second)},
		{"zero ejection", u.Eject("e000", 0)},
		{"weight 0", u.SetWeight("e000", 0)},
		{"weight too big", u.SetWeight("e000", MaxWeight+1)},
		{"unknown weight", u.SetWeight("nope", 2)},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if len(u.Overrides()) != 0 {
		t.Errorf("a refused override was stored: %+v", u.Overrides())
	}
}

// CopyOverrides carries an upstream's overrides to its replacement (a reload).
func TestCopyOverridesToANewUpstream(t *testing.T) {
	old, _, _ := newTest(t, Config{}, snap(ids(3)...))
	if err := old.Drain("e001", 0); err != nil {
		t.Fatal(err)
	}
	nu, _, _ := newTest(t, Config{Kind: Maglev}, nil)
	if n := nu.CopyOverrides(old); n != 1 {
		t.Fatalf("copied %d overrides, want 1", n)
	}
	nu.Update(snap(ids(3)...))
	if got := handle(nu, "e001").State(); got != Drained {
		t.Errorf("e001 %v on the new upstream, want drained", got)
	}
}

// OnChange hears of active-check verdicts both ways, with how the probe failed.
func TestOnChangeReportsActiveCheckTransitions(t *testing.T) {
	a := newHealthServer(t, 0)
	ch := &changes{}
	u, err := New("svc", activeConfig(), Options{OnChange: ch.record})
	if err != nil {
		t.Fatal(err)
	}
	u.Update(snap(discovery.Endpoint{ID: "a", Address: a.addr(), Weight: 1}))
	runUpstream(t, u)
	a.status.Store(http.StatusServiceUnavailable)
	waitFor(t, "a to fail its checks", func() bool { return slices.Contains(ch.kinds(), "active_unhealthy a status 503") })
	a.status.Store(http.StatusOK)
	waitFor(t, "a to pass again", func() bool { return slices.Contains(ch.kinds(), "active_healthy a ") })
}

// OnChange hears of each snapshot that changes something, with the endpoints that came and
// went, and not of one that repeats the last.
func TestOnChangeReportsSnapshots(t *testing.T) {
	u, _, ch := newWithChanges(t, Config{}, snap(ids(3)...))
	u.Update(snap(ids(3)...))
	u.Update(snap(append(ids(3)[1:], ep("e009"))...))
	if got, want := ch.kinds(), []string{"snapshot  ", "snapshot  "}; !slices.Equal(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}
	last := ch.got[1]
	if !slices.Equal(last.Added, []string{"e009"}) || !slices.Equal(last.Removed, []string{"e000"}) || last.Upstream != "svc" {
		t.Errorf("snapshot change %+v", last)
	}
}

// Every policy passes over a drained endpoint, keyed or not, and takes it back on undrain.
func TestDrainUnderEveryPolicy(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(string(kind), func(t *testing.T) {
			u, _, _ := newTest(t, Config{Kind: kind}, snap(ids(4)...))
			if err := u.Drain("e001", time.Hour); err != nil { // the window only keeps hashed keys
				t.Fatal(err)
			}
			count := func() int {
				n := 0
				for _, h := range keyHashes(400) {
					var p Pick
					u.Begin(&p, h, kind.hashed())
					if e, err := p.Next(); err == nil && e.ID == "e001" {
						n++
					}
				}
				return n
			}
			got := count()
			if kind.hashed() && got == 0 {
				t.Error("no key kept on e001 during its keep-keys window")
			}
			if !kind.hashed() && got != 0 {
				t.Errorf("%d requests on the drained e001", got)
			}
			if err := u.Drain("e001", 0); err != nil {
				t.Fatal(err)
			}
			if got := count(); got != 0 {
				t.Errorf("%d requests on the drained e001", got)
			}
			if err := u.Undrain("e001"); err != nil {
				t.Fatal(err)
			}
			if got := count(); got == 0 {
				t.Error("no request on e001 after undrain")
			}
		})
	}
}

// Clearing an endpoint's overrides ends only an operator's ejection still in force: after
// one ran out, an outlier ejection for a real failure stays.
func TestClearOverridesLeavesAnOutlierEjection(t *testing.T) {
	u, clk, _ := newWithChanges(t, Config{}, snap(ids(4)...))
	if err := u.Eject("e001", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Second) // the operator's ejection has run out
	homes(u, keyHashes(1000))     // requests: the return is noticed
	failN(handle(u, "e001"), 5, connectRefused)
	if st := handle(u, "e001").Status(); !st.Ejected || st.EjectReason == "admin" {
		t.Fatalf("status %+v, want ejected by outlier detection", st)
	}
	if _, err := u.ClearOverrides("e001"); err != nil {
		t.Fatal(err)
	}
	if st := handle(u, "e001").Status(); !st.Ejected {
		t.Fatalf("status %+v after ClearOverrides: the failing endpoint was put back", st)
	}
}
