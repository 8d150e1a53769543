package etcd_test

import (
	"context"
	"errors"
	"slices"
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

func TestWatchFollowsPutUpdateDelete(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	put(t, cli, key("cart", "a"), `{"address":"10.0.0.1","port":8080}`)
	put(t, cli, key("cart", "b"), `{"address":"10.0.0.2","port":8080,"weight":3,"tags":["v2"],"meta":{"k":"v"},"health":"warning","zone":"z1"}`)
	// Neighbours that must not leak in: a service whose name extends "cart", and another prefix.
	put(t, cli, key("cart2", "x"), `{"address":"10.9.9.9","port":1}`)
	put(t, cli, "/other/cart/y", `{"address":"10.9.9.9","port":1}`)

	rec := newRecorder()
	watch(t, newSource(t, srv, nil, nil), []string{"cart"}, rec.update)

	first := rec.waitIDs(t, "cart", "a", "b")
	want := []discovery.Endpoint{
		{ID: "a", Address: "10.0.0.1:8080", Weight: 1},
		{ID: "b", Address: "10.0.0.2:8080", Weight: 3, Health: discovery.HealthWarning, Zone: "z1",
			Tags: []string{"v2"}, Meta: map[string]string{"k": "v"}},
	}
	if !first.Equal(discovery.NewSnapshot("cart", 0, want, time.Time{})) {
		t.Fatalf("first snapshot: got %+v, want %+v", first.Endpoints, want)
	}
	if first.Revision == 0 {
		t.Error("first snapshot has revision 0, want the etcd revision")
	}

	put(t, cli, key("cart", "c"), `{"address":"10.0.0.3","port":8080}`)
	rec.waitIDs(t, "cart", "a", "b", "c")

	put(t, cli, key("cart", "a"), `{"address":"10.0.0.1","port":9090}`)
	rec.waitFor(t, "cart", "a on port 9090", func(s *discovery.Snapshot) bool {
		return len(s.Endpoints) == 3 && s.Endpoints[0].Address == "10.0.0.1:9090"
	})

	del(t, cli, key("cart", "b"))
	last := rec.waitIDs(t, "cart", "a", "c")
	if last.Revision <= first.Revision {
		t.Errorf("revision did not grow: %d after %d", last.Revision, first.Revision)
	}
}

// Dedup: a put of the same value moves etcd's revision but changes nothing, so no snapshot
// is delivered for it; the next real change is the very next snapshot.
func TestWatchDeliversNothingForAnIdenticalPut(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	const v = `{"address":"10.0.0.1","port":8080}`
	put(t, cli, key("cart", "a"), v)

	rec := newRecorder()
	watch(t, newSource(t, srv, nil, nil), []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "a")
	before := rec.count("cart")

	put(t, cli, key("cart", "a"), v)
	put(t, cli, key("cart", "a"), v)
	put(t, cli, key("cart", "b"), v)
	rec.waitIDs(t, "cart", "a", "b")
	if got := rec.count("cart") - before; got != 1 {
		t.Fatalf("%d snapshots after two identical puts and one change, want 1", got)
	}
}

// All events of one watch response — here one transaction — make one snapshot.
func TestWatchBatchesOneResponseIntoOneSnapshot(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	put(t, cli, key("cart", "a"), `{"address":"10.0.0.1","port":8080}`)

	rec := newRecorder()
	watch(t, newSource(t, srv, nil, nil), []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "a")
	before := rec.count("cart")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := cli.Txn(ctx).Then(
		clientv3.OpDelete(key("cart", "a")),
		clientv3.OpPut(key("cart", "b"), `{"address":"10.0.0.2","port":8080}`),
		clientv3.OpPut(key("cart", "c"), `{"address":"10.0.0.3","port":8080}`),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	rec.waitIDs(t, "cart", "b", "c")
	if got := rec.count("cart") - before; got != 1 {
		t.Fatalf("%d snapshots for one transaction, want 1 (no partial state)", got)
	}
}

func TestWatchSkipsMalformedEntries(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	const good = `{"address":"10.0.0.1","port":8080}`
	bad := []struct {
		name, key, value string
	}{
		{"bad json", key("cart", "json"), `{"address":`},
		{"not an object", key("cart", "array"), `[1,2]`},
		{"port zero", key("cart", "port0"), `{"address":"10.0.0.1","port":0}`},
		{"port too big", key("cart", "port70000"), `{"address":"10.0.0.1","port":70000}`},
		{"port not a number", key("cart", "portstr"), `{"address":"10.0.0.1","port":"80"}`},
		{"empty address", key("cart", "noaddr"), `{"address":"","port":8080}`},
		{"address with a port", key("cart", "addrport"), `{"address":"10.0.0.1:80","port":8080}`},
		{"unknown health", key("cart", "sick"), `{"address":"10.0.0.1","port":8080,"health":"sick"}`},
		{"negative weight", key("cart", "negw"), `{"address":"10.0.0.1","port":8080,"weight":-1}`},
		{"extra path segment", key("cart", "x/y"), good},
		{"empty id", key("cart", ""), good},
	}
	for _, tt := range bad {
		put(t, cli, tt.key, tt.value)
	}
	put(t, cli, key("cart", "ok"), good)

	core, logs := zapobserver.New(zapcore.InfoLevel)
	obs := newObserver()
	rec := newRecorder()
	watch(t, newSource(t, srv, zap.New(core), obs), []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "ok")

	var wantKeys []string
	for _, tt := range bad {
		wantKeys = append(wantKeys, tt.key)
	}
	slices.Sort(wantKeys)
	if got := obs.malformedKeys("cart"); !slices.Equal(got, wantKeys) {
		t.Errorf("Malformed reported for\n%q\nwant once each for\n%q", got, wantKeys)
	}
	for _, tt := range bad {
		if n := logs.FilterMessage("etcd entry skipped").FilterField(zap.String("key", tt.key)).Len(); n != 1 {
			t.Errorf("%s: %d log lines for %s, want 1", tt.name, n, tt.key)
		}
	}

	// A good entry turned bad leaves the snapshot (etcd no longer holds a usable value for it),
	// and comes back when fixed; the others are untouched throughout.
	put(t, cli, key("cart", "other"), good)
	rec.waitIDs(t, "cart", "ok", "other")
	put(t, cli, key("cart", "ok"), `{"address":"10.0.0.1","port":8080,"health":"dead"}`)
	rec.waitIDs(t, "cart", "other")
	put(t, cli, key("cart", "ok"), good)
	rec.waitIDs(t, "cart", "ok", "other")
	if n := logs.FilterMessage("etcd entry skipped").FilterField(zap.String("key", key("cart", "ok"))).Len(); n != 1 {
		t.Errorf("%d log lines for the entry that went bad once, want 1", n)
	}
}

func TestWatchRefusesBadArguments(t *testing.T) {
	src, err := etcd.NewSource(etcd.Config{Endpoints: []string{"127.0.0.1:1"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	update := func(*discovery.Snapshot) {}
	tests := []struct {
		name     string
		services []string
		update   discovery.UpdateFunc
	}{
		{"no services", nil, update},
		{"empty name", []string{""}, update},
		{"name with a slash", []string{"a/b"}, update},
		{"name with a space", []string{"a b"}, update},
		{"twice", []string{"a", "b", "a"}, update},
		{"nil update", []string{"a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := src.Watch(ctx, tt.services, tt.update); !errors.Is(err, etcd.ErrBadServices) {
				t.Fatalf("Watch: %v, want ErrBadServices", err)
			}
		})
	}
}

// A custom prefix, with a trailing slash that must not matter; and a service name that is not
// plain ASCII (it also names the watch's gRPC stream, whose metadata must be ASCII).
func TestWatchUsesConfiguredPrefix(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	put(t, cli, "/apps/prod/cart/a", `{"address":"10.0.0.1","port":8080}`)
	put(t, cli, "/apps/prod/café/b", `{"address":"10.0.0.1","port":8080}`)
	put(t, cli, key("cart", "default-prefix"), `{"address":"10.0.0.2","port":8080}`)

	obs := newObserver()
	src, err := etcd.NewSource(etcd.Config{Endpoints: srv.Endpoints(), Prefix: "/apps/prod/"}, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	watch(t, src, []string{"cart", "café"}, rec.update)
	rec.waitIDs(t, "cart", "a")
	rec.waitIDs(t, "café", "b")
	put(t, cli, "/apps/prod/café/c", `{"address":"10.0.0.1","port":8080}`)
	rec.waitIDs(t, "café", "b", "c")
	if n := obs.totalFailures(); n != 0 {
		t.Errorf("%d failures: %v", n, obs.failures("café"))
	}
}
