package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

// DefaultPrefix is where services live when Config.Prefix is empty.
const DefaultPrefix = "/ringside/services"

// Defaults for the zero values of Config's durations.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultRequestTimeout   = 5 * time.Second
	DefaultProgressInterval = 5 * time.Second
)

// ErrBadConfig is wrapped by every error about a Config.
var ErrBadConfig = errors.New("bad etcd config")

// Config says how to reach etcd and where the services live. The zero value of every field but
// Endpoints is usable. A Config is a plain value: copy it freely.
type Config struct {
	// Endpoints are the etcd client URLs ("http://10.0.0.1:2379", "https://etcd:2379") or
	// host:port pairs. At least one is required. With TLS, use https:// or host:port: clientv3
	// never uses TLS for an http:// endpoint.
	Endpoints []string
	// DialTimeout bounds connecting (and authenticating) to etcd; default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each list, lease grant, put and revoke; default 5s.
	RequestTimeout time.Duration
	TLS            TLSConfig
	// Username and Password enable etcd authentication when Username is set. The password is
	// never logged, and String leaves it out.
	Username string
	Password string
	// Prefix is the key prefix under which services live (see the package doc); default
	// DefaultPrefix. A trailing slash is ignored.
	Prefix string
	// ProgressInterval (Source only) is how often each watch asks etcd to confirm it is alive
	// and current. A watch that hears nothing for two intervals is considered stalled — etcd
	// unreachable — and the service is listed again, with backoff, until etcd answers. It also
	// paces Observer.Synced on a quiet service. Default 5s; keep it well above etcd's 100ms
	// watcher sync period, before which etcd answers no progress request of a new watch.
	ProgressInterval time.Duration
	// Backoff paces retries after errors, and gRPC's attempts to reconnect to etcd; the zero
	// value is discovery.Backoff's default (100ms, doubling up to 30s; up to 1s while etcd
	// cannot be reached, so that its return is noticed within about a second).
	Backoff discovery.Backoff
	// Pacing (Source only) paces the snapshots a Source delivers: removals held for a while
	// after a watch is listed again, bursts coalesced (zero: discovery's defaults).
	Pacing discovery.Pacing
}

// TLSConfig holds the files for TLS to etcd. TLS is used when any field is set.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs that sign etcd's certificate; "" uses the system pool.
	CAFile string
	// CertFile and KeyFile are a client certificate and key, both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in etcd's certificate (default: the endpoint host).
	ServerName string
	// InsecureSkipVerify turns certificate checks off. For tests only.
	InsecureSkipVerify bool
}

func (t TLSConfig) enabled() bool { return t != TLSConfig{} }

// String describes c for logs, without the password.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd endpoints=%s prefix=%s", strings.Join(c.Endpoints, ","), c.prefix())
	if c.TLS.enabled() {
		fmt.Fprintf(&b, " tls(ca=%q cert=%q server_name=%q insecure=%t)",
			c.TLS.CAFile, c.TLS.CertFile, c.TLS.ServerName, c.TLS.InsecureSkipVerify)
	}
	if c.Username != "" {
		fmt.Fprintf(&b, " user=%s password=<redacted>", c.Username)
	}
	return b.String()
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

func (c Config) prefix() string {
	p := strings.TrimRight(c.Prefix, "/")
	if p == "" {
		return DefaultPrefix
	}
	return p
}

func (c Config) requestTimeout() time.Duration {
	return orDefault(c.RequestTimeout, DefaultRequestTimeout)
}

func (c Config) progressInterval() time.Duration {
	return orDefault(c.ProgressInterval, DefaultProgressInterval)
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// load reads the files named in t.
func (t TLSConfig) load() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // an explicit, documented opt-in
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls ca: %w", ErrBadConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls ca %s: no PEM certificate", ErrBadConfig, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%w: tls cert and key must be given together", ErrBadConfig)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls client certificate: %w", ErrBadConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
