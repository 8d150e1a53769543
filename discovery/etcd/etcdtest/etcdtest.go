// Package etcdtest runs a real, single-member etcd server inside the test process, for tests
// of the etcd source and registrar. It is go.etcd.io/etcd/server/v3/embed — the same server
// code as the etcd binary — on loopback ports of its own, with its data in a directory of its
// own, so tests can run in parallel and never touch an etcd someone runs by hand.
//
// Clients reach the server through a TCP relay on the advertised client address, so that Stop
// can take the server away from them at once — every connection reset, like a crash — instead
// of waiting seconds for etcd's graceful shutdown of their streams.
//
// A Server can be stopped and started again on the same ports, with the same data (Restart) or
// with an empty data directory (RestartEmpty, as after a restore from an old backup or a wiped
// member), which is how tests put a running watch through a registry outage.
//
// A Server's methods are safe for concurrent use, but Stop and the Restart methods are
// meant to be called from the test goroutine.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// startTimeout bounds how long a server may take to elect itself leader.
const startTimeout = 30 * time.Second

// Server is one embedded etcd member. The zero value is not usable: call Start or New.
type Server struct {
	root       string  // holds one data directory per incarnation ("data-0", "data-1", …)
	clientURL  url.URL // what clients dial: the relay
	etcdURL    url.URL // where etcd itself listens for clients
	peerURL    url.URL
	relay      *proxy
	generation int
	tls        *serverTLS // nil: plain http
	noFsync    bool

	mu sync.Mutex
	e  *embed.Etcd // nil while stopped
}

// Option changes how a server runs.
type Option func(*Server)

// WithoutFsync makes the server skip fsync (etcd's --unsafe-no-fsync). A write then costs what
// etcd's raft and storage code cost, not what the shared test machine's disk costs at that
// moment; for measurements of what happens after a write, such as watch propagation.
func WithoutFsync() Option { return func(s *Server) { s.noFsync = true } }

// Start starts a server for t, with its data under t.TempDir(), and stops it when t ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New starts a server with its data under dir (which must exist). The caller must call Stop.
// It is for callers without a testing.TB, such as Example functions; tests use Start.
func New(dir string, opts ...Option) (*Server, error) {
	return newServer(dir, "http", nil, opts...)
}

func newServer(dir, scheme string, tls *serverTLS, opts ...Option) (*Server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	host := func(i int) string { return net.JoinHostPort("127.0.0.1", ports[i]) }
	s := &Server{
		root:      dir,
		clientURL: url.URL{Scheme: scheme, Host: host(0)},
		etcdURL:   url.URL{Scheme: scheme, Host: host(1)},
		peerURL:   url.URL{Scheme: "http", Host: host(2)},
		relay:     &proxy{addr: host(0), target: host(1)},
		tls:       tls,
	}
	for _, opt := range opts {
		opt(s)
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Endpoints returns the client URLs to give clientv3 (or ringside's etcd.Config). They stay the
// same across restarts.
func (s *Server) Endpoints() []string {
	return []string{s.clientURL.String()}
}

// Stop resets every client connection, stops the server and waits until it has released its
// ports and goroutines. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	e := s.e
	s.e = nil
	s.mu.Unlock()
	if e != nil {
		s.relay.cut()
		e.Close()
	}
}

// Restart stops the server and starts it again on the same ports with the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("etcdtest: restart: %v", err)
	}
}

// RestartEmpty stops the server and starts a new one on the same ports with an empty data
// directory: a new cluster whose revisions start again from 1, as after a restore from an old
// backup. Clients that only resume their watches would never hear about what was lost.
func (s *Server) RestartEmpty(t testing.TB) {
	t.Helper()
	s.Stop()
	s.generation++
	if err := s.start(); err != nil {
		t.Fatalf("etcdtest: restart empty: %v", err)
	}
}

// Client returns a client of the server (with the client certificate, for a TLS server),
// closed when t ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		// Reconnect quickly after Restart: gRPC's default backoff grows to two minutes.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: 5 * time.Second,
		})},
	}
	if s.tls != nil {
		info := transport.TLSInfo{
			CertFile:      s.tls.client.ClientCertFile,
			KeyFile:       s.tls.client.ClientKeyFile,
			TrustedCAFile: s.tls.client.CAFile,
			ServerName:    ServerName,
		}
		tc, err := info.ClientConfig()
		if err != nil {
			t.Fatalf("etcdtest: client tls: %v", err)
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = filepath.Join(s.root, fmt.Sprintf("data-%d", s.generation))
	cfg.ListenClientUrls = []url.URL{s.etcdURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A fresh token per data directory: RestartEmpty makes a new cluster, not a new member of
	// the old one.
	cfg.InitialClusterToken = fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), s.generation)
	// Faster ticks than the default (100ms/1s) make startup, leader election and the minimum
	// lease TTL (1.5 election timeouts, rounded up to whole seconds: 1s here) short, so tests
	// of lease expiry stay short too.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	// Serve gRPC only: the JSON gateway is unused and would add a client of its own.
	cfg.EnableGRPCGateway = false
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if s.tls != nil {
		cfg.ClientTLSInfo = s.tls.server
	}
	cfg.UnsafeNoFsync = s.noFsync

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd in %s: %w", cfg.Dir, err)
	case <-time.After(startTimeout):
		e.Close()
		return fmt.Errorf("etcd in %s: not ready after %v", cfg.Dir, startTimeout)
	}
	if err := s.relay.listen(); err != nil {
		e.Close()
		return err
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago. The kernel does not
// hand a port it just gave out to the next bind(0), so holding all n listeners until all are
// chosen keeps them distinct.
func freePorts(n int) ([]string, error) {
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, port)
	}
	return ports, nil
}
