// Command ringside-demo shows what ringside does, on one machine, with nothing to install:
// three demo backends, the embedded default registry (the file source), and a ringside
// sidecar in front of them with a consistent-hash ring keyed on X-User-ID.
//
// It prints where a dozen users stick, stops one backend and shows that only that backend's
// users move (and no request fails: they are retried on the next node of the ring), then
// starts it again and shows them come back. It ends by itself in well under a minute; with
// -hold it keeps the sidecar running until Ctrl-C, so you can curl it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/cmd/internal/sidecar"
)

func main() {
	hold := flag.Bool("hold", false, "keep the sidecar running after the demo, until Ctrl-C")
	verbose := flag.Bool("v", false, "show the sidecar's own log lines")
	flag.Parse()
	if err := run(os.Stdout, *hold, *verbose); err != nil {
		fmt.Fprintf(os.Stderr, "ringside-demo: %v\n", err)
		os.Exit(1)
	}
}

var users = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"}

func run(out io.Writer, hold, verbose bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	backends := make([]*backend, 3)
	for i := range backends {
		b, err := startBackend(fmt.Sprintf("backend-%d", i+1), "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer b.stop()
		backends[i] = b
	}

	dir, err := os.MkdirTemp("", "ringside-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var services strings.Builder
	services.WriteString("services:\n  demo:\n")
	for _, b := range backends {
		fmt.Fprintf(&services, "    - id: %s\n      address: %s\n", b.name, b.addr)
	}
	servicesPath := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(servicesPath, []byte(services.String()), 0o600); err != nil {
		return err
	}
	cfgText := fmt.Sprintf(`admin:
  listen: 127.0.0.1:0
discovery:
  kind: file
  file: {path: %s, poll_interval: 200ms}
upstreams:
  - name: demo
    listen: 127.0.0.1:0
    hash_key: [header:X-User-ID]
    health_check: {path: /healthz, interval: 300ms, timeout: 200ms, healthy_threshold: 2, unhealthy_threshold: 1}
    outlier: {base_ejection_time: 1s, max_ejection_time: 2s}
    panic_threshold: 30
    timeouts: {dial: 200ms}
lifecycle: {drain_delay: 100ms, grace_period: 5s}
log: {level: warn, format: console}
`, servicesPath)
	cfg, err := config.Parse("demo.yaml", []byte(cfgText), os.LookupEnv)
	if err != nil {
		return err
	}
	if err := sidecar.Check(cfg); err != nil {
		return err
	}
	logger := zap.NewNop()
	if verbose {
		if logger, err = sidecar.NewLogger(config.Log{Level: "info", Format: "console"}, os.Stderr); err != nil {
			return err
		}
	}
	sc, err := sidecar.New(cfg, sidecar.Options{Logger: logger, Version: "demo"})
	if err != nil {
		return err
	}
	runCtx, stopSidecar := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- sc.Run(runCtx) }()
	defer func() {
		stopSidecar()
		<-runErr
	}()

	proxyURL := "http://" + sc.UpstreamAddr("demo") + "/hello"
	fmt.Fprintf(out, "ringside demo: 3 backends, a sidecar on %s (admin http://%s), hash on X-User-ID\n\n",
		sc.UpstreamAddr("demo"), sc.AdminAddr())
	if err := waitReady(ctx, "http://"+sc.AdminAddr()+"/readyz"); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}

	before, failed, err := route(ctx, client, proxyURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "1. every user sticks to one backend (%d requests each):\n", requestsPerUser)
	printTable(out, before, nil, failed)

	victim := before[users[0]]
	vb := find(backends, victim)
	fmt.Fprintf(out, "\n2. %s stops. Its users move to the next backend on the ring; nobody else moves:\n", victim)
	vb.stop()
	after, failed, err := route(ctx, client, proxyURL)
	if err != nil {
		return err
	}
	printTable(out, after, before, failed)

	fmt.Fprintf(out, "\n3. %s comes back. Once its health checks pass, its users return:\n", victim)
	if err := vb.restart(); err != nil {
		return err
	}
	back, failed, err := waitReturn(ctx, client, proxyURL, before)
	if err != nil {
		return err
	}
	printTable(out, back, after, failed)
	home := 0
	for _, u := range users {
		if back[u] == before[u] {
			home++
		}
	}
	fmt.Fprintf(out, "   %d of %d users are where they started\n", home, len(users))

	fmt.Fprintf(out, "\nmetrics: curl http://%s/metrics   readiness: curl http://%s/readyz\n", sc.AdminAddr(), sc.AdminAddr())
	if hold {
		fmt.Fprintf(out, "the sidecar keeps running: curl -H 'X-User-ID: alice' %s   (Ctrl-C to stop)\n", proxyURL)
		<-ctx.Done()
	}
	return nil
}

const requestsPerUser = 5

// route sends requestsPerUser requests per user and returns where each user landed. A user
// whose requests landed on different backends is shown as such: that would be a bug.
func route(ctx context.Context, client *http.Client, url string) (map[string]string, int, error) {
	got := make(map[string]string, len(users))
	failed := 0
	for _, u := range users {
		for range requestsPerUser {
			name, err := get(ctx, client, url, u)
			if err != nil {
				if ctx.Err() != nil {
					return nil, 0, ctx.Err()
				}
				failed++
				continue
			}
			if prev, ok := got[u]; ok && prev != name {
				name = prev + " AND " + name
			}
			got[u] = name
		}
	}
	return got, failed, nil
}

// waitReturn routes until the users who moved are home again, for up to 10 seconds.
func waitReturn(ctx context.Context, client *http.Client, url string, home map[string]string) (map[string]string, int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, failed, err := route(ctx, client, url)
		if err != nil {
			return nil, 0, err
		}
		same := true
		for _, u := range users {
			same = same && got[u] == home[u]
		}
		if same || time.Now().After(deadline) {
			return got, failed, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func get(ctx context.Context, client *http.Client, url, user string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-User-ID", user)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return strings.TrimSpace(string(body)), nil
}

func printTable(out io.Writer, now, before map[string]string, failed int) {
	moved := 0
	for _, u := range users {
		mark := ""
		if before != nil && now[u] != before[u] {
			mark = "  <- moved from " + before[u]
			moved++
		}
		fmt.Fprintf(out, "   %-8s -> %s%s\n", u, now[u], mark)
	}
	if before != nil {
		fmt.Fprintf(out, "   %d of %d users moved; %d of %d requests failed\n", moved, len(users), failed, len(users)*requestsPerUser)
	} else {
		fmt.Fprintf(out, "   %d of %d requests failed\n", failed, len(users)*requestsPerUser)
	}
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("the sidecar did not turn ready within 10s")
}

func find(bs []*backend, name string) *backend {
	for _, b := range bs {
		if b.name == name {
			return b
		}
	}
	return bs[0]
}

// backend is a demo app instance: it answers its name, and /healthz.
type backend struct {
	name, addr string
	srv        *http.Server
}

func startBackend(name, addr string) (*backend, error) {
	b := &backend{name: name}
	return b, b.listen(addr)
}

func (b *backend) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	b.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, b.name+"\n") })
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return nil
}

func (b *backend) stop() {
	if b.srv != nil {
		_ = b.srv.Close()
		b.srv = nil
	}
}

// restart listens again on the same address, as a restarted instance would.
func (b *backend) restart() error {
	var err error
	for range 50 { // the port may linger briefly after Close
		if err = b.listen(b.addr); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
