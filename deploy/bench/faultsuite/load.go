package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// runEngine runs every fault's load through a fresh ringside on engine and returns what
// the clients saw. The backends, ringside and every client are gone when it returns.
func runEngine(ctx context.Context, opt options, bin, workDir, engine string) (engineResult, error) {
	res := engineResult{Engine: engine, Deadline: opt.timeouts.bound()}
	dir := filepath.Join(workDir, engine)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	backends := make(map[fault][]*backend)
	cross := newCrossings(opt.crossWindow)
	defer func() {
		for _, bs := range backends {
			for _, b := range bs {
				b.Close()
			}
		}
	}()
	for _, f := range opt.faults {
		for range opt.backends {
			b, err := startBackend(f, cross)
			if err != nil {
				return res, err
			}
			backends[f] = append(backends[f], b)
		}
	}
	addrs, err := freeAddrs(len(opt.faults) + 1)
	if err != nil {
		return res, err
	}
	listen := make(map[fault]string)
	for i, f := range opt.faults {
		listen[f] = addrs[i+1]
	}
	services := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(services, []byte(servicesFile(opt.faults, backends)), 0o600); err != nil {
		return res, err
	}
	cfg := sidecarConfig(services, addrs[0], listen, opt.faults, opt.timeouts, engine)
	sc, err := startSidecar(ctx, bin, dir, cfg, addrs[0])
	if err != nil {
		return res, fmt.Errorf("engine %s: %w", engine, err)
	}
	defer sc.stop()
	if res.Before, err = sc.sample(); err != nil {
		return res, err
	}

	start := time.Now()
	results := make([]faultResult, len(opt.faults))
	var wg sync.WaitGroup
	var mu sync.Mutex // guards results
	for i, f := range opt.faults {
		results[i] = faultResult{Fault: f, Outcomes: map[string]int{}, Reasons: map[string]int{}}
		for w := range opt.concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loadLoop(ctx, opt, listen[f], f, w, start.Add(opt.duration), func(id string, o outcome, took time.Duration) {
					mu.Lock()
					results[i].record(id, o, took)
					mu.Unlock()
				})
			}()
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	// Let ringside notice the closed client connections before the second reading, and the
	// backends read the last requests ringside sent.
	time.Sleep(300 * time.Millisecond)
	for i := range results {
		results[i].settle(cross)
	}
	res.Faults = results
	if res.After, err = sc.sample(); err != nil {
		return res, err
	}
	return res, nil
}

// loadLoop is one client of fault f: requests back to back on a keep-alive connection
// until end, maxRequests or ctx, each checked and recorded.
func loadLoop(ctx context.Context, opt options, addr string, f fault, worker int, end time.Time, record func(string, outcome, time.Duration)) {
	c := &client{addr: addr, deadline: opt.timeouts.bound()}
	defer c.close()
	rng := rand.New(rand.NewPCG(uint64(worker), uint64(len(f))))
	for seq := 0; seq < opt.maxRequests && time.Now().Before(end) && ctx.Err() == nil; seq++ {
		id := fmt.Sprintf("%s%s-%d-%d", idPrefix, shortName(f), worker, seq)
		r := nextRequest(f, rng, id)
		t0 := time.Now()
		o := c.do(r)
		record(id, o, time.Since(t0))
	}
}

// shortName abbreviates a fault for ids: its initials.
func shortName(f fault) string {
	b := []byte{f[0]}
	for i := 1; i < len(f); i++ {
		if f[i-1] == '_' {
			b = append(b, f[i])
		}
	}
	return string(b)
}
