package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkObservability measures, apart from the network, what metrics and the access log
// add to a request, so that their share of a request's CPU can be stated (the side-by-side
// harness cannot resolve a few percent on this machine):
//   - per-request: the metric updates of one proxied request (in-flight gauge up and down,
//     the duration histogram, the endpoint's status-class counter), as ServeFastHTTP and
//     deliver make them;
//   - access-log-line: one sampled line, JSON, written to a file; at access_log_sample N a
//     request pays 1/N of it;
//   - scrape: one /metrics response for an upstream of 3 endpoints; at one scrape a second a
//     request pays it ÷ requests per second.
func BenchmarkObservability(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	um := m.upstream("svc")
	codes := []*codeCounters{m.endpointCodes("svc", "a"), m.endpointCodes("svc", "b"), m.endpointCodes("svc", "c")}

	b.Run("per-request", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			um.inFlight.Inc()
			codes[i%3].inc(200)
			um.inFlight.Dec()
			um.duration.Observe(0.0012)
			i++
		}
	})

	b.Run("access-log-line", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f), zapcore.InfoLevel)
		a := newAccessLog(zap.New(core), "svc", 1)
		var ctx fasthttp.RequestCtx
		ctx.Init2(benchConn{}, nil, false)
		ctx.Request.Header.Set(hdrXRequestID, "0123456789abcdef-42")
		x := &exchange{ctx: &ctx, client: netip.MustParseAddr("192.0.2.1")}
		e := &entry{method: []byte("GET"), path: []byte("/api/items"), endpoint: "10.0.0.7:8080", attempts: 1}
		b.ReportAllocs()
		for b.Loop() {
			a.write(e, 200, 1200*time.Microsecond, x)
		}
	})

	b.Run("scrape", func(b *testing.B) {
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
