package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// harness carries what every suite needs.
type harness struct {
	cfg         config
	work        string // temporary folder: configs, logs, wrk outputs
	script      string // the wrk Lua script
	ringsideBin string
	repo        string
	ports       *portAllocator
	backend     *backendSet // the 3 backends of every suite but the endpoints one
	peers       []string    // installed peers, in the order of -peers
	seq         int
	out         io.Writer

	results   []runResult
	notes     []string // what was skipped or went wrong, for the report
	profiles  []*profileResult
	syscalls  []syscallResult
	machine   machine
	loadStart float64
	loadEnd   float64
	started   time.Time
	args      []string
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *harness) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	h.notes = append(h.notes, s)
	h.logf("note: %s", s)
}

func (h *harness) suiteOn(name string) bool {
	return slices.Contains(strings.Split(h.cfg.suites, ","), name)
}

// run is the whole benchmark: set-up, the suites, the report.
func run(ctx context.Context, cfg config, args []string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.maxTime)
	defer cancel()
	h := &harness{cfg: cfg, out: os.Stderr, ports: &portAllocator{next: cfg.portBase}, started: time.Now(), args: args}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "proxybench-")
	if err != nil {
		return err
	}
	h.work = work
	if cfg.keepWork {
		h.logf("work folder (kept): %s", work)
	} else {
		defer os.RemoveAll(work)
	}

	if cfg.install {
		installPeers(ctx, h.logf)
	}
	if err := requireWrk(); err != nil {
		return err
	}
	for _, p := range strings.Split(cfg.peers, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case p != kindNginx && p != kindHAProxy && p != kindCaddy:
			return fmt.Errorf("-peers: %q is not one of nginx, haproxy, caddy", p)
		case len(missingPrograms(p)) > 0:
			h.note("%s is not installed: left out of every comparison", p)
		default:
			h.peers = append(h.peers, p)
		}
	}
	if h.script, err = writeScript(work); err != nil {
		return err
	}

	h.repo = cfg.repo
	if h.repo == "" {
		if h.repo, err = findRepo(); err != nil && cfg.ringsideBin == "" {
			return err
		}
	}
	h.ringsideBin = cfg.ringsideBin
	commit := "prebuilt binary"
	if h.ringsideBin != "" {
		// Only when built with VCS stamping (not with -buildvcs=false in GOFLAGS).
		if c := binaryCommit(h.ringsideBin); c != "" {
			commit = c
		}
	} else {
		commit = gitCommit(h.repo) // read just before the build: the tree may move on later
		h.logf("building ringside from %s at %s", h.repo, commit)
		if h.ringsideBin, err = buildRingside(ctx, h.repo, work); err != nil {
			return err
		}
	}

	if cfg.quietWait > 0 {
		waitQuiet(ctx, cfg.quietLoad, cfg.quietWait, h.logf)
	}
	h.loadStart = loadAvg1()
	h.machine = describeMachine()
	h.machine.Commit = commit
	h.logf("machine: %s; load average %.2f", h.machine, h.loadStart)

	kind := cfg.backend
	if kind == "auto" {
		kind = backendGo
		if len(missingPrograms("nginx")) == 0 {
			kind = backendNginx
		}
	}
	ports, err := h.ports.take(3)
	if err != nil {
		return err
	}
	if h.backend, err = startBackends(ctx, kind, filepath.Join(work, "backend"), ports, cfg.backendWork); err != nil {
		return err
	}
	defer h.backend.proc.stop(5 * time.Second)
	h.logf("backends: %s on %v", kind, h.backend.addrs())

	suites := []struct {
		name string
		run  func(context.Context) error
	}{
		{"backends", h.suiteBackends},
		{"main", h.suiteMain},
		{"sweep", h.suiteSweep},
		{"endpoints", h.suiteEndpoints},
		{"body", h.suiteBody},
		{"observe", h.suiteObserve},
		{"syscalls", h.suiteSyscalls},
		{"profile", h.suiteProfile},
	}
	for _, s := range suites {
		if !h.suiteOn(s.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			h.note("stopped before the %s suite: %v", s.name, err)
			break
		}
		h.logf("suite %s", s.name)
		if err := s.run(ctx); err != nil {
			h.note("suite %s: %v", s.name, err)
		}
	}
	h.loadEnd = loadAvg1()
	return h.writeOutputs()
}

// ringsideSpecs are ringside's contenders, one per engine of -engines: "ringside" (the
// default goroutines engine) and "ringside event_loop". Never empty: without engines (a
// config not from parseFlags) it is plain ringside.
func (h *harness) ringsideSpecs() []proxySpec {
	engines := h.cfg.engines
	if len(engines) == 0 {
		engines = []string{engineGoroutines}
	}
	var specs []proxySpec
	for _, e := range engines {
		s := proxySpec{Name: ringsideName(e), Kind: kindRingside}
		if e != engineGoroutines {
			s.Engine = e
		}
		specs = append(specs, s)
	}
	return specs
}

// mainSpecs are the contenders of the main comparison, ringside first and direct last.
func (h *harness) mainSpecs() []proxySpec {
	var specs []proxySpec
	for _, s := range h.ringsideSpecs() {
		specs = append(specs, s)
		if h.cfg.gomaxprocs1 && s.Engine == "" {
			specs = append(specs, proxySpec{Name: "ringside GOMAXPROCS=1", Kind: kindRingside, GOMAXPROCS: 1})
		}
	}
	for _, p := range h.peers {
		specs = append(specs, proxySpec{Name: p, Kind: p})
	}
	return append(specs, proxySpec{Name: "direct", Kind: kindDirect})
}

// peerSpecs are ringside (each engine) and the installed peers, with or without direct.
func (h *harness) peerSpecs(withDirect bool) []proxySpec {
	specs := h.ringsideSpecs()
	for _, p := range h.peers {
		specs = append(specs, proxySpec{Name: p, Kind: p})
	}
	if withDirect {
		specs = append(specs, proxySpec{Name: "direct", Kind: kindDirect})
	}
	return specs
}

// rotate returns specs started at position round: each round interleaves every contender
// once, and the starting contender changes from round to round so that none always runs
// first (right after a build, say) or last.
func rotate(specs []proxySpec, round int) []proxySpec {
	if len(specs) == 0 {
		return nil
	}
	k := round % len(specs)
	return append(slices.Clone(specs[k:]), specs[:k]...)
}

func (h *harness) record(r runResult) { h.results = append(h.results, r) }

// suiteMain is the headline: every contender, interleaved over the rounds.
func (h *harness) suiteMain(ctx context.Context) error {
	specs := h.mainSpecs()
	for round := 0; round < h.cfg.rounds; round++ {
		h.logf("main round %d/%d", round+1, h.cfg.rounds)
		for _, s := range rotate(specs, round) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.record(measure(ctx, h, s, h.backend, job{Suite: "main", Round: round + 1, Conns: h.cfg.conns,
				Duration: h.cfg.duration, Users: h.cfg.users, Endpoints: h.backend.addrs()}))
		}
	}
	return nil
}

// suiteSweep runs each contender at each connection count.
func (h *harness) suiteSweep(ctx context.Context) error {
	levels, err := parseInts(h.cfg.sweep)
	if err != nil {
		return err
	}
	specs := h.peerSpecs(true)
	if h.cfg.quick {
		specs = append(h.ringsideSpecs(), proxySpec{Name: "direct", Kind: kindDirect})
	}
	for round := 0; round < h.cfg.extraRounds; round++ {
		for _, c := range levels {
			for _, s := range rotate(specs, round) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h.record(measure(ctx, h, s, h.backend, job{Suite: "sweep", Round: round + 1, Conns: c,
					Duration: h.cfg.sweepDuration, Users: h.cfg.users, Endpoints: h.backend.addrs()}))
			}
		}
	}
	return nil
}

// suiteEndpoints puts every proxy in front of many endpoints that all answer: one backend
// process listening on that many loopback ports (distinct sockets, so each proxy keeps a
// connection pool per endpoint, as it would for distinct hosts). The same proxy in front of
// 3 ports of the same backend process is the baseline.
func (h *harness) suiteEndpoints(ctx context.Context) error {
	n := h.cfg.manyEndpoints
	ports, err := h.ports.take(n)
	if err != nil {
		return err
	}
	be, err := startBackends(ctx, h.backend.kind, filepath.Join(h.work, "backend-many"), ports, h.cfg.backendWork)
	if err != nil {
		return err
	}
	defer be.proc.stop(5 * time.Second)
	specs := h.peerSpecs(false)
	if h.cfg.quick {
		specs = h.ringsideSpecs()
	}
	all := be.addrs()
	for round := 0; round < h.cfg.extraRounds; round++ {
		for _, s := range rotate(specs, round) {
			for _, eps := range [][]string{all[:3], all} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h.record(measure(ctx, h, s, be, job{Suite: "endpoints", Round: round + 1, Conns: h.cfg.conns,
					Duration: h.cfg.duration, Users: h.cfg.users, Endpoints: eps}))
			}
		}
	}
	return nil
}

// suiteBody POSTs a large body (1 MiB by default) through each proxy. Its backend is the Go
// one, which reads the whole body before it answers, as an upload handler does: nginx's
// `return 200` answers first and discards the body afterwards, and a proxy that streams the
// body (nginx with proxy_request_buffering off) then closes the client's connection on
// almost every request, which measures the backend's shortcut, not the proxy.
func (h *harness) suiteBody(ctx context.Context) error {
	be := h.backend
	if be.kind != backendGo {
		ports, err := h.ports.take(3)
		if err != nil {
			return err
		}
		if be, err = startBackends(ctx, backendGo, filepath.Join(h.work, "backend-body"), ports, 1); err != nil {
			return err
		}
		defer be.proc.stop(5 * time.Second)
	}
	specs := h.peerSpecs(true)
	if h.cfg.quick {
		specs = append(h.ringsideSpecs(), proxySpec{Name: "direct", Kind: kindDirect})
	}
	for round := 0; round < h.cfg.extraRounds; round++ {
		for _, s := range rotate(specs, round) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.record(measure(ctx, h, s, be, job{Suite: "body", Round: round + 1, Conns: h.cfg.bodyConns,
				Duration: h.cfg.duration, Users: h.cfg.bodyUsers, Method: "POST", BodySize: h.cfg.bodySize,
				Endpoints: be.addrs()}))
		}
	}
	return nil
}

// observeSuffix ends the name of ringside with its access log and metrics scraping on:
// "ringside + access log 1/100 + /metrics 1/s", "ringside event_loop + access log …".
const observeSuffix = " + access log 1/100 + /metrics 1/s"

// suiteObserve alternates ringside as in the main table with ringside logging 1 request in
// 100 and its /metrics scraped every second, over -rounds rounds: a pair for each engine,
// all interleaved, each compared with the same engine with both off.
func (h *harness) suiteObserve(ctx context.Context) error {
	var specs []proxySpec
	for _, s := range h.ringsideSpecs() {
		o := s
		o.Name, o.Observe = s.Name+observeSuffix, true
		specs = append(specs, s, o)
	}
	for round := 0; round < h.cfg.rounds; round++ {
		for _, s := range rotate(specs, round) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.record(measure(ctx, h, s, h.backend, job{Suite: "observe", Round: round + 1, Conns: h.cfg.conns,
				Duration: h.cfg.duration, Users: h.cfg.users, Endpoints: h.backend.addrs()}))
		}
	}
	return nil
}

// suiteBackends compares the two backends: wrk straight at each (its CPU per request is the
// backend's cost) and ringside (the first engine of -engines) in front of each, so the
// choice of backend is measured, not assumed.
func (h *harness) suiteBackends(ctx context.Context) error {
	other := backendGo
	if h.backend.kind == backendGo {
		if len(missingPrograms("nginx")) > 0 {
			return fmt.Errorf("nginx is not installed: only the Go backend can be measured")
		}
		other = backendNginx
	}
	ports, err := h.ports.take(3)
	if err != nil {
		return err
	}
	be2, err := startBackends(ctx, other, filepath.Join(h.work, "backend-"+other), ports, h.cfg.backendWork)
	if err != nil {
		return err
	}
	defer be2.proc.stop(5 * time.Second)
	// One ringside engine is enough to compare backends: the first of -engines.
	specs := []proxySpec{{Name: "direct", Kind: kindDirect}, h.ringsideSpecs()[0]}
	for round := 0; round < h.cfg.extraRounds; round++ {
		for _, be := range []*backendSet{h.backend, be2} {
			for _, s := range specs {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.Name += " → " + be.kind + " backend"
				h.record(measure(ctx, h, s, be, job{Suite: "backends", Round: round + 1, Conns: h.cfg.conns,
					Duration: h.cfg.duration, Users: h.cfg.users, Endpoints: be.addrs()}))
			}
		}
	}
	return nil
}
