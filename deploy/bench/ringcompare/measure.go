package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"time"
	"unsafe"
)

// config is one run's workload.
type config struct {
	lookupNodes  int           // nodes for lookup and build timing
	balanceNodes int           // nodes for balance and disruption
	keys         int           // keys for balance and disruption
	rounds       int           // rounds per timing; the median is kept
	lookupTime   time.Duration // lookup time per library per round
	budget       time.Duration // a library's build is not repeated past this
}

func defaultConfig() config {
	return config{
		lookupNodes:  1000,
		balanceNodes: 100,
		keys:         1_000_000,
		rounds:       5,
		lookupTime:   200 * time.Millisecond,
		budget:       3 * time.Second,
	}
}

// result is one library's row.
type result struct {
	lib          library
	lookupNs     float64 // CPU ns per lookup at lookupNodes
	lookupAllocs float64
	buildMs      float64 // CPU ms per build at lookupNodes
	builds       int     // builds timed
	peakToMean   float64 // max keys on a node / mean, at balanceNodes
	moved        float64 // fraction of keys that moved when one node joined
	between      float64 // fraction of the moved keys that moved between old nodes
}

// nodeIDs returns n endpoint-like IDs, the same for every library.
func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1)
	}
	return ids
}

// keySet holds n keys of 16 to 32 bytes, from a fixed seed, in one buffer:
// key k is bytes[k] and str[k], the same memory.
type keySet struct {
	bytes [][]byte
	str   []string
}

func makeKeys(n int, seed uint64) *keySet {
	r := rand.New(rand.NewPCG(seed, 1))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	buf := make([]byte, 0, 32*n)
	ks := &keySet{bytes: make([][]byte, n), str: make([]string, n)}
	for k := range n {
		start := len(buf)
		for range 16 + r.IntN(17) {
			buf = append(buf, alphabet[r.IntN(len(alphabet))])
		}
		ks.bytes[k] = buf[start:len(buf):len(buf)]
	}
	all := string(buf)
	off := 0
	for k, b := range ks.bytes {
		ks.str[k] = all[off : off+len(b)]
		off += len(b)
	}
	return ks
}

// cpuTime returns the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// run measures every library. Progress goes to log.
func run(cfg config, log io.Writer) ([]result, error) {
	libs := libraries()
	results := make([]result, len(libs))
	for i, lib := range libs {
		results[i].lib = lib
	}

	// Build timing, and the tables the lookup timing uses.
	ids := nodeIDs(cfg.lookupNodes)
	tables := make([]table, len(libs))
	buildMs := make([][]float64, len(libs))
	spent := make([]time.Duration, len(libs))
	for round := range cfg.rounds {
		for i, lib := range libs {
			if round > 0 && spent[i] > cfg.budget {
				continue
			}
			runtime.GC()
			start := cpuTime()
			t, err := lib.build(ids)
			took := cpuTime() - start
			if err != nil {
				return nil, fmt.Errorf("%s: build %d nodes: %w", lib.name, len(ids), err)
			}
			spent[i] += took
			buildMs[i] = append(buildMs[i], float64(took)/1e6)
			tables[i] = t
		}
	}
	for i := range libs {
		results[i].buildMs = median(buildMs[i])
		results[i].builds = len(buildMs[i])
		fmt.Fprintf(log, "%-36s build %8.2f ms (%d builds)\n", libs[i].name, results[i].buildMs, results[i].builds)
	}

	// Lookup timing: rounds in turn across libraries.
	lookupNs := make([][]float64, len(libs))
	for range cfg.rounds {
		for i, t := range tables {
			ns, allocs := timeLookups(t, cfg.lookupTime)
			lookupNs[i] = append(lookupNs[i], ns)
			results[i].lookupAllocs = allocs
		}
	}
	for i := range libs {
		results[i].lookupNs = median(lookupNs[i])
		fmt.Fprintf(log, "%-36s lookup %7.1f ns, %.1f allocs\n", libs[i].name, results[i].lookupNs, results[i].lookupAllocs)
	}
	tables = nil

	// Balance and disruption.
	many := makeKeys(cfg.keys, 11)
	ids = nodeIDs(cfg.balanceNodes + 1)
	for i, lib := range libs {
		small, err := lib.build(ids[:cfg.balanceNodes])
		if err != nil {
			return nil, fmt.Errorf("%s: build %d nodes: %w", lib.name, cfg.balanceNodes, err)
		}
		big, err := lib.build(ids)
		if err != nil {
			return nil, fmt.Errorf("%s: build %d nodes: %w", lib.name, len(ids), err)
		}
		counts := make(map[string]int, cfg.balanceNodes)
		moved, between := 0, 0
		for k := range many.str {
			before, after := small.lookup(many.bytes[k], many.str[k]), big.lookup(many.bytes[k], many.str[k])
			counts[before]++
			if before != after {
				moved++
				if after != ids[cfg.balanceNodes] {
					between++
				}
			}
		}
		peak := 0
		for _, c := range counts {
			peak = max(peak, c)
		}
		results[i].peakToMean = float64(peak) * float64(cfg.balanceNodes) / float64(cfg.keys)
		results[i].moved = float64(moved) / float64(cfg.keys)
		if moved > 0 {
			results[i].between = float64(between) / float64(moved)
		}
		fmt.Fprintf(log, "%-36s peak/mean %.3f, moved %.2f%%, between old nodes %.1f%%\n",
			lib.name, results[i].peakToMean, 100*results[i].moved, 100*results[i].between)
	}
	return results, nil
}

// timeLookups returns the CPU ns and the allocations per lookup over about
// d of lookups. Every lookup gets a new key of 16 to 32 bytes, made by
// writing a counter into one buffer: the key is in cache, as one just
// parsed from a request is, and each lookup lands somewhere else in the
// table, as distinct users do. The string form of the key shares the
// buffer; no library here keeps a key past the call.
func timeLookups(t table, d time.Duration) (ns, allocs float64) {
	var buf [32]byte
	copy(buf[:], "session-0123456789abcdefghijklmn")
	length, counter, sink := 16, uint64(0), 0
	batch := func(n int) {
		for range n {
			counter++
			binary.LittleEndian.PutUint64(buf[8:], counter)
			sink += len(t.lookup(buf[:length], unsafe.String(&buf[0], length)))
			if length++; length > len(buf) {
				length = 16
			}
		}
	}
	// Calibrate a batch that takes about 10ms.
	size := 1024
	for {
		start := time.Now()
		batch(size)
		if time.Since(start) > 10*time.Millisecond || size > 1<<26 {
			break
		}
		size *= 2
	}
	runtime.GC()
	ops := 0
	m0, c0, w0 := mallocs(), cpuTime(), time.Now()
	for time.Since(w0) < d {
		batch(size)
		ops += size
	}
	cpu := cpuTime() - c0
	allocs = float64(mallocs()-m0) / float64(ops)
	if sink == 0 {
		panic("no lookups")
	}
	return float64(cpu) / float64(ops), allocs
}
