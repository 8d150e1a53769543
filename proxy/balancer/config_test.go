package balancer

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	active := func(a ActiveConfig) Config { a.Path = "/healthz"; return Config{Active: a} }
	tests := []struct {
		name string
		give Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"every kind", Config{Kind: Maglev}, true},
		{"unknown kind", Config{Kind: "hash"}, false},
		{"negative vnodes", Config{VirtualNodes: -1}, false},
		{"bounded load 1.25", Config{BoundedLoad: 1.25}, true},
		{"bounded load 1", Config{BoundedLoad: 1}, false},
		{"bounded load NaN", Config{BoundedLoad: math.NaN()}, false},
		{"bounded load +Inf", Config{BoundedLoad: math.Inf(1)}, false},
		{"bounded load on round robin", Config{Kind: RoundRobin, BoundedLoad: 2}, false},
		{"panic disabled", Config{PanicThreshold: -1}, true},
		{"panic 101", Config{PanicThreshold: 101}, false},
		{"negative slow start", Config{SlowStart: -time.Second}, false},
		{"negative max requests", Config{MaxRequests: -1}, false},
		{"unknown no-key", Config{NoKey: "hash_ip"}, false},
		{"outlier disabled", Config{Outlier: OutlierConfig{Consecutive5xx: -1, ConsecutiveGatewayFailure: -1, ConnectFailureWindow: -1}}, true},
		{"max below base", Config{Outlier: OutlierConfig{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Second}}, false},
		{"negative base", Config{Outlier: OutlierConfig{BaseEjectionTime: -1}}, false},
		{"ejection percent 101", Config{Outlier: OutlierConfig{MaxEjectionPercent: 101}}, false},
		{"active defaults", active(ActiveConfig{}), true},
		{"active relative path", Config{Active: ActiveConfig{Path: "healthz"}}, false},
		{"active timeout above interval", active(ActiveConfig{Interval: time.Second, Timeout: 2 * time.Second}), false},
		{"active short interval", active(ActiveConfig{Interval: time.Second}), true},
		{"active status range", active(ActiveConfig{ExpectStatus: [2]int{200, 204}}), true},
		{"active status reversed", active(ActiveConfig{ExpectStatus: [2]int{299, 200}}), false},
		{"active status 600", active(ActiveConfig{ExpectStatus: [2]int{200, 600}}), false},
		{"active negative threshold", active(ActiveConfig{HealthyThreshold: -1}), false},
		{"active fields ignored without path", Config{Active: ActiveConfig{Timeout: -1}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Errorf("%v does not wrap ErrBadConfig", err)
			}
			if _, err2 := New("x", tt.give, Options{}); (err2 == nil) != tt.ok {
				t.Errorf("New: %v, want ok=%v", err2, tt.ok)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	u, err := New("x", Config{Active: ActiveConfig{Path: "/h", Interval: time.Second}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Kind: RingHash, VirtualNodes: 160, PanicThreshold: 50, NoKey: NoKeyRandom,
		Outlier: OutlierConfig{Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConnectFailureWindow: time.Second,
			BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10},
		Active: ActiveConfig{Path: "/h", Interval: time.Second, Timeout: time.Second, HealthyThreshold: 2,
			UnhealthyThreshold: 3, ExpectStatus: [2]int{200, 399}, Concurrency: 4},
	}
	if got := u.Config(); got != want {
		t.Errorf("defaults\n got %+v\nwant %+v", got, want)
	}
	if got := u.Name(); got != "x" {
		t.Errorf("Name() = %q", got)
	}
	// A long base ejection time raises the default maximum with it.
	u, _ = New("x", Config{Outlier: OutlierConfig{BaseEjectionTime: 10 * time.Minute}}, Options{})
	if got := u.Config().Outlier.MaxEjectionTime; got != 10*time.Minute {
		t.Errorf("max ejection time %v, want the base 10m", got)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ give, want string }{
		{Healthy.String(), "healthy"},
		{Warming.String(), "warming"},
		{Ejected.String(), "ejected"},
		{ActiveUnhealthy.String(), "active_unhealthy"},
		{Critical.String(), "critical"},
		{EndpointState(9).String(), "state(9)"},
		{FailNone.String(), "none"},
		{FailConnect.String(), "connect"},
		{FailTimeout.String(), "timeout"},
		{FailReset.String(), "reset"},
		{FailureKind(7).String(), "failure(7)"},
	}
	for _, tt := range tests {
		if tt.give != tt.want {
			t.Errorf("got %q, want %q", tt.give, tt.want)
		}
	}
}
