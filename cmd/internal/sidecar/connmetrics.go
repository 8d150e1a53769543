package sidecar

import "github.com/prometheus/client_golang/prometheus"

// connMetrics reports, at scrape time, each listener's client connections against its cap
// (max_connections), the connections refused over it, and the accepts that failed for lack
// of file descriptors or kernel memory, on either engine. Counts start again when a reload
// replaces a listener.
type connMetrics struct{ s *Sidecar }

var _ prometheus.Collector = connMetrics{}

var (
	connOpenDesc = prometheus.NewDesc("ringside_client_connections",
		"Client connections open on a listener, idle, busy and upgraded.", []string{"listen"}, nil)
	connMaxDesc = prometheus.NewDesc("ringside_client_connections_max",
		"The listener's cap on client connections (max_connections).", []string{"listen"}, nil)
	connRefusedDesc = prometheus.NewDesc("ringside_client_connections_refused_total",
		"Client connections over max_connections, answered 503 (closed, on a TLS listener).", []string{"listen"}, nil)
	acceptFailuresDesc = prometheus.NewDesc("ringside_accept_failures_total",
		"Accepts that failed for lack of file descriptors or kernel memory; each pauses accepting (5ms doubling to 1s).",
		[]string{"listen"}, nil)
)

// Describe implements prometheus.Collector.
func (m connMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- connOpenDesc
	ch <- connMaxDesc
	ch <- connRefusedDesc
	ch <- acceptFailuresDesc
}

// Collect implements prometheus.Collector.
func (m connMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, l := range m.s.allListeners() {
		st := l.conns.Stats()
		ch <- prometheus.MustNewConstMetric(connOpenDesc, prometheus.GaugeValue, float64(st.Open), l.ln.Addr().String())
		ch <- prometheus.MustNewConstMetric(connMaxDesc, prometheus.GaugeValue, float64(st.Max), l.ln.Addr().String())
		ch <- prometheus.MustNewConstMetric(connRefusedDesc, prometheus.CounterValue, float64(st.Refused), l.ln.Addr().String())
		ch <- prometheus.MustNewConstMetric(acceptFailuresDesc, prometheus.CounterValue, float64(st.AcceptFailures), l.ln.Addr().String())
	}
}
