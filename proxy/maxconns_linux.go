//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// systemLimits returns the soft RLIMIT_NOFILE (which the Go runtime raises to the hard limit
// at start-up) and the lowest memory limit of the cgroup and the machine, 0 when unknown.
func systemLimits() (nofile, memBytes uint64) {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur != ^uint64(0) {
		nofile = rl.Cur
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if v := readUint(f); v > 0 && (memBytes == 0 || v < memBytes) {
			memBytes = v
		}
	}
	if total := memTotal(); total > 0 && (memBytes == 0 || total < memBytes) {
		memBytes = total
	}
	return nofile, memBytes
}

// readUint reads a file holding one number; "max" (no limit), or anything else, is 0.
func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// memTotal is MemTotal from /proc/meminfo, in bytes, or 0.
func memTotal() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) >= 2 && string(fields[0]) == "MemTotal:" {
			kb, err := strconv.ParseUint(string(fields[1]), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
