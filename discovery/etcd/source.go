package etcd

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ringside-proxy/ringside/discovery"
)

// ErrBadServices is wrapped by the error Watch returns for an unusable list of services.
var ErrBadServices = errors.New("bad services to watch")

// Source watches services in etcd (see the package doc for the key layout).
//
// Each service has its own list-then-watch loop on its own gRPC stream, all over one client
// connection per Watch call. A single watch of the whole prefix would be fewer requests, but
// would make every sidecar read and decode every change of every service in the cluster,
// including the many it never calls, and one compaction or outage would relist them all.
//
// A Source holds configuration only and is safe for concurrent use; each Watch call makes its
// own connection and closes it before returning.
type Source struct {
	cfg     Config
	cc      clientv3.Config
	logger  *zap.Logger
	obs     discovery.Observer
	limited limitedLogger

	// afterList, when set by a test, runs after each list has been published and before the
	// watch starts: the window in which a compaction makes the watch fail.
	afterList func(service string)
}

var _ discovery.Source = (*Source)(nil)

// NewSource checks cfg and reads its TLS files; it does not connect. A nil logger logs nothing;
// a nil obs observes nothing.
func NewSource(cfg Config, logger *zap.Logger, obs discovery.Observer) (*Source, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if obs == nil {
		obs = discovery.NopObserver{}
	}
	cc, err := cfg.clientConfig(logger)
	if err != nil {
		return nil, err
	}
	return &Source{
		cfg:     cfg,
		cc:      cc,
		logger:  logger,
		obs:     obs,
		limited: newLimitedLogger(logger),
	}, nil
}

// Watch implements discovery.Source. It returns at once with an error wrapping ErrBadServices
// when services is empty, names a service twice or holds a name that is not one key segment,
// or when update is nil. Otherwise it connects (retrying until etcd answers, if authentication
// needs it), runs one goroutine per service, and returns ctx.Err() once ctx has ended, all of
// them have exited and the connection is closed.
//
// update is called from one discovery.Pacer goroutine per service, paced by the Config's
// Pacing (removals held for a while after a service is listed again, bursts coalesced,
// snapshots equal to the last one dropped): never concurrently for one service, possibly
// concurrently for different services.
func (s *Source) Watch(ctx context.Context, services []string, update discovery.UpdateFunc) error {
	if err := validateServices(services); err != nil {
		return err
	}
	if update == nil {
		return fmt.Errorf("%w: nil update func", ErrBadServices)
	}
	cli, err := connect(ctx, s.cc, s.cfg.Backoff, func(err error) {
		for _, svc := range services {
			s.obs.Failed(svc, err)
		}
		s.limited.log(zap.WarnLevel, "connect", "etcd connect failed; retrying", zap.Error(err))
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	s.limited.reset("connect")

	prefix := s.cfg.prefix()
	var g errgroup.Group
	for _, svc := range services {
		p := discovery.NewPacer(s.cfg.Pacing, update)
		w := &serviceWatch{
			src:   s,
			cli:   cli,
			pacer: p,
			state: newServiceState(prefix, svc, s.malformed(svc)),
		}
		g.Go(func() error { return w.run(ctx) })
		g.Go(func() error { return p.Run(ctx) })
	}
	_ = g.Wait() // every loop returns ctx.Err() and nothing else
	return ctx.Err()
}

// malformed returns the report for a skipped entry of service: one log line and one
// Observer.Malformed per key version (serviceState makes sure of the "once").
func (s *Source) malformed(service string) func(key string, err error) {
	return func(key string, err error) {
		s.obs.Malformed(service, key, err)
		s.logger.Warn("etcd entry skipped",
			zap.String("service", service), zap.String("key", key), zap.Error(err))
	}
}

func validateServices(services []string) error {
	if len(services) == 0 {
		return fmt.Errorf("%w: none given", ErrBadServices)
	}
	seen := make(map[string]bool, len(services))
	for _, svc := range services {
		if err := validateName("service", svc); err != nil {
			return fmt.Errorf("%w: %w", ErrBadServices, err)
		}
		if seen[svc] {
			return fmt.Errorf("%w: %q named twice", ErrBadServices, svc)
		}
		seen[svc] = true
	}
	return nil
}
