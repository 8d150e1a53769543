package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/etcd/etcdtest"
)

const secret = "s3cret-pa55word"

func TestConfigStringHidesPassword(t *testing.T) {
	cfg := etcd.Config{Endpoints: []string{"https://etcd:2379"}, Username: "ringside", Password: secret,
		TLS: etcd.TLSConfig{CAFile: "/etc/ca.pem"}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		if strings.Contains(out, secret) {
			t.Errorf("%s prints the password: %s", format, out)
		}
		if !strings.Contains(out, "ringside") || !strings.Contains(out, "https://etcd:2379") {
			t.Errorf("%s leaves out the user or endpoint: %s", format, out)
		}
	}
}

func TestNewSourceRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := []string{"127.0.0.1:2379"}
	tests := []struct {
		name string
		cfg  etcd.Config
	}{
		{"no endpoints", etcd.Config{}},
		{"empty endpoint", etcd.Config{Endpoints: []string{" "}}},
		{"negative timeout", etcd.Config{Endpoints: ep, RequestTimeout: -time.Second}},
		{"password without user", etcd.Config{Endpoints: ep, Password: secret}},
		{"missing ca file", etcd.Config{Endpoints: ep, TLS: etcd.TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}}},
		{"ca file without pem", etcd.Config{Endpoints: ep, TLS: etcd.TLSConfig{CAFile: notPEM}}},
		{"cert without key", etcd.Config{Endpoints: ep, TLS: etcd.TLSConfig{CertFile: notPEM}}},
		{"bad key pair", etcd.Config{Endpoints: ep, TLS: etcd.TLSConfig{CertFile: notPEM, KeyFile: notPEM}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := etcd.NewSource(tt.cfg, nil, nil); !errors.Is(err, etcd.ErrBadConfig) {
				t.Fatalf("NewSource: %v, want ErrBadConfig", err)
			}
			reg := discovery.Registration{ID: "a", Service: "cart", Address: "10.0.0.1", Port: 80}
			if _, err := etcd.NewRegistrar(tt.cfg, reg, nil); !errors.Is(err, etcd.ErrBadConfig) {
				t.Fatalf("NewRegistrar: %v, want ErrBadConfig", err)
			}
		})
	}
}

// Mutual TLS with a CA file, a client certificate and a server name that differs from the
// address dialed; and without the client certificate, etcd refuses the source, which reports
// the failure and keeps trying.
func TestSourceOverMutualTLS(t *testing.T) {
	srv, files := etcdtest.StartTLS(t)
	put(t, srv.Client(t), key("cart", "a"), `{"address":"10.0.0.1","port":8080}`)
	good := etcd.TLSConfig{
		CAFile:     files.CAFile,
		CertFile:   files.ClientCertFile,
		KeyFile:    files.ClientKeyFile,
		ServerName: etcdtest.ServerName,
	}
	src, err := etcd.NewSource(etcd.Config{Endpoints: srv.Endpoints(), TLS: good}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	watch(t, src, []string{"cart"}, rec.update)
	rec.waitIDs(t, "cart", "a")

	noCert := good
	noCert.CertFile, noCert.KeyFile = "", ""
	obs := newObserver()
	src, err = etcd.NewSource(etcd.Config{Endpoints: srv.Endpoints(), TLS: noCert, RequestTimeout: time.Second}, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	rec = newRecorder()
	watch(t, src, []string{"cart"}, rec.update)
	waitUntil(t, "Observer.Failed without a client certificate", func() bool { return len(obs.failures("cart")) > 0 })
	if n := rec.count("cart"); n != 0 {
		t.Fatalf("%d snapshots without a client certificate, want 0", n)
	}
}

// With authentication on, the right password works and a wrong one is retried and reported;
// the password appears in no log line either way.
func TestSourceWithAuthNeverLogsPassword(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client(t)
	put(t, admin, key("cart", "a"), `{"address":"10.0.0.1","port":8080}`)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := admin.UserAdd(ctx, "root", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RoleAdd(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}

	core, logs := zapobserver.New(zapcore.DebugLevel)
	logger := zap.New(core)
	for _, tt := range []struct {
		password string
		wantOK   bool
	}{
		{secret, true},
		{secret + "-wrong", false},
	} {
		obs := newObserver()
		src, err := etcd.NewSource(etcd.Config{
			Endpoints: srv.Endpoints(), Username: "root", Password: tt.password,
			Backoff: discovery.Backoff{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		}, logger, obs)
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		wctx, wcancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Watch(wctx, []string{"cart"}, rec.update) }()
		if tt.wantOK {
			rec.waitIDs(t, "cart", "a")
		} else {
			waitUntil(t, "Observer.Failed with a wrong password", func() bool { return len(obs.failures("cart")) > 0 })
		}
		wcancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	}

	if logs.Len() == 0 {
		t.Fatal("no log lines at all; the check below would prove nothing")
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, "s3cret") {
			t.Errorf("log line holds the password: %s", line)
		}
	}
}
