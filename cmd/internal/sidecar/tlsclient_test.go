package sidecar

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpstreamTLS: endpoints served over TLS with a client certificate required (mTLS);
// ringside verifies them against the configured CA and presents its own certificate.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	clientCert, clientKey := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	writeCert(t, clientCert, clientKey, "ringside-client")
	clientPEM, err := os.ReadFile(clientCert)
	if err != nil {
		t.Fatal(err)
	}
	clientPool := x509.NewCertPool()
	clientPool.AppendCertsFromPEM(clientPEM)

	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "tls-backend client=%s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	backend.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	backend.StartTLS()
	defer backend.Close()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: backend.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(backend.URL, "https://")
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(fmt.Sprintf("services:\n  secure: [{address: %q}]\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(tlsBlock string) (int, string) {
		text := fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
discovery: {kind: file, file: {path: %q, poll_interval: 20ms}}
upstreams:
  - name: secure
    listen: 127.0.0.1:0
    retries: {attempts: 1}
    upstream_tls: %s
lifecycle: {drain_delay: 10ms}
`, filepath.Join(dir, "s.yaml"), tlsBlock)
		sc, stop := runSidecar(t, text)
		defer stop()
		client := &http.Client{Timeout: 5 * time.Second}
		defer client.CloseIdleConnections()
		resp, err := client.Get("http://" + sc.UpstreamAddr("secure") + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tests := []struct {
		name     string
		tls      string
		wantCode int
		wantBody string
	}{
		{"verified, with client cert", fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q, server_name: example.com}", caFile, clientCert, clientKey), 200, "client=ringside-client"},
		{"unknown CA is refused", fmt.Sprintf("{enabled: true, cert_file: %q, key_file: %q}", clientCert, clientKey), 502, ""},
		{"no client cert is refused by the backend", fmt.Sprintf("{ca_file: %q, server_name: example.com}", caFile), 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := run(tt.tls)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}
