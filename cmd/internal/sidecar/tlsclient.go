package sidecar

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
)

// upstreamTLS builds the TLS configuration towards an upstream's endpoints, or nil for plain
// HTTP. The client certificate is re-read when its files change (see certReloader); the CA
// file is read once (a reload of the configuration reads it again only when its settings
// change).
func upstreamTLS(c *config.TLSClient, log *zap.Logger) (*tls.Config, error) {
	if c == nil || (!c.Enabled && c.CAFile == "" && c.CertFile == "" && c.ServerName == "" && !c.InsecureSkipVerify) {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // the user asked for it, for tests
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream_tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream_tls.ca_file %s: %w", c.CAFile, errNoPEM)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cr, err := newCertReloader(c.CertFile, c.KeyFile, log)
		if err != nil {
			return nil, fmt.Errorf("upstream_tls cert_file/key_file: %w", err)
		}
		tc.GetClientCertificate = cr.getClientCertificate
	}
	return tc, nil
}

var errNoPEM = errors.New("no PEM certificate in the file")
