package sidecar

import (
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHostRoute is the host_routing lookup on the request path: 0 allocations.
func BenchmarkHostRoute(b *testing.B) {
	l := &listener{}
	m := make(map[string]*upstream)
	for i := range 100 {
		m[fmt.Sprintf("service-%d.internal", i)] = &upstream{}
	}
	l.hosts.Store(&m)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetHost("Service-42.Internal:8080")
	b.ReportAllocs()
	for b.Loop() {
		if l.route(&ctx) == nil {
			b.Fatal("no route")
		}
	}
}
