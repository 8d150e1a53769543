package balancer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Kind names a load-balancing policy.
type Kind string

// The policies. RingHash and Maglev hash a request key onto a table of endpoints; the others
// ignore the key.
const (
	RingHash           Kind = "ring_hash"
	Maglev             Kind = "maglev"
	RoundRobin         Kind = "round_robin"
	WeightedRoundRobin Kind = "weighted_round_robin"
	LeastRequest       Kind = "least_request"
	Random             Kind = "random"
)

// hashed reports whether k routes by a key hash.
func (k Kind) hashed() bool { return k == RingHash || k == Maglev }

// NoKeyPolicy says what a hash policy does with a request that has no hash key.
type NoKeyPolicy string

// The no-key policies.
const (
	// NoKeyRandom walks the table from a random point: weighted random, with the usual
	// fallbacks. The default.
	NoKeyRandom NoKeyPolicy = "random"
	// NoKeyRoundRobin takes the endpoints in table order, one request after another.
	NoKeyRoundRobin NoKeyPolicy = "round_robin"
	// NoKeyReject makes Pick.Next return ErrNoKey.
	NoKeyReject NoKeyPolicy = "reject"
)

// Config configures one upstream. The zero value of every field means its default, which New
// fills in; Upstream.Config returns the result.
type Config struct {
	// Kind is the policy; default RingHash.
	Kind Kind
	// VirtualNodes is the number of ring points per unit of weight (ring_hash); default 160.
	// It is reduced only for a ring that would exceed 4M points (maxRingPoints).
	VirtualNodes int
	// MaglevTableSize is the size of the maglev lookup table, a prime larger than the number
	// of endpoints; 0 means the hashring package's default.
	MaglevTableSize uint64
	// BoundedLoad, when > 1 (e.g. 1.25), caps each endpoint of a hash policy at BoundedLoad
	// times its weighted share of the upstream's in-flight requests; a request whose endpoint
	// is at its cap goes on to the next endpoint of its walk. 0 turns it off.
	BoundedLoad float64
	// PanicThreshold is the percentage of healthy endpoints (neither ejected nor failing
	// active checks) below which ejection and active health are ignored and every endpoint
	// takes traffic again. Default 50; a negative value disables panic mode.
	PanicThreshold float64
	// SlowStart, when > 0, makes an endpoint that joins the upstream after its first
	// snapshot, or comes back from ejection or from failing active checks, take a share of
	// its traffic that grows linearly from 10% to 100% over this window, under every policy
	// including the hash ones. 0 turns it off.
	SlowStart time.Duration
	// MaxRequests caps the in-flight requests of each endpoint; a request whose candidate is
	// at the cap goes on to the next one, and Pick.Next returns ErrOverloaded when none is
	// left. 0 means no cap.
	MaxRequests int64
	// NoKey says what the hash policies do with a request without a key; default NoKeyRandom.
	// The other policies ignore the key.
	NoKey NoKeyPolicy
	// Outlier configures passive outlier detection (Endpoint.Finish).
	Outlier OutlierConfig
	// Active configures active health checks (Upstream.Run); the zero value means none.
	Active ActiveConfig
}

// OutlierConfig configures passive outlier detection: ejecting an endpoint whose requests fail
// in a row.
type OutlierConfig struct {
	// Consecutive5xx ejects an endpoint after this many failed attempts in a row, counting
	// every 5xx status and every connect failure, timeout and reset. Default 5; negative
	// disables.
	Consecutive5xx int
	// ConsecutiveGatewayFailure ejects an endpoint after this many gateway failures in a row:
	// 502, 503, 504, connect failures, timeouts and resets. Default 5; negative disables.
	ConsecutiveGatewayFailure int
	// ConnectFailureWindow ejects an endpoint at its second connect failure in a row when the
	// first was at least this long ago, so an endpoint that refuses connections stops getting
	// first tries quickly even when it sees few requests. Default 1s; negative disables.
	ConnectFailureWindow time.Duration
	// BaseEjectionTime is the length of a first ejection; the n-th lasts n times as long, up
	// to MaxEjectionTime. An endpoint that has stayed in service for MaxEjectionTime since its
	// last return starts again from one. Default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length. Default 300s; at least BaseEjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent is the largest share of the upstream's endpoints that may be ejected
	// at once; one endpoint may always be ejected. Default 10.
	MaxEjectionPercent int
}

// ActiveConfig configures active health checks, run by Upstream.Run when Path is set. Every
// endpoint of the snapshot is probed, critical ones included, so that their verdict is ready
// when the registry brings them back.
type ActiveConfig struct {
	// Path is the HTTP path probed on every endpoint, e.g. "/healthz"; "" turns checks off.
	Path string
	// Interval from the end of one probe of an endpoint to the start of the next, jittered
	// by ±10%; default 10s. An endpoint is never probed twice at once.
	Interval time.Duration
	// Timeout of one probe, connect included; default 2s; at most Interval.
	Timeout time.Duration
	// HealthyThreshold is the number of passing probes in a row that bring an endpoint back;
	// default 2.
	HealthyThreshold int
	// UnhealthyThreshold is the number of failing probes in a row that take an endpoint out;
	// default 3.
	UnhealthyThreshold int
	// ExpectStatus is the inclusive range of statuses that pass; default [200, 399].
	ExpectStatus [2]int
	// Concurrency is the number of probe goroutines of the upstream; default 4.
	Concurrency int
	// Host is the Host header of the probes; "" means the endpoint's address.
	Host string
	// TLS, when set, makes the probes HTTPS with this configuration, as the endpoints' traffic
	// is (the same CA pool, client certificate and ServerName; an empty ServerName is the
	// endpoint's host). Nil probes in plain HTTP.
	TLS *tls.Config
}

// ErrBadConfig is wrapped by every error Config.Validate returns.
var ErrBadConfig = errors.New("bad balancer config")

// Validate reports whether c is usable. Zero values are valid: they mean the defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	switch c.Kind {
	case "", RingHash, Maglev, RoundRobin, WeightedRoundRobin, LeastRequest, Random:
	default:
		bad("unknown kind %q", c.Kind)
	}
	if c.VirtualNodes < 0 {
		bad("virtual nodes %d, want >= 0", c.VirtualNodes)
	}
	if math.IsNaN(c.BoundedLoad) || math.IsInf(c.BoundedLoad, 0) ||
		c.BoundedLoad < 0 || (c.BoundedLoad > 0 && c.BoundedLoad <= 1) {
		bad("bounded load %v, want 0 (off) or > 1", c.BoundedLoad)
	}
	if c.BoundedLoad > 0 && c.Kind != "" && !c.Kind.hashed() {
		bad("bounded load applies to %s and %s only, not %s", RingHash, Maglev, c.Kind)
	}
	if math.IsNaN(c.PanicThreshold) || c.PanicThreshold > 100 {
		bad("panic threshold %v, want a percentage", c.PanicThreshold)
	}
	if c.SlowStart < 0 {
		bad("slow start %v, want >= 0", c.SlowStart)
	}
	if c.MaxRequests < 0 {
		bad("max requests %d, want >= 0", c.MaxRequests)
	}
	switch c.NoKey {
	case "", NoKeyRandom, NoKeyRoundRobin, NoKeyReject:
	default:
		bad("unknown no-key policy %q", c.NoKey)
	}
	errs = append(errs, c.Outlier.validate()...)
	errs = append(errs, c.Active.validate()...)
	return errors.Join(errs...)
}

func (o OutlierConfig) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: outlier: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if o.BaseEjectionTime < 0 || o.MaxEjectionTime < 0 {
		bad("ejection times must be >= 0")
	}
	if o.BaseEjectionTime > 0 && o.MaxEjectionTime > 0 && o.MaxEjectionTime < o.BaseEjectionTime {
		bad("max ejection time %v below base ejection time %v", o.MaxEjectionTime, o.BaseEjectionTime)
	}
	if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		bad("max ejection percent %d, want 0..100", o.MaxEjectionPercent)
	}
	return errs
}

func (a ActiveConfig) validate() []error {
	if a.Path == "" {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: active: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if !strings.HasPrefix(a.Path, "/") {
		bad("path %q must start with /", a.Path)
	}
	if a.Interval < 0 || a.Timeout < 0 {
		bad("interval and timeout must be >= 0")
	}
	d := a.withDefaults()
	if d.Timeout > d.Interval {
		bad("timeout %v above interval %v", d.Timeout, d.Interval)
	}
	if a.HealthyThreshold < 0 || a.UnhealthyThreshold < 0 || a.Concurrency < 0 {
		bad("thresholds and concurrency must be >= 0")
	}
	if a.ExpectStatus != [2]int{} &&
		(a.ExpectStatus[0] < 100 || a.ExpectStatus[1] > 599 || a.ExpectStatus[0] > a.ExpectStatus[1]) {
		bad("expected status range %v, want 100 <= low <= high <= 599", a.ExpectStatus)
	}
	return errs
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Kind == "" {
		c.Kind = RingHash
	}
	if c.VirtualNodes == 0 {
		c.VirtualNodes = 160
	}
	if c.PanicThreshold == 0 {
		c.PanicThreshold = 50
	}
	if c.NoKey == "" {
		c.NoKey = NoKeyRandom
	}
	c.Outlier = c.Outlier.withDefaults()
	if c.Active.Path != "" {
		c.Active = c.Active.withDefaults()
	}
	return c
}

func (o OutlierConfig) withDefaults() OutlierConfig {
	if o.Consecutive5xx == 0 {
		o.Consecutive5xx = 5
	}
	if o.ConsecutiveGatewayFailure == 0 {
		o.ConsecutiveGatewayFailure = 5
	}
	if o.ConnectFailureWindow == 0 {
		o.ConnectFailureWindow = time.Second
	}
	if o.BaseEjectionTime == 0 {
		o.BaseEjectionTime = 30 * time.Second
	}
	if o.MaxEjectionTime == 0 {
		o.MaxEjectionTime = max(300*time.Second, o.BaseEjectionTime)
	}
	if o.MaxEjectionPercent == 0 {
		o.MaxEjectionPercent = 10
	}
	return o
}

func (a ActiveConfig) withDefaults() ActiveConfig {
	if a.Interval == 0 {
		a.Interval = 10 * time.Second
	}
	if a.Timeout == 0 {
		a.Timeout = min(2*time.Second, a.Interval)
	}
	if a.HealthyThreshold == 0 {
		a.HealthyThreshold = 2
	}
	if a.UnhealthyThreshold == 0 {
		a.UnhealthyThreshold = 3
	}
	if a.ExpectStatus == [2]int{} {
		a.ExpectStatus = [2]int{200, 399}
	}
	if a.Concurrency == 0 {
		a.Concurrency = 4
	}
	return a
}
