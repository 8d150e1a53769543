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

// Active checks of an upstream with upstream_tls probed its endpoints in plain HTTP: all of
// them failed, the panic threshold then sent traffic to all of them, and an endpoint whose
// health check really failed kept its users. The probes use the upstream's TLS settings.
func TestActiveChecksUseUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	var cert *x509.Certificate
	for _, name := range []string{"a", "b", "c"} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && name == "b" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, name)
		}))
		srv.StartTLS()
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "https://"))
		cert = srv.Certificate() // httptest servers share one certificate
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	services := fmt.Sprintf("services:\n  secure: [{id: a, address: %q}, {id: b, address: %q}, {id: c, address: %q}]\n", addrs[0], addrs[1], addrs[2])
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
discovery: {kind: file, file: {path: %q, poll_interval: 20ms}}
upstreams:
  - name: secure
    listen: 127.0.0.1:0
    hash_key: [header:X-User-ID]
    retries: {attempts: 1}
    upstream_tls: {ca_file: %q, server_name: example.com}
    health_check: {path: /healthz, interval: 100ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1}
lifecycle: {drain_delay: 10ms}
`, filepath.Join(dir, "s.yaml"), caFile) + testEngineConfig()
	sc, stop := runSidecar(t, text)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	// Until b's first failed check, its users reach it; after it, none may.
	var answers map[string]int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		answers = map[string]int{}
		for u := range 60 {
			req, _ := http.NewRequest(http.MethodGet, "http://"+sc.UpstreamAddr("secure")+"/", nil)
			req.Header.Set("X-User-ID", fmt.Sprint("user-", u))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers[fmt.Sprintf("%d %s", resp.StatusCode, body)]++
		}
		if answers["200 b"] == 0 && answers["200 a"]+answers["200 c"] == 60 {
			return
		}
	}
	t.Fatalf("answers %v: want every user on a or c once b fails its checks", answers)
}
