package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// timeouts is what the suite configures on every upstream, and what a client's deadline is
// derived from.
type timeouts struct {
	dial           time.Duration
	responseHeader time.Duration // also retries.per_try_timeout
	attempts       int
	// bodyIdle is the streamed-body idle limit ringside is held to. It is written to the
	// config (timeouts.body_idle) only when writeBodyIdle is set: a ringside that does not
	// know the field refuses the whole file. Likewise timeouts.request (when > 0).
	bodyIdle      time.Duration
	request       time.Duration
	writeBodyIdle bool
	writeRequest  bool
	margin        time.Duration // slack on top of the configured bound before a wait is a hang
}

// bound is the longest an exchange may take by the configuration, plus the margin: every
// attempt may wait for its head, then a streamed body may stall for body_idle.
func (t timeouts) bound() time.Duration {
	d := t.dial + time.Duration(t.attempts)*t.responseHeader + t.bodyIdle
	if t.writeRequest && t.request > 0 && t.request < d {
		d = t.request
	}
	return d + t.margin
}

// sidecarConfig is ringside's configuration: the file source, one upstream per fault on its
// own listener, the suite's timeouts, the engine under test, warnings only in the log.
func sidecarConfig(servicesPath, admin string, listen map[fault]string, faults []fault, t timeouts, engine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin:\n  listen: %s\ndiscovery:\n  kind: file\n  file: {path: %s, poll_interval: 1s}\nupstreams:\n", admin, servicesPath)
	for _, f := range faults {
		fmt.Fprintf(&b, "  - name: %s\n    listen: %s\n    hash_key: [header:X-User-ID]\n", f, listen[f])
		fmt.Fprintf(&b, "    retries: {attempts: %d, per_try_timeout: %s}\n", t.attempts, t.responseHeader)
		fmt.Fprintf(&b, "    timeouts: {dial: %s, response_header: %s", t.dial, t.responseHeader)
		if t.writeBodyIdle {
			fmt.Fprintf(&b, ", body_idle: %s", t.bodyIdle)
		}
		if t.writeRequest && t.request > 0 {
			fmt.Fprintf(&b, ", request: %s", t.request)
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, "lifecycle: {drain_delay: 1ms, grace_period: 2s}\nlog: {level: warn, format: console}\nengine: {kind: %s}\n", engine)
	return b.String()
}

// servicesFile lists each fault's backends as the endpoints of a service named after it.
func servicesFile(faults []fault, backends map[fault][]*backend) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for _, f := range faults {
		fmt.Fprintf(&b, "  %s:\n", f)
		for _, be := range backends[f] {
			fmt.Fprintf(&b, "    - address: %s\n", be.addr())
		}
	}
	return b.String()
}

// buildRingside builds cmd/ringside of the module this one replaces it with (the
// repository's root) into dir.
func buildRingside(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/ringside-proxy/ringside").Output()
	if err != nil {
		return "", fmt.Errorf("locate the ringside module (run from deploy/bench): %w", err)
	}
	bin := filepath.Join(dir, "ringside")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ringside")
	cmd.Dir = strings.TrimSpace(string(out))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ringside: %w\n%s", err, b)
	}
	return bin, nil
}

// knownTimeouts asks bin (ringside validate) whether its config knows timeouts.body_idle
// and timeouts.request: today's refuses both as unknown fields.
func knownTimeouts(ctx context.Context, bin, dir string) (bodyIdle, request bool, err error) {
	services := filepath.Join(dir, "probe-services.yaml")
	if err := os.WriteFile(services, []byte("services:\n  probe:\n    - address: 127.0.0.1:1\n"), 0o600); err != nil {
		return false, false, err
	}
	knows := func(field string) (bool, error) {
		cfg := fmt.Sprintf("discovery:\n  kind: file\n  file: {path: %s}\nupstreams:\n  - name: probe\n    listen: 127.0.0.1:0\n    timeouts: {%s: 1s}\n", services, field)
		path := filepath.Join(dir, "probe-"+field+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return false, err
		}
		out, err := exec.CommandContext(ctx, bin, "validate", "-config", path).CombinedOutput()
		if err == nil {
			return true, nil
		}
		if strings.Contains(string(out), "timeouts."+field+": unknown field") {
			return false, nil
		}
		return false, fmt.Errorf("ringside validate of a config with timeouts.%s: %w\n%s", field, err, out)
	}
	if bodyIdle, err = knows("body_idle"); err != nil {
		return false, false, err
	}
	request, err = knows("request")
	return bodyIdle, request, err
}

// freeAddrs returns n loopback addresses that were free a moment ago (all held at once, so
// they differ).
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// sidecar is a running ringside process, in its own process group.
type sidecar struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
}

// startSidecar writes cfg to dir, starts bin on it and waits until /readyz on admin says
// ready (every upstream has its snapshot).
func startSidecar(ctx context.Context, bin, dir, cfg, admin string) (*sidecar, error) {
	cfgPath := filepath.Join(dir, "ringside.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "ringside.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &sidecar{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { // joined by stop, which waits for done
		_ = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx, "http://"+admin+"/readyz", 30*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *sidecar) waitReady(ctx context.Context, url string, limit time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		select {
		case <-s.done:
			return fmt.Errorf("ringside exited before it was ready:\n%s", s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("ringside not ready at %s after %v:\n%s", url, limit, s.logTail())
}

// stop sends SIGTERM to the process group it started, and SIGKILL if it has not exited
// within 5 s; it returns once the process has exited.
func (s *sidecar) stop() {
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *sidecar) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// procSample is ringside's resident memory and open file descriptors at one instant.
type procSample struct {
	RSSKiB int64 `json:"rss_kib"`
	FDs    int   `json:"fds"`
}

// sample reads VmRSS from /proc/PID/status and counts /proc/PID/fd.
func (s *sidecar) sample() (procSample, error) {
	dir := filepath.Join("/proc", strconv.Itoa(s.cmd.Process.Pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return procSample{}, err
	}
	var ps procSample
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				ps.RSSKiB, err = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	if err != nil || ps.RSSKiB == 0 {
		return procSample{}, fmt.Errorf("%s/status: no VmRSS (%v)", dir, err)
	}
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return procSample{}, err
	}
	ps.FDs = len(fds)
	return ps, nil
}
