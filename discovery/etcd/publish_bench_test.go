package etcd

import (
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ringside-proxy/ringside/discovery"
)

// Targets for one service of 5,000 endpoints: decoding one watch update and publishing the
// complete snapshot it makes must take at most 20ms and allocate at most 10MB. A full list
// decodes all 5,000 entries, which the source does once at start and after each lost watch;
// its time budget is loose, a guard against order-of-magnitude regressions only, because on
// this shared machine its wall time swings with the load (about 20ms of CPU, 35–120ms seen).
const (
	bigService   = 5000
	budgetUpdate = 20 * time.Millisecond
	budgetList   = 250 * time.Millisecond
	budgetBytes  = 10 << 20
)

// bigServiceKVs returns n entries shaped like real registrations: tags, meta and a zone.
func bigServiceKVs(n int) []*mvccpb.KeyValue {
	kvs := make([]*mvccpb.KeyValue, n)
	for i := range kvs {
		kvs[i] = &mvccpb.KeyValue{
			Key: []byte(entryKey(DefaultPrefix, "cart", fmt.Sprintf("cart-%05d", i))),
			Value: fmt.Appendf(nil, `{"address":"10.%d.%d.%d","port":8080,"weight":%d,"tags":["v2","canary"],`+
				`"meta":{"version":"2.4.%d","pod":"cart-%05d"},"health":"passing","zone":"eu-west-1%c"}`,
				i>>16, (i>>8)&0xff, i&0xff, 1+i%3, i%10, i, 'a'+i%3),
			ModRevision: int64(i + 1),
		}
	}
	return kvs
}

// oneUpdate measures what the source does for one watch response that changes one endpoint of
// a 5,000-endpoint service: decode the event, apply it, build the complete snapshot, and pass
// it through Dedup to the update func.
func oneUpdate(b *testing.B) {
	st := newServiceState(DefaultPrefix, "cart", func(string, error) { b.Fatal("malformed") })
	st.reset(bigServiceKVs(bigService))
	delivered := 0
	update := discovery.Dedup(func(*discovery.Snapshot) { delivered++ })
	update(st.snapshot(1, time.Now()))
	k := []byte(entryKey(DefaultPrefix, "cart", "cart-02500"))
	values := [2][]byte{
		[]byte(`{"address":"10.0.9.196","port":8080,"weight":2,"tags":["v2"],"meta":{"version":"2.5.0"},"zone":"eu-west-1a"}`),
		[]byte(`{"address":"10.0.9.196","port":8080,"weight":3,"tags":["v2"],"meta":{"version":"2.5.1"},"zone":"eu-west-1a"}`),
	}
	events := []*clientv3.Event{{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: k}}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		events[0].Kv.Value = values[i%2] // a real change every time, so Dedup lets it through
		events[0].Kv.ModRevision = int64(bigService + i + 1)
		st.apply(events)
		update(st.snapshot(int64(bigService+i+1), time.Now()))
	}
	b.StopTimer()
	if delivered != b.N+1 {
		b.Fatalf("%d snapshots delivered for %d changes", delivered-1, b.N)
	}
}

// fullList measures a list of the same service: decode all 5,000 entries and publish.
func fullList(b *testing.B) {
	kvs := bigServiceKVs(bigService)
	st := newServiceState(DefaultPrefix, "cart", func(string, error) { b.Fatal("malformed") })
	update := discovery.Dedup(func(*discovery.Snapshot) {})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.reset(kvs)
		update(st.snapshot(int64(i), time.Now()))
	}
}

func BenchmarkOneUpdateOf5000Endpoints(b *testing.B) { oneUpdate(b) }

func BenchmarkListOf5000Endpoints(b *testing.B) { fullList(b) }

// TestOneUpdateOf5000EndpointsWithinBudget prints what one update of a 5,000-endpoint service
// costs, and fails above the targets. Time is not asserted under the race detector, which
// slows everything several-fold; allocation is.
func TestOneUpdateOf5000EndpointsWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	tests := []struct {
		name   string
		run    func(*testing.B)
		budget time.Duration
	}{
		{"one update", oneUpdate, budgetUpdate},
		{"full list", fullList, budgetList},
	}
	for _, tt := range tests {
		r := testing.Benchmark(tt.run)
		if r.N == 0 {
			t.Fatalf("%s: benchmark did not run", tt.name)
		}
		perOp := time.Duration(r.NsPerOp())
		mb := float64(r.AllocedBytesPerOp()) / (1 << 20)
		t.Logf("%s of %d endpoints: %v and %.2f MB (%d allocs) per op, %d ops",
			tt.name, bigService, perOp.Round(time.Microsecond), mb, r.AllocsPerOp(), r.N)
		if !RaceEnabled() && perOp > tt.budget {
			t.Errorf("%s: %v per op, budget %v", tt.name, perOp, tt.budget)
		}
		if r.AllocedBytesPerOp() > budgetBytes {
			t.Errorf("%s: %.2f MB allocated per op, budget %d MB", tt.name, mb, budgetBytes>>20)
		}
	}
}
