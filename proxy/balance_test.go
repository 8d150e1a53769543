package proxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// homes returns the endpoint that answers each of keys, with every endpoint healthy.
func (s *stack) homes(keys []string) map[string]string {
	s.t.Helper()
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		code, _, id := s.get("/", "X-User-ID", k)
		if code != 200 {
			s.t.Fatalf("key %s: %d", k, code)
		}
		m[k] = id
	}
	return m
}

func userKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("user-", i)
	}
	return keys
}

func keyedConfig() Config { return Config{Keys: []string{"header:X-User-ID"}} }

// One key always reaches one endpoint: 10,000 requests over 10 keys (2,000 under the race
// detector), sent concurrently. The requests enter the handler in process (the endpoints are
// real servers on loopback), to keep the test quick.
func TestStickiness(t *testing.T) {
	var backends []*testBackend
	for i := range 4 {
		backends = append(backends, startBackend(t, fmt.Sprint("b", i), okHandler("ok")))
	}
	s := newStack(t, stackOpts{cfg: keyedConfig()}, backends...)
	keys := userKeys(10)
	home := s.homes(keys)
	perKey := 1000
	if raceEnabled {
		perKey = 200
	}
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req fasthttp.Request
			req.SetRequestURI("/")
			req.Header.SetHost("front")
			req.Header.Set("X-User-ID", k)
			var ctx fasthttp.RequestCtx
			peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}
			for range perKey {
				ctx.Init(&req, peer, nil)
				s.h.ServeFastHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 || string(ctx.Response.Header.Peek("X-Backend")) != home[k] {
					if wrong.Add(1) == 1 {
						t.Errorf("key %s: %d %q from %q, home %q", k, ctx.Response.StatusCode(), ctx.Response.Body(),
							ctx.Response.Header.Peek("X-Backend"), home[k])
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d of %d requests left their key's endpoint (or failed)", n, perKey*len(keys))
	}
	if distinct := len(valuesOf(home)); distinct < 2 {
		t.Fatalf("10 keys all on one endpoint: the test proves nothing")
	}
}

func valuesOf(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// Removing an endpoint moves only its keys; adding it back returns them; adding a new one
// takes keys only onto itself.
func TestMembershipChangesMoveOnlyAffectedKeys(t *testing.T) {
	var backends []*testBackend
	for i := range 5 {
		backends = append(backends, startBackend(t, fmt.Sprint("b", i), okHandler("ok")))
	}
	s := newStack(t, stackOpts{cfg: keyedConfig()}, backends[:4]...)
	keys := userKeys(300)
	before := s.homes(keys)

	s.setBackends(backends[:3]...) // b3 leaves
	after := s.homes(keys)
	moved := 0
	for _, k := range keys {
		switch {
		case before[k] == "b3":
			moved++
			if after[k] == "b3" {
				t.Fatalf("key %s still on the removed endpoint", k)
			}
		case after[k] != before[k]:
			t.Fatalf("key %s moved from %s to %s though %s stayed", k, before[k], after[k], before[k])
		}
	}
	if moved == 0 {
		t.Fatal("the removed endpoint had no keys: the test proves nothing")
	}

	s.setBackends(backends[:4]...) // b3 is back
	for k, id := range s.homes(keys) {
		if id != before[k] {
			t.Fatalf("key %s on %s after b3 came back, was on %s", k, id, before[k])
		}
	}

	s.setBackends(backends...) // b4 joins
	gained := 0
	for k, id := range s.homes(keys) {
		if id != before[k] {
			if id != "b4" {
				t.Fatalf("key %s moved from %s to %s when b4 joined", k, before[k], id)
			}
			gained++
		}
	}
	if gained == 0 || gained > len(keys)/3 {
		t.Fatalf("b4 took %d of %d keys, want about a fifth", gained, len(keys))
	}
}

// fakeClock is a settable clock for the balancer's ejection timing.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// toggle is an endpoint handler that fails with 503 while failing is set.
func toggle(failing *atomic.Bool) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if failing.Load() {
			ctx.SetStatusCode(503)
			return
		}
		ctx.SetBodyString("ok")
	}
}

// An endpoint failing with 503s is ejected (its keys go elsewhere, clients see no failure
// thanks to retries), and gets its keys back when the ejection is over.
func TestEjectionAndReturn(t *testing.T) {
	var failing atomic.Bool
	sick := startBackend(t, "sick", toggle(&failing))
	others := []*testBackend{startBackend(t, "b1", okHandler("ok")), startBackend(t, "b2", okHandler("ok"))}
	clock := newFakeClock()
	s := newStack(t, stackOpts{
		cfg:     keyedConfig(),
		bcfg:    balancer.Config{Outlier: balancer.OutlierConfig{MaxEjectionPercent: 50}},
		now:     clock.now,
		metrics: true,
	}, append(others, sick)...)
	keys := userKeys(60)
	home := s.homes(keys)
	var sickKeys []string
	for _, k := range keys {
		if home[k] == "sick" {
			sickKeys = append(sickKeys, k)
		}
	}
	if len(sickKeys) < 5 {
		t.Fatalf("only %d keys on the sick endpoint", len(sickKeys))
	}

	failing.Store(true)
	for i := range 10 {
		if code, _, id := s.get("/", "X-User-ID", sickKeys[i%len(sickKeys)]); code != 200 || id == "sick" {
			t.Fatalf("request %d: %d from %s; want a retry to hide the failure", i, code, id)
		}
	}
	if got := metricValue(t, s.metrics.ejections.WithLabelValues("svc", "sick", "consecutive_gateway_failure")); got != 1 {
		t.Fatalf("ejections = %v, want 1", got)
	}
	hitsAtEjection := sick.hits.Load()
	for _, k := range sickKeys {
		if _, _, id := s.get("/", "X-User-ID", k); id == "sick" {
			t.Fatal("the ejected endpoint still answers")
		}
	}
	if n := sick.hits.Load() - hitsAtEjection; n != 0 {
		t.Fatalf("the ejected endpoint got %d first tries", n)
	}
	for k, id := range s.homes(keys) {
		if home[k] != "sick" && id != home[k] {
			t.Fatalf("key %s moved from healthy %s to %s", k, home[k], id)
		}
	}

	failing.Store(false)
	clock.advance(31 * time.Second) // past the first ejection's 30s
	for k, id := range s.homes(keys) {
		if id != home[k] {
			t.Fatalf("key %s on %s after the return, home %s", k, id, home[k])
		}
	}
}

// When too few endpoints are healthy, ejection is ignored rather than piling everything on
// the survivors; with panic mode off, the ejected stay out.
func TestPanicThreshold(t *testing.T) {
	for _, panicOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("panic=%v", panicOn), func(t *testing.T) {
			var failing atomic.Bool
			var sick []*testBackend
			for i := range 3 {
				sick = append(sick, startBackend(t, fmt.Sprint("sick", i), toggle(&failing)))
			}
			well := startBackend(t, "well", okHandler("ok"))
			threshold := 50.0
			if !panicOn {
				threshold = -1
			}
			s := newStack(t, stackOpts{
				cfg: keyedConfig(),
				bcfg: balancer.Config{PanicThreshold: threshold, Outlier: balancer.OutlierConfig{
					MaxEjectionPercent: 100, ConsecutiveGatewayFailure: 2, Consecutive5xx: 2,
				}},
			}, append(sick, well)...)
			keys := userKeys(80)
			s.homes(keys)
			failing.Store(true)
			for range 3 {
				for _, k := range keys {
					s.get("/", "X-User-ID", k)
				}
			}
			failing.Store(false)
			before := map[string]int64{}
			for _, b := range sick {
				before[b.id] = b.hits.Load()
			}
			for _, k := range keys {
				if code, _, _ := s.get("/", "X-User-ID", k); code != 200 {
					t.Fatalf("key %s: %d", k, code)
				}
			}
			served := 0
			for _, b := range sick {
				if b.hits.Load() > before[b.id] {
					served++
				}
			}
			if panicOn && served != 3 {
				t.Fatalf("in panic mode %d of 3 ejected endpoints got traffic, want all", served)
			}
			if !panicOn && served != 0 {
				t.Fatalf("without panic mode %d ejected endpoints got traffic", served)
			}
		})
	}
}
