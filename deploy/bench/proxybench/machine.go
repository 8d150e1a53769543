package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where the figures were taken.
type machine struct {
	Date     string
	CPUs     int
	CPUModel string
	Kernel   string
	Go       string
	Versions map[string]string // program → version line
	Commit   string            // what ringside was built from: git commit, "+dirty" with changes
}

// gitCommit is the repository's HEAD, with "+dirty" when files (tracked or not) other than
// this harness's folder differ from it: what a build made now compiles.
func gitCommit(repo string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "-C", repo, "status", "--porcelain", "--", ".", ":!deploy/bench").Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "+dirty"
	}
	return c
}

// binaryCommit reads the commit a Go binary was built from (`go version -m`: vcs.revision and
// vcs.modified, which counts uncommitted and untracked files), "" when it does not say.
func binaryCommit(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	var rev, modified string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "build" {
			continue
		}
		if v, ok := strings.CutPrefix(f[1], "vcs.revision="); ok {
			rev = v
		}
		if v, ok := strings.CutPrefix(f[1], "vcs.modified="); ok {
			modified = v
		}
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if rev != "" && modified == "true" {
		rev += "+dirty"
	}
	return rev
}

func describeMachine() machine {
	m := machine{
		Date:     time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		CPUs:     runtime.NumCPU(),
		CPUModel: cpuModel(),
		Kernel:   strings.TrimSpace(readFileString("/proc/sys/kernel/osrelease")),
		Go:       runtime.Version(),
		Versions: map[string]string{},
	}
	for name, argv := range map[string][]string{
		"nginx":   {"nginx", "-v"},
		"haproxy": {"haproxy", "-v"},
		"caddy":   {"caddy", "version"},
		"wrk":     {"wrk", "-v"},
	} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		cancel()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		m.Versions[name] = strings.TrimSpace(line)
	}
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readFileString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// loadAvg1 is the 1-minute load average, or -1 when unknown.
func loadAvg1() float64 {
	f := strings.Fields(readFileString("/proc/loadavg"))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// waitQuiet waits, up to limit, for the 1-minute load average to fall below threshold (other
// engineers compile on this machine). It returns the load average it stopped at.
func waitQuiet(ctx context.Context, threshold float64, limit time.Duration, logf func(string, ...any)) float64 {
	deadline := time.Now().Add(limit)
	for {
		l := loadAvg1()
		if l < threshold || time.Now().After(deadline) {
			return l
		}
		logf("load average %.2f ≥ %.2f: waiting (until %s at most)", l, threshold, deadline.Format("15:04:05"))
		select {
		case <-ctx.Done():
			return l
		case <-time.After(15 * time.Second):
		}
	}
}

func (m machine) String() string {
	return fmt.Sprintf("%s · %d × %s · Linux %s · %s", m.Date, m.CPUs, m.CPUModel, m.Kernel, m.Go)
}
