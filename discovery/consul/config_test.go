package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zapcore"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

const rootToken = "11111111-2222-3333-4444-555555555555"

// consulEnv lists the variables api.DefaultConfig() reads; tests clear them all first, so the
// shell they run in does not matter.
var consulEnv = []string{
	api.HTTPAddrEnvName, api.HTTPTokenEnvName, api.HTTPTokenFileEnvName, api.HTTPAuthEnvName,
	api.HTTPSSLEnvName, api.HTTPSSLVerifyEnvName, api.HTTPCAFile, api.HTTPCAPath,
	api.HTTPClientCert, api.HTTPClientKey, api.HTTPTLSServerName, api.HTTPNamespaceEnvName,
	api.HTTPPartitionEnvName,
}

func clearConsulEnv(t *testing.T) {
	for _, k := range consulEnv {
		t.Setenv(k, "")
	}
}

// startACLAgent starts an agent that denies everything without a token, and registers
// service "acl-svc" on it with the management token.
func startACLAgent(t *testing.T) *consultest.Agent {
	t.Helper()
	a := consultest.StartWith(t, consultest.Options{Args: []string{"-hcl", fmt.Sprintf(
		`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q, agent = %q } }`,
		rootToken, rootToken)}})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	root, err := api.NewClient(&api.Config{Address: a.Addr(), Scheme: "http", Token: rootToken, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	register(t, root, ttlService("acl-svc", "acl-1", 8443))
	return a
}

// TestConfigEnvironment checks that the standard CONSUL_* environment is honoured as
// api.DefaultConfig() reads it, and that Config fields override it, against an agent with
// ACLs so that the token demonstrably matters.
func TestConfigEnvironment(t *testing.T) {
	clearConsulEnv(t)
	a := startACLAgent(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(rootToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	agent, bad := a.Addr(), "not-the-token"

	tests := []struct {
		name string
		env  map[string]string
		cfg  Config
		want string // "ok": snapshot; "fail": a failed query; "config": NewSource fails
	}{
		{"env address and token", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenEnvName: rootToken}, Config{}, "ok"},
		{"env wrong token", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenEnvName: bad}, Config{}, "fail"},
		{"field token overrides env", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenEnvName: bad}, Config{Token: rootToken}, "ok"},
		{"field address overrides env", map[string]string{api.HTTPAddrEnvName: closedAddr(t), api.HTTPTokenEnvName: rootToken}, Config{Address: agent}, "ok"},
		{"env address as URL", map[string]string{api.HTTPAddrEnvName: "http://" + agent, api.HTTPTokenEnvName: rootToken}, Config{}, "ok"},
		{"env token file", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenFileEnvName: tokenFile}, Config{}, "ok"},
		{"field token file overrides env token", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenEnvName: bad}, Config{TokenFile: tokenFile}, "ok"},
		{"env ssl", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenEnvName: rootToken, api.HTTPSSLEnvName: "true"}, Config{}, "fail"},
		{"field scheme overrides env ssl", map[string]string{api.HTTPAddrEnvName: agent, api.HTTPTokenEnvName: rootToken, api.HTTPSSLEnvName: "true"}, Config{Scheme: "http"}, "ok"},
		{"env missing token file", map[string]string{api.HTTPTokenFileEnvName: missing}, Config{}, "config"},
		{"env missing CA file", map[string]string{api.HTTPCAFile: missing}, Config{Address: agent}, "config"},
		{"env missing client cert", map[string]string{api.HTTPClientCert: missing, api.HTTPClientKey: missing}, Config{Address: agent}, "config"},
		{"field missing CA file", nil, Config{Address: agent, TLS: TLSConfig{CAFile: missing}}, "config"},
		{"negative wait", nil, Config{Address: agent, WaitTime: -time.Second}, "config"},
		{"wait above Consul's cap", nil, Config{Address: agent, WaitTime: time.Hour}, "config"},
		{"unknown health policy", nil, Config{Address: agent, Health: 9}, "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConsulEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			tt.cfg.Backoff = discovery.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
			obs := &countingObserver{}
			src, err := NewSource(tt.cfg, nil, obs)
			if tt.want == "config" {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("NewSource = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSource: %v", err)
			}
			rec := newRecorder()
			stop := startWatch(t, src, []string{"acl-svc"}, rec.update)
			defer stop()
			switch tt.want {
			case "ok":
				rec.waitFor(t, "acl-svc", waitSnapshot, "acl-1", func(s *discovery.Snapshot) bool { return len(s.Endpoints) == 1 })
			case "fail":
				consultest.WaitFor(t, waitSnapshot, "a failed query", func() bool { return obs.failed.Load() > 0 })
				if n := rec.count("acl-svc"); n != 0 {
					t.Errorf("%d snapshots, want none", n)
				}
			}
		})
	}
}

// TestTokenNeverLogged makes a Source and a Registrar fail every way they can with a secret
// token (refused by the agent, agent unreachable) and checks that no log line, at any level,
// nor any error handed to the Observer, contains the token.
func TestTokenNeverLogged(t *testing.T) {
	clearConsulEnv(t)
	a := startACLAgent(t)
	const secret = "deadbeef-0bad-cafe-f00d-secret000001"
	logger, logs := observedLogger()
	obs := &countingObserver{}
	var errs []error

	for _, addr := range []string{a.Addr(), closedAddr(t)} {
		cfg := Config{Address: addr, Token: secret, ErrorLogInterval: time.Millisecond,
			Backoff: discovery.Backoff{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond}}
		src, err := NewSource(cfg, logger, obs)
		if err != nil {
			t.Fatal(err)
		}
		failedBefore := obs.failed.Load()
		stop := startWatch(t, src, []string{"acl-svc"}, newRecorder().update)
		consultest.WaitFor(t, waitSnapshot, "failed queries", func() bool { return obs.failed.Load() >= failedBefore+3 })
		stop()
		errs = append(errs, obs.err())

		reg, err := NewRegistrar(cfg, discovery.Registration{ID: "x-1", Service: "x", Address: "127.0.0.1", Port: 1}, logger)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_ = reg.Run(ctx)
		cancel()
		errs = append(errs, reg.Deregister(context.Background()))
	}

	warnings := 0
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel {
			warnings++
		}
		enc := zapcore.NewMapObjectEncoder()
		for _, f := range e.Context {
			f.AddTo(enc)
		}
		if line := fmt.Sprint(e.Message, enc.Fields); strings.Contains(line, secret) {
			t.Errorf("token in a log line: %s", line)
		}
	}
	if warnings < 4 {
		t.Errorf("%d warnings logged, want at least 4 (2 sources, 2 registrars): the test did not exercise failures", warnings)
	}
	for _, err := range errs {
		if err == nil {
			t.Errorf("an operation with a refused token succeeded")
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("token in an error: %v", err)
		}
	}
}
