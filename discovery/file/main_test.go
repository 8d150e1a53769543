package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testInterval is the poll interval of the tests' sources: short, so that tests are fast.
const testInterval = 2 * time.Millisecond

// recorder is an UpdateFunc that keeps every snapshot it is given.
type recorder struct {
	mu    sync.Mutex
	snaps []*discovery.Snapshot
}

func (r *recorder) update(s *discovery.Snapshot) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	r.mu.Unlock()
}

func (r *recorder) all() []*discovery.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*discovery.Snapshot(nil), r.snaps...)
}

// of returns the snapshots delivered for service, in order.
func (r *recorder) of(service string) []*discovery.Snapshot {
	var out []*discovery.Snapshot
	for _, s := range r.all() {
		if s.Service == service {
			out = append(out, s)
		}
	}
	return out
}

// fakeObserver counts what a source reports.
type fakeObserver struct {
	mu     sync.Mutex
	synced map[string]int
	failed []error
}

func (o *fakeObserver) Synced(service string, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.synced == nil {
		o.synced = make(map[string]int)
	}
	o.synced[service]++
}

func (o *fakeObserver) Failed(_ string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed = append(o.failed, err)
}

func (o *fakeObserver) Malformed(string, string, error) {}

func (o *fakeObserver) counts(service string) (synced, failed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.synced[service], len(o.failed)
}

// harness is a Source watching a file in a temporary directory, with everything it reports.
type harness struct {
	path string
	src  *Source
	rec  *recorder
	obs  *fakeObserver
	logs *observer.ObservedLogs
}

// newHarness returns a source for a file named services.yaml in a new temporary directory,
// not yet written.
func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessAt(t, filepath.Join(t.TempDir(), "services.yaml"))
}

// newHarnessAt returns a source for the file at path.
func newHarnessAt(t *testing.T, path string) *harness {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	h := &harness{
		path: path,
		rec:  &recorder{},
		obs:  &fakeObserver{},
		logs: logs,
	}
	src, err := NewSource(h.path, Config{Interval: testInterval}, zap.New(core), h.obs)
	if err != nil {
		t.Fatal(err)
	}
	h.src = src
	return h
}

// watch runs Watch in a goroutine until the test ends, and fails the test if it returns
// anything but context.Canceled. It returns once the first snapshots have been delivered.
func (h *harness) watch(t *testing.T, services ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.src.Watch(ctx, services, h.rec.update) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	distinct := slices.Compact(slices.Sorted(slices.Values(services)))
	eventually(t, "first snapshots", func() bool { return len(h.rec.all()) >= len(distinct) })
}

// eventually waits up to five seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// polls lets the source poll about n times.
func polls(n int) { time.Sleep(time.Duration(n) * testInterval) }

// logCount counts the log lines with message msg.
func (h *harness) logCount(msg string) int { return h.logs.FilterMessage(msg).Len() }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// endpointIDs returns the IDs of a snapshot's endpoints.
func endpointIDs(s *discovery.Snapshot) []string {
	ids := make([]string, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		ids = append(ids, e.ID)
	}
	return ids
}
