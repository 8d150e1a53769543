package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestRunShort runs the whole comparison on a small workload and checks the
// table's shape and the properties every run must show.
func TestRunShort(t *testing.T) {
	cfg := config{
		lookupNodes:  40,
		balanceNodes: 20,
		keys:         20_000,
		rounds:       1,
		lookupTime:   5 * time.Millisecond,
		budget:       0,
	}
	results, err := run(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(libraries()) {
		t.Fatalf("%d results for %d libraries", len(results), len(libraries()))
	}
	for _, r := range results {
		if r.lookupNs <= 0 || r.peakToMean < 1 || r.moved <= 0 || r.moved > 0.5 {
			t.Errorf("%s: implausible result %+v", r.lib.name, r)
		}
		if r.lib.name == "ringside Ring" || r.lib.name == "dgryski/go-jump" {
			if r.between != 0 {
				t.Errorf("%s moved %.1f%% of its moved keys between old nodes, want 0", r.lib.name, 100*r.between)
			}
			if r.lookupAllocs > 0.01 {
				t.Errorf("%s: %.1f allocs per lookup", r.lib.name, r.lookupAllocs)
			}
		}
	}
	table := render(cfg, results)
	t.Log("\n" + table)
	for _, r := range results {
		if !strings.Contains(table, "| "+r.lib.name+" |") {
			t.Errorf("table has no row for %s", r.lib.name)
		}
	}
	if !strings.Contains(table, "go-maglev") {
		t.Error("table does not say what became of go-maglev")
	}
}

func TestThousands(t *testing.T) {
	tests := []struct {
		give int
		want string
	}{{1, "1"}, {100, "100"}, {1000, "1,000"}, {1000000, "1,000,000"}}
	for _, tt := range tests {
		if got := thousands(tt.give); got != tt.want {
			t.Errorf("thousands(%d) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
