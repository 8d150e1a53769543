package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// options is one run of the suite (the command line).
type options struct {
	engines     []string
	faults      []fault
	duration    time.Duration // of the load on each engine
	concurrency int           // clients per fault
	maxRequests int           // per client
	backends    int           // backends per fault
	timeouts    timeouts
	ringside    string // prebuilt binary; "" builds one
	keep        bool   // keep the work folder (configs, ringside's log)
	crossWindow time.Duration
	newTimeouts string // auto, on, off: write timeouts.body_idle and timeouts.request
}

// faultResult is what one fault's clients saw through one engine.
type faultResult struct {
	Fault    fault          `json:"fault"`
	Requests int            `json:"requests"`
	Served   int            `json:"served"`
	Wrong    int            `json:"wrong"`
	Hangs    int            `json:"hangs"`
	Outcomes map[string]int `json:"outcomes"`      // status code or outcome label → count
	Reasons  map[string]int `json:"wrong_reasons"` // why answers were wrong
	Examples []string       `json:"examples"`      // a few wrong answers and hangs, described
	Longest  time.Duration  `json:"longest_wait"`  // of any exchange
	// Crossed counts answers that were wrong because extra bytes and the request crossed
	// on the wire, which no HTTP/1.1 proxy can prevent (see crossings); not failures.
	Crossed int `json:"crossed"`

	wrongs []wrongAnswer // until settle
}

// wrongAnswer is a wrong outcome and the id of the request it answered.
type wrongAnswer struct {
	id      string
	outcome outcome
}

// engineResult is one engine's run.
type engineResult struct {
	Engine   string        `json:"engine"`
	Deadline time.Duration `json:"deadline"` // per exchange
	Before   procSample    `json:"before"`
	After    procSample    `json:"after"`
	Faults   []faultResult `json:"faults"`
	Elapsed  time.Duration `json:"elapsed"`
}

// failures counts wrong answers and hangs over every fault.
func (r engineResult) failures() (wrong, hangs int) {
	for _, f := range r.Faults {
		wrong += f.Wrong
		hangs += f.Hangs
	}
	return wrong, hangs
}

const maxExamples = 4

// record adds one outcome of request id to the tally. Wrong answers wait for settle.
func (fr *faultResult) record(id string, o outcome, took time.Duration) {
	fr.Requests++
	fr.Longest = max(fr.Longest, took)
	switch o.label {
	case outWrong:
		fr.wrongs = append(fr.wrongs, wrongAnswer{id: id, outcome: o})
		return
	case outHang:
		fr.Hangs++
		fr.example(o)
	}
	fr.Outcomes[o.label]++
	if o.served {
		fr.Served++
	}
}

func (fr *faultResult) example(o outcome) {
	if len(fr.Examples) < maxExamples {
		fr.Examples = append(fr.Examples, o.label+": "+o.detail)
	}
}

// settle counts the wrong answers, once every backend has seen every request: those to a
// request that crossed extra bytes on the wire are counted as crossed, the rest as wrong.
func (fr *faultResult) settle(cr *crossings) {
	for _, w := range fr.wrongs {
		if cr.crossed(w.id) {
			fr.Crossed++
			fr.Outcomes[outCrossed]++
			continue
		}
		fr.Wrong++
		fr.Outcomes[outWrong]++
		fr.Reasons[w.outcome.reason]++
		o := w.outcome
		o.detail += "; " + cr.explain(w.id)
		fr.example(o)
	}
	fr.wrongs = nil
}

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

// sortedKeys returns m's keys, most frequent first.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
