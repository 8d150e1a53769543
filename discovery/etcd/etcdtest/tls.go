package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// ServerName is the only name in the certificate of a server started by StartTLS. It has no IP
// address, so a client dialing 127.0.0.1 must set ServerName to this to verify the server.
const ServerName = "etcd.test"

// serverTLS is the TLS set-up of a server started by StartTLS.
type serverTLS struct {
	server transport.TLSInfo
	client TLSFiles
}

// TLSFiles are the PEM files StartTLS writes: a CA, and a client certificate and key it signed.
type TLSFiles struct {
	CAFile         string
	ClientCertFile string
	ClientKeyFile  string
}

// StartTLS starts a server like Start, serving clients over TLS only and requiring a client
// certificate signed by its CA (mutual TLS), and returns the files a client needs.
func StartTLS(t testing.TB, opts ...Option) (*Server, TLSFiles) {
	t.Helper()
	dir := t.TempDir()
	files, info, err := writeCerts(dir)
	if err != nil {
		t.Fatalf("etcdtest: certificates: %v", err)
	}
	s, err := newServer(dir, "https", &serverTLS{server: info, client: files}, opts...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s, files
}

// writeCerts makes a CA, a server certificate for ServerName and a client certificate, and
// writes them to dir.
func writeCerts(dir string) (TLSFiles, transport.TLSInfo, error) {
	caKey, caCert, caDER, err := newCert("etcdtest CA", nil, nil, true)
	if err != nil {
		return TLSFiles{}, transport.TLSInfo{}, err
	}
	srvKey, _, srvDER, err := newCert(ServerName, caCert, caKey, false)
	if err != nil {
		return TLSFiles{}, transport.TLSInfo{}, err
	}
	cliKey, _, cliDER, err := newCert("ringside", caCert, caKey, false)
	if err != nil {
		return TLSFiles{}, transport.TLSInfo{}, err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return TLSFiles{}, transport.TLSInfo{}, fmt.Errorf("server key: %w", err)
	}
	cliKeyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		return TLSFiles{}, transport.TLSInfo{}, fmt.Errorf("client key: %w", err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	writes := []struct {
		name, kind string
		der        []byte
	}{
		{"ca.pem", "CERTIFICATE", caDER},
		{"server.pem", "CERTIFICATE", srvDER},
		{"server-key.pem", "EC PRIVATE KEY", srvKeyDER},
		{"client.pem", "CERTIFICATE", cliDER},
		{"client-key.pem", "EC PRIVATE KEY", cliKeyDER},
	}
	for _, w := range writes {
		data := pem.EncodeToMemory(&pem.Block{Type: w.kind, Bytes: w.der})
		if err := os.WriteFile(p(w.name), data, 0o600); err != nil {
			return TLSFiles{}, transport.TLSInfo{}, fmt.Errorf("write %s: %w", w.name, err)
		}
	}
	files := TLSFiles{CAFile: p("ca.pem"), ClientCertFile: p("client.pem"), ClientKeyFile: p("client-key.pem")}
	info := transport.TLSInfo{
		CertFile:       p("server.pem"),
		KeyFile:        p("server-key.pem"),
		TrustedCAFile:  p("ca.pem"),
		ClientCertAuth: true,
	}
	return files, info, nil
}

// newCert makes a key and a certificate for name, signed by parent (self-signed when nil),
// and returns the key, the certificate and its DER.
func newCert(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (key *ecdsa.PrivateKey, cert *x509.Certificate, certDER []byte, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("key for %s: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("serial for %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{name}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certificate for %s: %w", name, err)
	}
	cert, err = x509.ParseCertificate(certDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse certificate for %s: %w", name, err)
	}
	return key, cert, certDER, nil
}
