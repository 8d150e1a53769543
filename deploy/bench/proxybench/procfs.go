package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is 100 on every
// Linux architecture Go runs on (sysconf(_SC_CLK_TCK) is fixed by the kernel ABI), so it is a
// constant here rather than a cgo call.
const clockTicks = 100

// procStat is what the harness reads from one /proc/PID/stat line.
type procStat struct {
	PID   int
	Comm  string
	PPID  int
	UTime uint64 // clock ticks
	STime uint64 // clock ticks
}

// parseStat parses one /proc/PID/stat line. The command name (field 2) is in parentheses
// and may itself hold spaces and parentheses, so the fields are counted from the last ')'.
func parseStat(line string) (procStat, error) {
	open := strings.IndexByte(line, '(')
	closing := strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("stat %q: no (comm)", abbreviate(line))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procStat{}, fmt.Errorf("stat pid: %w", err)
	}
	// After "(comm) ": state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9)
	// minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15) ...
	rest := strings.Fields(line[closing+1:])
	if len(rest) < 13 {
		return procStat{}, fmt.Errorf("stat %q: %d fields after comm, want ≥ 13", abbreviate(line), len(rest))
	}
	st := procStat{PID: pid, Comm: line[open+1 : closing]}
	if st.PPID, err = strconv.Atoi(rest[1]); err != nil {
		return procStat{}, fmt.Errorf("stat ppid: %w", err)
	}
	if st.UTime, err = strconv.ParseUint(rest[11], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("stat utime: %w", err)
	}
	if st.STime, err = strconv.ParseUint(rest[12], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("stat stime: %w", err)
	}
	return st, nil
}

func abbreviate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// readStat reads /proc/PID/stat under root (normally "/proc").
func readStat(root string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(bytes.TrimSpace(b)))
}

// allStats reads the stat line of every process under root. Processes that exit while the
// directory is read are skipped.
func allStats(root string) ([]procStat, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(root, pid)
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// descendants returns root and every process below it in stats (children, grandchildren, …):
// an nginx master and its workers, for example.
func descendants(stats []procStat, root int) []procStat {
	children := make(map[int][]procStat)
	var self *procStat
	for i := range stats {
		children[stats[i].PPID] = append(children[stats[i].PPID], stats[i])
		if stats[i].PID == root {
			self = &stats[i]
		}
	}
	if self == nil {
		return nil
	}
	out := []procStat{*self}
	for i := 0; i < len(out) && i < 10000; i++ {
		out = append(out, children[out[i].PID]...)
	}
	return out
}

// treeCPU is the CPU time of a process tree at one instant.
type treeCPU struct {
	Ticks  uint64 // utime+stime summed over the tree
	UTicks uint64 // utime alone: the share spent in user space
	PIDs   []int
}

// readTreeCPU sums utime+stime over root and its descendants. A worker that exits between
// two readings takes its ticks with it, which would make a difference negative; the caller
// checks the PID sets match.
func readTreeCPU(procRoot string, root int) (treeCPU, error) {
	stats, err := allStats(procRoot)
	if err != nil {
		return treeCPU{}, err
	}
	tree := descendants(stats, root)
	if len(tree) == 0 {
		return treeCPU{}, fmt.Errorf("process %d: not running", root)
	}
	var t treeCPU
	for _, st := range tree {
		t.Ticks += st.UTime + st.STime
		t.UTicks += st.UTime
		t.PIDs = append(t.PIDs, st.PID)
	}
	return t, nil
}

// ticksToMicros converts clock ticks to microseconds.
func ticksToMicros(ticks uint64) float64 { return float64(ticks) * 1e6 / clockTicks }

// parseVmHWM returns the peak resident set size, in KiB, from a /proc/PID/status file.
func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmHWM:") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "VmHWM:"))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM line %q: want \"N kB\"", line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no VmHWM line")
}

// peakRSS sums VmHWM over the given processes, in KiB.
func peakRSS(procRoot string, pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
		if err != nil {
			return 0, err
		}
		kib, err := parseVmHWM(b)
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", pid, err)
		}
		sum += kib
	}
	return sum, nil
}

// cpuTotals is the machine-wide line of /proc/stat: busy and total ticks over all CPUs.
type cpuTotals struct{ Busy, Total uint64 }

// parseProcStatCPU parses the first ("cpu ") line of /proc/stat. Busy is everything but idle
// and iowait.
func parseProcStatCPU(b []byte) (cpuTotals, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTotals{}, fmt.Errorf("/proc/stat: first line %q is not the cpu line", abbreviate(string(line)))
	}
	var t cpuTotals
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTotals{}, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		t.Total += v
		if i != 3 && i != 4 { // idle, iowait
			t.Busy += v
		}
	}
	return t, nil
}

func readCPUTotals() (cpuTotals, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTotals{}, err
	}
	return parseProcStatCPU(b)
}
