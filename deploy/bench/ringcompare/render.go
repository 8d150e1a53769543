package main

import (
	"fmt"
	"strings"
)

// render returns the markdown table of results, ratios to the first row
// (ringside's Ring).
func render(cfg config, results []result) string {
	var b strings.Builder
	ref := results[0]
	fmt.Fprintf(&b, "| library | kind | lookup ns @%s nodes | × Ring | allocs/lookup | build ms @%s nodes | × Ring | peak/mean @%d nodes, %s keys | × Ring | keys moved, %d→%d nodes | moved between old nodes |\n",
		thousands(cfg.lookupNodes), thousands(cfg.lookupNodes), cfg.balanceNodes, thousands(cfg.keys), cfg.balanceNodes, cfg.balanceNodes+1)
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		build, buildRatio := fmt.Sprintf("%.2f", r.buildMs), ratio(r.buildMs, ref.buildMs)
		if r.lib.name == "dgryski/go-jump" {
			build, buildRatio = "0 (none)", "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %.1f | %s | %s | %.3f | %s | %.2f%% | %.1f%% |\n",
			r.lib.name, r.lib.kind, r.lookupNs, ratio(r.lookupNs, ref.lookupNs), r.lookupAllocs,
			build, buildRatio, r.peakToMean, ratio(r.peakToMean, ref.peakToMean),
			100*r.moved, 100*r.between)
	}
	b.WriteString("| dgryski/go-maglev | lookup table | n/a¹ | | | n/a¹ | | n/a¹ | | n/a¹ | n/a¹ |\n")
	b.WriteString("\nSettings: ")
	for i, r := range results {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", r.lib.name, r.lib.note)
	}
	fmt.Fprintf(&b, ".\nTimes are CPU time per operation, median of %d rounds; builds timed at most until %s of CPU.\n", cfg.rounds, cfg.budget)
	b.WriteString("¹ github.com/dgryski/go-maglev is not in the table: the Go module proxy refuses it (403 Forbidden, every version), so it could not be measured.\n")
	return b.String()
}

func ratio(x, ref float64) string {
	if ref == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", x/ref)
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
