//go:build !race

package proxy

// raceEnabled scales down the heaviest loops, which the race detector slows tenfold.
const raceEnabled = false
