package admin_test

import (
	"math"
	"net/http"
	"testing"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
)

// GET /v1/upstreams describes each upstream: settings, snapshot, state counts, traffic.
func TestGetUpstreams(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 3, upstream: "    bounded_load: 1.25"})
	for i := range 20 {
		f.send("user-" + string(rune('a'+i)))
	}
	var first admin.UpstreamsView
	f.get("/v1/upstreams", &first)
	if len(first.Upstreams) != 1 {
		t.Fatalf("%d upstreams, want 1", len(first.Upstreams))
	}
	u := first.Upstreams[0]
	if u.Name != "cart" || u.Service != "cart" || u.Discovery != "file" || u.Balancer != "ring_hash" ||
		u.BoundedLoad != 1.25 || len(u.HashKey) != 2 || u.HashKey[0] != "header:X-User-ID" || u.Protocol != "http" ||
		"http://"+u.Listen != f.cart {
		t.Errorf("settings %+v", u)
	}
	if u.Snapshot == nil || u.Snapshot.Endpoints != 3 || u.Endpoints.Total != 3 || u.Endpoints.Healthy != 3 {
		t.Errorf("snapshot %+v counts %+v, want 3 healthy endpoints", u.Snapshot, u.Endpoints)
	}
	if u.Traffic.Requests != 20 || u.Traffic.RequestsPerSecond != nil {
		t.Errorf("traffic %+v, want 20 requests and no rate from one reading", u.Traffic)
	}
	var one admin.UpstreamView
	f.get("/v1/upstreams/cart", &one)
	if one.Name != "cart" {
		t.Errorf("GET /v1/upstreams/cart: %+v", one)
	}
}

// GET /v1/upstreams/{name}/endpoints lists each endpoint with its registry data, state and
// measured key share.
func TestGetEndpoints(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 4})
	f.send("alice")
	var v admin.EndpointsView
	f.get("/v1/upstreams/cart/endpoints", &v)
	if v.Upstream != "cart" || v.Balancer != "ring_hash" || v.ShareSamples == 0 || len(v.Endpoints) != 4 {
		t.Fatalf("view %+v", v)
	}
	var table, now, requests float64
	for _, e := range v.Endpoints {
		if e.State != "healthy" || e.RegistryHealth != "passing" || e.Zone != "z1" || len(e.Tags) != 1 ||
			e.Weight != 1 || e.KeyShare == nil || e.Ejection != nil || e.Override != nil {
			t.Errorf("endpoint %+v", e)
			continue
		}
		table += e.KeyShare.Table
		now += e.KeyShare.Now
		requests += e.Requests
	}
	if math.Abs(table-1) > 1e-9 || math.Abs(now-1) > 1e-9 || requests != 1 {
		t.Errorf("shares sum to %v and %v, requests to %v; want 1, 1, 1", table, now, requests)
	}
}

// Unknown upstreams and API paths, and bad parameters, answer 4xx with a JSON error that says
// what is allowed.
func TestReadErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 1})
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/upstreams/nope/endpoints", http.StatusNotFound},
		{"GET", "/v1/upstreams/nope", http.StatusNotFound},
		{"GET", "/v1/route?upstream=nope&key=a", http.StatusNotFound},
		{"GET", "/v1/route?key=a", http.StatusBadRequest},
		{"GET", "/v1/events?since=yesterday", http.StatusBadRequest},
		{"GET", "/v1/events?limit=0", http.StatusBadRequest},
		{"GET", "/v1/nothing", http.StatusNotFound},
	}
	for _, tt := range tests {
		var e admin.APIError
		f.must(tt.want, &e, tt.method, tt.path, "", nil)
		if e.Error == "" || e.Allowed == "" {
			t.Errorf("%s %s: error %+v, want a message and what is allowed", tt.method, tt.path, e)
		}
	}
}
