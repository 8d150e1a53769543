// Package consul discovers service instances in Consul and registers the local app in it.
//
// A Source watches services through Consul's health API: one goroutine per service runs
// blocking queries on /v1/health/service/<name>, maps the entries onto discovery.Endpoints
// (see EndpointID and the Config's HealthPolicy) and publishes every change as a whole,
// immutable discovery.Snapshot. While Consul cannot be reached, the last snapshot stays in
// force; errors are logged at a limited rate and counted through the discovery.Observer.
//
// A Registrar registers the app with the local Consul agent, with an HTTP health check, and
// registers it again when the agent forgets it (an agent restarted without its state).
//
// Every watched service holds one HTTP connection to the agent. Consul limits connections
// per client address (limits.http_max_conns_per_client, 200 by default): raise that limit on
// agents whose sidecars watch more than about 150 services.
package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ringside-proxy/ringside/discovery"
)

// Source is a discovery.Source reading Consul's health API.
//
// A Source is safe for concurrent use; several Watch calls may run at once, each with its
// own goroutines.
type Source struct {
	apiClient
	logger  *zap.Logger
	obs     discovery.Observer
	limiter *discovery.LogLimiter
	// unreachable is set while queries fail for want of a connection, so that the recovery
	// is logged once for all services.
	unreachable atomic.Bool
}

var _ discovery.Source = (*Source)(nil)

// ErrBadServices is wrapped by the error Watch returns for an unusable list of services.
var ErrBadServices = errors.New("consul: bad service list")

// NewSource returns a Source for cfg, whose zero fields are taken from the environment as
// api.DefaultConfig() does (see Config). A nil logger logs nothing; a nil obs observes
// nothing. It fails only on a bad configuration: it does not contact Consul.
func NewSource(cfg Config, logger *zap.Logger, obs discovery.Observer) (*Source, error) {
	c, err := newAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if obs == nil {
		obs = discovery.NopObserver{}
	}
	return &Source{
		apiClient: c,
		logger:    logger,
		obs:       obs,
		limiter:   discovery.NewLogLimiter(c.cfg.ErrorLogInterval),
	}, nil
}

// Watch watches services until ctx ends; see discovery.Source. It runs two goroutines per
// service, the query loop and its discovery.Pacer, and calls update from the pacer: never
// concurrently for one service, possibly concurrently for different ones, and never after
// Watch has returned. Snapshots are paced by the Config's Pacing: removals held while an
// agent back from an outage or a reset fills up again, bursts coalesced, and a snapshot
// equal to the last one delivered for its service dropped.
//
// Watch returns ctx.Err() once every goroutine has exited, or at once an error wrapping
// ErrBadServices for an empty list, an empty, duplicate or unusable name, or a nil update.
func (s *Source) Watch(ctx context.Context, services []string, update discovery.UpdateFunc) error {
	if err := checkServices(services); err != nil {
		return err
	}
	if update == nil {
		return fmt.Errorf("%w: nil update func", ErrBadServices)
	}
	defer s.transport.CloseIdleConnections()
	s.logger.Info("consul watch started",
		zap.Int("services", len(services)),
		zap.String("datacenter", s.cfg.Datacenter),
		zap.Stringer("health_policy", s.cfg.Health))
	var g errgroup.Group
	for _, name := range services {
		p := discovery.NewPacer(s.cfg.Pacing, update)
		w := newServiceWatch(s, name, p.Offer)
		g.Go(func() error { return w.run(ctx) })
		g.Go(func() error { _ = p.Run(ctx); return nil })
	}
	// The loops return nil, and only once ctx has ended: registry errors are retried, not
	// returned. Waiting joins them all before Watch returns.
	_ = g.Wait()
	s.logger.Info("consul watch stopped", zap.Int("services", len(services)))
	return ctx.Err()
}

// checkServices refuses what cannot be watched: no services, an empty or duplicate name (two
// loops of one service would call update concurrently for it), or a name that would change
// the meaning of the query's URL path.
func checkServices(services []string) error {
	if len(services) == 0 {
		return fmt.Errorf("%w: no services", ErrBadServices)
	}
	seen := make(map[string]struct{}, len(services))
	for _, name := range services {
		if name == "" {
			return fmt.Errorf("%w: empty service name", ErrBadServices)
		}
		if strings.ContainsAny(name, "/?#% \t\r\n") {
			return fmt.Errorf("%w: service name %q has a character Consul's HTTP API cannot take", ErrBadServices, name)
		}
		if _, dup := seen[name]; dup {
			return fmt.Errorf("%w: service %q listed twice", ErrBadServices, name)
		}
		seen[name] = struct{}{}
	}
	return nil
}
