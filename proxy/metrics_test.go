package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// series returns the value of every series of family name, keyed by its labels
// ("k=v,k=v").
func series(t testing.TB, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice succeeded")
	}
	b := startBackend(t, "a", okHandler("ok"))
	s := newStack(t, stackOpts{opts: Options{Metrics: m}, tcfg: TransportConfig{}}, b)
	// newStack gave the transport no metrics (stackOpts.metrics is off): wire them by hand.
	s.tr.metrics = m
	s.setBackends()
	s.setBackends(b)
	for range 3 {
		s.get("/")
	}
	if got := series(t, reg, "ringside_requests_total")["code=2xx,endpoint=a,upstream=svc"]; got != 3 {
		t.Fatalf("a 2xx = %v, want 3", got)
	}
	s.setBackends()
	s.get("/") // no endpoint: the proxy's own 503

	got := series(t, reg, "ringside_requests_total")
	for k := range got {
		if strings.Contains(k, "endpoint=a,") {
			t.Errorf("the removed endpoint's series %s survived", k)
		}
	}
	if got["code=5xx,endpoint=,upstream=svc"] != 1 {
		t.Errorf("proxy's own 503 not counted: %v", got)
	}
	if n := series(t, reg, "ringside_request_duration_seconds")["upstream=svc"]; n != 4 {
		t.Errorf("%v latency observations, want 4", n)
	}
	if n := series(t, reg, "ringside_requests_in_flight")["upstream=svc"]; n != 0 {
		t.Errorf("%v requests in flight after all ended", n)
	}
	if n := series(t, reg, "ringside_endpoints")["state=healthy,upstream=svc"]; n != 0 {
		t.Errorf("%v healthy endpoints after the last left", n)
	}
}

func TestMetricsCountsByEndpointAndClass(t *testing.T) {
	b := startBackend(t, "a", statusHandler(404))
	ok := startBackend(t, "b", okHandler("ok"))
	s := newStack(t, stackOpts{cfg: keyedConfig(), metrics: true}, b, ok)
	var want404, want200 float64
	for _, k := range userKeys(20) {
		if code, _, _ := s.get("/", "X-User-ID", k); code == 404 {
			want404++
		} else {
			want200++
		}
	}
	if got := metricValue(t, s.metrics.requests.WithLabelValues("svc", "a", "4xx")); got != want404 || want404 == 0 {
		t.Errorf("a 4xx = %v, want %v", got, want404)
	}
	if got := metricValue(t, s.metrics.requests.WithLabelValues("svc", "b", "2xx")); got != want200 || want200 == 0 {
		t.Errorf("b 2xx = %v, want %v", got, want200)
	}
	if got := metricValue(t, s.metrics.endpoints.WithLabelValues("svc", "healthy")); got != 2 {
		t.Errorf("healthy endpoints = %v, want 2", got)
	}
}

// A nil *Metrics records nothing and does not panic.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Ejected("svc", nil, "x", time.Second)
	m.Returned("svc", nil)
	m.forgetEndpoint("svc", "a")
	if m.upstream("svc") != nil || m.endpointCodes("svc", "a") != nil {
		t.Fatal("a nil Metrics resolved series")
	}
	var c *codeCounters
	c.inc(200)
}

func TestAccessLogSampled(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	b := startBackend(t, "a", okHandler("ok"))
	s := newStack(t, stackOpts{opts: Options{AccessLog: zap.New(core), AccessLogEvery: 3}}, b)
	for range 9 {
		s.get("/path/x?secret=1", "X-Request-ID", "rid")
	}
	entries := logs.All()
	if len(entries) != 3 {
		t.Fatalf("%d access log lines for 9 requests sampled 1 in 3", len(entries))
	}
	f := entries[0].ContextMap()
	want := map[string]any{
		"upstream": "svc", "method": "GET", "path": "/path/x", "status": int64(200),
		"endpoint": "a", "attempts": int64(1), "client_ip": "127.0.0.1", "request_id": "rid", "reason": "",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, f[k], f[k], v)
		}
	}
	if _, ok := f["duration"]; !ok {
		t.Error("no duration")
	}
}

// A request without an X-Request-ID is logged with the one the proxy added, the one the
// endpoint received.
func TestAccessLogGeneratedRequestID(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetBytesV("X-Got-Request-Id", ctx.Request.Header.Peek("X-Request-Id"))
	})
	s := newStack(t, stackOpts{opts: Options{AccessLog: zap.New(core), AccessLogEvery: 1}}, b)
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI("http://" + s.addr + "/")
	if err := s.client.Do(&req, &resp); err != nil {
		t.Fatal(err)
	}
	got := string(resp.Header.Peek("X-Got-Request-Id"))
	entries := logs.All()
	if got == "" || len(entries) != 1 {
		t.Fatalf("endpoint got request ID %q; %d log lines", got, len(entries))
	}
	if logged := entries[0].ContextMap()["request_id"]; logged != got {
		t.Errorf("logged request_id %q; the endpoint got %q", logged, got)
	}
}

func TestAddedValue(t *testing.T) {
	extra := []byte("X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Request-Id: abc-1\r\n")
	tests := []struct{ name, want string }{
		{"X-Forwarded-For", "10.0.0.1"},
		{"X-Request-Id", "abc-1"},
		{"X-Forwarded-Proto", "http"},
		{"X-Forwarded", ""},
		{"X-Real-Ip", ""},
	}
	for _, tt := range tests {
		if got := string(addedValue(extra, tt.name)); got != tt.want {
			t.Errorf("addedValue(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// The access log is off by default and costs nothing then.
func TestAccessLogOff(t *testing.T) {
	var a *accessLog
	if a.sample() {
		t.Fatal("a nil access log samples")
	}
	if newAccessLog(nil, "svc", 1) != nil {
		t.Fatal("an access log without a logger")
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []Config{
		{StripPrefix: "api"},
		{AddPrefix: "/v2?x"},
		{Host: "a b"},
		{Retry: RetryConfig{Attempts: -1}},
		{Retry: RetryConfig{Budget: BudgetConfig{Window: 1500 * time.Millisecond}}},
		{ResponseHeaderTimeout: -1},
		{Keys: []string{"bogus"}},
	}
	b := startBackend(t, "a", okHandler("ok"))
	s := newStack(t, stackOpts{}, b)
	for _, cfg := range tests {
		if _, err := New(cfg, s.up, Options{}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
	if _, err := New(Config{}, nil, Options{}); !errors.Is(err, ErrBadConfig) {
		t.Error("New with a nil upstream")
	}
	if _, err := NewTransport("svc", TransportConfig{MaxResponseHeaderSize: 10}, nil); !errors.Is(err, ErrBadConfig) {
		t.Error("NewTransport with a tiny header buffer")
	}
	if _, err := NewServer(nil, ServerConfig{}); !errors.Is(err, ErrBadConfig) {
		t.Error("NewServer without a handler")
	}
}
