//go:build !linux

package proxy

// systemLimits knows no limits here: the default cap is the largest.
func systemLimits() (nofile, memBytes uint64) { return 0, 0 }
