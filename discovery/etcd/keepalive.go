package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// keepAlive keeps lease alive until its keep-alive stops, ctx ends or Deregister is called,
// and meanwhile runs the health check, writing the entry again (under the same lease) when the
// health changes. It returns the last health the check found, for the next registration, and
// why it stopped.
//
// Deregister ends it whether or not its revocation succeeded: were the lease kept alive after
// a failed revocation, the entry would outlive the deregistration forever instead of one TTL.
//
// clientv3 sends a keep-alive every TTL/3 and closes the channel when etcd says the lease is
// gone (revoked, or expired) or when no keep-alive has succeeded for a whole TTL (etcd
// unreachable); either way the entry is gone or about to be, and Run registers again.
func (r *Registrar) keepAlive(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, health discovery.Health) (discovery.Health, error) {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops clientv3's keep-alive of this lease
	select {
	case <-r.stop: // Deregister came between register and here
		return health, errDeregistered
	default:
	}
	ch, err := cli.KeepAlive(kctx, lease)
	if err != nil {
		return health, fmt.Errorf("etcd keep-alive of lease %x: %w", int64(lease), err)
	}
	var tick <-chan time.Time
	if r.probe != nil {
		t := time.NewTicker(r.probe.interval)
		defer t.Stop()
		tick = t.C
	}
	written := health
	for {
		select {
		case <-ctx.Done():
			return health, ctx.Err()
		case <-r.stop:
			return health, errDeregistered
		case _, ok := <-ch:
			if !ok {
				return health, fmt.Errorf("etcd lease %x of %q: %w", int64(lease), r.key, errLeaseLost)
			}
		case <-tick:
			health = r.checkHealth(ctx, health)
			if health == written {
				continue
			}
			if err := r.rewrite(ctx, lease, health); err != nil {
				// Tried again at the next tick, since health still differs from written.
				r.limited.log(zap.WarnLevel, "rewrite", "etcd health update failed",
					zap.String("key", r.key), zap.Error(err))
				continue
			}
			r.limited.reset("rewrite")
			written = health
		}
	}
}

// checkHealth runs the check once and logs a change from was.
func (r *Registrar) checkHealth(ctx context.Context, was discovery.Health) discovery.Health {
	health, err := r.probe.check(ctx)
	if ctx.Err() != nil {
		return was
	}
	if health != was {
		r.logger.Info("health check changed",
			zap.String("key", r.key), zap.Stringer("from", was), zap.Stringer("to", health), zap.Error(err))
	}
	return health
}

// rewrite writes the entry at health under lease, unless the registration has moved on (a new
// lease, or Deregister) meanwhile.
func (r *Registrar) rewrite(ctx context.Context, lease clientv3.LeaseID, health discovery.Health) error {
	if err := r.acquire(ctx); err != nil {
		return err
	}
	defer r.release()
	if r.deregistered.Load() || r.closed || r.lease != lease {
		return nil
	}
	value, err := encodeEntry(r.reg, health)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.cli.Put(rctx, r.key, string(value), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("etcd put %q at health %s: %w", r.key, health, err)
	}
	return nil
}
