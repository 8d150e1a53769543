package etcd

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fleetRemoval returns a state holding n endpoints and the watch events that delete them all,
// in key order, as one watch response delivers the expiry of a fleet's leases.
func fleetRemoval(tb testing.TB, n int) (*serviceState, []*clientv3.Event) {
	tb.Helper()
	kvs := bigServiceKVs(n)
	st := newServiceState(DefaultPrefix, "cart", func(string, error) { tb.Fatal("malformed") })
	st.reset(kvs)
	events := make([]*clientv3.Event, n)
	for i, kv := range kvs {
		events[i] = &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: int64(n + i + 1)}}
	}
	return st, events
}

// A watch response that removes a whole fleet is applied in time linear in its size: 32 times
// the endpoints take 32 to 160 times as long (measured; the larger fleet no longer fits in
// the caches), not thousands (once a bug: each delete moved the tail of the sorted slice,
// O(N²) for the response: x4180 measured).
func TestFleetRemovalInOneResponseLinear(t *testing.T) {
	const small, large = 500, 16000
	timeOf := func(n int) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 3 { // the best of three, against a noisy machine
			st, events := fleetRemoval(t, n)
			runtime.GC()
			start := time.Now()
			st.apply(events)
			best = min(best, time.Since(start))
			if left := len(st.endpoints); left != 0 {
				t.Fatalf("%d endpoints left after a response deleting all %d", left, n)
			}
		}
		return best
	}
	ts, tl := timeOf(small), timeOf(large)
	ratio := float64(tl) / float64(max(ts, 1))
	t.Logf("one response removing %d endpoints: %v; %d: %v (x%.1f for x%d endpoints)", small, ts, large, tl, ratio, large/small)
	if ratio > 512 {
		t.Errorf("removing %d endpoints took %.1f times as long as %d, want about %d (linear), at most 512", large, ratio, small, large/small)
	}
}

// BenchmarkFleetRemovalInOneResponse applies one watch response deleting every endpoint; ns/op
// is per fleet, so linear removal shows as ns/op growing with N, not with N².
func BenchmarkFleetRemovalInOneResponse(b *testing.B) {
	for _, n := range []int{1000, 4000, 16000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				st, events := fleetRemoval(b, n)
				b.StartTimer()
				st.apply(events)
			}
		})
	}
}
