package discovery

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func ep(id, addr string) Endpoint { return Endpoint{ID: id, Address: addr, Weight: 1} }

func TestNewSnapshot(t *testing.T) {
	tests := []struct {
		name string
		give []Endpoint
		want []Endpoint
	}{
		{"nil", nil, []Endpoint{}},
		{"sorted by id", []Endpoint{ep("c", "c:1"), ep("a", "a:1"), ep("b", "b:1")},
			[]Endpoint{ep("a", "a:1"), ep("b", "b:1"), ep("c", "c:1")}},
		{"sorted bytewise", []Endpoint{ep("b", "1:1"), ep("B", "2:1"), ep("a10", "3:1"), ep("a9", "4:1")},
			[]Endpoint{ep("B", "2:1"), ep("a10", "3:1"), ep("a9", "4:1"), ep("b", "1:1")}},
		{"duplicate id, last wins", []Endpoint{ep("a", "old:1"), ep("b", "b:1"), ep("a", "new:1")},
			[]Endpoint{ep("a", "new:1"), ep("b", "b:1")}},
		{"three of one id", []Endpoint{ep("a", "1:1"), ep("a", "2:1"), ep("a", "3:1")},
			[]Endpoint{ep("a", "3:1")}},
		{"duplicates of several ids", []Endpoint{ep("b", "b1:1"), ep("a", "a1:1"), ep("b", "b2:1"), ep("a", "a2:1"), ep("c", "c:1")},
			[]Endpoint{ep("a", "a2:1"), ep("b", "b2:1"), ep("c", "c:1")}},
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSnapshot("cart", 42, tt.give, at)
			if s.Service != "cart" || s.Revision != 42 || !s.Received.Equal(at) {
				t.Errorf("snapshot header %q %d %v, want cart 42 %v", s.Service, s.Revision, s.Received, at)
			}
			if !reflect.DeepEqual(s.Endpoints, tt.want) {
				t.Errorf("endpoints %v, want %v", s.Endpoints, tt.want)
			}
		})
	}
}

// The snapshot shares nothing with its caller: changing the input afterwards changes nothing.
func TestNewSnapshotDeepCopy(t *testing.T) {
	in := []Endpoint{{ID: "a", Address: "a:1", Weight: 1, Tags: []string{"v1"}, Meta: map[string]string{"k": "v"}}}
	s := NewSnapshot("cart", 1, in, time.Time{})
	want := NewSnapshot("cart", 1, []Endpoint{{ID: "a", Address: "a:1", Weight: 1,
		Tags: []string{"v1"}, Meta: map[string]string{"k": "v"}}}, time.Time{})

	in[0].Tags[0] = "changed"
	in[0].Meta["k"] = "changed"
	in[0].Meta["new"] = "x"
	in[0].Address = "changed:1"
	in = append(in[:0], ep("z", "z:1"))

	if !reflect.DeepEqual(s.Endpoints, want.Endpoints) {
		t.Errorf("snapshot changed with its input: %+v, want %+v", s.Endpoints, want.Endpoints)
	}
}

func TestSnapshotEqual(t *testing.T) {
	base := Endpoint{ID: "a", Address: "a:1", Weight: 2, Health: HealthWarning, Zone: "z",
		Tags: []string{"t1", "t2"}, Meta: map[string]string{"k": "v"}}
	with := func(f func(*Endpoint)) *Snapshot {
		e := base.clone()
		f(&e)
		return NewSnapshot("cart", 1, []Endpoint{e}, time.Time{})
	}
	same := with(func(*Endpoint) {})
	tests := []struct {
		name string
		a, b *Snapshot
		want bool
	}{
		{"both nil", nil, nil, true},
		{"nil and not", nil, same, false},
		{"not and nil", same, nil, false},
		{"identical", same, with(func(*Endpoint) {}), true},
		{"revision and time ignored", same, NewSnapshot("cart", 99, []Endpoint{base}, time.Now()), true},
		{"other service", same, NewSnapshot("search", 1, []Endpoint{base}, time.Time{}), false},
		{"one more endpoint", same, NewSnapshot("cart", 1, []Endpoint{base, ep("b", "b:1")}, time.Time{}), false},
		{"both empty", NewSnapshot("cart", 1, nil, time.Time{}), NewSnapshot("cart", 2, []Endpoint{}, time.Time{}), true},
		{"id", same, with(func(e *Endpoint) { e.ID = "b" }), false},
		{"address", same, with(func(e *Endpoint) { e.Address = "a:2" }), false},
		{"weight", same, with(func(e *Endpoint) { e.Weight = 3 }), false},
		{"health", same, with(func(e *Endpoint) { e.Health = HealthCritical }), false},
		{"zone", same, with(func(e *Endpoint) { e.Zone = "y" }), false},
		{"tag value", same, with(func(e *Endpoint) { e.Tags[1] = "t3" }), false},
		{"tag order", same, with(func(e *Endpoint) { e.Tags[0], e.Tags[1] = e.Tags[1], e.Tags[0] }), false},
		{"one tag fewer", same, with(func(e *Endpoint) { e.Tags = e.Tags[:1] }), false},
		{"meta value", same, with(func(e *Endpoint) { e.Meta["k"] = "w" }), false},
		{"meta key", same, with(func(e *Endpoint) { e.Meta = map[string]string{"j": "v"} }), false},
		{"meta extra key", same, with(func(e *Endpoint) { e.Meta["j"] = "v" }), false},
		{"nil and empty tags and meta", with(func(e *Endpoint) { e.Tags, e.Meta = nil, nil }),
			with(func(e *Endpoint) { e.Tags, e.Meta = []string{}, map[string]string{} }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.want {
				t.Errorf("a.Equal(b) = %v, want %v", got, tt.want)
			}
			if got := tt.b.Equal(tt.a); got != tt.want {
				t.Errorf("b.Equal(a) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDedup(t *testing.T) {
	snap := func(service string, rev uint64, ids ...string) *Snapshot {
		eps := make([]Endpoint, 0, len(ids))
		for _, id := range ids {
			eps = append(eps, ep(id, id+":1"))
		}
		return NewSnapshot(service, rev, eps, time.Time{})
	}
	give := []*Snapshot{
		snap("cart", 1, "a"),
		snap("cart", 2, "a"),      // equal: dropped, although the revision moved
		snap("search", 3, "a"),    // same endpoints, other service: delivered
		snap("cart", 4, "a", "b"), // changed
		snap("search", 5, "a"),    // equal to search's last: dropped
		snap("cart", 6, "a"),      // back to an earlier state: still a change
		snap("cart", 7),           // empty
		snap("cart", 8),           // empty again: dropped
	}
	var got []uint64
	update := Dedup(func(s *Snapshot) { got = append(got, s.Revision) })
	for _, s := range give {
		update(s)
	}
	if want := []uint64{1, 3, 4, 6, 7}; !reflect.DeepEqual(got, want) {
		t.Errorf("delivered revisions %v, want %v", got, want)
	}
}

// Different services may be updated concurrently; run with -race.
func TestDedupConcurrentServices(t *testing.T) {
	var (
		mu    sync.Mutex
		count = make(map[string]int)
	)
	update := Dedup(func(s *Snapshot) {
		mu.Lock()
		count[s.Service]++
		mu.Unlock()
	})
	var wg sync.WaitGroup
	for i := range 4 {
		service := fmt.Sprintf("svc%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rev := range 100 {
				// Ten distinct states, each sent ten times in a row.
				update(NewSnapshot(service, uint64(rev), []Endpoint{ep(fmt.Sprint(rev/10), "a:1")}, time.Time{}))
			}
		}()
	}
	wg.Wait()
	for i := range 4 {
		if n := count[fmt.Sprintf("svc%d", i)]; n != 10 {
			t.Errorf("svc%d: %d snapshots delivered, want 10", i, n)
		}
	}
}
