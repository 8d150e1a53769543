package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// peerPackages are the Debian packages of the peers and the load generator.
var peerPackages = []string{"nginx-light", "haproxy", "caddy", "wrk"}

// missingPrograms returns the programs of names that are not on PATH.
func missingPrograms(names ...string) []string {
	var out []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			out = append(out, n)
		}
	}
	return out
}

// installPeers runs apt-get update and install when a peer or wrk is missing. Without root
// it says what to run instead and carries on with whatever is installed.
func installPeers(ctx context.Context, logf func(string, ...any)) {
	missing := missingPrograms("nginx", "haproxy", "caddy", "wrk")
	if len(missing) == 0 {
		return
	}
	if os.Geteuid() != 0 {
		logf("missing %v and not root: skipping the install; run `sudo apt-get update && sudo apt-get install -y %s` to add them",
			missing, joinWords(peerPackages))
		return
	}
	logf("missing %v: apt-get install -y %s", missing, joinWords(peerPackages))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for _, argv := range [][]string{
		{"apt-get", "update", "-q"},
		append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, peerPackages...),
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			logf("%v: %v\n%s", argv, err, abbreviateLines(string(out), 15))
			return
		}
	}
	if m := missingPrograms("nginx", "haproxy", "caddy", "wrk"); len(m) > 0 {
		logf("still missing after the install: %v", m)
	}
}

func joinWords(ws []string) string { return strings.Join(ws, " ") }

// requireWrk fails early when the load generator is missing: nothing can be measured.
func requireWrk() error {
	if m := missingPrograms("wrk"); len(m) > 0 {
		return fmt.Errorf("wrk is not installed (apt-get install wrk): nothing can be measured")
	}
	return nil
}
