package sidecar

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/discovery"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given common name.
func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  nil,
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSListenerReloadsItsCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, "first")
	f := newFixture(t, fmt.Sprintf("    tls: {cert_file: %q, key_file: %q}", certFile, keyFile), "10ms")
	peerCN := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", f.sc.UpstreamAddr("app"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := peerCN(); got != "first" {
		t.Fatalf("certificate %q, want first", got)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+f.sc.UpstreamAddr("app")+"/", nil)
	req.Header.Set("X-User-ID", "alice")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "b") {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, body)
	}
	time.Sleep(1100 * time.Millisecond) // the files are looked at once a second at most
	writeCert(t, certFile, keyFile, "second")
	deadline := time.Now().Add(5 * time.Second)
	for peerCN() != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate was not picked up within 5s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken pair keeps the last good certificate in use.
	time.Sleep(1100 * time.Millisecond)
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if got := peerCN(); got != "second" {
		t.Errorf("after a broken rotation the listener serves %q, want the last good (second)", got)
	}
}

func TestHostRouting(t *testing.T) {
	a, b := startTestBackend(t, "cart"), startTestBackend(t, "search")
	sc, stop := runHostRouting(t, a.addr, b.addr)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	tests := []struct {
		host     string
		wantCode int
		wantBody string
	}{
		{"cart.internal", 200, "cart"},
		{"CART.internal:8080", 200, "cart"},
		{"cart.example", 200, "cart"},
		{"search.internal", 200, "search"},
		{"other.internal", 404, "no upstream"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, "http://"+sc.HostRoutingAddr()+"/", nil)
		req.Host = tt.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("Host %s: %d %q, want %d %q", tt.host, resp.StatusCode, body, tt.wantCode, tt.wantBody)
		}
	}

	// An HTTP/2 client with prior knowledge has no Host to route by: it is told in HTTP/2 that
	// the listener speaks HTTP/1.1 (GOAWAY HTTP_1_1_REQUIRED), not sent a 404 it cannot read.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 5 * time.Second}
	defer h2.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+sc.HostRoutingAddr()+"/", nil)
	req.Host = "cart.internal"
	resp, err := h2.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("HTTP/2 request answered %s; want the connection refused in HTTP/2", resp.Status)
	}
	if !strings.Contains(err.Error(), "HTTP_1_1_REQUIRED") {
		t.Errorf("HTTP/2 request: %v; want a GOAWAY with HTTP_1_1_REQUIRED", err)
	}
}

// fakeRegistrar records when Run and Deregister are called.
type fakeRegistrar struct {
	runAt, deregAt atomic.Int64
}

var _ discovery.Registrar = (*fakeRegistrar)(nil)

func (f *fakeRegistrar) Run(ctx context.Context) error {
	f.runAt.Store(time.Now().UnixNano())
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeRegistrar) Deregister(context.Context) error {
	f.deregAt.Store(time.Now().UnixNano())
	return nil
}

// The app is registered only once its health check passes, and deregistered when draining.
func TestRegistersOnlyOnceTheAppIsHealthy(t *testing.T) {
	var healthy atomic.Bool
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}), ReadHeaderTimeout: time.Second}
	ln := startListener(t)
	go func() { _ = app.Serve(ln) }()
	defer app.Close()
	reg := &fakeRegistrar{}
	f := newFixtureWith(t, "", "10ms", func(sc *Sidecar) {
		sc.registrar = reg
		sc.register = &config.Register{ID: "web-1", Service: "web"}
		sc.register.Check.HTTP = "http://" + ln.Addr().String() + "/healthz"
		sc.register.Check.Timeout = time.Second
	})
	time.Sleep(400 * time.Millisecond)
	if reg.runAt.Load() != 0 {
		t.Fatal("registered while the app's check fails")
	}
	healthy.Store(true)
	deadline := time.Now().Add(3 * time.Second)
	for reg.runAt.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if reg.runAt.Load() == 0 {
		t.Fatal("not registered within 3s of the check passing")
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	if reg.deregAt.Load() == 0 {
		t.Error("not deregistered on drain")
	}
}

// engine event_loop: plain requests are served by the loops, the rest by goroutines, and
// /metrics says how many of each.
func TestEventLoopEngine(t *testing.T) {
	t.Setenv("RINGSIDE_TEST_ENGINE", "loop")
	f := newFixture(t, "", "10ms")
	for i := range 20 {
		if body, code, err := f.get("/", fmt.Sprint("user-", i)); err != nil || code != 200 || body == "" {
			t.Fatalf("GET: %q %d %v", body, code, err)
		}
	}
	resp, err := f.client.Post("http://"+f.sc.UpstreamAddr("app")+"/", "text/plain", strings.NewReader("a body"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	l := f.sc.listeners["app"]
	if l.loop == nil {
		t.Fatal("engine event_loop, but the listener has no event loop")
	}
	if st := l.loop.Stats(); st.Requests != 20 || st.Handovers != 1 {
		t.Fatalf("loop stats %+v, want 20 requests served and 1 connection handed over", st)
	}
	mfs, err := f.sc.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, mf := range mfs {
		switch mf.GetName() {
		case "ringside_event_loop_requests_total":
			found++
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 20 {
				t.Errorf("%s = %v, want 20", mf.GetName(), v)
			}
		case "ringside_event_loop_handovers_total":
			found++
		}
	}
	if found != 2 {
		t.Errorf("found %d of the 2 event loop metrics", found)
	}
}
