// Command proxybench measures ringside, with each of its engines (goroutines, event_loop) as
// its own contender, beside nginx, HAProxy and Caddy on loopback: the same sticky workload
// (a consistent hash of X-User-ID over 10,000 users) through each, and wrk straight at a
// backend as the ceiling. For each proxy it reports requests/s, latency
// percentiles, the proxy's own CPU time per request (utime+stime of all its processes from
// /proc, before and after, divided by requests served), peak RSS and errors, as medians over
// interleaved rounds with ratios to nginx and HAProxy; then a concurrency sweep, 5,000
// endpoints, a 1 MB request body, the cost of the access log and metrics scraping, and CPU
// and allocation profiles of ringside under load. It writes RESULTS.md, chart.png,
// runs.csv and runs.json into -out.
//
//	cd deploy/bench && go run ./proxybench -rounds 3 -duration 15s -out results/
//	cd deploy/bench && go run ./proxybench -quick -out /tmp/pb   # one round, 2 s each
//
// It installs the peers with apt-get when they are missing (as root; otherwise it says so
// and uses what is there) and builds ringside from this repository. All traffic stays on
// 127.0.0.1; every load is bounded by wrk's -d and a context deadline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	rounds        int
	duration      time.Duration
	warmup        time.Duration
	conns         int
	threads       int
	users         int
	out           string
	quick         bool
	install       bool
	backend       string
	backendWork   int
	ringsideBin   string
	repo          string
	portBase      int
	suites        string
	peers         string
	sweep         string
	sweepDuration time.Duration
	extraRounds   int
	manyEndpoints int
	bodySize      int
	bodyConns     int
	bodyUsers     int
	gomaxprocs1   bool
	engines       []string // ringside's engines, each its own contender: goroutines, event_loop
	quietLoad     float64
	quietWait     time.Duration
	maxTime       time.Duration
	keepWork      bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("proxybench", flag.ContinueOnError)
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds of the main comparison (medians are reported)")
	fs.DurationVar(&c.duration, "duration", 15*time.Second, "measured load per proxy per round")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement (fills the connection pools)")
	fs.IntVar(&c.conns, "conns", 64, "wrk connections of the main comparison")
	fs.IntVar(&c.threads, "threads", 1, "wrk threads (one leaves the most CPU to the proxy on 2 cores)")
	fs.IntVar(&c.users, "users", 10000, "distinct X-User-ID values")
	fs.StringVar(&c.out, "out", "results", "folder for RESULTS.md, chart.png, runs.csv, runs.json, profiles")
	fs.BoolVar(&c.quick, "quick", false, "short bounded mode: one round, 2 s per proxy, small extras, no profile")
	fs.BoolVar(&c.install, "install", true, "apt-get install the peers and wrk when missing (root only)")
	fs.StringVar(&c.backend, "backend", "auto", "backend server: nginx, go, or auto (nginx when installed)")
	fs.IntVar(&c.backendWork, "backend-workers", 1, "nginx backend worker processes")
	fs.StringVar(&c.ringsideBin, "ringside", "", "prebuilt ringside binary (default: go build the repository's cmd/ringside)")
	fs.StringVar(&c.repo, "repo", "", "ringside repository root (default: found upwards from the working directory)")
	fs.IntVar(&c.portBase, "port-base", 20000, "first loopback port to try; 5,000+ free ports below 32768 are needed")
	fs.StringVar(&c.suites, "suites", "backends,main,sweep,endpoints,body,observe,syscalls,profile", "suites to run, comma-separated")
	fs.StringVar(&c.peers, "peers", "nginx,haproxy,caddy", "peers to compare with (those not installed are skipped)")
	fs.StringVar(&c.sweep, "sweep", "1,16,64,256", "connection counts of the concurrency sweep")
	fs.DurationVar(&c.sweepDuration, "sweep-duration", 0, "measured load per sweep run (default: -duration)")
	fs.IntVar(&c.extraRounds, "extra-rounds", 1, "rounds of the sweep, endpoints and body suites (observe uses -rounds)")
	fs.IntVar(&c.manyEndpoints, "endpoints", 5000, "endpoints of the many-endpoints suite")
	fs.IntVar(&c.bodySize, "body-size", 1<<20, "request body of the body suite, bytes")
	fs.IntVar(&c.bodyConns, "body-conns", 16, "connections of the body suite")
	fs.IntVar(&c.bodyUsers, "body-users", 16, "distinct users of the body suite (each prebuilt request holds the body)")
	fs.BoolVar(&c.gomaxprocs1, "gomaxprocs1", true, "also run ringside with GOMAXPROCS=1 in the main comparison (goroutines engine)")
	engines := fs.String("engines", engineGoroutines+","+engineEventLoop, "ringside engines to measure, each as its own contender: goroutines (\"ringside\"), event_loop (\"ringside event_loop\")")
	fs.Float64Var(&c.quietLoad, "quiet-load", 1.5, "wait for the 1-minute load average to fall below this before starting")
	fs.DurationVar(&c.quietWait, "quiet-wait", 5*time.Minute, "longest wait for a quiet machine (then run anyway, and say so)")
	fs.DurationVar(&c.maxTime, "max-time", 90*time.Minute, "hard limit on the whole run")
	fs.BoolVar(&c.keepWork, "keep-work", false, "keep the temporary folder of configs and logs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, e := range strings.Split(*engines, ",") {
		switch e = strings.TrimSpace(e); {
		case e == "":
		case e != engineGoroutines && e != engineEventLoop:
			return c, fmt.Errorf("-engines: %q is not one of %s, %s", e, engineGoroutines, engineEventLoop)
		case !slices.Contains(c.engines, e):
			c.engines = append(c.engines, e)
		}
	}
	if len(c.engines) == 0 {
		return c, errors.New("-engines: name at least one of " + engineGoroutines + ", " + engineEventLoop)
	}
	if c.quick {
		c.rounds, c.duration, c.warmup, c.extraRounds = 1, 2*time.Second, 500*time.Millisecond, 1
		c.sweep = "1,64"
		c.sweepDuration = time.Second
		c.quietWait = 0
		if !flagSet(fs, "suites") {
			c.suites = "main,sweep,endpoints,body,observe"
		}
	}
	if c.sweepDuration == 0 {
		c.sweepDuration = c.duration
	}
	if c.rounds < 1 || c.duration < time.Second || c.conns < 1 || c.users < 1 || c.threads < 1 {
		return c, errors.New("-rounds, -conns, -users, -threads must be ≥ 1 and -duration ≥ 1s")
	}
	return c, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func main() {
	// The Go backend is this same binary in another mode.
	if len(os.Args) == 3 && os.Args[1] == "-serve-backend" {
		if err := serveBackend(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

// findRepo walks up from the working directory to the folder holding cmd/ringside.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 10; i++ {
		if _, err := os.Stat(filepath.Join(dir, "cmd", "ringside", "main.go")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("cannot find the ringside repository (cmd/ringside) above the working directory; pass -repo")
}

// buildRingside builds cmd/ringside of repo into dir.
func buildRingside(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "ringside")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ringside")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ringside: %w\n%s", err, out)
	}
	return bin, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}
