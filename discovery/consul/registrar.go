package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// defaultCheckInterval is the interval of the HTTP check when the Registration gives none
// (Consul requires one).
const defaultCheckInterval = 10 * time.Second

// ErrDeregistered is returned by Run on a Registrar whose Deregister has been called.
var ErrDeregistered = errors.New("consul: registrar was deregistered")

// Registrar is a discovery.Registrar that registers the app with the local Consul agent.
//
// Run and Deregister are safe for concurrent use; registering and deregistering are
// serialised, so a registration Run has in flight cannot land after Deregister.
// Deregister is final: once called, Run registers nothing any more and returns
// ErrDeregistered.
type Registrar struct {
	apiClient
	logger  *zap.Logger
	limiter *discovery.LogLimiter
	id      string
	def     *api.AgentServiceRegistration // never modified after NewRegistrar

	mu           sync.Mutex // held across each request that reads or changes the agent's state
	deregistered bool
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar returns a Registrar of reg with the agent cfg names (see Config; the
// Source-only fields are ignored). A nil logger logs nothing. It fails on a bad
// configuration or registration, and does not contact Consul.
func NewRegistrar(cfg Config, reg discovery.Registration, logger *zap.Logger) (*Registrar, error) {
	if err := reg.Validate(); err != nil {
		return nil, fmt.Errorf("consul registrar: %w", err)
	}
	c, err := newAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Registrar{
		apiClient: c,
		logger:    logger.With(zap.String("service", reg.Service), zap.String("service_id", reg.ID)),
		limiter:   discovery.NewLogLimiter(c.cfg.ErrorLogInterval),
		id:        reg.ID,
		def:       registration(reg),
	}, nil
}

// registration returns the agent's form of reg: weights of 0 become Consul's default of 1,
// and an HTTP check without an interval gets one of 10s.
func registration(reg discovery.Registration) *api.AgentServiceRegistration {
	def := &api.AgentServiceRegistration{
		ID:      reg.ID,
		Name:    reg.Service,
		Address: reg.Address,
		Port:    reg.Port,
		Tags:    append([]string(nil), reg.Tags...),
	}
	if reg.Meta != nil {
		def.Meta = make(map[string]string, len(reg.Meta))
		for k, v := range reg.Meta {
			def.Meta[k] = v
		}
	}
	if w := reg.Weights; w.Passing != 0 || w.Warning != 0 {
		def.Weights = &api.AgentWeights{Passing: max(w.Passing, 1), Warning: max(w.Warning, 1)}
	}
	if c := reg.Check; c.HTTP != "" {
		interval := c.Interval
		if interval == 0 {
			interval = defaultCheckInterval
		}
		check := &api.AgentServiceCheck{
			Name:     "ringside: " + reg.Service + " health",
			HTTP:     c.HTTP,
			Method:   http.MethodGet,
			Interval: interval.String(),
		}
		if c.Timeout > 0 {
			check.Timeout = c.Timeout.String()
		}
		if c.DeregisterAfter > 0 {
			check.DeregisterCriticalServiceAfter = c.DeregisterAfter.String()
		}
		def.Check = check
	}
	return def
}

// Run registers the app, then every RegistrationInterval checks that the agent still has it
// and registers it again when not (an agent restarted without its state). Failures are
// logged at a limited rate and retried with backoff. Run blocks until ctx ends and returns
// ctx.Err(); it does not deregister. Once Deregister has been called, Run returns
// ErrDeregistered: at once when called afterwards, or when it next checks the registration
// (within RegistrationInterval, or the backoff delay while failing) when Deregister is called
// while it runs.
func (r *Registrar) Run(ctx context.Context) error {
	r.mu.Lock()
	done := r.deregistered
	r.mu.Unlock()
	if done {
		return ErrDeregistered
	}
	defer r.transport.CloseIdleConnections()
	registered, retries := false, discovery.Retries{Backoff: r.cfg.Backoff}
	for {
		err := r.ensure(ctx, registered)
		if errors.Is(err, ErrDeregistered) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := r.cfg.RegistrationInterval
		switch {
		case err != nil:
			// While the agent is down, retry at a short interval, so the app is registered
			// again soon after the agent is back, before the callers' settle window ends.
			delay = retries.Failed(unreachable(err))
			if ok, suppressed := r.limiter.Allow("register"); ok {
				r.logger.Warn("consul registration failed; retrying",
					zap.Error(err), zap.Int("failures", retries.Failures()),
					zap.Int("suppressed", suppressed), zap.Duration("retry_in", delay))
			}
		case retries.Failures() > 0:
			r.limiter.Reset("register")
			r.logger.Info("consul registration restored", zap.Int("failures", retries.Failures()))
			retries.Succeeded()
			registered = true
		default:
			registered = true
		}
		if discovery.Sleep(ctx, delay) != nil {
			return ctx.Err()
		}
	}
}

// ensure registers the app, unless known is true and the agent still has it. It returns
// ErrDeregistered once Deregister has been called.
func (r *Registrar) ensure(ctx context.Context, known bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deregistered {
		return ErrDeregistered
	}
	// The timeout starts once the lock is held: waiting for Deregister is not the request's.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if known {
		_, _, err := r.client.Agent().Service(r.id, (&api.QueryOptions{}).WithContext(ctx))
		if err == nil {
			return nil
		}
		if !isNotFound(err) {
			return fmt.Errorf("consul agent service %q: %w", r.id, err)
		}
		r.logger.Info("consul agent forgot the registration; registering again")
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(r.def, opts); err != nil {
		return fmt.Errorf("consul register %q: %w", r.id, err)
	}
	if !known {
		r.logger.Info("consul registered",
			zap.String("address", r.def.Address), zap.Int("port", r.def.Port))
	}
	return nil
}

// Deregister removes the registration from the agent, and stops Run from registering it
// again. It succeeds when the agent does not have the registration. It is safe to call
// concurrently with Run, after Run has returned, and more than once. It first waits for a
// request Run has in flight (at most RequestTimeout), then gives its own request a full
// RequestTimeout (or less, if ctx ends sooner).
func (r *Registrar) Deregister(ctx context.Context) error {
	defer r.transport.CloseIdleConnections()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deregistered = true
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	err := r.client.Agent().ServiceDeregisterOpts(r.id, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("consul deregister %q: %w", r.id, err)
	}
	r.logger.Info("consul deregistered")
	return nil
}

// isNotFound reports whether err is the agent's answer for an unknown service ID.
func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}
