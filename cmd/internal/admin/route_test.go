package admin_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
)

// routeKeys is how many keys the route explain is compared with the request path for, in
// each state of the upstream (1,000 with -short).
func routeKeys() int {
	if testing.Short() {
		return 1000
	}
	return 10000
}

// explain returns GET /v1/route for key on cart.
func (f *fixture) explain(key string) admin.RouteView {
	f.t.Helper()
	var v admin.RouteView
	f.get("/v1/route?upstream=cart&key="+url.QueryEscape(key), &v)
	return v
}

func targetID(v admin.RouteView) string {
	if v.Target == nil {
		return "error: " + v.Error
	}
	return v.Target.ID
}

// compareRoutes explains and sends every key, failing on the first disagreement; it returns
// the explanations and how often each reason to pass an endpoint over came up.
func (f *fixture) compareRoutes(keys []string) ([]admin.RouteView, map[string]int) {
	f.t.Helper()
	out := make([]admin.RouteView, len(keys))
	reasons := map[string]int{}
	for i, k := range keys {
		v := f.explain(k)
		if got, want := f.send(k), targetID(v); got != want {
			f.t.Fatalf("key %q: the request went to %s, the explain says %s (walk %+v)", k, got, want, v.Walk)
		}
		for _, st := range v.Walk {
			if !st.Taken {
				reasons[st.Endpoint+" "+st.Reason]++
			}
		}
		out[i] = v
	}
	return out, reasons
}

// The route explain says what the request path does, for 10,000 keys: with every endpoint
// healthy, with one ejected and one drained through the API (where the explain's fallback
// said the keys would go), and with bounded load turning keys away from a busy endpoint.
func TestRouteAgreesWithDataPath(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 4, token: true, upstream: "    bounded_load: 1.25"})
	keys := make([]string, routeKeys())
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}

	base, _ := f.compareRoutes(keys)

	tests := []struct{ id, take, reason, undo string }{
		{"cart-2", "eject?for=1h", "ejected", "return"},
		{"cart-3", "drain", "drained", "undrain"},
	}
	for _, tt := range tests {
		f.must(http.StatusOK, nil, "POST", "/v1/upstreams/cart/endpoints/"+tt.id+"/"+tt.take, testToken, nil)
		out, reasons := f.compareRoutes(keys)
		if reasons[tt.id+" "+tt.reason] == 0 {
			t.Errorf("no walk passed over %s for %q", tt.id, tt.reason)
		}
		for i, v := range out {
			if b := base[i]; targetID(b) == tt.id && targetID(v) != b.Fallback.ID {
				t.Fatalf("key %q: on %s before, then %s once it was %s; the explain's fallback said %s",
					keys[i], tt.id, targetID(v), tt.reason, b.Fallback.ID)
			}
		}
		f.must(http.StatusOK, nil, "POST", "/v1/upstreams/cart/endpoints/"+tt.id+"/"+tt.undo, testToken, nil)
	}

	f.holdOn("cart-1", 7, base, keys)
	_, reasons := f.compareRoutes(keys)
	if reasons["cart-1 bounded_load"] == 0 {
		t.Errorf("no walk passed over cart-1 for bounded load; reasons %v", reasons)
	}
}

// holdOn sends n requests that the backends hold, with keys whose home is id, one after the
// other, each once the one before is in flight: bounded load lets id take some and sends the
// others on, until id is at its cap.
func (f *fixture) holdOn(id string, n int, base []admin.RouteView, keys []string) {
	f.t.Helper()
	var mine []string
	for i, v := range base {
		if v.Home == id && len(mine) < n {
			mine = append(mine, keys[i])
		}
	}
	errs := make(chan error, n)
	for i, k := range mine {
		go func() {
			req, err := http.NewRequest("GET", f.cart+"/hold", nil)
			if err == nil {
				req.Header.Set("X-User-ID", k)
				var resp *http.Response
				if resp, err = http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			errs <- err
		}()
		f.waitFor("held requests in flight", func() bool { return f.inFlight() == int64(i+1) })
	}
	f.t.Cleanup(func() {
		for _, b := range f.backends {
			b.release()
		}
		for range mine {
			if err := <-errs; err != nil {
				f.t.Errorf("held request: %v", err)
			}
		}
	})
}

// inFlight returns the requests in flight on cart's endpoints.
func (f *fixture) inFlight() int64 {
	var v admin.EndpointsView
	f.get("/v1/upstreams/cart/endpoints", &v)
	var n int64
	for _, e := range v.Endpoints {
		n += e.InFlight
	}
	return n
}

// POST /v1/route with a whole request finds the key with the upstream's own hash-key chain
// (header first, then cookie) and says which source produced it; the request path agrees.
func TestRoutePostWithARequest(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 3})
	for i := range 300 {
		uid := fmt.Sprintf("uid-%d", i)
		var v admin.RouteView
		f.must(http.StatusOK, &v, "POST", "/v1/route", "", admin.RouteRequest{
			Upstream: "cart", Method: "GET", Path: "/basket?x=1", Cookies: map[string]string{"uid": uid}, ClientIP: "10.1.2.3"})
		if !v.Key.Found || v.Key.Source != "cookie:uid" || v.Key.Value != uid || len(v.Sources) != 2 ||
			v.Sources[0].Present || !v.Sources[1].Used || len(v.Hash) != 16 {
			t.Fatalf("explain %+v", v)
		}
		req, _ := http.NewRequest("GET", f.cart+"/basket?x=1", nil)
		req.AddCookie(&http.Cookie{Name: "uid", Value: uid})
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != targetID(v) {
			t.Fatalf("uid %s: request on %s, explain %s", uid, got, targetID(v))
		}
		if v.Fallback == nil || v.Fallback.ID == v.Target.ID {
			t.Fatalf("fallback %+v of target %s", v.Fallback, v.Target.ID)
		}
	}
	var v admin.RouteView
	f.must(http.StatusOK, &v, "POST", "/v1/route", "", admin.RouteRequest{Upstream: "cart",
		Headers: map[string]string{"X-User-ID": "alice"}, Cookies: map[string]string{"uid": "bob"}})
	if v.Key.Source != "header:X-User-ID" || v.Key.Value != "alice" || !v.Sources[0].Used || v.Sources[1].Used || !v.Sources[1].Present {
		t.Errorf("header and cookie: %+v", v)
	}
	if v.Hash != f.explain("alice").Hash {
		t.Error("the hash of a key found in a request differs from the hash of the key given")
	}
	f.must(http.StatusOK, &v, "POST", "/v1/route", "", admin.RouteRequest{Upstream: "cart"})
	if v.Key.Found || v.Hash != "" || v.Target == nil {
		t.Errorf("a request without a key: %+v", v)
	}
	for _, bad := range []admin.RouteRequest{
		{Upstream: "cart", Path: "no-slash"},
		{Upstream: "cart", ClientIP: "not an ip"},
		{Upstream: "cart", Method: "GE T"},
	} {
		f.must(http.StatusBadRequest, nil, "POST", "/v1/route", "", bad)
	}
}
