package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// The target of issue #4: "an endpoint that starts refusing connections stops getting first
// tries within 1 s or 10 failed requests, whichever first, with 0 client-visible failures for
// GETs". Default outlier and retry settings; the requests are sequential so that each failed
// first try is seen (as a retry with reason "connect") with its time.
func TestRefusingEndpointStopsGettingFirstTries(t *testing.T) {
	tests := []struct {
		name     string
		gap      time.Duration // between requests
		onlyHome bool          // send only keys whose home is the victim
	}{
		{name: "busy", gap: 0},
		{name: "quiet", gap: 250 * time.Millisecond, onlyHome: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			victim := startBackend(t, "victim", okHandler("ok"))
			others := []*testBackend{startBackend(t, "b1", okHandler("ok")), startBackend(t, "b2", okHandler("ok"))}
			s := newStack(t, stackOpts{cfg: keyedConfig(), metrics: true}, append(others, victim)...)
			keys := userKeys(90)
			if tt.onlyHome {
				home := s.homes(keys)
				keys = keys[:0]
				for k, id := range home {
					if id == "victim" {
						keys = append(keys, k)
					}
				}
			}
			connectRetries := s.metrics.retries.WithLabelValues("svc", "connect")

			victim.stop() // refuses connections from now on
			stopped := time.Now()
			var failures int
			var lastFailure time.Time
			for i := 0; time.Since(stopped) < 2500*time.Millisecond; i++ {
				before := metricValue(t, connectRetries)
				code, _, id := s.get("/", "X-User-ID", keys[i%len(keys)])
				if code != 200 || id == "victim" {
					t.Fatalf("request %d: %d from %q: a client saw the failure", i, code, id)
				}
				if metricValue(t, connectRetries) > before {
					failures++
					lastFailure = time.Now()
				}
				time.Sleep(tt.gap)
			}
			if failures == 0 {
				t.Fatal("no first try ever went to the victim: the test proves nothing")
			}
			took := lastFailure.Sub(stopped)
			t.Logf("%d failed first tries, the last %v after the endpoint stopped", failures, took.Round(time.Millisecond))
			if failures > 10 {
				t.Errorf("%d failed first tries, want at most 10", failures)
			}
			// 1s, plus the time of the request that observes it on a loaded machine.
			if took > 1300*time.Millisecond {
				t.Errorf("first tries went on for %v, want at most 1s", took)
			}
			if st := victimState(s.up); st != balancer.Ejected {
				t.Errorf("victim state %v, want ejected", st)
			}
		})
	}
}

func victimState(up *balancer.Upstream) balancer.EndpointState {
	for _, ep := range up.Endpoints() {
		if ep.ID == "victim" {
			return ep.State()
		}
	}
	panic(fmt.Sprint("no victim in ", up.Endpoints()))
}
