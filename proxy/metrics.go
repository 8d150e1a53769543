package proxy

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// Metrics holds the Prometheus metrics of the forwarding path of every upstream:
//
//	ringside_requests_total{upstream,endpoint,code}   responses sent to clients, by status class
//	                                                  ("2xx"...); endpoint "" for the proxy's own
//	ringside_request_duration_seconds{upstream}       time to the response header, retries included
//	ringside_requests_in_flight{upstream}             requests being handled
//	ringside_retries_total{upstream,reason}           retries made: connect, pool_full, timeout,
//	                                                  reset, status
//	ringside_retry_budget_exhausted_total{upstream}   retries not made for lack of budget
//	ringside_ejections_total{upstream,endpoint,reason} outlier ejections
//	ringside_endpoint_returns_total{upstream,endpoint} returns from ejection
//	ringside_endpoints{upstream,state}                endpoints by balancer state
//	ringside_tunnels_open{upstream}                   upgraded connections open
//	ringside_response_body_aborts_total{upstream,reason} response bodies broken off after their
//	                                                  header was sent: idle_timeout,
//	                                                  request_timeout, endpoint
//
// The series of an upstream and of an endpoint are resolved once (at New, and when the
// balancer adds the endpoint), never per request; an endpoint's series are deleted when it
// leaves. Metrics implements balancer.Events. Safe for concurrent use. A nil *Metrics is
// valid and records nothing, at no cost.
type Metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	inFlight        *prometheus.GaugeVec
	retries         *prometheus.CounterVec
	budgetExhausted *prometheus.CounterVec
	ejections       *prometheus.CounterVec
	returns         *prometheus.CounterVec
	endpoints       *prometheus.GaugeVec
	tunnels         *prometheus.GaugeVec
	aborts          *prometheus.CounterVec

	// ejectReasons holds every ejection reason counted so far (a handful), so that
	// forgetEndpoint deletes an endpoint's series by their exact labels.
	ejectReasons sync.Map // string → struct{}
}

// Interface guard.
var _ balancer.Events = (*Metrics)(nil)

// NewMetrics creates the metrics and registers them on reg; a nil reg registers nothing (for
// tests). It fails if reg already holds metrics of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_requests_total",
			Help: "Responses sent to clients, by upstream, endpoint (empty for the proxy's own) and status class.",
		}, []string{"upstream", "endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ringside_request_duration_seconds",
			Help:    "Time from the request to the response header sent to the client, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms to 16s
		}, []string{"upstream"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ringside_requests_in_flight",
			Help: "Requests being handled, by upstream.",
		}, []string{"upstream"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_retries_total",
			Help: "Retries made, by upstream and the reason of the failed attempt.",
		}, []string{"upstream", "reason"}),
		budgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_retry_budget_exhausted_total",
			Help: "Retries not made because the upstream's retry budget was spent.",
		}, []string{"upstream"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_ejections_total",
			Help: "Endpoints ejected by outlier detection, by reason.",
		}, []string{"upstream", "endpoint", "reason"}),
		returns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_endpoint_returns_total",
			Help: "Endpoints back in service after an ejection.",
		}, []string{"upstream", "endpoint"}),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ringside_endpoints",
			Help: "Endpoints by upstream and balancer state.",
		}, []string{"upstream", "state"}),
		tunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ringside_tunnels_open",
			Help: "Upgraded (WebSocket) connections open, by upstream.",
		}, []string{"upstream"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringside_response_body_aborts_total",
			Help: "Response bodies broken off after their header was sent (the client's connection closed), by reason.",
		}, []string{"upstream", "reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{
			m.requests, m.duration, m.inFlight, m.retries, m.budgetExhausted,
			m.ejections, m.returns, m.endpoints, m.tunnels, m.aborts,
		} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register proxy metrics: %w", err)
			}
		}
	}
	return m, nil
}

// codeCounters are the request counters of one endpoint, by status class: index status/100,
// 0 for anything out of 100..599.
type codeCounters [6]prometheus.Counter

var codeClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (c *codeCounters) inc(status int) {
	if c == nil {
		return
	}
	i := status / 100
	if i < 1 || i > 5 {
		i = 0
	}
	c[i].Inc()
}

// endpointCodes resolves the request counters of an endpoint; nil without metrics.
func (m *Metrics) endpointCodes(upstream, endpoint string) *codeCounters {
	if m == nil {
		return nil
	}
	var c codeCounters
	for i, class := range codeClasses {
		c[i] = m.requests.WithLabelValues(upstream, endpoint, class)
	}
	return &c
}

// forgetEndpoint deletes the series of an endpoint that left the upstream. It deletes each
// by its exact labels, a hash lookup: DeletePartialMatch scans every series of the vector,
// which made removing a fleet of N endpoints cost O(N²).
func (m *Metrics) forgetEndpoint(upstream, endpoint string) {
	if m == nil {
		return
	}
	for _, class := range codeClasses {
		m.requests.DeleteLabelValues(upstream, endpoint, class)
	}
	m.ejectReasons.Range(func(reason, _ any) bool {
		m.ejections.DeleteLabelValues(upstream, endpoint, reason.(string))
		return true
	})
	m.returns.DeleteLabelValues(upstream, endpoint)
}

// upstreamMetrics are the series of one upstream, resolved once.
type upstreamMetrics struct {
	duration prometheus.Observer
	inFlight prometheus.Gauge
	tunnels  prometheus.Gauge
	budget   prometheus.Counter
	retries  [failClient + 1]prometheus.Counter // by failKind; failNone is "status"
	local    *codeCounters                      // the proxy's own responses
	aborts   [numAbortReasons]prometheus.Counter
}

// upstream resolves the series of an upstream; nil without metrics.
func (m *Metrics) upstream(name string) *upstreamMetrics {
	if m == nil {
		return nil
	}
	u := &upstreamMetrics{
		duration: m.duration.WithLabelValues(name),
		inFlight: m.inFlight.WithLabelValues(name),
		tunnels:  m.tunnels.WithLabelValues(name),
		budget:   m.budgetExhausted.WithLabelValues(name),
		local:    m.endpointCodes(name, ""),
	}
	for r := range u.aborts {
		u.aborts[r] = m.aborts.WithLabelValues(name, abortReason(r).String())
	}
	for f := range u.retries {
		reason := failKind(f).String()
		if failKind(f) == failNone {
			reason = "status"
		}
		u.retries[f] = m.retries.WithLabelValues(name, reason)
	}
	return u
}

// Ejected counts an ejection. It implements balancer.Events.
func (m *Metrics) Ejected(upstream string, ep *balancer.Endpoint, reason string, _ time.Duration) {
	if m != nil {
		m.ejectReasons.LoadOrStore(reason, struct{}{}) // before the series, for forgetEndpoint
		m.ejections.WithLabelValues(upstream, ep.ID, reason).Inc()
	}
}

// Returned counts a return from ejection. It implements balancer.Events.
func (m *Metrics) Returned(upstream string, ep *balancer.Endpoint) {
	if m != nil {
		m.returns.WithLabelValues(upstream, ep.ID).Inc()
	}
}

// StateChanged sets the endpoints-by-state gauges. It implements balancer.Events.
func (m *Metrics) StateChanged(upstream string, c balancer.StateCounts) {
	if m == nil {
		return
	}
	for _, s := range []struct {
		state balancer.EndpointState
		n     int
	}{
		{balancer.Healthy, c.Healthy}, {balancer.Warming, c.Warming}, {balancer.Ejected, c.Ejected},
		{balancer.ActiveUnhealthy, c.ActiveUnhealthy}, {balancer.Critical, c.Critical},
		{balancer.Drained, c.Drained},
	} {
		m.endpoints.WithLabelValues(upstream, s.state.String()).Set(float64(s.n))
	}
}
