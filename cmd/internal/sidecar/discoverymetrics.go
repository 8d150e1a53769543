package sidecar

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringside-proxy/ringside/discovery"
)

// discoveryMetrics implements discovery.Observer with Prometheus metrics: sync errors and
// malformed entries by service, and the age of each service's last successful read, which is
// how stale the snapshot in force may be while the registry is unreachable.
type discoveryMetrics struct {
	failures  *prometheus.CounterVec
	malformed *prometheus.CounterVec

	mu       sync.Mutex
	lastSync map[string]time.Time
	now      func() time.Time
}

var _ discovery.Observer = (*discoveryMetrics)(nil)

func newDiscoveryMetrics(reg prometheus.Registerer) *discoveryMetrics {
	m := &discoveryMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_discovery_errors_total",
			Help: "Failed reads or watches of the registry, by service.",
		}, []string{"service"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_discovery_malformed_entries_total",
			Help: "Registry entries skipped because they could not be used, by service.",
		}, []string{"service"}),
		lastSync: make(map[string]time.Time),
		now:      time.Now,
	}
	reg.MustRegister(m.failures, m.malformed, m)
	return m
}

var snapshotAgeDesc = prometheus.NewDesc("ringside_discovery_snapshot_age_seconds",
	"Seconds since the registry was last read successfully for the service: the snapshot in force is at most this stale.",
	[]string{"service"}, nil)

// Describe implements prometheus.Collector for the age gauge.
func (m *discoveryMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- snapshotAgeDesc }

// Collect computes each service's age at scrape time.
func (m *discoveryMetrics) Collect(ch chan<- prometheus.Metric) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for svc, at := range m.lastSync {
		ch <- prometheus.MustNewConstMetric(snapshotAgeDesc, prometheus.GaugeValue, now.Sub(at).Seconds(), svc)
	}
}

func (m *discoveryMetrics) Synced(service string, at time.Time) {
	m.mu.Lock()
	m.lastSync[service] = at
	m.mu.Unlock()
}

func (m *discoveryMetrics) Failed(service string, _ error) { m.failures.WithLabelValues(service).Inc() }

func (m *discoveryMetrics) Malformed(service, _ string, _ error) {
	m.malformed.WithLabelValues(service).Inc()
}
