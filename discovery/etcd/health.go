package etcd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

// Defaults for a registration's HTTP check.
const (
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckTimeout  = 5 * time.Second
)

// maxCheckBody is how much of a check response is read, so the connection closes cleanly
// without reading an unbounded body.
const maxCheckBody = 64 << 10

// prober runs a registration's HTTP check for the Registrar. etcd has no health checks of its
// own, so the registrar probes the local app itself and writes the result into its entry; the
// entry's health then reaches every watching proxy with the next watch event. It maps the
// answer the way Consul does: 2xx is passing, 429 Too Many Requests is warning, anything else —
// including no answer within the timeout — is critical.
//
// A prober is safe for concurrent use; the registrar calls it from Run's goroutine.
type prober struct {
	url      string
	interval time.Duration
	timeout  time.Duration
	client   *http.Client
}

// newProber returns nil when c has no HTTP check.
func newProber(c discovery.Check) *prober {
	if c.HTTP == "" {
		return nil
	}
	interval := orDefault(c.Interval, DefaultCheckInterval)
	return &prober{
		url:      c.HTTP,
		interval: interval,
		timeout:  min(orDefault(c.Timeout, DefaultCheckTimeout), interval),
		client: &http.Client{
			// The app is local: no proxy from the environment, and no idle connection (nor its
			// goroutines) kept between probes that are seconds apart.
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}
}

// check probes once and returns the health it found, with the reason when not passing.
func (p *prober) check(ctx context.Context) (discovery.Health, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return discovery.HealthCritical, fmt.Errorf("health check %s: %w", p.url, err)
	}
	req.Header.Set("User-Agent", "ringside-health-check")
	resp, err := p.client.Do(req)
	if err != nil {
		return discovery.HealthCritical, fmt.Errorf("health check: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCheckBody))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return discovery.HealthPassing, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return discovery.HealthWarning, fmt.Errorf("health check %s: status %d", p.url, resp.StatusCode)
	default:
		return discovery.HealthCritical, fmt.Errorf("health check %s: status %d", p.url, resp.StatusCode)
	}
}
