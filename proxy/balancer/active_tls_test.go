package balancer

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/ringside-proxy/ringside/discovery"
)

// Endpoints served over TLS were probed in plain HTTP: every one of them failed its checks,
// and with the panic threshold all of them took traffic again, so an endpoint that really
// failed was never taken out. With ActiveConfig.TLS the probes speak TLS, verified against
// the configured CA.
func TestActiveChecksOverTLS(t *testing.T) {
	good, bad := startHealthServer(t, 0, true), startHealthServer(t, 0, true)
	bad.status.Store(http.StatusServiceUnavailable)
	pool := x509.NewCertPool()
	pool.AddCert(good.Certificate()) // httptest servers share one certificate
	cfg := activeConfig()
	cfg.Active.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	u, _, _ := newTest(t, cfg, snap(
		discovery.Endpoint{ID: "good", Address: good.addr(), Weight: 1},
		discovery.Endpoint{ID: "bad", Address: bad.addr(), Weight: 1},
		discovery.Endpoint{ID: "good2", Address: good.addr(), Weight: 1},
	))
	runUpstream(t, u)

	waitFor(t, "the failing TLS endpoint to fail its checks", func() bool { return handle(u, "bad").State() == ActiveUnhealthy })
	waitFor(t, "the healthy TLS endpoints to pass checks", func() bool { return good.good.Load() >= 6 })
	for _, id := range []string{"good", "good2"} {
		if st := handle(u, id).State(); st != Healthy {
			t.Errorf("%s is %v, want healthy", id, st)
		}
	}
	for _, h := range keyHashes(300) {
		if id := first(u, h); id == "bad" {
			t.Fatal("a request went to the endpoint that fails its checks")
		}
	}
}

// A probe that cannot verify the endpoint's certificate fails, as a request would.
func TestActiveChecksOverTLSVerifyTheCertificate(t *testing.T) {
	srv := startHealthServer(t, 0, true)
	cfg := activeConfig()
	cfg.PanicThreshold = -1
	cfg.Active.TLS = &tls.Config{MinVersion: tls.VersionTLS12} // system roots: httptest's CA is not among them
	u, _, _ := newTest(t, cfg, snap(discovery.Endpoint{ID: "a", Address: srv.addr(), Weight: 1}))
	runUpstream(t, u)
	waitFor(t, "the unverifiable endpoint to fail its checks", func() bool { return handle(u, "a").State() == ActiveUnhealthy })
	if n := srv.good.Load(); n != 0 {
		t.Errorf("%d probes reached the handler without a verified certificate", n)
	}
}
