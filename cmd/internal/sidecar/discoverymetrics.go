package sidecar

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringside-proxy/ringside/discovery"
)

// discoveryMetrics implements discovery.Observer with Prometheus metrics: sync errors and
// malformed entries by service, and the staleness of each service's snapshot: 0 while the
// registry answers, and while it fails, the time since it last answered. (A healthy Consul
// watch sits in a blocking query for minutes; the time since the last answer would be
// meaningless there.)
type discoveryMetrics struct {
	failures  *prometheus.CounterVec
	malformed *prometheus.CounterVec

	mu      sync.Mutex
	state   map[string]*syncState
	now     func() time.Time
	started time.Time
}

type syncState struct {
	lastSync time.Time // zero until the first answer
	failing  bool
}

var (
	_ discovery.Observer   = (*discoveryMetrics)(nil)
	_ prometheus.Collector = (*discoveryMetrics)(nil)
)

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
		state:   make(map[string]*syncState),
		now:     time.Now,
		started: time.Now(),
	}
	reg.MustRegister(m.failures, m.malformed, m)
	return m
}

func snapshotAgeDesc() *prometheus.Desc {
	return prometheus.NewDesc("ringside_discovery_snapshot_age_seconds",
		"0 while the registry answers for the service; while it fails, seconds since it last answered: how stale the snapshot in force may be.",
		[]string{"service"}, nil)
}

// Describe implements prometheus.Collector for the staleness gauge.
func (m *discoveryMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- snapshotAgeDesc() }

// Collect computes each service's staleness at scrape time.
func (m *discoveryMetrics) Collect(ch chan<- prometheus.Metric) {
	desc := snapshotAgeDesc()
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for svc, st := range m.state {
		age := 0.0
		if st.failing {
			since := st.lastSync
			if since.IsZero() {
				since = m.started
			}
			age = now.Sub(since).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, age, svc)
	}
}

func (m *discoveryMetrics) entry(service string) *syncState {
	st := m.state[service]
	if st == nil {
		st = &syncState{}
		m.state[service] = st
	}
	return st
}

// Synced implements discovery.Observer.
func (m *discoveryMetrics) Synced(service string, at time.Time) {
	m.mu.Lock()
	st := m.entry(service)
	st.lastSync, st.failing = at, false
	m.mu.Unlock()
}

// Failed implements discovery.Observer.
func (m *discoveryMetrics) Failed(service string, _ error) {
	m.mu.Lock()
	m.entry(service).failing = true
	m.mu.Unlock()
	m.failures.WithLabelValues(service).Inc()
}

// Malformed implements discovery.Observer.
func (m *discoveryMetrics) Malformed(service, _ string, _ error) {
	m.malformed.WithLabelValues(service).Inc()
}

// watching forgets the services no longer watched, so their series end with them.
func (m *discoveryMetrics) watching(services []string) {
	keep := make(map[string]bool, len(services))
	for _, s := range services {
		keep[s] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for svc := range m.state {
		if !keep[svc] {
			delete(m.state, svc)
			m.failures.DeleteLabelValues(svc)
			m.malformed.DeleteLabelValues(svc)
		}
	}
}
