package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// DefaultTTL is the lease TTL when Registration.TTL is zero.
const DefaultTTL = 10 * time.Second

// Errors about the registrar's own state.
var (
	ErrRunning = errors.New("etcd registrar: Run is already running")
	ErrClosed  = errors.New("etcd registrar: closed")
)

var (
	errLeaseLost    = errors.New("lease keep-alive stopped (lease expired or revoked)")
	errDeregistered = errors.New("deregistered")
)

// Registrar keeps the local app's entry in etcd under a lease: written by Run and kept alive,
// written again under a new lease when the lease is lost, removed at once by Deregister
// (which revokes the lease), and removed by etcd itself one TTL after the process dies.
//
// When the registration has an HTTP check, Run probes it every Check.Interval and writes the
// result into the entry's health: 2xx passing, 429 warning, anything else or no answer within
// Check.Timeout critical (as Consul maps them). The first probe runs before the first write, so an app that is
// not up yet is registered as critical, as Consul does; this delays the first write by at most
// the check timeout. Check.DeregisterAfter has no etcd equivalent and is ignored: a critical
// instance stays listed, as critical, until it stops or deregisters.
//
// Run, Deregister and Close are safe for concurrent use. Call Close when done, after Run has
// returned and after Deregister if the instance is going away.
type Registrar struct {
	cc      clientv3.Config
	reg     discovery.Registration
	key     string
	ttl     int64 // seconds
	timeout time.Duration
	backoff discovery.Backoff
	probe   *prober // nil without a check
	logger  *zap.Logger
	limited limitedLogger

	running atomic.Bool
	// deregistered is set by Deregister, once and for good, before it even waits for lock, and
	// stop is closed with it. Writers check deregistered under lock, so that nothing is written
	// after a Deregister that got the lock; keepAlive selects stop, so that the lease is no
	// longer kept alive after any Deregister, even one that could not revoke it.
	deregistered atomic.Bool
	stop         chan struct{}
	// closing ends Run when Close is called.
	closing context.Context
	close   context.CancelFunc

	// lock serializes every write to etcd with Deregister and Close, so that a Deregister is
	// never overtaken by a registration that started before it. A channel of one, so that
	// waiting for it respects a context.
	lock chan struct{}
	// Guarded by lock.
	cli    *clientv3.Client
	lease  clientv3.LeaseID // 0 when no lease of ours holds the key
	closed bool
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar checks cfg and reg and reads the TLS files; it does not connect. A nil logger
// logs nothing. The lease TTL is reg.TTL rounded up to whole seconds (etcd's unit), DefaultTTL
// when zero; etcd may raise a very short TTL to its own minimum.
func NewRegistrar(cfg Config, reg discovery.Registration, logger *zap.Logger) (*Registrar, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	if err := validateName("service", reg.Service); err != nil {
		return nil, fmt.Errorf("%w: %w", discovery.ErrBadRegistration, err)
	}
	if err := validateName("id", reg.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", discovery.ErrBadRegistration, err)
	}
	if err := validateHost(reg.Address); err != nil {
		return nil, fmt.Errorf("%w: service %q: %w", discovery.ErrBadRegistration, reg.Service, err)
	}
	if reg.Weights.Passing > MaxWeight || reg.Weights.Warning > MaxWeight {
		return nil, fmt.Errorf("%w: service %q: weight above %d", discovery.ErrBadRegistration, reg.Service, MaxWeight)
	}
	cc, err := cfg.clientConfig(logger)
	if err != nil {
		return nil, err
	}
	reg.Tags = append([]string(nil), reg.Tags...)
	if reg.Meta != nil {
		m := make(map[string]string, len(reg.Meta))
		for k, v := range reg.Meta {
			m[k] = v
		}
		reg.Meta = m
	}
	ttl := orDefault(reg.TTL, DefaultTTL)
	closing, cancel := context.WithCancel(context.Background())
	return &Registrar{
		cc:      cc,
		reg:     reg,
		key:     entryKey(cfg.prefix(), reg.Service, reg.ID),
		ttl:     int64((ttl + time.Second - 1) / time.Second),
		timeout: cfg.requestTimeout(),
		backoff: cfg.Backoff,
		probe:   newProber(reg.Check),
		logger:  logger,
		limited: newLimitedLogger(logger),
		closing: closing,
		close:   cancel,
		lock:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}, nil
}

// Key returns the etcd key the registrar writes.
func (r *Registrar) Key() string { return r.key }

// Run implements discovery.Registrar. It connects (retrying until etcd answers), then writes
// the entry under a new lease and keeps the lease alive; when the keep-alive stops (the lease
// expired while etcd was unreachable, or was revoked) it writes the entry again under a new
// lease, with backoff. After Deregister it writes nothing and waits for ctx. It returns
// ctx.Err() when ctx ends, ErrRunning if another Run is running, ErrClosed after Close.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.closing, cancel)()

	cli, err := r.connect(ctx)
	if err != nil {
		return err
	}
	health := discovery.HealthPassing
	if r.probe != nil {
		health = r.checkHealth(ctx, health)
	}
	failures := 0
	for {
		lease, err := r.register(ctx, cli, health)
		if errors.Is(err, errDeregistered) {
			<-ctx.Done()
			return r.runErr(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return r.runErr(ctx)
			}
			r.limited.log(zap.WarnLevel, "register", "etcd registration failed; retrying",
				zap.String("key", r.key), zap.Error(err))
		} else {
			r.registered(lease, failures)
			began := time.Now()
			health, err = r.keepAlive(ctx, cli, lease, health)
			if ctx.Err() != nil {
				return r.runErr(ctx)
			}
			if r.deregistered.Load() {
				<-ctx.Done()
				return r.runErr(ctx)
			}
			r.limited.log(zap.WarnLevel, "register", "etcd registration lost; registering again",
				zap.String("key", r.key), zap.Error(err))
			// A lease that lived a full TTL was a success: the next attempt need not wait long.
			if time.Since(began) >= time.Duration(r.ttl)*time.Second {
				failures = 0
			}
		}
		// While etcd cannot be reached, retry at a short interval: registered again soon
		// after etcd is back, the instance is there before the callers' settle window ends.
		delay := r.backoff.Delay(failures)
		if unreachable(err) {
			delay = r.backoff.UnreachableDelay(failures)
		}
		if err := discovery.Sleep(ctx, delay); err != nil {
			return r.runErr(ctx)
		}
		failures++
	}
}

// runErr is what Run returns once ctx has ended: ErrClosed if Close ended it.
func (r *Registrar) runErr(ctx context.Context) error {
	if r.closing.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}

// registered logs a first registration, or a registration again after trouble.
func (r *Registrar) registered(lease clientv3.LeaseID, failures int) {
	r.limited.reset("register")
	msg := "etcd registration written"
	if failures > 0 {
		msg = "etcd registration written again"
	}
	r.logger.Info(msg, zap.String("key", r.key),
		zap.String("lease", fmt.Sprintf("%x", int64(lease))), zap.Int64("ttl_seconds", r.ttl))
}

// connect makes the registrar's client, once.
func (r *Registrar) connect(ctx context.Context) (*clientv3.Client, error) {
	if err := r.acquire(ctx); err != nil {
		return nil, r.runErr(ctx)
	}
	cli, closed := r.cli, r.closed
	r.release()
	switch {
	case closed:
		return nil, ErrClosed
	case cli != nil:
		return cli, nil
	}
	cli, err := connect(ctx, r.cc, r.backoff, func(err error) {
		r.limited.log(zap.WarnLevel, "connect", "etcd connect failed; retrying", zap.Error(err))
	})
	if err != nil {
		return nil, r.runErr(ctx)
	}
	r.limited.reset("connect")
	if err := r.acquire(ctx); err != nil {
		_ = cli.Close()
		return nil, r.runErr(ctx)
	}
	defer r.release()
	if r.closed {
		_ = cli.Close()
		return nil, ErrClosed
	}
	r.cli = cli
	return cli, nil
}

// register grants a lease and writes the entry under it.
func (r *Registrar) register(ctx context.Context, cli *clientv3.Client, health discovery.Health) (clientv3.LeaseID, error) {
	if err := r.acquire(ctx); err != nil {
		return 0, err
	}
	defer r.release()
	if r.deregistered.Load() {
		return 0, errDeregistered
	}
	value, err := encodeEntry(r.reg, health)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	granted, err := cli.Grant(rctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd grant lease of %ds for %q: %w", r.ttl, r.key, err)
	}
	// The lease is ours from here, before the Put: a Put that fails here may still have been
	// applied by etcd (its answer lost, or timed out after it was sent), and Deregister must then
	// revoke this lease, which holds the key, not the previous one (or none), which would leave
	// the key until this lease expires. Revoking a lease that holds nothing is harmless; if Put
	// really failed, this lease simply expires, and the next register replaces it.
	r.lease = granted.ID
	if _, err := cli.Put(rctx, r.key, string(value), clientv3.WithLease(granted.ID)); err != nil {
		return 0, fmt.Errorf("etcd put %q: %w", r.key, err)
	}
	return granted.ID, nil
}

// Deregister implements discovery.Registrar: it revokes the lease, which deletes the entry at
// once, and stops Run from writing it again. A lease that etcd no longer knows counts as
// revoked. If etcd cannot be reached or ctx ends first, it returns the error (and may be
// called again); Run has stopped keeping the lease alive all the same, so the entry then
// still goes by itself when its lease runs out, one TTL later. It returns ErrClosed after
// Close if there was still a lease to revoke.
func (r *Registrar) Deregister(ctx context.Context) error {
	// Before waiting for the lock, so that even a Deregister that never gets it (ctx ended)
	// stops the keep-alive and any registration after it.
	if r.deregistered.CompareAndSwap(false, true) {
		close(r.stop)
	}
	if err := r.acquire(ctx); err != nil {
		return fmt.Errorf("etcd deregister %q: %w", r.key, err)
	}
	defer r.release()
	if r.lease == 0 {
		return nil
	}
	if r.closed {
		return fmt.Errorf("etcd deregister %q: %w", r.key, ErrClosed)
	}
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.cli.Revoke(rctx, r.lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("etcd deregister %q: revoke lease %x: %w", r.key, int64(r.lease), err)
	}
	r.lease = 0
	r.logger.Info("etcd registration removed", zap.String("key", r.key))
	return nil
}

// Close ends Run (which then returns ErrClosed) and closes the connection. It does not
// deregister: the entry stays until its lease expires, as if the process had died. It is
// idempotent.
func (r *Registrar) Close() error {
	r.close()
	r.lock <- struct{}{}
	defer r.release()
	r.closed = true
	cli := r.cli
	r.cli = nil
	if cli == nil {
		return nil
	}
	if err := cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcd registrar close: %w", err)
	}
	return nil
}

func (r *Registrar) acquire(ctx context.Context) error {
	select {
	case r.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Registrar) release() { <-r.lock }
