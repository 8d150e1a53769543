//go:build !race

package consul

// raceEnabled is true when the race detector is on; measuring tests then skip time budgets.
const raceEnabled = false
