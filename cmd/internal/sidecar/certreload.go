package sidecar

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// certReloader serves a certificate — a listener's, or the client certificate of mTLS to the
// endpoints — and loads it again when its files change, so a rotated certificate
// (cert-manager, a renewed Let's Encrypt pair) needs no restart. The
// files are looked at no more than once a second, on handshakes; a pair that fails to load
// leaves the previous one in use.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *zap.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	if err := c.load(stamp); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		stamp += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

func (c *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls %s / %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

// getCertificate is tls.Config.GetCertificate for a listener.
func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.get() }

// getClientCertificate is tls.Config.GetClientCertificate for connections to endpoints (mTLS).
func (c *certReloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.get()
}

func (c *certReloader) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= time.Second {
		c.checked = now
		stamp, err := c.fileStamp()
		switch {
		case err != nil && c.stamp != "missing":
			c.log.Error("tls files unreadable: the previous certificate stays in use", zap.Error(err))
			c.stamp = "missing"
		case err == nil && stamp != c.stamp:
			if err := c.load(stamp); err != nil {
				c.log.Error("tls reload failed: the previous certificate stays in use", zap.Error(err))
				c.stamp = stamp // do not retry every second on the same broken files
			} else {
				c.log.Info("tls certificate reloaded", zap.String("cert_file", c.certFile))
			}
		}
	}
	return c.cert, nil
}
