package etcd

import "runtime/debug"

// This file lends the external tests (package etcd_test) what they need from inside.

// SetAfterList installs a hook that runs after each list of a service has been published and
// before its watch starts, for tests that need to act in that window (compaction).
func SetAfterList(s *Source, f func(service string)) { s.afterList = f }

// RaceEnabled reports whether the test binary runs under the race detector, which slows
// everything several-fold: timing targets are then printed but not asserted.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
