package discovery

import (
	"errors"
	"testing"
	"time"
)

func TestHealthString(t *testing.T) {
	tests := []struct {
		give Health
		want string
	}{
		{HealthPassing, "passing"},
		{HealthWarning, "warning"},
		{HealthCritical, "critical"},
		{Health(7), "health(7)"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("Health(%d).String() = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestParseHealth(t *testing.T) {
	tests := []struct {
		give    string
		want    Health
		wantErr bool
	}{
		{"passing", HealthPassing, false},
		{"", HealthPassing, false},
		{"warning", HealthWarning, false},
		{"critical", HealthCritical, false},
		{"CRITICAL", HealthCritical, false},
		{" Warning\n", HealthWarning, false},
		{"sick", HealthCritical, true},
		{"pass", HealthCritical, true},
		{"health(7)", HealthCritical, true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseHealth(tt.give)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseHealth(%q) = %v, %v; want %v, error %v", tt.give, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadHealth) {
				t.Errorf("error %v does not wrap ErrBadHealth", err)
			}
		})
	}
	for _, h := range []Health{HealthPassing, HealthWarning, HealthCritical} {
		if got, err := ParseHealth(h.String()); err != nil || got != h {
			t.Errorf("ParseHealth(%v.String()) = %v, %v", h, got, err)
		}
	}
}

func TestValidateAddress(t *testing.T) {
	tests := []struct {
		give string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"cart.internal:1", true},
		{"[::1]:65535", true},
		{"[fe80::1%eth0]:443", true},
		{"", false},
		{"127.0.0.1", false},
		{"::1:80", false},
		{"[::1]", false},
		{":80", false},
		{"[]:80", false},
		{"host:", false},
		{"host:0", false},
		{"host:65536", false},
		{"host:-1", false},
		{"host:http", false},
		{"host:80 ", false},
		{"a:b:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if err := ValidateAddress(tt.give); (err == nil) != tt.ok {
				t.Errorf("ValidateAddress(%q) = %v, want ok %v", tt.give, err, tt.ok)
			}
		})
	}
}

func TestEndpointValidate(t *testing.T) {
	good := Endpoint{ID: "cart-1", Address: "10.0.0.1:8080", Weight: 1}
	with := func(f func(*Endpoint)) Endpoint {
		e := good
		f(&e)
		return e
	}
	tests := []struct {
		name string
		give Endpoint
		ok   bool
	}{
		{"good", good, true},
		{"heavy and unhealthy", with(func(e *Endpoint) { e.Weight, e.Health = 1000, HealthCritical }), true},
		{"empty id", with(func(e *Endpoint) { e.ID = "" }), false},
		{"empty address", with(func(e *Endpoint) { e.Address = "" }), false},
		{"no port", with(func(e *Endpoint) { e.Address = "10.0.0.1" }), false},
		{"port out of range", with(func(e *Endpoint) { e.Address = "10.0.0.1:70000" }), false},
		{"zero weight", with(func(e *Endpoint) { e.Weight = 0 }), false},
		{"negative weight", with(func(e *Endpoint) { e.Weight = -1 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadEndpoint) {
				t.Errorf("error %v does not wrap ErrBadEndpoint", err)
			}
		})
	}
}

func TestRegistrationValidate(t *testing.T) {
	good := Registration{ID: "cart-1", Service: "cart", Address: "10.0.0.1", Port: 8080,
		Check: Check{HTTP: "http://10.0.0.1:8080/healthz", Interval: time.Second, Timeout: time.Second}}
	with := func(f func(*Registration)) Registration {
		r := good
		f(&r)
		return r
	}
	tests := []struct {
		name string
		give Registration
		ok   bool
	}{
		{"good", good, true},
		{"no check", with(func(r *Registration) { r.Check = Check{} }), true},
		{"https check", with(func(r *Registration) { r.Check.HTTP = "https://cart:8443/health" }), true},
		{"weights and ttl", with(func(r *Registration) { r.Weights, r.TTL = Weights{Passing: 10, Warning: 1}, time.Minute }), true},
		{"empty service", with(func(r *Registration) { r.Service = "" }), false},
		{"empty id", with(func(r *Registration) { r.ID = "" }), false},
		{"empty address", with(func(r *Registration) { r.Address = "" }), false},
		{"port zero", with(func(r *Registration) { r.Port = 0 }), false},
		{"port too big", with(func(r *Registration) { r.Port = 65536 }), false},
		{"negative passing weight", with(func(r *Registration) { r.Weights.Passing = -1 }), false},
		{"negative warning weight", with(func(r *Registration) { r.Weights.Warning = -1 }), false},
		{"negative ttl", with(func(r *Registration) { r.TTL = -time.Second }), false},
		{"check not a url", with(func(r *Registration) { r.Check.HTTP = "::" }), false},
		{"check not http", with(func(r *Registration) { r.Check.HTTP = "tcp://10.0.0.1:8080" }), false},
		{"check without host", with(func(r *Registration) { r.Check.HTTP = "http:///healthz" }), false},
		{"negative interval", with(func(r *Registration) { r.Check.Interval = -1 }), false},
		{"negative timeout", with(func(r *Registration) { r.Check.Timeout = -1 }), false},
		{"negative deregister", with(func(r *Registration) { r.Check.DeregisterAfter = -1 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadRegistration) {
				t.Errorf("error %v does not wrap ErrBadRegistration", err)
			}
		})
	}
}
