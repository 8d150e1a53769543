package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ringside-proxy/ringside/discovery"
)

// Why a watch had to be given up and the service listed again.
var (
	errWatchClosed   = errors.New("watch channel closed")
	errWatchCanceled = errors.New("watch canceled by etcd")
	errWatchStalled  = errors.New("no answer from etcd for two progress intervals")
)

// streamMetadataKey gives each service's watch a gRPC stream of its own (clientv3 shares one
// stream among watches whose contexts carry the same metadata). The value is the service name,
// escaped, since gRPC metadata values must be printable ASCII. A progress request then
// reaches only that service's watch, and a failure of one stream costs one service a list.
const streamMetadataKey = "ringside-watch"

// serviceWatch keeps one service's snapshot current: list the service, publish it, watch from
// the next revision, and publish after each watch response. Whenever the watch cannot be
// trusted to deliver every later change — compaction, a closed or canceled watch, leader loss,
// silence — it lists again instead of resuming, so the state always converges to what etcd
// holds.
//
// Silence covers two cases clientv3 hides: etcd unreachable (clientv3 reconnects and resumes
// quietly, for ever), and etcd back with less history than before, restored from an old backup
// (the resumed watch then starts beyond etcd's revision, where etcd neither sends events nor
// answers progress requests). Each tick of the progress interval asks etcd for a progress
// notification; a watch that has heard nothing since the previous tick is given up. Silence is
// counted in answers read between two ticks, not in wall-clock time, so a slow update func —
// which always runs just after an answer was read — is not mistaken for it.
//
// It is not safe for concurrent use: one goroutine runs it.
type serviceWatch struct {
	src   *Source
	cli   *clientv3.Client
	pacer *discovery.Pacer
	state *serviceState
	rev   int64 // revision the state is known to be complete at
	// listed is set by the first list: a later one follows a watch that broke (an outage, a
	// compaction, a restored etcd) and is offered as a resync, so that removals are held
	// while the registry may still be filling up again.
	listed bool
	// failing is set by a failure and cleared, with a log line, by the next good list.
	failing bool
}

// run lists and watches until ctx ends, then returns ctx.Err().
func (w *serviceWatch) run(ctx context.Context) error {
	failures := 0
	for {
		healthy, err := w.listAndWatch(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if healthy {
			failures = 0
		}
		w.report(err)
		// A watch that was working is listed again at once; repeated failures back off, up
		// to a short cap while etcd cannot be reached, so its return is noticed soon.
		if failures > 0 {
			delay := w.src.cfg.Backoff.Delay(failures - 1)
			if unreachable(err) {
				delay = w.src.cfg.Backoff.UnreachableDelay(failures - 1)
			}
			if err := discovery.Sleep(ctx, delay); err != nil {
				return err
			}
		}
		failures++
	}
}

// report logs why the watch ended (once per interval per cause) and tells the observer.
// Compaction is routine, not a failure.
func (w *serviceWatch) report(err error) {
	service := w.state.service
	if errors.Is(err, rpctypes.ErrCompacted) {
		w.src.limited.log(zap.InfoLevel, "compacted/"+service, "etcd watch compacted; listing again",
			zap.String("service", service), zap.Error(err))
		return
	}
	w.src.obs.Failed(service, err)
	w.src.limited.log(zap.WarnLevel, "watch/"+service, "etcd watch failed; listing again",
		zap.String("service", service), zap.Error(err))
	w.failing = true
}

// recovered notes a good list after failures: one log line, and the next failure is logged
// at once.
func (w *serviceWatch) recovered() {
	if !w.failing {
		return
	}
	w.failing = false
	w.src.limited.reset("watch/" + w.state.service)
	w.src.logger.Info("etcd watch recovered",
		zap.String("service", w.state.service), zap.Int64("revision", w.rev))
}

// listAndWatch lists the service, publishes it and watches it until the watch must be given
// up. healthy reports whether the list and the watch both worked for a while, so that the
// next list need not wait.
func (w *serviceWatch) listAndWatch(ctx context.Context) (healthy bool, err error) {
	service := w.state.service
	lctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), w.src.cfg.requestTimeout())
	resp, err := w.cli.Get(lctx, w.state.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		// A timeout alone hides why (no route, TLS refused, ...); the connection state at least
		// tells a connection problem from a slow etcd.
		return false, fmt.Errorf("etcd list %q (connection %s): %w",
			w.state.prefix, w.cli.ActiveConnection().GetState(), err)
	}
	w.state.reset(resp.Kvs)
	w.rev = resp.Header.Revision
	now := time.Now()
	w.pacer.Offer(w.state.snapshot(w.rev, now), w.listed)
	w.listed = true
	w.src.obs.Synced(service, now)
	w.recovered()
	if w.src.afterList != nil {
		w.src.afterList(service)
	}
	return w.watch(ctx)
}

// watch follows the service from w.rev until something is wrong, and returns why. healthy
// reports whether the watch delivered anything beyond its creation.
//
// It starts at w.rev, not w.rev+1: etcd answers a progress request only when every watch of
// the stream starts at or below its current revision, so a watch from w.rev+1 on a cluster
// where nothing is written would never be answered and would be taken for stalled, listed
// again every two progress intervals. The events at w.rev itself, which the state already
// holds, apply again without effect (a put of the same value, a delete of a missing key).
func (w *serviceWatch) watch(ctx context.Context) (healthy bool, err error) {
	service := w.state.service
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(
		metadata.AppendToOutgoingContext(ctx, streamMetadataKey, url.PathEscape(service))))
	from := w.rev

	// clientv3's Watch blocks until etcd has created the watch, for ever if etcd went away
	// after the list; opened in a goroutine, the watch stays under the stall check below.
	opening := make(chan clientv3.WatchChan, 1)
	go func() {
		opening <- w.cli.Watch(wctx, w.state.prefix,
			clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithCreatedNotify())
	}()
	var wch clientv3.WatchChan // nil, so never ready, until opened
	defer func() {
		cancel()
		if wch == nil {
			<-opening
		}
	}()

	interval := w.src.cfg.progressInterval()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	heard, asked := false, false
	for {
		select {
		case <-ctx.Done():
			return healthy, ctx.Err()

		case wch = <-opening:

		case resp, ok := <-wch:
			if !ok {
				return healthy, fmt.Errorf("etcd watch %q from revision %d: %w", w.state.prefix, from, errWatchClosed)
			}
			if err := resp.Err(); err != nil {
				return healthy, fmt.Errorf("etcd watch %q from revision %d: %w", w.state.prefix, from, err)
			}
			if resp.Canceled {
				return healthy, fmt.Errorf("etcd watch %q from revision %d: %w", w.state.prefix, from, errWatchCanceled)
			}
			heard = true
			if resp.Created {
				continue
			}
			healthy = true
			w.rev = resp.Header.Revision
			now := time.Now()
			if len(resp.Events) > 0 {
				w.state.apply(resp.Events)
				w.pacer.Offer(w.state.snapshot(w.rev, now), false)
			}
			w.src.obs.Synced(service, now)

		case <-ticker.C:
			if asked && !heard {
				return healthy, fmt.Errorf("etcd watch %q: %w", w.state.prefix, errWatchStalled)
			}
			heard, asked = false, true
			// The request waits while clientv3 reconnects the stream; silence is then caught at
			// the next tick.
			pctx, pcancel := context.WithTimeout(wctx, interval/2)
			_ = w.cli.RequestProgress(pctx)
			pcancel()
		}
	}
}

// unreachable reports whether err says etcd could not be reached or did not answer, rather
// than that it refused the request: such a failure is retried at a short interval.
func unreachable(err error) bool {
	if errors.Is(err, errWatchStalled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}
