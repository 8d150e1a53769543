package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Registration describes the local app as it is put into the registry.
type Registration struct {
	// ID identifies this instance; unique within the service (for example "cart-" + pod name).
	ID string
	// Service is the name callers discover it by.
	Service string
	// Address is the IP or host the app listens on, as other instances should dial it.
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	// Weights are the ring weights while passing and while warning; 0 means the registry's
	// default (1 and 1).
	Weights Weights
	Check   Check
	// TTL is the lease time of an etcd registration (default 10s): a crashed instance disappears
	// by itself this long after its last keep-alive.
	TTL time.Duration
}

// Weights are an instance's ring weights by health.
type Weights struct {
	Passing int
	Warning int
}

// Check is the registry's health check on the app.
type Check struct {
	// HTTP is the URL of the app's health endpoint; "" registers no check.
	HTTP     string
	Interval time.Duration
	Timeout  time.Duration
	// DeregisterAfter removes an instance whose check stays critical this long (Consul's
	// DeregisterCriticalServiceAfter); 0 never does.
	DeregisterAfter time.Duration
}

// ErrBadRegistration is wrapped by every error Registration.Validate returns.
var ErrBadRegistration = errors.New("bad registration")

// Validate checks the fields a registry needs.
func (r Registration) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRegistration, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Service == "":
		return bad("empty service name")
	case r.ID == "":
		return bad("service %q: empty id", r.Service)
	case r.Address == "":
		return bad("service %q: empty address", r.Service)
	case r.Port < 1 || r.Port > 65535:
		return bad("service %q: port %d, want 1..65535", r.Service, r.Port)
	case r.Weights.Passing < 0 || r.Weights.Warning < 0:
		return bad("service %q: negative weight", r.Service)
	case r.TTL < 0:
		return bad("service %q: negative ttl", r.Service)
	}
	if r.Check.HTTP != "" {
		u, err := url.Parse(r.Check.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return bad("service %q: check url %q, want http(s)://host:port/path", r.Service, r.Check.HTTP)
		}
		if r.Check.Interval < 0 || r.Check.Timeout < 0 || r.Check.DeregisterAfter < 0 {
			return bad("service %q: negative check duration", r.Service)
		}
	}
	return nil
}

// Registrar puts the local app into a registry and takes it out again.
type Registrar interface {
	// Run registers the app and keeps it registered until ctx ends, registering it again when
	// the registry has forgotten it (a Consul agent restarted without state, a lost etcd lease).
	// It blocks. It does not deregister when ctx ends: call Deregister. It returns ctx.Err()
	// after ctx ends, an error at once on a bad configuration, and may return early after a
	// Deregister (the Consul registrar returns its ErrDeregistered).
	Run(ctx context.Context) error
	// Deregister removes the registration. It is safe to call concurrently with Run or after
	// Run has returned, and more than once.
	Deregister(ctx context.Context) error
}
