package etcd_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

// The bug not to copy: etcd's naming resolver stops hearing anything once its watch revision
// is compacted. Here the service changes and is compacted between the source's list and its
// watch, so the watch starts below the compacted revision; the source must list again and end
// up with exactly what etcd holds.
func TestWatchListsAgainAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	for _, id := range []string{"a", "b", "c"} {
		put(t, cli, key("cart", id), `{"address":"10.0.0.1","port":8080}`)
	}

	core, logs := zapobserver.New(zapcore.InfoLevel)
	src, err := etcd.NewSource(etcd.Config{
		Endpoints: srv.Endpoints(),
		// Long enough that nothing but the compaction can make the source list again.
		ProgressInterval: time.Minute,
	}, zap.New(core), nil)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	etcd.SetAfterList(src, func(string) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			ops := []clientv3.Op{
				clientv3.OpDelete(key("cart", "b")),
				clientv3.OpPut(key("cart", "a"), `{"address":"10.0.0.1","port":9090}`),
				clientv3.OpPut(key("cart", "d"), `{"address":"10.0.0.4","port":8080}`),
				clientv3.OpPut(key("cart", "e"), `{"address":"10.0.0.5","port":8080}`),
				clientv3.OpDelete(key("cart", "e")),
			}
			var rev int64
			for _, op := range ops {
				resp, err := cli.Do(ctx, op)
				if err != nil {
					t.Errorf("%v: %v", op, err)
					return
				}
				rev = max(rev, headerRevision(resp))
			}
			if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
				t.Errorf("compact at %d: %v", rev, err)
			}
		})
	})

	rec := newRecorder()
	watch(t, src, []string{"cart"}, rec.update)
	rec.waitFor(t, "cart", "a on 9090, c, d", func(s *discovery.Snapshot) bool {
		return slices.Equal(snapshotIDs(s), []string{"a", "c", "d"}) && s.Endpoints[0].Address == "10.0.0.1:9090"
	})
	if n := logs.FilterMessage("etcd watch compacted; listing again").Len(); n != 1 {
		t.Errorf("%d compaction log lines, want 1 (the state must come from listing again)", n)
	}
}

func headerRevision(r clientv3.OpResponse) int64 {
	switch {
	case r.Put() != nil:
		return r.Put().Header.Revision
	case r.Del() != nil:
		return r.Del().Header.Revision
	}
	return 0
}

// etcd stops under a running watch. The source notices (Observer.Failed), keeps the last
// snapshot, and when etcd is back lists again: keys deleted and added meanwhile, by another
// client, are exactly reflected.
func TestWatchResyncsAfterServerRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	for _, id := range []string{"a", "b", "c"} {
		put(t, cli, key("cart", id), `{"address":"10.0.0.1","port":8080}`)
	}
	obs := newObserver()
	rec := newRecorder()
	watch(t, newSource(t, srv, nil, obs), []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "a", "b", "c")

	srv.Stop()
	waitUntil(t, "Observer.Failed while etcd is down", func() bool { return len(obs.failures("cart")) > 0 })
	before := rec.count("cart")
	srv.Restart(t)

	other := srv.Client(t)
	del(t, other, key("cart", "b"))
	put(t, other, key("cart", "d"), `{"address":"10.0.0.4","port":8080}`)
	rec.waitIDs(t, "cart", "a", "c", "d")
	if rec.count("cart") == before {
		t.Fatal("no snapshot after the restart")
	}
}

// etcd comes back empty — restored from an old backup, or a member rebuilt — with revisions
// lower than the source has seen. clientv3 resumes the watch from the old revision, now in the
// future, where it would wait for ever (etcd does not even answer progress requests for it);
// the source must notice the silence and list again.
func TestWatchResyncsAfterServerComesBackEmpty(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	for i := range 20 { // push the old revision well above what the new cluster will reach
		put(t, cli, key("cart", "a"), fmt.Sprintf(`{"address":"10.0.0.1","port":%d}`, 8000+i))
	}
	put(t, cli, key("cart", "b"), `{"address":"10.0.0.2","port":8080}`)
	obs := newObserver()
	rec := newRecorder()
	watch(t, newSource(t, srv, nil, obs), []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "a", "b")

	srv.RestartEmpty(t)
	put(t, srv.Client(t), key("cart", "z"), `{"address":"10.0.0.26","port":8080}`)
	rec.waitIDs(t, "cart", "z")
	if len(obs.failures("cart")) == 0 {
		t.Error("no Observer.Failed for the lost watch")
	}
}

// waitUntil polls cond until it holds or waitTimeout passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A slow consumer is not a silent etcd: an update func that blocks for several progress
// intervals must not make the source give up a healthy watch (a stall check on wall-clock
// time since the last answer would). The interval is above etcd's 100ms watcher sync period:
// a watch from the list revision starts unsynced, and etcd answers no progress request for
// it until the sync has run.
func TestSlowUpdateIsNotAStall(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	obs := newObserver()
	src, err := etcd.NewSource(etcd.Config{Endpoints: srv.Endpoints(), ProgressInterval: 200 * time.Millisecond}, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	watch(t, src, []string{"cart"}, func(s *discovery.Snapshot) {
		time.Sleep(time.Second) // five progress intervals
		rec.update(s)
	})
	rec.waitIDs(t, "cart")
	for i := range 6 {
		put(t, cli, key("cart", fmt.Sprint(i)), `{"address":"10.0.0.1","port":8080}`)
		time.Sleep(240 * time.Millisecond) // one watch response per put, a progress request in between
	}
	rec.waitIDs(t, "cart", "0", "1", "2", "3", "4", "5")
	if errs := obs.failures("cart"); len(errs) != 0 {
		t.Fatalf("%d failures with a slow update func: %v", len(errs), errs)
	}
}

// A watch on a cluster where nothing is written is quiet, not stalled: etcd answers its
// progress requests, and the source does not list again. (Once a bug: the watch started one
// revision beyond etcd's, where etcd answers no progress request, and every quiet watch was
// given up every two progress intervals.)
func TestQuietWatchIsNotAStall(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	put(t, cli, key("cart", "a"), `{"address":"10.0.0.1","port":8080}`)
	obs := newObserver()
	rec := newRecorder()
	watch(t, newSource(t, srv, nil, obs), []string{"cart"}, rec.update) // progress every 200ms
	rec.waitIDs(t, "cart", "a")
	time.Sleep(2 * time.Second) // ten progress intervals without a write
	if errs := obs.failures("cart"); len(errs) != 0 {
		t.Fatalf("%d failures of a quiet watch: %v", len(errs), errs)
	}
}
