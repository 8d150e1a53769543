package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// runResult is one measured run of one proxy.
type runResult struct {
	Suite     string    `json:"suite"` // main, sweep, endpoints, body, observe, backend
	Proxy     string    `json:"proxy"`
	Kind      string    `json:"kind"`
	Engine    string    `json:"engine,omitempty"` // ringside's engine.kind when not the default
	Round     int       `json:"round"`
	Conns     int       `json:"conns"`
	Endpoints int       `json:"endpoints"`
	BodySize  int       `json:"body_size"`
	Backend   string    `json:"backend"`
	Start     time.Time `json:"start"`

	Requests int64   `json:"requests"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Errors   int64   `json:"errors"`

	ProxyCPU   float64 `json:"proxy_cpu_us_per_req"`   // utime+stime of the proxy's processes / requests
	ProxyUser  float64 `json:"proxy_user_us_per_req"`  // utime alone (the rest is kernel time)
	BackendCPU float64 `json:"backend_cpu_us_per_req"` // the same for the backend process
	WrkCPU     float64 `json:"wrk_cpu_us_per_req"`     // wrk's own rusage / requests
	RSSKiB     int64   `json:"rss_kib"`                // VmHWM summed over the proxy's processes
	Procs      int     `json:"procs"`
	Busy       float64 `json:"machine_busy_pct"` // all CPUs, over the measured window
	Load1      float64 `json:"load1"`            // 1-minute load average at the start
	Scrapes    int     `json:"scrapes,omitempty"`
	Err        string  `json:"error,omitempty"`
}

// job is what a run sends: wrk's shape, minus the URL.
type job struct {
	Suite     string
	Round     int
	Conns     int
	Duration  time.Duration
	Users     int
	Method    string
	BodySize  int
	Endpoints []string // the backend addresses the proxy is given
}

// measure starts spec in front of be, warms it up, measures one wrk run, and stops it. An
// error in the proxy or the load is recorded in the result, not returned, so that one
// broken contender does not sink the whole comparison; only a failure of the harness itself
// is returned.
func measure(ctx context.Context, h *harness, spec proxySpec, be *backendSet, j job) runResult {
	h.seq++
	r := runResult{
		Suite: j.Suite, Proxy: spec.Name, Kind: spec.Kind, Engine: spec.Engine, Round: j.Round, Conns: j.Conns,
		Endpoints: len(j.Endpoints), BodySize: j.BodySize, Backend: be.kind, Start: time.Now(), Load1: loadAvg1(),
	}
	if spec.Kind == kindDirect {
		r.Endpoints = 1
	}
	dir := filepath.Join(h.work, fmt.Sprintf("run-%03d-%s", h.seq, spec.tag()))
	fail := func(err error) runResult {
		r.Err = err.Error()
		h.logf("  %-24s FAILED: %v", spec.Name, err)
		return r
	}
	rp, err := startProxy(ctx, h, spec, j.Endpoints, dir)
	if err != nil {
		return fail(err)
	}
	defer rp.stop()

	wj := wrkJob{URL: rp.url, Threads: h.cfg.threads, Conns: j.Conns, Users: j.Users, Method: j.Method, BodySize: j.BodySize}
	if h.cfg.warmup > 0 {
		wj.Duration = h.cfg.warmup
		if _, _, err := runWrk(ctx, h.script, wj); err != nil {
			return fail(fmt.Errorf("warm-up: %w", err))
		}
	}

	pidOf := func() int {
		if rp.proc == nil {
			return 0
		}
		return rp.proc.pid()
	}
	var p0, p1, b0, b1 treeCPU
	if pid := pidOf(); pid != 0 {
		if p0, err = readTreeCPU("/proc", pid); err != nil {
			return fail(err)
		}
	}
	if b0, err = readTreeCPU("/proc", be.proc.pid()); err != nil {
		return fail(fmt.Errorf("backend: %w", err))
	}
	m0, _ := readCPUTotals()

	scrapes := 0
	var wg sync.WaitGroup
	stopScrape := make(chan struct{})
	if spec.Observe && rp.admin != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scrapes = scrapeEverySecond(ctx, rp.admin+"/metrics", stopScrape, j.Duration+5*time.Second)
		}()
	}

	wj.Duration = j.Duration
	w, out, err := runWrk(ctx, h.script, wj)
	close(stopScrape)
	wg.Wait()
	r.Scrapes = scrapes
	if err != nil {
		return fail(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "wrk.txt"), []byte(out), 0o644)

	m1, _ := readCPUTotals()
	if b1, err = readTreeCPU("/proc", be.proc.pid()); err != nil {
		return fail(fmt.Errorf("backend: %w", err))
	}
	if pid := pidOf(); pid != 0 {
		if p1, err = readTreeCPU("/proc", pid); err != nil {
			return fail(err)
		}
		if !slices.Equal(p0.PIDs, p1.PIDs) {
			r.Err = fmt.Sprintf("process set changed during the run (%v → %v): CPU time of exited processes is missing", p0.PIDs, p1.PIDs)
		}
		r.Procs = len(p1.PIDs)
		if r.RSSKiB, err = peakRSS("/proc", p1.PIDs); err != nil {
			return fail(err)
		}
	}

	r.Requests, r.RPS = w.Requests, w.RPS
	r.P50, r.P99, r.P999 = w.P50, w.P99, w.P999
	r.Errors = w.Errors()
	if w.Requests > 0 {
		n := float64(w.Requests)
		r.ProxyCPU = ticksToMicros(p1.Ticks-p0.Ticks) / n
		r.ProxyUser = ticksToMicros(p1.UTicks-p0.UTicks) / n
		r.BackendCPU = ticksToMicros(b1.Ticks-b0.Ticks) / n
		r.WrkCPU = float64(w.CPU.Microseconds()) / n
	}
	if dt := m1.Total - m0.Total; dt > 0 {
		r.Busy = 100 * float64(m1.Busy-m0.Busy) / float64(dt)
	}
	if rp.proc != nil && rp.proc.exited() {
		r.Err = fmt.Sprintf("%s exited during the run: %s", spec.Name, rp.proc.tail())
	}
	h.logf("  %-24s c=%-3d %9.0f req/s  cpu %6.1f µs/req (user %5.1f)  p50 %7.0fµs p99 %7.0fµs p99.9 %7.0fµs  rss %6.1f MiB  err %d  busy %3.0f%%",
		spec.Name, j.Conns, r.RPS, r.ProxyCPU, r.ProxyUser, r.P50, r.P99, r.P999, float64(r.RSSKiB)/1024, r.Errors, r.Busy)
	return r
}

// scrapeEverySecond GETs url once a second until stop is closed or limit passes, and
// returns how many scrapes answered 200.
func scrapeEverySecond(ctx context.Context, url string, stop <-chan struct{}, limit time.Duration) int {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.After(limit)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	for i := 0; i < 3600; i++ {
		select {
		case <-stop:
			return n
		case <-deadline:
			return n
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			n++
		}
	}
	return n
}
