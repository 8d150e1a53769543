package file

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// writer replaces the contents of the services file in one of the ways files are replaced in
// practice. setup writes the first version and returns the path to watch and a write func.
type writer struct {
	name  string
	setup func(t *testing.T, dir, first string) (path string, write func(data string))
}

var writers = []writer{
	{"in place", func(t *testing.T, dir, first string) (string, func(string)) {
		path := filepath.Join(dir, "services.yaml")
		writeFile(t, path, first)
		return path, func(data string) { writeFile(t, path, data) }
	}},
	{"temp and rename", func(t *testing.T, dir, first string) (string, func(string)) {
		path := filepath.Join(dir, "services.yaml")
		write := func(data string) {
			tmp := filepath.Join(dir, ".services.yaml.tmp")
			writeFile(t, tmp, data)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}
		write(first)
		return path, write
	}},
	// A Kubernetes ConfigMap volume: services.yaml -> ..data/services.yaml, and ..data is a
	// symlink to a timestamped directory that the kubelet swaps with a rename.
	{"configmap symlink swap", func(t *testing.T, dir, first string) (string, func(string)) {
		version := 0
		write := func(data string) {
			version++
			ts := fmt.Sprintf("..2024_01_01_00_00_%02d.%d", version, version)
			if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, ts, "services.yaml"), data)
			old, _ := os.Readlink(filepath.Join(dir, "..data"))
			if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
			if old != "" {
				if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
					t.Fatal(err)
				}
			}
		}
		write(first)
		path := filepath.Join(dir, "services.yaml")
		if err := os.Symlink(filepath.Join("..data", "services.yaml"), path); err != nil {
			t.Fatal(err)
		}
		return path, write
	}},
}

// newHarnessWith is newHarness for a file set up by w.
func newHarnessWith(t *testing.T, w writer, first string) (*harness, func(string)) {
	t.Helper()
	path, write := w.setup(t, t.TempDir(), first)
	return newHarnessAt(t, path), write
}

func TestReloadOnChange(t *testing.T) {
	// Each version has a different size, so that a change is visible from stat alone too.
	versions := []string{
		"services:\n  cart: [{address: 'a:1'}]\n  search: [{address: 's:1'}]\n",
		"services:\n  cart: [{address: 'a:1'}, {address: 'b:2'}]\n  search: [{address: 's:1'}]\n",
		"# same endpoints, new comment\nservices:\n  cart: [{address: 'a:1'}, {address: 'b:2'}]\n  search: [{address: 's:1'}]\n",
		"services:\n  cart: [{address: 'b:2', weight: 3}]\n  search: [{address: 's:1'}]\n",
	}
	for _, w := range writers {
		for _, racy := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/racy window %v", w.name, racy), func(t *testing.T) {
				h, write := newHarnessWith(t, w, versions[0])
				if !racy {
					h.src.racyWindow = 0 // trust stat alone, as for a file that has settled
				}
				h.watch(t, "cart", "search")

				write(versions[1])
				eventually(t, "second cart snapshot", func() bool { return len(h.rec.of("cart")) == 2 })
				if got := h.rec.of("cart")[1]; got.Revision != 2 || !slices.Equal(endpointIDs(got), []string{"a:1", "b:2"}) {
					t.Errorf("cart snapshot: revision %d, endpoints %v; want 2, [a:1 b:2]", got.Revision, endpointIDs(got))
				}

				write(versions[2])
				eventually(t, "the comment-only change read", func() bool { return h.logCount("services file loaded") == 3 })

				write(versions[3])
				eventually(t, "third cart snapshot", func() bool { return len(h.rec.of("cart")) == 3 })
				if got := h.rec.of("cart")[2]; got.Revision != 4 || got.Endpoints[0].Weight != 3 {
					t.Errorf("cart snapshot: revision %d, endpoints %+v; want revision 4, weight 3", got.Revision, got.Endpoints)
				}
				polls(10)
				if n := len(h.rec.of("search")); n != 1 {
					t.Errorf("%d search snapshots, want 1: its endpoints never changed", n)
				}
				if n := len(h.rec.of("cart")); n != 3 {
					t.Errorf("%d cart snapshots, want 3", n)
				}
			})
		}
	}
}

func TestReloadBadEdit(t *testing.T) {
	const rejected = "services file rejected; keeping the last good snapshots"
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			h, write := newHarnessWith(t, w, "services:\n  cart: [{address: 'a:1'}]\n")
			h.watch(t, "cart")

			write("services:\n  cart:\n    - address: b:1\n      colour: red\n")
			eventually(t, "the bad edit logged", func() bool { return h.logCount(rejected) == 1 })
			entry := h.logs.FilterMessage(rejected).All()[0]
			ctx := entry.ContextMap()
			if ctx["file"] != h.path || ctx["line"] != int64(4) {
				t.Errorf("log fields %v, want file %s and line 4", ctx, h.path)
			}
			synced, failed := h.obs.counts("cart")
			polls(20)
			if n := h.logCount(rejected); n != 1 {
				t.Errorf("bad file logged %d times while unchanged, want once", n)
			}
			if s, f := h.obs.counts("cart"); s != synced || f != 1 || failed != 1 {
				t.Errorf("observer: synced %d -> %d, failed %d -> %d; want synced unchanged and one failure", synced, s, failed, f)
			}

			write("services:\n  cart:\n    - address: b:1\n      weight: 0\n")
			eventually(t, "the second bad edit logged", func() bool { return h.logCount(rejected) == 2 })
			write("services:\n  cart:\n    - address: b:1\n      weight: 0\n") // same contents again
			polls(20)
			if n := h.logCount(rejected); n != 2 {
				t.Errorf("rewriting the same bad contents logged again: %d lines, want 2", n)
			}
			if n := len(h.rec.of("cart")); n != 1 {
				t.Fatalf("%d snapshots while the file was bad, want the first one only", n)
			}

			write("services:\n  cart: [{address: 'b:1'}]\n")
			eventually(t, "the fix delivered", func() bool { return len(h.rec.of("cart")) == 2 })
			if got := h.rec.of("cart")[1]; got.Revision != 2 || !slices.Equal(endpointIDs(got), []string{"b:1"}) {
				t.Errorf("after the fix: revision %d, endpoints %v; want 2, [b:1]", got.Revision, endpointIDs(got))
			}
			synced, _ = h.obs.counts("cart")
			eventually(t, "Synced again", func() bool { s, _ := h.obs.counts("cart"); return s > synced })
		})
	}
}

func TestReloadFileRemoved(t *testing.T) {
	const (
		unreadable = "services file unreadable; keeping the last good snapshots"
		usable     = "services file usable again"
		first      = "services:\n  cart: [{address: 'a:1'}]\n"
	)
	h := newHarness(t)
	writeFile(t, h.path, first)
	h.watch(t, "cart")

	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing file logged", func() bool { return h.logCount(unreadable) == 1 })
	polls(20)
	if n := h.logCount(unreadable); n != 1 {
		t.Errorf("missing file logged %d times, want once", n)
	}
	if _, failed := h.obs.counts("cart"); failed != 1 {
		t.Errorf("%d failures reported, want 1", failed)
	}

	writeFile(t, h.path, first)
	eventually(t, "the file back", func() bool { return h.logCount(usable) == 1 })
	if n := len(h.rec.of("cart")); n != 1 {
		t.Errorf("%d snapshots after the same file came back, want 1", n)
	}

	writeFile(t, h.path, "services:\n  cart: [{address: 'b:1'}]\n")
	eventually(t, "the change delivered", func() bool { return len(h.rec.of("cart")) == 2 })
	if got := h.rec.of("cart")[1].Revision; got != 2 {
		t.Errorf("revision %d after a missing file and one change, want 2", got)
	}
}

// cp -p, rsync -t and tar put the modification time back after rewriting a file; with the
// same size, only the change time (or the contents) tells.
func TestReloadSameSizeModTimeRestored(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("change times are read on Linux only")
	}
	h := newHarness(t)
	h.src.racyWindow = 0 // do not re-read because the file is recent: stat must tell
	old := time.Now().Add(-time.Hour)
	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}]}\n")
	if err := os.Chtimes(h.path, old, old); err != nil {
		t.Fatal(err)
	}
	h.watch(t, "cart")
	polls(5)

	writeFile(t, h.path, "services: {cart: [{address: 'b:1'}]}\n")
	if err := os.Chtimes(h.path, old, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the same-size change delivered", func() bool { return len(h.rec.of("cart")) == 2 })
}
