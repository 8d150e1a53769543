package consultest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// BinaryEnv names the environment variable that points at a Consul binary to use instead of
// the one agent/build.sh builds.
const BinaryEnv = "RINGSIDE_CONSUL_BIN"

// binaryName is where agent/build.sh puts the binary, relative to the repository root.
const binaryName = ".cache/bin/consul-1.15.4"

// modulePath identifies the repository root's go.mod (the agent has a go.mod of its own).
const modulePath = "github.com/ringside-proxy/ringside"

// ErrNoBinary is wrapped by the error Binary returns when there is no agent binary.
var ErrNoBinary = errors.New("no consul test agent binary")

// Binary returns the path of the Consul binary: $RINGSIDE_CONSUL_BIN, else
// <repo root>/.cache/bin/consul-1.15.4, the root being found by walking up from the working
// directory to ringside's go.mod.
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %w", ErrNoBinary, BinaryEnv, p, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoBinary, err)
	}
	p := filepath.Join(root, binaryName)
	if err := executable(p); err != nil {
		return "", fmt.Errorf("%w at %s (%w): build it with "+
			"discovery/consul/consultest/agent/build.sh or `make test` (6 to 9 minutes the "+
			"first time), or set %s", ErrNoBinary, p, err, BinaryEnv)
	}
	return p, nil
}

// executable checks that p is a regular file with an execute bit.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// repoRoot walks up from the working directory to the directory whose go.mod declares
// ringside's module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if moduleOf(filepath.Join(dir, "go.mod")) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// moduleOf returns the module path a go.mod declares, or "" when it cannot be read.
func moduleOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// ports are the agent's listening ports; -1 disables the gRPC and DNS servers.
type ports struct {
	http, server, serfLAN, serfWAN int
}

// freePorts finds four ports that are free for TCP and UDP on 127.0.0.1 (serf uses both).
// It holds all of them until it returns, so they are distinct.
func freePorts() (ports, error) {
	var (
		got     []int
		closers []func()
	)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for attempts := 0; len(got) < 4; attempts++ {
		if attempts > 100 {
			return ports{}, errors.New("no free ports on 127.0.0.1")
		}
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("free port: %w", err)
		}
		closers = append(closers, func() { tl.Close() })
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken for UDP: try another
		}
		closers = append(closers, func() { ul.Close() })
		got = append(got, port)
	}
	return ports{http: got[0], server: got[1], serfLAN: got[2], serfWAN: got[3]}, nil
}

// args returns the command line of a -dev agent on these ports with its data in dataDir.
func (p ports) args(dataDir, node string) []string {
	itoa := strconv.Itoa
	return []string{
		"agent", "-dev",
		"-node", node,
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-data-dir", dataDir,
		"-http-port", itoa(p.http),
		"-server-port", itoa(p.server),
		"-serf-lan-port", itoa(p.serfLAN),
		"-serf-wan-port", itoa(p.serfWAN),
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-dns-port", "-1",
		"-log-level", "info",
		"-disable-host-node-id",
	}
}
