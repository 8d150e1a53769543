package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary play the Go backend, as the real binary does, when the
// harness starts it with -serve-backend.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "-serve-backend" {
		if err := serveBackend(os.Args[2]); err != nil {
			os.Stderr.WriteString("backend: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
