package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// unreachableKey is the LogLimiter key of transport errors: when the agent is down every
// service fails the same way, and one line says so for all of them.
const unreachableKey = "consul unreachable"

// tooManyKey is the LogLimiter key of the agent's 429 answers, and tooManyMsg their log
// message: an agent refuses more than limits.http_max_conns_per_client connections from one
// address (200 by default), and each watched service holds one.
const (
	tooManyKey = "consul too many connections"
	tooManyMsg = "consul agent refuses connections: each watched service holds one; " +
		"raise limits.http_max_conns_per_client on the agent; keeping the last snapshot and retrying"
)

// serviceWatch is the blocking-query loop of one service. Its fields are owned by the
// goroutine running run; only src is shared (and safe for concurrent use).
type serviceWatch struct {
	src     *Source
	service string
	opts    api.QueryOptions // the query template; WaitIndex is set per query
	timeout time.Duration    // bound of one blocking query, in case the connection hangs
	logKey  string           // LogLimiter key of this service's own errors
	// offer hands a snapshot on: the Offer of the service's discovery.Pacer.
	offer func(s *discovery.Snapshot, resync bool)

	waitIndex uint64              // index of the next query; 0 reads without blocking
	lastIndex uint64              // index of the last response decoded
	decoded   bool                // a response was decoded since the last error
	retries   discovery.Retries   // consecutive failed queries, and the delay after each
	resync    bool                // the next publish follows an outage or an index reset
	malformed map[string]struct{} // entries reported as malformed, reported once each
}

func newServiceWatch(src *Source, service string, offer func(*discovery.Snapshot, bool)) *serviceWatch {
	// Consul adds up to WaitTime/16 of jitter to a blocking query; beyond that and a request
	// timeout, the connection is taken for dead.
	return &serviceWatch{
		src:     src,
		service: service,
		offer:   offer,
		opts:    src.cfg.queryOptions(),
		timeout: src.cfg.WaitTime + src.cfg.WaitTime/16 + src.cfg.RequestTimeout,
		logKey:  "service " + service,
		retries: discovery.Retries{Backoff: src.cfg.Backoff},
	}
}

// run queries until ctx ends, following Consul's rules for blocking queries: the index of a
// response is the index of the next query; an index that went backwards (a new leader, an
// agent restarted without state) starts over from 0; the index is kept >= 1 so that queries
// block; queries are paced by MinQueryInterval, since a query may return with no change;
// failures are retried with capped, jittered backoff (capped lower while the agent cannot be
// reached, so its return is noticed soon), and the next read after one is a full,
// non-blocking read. The first snapshot after a failure or an index reset is offered as a
// resync: the agent may be filling up again, and the pacer holds removals meanwhile. It
// returns nil when ctx ends.
func (w *serviceWatch) run(ctx context.Context) error {
	var lastStart time.Time
	for {
		if d := w.src.cfg.MinQueryInterval - time.Since(lastStart); d > 0 {
			if discovery.Sleep(ctx, d) != nil {
				return nil
			}
		}
		lastStart = time.Now()
		entries, index, err := w.query(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if discovery.Sleep(ctx, w.failed(err)) != nil {
				return nil
			}
			continue
		}
		w.succeeded(entries, index, time.Now())
	}
}

// query runs one (blocking, unless waitIndex is 0) query of the service's health.
func (w *serviceWatch) query(ctx context.Context) ([]*api.ServiceEntry, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	opts := w.opts
	opts.WaitIndex = w.waitIndex
	cfg := &w.src.cfg
	entries, meta, err := w.src.client.Health().ServiceMultipleTags(
		w.service, cfg.Tags, cfg.Health == PassingOnly, opts.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("consul health %q: %w", w.service, err)
	}
	return entries, meta.LastIndex, nil
}

// failed records a failed query and returns how long to wait before the next one.
func (w *serviceWatch) failed(err error) time.Duration {
	w.waitIndex, w.decoded, w.resync = 0, false, true
	w.src.obs.Failed(w.service, err)
	down := unreachable(err)
	delay := w.retries.Failed(down)

	key, msg := w.logKey, "consul query failed; keeping the last snapshot and retrying"
	if down {
		key, msg = unreachableKey, "consul unreachable; keeping the last snapshots and retrying"
		w.src.unreachable.Store(true)
	}
	var serr api.StatusError
	if errors.As(err, &serr) && serr.Code == http.StatusTooManyRequests {
		key, msg = tooManyKey, tooManyMsg
	}
	if ok, suppressed := w.src.limiter.Allow(key); ok {
		w.src.logger.Warn(msg,
			zap.String("service", w.service),
			zap.Error(err),
			zap.Int("failures", w.retries.Failures()),
			zap.Int("suppressed", suppressed),
			zap.Duration("retry_in", delay))
	}
	return delay
}

// succeeded handles a response: it moves the index on, and decodes and publishes the
// entries unless the index shows that nothing changed.
func (w *serviceWatch) succeeded(entries []*api.ServiceEntry, index uint64, now time.Time) {
	if w.src.unreachable.CompareAndSwap(true, false) {
		w.src.limiter.Reset(unreachableKey)
		w.src.logger.Info("consul reachable again", zap.String("service", w.service))
	}
	if n := w.retries.Failures(); n > 0 {
		w.src.limiter.Reset(w.logKey)
		w.src.logger.Debug("consul query recovered", zap.String("service", w.service), zap.Int("failures", n))
		w.retries.Succeeded()
	}
	w.src.obs.Synced(w.service, now)

	changed := !w.decoded || index != w.lastIndex
	if index < w.waitIndex {
		w.resync = true // a new leader, or an agent restarted without state
	}
	w.waitIndex = nextWaitIndex(w.waitIndex, index)
	w.lastIndex, w.decoded = index, true
	if changed {
		w.publish(entries, index, now)
	}
}

// unreachable reports whether err says the agent could not be reached or did not answer (an
// error of the HTTP transport), rather than that it answered with an error.
func unreachable(err error) bool {
	var uerr *url.Error
	return errors.As(err, &uerr)
}

// nextWaitIndex returns the index of the next query, given the index of the query that was
// made and the index of its response: 0 (a full read that does not block) when the index
// went backwards, else the response's index, but at least 1, since index 0 would not block.
func nextWaitIndex(asked, got uint64) uint64 {
	switch {
	case got < asked:
		return 0
	case got < 1:
		return 1
	}
	return got
}

// publish maps entries onto endpoints and offers their snapshot to the pacer. A malformed entry is skipped, logged and reported to the Observer
// the first time it is seen (not again while it stays malformed); the others are kept.
func (w *serviceWatch) publish(entries []*api.ServiceEntry, index uint64, now time.Time) {
	eps := make([]discovery.Endpoint, 0, len(entries))
	var bad map[string]struct{}
	for _, e := range entries {
		ep, key, err := toEndpoint(e, w.src.cfg.Datacenter)
		if err == nil {
			err = ep.Validate()
		}
		if err != nil {
			if bad == nil {
				bad = make(map[string]struct{})
			}
			bad[key] = struct{}{}
			if _, known := w.malformed[key]; !known {
				w.src.logger.Warn("consul entry skipped",
					zap.String("service", w.service), zap.String("entry", key), zap.Error(err))
				w.src.obs.Malformed(w.service, key, err)
			}
			continue
		}
		if w.src.cfg.Health.keeps(ep.Health) {
			eps = append(eps, ep)
		}
	}
	w.malformed = bad
	w.offer(discovery.NewSnapshot(w.service, index, eps, now), w.resync)
	w.resync = false
}
