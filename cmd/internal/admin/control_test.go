package admin_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/cmd/internal/sidecar"
)

// Without admin.token_file every change answers 403 and says how to enable it; with one, a
// missing or wrong token answers 401 and changes nothing.
func TestChangesNeedTheToken(t *testing.T) {
	paths := []struct{ method, path string }{
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/drain"},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/undrain"},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/eject?for=1m"},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/return"},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/weight?weight=3"},
		{"DELETE", "/v1/upstreams/cart/endpoints/cart-1/weight"},
		{"DELETE", "/v1/upstreams/cart/overrides/cart-1"},
		{"PUT", "/v1/services/cart/endpoints/cart-9"},
		{"DELETE", "/v1/services/cart/endpoints/cart-1"},
	}
	off := newFixture(t, fixtureOptions{backends: 2})
	for _, p := range paths {
		var e admin.APIError
		off.must(http.StatusForbidden, &e, p.method, p.path, testToken, nil)
		if !strings.Contains(e.Allowed, "admin.token_file") {
			t.Errorf("%s %s: %+v does not say how to enable changes", p.method, p.path, e)
		}
	}
	on := newFixture(t, fixtureOptions{backends: 2, token: true})
	for _, p := range paths {
		for _, tok := range []string{"", "wrong-token-0123456789", testToken + "x"} {
			on.must(http.StatusUnauthorized, nil, p.method, p.path, tok, nil)
		}
	}
	var v admin.OverridesView
	on.get("/v1/overrides", &v)
	if len(v.Overrides) != 0 {
		t.Errorf("a refused change left overrides: %+v", v.Overrides)
	}
}

// Drain, undrain, eject, return and weight apply at once on the request path and show in the
// endpoints, overrides and events.
func TestControlsApplyOnTheDataPath(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 3, token: true})
	users := make([]string, 300)
	for i := range users {
		users[i] = "u" + string(rune('A'+i%26)) + string(rune('a'+i/26))
	}
	landed := func() map[string]int {
		m := map[string]int{}
		for _, u := range users {
			m[f.send(u)]++
		}
		return m
	}
	if m := landed(); m["cart-1"] == 0 {
		t.Fatalf("no user on cart-1 to begin with: %v", m)
	}

	var c admin.ControlView
	f.must(http.StatusOK, &c, "POST", "/v1/upstreams/cart/endpoints/cart-1/drain", testToken, nil)
	if c.Action != "drain" || !c.Changed || c.State == nil || c.State.State != "drained" || c.State.Override == nil {
		t.Errorf("drain answered %+v", c)
	}
	if m := landed(); m["cart-1"] != 0 {
		t.Errorf("%d users on the drained cart-1", m["cart-1"])
	}
	f.must(http.StatusOK, &c, "POST", "/v1/upstreams/cart/endpoints/cart-1/undrain", testToken, nil)
	if m := landed(); m["cart-1"] == 0 {
		t.Error("nobody back on cart-1 after undrain")
	}

	f.must(http.StatusOK, &c, "POST", "/v1/upstreams/cart/endpoints/cart-2/eject?for=10m", testToken, nil)
	if e := c.State.Ejection; e == nil || e.Reason != "admin" || e.SecondsLeft < 590 {
		t.Errorf("eject answered %+v", c.State)
	}
	if m := landed(); m["cart-2"] != 0 {
		t.Errorf("%d users on the ejected cart-2", m["cart-2"])
	}
	f.must(http.StatusOK, &c, "POST", "/v1/upstreams/cart/endpoints/cart-2/return", testToken, nil)
	if c.State.Ejection != nil || c.State.State != "healthy" {
		t.Errorf("return answered %+v", c.State)
	}

	f.must(http.StatusOK, &c, "POST", "/v1/upstreams/cart/endpoints/cart-3/weight", testToken, admin.WeightRequest{Weight: 8})
	if c.State.Weight != 8 || c.State.RegistryWeight != 1 || c.State.KeyShare.Table < 0.7 {
		t.Errorf("weight answered %+v (share %+v)", c.State, c.State.KeyShare)
	}
	if m := landed(); m["cart-3"] < len(users)/2 {
		t.Errorf("cart-3 at weight 8 of 10 took %d of %d users", m["cart-3"], len(users))
	}
	var ov admin.OverridesView
	f.get("/v1/upstreams/cart/overrides", &ov)
	if len(ov.Overrides) != 1 || ov.Overrides[0].Endpoint != "cart-3" || ov.Overrides[0].Weight != 8 {
		t.Errorf("overrides %+v", ov.Overrides)
	}
	f.must(http.StatusOK, &c, "DELETE", "/v1/upstreams/cart/overrides/cart-3", testToken, nil)
	if c.State.Weight != 1 || !c.Changed {
		t.Errorf("clearing the overrides answered %+v", c)
	}

	var ev admin.EventsView
	f.get("/v1/events", &ev)
	var kinds []string
	for i := len(ev.Events) - 1; i >= 0; i-- {
		e := ev.Events[i]
		kinds = append(kinds, e.Kind+" "+e.Endpoint)
	}
	want := []string{"snapshot ", "drained cart-1", "undrained cart-1", "ejected cart-2", "returned cart-2", "weight cart-3", "weight cart-3"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events oldest first %q, want %q", kinds, want)
	}
	if first := ev.Events[len(ev.Events)-1]; len(first.Added) != 3 || first.Upstream != "cart" {
		t.Errorf("snapshot event %+v, want 3 endpoints added", first)
	}
	var since admin.EventsView
	f.get("/v1/events?since=5", &since)
	if len(since.Events) != 2 || since.Events[0].Seq != 7 || since.Latest != 7 {
		t.Errorf("since=5: %+v", since)
	}
	f.get("/v1/events?since="+ev.Events[2].Time.Format("2006-01-02T15:04:05.999999999Z07:00")+"&limit=1", &since)
	if len(since.Events) != 1 || since.Events[0].Seq != 7 {
		t.Errorf("since a time, limit 1: %+v", since)
	}
}

// Bad controls answer 4xx with what is allowed, and unknown endpoints list the known ones.
func TestControlErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 2, token: true})
	tests := []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/v1/upstreams/cart/endpoints/nope/drain", nil, http.StatusNotFound},
		{"POST", "/v1/upstreams/nope/endpoints/cart-1/drain", nil, http.StatusNotFound},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/eject", nil, http.StatusBadRequest},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/eject?for=soon", nil, http.StatusBadRequest},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/eject?for=1000h", nil, http.StatusBadRequest},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/drain?keep_keys=-1s", nil, http.StatusBadRequest},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/weight?weight=0", nil, http.StatusBadRequest},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/weight", admin.WeightRequest{Weight: 1001}, http.StatusBadRequest},
		{"POST", "/v1/upstreams/cart/endpoints/cart-1/weight", map[string]any{"wieght": 2}, http.StatusBadRequest},
		{"PUT", "/v1/services/cart/endpoints/x", admin.ServiceEndpointRequest{Address: "nope"}, http.StatusBadRequest},
		{"PUT", "/v1/services/cart/endpoints/x", admin.ServiceEndpointRequest{Address: "1.2.3.4:80", Health: "sick"}, http.StatusBadRequest},
		{"DELETE", "/v1/services/cart/endpoints/nope", nil, http.StatusNotFound},
	}
	for _, tt := range tests {
		var e admin.APIError
		f.must(tt.want, &e, tt.method, tt.path, testToken, tt.body)
		if e.Error == "" {
			t.Errorf("%s %s: no error message", tt.method, tt.path)
		}
		if tt.want == http.StatusNotFound && tt.method == "POST" && !strings.Contains(e.Allowed, "cart") {
			t.Errorf("%s %s: %+v does not list what exists", tt.method, tt.path, e)
		}
	}
}

// On the file source, PUT and DELETE /v1/services/... edit the services file, whose watcher
// applies the change: the new endpoint takes traffic, the removed one leaves.
func TestServicesFileEdits(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 2, token: true})
	extra := startBackend(t, "cart-9")
	var v admin.ServiceEditView
	f.must(http.StatusOK, &v, "PUT", "/v1/services/cart/endpoints/cart-9", testToken,
		admin.ServiceEndpointRequest{Address: extra.addr, Weight: 3, Zone: "z2"})
	if v.Action != "created" {
		t.Errorf("put answered %+v", v)
	}
	endpoints := func() []string {
		var ev admin.EndpointsView
		f.get("/v1/upstreams/cart/endpoints", &ev)
		var ids []string
		for _, e := range ev.Endpoints {
			ids = append(ids, e.ID)
		}
		return ids
	}
	f.waitFor("cart-9 in the snapshot", func() bool { return slices.Contains(endpoints(), "cart-9") })
	landed := false
	for i := range 200 {
		if f.send("user-"+string(rune('a'+i%26))+string(rune('a'+i/26))) == "cart-9" {
			landed = true
			break
		}
	}
	if !landed {
		t.Error("no request reached the endpoint added through the API")
	}
	f.must(http.StatusOK, &v, "DELETE", "/v1/services/cart/endpoints/cart-1", testToken, nil)
	f.waitFor("cart-1 gone", func() bool { return !slices.Contains(endpoints(), "cart-1") })
	data, err := os.ReadFile(filepath.Join(f.dir, "services.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "cart-1") || !strings.Contains(string(data), "cart-9") {
		t.Errorf("services file after the edits:\n%s", data)
	}
	var ev admin.EventsView
	f.get("/v1/events?limit=3", &ev)
	if len(ev.Events) == 0 || ev.Events[0].Kind != "snapshot" || !slices.Contains(ev.Events[0].Removed, "cart-1") {
		t.Errorf("newest events %+v, want the snapshot that removed cart-1", ev.Events)
	}
}

// A reload that rebuilds an upstream carries its overrides over, and the event log says so.
func TestReloadKeepsOverrides(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 3, token: true})
	f.must(http.StatusOK, nil, "POST", "/v1/upstreams/cart/endpoints/cart-1/drain", testToken, nil)
	if err := f.sc.Reload(f.config("    bounded_load: 1.5")); err != nil {
		t.Fatal(err)
	}
	var u admin.UpstreamView
	f.get("/v1/upstreams/cart", &u)
	if u.BoundedLoad != 1.5 {
		t.Fatalf("reload not applied: bounded_load %v", u.BoundedLoad)
	}
	var ev admin.EndpointsView
	f.waitFor("the rebuilt upstream's snapshot", func() bool {
		f.get("/v1/upstreams/cart/endpoints", &ev)
		return len(ev.Endpoints) == 3
	})
	for _, e := range ev.Endpoints {
		if (e.ID == "cart-1") != (e.State == "drained") {
			t.Errorf("%s is %s after the reload", e.ID, e.State)
		}
	}
	for i := range 100 {
		if got := f.send(fmt.Sprintf("user-%d", i)); got == "cart-1" {
			t.Fatal("a request reached the drained cart-1 after the reload")
		}
	}
	var events admin.EventsView
	f.get("/v1/events", &events)
	found := false
	for _, e := range events.Events {
		if e.Kind == "reload" && strings.Contains(e.Reason, "1 carried over") {
			found = true
		}
	}
	if !found {
		t.Errorf("no reload event saying the override was carried over: %+v", events.Events)
	}
}

// A token file that is missing, empty or too short is a configuration error naming
// admin.token_file, and never shows the token.
func TestTokenFileChecked(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("secret-7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing"), short} {
		text := "admin: {listen: \"127.0.0.1:0\", token_file: " + path + "}\nregister: null\nupstreams:\n  - {name: cart, listen: \"127.0.0.1:0\"}\n" +
			"discovery: {kind: file, file: {path: " + path + "}}\n"
		cfg, err := config.Parse("t.yaml", []byte(text), os.LookupEnv)
		if err != nil {
			t.Fatal(err)
		}
		err = sidecar.Check(cfg)
		if err == nil || !strings.Contains(err.Error(), "t.yaml:1: admin.token_file") || strings.Contains(err.Error(), "secret-7") {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}
