package etcd

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestProberMapsAnswersToHealth(t *testing.T) {
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	defer close(release)

	// A port nothing listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/healthz"
	l.Close()

	tests := []struct {
		url  string
		want discovery.Health
	}{
		{app.URL + "/ok", discovery.HealthPassing},
		{app.URL + "/no-content", discovery.HealthPassing},
		{app.URL + "/redirect", discovery.HealthPassing},
		{app.URL + "/busy", discovery.HealthWarning},
		{app.URL + "/down", discovery.HealthCritical},
		{app.URL + "/slow", discovery.HealthCritical},
		{refused, discovery.HealthCritical},
	}
	for _, tt := range tests {
		p := newProber(discovery.Check{HTTP: tt.url, Interval: time.Second, Timeout: 200 * time.Millisecond})
		got, err := p.check(context.Background())
		if got != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.url, got, err, tt.want)
		}
		if (err == nil) != (tt.want == discovery.HealthPassing) {
			t.Errorf("%s: error %v with health %s", tt.url, err, got)
		}
	}
}

func TestNewProberDefaults(t *testing.T) {
	if p := newProber(discovery.Check{}); p != nil {
		t.Fatalf("prober without a check URL: %+v", p)
	}
	p := newProber(discovery.Check{HTTP: "http://127.0.0.1:1/"})
	if p.interval != DefaultCheckInterval || p.timeout != DefaultCheckTimeout {
		t.Errorf("defaults: interval %v timeout %v", p.interval, p.timeout)
	}
	p = newProber(discovery.Check{HTTP: "http://127.0.0.1:1/", Interval: time.Second, Timeout: time.Minute})
	if p.timeout != time.Second {
		t.Errorf("timeout %v longer than the interval %v", p.timeout, p.interval)
	}
}
