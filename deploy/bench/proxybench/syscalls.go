package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// syscallCount is one line of `strace -c`.
type syscallCount struct {
	Name   string
	Calls  int64
	Errors int64
}

// parseStraceSummary reads the table `strace -c` prints on exit, without its total line.
//
//	% time     seconds  usecs/call     calls    errors syscall
//	------ ----------- ----------- --------- --------- ----------------
//	 45.12    0.123456          12     10000           write
//	 20.00    0.050000           5     10000       300 read
//	------ ----------- ----------- --------- --------- ----------------
//	100.00    0.273456                 20000       300 total
func parseStraceSummary(out string) ([]syscallCount, error) {
	var rs []syscallCount
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 0 && f[0] == "%" && slices.Contains(f, "calls"):
			inTable = true
		case !inTable || len(f) == 0 || strings.HasPrefix(f[0], "---"):
		case f[len(f)-1] == "total":
			inTable = false
		case len(f) == 5 || len(f) == 6:
			calls, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("strace line %q: calls: %w", sc.Text(), err)
			}
			c := syscallCount{Name: f[len(f)-1], Calls: calls}
			if len(f) == 6 {
				if c.Errors, err = strconv.ParseInt(f[4], 10, 64); err != nil {
					return nil, fmt.Errorf("strace line %q: errors: %w", sc.Text(), err)
				}
			}
			rs = append(rs, c)
		default:
			return nil, fmt.Errorf("strace line %q: want 5 or 6 fields", sc.Text())
		}
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("no strace -c table in:\n%s", abbreviateLines(out, 10))
	}
	slices.SortFunc(rs, func(a, b syscallCount) int { return int(b.Calls - a.Calls) })
	return rs, nil
}

// syscallResult is the system calls per request of one proxy.
type syscallResult struct {
	Proxy    string
	Requests int64
	Counts   []syscallCount
}

func (r syscallResult) perRequest() float64 {
	var n int64
	for _, c := range r.Counts {
		n += c.Calls
	}
	return float64(n) / float64(max(r.Requests, 1))
}

// suiteSyscalls counts the system calls each proxy makes per request with `strace -c -f`
// attached to all its processes during a wrk run. strace slows the proxy down many times,
// so only the counts are kept, not the speed; they show how many reads, writes, polls and
// wake-ups one forwarded request costs.
func (h *harness) suiteSyscalls(ctx context.Context) error {
	if len(missingPrograms("strace")) > 0 {
		return fmt.Errorf("strace is not installed (apt-get install strace)")
	}
	dur := min(h.cfg.duration, 5*time.Second)
	for _, spec := range h.peerSpecs(false) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := h.straceOne(ctx, spec, dur)
		if err != nil {
			h.note("syscalls of %s: %v", spec.Name, err)
			continue
		}
		h.syscalls = append(h.syscalls, r)
		h.logf("  %-24s %.1f system calls per request", spec.Name, r.perRequest())
	}
	return nil
}

func (h *harness) straceOne(ctx context.Context, spec proxySpec, dur time.Duration) (syscallResult, error) {
	h.seq++
	dir := filepath.Join(h.work, fmt.Sprintf("run-%03d-%s-strace", h.seq, spec.tag()))
	rp, err := startProxy(ctx, h, spec, h.backend.addrs(), dir)
	if err != nil {
		return syscallResult{}, err
	}
	defer rp.stop()
	wj := wrkJob{URL: rp.url, Threads: h.cfg.threads, Conns: h.cfg.conns, Users: h.cfg.users, Duration: h.cfg.warmup}
	if h.cfg.warmup > 0 {
		if _, _, err := runWrk(ctx, h.script, wj); err != nil {
			return syscallResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	tree, err := readTreeCPU("/proc", rp.proc.pid())
	if err != nil {
		return syscallResult{}, err
	}
	args := []string{"-c", "-f", "-qq", "-o", filepath.Join(dir, "strace.txt")}
	for _, pid := range tree.PIDs {
		args = append(args, "-p", strconv.Itoa(pid))
	}
	sctx, cancel := context.WithTimeout(ctx, dur+time.Minute)
	defer cancel()
	st := exec.CommandContext(sctx, "strace", args...)
	st.Cancel = func() error { return st.Process.Signal(syscall.SIGINT) }
	st.WaitDelay = 10 * time.Second
	if err := st.Start(); err != nil {
		return syscallResult{}, err
	}
	time.Sleep(500 * time.Millisecond) // attached before the load starts
	wj.Duration = dur
	w, _, werr := runWrk(ctx, h.script, wj)
	_ = st.Process.Signal(syscall.SIGINT) // detach and print the table
	_ = st.Wait()
	if werr != nil {
		return syscallResult{}, werr
	}
	out, err := os.ReadFile(filepath.Join(dir, "strace.txt"))
	if err != nil {
		return syscallResult{}, err
	}
	counts, err := parseStraceSummary(string(out))
	if err != nil {
		return syscallResult{}, err
	}
	return syscallResult{Proxy: spec.Name, Requests: w.Requests, Counts: counts}, nil
}

// syscallTable renders the per-request counts: the total and the most frequent calls.
func syscallTable(rs []syscallResult) string {
	var rows [][]string
	for _, r := range rs {
		var top []string
		for _, c := range r.Counts[:min(len(r.Counts), 6)] {
			s := fmt.Sprintf("%s %.2f", c.Name, float64(c.Calls)/float64(max(r.Requests, 1)))
			if c.Errors > 0 {
				s += fmt.Sprintf(" (%.2f failed)", float64(c.Errors)/float64(max(r.Requests, 1)))
			}
			top = append(top, s)
		}
		rows = append(rows, []string{"**" + r.Proxy + "**", fint(float64(r.Requests)), fnum(r.perRequest(), 2), strings.Join(top, ", ")})
	}
	return mdTable([]string{"proxy", "requests under strace", "system calls / request", "most frequent, per request"}, rows)
}
