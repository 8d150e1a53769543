package sidecar

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
)

// ErrNeedsRestart is returned by Reload for a change it cannot apply in place.
var ErrNeedsRestart = errors.New("needs a restart")

// Reload applies cfg: upstreams are added, removed or replaced (hash key, balancer, health,
// retries, timeouts, listener address), without dropping in-flight requests — they finish on
// the upstream they started on. Everything new is built first; if any of it fails, nothing
// changes and the error says why. Changes to admin, discovery, register or log are refused
// with ErrNeedsRestart.
//
// An upstream whose settings changed starts with fresh health state (ejections are not carried
// over); an unchanged one keeps its state.
func (s *Sidecar) Reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg
	for _, f := range []struct {
		name     string
		old, new any
	}{
		{"admin", old.Admin, cfg.Admin},
		{"discovery", old.Discovery, cfg.Discovery},
		{"register", old.Register, cfg.Register},
		{"log", old.Log, cfg.Log},
	} {
		if !reflect.DeepEqual(f.old, f.new) {
			return fmt.Errorf("%s changed: %w", f.name, ErrNeedsRestart)
		}
	}
	if (old.HostRouting == nil) != (cfg.HostRouting == nil) ||
		(old.HostRouting != nil && !reflect.DeepEqual(*old.HostRouting, *cfg.HostRouting)) {
		return fmt.Errorf("host_routing changed: %w", ErrNeedsRestart)
	}

	// Build what is new or changed.
	next := make(map[string]*upstream, len(cfg.Upstreams))
	var built []*upstream
	for _, uc := range cfg.Upstreams {
		if cur := s.upstreams[uc.Name]; cur != nil && reflect.DeepEqual(cur.cfg, uc) {
			next[uc.Name] = cur
			continue
		}
		u, err := s.newUpstream(uc)
		if err != nil {
			return err
		}
		next[uc.Name] = u
		built = append(built, u)
	}
	// Bind new listener addresses.
	wanted := make(map[string]config.Upstream)
	var bound []*listener
	for _, uc := range cfg.Upstreams {
		if uc.Listen == "" {
			continue
		}
		wanted[uc.Listen] = uc
		if s.listeners[uc.Listen] != nil {
			continue
		}
		l, err := s.newListener(uc.Listen, uc.TLS, uc.Timeouts)
		if err != nil {
			for _, b := range bound {
				_ = b.ln.Close()
			}
			return fmt.Errorf("upstream %q: listen %s: %w", uc.Name, uc.Listen, err)
		}
		bound = append(bound, l)
	}

	// Nothing can fail from here on: apply.
	s.snapMu.Lock()
	for _, u := range built {
		if snap := s.lastSnap[u.cfg.Service]; snap != nil {
			u.bal.Update(snap)
		}
	}
	s.snapMu.Unlock()
	oldServices := s.servicesLocked()
	retired := make([]*upstream, 0)
	for name, u := range s.upstreams {
		if next[name] != u {
			retired = append(retired, u)
		}
	}
	s.upstreams = next
	s.cfg = cfg
	s.publishRoutes()
	s.publishHostsLocked()
	for _, l := range bound {
		s.listeners[l.addr] = l
		if s.runCtx != nil {
			s.serveListener(l)
		}
	}
	for addr, l := range s.listeners {
		uc, ok := wanted[addr]
		if !ok {
			delete(s.listeners, addr)
			s.retireListener(l)
			continue
		}
		l.target.Store(next[uc.Name])
	}
	if s.runCtx != nil {
		for _, u := range built {
			s.runUpstream(u)
		}
		if !slices.Equal(oldServices, s.servicesLocked()) {
			s.restartWatchLocked()
		}
	}
	for _, u := range retired {
		s.retireUpstream(u)
	}
	s.log.Info("configuration applied", zap.Int("upstreams", len(next)), zap.Int("rebuilt", len(built)),
		zap.Int("retired", len(retired)), zap.Int("new_listeners", len(bound)))
	return nil
}

// retireListener shuts a listener no longer configured down in the background, letting its
// in-flight requests finish within the grace period; s.mu is held.
func (s *Sidecar) retireListener(l *listener) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Lifecycle.GracePeriod)
		defer cancel()
		l.shutdown(ctx, s.log)
		<-l.done
	}()
}

// retireUpstream lets requests already on a replaced upstream finish, then stops its checks
// and closes its idle connections; s.mu is held.
func (s *Sidecar) retireUpstream(u *upstream) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Lifecycle.GracePeriod)
		defer cancel()
		_ = u.handler.Drain(ctx)
		u.stop()
		u.transport.CloseIdleConnections()
	}()
}
