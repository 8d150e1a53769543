package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The backends answer every request, whatever the method or path, with a 3-byte body, after
// reading and discarding the request body. They are one process listening on every backend
// port: the proxies see distinct endpoints (distinct listening sockets), and the backends
// cost as little CPU as they can so that they are not what is measured.
const backendBody = "ok\n"

// backendKinds are the two backends the harness can run.
const (
	backendNginx = "nginx" // nginx, one worker, `return 200`
	backendGo    = "go"    // this binary's net/http server (serveBackend)
)

// backendSet is the running backend process and the ports it listens on.
type backendSet struct {
	kind  string
	proc  *proc
	ports []int
}

func (b *backendSet) addrs() []string {
	out := make([]string, len(b.ports))
	for i, p := range b.ports {
		out[i] = addr(p)
	}
	return out
}

// nginxBackendConf is a one-worker nginx answering on every port. worker_connections and
// the file limit leave room for one listening socket and a few connections per port.
func nginxBackendConf(dir string, ports []int, workers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `worker_processes %d;
worker_rlimit_nofile %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
user root root;
events { worker_connections %d; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_max_body_size 0;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  server {
`, workers, fileLimit(), dir, dir, fileLimit()-1000, dir, dir, dir, dir, dir)
	for _, p := range ports {
		fmt.Fprintf(&b, "    listen 127.0.0.1:%d;\n", p)
	}
	fmt.Fprintf(&b, "    location / { return 200 %q; }\n  }\n}\n", backendBody)
	return b.String()
}

// fileLimit is this process's hard limit on open files (the most a child such as nginx may
// raise its own to without privileges this container may lack), at least 4096.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Max < 4096 {
		return 4096
	}
	return int(min(rl.Max, 1<<20))
}

// startBackends starts kind on ports, in dir, and waits until every port answers.
func startBackends(ctx context.Context, kind, dir string, ports []int, workers int) (*backendSet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var p *proc
	var err error
	switch kind {
	case backendNginx:
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxBackendConf(dir, ports, workers)), 0o644); err != nil {
			return nil, err
		}
		p, err = startProc(dir, "backend-nginx", nil, "nginx", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf, "-g", "daemon off;")
	case backendGo:
		exe, xerr := os.Executable()
		if xerr != nil {
			return nil, xerr
		}
		portsFile := filepath.Join(dir, "ports")
		var sb strings.Builder
		for _, port := range ports {
			fmt.Fprintln(&sb, port)
		}
		if err := os.WriteFile(portsFile, []byte(sb.String()), 0o644); err != nil {
			return nil, err
		}
		p, err = startProc(dir, "backend-go", nil, exe, "-serve-backend", portsFile)
	default:
		return nil, fmt.Errorf("backend %q: want %s or %s", kind, backendNginx, backendGo)
	}
	if err != nil {
		return nil, err
	}
	b := &backendSet{kind: kind, proc: p, ports: ports}
	// Probe the first, last and a middle port: they all come up together.
	for _, port := range []int{ports[0], ports[len(ports)/2], ports[len(ports)-1]} {
		if err := waitHTTP(ctx, p, "http://"+addr(port)+"/", 20*time.Second); err != nil {
			p.stop(2 * time.Second)
			return nil, err
		}
	}
	return b, nil
}

// serveBackend is the Go backend: it listens on every port in portsFile (one per line) and
// serves backendBody until SIGTERM. It runs as a child process of the harness
// (-serve-backend), so its CPU time is its own.
func serveBackend(portsFile string) error {
	b, err := os.ReadFile(portsFile)
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(backendBody)))
		_, _ = io.WriteString(w, backendBody)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 300 * time.Second}
	errc := make(chan error, 1)
	n := 0
	for _, f := range strings.Fields(string(b)) {
		port, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("ports file: %w", err)
		}
		l, err := net.Listen("tcp", addr(port))
		if err != nil {
			return err
		}
		n++
		go func() {
			if err := srv.Serve(l); err != http.ErrServerClosed {
				select {
				case errc <- err:
				default:
				}
			}
		}()
	}
	if n == 0 {
		return fmt.Errorf("ports file %s: no ports", portsFile)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sigs:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
