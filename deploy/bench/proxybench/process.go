package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a server process the harness started (a proxy or a backend), in its own process
// group so that a master and its workers are stopped together.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // stdout+stderr file
	done chan struct{}
	err  error // set before done is closed
}

// startProc starts argv with env added to the harness's environment, output to dir/name.log.
func startProc(dir, name string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 1500 {
		s = "…" + s[len(s)-1500:]
	}
	return s
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs the group.
// Only the group this harness created is signalled.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Workers of a master that died first may linger in the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitHTTP polls url until it answers with status 200 (sending header X-User-ID so a hashing
// proxy has its key), the process exits, or timeout passes.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last error
	for attempt := 0; attempt < 1000; attempt++ {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) before it was ready:\n%s", p.name, p.err, p.tail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("X-User-ID", "probe")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			name := "server"
			tail := ""
			if p != nil {
				name, tail = p.name, p.tail()
			}
			return fmt.Errorf("%s not ready at %s after %s: %v\n%s", name, url, timeout, last, tail)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("waitHTTP: attempts exhausted")
}

// portAllocator hands out loopback ports that were free when checked, counting up from a
// base below the ephemeral range so that outgoing connections do not take them.
type portAllocator struct{ next int }

// take returns n consecutive free ports... or, failing that, n free ports in increasing order.
func (a *portAllocator) take(n int) ([]int, error) {
	var out []int
	for a.next < 32768 && len(out) < n {
		p := a.next
		a.next++
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d free ports below 32768 from the base, want %d", len(out), n)
	}
	return out, nil
}

func (a *portAllocator) one() (int, error) {
	p, err := a.take(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
