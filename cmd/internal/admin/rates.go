package admin

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Rates come from the proxy's own counters (ringside_requests_total and the retry series),
// read from the metrics registry when the API is asked: no sampler goroutine, nothing on the
// request path. A rate is the change since a reading at least rateWindow old (or the oldest
// kept, if at least a second old), so it needs two readings: the first answer has none.

// rateWindow is the span a rate is measured over, when readings that old are kept.
const rateWindow = 5 * time.Second

// keepReadings is how long readings are kept.
const keepReadings = time.Minute

// epKey names an endpoint's series.
type epKey struct{ upstream, endpoint string }

// reading is the counters at one moment.
type reading struct {
	at        time.Time
	requests  map[string]float64 // by upstream, answers of the proxy itself included
	errors    map[string]float64 // 5xx, by upstream
	retries   map[string]float64
	exhausted map[string]float64
	epReqs    map[epKey]float64
	ep5xx     map[epKey]float64
}

type rates struct {
	g        prometheus.Gatherer
	mu       sync.Mutex
	readings []reading // oldest first, at least a second apart
}

func newRates(g prometheus.Gatherer) *rates { return &rates{g: g} }

// read takes a reading now and returns it with the one to measure rates against (nil when
// there is none yet).
func (r *rates) read() (cur reading, base *reading) {
	cur = reading{
		at:       time.Now(),
		requests: map[string]float64{}, errors: map[string]float64{}, retries: map[string]float64{},
		exhausted: map[string]float64{}, epReqs: map[epKey]float64{}, ep5xx: map[epKey]float64{},
	}
	if r.g == nil {
		return cur, nil
	}
	mfs, err := r.g.Gather()
	if err != nil {
		return cur, nil
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			up, v := labels["upstream"], m.GetCounter().GetValue()
			switch mf.GetName() {
			case "ringside_requests_total":
				cur.requests[up] += v
				k := epKey{up, labels["endpoint"]}
				cur.epReqs[k] += v
				if labels["code"] == "5xx" {
					cur.errors[up] += v
					cur.ep5xx[k] += v
				}
			case "ringside_retries_total":
				cur.retries[up] += v
			case "ringside_retry_budget_exhausted_total":
				cur.exhausted[up] += v
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.readings) > 1 && cur.at.Sub(r.readings[0].at) > keepReadings {
		r.readings = r.readings[1:]
	}
	for i := len(r.readings) - 1; i >= 0; i-- {
		if cur.at.Sub(r.readings[i].at) >= rateWindow {
			b := r.readings[i]
			base = &b
			break
		}
	}
	if base == nil && len(r.readings) > 0 && cur.at.Sub(r.readings[0].at) >= time.Second {
		b := r.readings[0]
		base = &b
	}
	if n := len(r.readings); n == 0 || cur.at.Sub(r.readings[n-1].at) >= time.Second {
		r.readings = append(r.readings, cur)
	}
	return cur, base
}

// Traffic is an upstream's request rates, as GET /v1/upstreams answers them. The rates are
// null until two readings of the counters are a second or more apart (ask twice).
type Traffic struct {
	// WindowSeconds is the span the rates were measured over.
	WindowSeconds float64 `json:"window_seconds"`
	// RequestsPerSecond counts every response, the proxy's own (502, 503, ...) included.
	RequestsPerSecond *float64 `json:"requests_per_second"`
	// ErrorRate is the share of those that were 5xx; null without requests.
	ErrorRate *float64 `json:"error_rate"`
	// RetriesPerSecond, and RetryBudgetExhausted: the retries refused by the retry budget
	// since the start.
	RetriesPerSecond     *float64 `json:"retries_per_second"`
	RetryBudgetExhausted float64  `json:"retry_budget_exhausted"`
	// Requests and Errors5xx are the totals since the start.
	Requests  float64 `json:"requests"`
	Errors5xx float64 `json:"errors_5xx"`
}

// traffic returns upstream's traffic between base and cur.
func traffic(up string, cur reading, base *reading) Traffic {
	t := Traffic{
		RetryBudgetExhausted: cur.exhausted[up],
		Requests:             cur.requests[up],
		Errors5xx:            cur.errors[up],
	}
	if base == nil {
		return t
	}
	secs := cur.at.Sub(base.at).Seconds()
	t.WindowSeconds = secs
	reqs := cur.requests[up] - base.requests[up]
	t.RequestsPerSecond = ptr(reqs / secs)
	t.RetriesPerSecond = ptr((cur.retries[up] - base.retries[up]) / secs)
	if reqs > 0 {
		t.ErrorRate = ptr((cur.errors[up] - base.errors[up]) / reqs)
	}
	return t
}

func ptr[T any](v T) *T { return &v }
