package etcd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
)

func TestDecodeEntry(t *testing.T) {
	tests := []struct {
		name  string
		give  string
		want  discovery.Endpoint
		isBad bool
	}{
		{name: "minimal", give: `{"address":"10.0.0.5","port":8080}`,
			want: discovery.Endpoint{ID: "e", Address: "10.0.0.5:8080", Weight: 1}},
		{name: "every field", give: `{"address":"10.0.0.5","port":8080,"weight":2,"tags":["a","b"],"meta":{"k":"v"},"health":"Critical","zone":"z"}`,
			want: discovery.Endpoint{ID: "e", Address: "10.0.0.5:8080", Weight: 2, Health: discovery.HealthCritical,
				Zone: "z", Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}}},
		{name: "ipv6", give: `{"address":"fd00::5","port":80}`,
			want: discovery.Endpoint{ID: "e", Address: "[fd00::5]:80", Weight: 1}},
		{name: "host name", give: `{"address":"cart-1.cart.svc.cluster.local.","port":80}`,
			want: discovery.Endpoint{ID: "e", Address: "cart-1.cart.svc.cluster.local.:80", Weight: 1}},
		{name: "unknown fields ignored", give: `{"address":"10.0.0.5","port":80,"version":3}`,
			want: discovery.Endpoint{ID: "e", Address: "10.0.0.5:80", Weight: 1}},
		{name: "max weight", give: `{"address":"10.0.0.5","port":80,"weight":10000}`,
			want: discovery.Endpoint{ID: "e", Address: "10.0.0.5:80", Weight: 10000}},
		{name: "bad json", give: `{"address":`, isBad: true},
		{name: "empty value", give: ``, isBad: true},
		{name: "null", give: `null`, isBad: true},
		{name: "array", give: `[]`, isBad: true},
		{name: "trailing garbage", give: `{"address":"10.0.0.5","port":80} x`, isBad: true},
		{name: "no port", give: `{"address":"10.0.0.5"}`, isBad: true},
		{name: "port 0", give: `{"address":"10.0.0.5","port":0}`, isBad: true},
		{name: "port 65536", give: `{"address":"10.0.0.5","port":65536}`, isBad: true},
		{name: "port float", give: `{"address":"10.0.0.5","port":80.5}`, isBad: true},
		{name: "empty address", give: `{"address":"","port":80}`, isBad: true},
		{name: "address with port", give: `{"address":"10.0.0.5:80","port":80}`, isBad: true},
		{name: "address with space", give: `{"address":"10.0.0.5 x","port":80}`, isBad: true},
		{name: "address url", give: `{"address":"http://x","port":80}`, isBad: true},
		{name: "bracketed ipv6", give: `{"address":"[fd00::5]","port":80}`, isBad: true},
		{name: "unknown health", give: `{"address":"10.0.0.5","port":80,"health":"sick"}`, isBad: true},
		{name: "negative weight", give: `{"address":"10.0.0.5","port":80,"weight":-1}`, isBad: true},
		{name: "weight too big", give: `{"address":"10.0.0.5","port":80,"weight":10001}`, isBad: true},
		{name: "tags not strings", give: `{"address":"10.0.0.5","port":80,"tags":[1]}`, isBad: true},
		{name: "meta not strings", give: `{"address":"10.0.0.5","port":80,"meta":{"k":1}}`, isBad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEntry("e", []byte(tt.give))
			if tt.isBad {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("decodeEntry(%s) = %+v, %v; want ErrMalformed", tt.give, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeEntry(%s): %v", tt.give, err)
			}
			if !equalEndpoint(got, tt.want) {
				t.Fatalf("decodeEntry(%s) = %+v, want %+v", tt.give, got, tt.want)
			}
		})
	}
}

func TestEndpointID(t *testing.T) {
	const p = "/ringside/services/cart/"
	tests := []struct {
		give, want string
		isBad      bool
	}{
		{give: p + "cart-1", want: "cart-1"},
		{give: p + "a.b-c_d", want: "a.b-c_d"},
		{give: p, isBad: true},
		{give: p + "a/b", isBad: true},
		{give: p + "a/", isBad: true},
		{give: "/ringside/services/cart2/x", isBad: true},
	}
	for _, tt := range tests {
		got, err := endpointID(p, tt.give)
		if tt.isBad != (err != nil) || got != tt.want {
			t.Errorf("endpointID(%q) = %q, %v; want %q, bad=%t", tt.give, got, err, tt.want, tt.isBad)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("endpointID(%q): %v does not wrap ErrMalformed", tt.give, err)
		}
	}
}

// What the registrar writes, the source reads back as the same instance.
func TestEncodeEntryRoundTrip(t *testing.T) {
	reg := discovery.Registration{ID: "cart-1", Service: "cart", Address: "fd00::1", Port: 9000,
		Tags: []string{"v2"}, Meta: map[string]string{"k": "v"}, Weights: discovery.Weights{Passing: 5, Warning: 2}}
	tests := []struct {
		health discovery.Health
		weight int
	}{
		{discovery.HealthPassing, 5},
		{discovery.HealthWarning, 2},
		{discovery.HealthCritical, 5},
	}
	for _, tt := range tests {
		b, err := encodeEntry(reg, tt.health)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEntry(reg.ID, b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		want := discovery.Endpoint{ID: "cart-1", Address: "[fd00::1]:9000", Weight: tt.weight, Health: tt.health,
			Tags: reg.Tags, Meta: reg.Meta}
		if !equalEndpoint(got, want) {
			t.Errorf("%s: round trip gave %+v, want %+v", tt.health, got, want)
		}
	}
}

// FuzzDecodeEntry: any key and value either decode to a routable endpoint or are refused with
// ErrMalformed — never a panic, never an endpoint the proxy could not dial.
func FuzzDecodeEntry(f *testing.F) {
	seeds := []string{
		`{"address":"10.0.0.5","port":8080}`,
		`{"address":"10.0.0.5","port":8080,"weight":2,"tags":["a"],"meta":{"k":"v"},"health":"warning","zone":"z"}`,
		`{"address":"fd00::5%eth0","port":1}`,
		`{"address":"host.example.","port":65535,"weight":10000}`,
		`{"address":"10.0.0.5:80","port":80}`,
		`{"address":"","port":80}`,
		`{"port":1e3}`,
		`null`,
		`{"address":"a","port":80,"health":"PASSING "}`,
		"\xff",
	}
	for _, s := range seeds {
		f.Add("/ringside/services/cart/e1", []byte(s))
	}
	f.Add("/ringside/services/cart/a/b", []byte(seeds[0]))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		id, err := endpointID("/ringside/services/cart/", key)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("endpointID(%q): %v does not wrap ErrMalformed", key, err)
			}
			return
		}
		if id == "" || strings.Contains(id, "/") {
			t.Fatalf("endpointID(%q) = %q", key, id)
		}
		ep, err := decodeEntry(id, value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decodeEntry(%q): %v does not wrap ErrMalformed", value, err)
			}
			return
		}
		if err := ep.Validate(); err != nil {
			t.Fatalf("decodeEntry(%q) = %+v, which is not routable: %v", value, ep, err)
		}
		if ep.Weight > MaxWeight || ep.Health > discovery.HealthCritical || ep.ID != id {
			t.Fatalf("decodeEntry(%q) = %+v", value, ep)
		}
		// It must also survive a snapshot: deep copy and comparison.
		s := discovery.NewSnapshot("cart", 1, []discovery.Endpoint{ep}, time.Time{})
		if !s.Equal(discovery.NewSnapshot("cart", 2, []discovery.Endpoint{ep}, time.Time{})) {
			t.Fatalf("snapshot of %+v is not equal to itself", ep)
		}
	})
}

func equalEndpoint(a, b discovery.Endpoint) bool {
	return discovery.NewSnapshot("s", 0, []discovery.Endpoint{a}, time.Time{}).Equal(
		discovery.NewSnapshot("s", 0, []discovery.Endpoint{b}, time.Time{}))
}
