package sidecar

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
	"github.com/ringside-proxy/ringside/cmd/internal/config"
)

// ErrNeedsRestart is returned by Reload for a change it cannot apply in place.
var ErrNeedsRestart = errors.New("needs a restart")

// ErrDraining is returned by Reload once the drain has begun.
var ErrDraining = errors.New("draining: reload refused")

// Reload applies cfg: upstreams are added, removed or replaced (hash key, balancer, health,
// retries, timeouts, listener address), without dropping in-flight requests — they finish on
// the upstream they started on. Everything new is built first; if any of it fails, nothing
// changes and the error says why. Refused with ErrNeedsRestart: changes to admin, discovery,
// register, log or host_routing, and a listener whose tls or listener timeouts change while
// its address stays (it cannot be bound twice). Refused with ErrDraining once Run drains.
//
// An upstream whose settings changed starts with fresh health state (ejections are not carried
// over) but keeps the operator's overrides (drains, ejections, weights set through the admin
// API, keyed by endpoint ID); an unchanged one keeps both. The overrides of a removed upstream
// are dropped with it. The admin API's event log records the reload and what happened to the
// overrides.
func (s *Sidecar) Reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrDraining
	}
	if err := s.checkRestartOnly(cfg); err != nil {
		return err
	}

	// Build what is new or changed.
	next := make(map[string]*upstream, len(cfg.Upstreams))
	var built []*upstream
	carried := 0 // overrides copied to rebuilt upstreams
	for _, uc := range cfg.Upstreams {
		if cur := s.upstreams[uc.Name]; cur != nil && reflect.DeepEqual(cur.cfg, uc) {
			next[uc.Name] = cur
			continue
		}
		u, err := s.newUpstream(uc)
		if err != nil {
			return err
		}
		if cur := s.upstreams[uc.Name]; cur != nil {
			carried += u.bal.CopyOverrides(cur.bal)
		}
		next[uc.Name] = u
		built = append(built, u)
	}
	listeners, bound, retiredLs, err := s.planListeners(cfg)
	if err != nil {
		return err
	}

	// Nothing can fail from here on: apply. Seeding the new upstreams with the last snapshots
	// and publishing the routes happen under one snapMu section (see dispatch).
	oldServices := s.servicesLocked()
	var retired []*upstream
	dropped := 0 // overrides of removed upstreams
	for name, u := range s.upstreams {
		if next[name] != u {
			retired = append(retired, u)
			if next[name] == nil {
				dropped += len(u.bal.Overrides())
			}
		}
	}
	s.upstreams = next
	s.snapMu.Lock()
	for _, u := range built {
		if snap := s.lastSnap[u.cfg.Service]; snap != nil {
			u.bal.Update(snap)
		}
	}
	s.publishRoutes()
	s.snapMu.Unlock()
	s.cfg = cfg
	s.publishHostsLocked()
	s.listeners = listeners
	for name, l := range listeners {
		l.target.Store(next[name])
	}
	grace := cfg.Lifecycle.GracePeriod
	if s.runCtx != nil {
		for _, l := range bound {
			s.serveListener(l)
		}
		for _, u := range built {
			s.runUpstream(u)
		}
		if !slices.Equal(oldServices, s.servicesLocked()) {
			s.restartWatchLocked()
		}
	}
	for _, l := range retiredLs {
		s.retireListener(l, grace)
	}
	for _, u := range retired {
		s.retireUpstream(u, grace)
	}
	s.log.Info("configuration applied", zap.Int("upstreams", len(next)), zap.Int("rebuilt", len(built)),
		zap.Int("retired", len(retired)), zap.Int("new_listeners", len(bound)),
		zap.Int("overrides_carried", carried), zap.Int("overrides_dropped", dropped))
	s.events.Record(admin.Event{Kind: "reload", Reason: fmt.Sprintf(
		"%d upstreams, %d rebuilt (fresh health state), %d retired; operator overrides: %d carried over to rebuilt upstreams, %d dropped with removed upstreams, the others kept",
		len(next), len(built), len(retired), carried, dropped)})
	return nil
}

// checkRestartOnly refuses changes to the sections Reload cannot apply; s.mu is held.
func (s *Sidecar) checkRestartOnly(cfg *config.Config) error {
	old := s.cfg
	for _, f := range []struct {
		name     string
		old, new any
	}{
		{"admin", old.Admin, cfg.Admin},
		{"discovery", old.Discovery, cfg.Discovery},
		{"register", old.Register, cfg.Register},
		{"log", old.Log, cfg.Log},
		{"host_routing", old.HostRouting, cfg.HostRouting},
	} {
		if !reflect.DeepEqual(f.old, f.new) {
			return fmt.Errorf("%s changed: %w", f.name, ErrNeedsRestart)
		}
	}
	for _, uc := range cfg.Upstreams {
		if l := s.listeners[uc.Name]; l != nil && l.addr == uc.Listen && !l.sameSettings(uc) {
			return fmt.Errorf("upstream %q: tls, listener timeouts or max_connections changed at the same address %s: %w",
				uc.Name, uc.Listen, ErrNeedsRestart)
		}
	}
	return nil
}

// planListeners works out the listeners of cfg: kept ones, newly bound ones (bound here, not
// yet served) and those to retire. On error nothing is left bound. s.mu is held.
func (s *Sidecar) planListeners(cfg *config.Config) (all map[string]*listener, bound, retired []*listener, err error) {
	all = make(map[string]*listener)
	for _, uc := range cfg.Upstreams {
		if uc.Listen == "" {
			continue
		}
		if l := s.listeners[uc.Name]; l != nil && l.sameSettings(uc) {
			all[uc.Name] = l
			continue
		}
		l, err := s.newListener(uc.Listen, uc.TLS, timeoutsOf(uc))
		if err != nil {
			for _, b := range bound {
				_ = b.ln.Close()
			}
			return nil, nil, nil, fmt.Errorf("upstream %q: listen %s: %w", uc.Name, uc.Listen, err)
		}
		all[uc.Name] = l
		bound = append(bound, l)
	}
	for name, l := range s.listeners {
		if all[name] != l {
			retired = append(retired, l)
		}
	}
	return all, bound, retired, nil
}

// retireListener shuts a listener no longer configured down in the background, letting its
// in-flight requests finish within the grace period; s.mu is held.
func (s *Sidecar) retireListener(l *listener, grace time.Duration) {
	served := s.runCtx != nil
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if !served {
			_ = l.ln.Close()
			return
		}
		l.shutdown(ctx, s.log)
		<-l.done
	}()
}

// retireUpstream lets requests already on a replaced upstream finish, then stops its checks
// and closes its idle connections; s.mu is held.
func (s *Sidecar) retireUpstream(u *upstream, grace time.Duration) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := u.handler.Drain(ctx); err != nil {
			s.log.Warn("retired upstream: streams cut at the end of the grace period", zap.String("upstream", u.cfg.Name), zap.Error(err))
		}
		u.stop()
		u.transport.CloseIdleConnections()
	}()
}
