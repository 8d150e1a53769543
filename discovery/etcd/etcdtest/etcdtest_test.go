package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRestartKeepsDataRestartEmptyLosesIt(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c := srv.Client(t)
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv.Restart(t)
	t.Logf("restart took %v", time.Since(start))
	resp, err := c.Get(ctx, "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after Restart: got %v, want /k=v", resp.Kvs)
	}

	srv.RestartEmpty(t)
	resp, err = c.Get(ctx, "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("after RestartEmpty: got %v, want no keys", resp.Kvs)
	}
}
