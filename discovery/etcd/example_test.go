package etcd_test

import (
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

func ExampleNewSource() {
	// A throwaway etcd server for the example; in production, Endpoints name your cluster.
	dir, err := os.MkdirTemp("", "etcd-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := etcdtest.New(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	src, err := etcd.NewSource(etcd.Config{Endpoints: srv.Endpoints()}, zap.NewNop(), discovery.NopObserver{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snapshots := make(chan *discovery.Snapshot, 1)
	done := make(chan error, 1)
	go func() {
		done <- src.Watch(ctx, []string{"cart"}, func(s *discovery.Snapshot) {
			select { // a real consumer swaps in new routing state here, without blocking
			case snapshots <- s:
			case <-ctx.Done():
			}
		})
	}()
	fmt.Println("first snapshot:", len((<-snapshots).Endpoints), "endpoints")

	// An instance registers itself (see NewRegistrar), or is written by hand:
	//   etcdctl put /ringside/services/cart/cart-1 '{"address":"10.0.0.5","port":8080,"weight":2}'
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "/ringside/services/cart/cart-1", `{"address":"10.0.0.5","port":8080,"weight":2}`); err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range (<-snapshots).Endpoints {
		fmt.Println(e.ID, e.Address, "weight", e.Weight, e.Health)
	}

	cancel()
	fmt.Println("Watch returned:", <-done)
	// Output:
	// first snapshot: 0 endpoints
	// cart-1 10.0.0.5:8080 weight 2 passing
	// Watch returned: context canceled
}
