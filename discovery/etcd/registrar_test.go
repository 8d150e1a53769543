package etcd_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

func cartRegistration(ttl time.Duration) discovery.Registration {
	return discovery.Registration{
		ID:      "cart-1",
		Service: "cart",
		Address: "10.1.2.3",
		Port:    8080,
		Tags:    []string{"v2"},
		Meta:    map[string]string{"version": "2.4.1"},
		Weights: discovery.Weights{Passing: 3, Warning: 1},
		TTL:     ttl,
	}
}

func newRegistrar(t testing.TB, srv *etcdtest.Server, reg discovery.Registration) *etcd.Registrar {
	t.Helper()
	r, err := etcd.NewRegistrar(etcd.Config{
		Endpoints: srv.Endpoints(),
		Backoff:   discovery.Backoff{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	}, reg, nil)
	if err != nil {
		t.Fatalf("NewRegistrar: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// run runs r.Run until stop is called; stop returns what Run returned.
func run(t testing.TB, r *etcd.Registrar) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitTimeout):
				t.Fatalf("Run did not return within %v of cancel", waitTimeout)
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// get returns the key's current value, or nil.
func get(t testing.TB, cli *clientv3.Client, k string) *mvccpb.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, k)
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

// waitKey waits until the key's value (nil when absent) satisfies ok, and returns it.
func waitKey(t testing.TB, cli *clientv3.Client, k, what string, ok func(*mvccpb.KeyValue) bool) *mvccpb.KeyValue {
	t.Helper()
	var kv *mvccpb.KeyValue
	waitUntil(t, k+" "+what, func() bool {
		kv = get(t, cli, k)
		return ok(kv)
	})
	return kv
}

func present(kv *mvccpb.KeyValue) bool { return kv != nil }
func absent(kv *mvccpb.KeyValue) bool  { return kv == nil }

// The entry a registrar writes is the entry a source reads, under a lease of the asked TTL;
// Deregister removes it at once, and Run, still running, does not write it back.
func TestRegistrarWritesLeasedEntryAndDeregisterRemovesIt(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	r := newRegistrar(t, srv, cartRegistration(2*time.Second))
	stop := run(t, r)
	rec := newRecorder()
	watch(t, newSource(t, srv, nil, nil), []string{"cart"}, rec.update)

	got := rec.waitIDs(t, "cart", "cart-1").Endpoints[0]
	want := discovery.Endpoint{ID: "cart-1", Address: "10.1.2.3:8080", Weight: 3,
		Tags: []string{"v2"}, Meta: map[string]string{"version": "2.4.1"}}
	if !discovery.NewSnapshot("cart", 0, []discovery.Endpoint{got}, time.Time{}).Equal(
		discovery.NewSnapshot("cart", 0, []discovery.Endpoint{want}, time.Time{})) {
		t.Fatalf("source read %+v, want %+v", got, want)
	}
	kv := get(t, cli, r.Key())
	if kv == nil || kv.Lease == 0 {
		t.Fatalf("entry %v has no lease", kv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 2 {
		t.Errorf("lease granted for %ds, want 2", ttl.GrantedTTL)
	}

	// Watch the key from here on: after Deregister, nothing may write it again.
	wch := cli.Watch(ctx, r.Key(), clientv3.WithRev(kv.ModRevision+1))
	if err := r.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if kv := get(t, cli, r.Key()); kv != nil {
		t.Fatalf("entry still there right after Deregister: %s", kv.Value)
	}
	rec.waitIDs(t, "cart")
	if err := r.Deregister(ctx); err != nil {
		t.Errorf("second Deregister: %v", err)
	}
	// Run notices the revoked lease within one keep-alive round (TTL/3, 0.7s) and would
	// register again after at most one backoff (50ms); 1.5s covers both with a wide margin.
	quiet := time.After(1500 * time.Millisecond)
	for done := false; !done; {
		select {
		case resp := <-wch:
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					t.Fatalf("entry written again after Deregister: %s", ev.Kv.Value)
				}
			}
		case <-quiet:
			done = true
		}
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// A Deregister that cannot revoke the lease (here its context has already ended; a transient
// etcd error does the same) still stops Run keeping the lease alive, so the entry goes by
// itself one TTL later, as documented, instead of being renewed for as long as Run runs; and
// Run does not write it again under a new lease. The context ended before the call, so
// Deregister fails either waiting for its lock or at the revocation (which of the two is up
// to select); both must stop the keep-alive.
//
// The other half of that fix, register recording the new lease before its Put rather than
// after, has no test: it matters only when etcd applies the Put but its answer is lost or
// times out, which the embedded etcd cannot be made to do on cue. By reasoning: with the lease
// recorded after the Put, such a Put left r.lease at the old lease (or 0), so Deregister
// revoked the wrong lease (or returned at once) while the key lived on under the new one until
// its TTL; recorded before, Deregister revokes the lease that may hold the key, and revoking
// one that holds nothing is harmless.
func TestRegistrarFailedDeregisterStopsKeepAlive(t *testing.T) {
	const ttl = 2 * time.Second
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	r := newRegistrar(t, srv, cartRegistration(ttl))
	stop := run(t, r)
	first := waitKey(t, cli, r.Key(), "present", present)

	wctx, wcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer wcancel()
	wch := cli.Watch(wctx, r.Key(), clientv3.WithRev(first.ModRevision+1))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	deregistered := time.Now()
	if err := r.Deregister(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Deregister with a canceled context: %v, want context.Canceled", err)
	}

	// The last keep-alive was sent at most TTL/3 before Deregister (or one may be in flight);
	// etcd expires the lease one TTL after it, checking every 500ms: two TTLs is ample.
	limit := 2 * ttl
	if etcd.RaceEnabled() {
		limit += ttl // etcd itself runs under the race detector too
	}
	for get(t, cli, r.Key()) != nil {
		if time.Since(deregistered) > limit {
			t.Fatalf("entry still there %v after a failed Deregister (TTL %v): its lease is still kept alive",
				time.Since(deregistered).Round(time.Millisecond), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("entry gone %v after the failed Deregister (TTL %v)", time.Since(deregistered).Round(time.Millisecond), ttl)

	// Run, still running, must not register again: the only event is the expiry's delete.
	// Run would notice the lost lease at once and write again after one backoff (50ms).
	quiet := time.After(time.Second)
	for done := false; !done; {
		select {
		case resp := <-wch:
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					t.Fatalf("entry written again after Deregister: %s", ev.Kv.Value)
				}
			}
		case <-quiet:
			done = true
		}
	}
	if kv := get(t, cli, r.Key()); kv != nil {
		t.Fatalf("entry back after Deregister: %s", kv.Value)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// A process that dies without deregistering: its entry stays until the lease runs out, then
// goes by itself.
func TestRegistrarEntryExpiresAfterCrash(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	r := newRegistrar(t, srv, cartRegistration(time.Second))
	stop := run(t, r)
	waitKey(t, cli, r.Key(), "present", present)

	// The crash: keep-alives stop, the connection closes, nothing is revoked.
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	if get(t, cli, r.Key()) == nil {
		t.Fatal("entry gone at once; it must last until the lease expires")
	}
	waitKey(t, cli, r.Key(), "absent after the TTL", absent)
	t.Logf("entry gone %v after the crash (TTL 1s)", time.Since(crashed).Round(time.Millisecond))
}

// Someone revokes the lease (or etcd lost it): Run writes the entry again under a new one.
func TestRegistrarRegistersAgainAfterLeaseLoss(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	r := newRegistrar(t, srv, cartRegistration(5*time.Second))
	run(t, r)
	first := waitKey(t, cli, r.Key(), "present", present)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(first.Lease)); err != nil {
		t.Fatal(err)
	}
	again := waitKey(t, cli, r.Key(), "under a new lease", func(kv *mvccpb.KeyValue) bool {
		return kv != nil && kv.Lease != first.Lease
	})
	if again.Lease == 0 {
		t.Fatal("written again without a lease")
	}
}

// etcd is down for longer than the TTL: the keep-alive gives up, and once etcd is back Run
// writes the entry under a new lease that is kept alive (the entry outlives the old lease).
func TestRegistrarRegistersAgainAfterOutageLongerThanTTL(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	r := newRegistrar(t, srv, cartRegistration(time.Second))
	run(t, r)
	first := waitKey(t, cli, r.Key(), "present", present)
	// Let a few keep-alive rounds (TTL/3 each) complete: until clientv3 has heard the lease's
	// TTL from etcd, it waits DialTimeout+1s for the first answer instead of one TTL, and
	// etcd, which extends every lease when it restarts, would then see the old lease renewed.
	time.Sleep(time.Second)

	srv.Stop()
	// Longer than the TTL plus clientv3's once-a-second deadline check: the keep-alive gives up.
	time.Sleep(3 * time.Second)
	srv.Restart(t)

	again := waitKey(t, cli, r.Key(), "under a new lease", func(kv *mvccpb.KeyValue) bool {
		return kv != nil && kv.Lease != first.Lease
	})
	// Two TTLs later the old lease has surely expired; the entry must still be there, alive.
	time.Sleep(2 * time.Second)
	kv := get(t, cli, r.Key())
	if kv == nil || kv.Lease != again.Lease {
		t.Fatalf("entry after two TTLs: %v, want it under lease %x", kv, again.Lease)
	}
}

// The HTTP check's result becomes the entry's health and the weight for that health.
func TestRegistrarWritesHealthCheckResult(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer app.Close()

	srv := etcdtest.Start(t)
	reg := cartRegistration(5 * time.Second)
	reg.Check = discovery.Check{HTTP: app.URL + "/healthz", Interval: 50 * time.Millisecond}
	r := newRegistrar(t, srv, reg)
	run(t, r)
	rec := newRecorder()
	watch(t, newSource(t, srv, nil, nil), []string{"cart"}, rec.update)

	tests := []struct {
		status     int
		wantHealth discovery.Health
		wantWeight int
	}{
		{http.StatusOK, discovery.HealthPassing, 3},
		{http.StatusTooManyRequests, discovery.HealthWarning, 1},
		{http.StatusInternalServerError, discovery.HealthCritical, 3},
		{http.StatusNoContent, discovery.HealthPassing, 3},
	}
	for _, tt := range tests {
		status.Store(int32(tt.status))
		rec.waitFor(t, "cart", "health "+tt.wantHealth.String(), func(s *discovery.Snapshot) bool {
			return len(s.Endpoints) == 1 && s.Endpoints[0].Health == tt.wantHealth && s.Endpoints[0].Weight == tt.wantWeight
		})
	}
}

func TestNewRegistrarRefusesBadRegistrations(t *testing.T) {
	cfg := etcd.Config{Endpoints: []string{"127.0.0.1:2379"}}
	good := cartRegistration(0)
	tests := []struct {
		name   string
		change func(*discovery.Registration)
	}{
		{"no service", func(r *discovery.Registration) { r.Service = "" }},
		{"service with a slash", func(r *discovery.Registration) { r.Service = "a/b" }},
		{"id with a slash", func(r *discovery.Registration) { r.ID = "a/b" }},
		{"id with a space", func(r *discovery.Registration) { r.ID = "a b" }},
		{"address with a port", func(r *discovery.Registration) { r.Address = "10.0.0.1:80" }},
		{"address that is a url", func(r *discovery.Registration) { r.Address = "http://10.0.0.1" }},
		{"port 0", func(r *discovery.Registration) { r.Port = 0 }},
		{"weight above the maximum", func(r *discovery.Registration) { r.Weights.Passing = etcd.MaxWeight + 1 }},
		{"negative ttl", func(r *discovery.Registration) { r.TTL = -time.Second }},
		{"check url without scheme", func(r *discovery.Registration) { r.Check.HTTP = "localhost/healthz" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := good
			tt.change(&reg)
			if _, err := etcd.NewRegistrar(cfg, reg, nil); !errors.Is(err, discovery.ErrBadRegistration) {
				t.Fatalf("NewRegistrar: %v, want ErrBadRegistration", err)
			}
		})
	}
	if _, err := etcd.NewRegistrar(cfg, good, nil); err != nil {
		t.Fatalf("NewRegistrar of the good registration: %v", err)
	}
}

// Run refuses to run twice at once, and stops with ErrClosed when the registrar is closed.
func TestRegistrarRunOnceAndClose(t *testing.T) {
	srv := etcdtest.Start(t)
	r := newRegistrar(t, srv, cartRegistration(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitKey(t, srv.Client(t), r.Key(), "present", present)
	if err := r.Run(ctx); !errors.Is(err, etcd.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, etcd.ErrClosed) {
			t.Errorf("Run after Close returned %v, want ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after Close")
	}
	if err := r.Run(ctx); !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Run on a closed registrar: %v, want ErrClosed", err)
	}
	// The entry outlives Close (as after a crash) and Deregister can no longer reach etcd.
	if err := r.Deregister(ctx); !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Deregister after Close: %v, want ErrClosed", err)
	}
}
