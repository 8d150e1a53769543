package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

// Every test stops what it starts — the etcd servers (etcdtest stops them cleanly), clients,
// sources, registrars — so no goroutine may outlive the tests, and no ignore is needed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something the tests expect to happen.
const waitTimeout = 15 * time.Second

// recorder is an UpdateFunc that keeps every snapshot it is given. Safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	snaps  map[string][]*discovery.Snapshot
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{snaps: make(map[string][]*discovery.Snapshot), notify: make(chan struct{}, 1)}
}

func (r *recorder) update(s *discovery.Snapshot) {
	r.mu.Lock()
	r.snaps[s.Service] = append(r.snaps[s.Service], s)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// count returns how many snapshots of service were delivered.
func (r *recorder) count(service string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps[service])
}

// waitFor waits until the latest snapshot of service satisfies ok and returns it.
func (r *recorder) waitFor(t testing.TB, service string, what string, ok func(*discovery.Snapshot) bool) *discovery.Snapshot {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		r.mu.Lock()
		var last *discovery.Snapshot
		if s := r.snaps[service]; len(s) > 0 {
			last = s[len(s)-1]
		}
		r.mu.Unlock()
		if last != nil && ok(last) {
			return last
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("service %q: no snapshot with %s after %v; last: %s", service, what, waitTimeout, describe(last))
		}
	}
}

// waitIDs waits until the latest snapshot of service holds exactly ids.
func (r *recorder) waitIDs(t testing.TB, service string, ids ...string) *discovery.Snapshot {
	t.Helper()
	slices.Sort(ids)
	return r.waitFor(t, service, "ids "+strings.Join(ids, ","), func(s *discovery.Snapshot) bool {
		return slices.Equal(snapshotIDs(s), ids)
	})
}

func snapshotIDs(s *discovery.Snapshot) []string {
	ids := make([]string, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		ids = append(ids, e.ID)
	}
	return ids
}

func describe(s *discovery.Snapshot) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("revision %d ids %v", s.Revision, snapshotIDs(s))
}

// observer records what a source reports. Safe for concurrent use.
type observer struct {
	mu        sync.Mutex
	synced    map[string]int
	failed    map[string][]error
	malformed map[string][]string // service → keys
}

func newObserver() *observer {
	return &observer{synced: map[string]int{}, failed: map[string][]error{}, malformed: map[string][]string{}}
}

func (o *observer) Synced(service string, _ time.Time) {
	o.mu.Lock()
	o.synced[service]++
	o.mu.Unlock()
}

func (o *observer) Failed(service string, err error) {
	o.mu.Lock()
	o.failed[service] = append(o.failed[service], err)
	o.mu.Unlock()
}

func (o *observer) Malformed(service, key string, _ error) {
	o.mu.Lock()
	o.malformed[service] = append(o.malformed[service], key)
	o.mu.Unlock()
}

func (o *observer) failures(service string) []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.failed[service])
}

func (o *observer) totalFailures() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, errs := range o.failed {
		n += len(errs)
	}
	return n
}

func (o *observer) malformedKeys(service string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	keys := slices.Clone(o.malformed[service])
	slices.Sort(keys)
	return keys
}

// watch runs src.Watch for services until the test ends, and checks then that Watch returned
// context.Canceled and nothing else.
func watch(t testing.TB, src *etcd.Source, services []string, update discovery.UpdateFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, services, update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Watch did not return within %v of cancel", waitTimeout)
		}
	})
}

// newSource returns a source for srv with a short progress interval, so outages are noticed
// quickly.
func newSource(t testing.TB, srv *etcdtest.Server, logger *zap.Logger, obs discovery.Observer) *etcd.Source {
	t.Helper()
	if logger == nil {
		logger = zap.NewNop()
	}
	src, err := etcd.NewSource(etcd.Config{
		Endpoints:        srv.Endpoints(),
		ProgressInterval: 200 * time.Millisecond,
		Backoff:          discovery.Backoff{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		Pacing:           discovery.Pacing{Settle: 300 * time.Millisecond, Coalesce: 10 * time.Millisecond},
	}, logger, obs)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return src
}

// key returns the key of endpoint id of service under the default prefix.
func key(service, id string) string {
	return etcd.DefaultPrefix + "/" + service + "/" + id
}

func put(t testing.TB, cli *clientv3.Client, k, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := cli.Put(ctx, k, v); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

func del(t testing.TB, cli *clientv3.Client, k string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := cli.Delete(ctx, k); err != nil {
		t.Fatalf("delete %s: %v", k, err)
	}
}

func (o *observer) firstFailure() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, errs := range o.failed {
		return errs[0]
	}
	return nil
}
