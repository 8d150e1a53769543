package hashring

import (
	"testing"
)

// TestNoAllocations pins the hot path's allocation contract.
func TestNoAllocations(t *testing.T) {
	r := mustRing(t, testNodes(100, 1))
	m := mustMaglev(t, testNodes(100, 1))
	key := "user-0123456789abcdef"
	bkey := []byte(key)
	h := HashString(key)
	busy := make(fakeLoads, 100)
	for i := range busy {
		busy[i] = 1000 // all over cap but a few: long walks
	}
	busy[7], busy[50], busy[93] = 0, 0, 0
	var loads Loads = busy // boxing a slice allocates; a proxy passes a pointer
	tests := []struct {
		name string
		fn   func()
	}{
		{"HashString", func() { sink += int(HashString(key)) }},
		{"Hash", func() { sink += int(Hash(bkey)) }},
		{"Ring.Lookup", func() { sink += r.Lookup(h) }},
		{"Ring.LookupString", func() { sink += r.LookupString(key) }},
		{"Ring.LookupBytes", func() { sink += r.LookupBytes(bkey) }},
		{"Maglev.Lookup", func() { sink += m.Lookup(h) }},
		{"Maglev.LookupString", func() { sink += m.LookupString(key) }},
		{"Maglev.LookupBytes", func() { sink += m.LookupBytes(bkey) }},
		{"Ring.Walk 8", func() { walk8(r, h) }},
		{"Maglev.Walk 8", func() { walk8(m, h) }},
		{"Table.Walk 8", func() { var tab Table = r; walk8(tab, h) }},
		{"LookupBounded ring", func() { sink += LookupBounded(r, h, 1.25, loads) }},
		{"LookupBounded maglev", func() { sink += LookupBounded(m, h, 1.25, loads) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(200, tt.fn); got != 0 {
				t.Errorf("%s: %.1f allocs/op, want 0", tt.name, got)
			}
		})
	}
}

func walk8(t Table, h uint64) {
	w := t.Walk(h)
	for range inlineSeen {
		i, _ := w.Next()
		sink += i
	}
}
