// Command ringcompare compares ringside's hash tables with other Go
// consistent-hashing libraries on one workload: lookup time and build time
// at 1,000 nodes, balance over 1,000,000 keys at 100 nodes, and the keys
// moved when a 101st node joins. It prints one markdown table, with ratios
// to ringside's Ring.
//
//	cd deploy/bench && go run ./ringcompare
//
// Times are CPU time of this process per operation (getrusage), the
// median of several rounds run in turn across the libraries, so that other
// work on a shared machine disturbs them less than wall-clock time.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.lookupNodes, "lookup-nodes", cfg.lookupNodes, "nodes for the lookup and build measurements")
	flag.IntVar(&cfg.balanceNodes, "balance-nodes", cfg.balanceNodes, "nodes for the balance and disruption measurements")
	flag.IntVar(&cfg.keys, "keys", cfg.keys, "keys for the balance and disruption measurements")
	flag.IntVar(&cfg.rounds, "rounds", cfg.rounds, "rounds of each timing (the median is reported)")
	flag.DurationVar(&cfg.lookupTime, "lookup-time", cfg.lookupTime, "time spent on lookups per library per round")
	flag.DurationVar(&cfg.budget, "build-budget", cfg.budget, "stop repeating a library's build after this much time")
	flag.Parse()

	start := time.Now()
	results, err := run(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ringcompare:", err)
		os.Exit(1)
	}
	fmt.Print(render(cfg, results))
	fmt.Fprintf(os.Stderr, "ringcompare: done in %s\n", time.Since(start).Round(time.Second))
}
