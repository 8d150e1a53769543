package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profileResult is what the profile suite found: pprof's top tables and the allocation rate
// per request from runtime.MemStats.
type profileResult struct {
	Proxy        string // "ringside", "ringside event_loop"
	Label        string // "3 endpoints", "5,000 endpoints"
	Endpoints    int
	Requests     int64
	RPS          float64
	CPUSeconds   int
	BytesPerReq  float64
	AllocsPerReq float64
	GCs          int64
	CPUTop       string // flat, whole process
	CPUCum       string // cumulative, whole process
	CPUProxy     string // cumulative, package proxy frames only
	AllocTop     string // alloc_space, flat
	AllocObjTop  string // alloc_objects, flat
	AllocProxy   string // alloc_space, package proxy frames only
	Files        []string
	Dir          string
}

// memStats are the cumulative counters at the end of /debug/pprof/allocs?debug=1.
type memStats struct{ TotalAlloc, Mallocs, NumGC int64 }

// parseMemStats reads "# TotalAlloc = N", "# Mallocs = N" and "# NumGC = N" from the text
// form of a heap or allocs profile.
func parseMemStats(text string) (memStats, error) {
	var m memStats
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "TotalAlloc":
			dst = &m.TotalAlloc
		case "Mallocs":
			dst = &m.Mallocs
		case "NumGC":
			dst = &m.NumGC
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return m, fmt.Errorf("memstats %s: %w", k, err)
		}
		*dst = n
		seen++
	}
	if seen < 3 {
		return m, fmt.Errorf("memstats: found %d of TotalAlloc, Mallocs, NumGC", seen)
	}
	return m, nil
}

func fetch(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, oneLine(string(b), 200))
	}
	return b, nil
}

// suiteProfile runs ringside with admin.pprof on under the main workload, takes a CPU
// profile over most of the run and allocation profiles before and after it, and keeps
// pprof's top tables: once in front of the 3 backends, and once in front of -endpoints
// endpoints when the endpoints suite is on (to see where the extra cost there goes); each
// time for every engine of -engines. The profiles of the default engine go into profile/
// and profile-N/, those of the event loops into profile-event_loop/ and
// profile-event_loop-N/.
func (h *harness) suiteProfile(ctx context.Context) error {
	specs := h.ringsideSpecs()
	folder := func(s proxySpec, suffix string) string {
		name := "profile"
		if s.Engine != "" {
			name += "-" + s.Engine
		}
		return filepath.Join(h.cfg.out, name+suffix)
	}
	var errs []error
	for _, s := range specs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := h.profileRingside(ctx, s, "3 endpoints", h.backend.addrs(), folder(s, "")); err != nil {
			errs = append(errs, fmt.Errorf("%s, 3 endpoints: %w", s.Name, err))
		}
	}
	if !h.suiteOn("endpoints") {
		return errors.Join(errs...)
	}
	ports, err := h.ports.take(h.cfg.manyEndpoints)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	be, err := startBackends(ctx, h.backend.kind, filepath.Join(h.work, "backend-many-profile"), ports, h.cfg.backendWork)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer be.proc.stop(5 * time.Second)
	label := fint(float64(h.cfg.manyEndpoints)) + " endpoints"
	for _, s := range specs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := h.profileRingside(ctx, s, label, be.addrs(), folder(s, fmt.Sprintf("-%d", h.cfg.manyEndpoints))); err != nil {
			errs = append(errs, fmt.Errorf("%s, %s: %w", s.Name, label, err))
		}
	}
	return errors.Join(errs...)
}

// profileRingside profiles ringside as spec (its engine) in front of endpoints, writing the
// profiles into dir.
func (h *harness) profileRingside(ctx context.Context, spec proxySpec, label string, endpoints []string, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	h.seq++
	spec.Name, spec.Pprof = spec.Name+" (pprof on)", true
	rp, err := startProxy(ctx, h, spec, endpoints, filepath.Join(h.work, fmt.Sprintf("run-%03d-%s-profile", h.seq, spec.tag())))
	if err != nil {
		return err
	}
	defer rp.stop()
	wj := wrkJob{URL: rp.url, Threads: h.cfg.threads, Conns: h.cfg.conns, Users: h.cfg.users, Duration: h.cfg.warmup}
	if h.cfg.warmup > 0 {
		if _, _, err := runWrk(ctx, h.script, wj); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	save := func(name string, b []byte) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, b, 0o644)
	}
	// The heap profile (which carries the alloc_* samples too) is only as fresh as the last
	// GC; gc=1 runs one first, so the difference covers exactly the run.
	allocs0, err := fetch(ctx, rp.admin+"/debug/pprof/heap?gc=1", 30*time.Second)
	if err != nil {
		return err
	}
	ms0text, err := fetch(ctx, rp.admin+"/debug/pprof/allocs?debug=1", 30*time.Second)
	if err != nil {
		return err
	}

	secs := max(1, int(h.cfg.duration/time.Second)-2)
	wj.Duration = h.cfg.duration
	type wrkOut struct {
		r   wrkResult
		err error
	}
	done := make(chan wrkOut, 1)
	go func() {
		r, _, err := runWrk(ctx, h.script, wj)
		done <- wrkOut{r, err}
	}()
	time.Sleep(time.Second)
	cpu, cpuErr := fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", rp.admin, secs), time.Duration(secs+30)*time.Second)
	w := <-done
	if w.err != nil {
		return w.err
	}
	if cpuErr != nil {
		return cpuErr
	}
	allocs1, err := fetch(ctx, rp.admin+"/debug/pprof/heap?gc=1", 30*time.Second)
	if err != nil {
		return err
	}
	ms1text, err := fetch(ctx, rp.admin+"/debug/pprof/allocs?debug=1", 30*time.Second)
	if err != nil {
		return err
	}
	ms0, err := parseMemStats(string(ms0text))
	if err != nil {
		return err
	}
	ms1, err := parseMemStats(string(ms1text))
	if err != nil {
		return err
	}

	pr := &profileResult{Proxy: ringsideName(spec.Engine), Label: label, Endpoints: len(endpoints), Requests: w.r.Requests, RPS: w.r.RPS, CPUSeconds: secs, GCs: ms1.NumGC - ms0.NumGC}
	if w.r.Requests > 0 {
		// The allocs were read before and after the whole wrk run, so every request of the
		// run is in the difference (and a few admin requests, which are negligible).
		pr.BytesPerReq = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(w.r.Requests)
		pr.AllocsPerReq = float64(ms1.Mallocs-ms0.Mallocs) / float64(w.r.Requests)
	}
	cpuPath, err := save("cpu.pb.gz", cpu)
	if err != nil {
		return err
	}
	a0, err := save("allocs-before.pb.gz", allocs0)
	if err != nil {
		return err
	}
	a1, err := save("allocs-after.pb.gz", allocs1)
	if err != nil {
		return err
	}
	pr.Files = []string{cpuPath, a0, a1}

	const proxyFrames = `ringside/proxy\.|ringside/proxy/`
	tops := []struct {
		dst  *string
		file string
		args []string
	}{
		{&pr.CPUTop, "cpu-top.txt", []string{"-top", "-nodecount=30", cpuPath}},
		{&pr.CPUCum, "cpu-cum.txt", []string{"-top", "-cum", "-nodecount=45", cpuPath}},
		{&pr.CPUProxy, "cpu-proxy-cum.txt", []string{"-top", "-cum", "-nodecount=30", "-show=" + proxyFrames, cpuPath}},
		{&pr.AllocTop, "allocs-space-top.txt", []string{"-top", "-nodecount=25", "-sample_index=alloc_space", "-base", a0, a1}},
		{&pr.AllocObjTop, "allocs-objects-top.txt", []string{"-top", "-nodecount=25", "-sample_index=alloc_objects", "-base", a0, a1}},
		{&pr.AllocProxy, "allocs-proxy.txt", []string{"-top", "-nodecount=25", "-sample_index=alloc_space", "-show=" + proxyFrames, "-base", a0, a1}},
	}
	for _, t := range tops {
		out, err := goPprof(ctx, t.args...)
		if err != nil {
			h.note("go tool pprof %s: %v", strings.Join(t.args, " "), err)
			continue
		}
		*t.dst = out
		p, err := save(t.file, []byte(out))
		if err != nil {
			return err
		}
		pr.Files = append(pr.Files, p)
	}
	pr.Dir = dir
	h.profiles = append(h.profiles, pr)
	h.logf("  profile of %s (%s): %.0f req/s, %.0f B and %.1f allocations per request, %d GCs", pr.Proxy, label, pr.RPS, pr.BytesPerReq, pr.AllocsPerReq, pr.GCs)
	return nil
}

// goPprof runs `go tool pprof` with args and returns its output.
func goPprof(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, oneLine(string(out), 300))
	}
	return string(out), nil
}
