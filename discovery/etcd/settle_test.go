package etcd_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

// etcd comes back empty (restored from an old backup, a member rebuilt) and the instances put
// their keys back one by one; c died meanwhile and never does. The source lists again after
// the outage: while the registry settles, no partial view may be applied (each would move
// users to other instances and back), so a and b stay and c is kept; once the window is
// over the full view applies and c goes, within the window plus one update.
func TestWatchHoldsRemovalsWhileEtcdRefills(t *testing.T) {
	const settle = 2 * time.Second
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	for _, id := range []string{"a", "b", "c"} {
		put(t, cli, key("cart", id), `{"address":"10.0.0.1","port":8080}`)
	}
	src, err := etcd.NewSource(etcd.Config{
		Endpoints:        srv.Endpoints(),
		ProgressInterval: 200 * time.Millisecond,
		Backoff:          discovery.Backoff{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		Pacing:           discovery.Pacing{Settle: settle, Coalesce: 10 * time.Millisecond},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	watch(t, src, []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "a", "b", "c")
	before := rec.count("cart")

	restarting := time.Now() // the settle window starts after this, once etcd answers
	srv.RestartEmpty(t)
	restarted := time.Now()
	other := srv.Client(t)
	put(t, other, key("cart", "a"), `{"address":"10.0.0.1","port":8080}`)
	time.Sleep(300 * time.Millisecond)
	put(t, other, key("cart", "b"), `{"address":"10.0.0.1","port":8080}`)

	rec.waitIDs(t, "cart", "a", "b")
	removed, sinceRestarting := time.Since(restarted), time.Since(restarting)
	rec.mu.Lock()
	after := slices.Clone(rec.snaps["cart"][before:])
	rec.mu.Unlock()
	for _, s := range after[:len(after)-1] {
		if ids := snapshotIDs(s); !slices.Equal(ids, []string{"a", "b", "c"}) {
			t.Errorf("while etcd refilled, a snapshot of %v was delivered: a partial view, want a, b, c held", ids)
		}
	}
	if sinceRestarting < settle {
		t.Errorf("c removed %v after etcd's restart began, within the %v settle window", sinceRestarting.Round(time.Millisecond), settle)
	}
	// The relist waits for the stalled watch to be noticed: two progress intervals, and a
	// retry.
	if limit := settle + 2*time.Second; removed > limit {
		t.Errorf("c removed %v after etcd came back, want within %v", removed.Round(time.Millisecond), limit)
	}
}
