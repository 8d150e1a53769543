package sidecar

import "github.com/prometheus/client_golang/prometheus"

// loopMetrics reports, at scrape time, what each listener's event loops served themselves
// and what they handed to the goroutine engine: how much of the traffic takes the fast path.
// Counts start again when a reload replaces a listener.
type loopMetrics struct{ s *Sidecar }

var _ prometheus.Collector = loopMetrics{}

var (
	loopRequestsDesc = prometheus.NewDesc("ringside_event_loop_requests_total",
		"Requests the event loops of a listener served themselves (engine event_loop).", []string{"listen"}, nil)
	loopHandoversDesc = prometheus.NewDesc("ringside_event_loop_handovers_total",
		"Connections the event loops of a listener handed to the goroutine engine: requests with a body, upgrades, HTTP/1.0, TLS to endpoints.",
		[]string{"listen"}, nil)
)

// Describe implements prometheus.Collector.
func (m loopMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- loopRequestsDesc
	ch <- loopHandoversDesc
}

// Collect implements prometheus.Collector.
func (m loopMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, l := range m.s.allListeners() {
		if l.loop == nil {
			continue
		}
		st := l.loop.Stats()
		ch <- prometheus.MustNewConstMetric(loopRequestsDesc, prometheus.CounterValue, float64(st.Requests), l.ln.Addr().String())
		ch <- prometheus.MustNewConstMetric(loopHandoversDesc, prometheus.CounterValue, float64(st.Handovers), l.ln.Addr().String())
	}
}

// allListeners returns the listeners serving now, host_routing's included.
func (s *Sidecar) allListeners() []*listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := make([]*listener, 0, len(s.listeners)+1)
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	if s.hostRoute != nil {
		ls = append(ls, s.hostRoute)
	}
	return ls
}
