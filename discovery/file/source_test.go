package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestNewSource(t *testing.T) {
	tests := []struct {
		name         string
		path         string
		cfg          Config
		wantErr      error
		wantInterval time.Duration
	}{
		{"defaults", "s.yaml", Config{}, nil, DefaultInterval},
		{"interval", "s.yaml", Config{Interval: time.Minute}, nil, time.Minute},
		{"empty path", "", Config{}, ErrBadConfig, 0},
		{"negative interval", "s.yaml", Config{Interval: -time.Second}, ErrBadConfig, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := NewSource(tt.path, tt.cfg, nil, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewSource error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && src.interval != tt.wantInterval {
				t.Errorf("interval = %v, want %v", src.interval, tt.wantInterval)
			}
		})
	}
}

// Watch fails at once, delivering nothing, when it cannot start.
func TestWatchStartErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "services: {cart: [{address: 'a:1'}]}\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "services:\n  cart:\n    - address: a:1\n      colour: red\n")
	empty := filepath.Join(dir, "empty.yaml")
	writeFile(t, empty, "")
	large := filepath.Join(dir, "large.yaml")
	if err := os.WriteFile(large, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(large, MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	var parseErr *ParseError
	tests := []struct {
		name     string
		path     string
		services []string
		nilFunc  bool
		want     func(error) bool
	}{
		{"missing file", filepath.Join(dir, "missing.yaml"), []string{"cart"}, false,
			func(err error) bool { return errors.Is(err, fs.ErrNotExist) }},
		{"directory", dir, []string{"cart"}, false, func(err error) bool { return err != nil }},
		{"invalid file", bad, []string{"cart"}, false,
			func(err error) bool { return errors.As(err, &parseErr) && parseErr.Line == 4 }},
		{"empty file", empty, []string{"cart"}, false, func(err error) bool { return errors.As(err, &parseErr) }},
		{"too large", large, []string{"cart"}, false, func(err error) bool { return errors.Is(err, ErrTooLarge) }},
		{"no services", good, nil, false, func(err error) bool { return errors.Is(err, ErrBadConfig) }},
		{"empty service name", good, []string{"cart", ""}, false, func(err error) bool { return errors.Is(err, ErrBadConfig) }},
		{"nil update", good, []string{"cart"}, true, func(err error) bool { return errors.Is(err, ErrBadConfig) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := NewSource(tt.path, Config{Interval: testInterval}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			update := rec.update
			if tt.nilFunc {
				update = nil
			}
			err = src.Watch(context.Background(), tt.services, update)
			if !tt.want(err) {
				t.Errorf("Watch error = %v (%T)", err, err)
			}
			if n := len(rec.all()); n != 0 {
				t.Errorf("Watch delivered %d snapshots before failing", n)
			}
		})
	}
}

func TestWatchCanceledContext(t *testing.T) {
	src, err := NewSource(filepath.Join(t.TempDir(), "missing.yaml"), Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.Watch(ctx, []string{"cart"}, func(*discovery.Snapshot) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with a canceled context = %v, want context.Canceled", err)
	}
}

func TestWatchFirstSnapshots(t *testing.T) {
	h := newHarness(t)
	data, err := os.ReadFile("testdata/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.path, string(data))
	h.watch(t, "search", "cart", "absent", "cart")

	snaps := h.rec.all()
	var services []string
	for _, s := range snaps {
		services = append(services, s.Service)
		if s.Revision != 1 || s.Received.IsZero() {
			t.Errorf("%s: revision %d, received %v; want revision 1 and a time", s.Service, s.Revision, s.Received)
		}
	}
	if want := []string{"absent", "cart", "search"}; !slices.Equal(services, want) {
		t.Fatalf("snapshots for %v, want one each for %v", services, want)
	}
	if got := endpointIDs(snaps[0]); len(got) != 0 {
		t.Errorf("absent service: endpoints %v, want none", got)
	}
	want := discovery.NewSnapshot("cart", 1, testdataWant["cart"], time.Time{})
	if !snaps[1].Equal(want) {
		t.Errorf("cart snapshot %+v, want %+v", snaps[1].Endpoints, want.Endpoints)
	}
	if got, want := endpointIDs(snaps[2]), []string{"search-a", "search-b"}; !slices.Equal(got, want) {
		t.Errorf("search endpoints %v, want %v", got, want)
	}
	// The warning is logged after the snapshots are delivered: wait for it.
	const absentWarning = "watched services absent from services file; their snapshots are empty"
	eventually(t, "the warning about the absent service", func() bool { return h.logCount(absentWarning) > 0 })
	if n := h.logCount(absentWarning); n != 1 {
		t.Errorf("%d warnings about the absent service, want 1", n)
	}
	eventually(t, "Synced for each service", func() bool {
		a, _ := h.obs.counts("absent")
		c, _ := h.obs.counts("cart")
		return a > 1 && c > 1
	})
	if _, failed := h.obs.counts("cart"); failed != 0 {
		t.Errorf("%d failures reported for a good file", failed)
	}
}

// A source may be watched by several callers at once; each gets its own snapshots.
func TestWatchConcurrentCalls(t *testing.T) {
	h := newHarness(t)
	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}]}\n")
	h.watch(t, "cart")
	second := &harness{src: h.src, rec: &recorder{}}
	second.watch(t, "cart")

	writeFile(t, h.path, "services: {cart: [{address: 'a:1'}, {address: 'b:2'}]}\n")
	for _, x := range []*harness{h, second} {
		eventually(t, "the change in both watches", func() bool { return len(x.rec.of("cart")) == 2 })
	}
}
