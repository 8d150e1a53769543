package proxy

import (
	"math"
	"runtime/debug"
	"sync"
)

// The default cap on a listener's client connections (ServerConfig.MaxConns) is sized to
// what the process may hold, so that a flood of connections is answered 503 before it costs
// the process its memory or its last file descriptor:
//
//	fds    = (RLIMIT_NOFILE - fdReserve) / 2         a client connection and its endpoint connection
//	memory = memory limit / 2 / busyConnBytes         half the memory, at a busy connection's cost
//	MaxConns = min(fds, memory), within [minDefaultMaxConns, maxDefaultMaxConns]
//
// The memory limit is the lowest of GOMEMLIMIT (debug.SetMemoryLimit), the cgroup's
// (memory.max, or memory.limit_in_bytes under cgroup v1) and the machine's memory; a limit
// that cannot be read is left out. The figures are the process's, and each listener gets
// the whole default: with several listeners, set max_connections on each to share them.
const (
	fdReserve          = 256      // the listeners, the registry, the admin server, logs
	busyConnBytes      = 64 << 10 // a connection with a request in flight (see deploy/CONFIG.md)
	minDefaultMaxConns = 64
	maxDefaultMaxConns = 262144 // fasthttp's default concurrency
)

// DefaultMaxConns returns the default of ServerConfig.MaxConns on this machine, from the
// process's file-descriptor and memory limits as read the first time it is called.
func DefaultMaxConns() int { return defaultMaxConns() }

var defaultMaxConns = sync.OnceValue(func() int {
	nofile, mem := systemLimits()
	if gl := debug.SetMemoryLimit(-1); gl > 0 && gl < math.MaxInt64 && (mem == 0 || uint64(gl) < mem) {
		mem = uint64(gl)
	}
	return maxConnsFor(nofile, mem)
})

// maxConnsFor is the formula above; a limit of 0 is unknown and left out.
func maxConnsFor(nofile, memBytes uint64) int {
	n := uint64(maxDefaultMaxConns)
	if nofile > 0 {
		n = min(n, (nofile-min(nofile, fdReserve))/2)
	}
	if memBytes > 0 {
		n = min(n, memBytes/2/busyConnBytes)
	}
	return int(max(n, minDefaultMaxConns))
}
