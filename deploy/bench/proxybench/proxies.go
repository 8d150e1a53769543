package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Proxy kinds. Each is configured for the same job: listen on one loopback port, keep
// connections alive on both sides, pick the backend by a consistent hash of X-User-ID, no
// access log; one worker process or thread where the proxy has that knob.
const (
	kindRingside = "ringside"
	kindNginx    = "nginx"
	kindHAProxy  = "haproxy"
	kindCaddy    = "caddy"
	kindDirect   = "direct" // no proxy: wrk at the first backend, the ceiling
)

// ringside's engines (its config's engine.kind): how its listeners serve connections.
const (
	engineGoroutines = "goroutines" // the default: a goroutine per connection
	engineEventLoop  = "event_loop" // epoll event loops, one OS thread each
)

// ringsideName is the name of ringside with engine in tables and the chart: plain
// "ringside" for the default engine, "ringside event_loop" for the event loops.
func ringsideName(engine string) string {
	if engine == "" || engine == engineGoroutines {
		return kindRingside
	}
	return kindRingside + " " + engine
}

// proxySpec is one contender of a run.
type proxySpec struct {
	Name       string // shown in tables: "ringside", "ringside GOMAXPROCS=1", "ringside event_loop", …
	Kind       string
	GOMAXPROCS int  // ringside only; 0 leaves it unset
	Observe    bool // ringside only: access log 1 in 100, /metrics scraped every second
	Pprof      bool // ringside only: admin.pprof on
	// Engine is ringside's engine.kind; "" writes no engine section (the default,
	// goroutines, and a config an older binary still accepts).
	Engine string
	Loops  int // engine event_loop: loops per listener; 0 = 1
}

// tag names the spec's run folders: its kind, and the engine when one is set.
func (s proxySpec) tag() string {
	if s.Engine != "" {
		return s.Kind + "-" + s.Engine
	}
	return s.Kind
}

// binaryOf is the program a kind needs installed.
func binaryOf(kind string) string {
	switch kind {
	case kindNginx, kindHAProxy, kindCaddy:
		return kind
	}
	return ""
}

// runningProxy is a started proxy: where to send the load and how to stop it.
type runningProxy struct {
	spec  proxySpec
	proc  *proc // nil for direct
	url   string
	admin string // ringside's admin base URL
}

// startProxy writes the configuration of spec for backends into dir, starts the proxy and
// waits until a request through it succeeds.
func startProxy(ctx context.Context, h *harness, spec proxySpec, backends []string, dir string) (*runningProxy, error) {
	if spec.Kind == kindDirect {
		return &runningProxy{spec: spec, url: "http://" + backends[0] + "/"}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := h.ports.one()
	if err != nil {
		return nil, err
	}
	listen := addr(port)
	rp := &runningProxy{spec: spec, url: "http://" + listen + "/"}
	var argv, env []string
	switch spec.Kind {
	case kindRingside:
		adminPort, err := h.ports.one()
		if err != nil {
			return nil, err
		}
		rp.admin = "http://" + addr(adminPort)
		conf := ringsideConf(dir, listen, addr(adminPort), spec)
		if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(ringsideServices(backends)), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "ringside.yaml"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
		argv = []string{h.ringsideBin, "-config", filepath.Join(dir, "ringside.yaml")}
		if spec.GOMAXPROCS > 0 {
			env = append(env, fmt.Sprintf("GOMAXPROCS=%d", spec.GOMAXPROCS))
		}
	case kindNginx:
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(nginxProxyConf(dir, listen, backends)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{"nginx", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;"}
	case kindHAProxy:
		if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(haproxyConf(listen, backends)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{"haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg")}
	case kindCaddy:
		if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyConf(port, backends)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{"caddy", "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile"}
		// Caddy keeps state under $HOME / XDG dirs; keep it in the run's folder.
		env = append(env, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	default:
		return nil, fmt.Errorf("proxy kind %q unknown", spec.Kind)
	}
	p, err := startProc(dir, spec.Kind, env, argv...)
	if err != nil {
		return nil, err
	}
	rp.proc = p
	if err := waitHTTP(ctx, p, rp.url, 30*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return rp, nil
}

func (rp *runningProxy) stop() {
	if rp.proc != nil {
		rp.proc.stop(10 * time.Second)
	}
}

// ringsideServices is the file-source services file: one service, "bench", with every
// backend address as an endpoint.
func ringsideServices(backends []string) string {
	var b strings.Builder
	b.WriteString("services:\n  bench:\n")
	for _, a := range backends {
		fmt.Fprintf(&b, "    - address: %s\n", a)
	}
	return b.String()
}

// ringsideConf is the sidecar's configuration: the file source, one upstream hashing on
// X-User-ID with the default ring_hash balancer, defaults elsewhere (passive outlier
// detection and retries stay on, as a user gets them), no active health checks (the peers
// have none configured either), a short drain so runs end quickly; and the engine section
// when spec asks for an engine.
func ringsideConf(dir, listen, admin string, spec proxySpec) string {
	services := filepath.Join(dir, "services.yaml")
	accessLog := "false"
	if spec.Observe {
		accessLog = "true\n  access_log_sample: 100"
	}
	conf := fmt.Sprintf(`admin:
  listen: %s
  pprof: %t
discovery:
  kind: file
  file:
    path: %s
    poll_interval: 1s
upstreams:
  - name: bench
    listen: %s
    hash_key: [header:X-User-ID]
    balancer: ring_hash
    timeouts:
      idle: 300s
lifecycle:
  drain_delay: 1ms
  grace_period: 5s
log:
  level: info   # the default; access log lines are info
  access_log: %s
`, admin, spec.Pprof, services, listen, accessLog)
	if spec.Engine != "" {
		conf += fmt.Sprintf("engine:\n  kind: %s\n", spec.Engine)
		if spec.Engine == engineEventLoop {
			// One loop, as nginx has one worker and HAProxy one thread here.
			conf += fmt.Sprintf("  loops: %d\n", max(1, spec.Loops))
		}
	}
	return conf
}

// nginxProxyConf: one worker; upstream keep-alive with HTTP/1.1 and the Connection header
// cleared (nginx's documented recipe); request bodies streamed like ringside does
// (proxy_request_buffering off) rather than spooled to disk; no access log. The idle
// connection cache is shared by all servers of the upstream, so it is sized to the servers
// (2 per server, at least 256), as an operator with that many would; a cache smaller than
// the server count would make nginx reconnect on most requests.
func nginxProxyConf(dir, listen string, backends []string) string {
	keepalive := max(256, 2*len(backends))
	var servers strings.Builder
	for _, a := range backends {
		fmt.Fprintf(&servers, "    server %s;\n", a)
	}
	return fmt.Sprintf(`worker_processes 1;
worker_rlimit_nofile %[5]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
user root root;
events { worker_connections %[6]d; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream bench {
    hash $http_x_user_id consistent;
%[2]s    keepalive %[4]d;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen %[3]s;
    location / { proxy_pass http://bench; }
  }
}
`, dir, servers.String(), listen, keepalive, fileLimit(), fileLimit()-1000)
}

// haproxyConf: one thread, maxconn 4000 (HAProxy refuses more than the file limit allows
// here), keep-alive both sides (the default http-reuse safe), no logging.
func haproxyConf(listen string, backends []string) string {
	var servers strings.Builder
	for i, a := range backends {
		fmt.Fprintf(&servers, "  server s%d %s\n", i+1, a)
	}
	return fmt.Sprintf(`global
  nbthread 1
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 300s
frontend fe
  bind %s
  default_backend bench
backend bench
  balance hdr(X-User-ID)
  hash-type consistent
%s`, listen, servers.String())
}

// caddyConf: no admin API, no automatic HTTPS, no access log (Caddy logs requests only
// with a log directive), GOMAXPROCS left to Go.
func caddyConf(port int, backends []string) string {
	var to strings.Builder
	for _, a := range backends {
		fmt.Fprintf(&to, "\t\tto %s\n", a)
	}
	return fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\n\nhttp://:%d {\n\tbind 127.0.0.1\n\treverse_proxy {\n%s\t\tlb_policy header X-User-ID\n\t}\n}\n",
		port, to.String())
}
