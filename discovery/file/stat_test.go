package file

import (
	"io/fs"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// fakeInfo is a FileInfo whose stat fields the test chooses; it has no inode or change time.
type fakeInfo struct {
	size  int64
	mtime time.Time
}

func (fi fakeInfo) Name() string       { return "services.yaml" }
func (fi fakeInfo) Size() int64        { return fi.size }
func (fi fakeInfo) Mode() fs.FileMode  { return 0o644 }
func (fi fakeInfo) ModTime() time.Time { return fi.mtime }
func (fi fakeInfo) IsDir() bool        { return false }
func (fi fakeInfo) Sys() any           { return nil }

// fakeStat replaces a Source's stat: it checks that the file exists but reports info instead.
type fakeStat struct {
	info  atomic.Pointer[fakeInfo]
	calls atomic.Int64
	// churn makes every call report a new size, as for a file being written.
	churn atomic.Bool
}

func (f *fakeStat) stat(path string) (fs.FileInfo, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	n := f.calls.Add(1)
	fi := *f.info.Load()
	if f.churn.Load() {
		fi.size = n
	}
	return fi, nil
}

// withFakeStat starts watching cart in a file whose stat reports info.
func withFakeStat(t *testing.T, info fakeInfo) (*harness, *fakeStat) {
	t.Helper()
	h := newHarness(t)
	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}]}\n")
	fake := &fakeStat{}
	fake.info.Store(&info)
	h.src.stat = fake.stat
	h.watch(t, "cart")
	return h, fake
}

// Two writes within one tick of the filesystem clock leave size and mtime equal: a file
// modified recently must be read on every poll, not trusted to stat.
func TestPollRereadsRecentFile(t *testing.T) {
	h, _ := withFakeStat(t, fakeInfo{size: 1, mtime: time.Now()})
	writeFile(t, h.path, "services: {cart: [{address: 'b:1'}]}\n")
	eventually(t, "the change under an unchanged stat", func() bool { return len(h.rec.of("cart")) == 2 })
}

// A file that has settled is only stat'ed: its contents are not read or hashed on every poll.
func TestPollTrustsSettledStat(t *testing.T) {
	info := fakeInfo{size: 1, mtime: time.Now().Add(-time.Hour)}
	h, fake := withFakeStat(t, info)
	writeFile(t, h.path, "services: {cart: [{address: 'b:1'}]}\n")
	polls(20)
	if n := len(h.rec.of("cart")); n != 1 {
		t.Fatalf("%d snapshots: the file was read although its stat had not changed", n)
	}
	if fake.calls.Load() < 5 {
		t.Fatalf("stat called %d times in 20 polls", fake.calls.Load())
	}
	info.size = 2
	fake.info.Store(&info)
	eventually(t, "the change once stat shows it", func() bool { return len(h.rec.of("cart")) == 2 })
}

// A file whose stat changes while it is read may be half-written, and is not acted on until
// a poll reads it unchanging.
func TestPollWaitsForFileToSettle(t *testing.T) {
	info := fakeInfo{size: 1, mtime: time.Now().Add(-time.Hour)}
	h, fake := withFakeStat(t, info)
	fake.churn.Store(true)
	writeFile(t, h.path, "services: {cart: [{address: 'b:1'}]}\n")
	polls(20)
	if n := len(h.rec.of("cart")); n != 1 {
		t.Fatalf("%d snapshots from a file that changed during every read, want 1", n)
	}
	info.size = 2 // the file as the writer left it
	fake.info.Store(&info)
	fake.churn.Store(false)
	eventually(t, "the change once the file settled", func() bool { return len(h.rec.of("cart")) == 2 })
}

// New contents are acted on only when a second read confirms them, so a writer that
// truncates and then writes is not caught between the two.
func TestPollConfirmsNewContents(t *testing.T) {
	const rejected = "services file rejected; keeping the last good snapshots"
	h := newHarness(t)
	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}]}\n")
	h.src.settleTime = 0 // confirmed by the very next poll
	// Driven by hand, one poll at a time, rather than by Watch's ticker.
	w := &watcher{src: h.src, services: []string{"cart"}, update: h.rec.update}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.path, "")
	w.poll()
	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}]}\n")
	w.poll()
	w.poll()
	if n := h.logCount(rejected); n != 0 {
		t.Errorf("a file caught empty for one poll was logged as rejected (%d lines)", n)
	}
	writeFile(t, h.path, "")
	w.poll()
	w.poll()
	if n := h.logCount(rejected); n != 1 {
		t.Errorf("an empty file read twice logged %d times, want once", n)
	}
}

// New contents wait until they have read the same for settleTime.
func TestPollWaitsSettleTime(t *testing.T) {
	h := newHarness(t)
	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}]}\n")
	h.src.settleTime = time.Hour
	w := &watcher{src: h.src, services: []string{"cart"}, update: h.rec.update}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.path, "services: {cart: [{address: 'b:1'}]}\n")
	for range 3 {
		w.poll()
	}
	if n := len(h.rec.of("cart")); n != 1 {
		t.Fatalf("%d snapshots before the new contents settled, want 1", n)
	}
	h.src.settleTime = 0
	w.poll()
	if n := len(h.rec.of("cart")); n != 2 {
		t.Errorf("%d snapshots once settled, want 2", n)
	}
}
