package sidecar

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/discovery/file"
)

func newSource(d config.Discovery, log *zap.Logger, obs discovery.Observer) (discovery.Source, error) {
	log = log.With(zap.String("discovery", d.Kind))
	switch d.Kind {
	case "file":
		src, err := file.NewSource(d.File.Path, file.Config{Interval: d.File.PollInterval}, log, obs)
		if err != nil {
			return nil, fmt.Errorf("discovery.file: %w", err)
		}
		return src, nil
	case "consul":
		cfg := consulConfig(d.Consul)
		cfg.Pacing = pacing(d)
		src, err := consul.NewSource(cfg, log, obs)
		if err != nil {
			return nil, fmt.Errorf("discovery.consul: %w", err)
		}
		return src, nil
	case "etcd":
		cfg := etcdConfig(d.Etcd)
		cfg.Pacing = pacing(d)
		src, err := etcd.NewSource(cfg, log, obs)
		if err != nil {
			return nil, fmt.Errorf("discovery.etcd: %w", err)
		}
		return src, nil
	}
	return nil, fmt.Errorf("discovery.kind %q: want file, consul or etcd", d.Kind)
}

// pacing is how a registry source paces its snapshots (see discovery.Pacing).
func pacing(d config.Discovery) discovery.Pacing {
	return discovery.Pacing{Settle: d.Settle, Coalesce: d.Coalesce}
}

func newRegistrar(d config.Discovery, r *config.Register, log *zap.Logger) (discovery.Registrar, error) {
	log = log.With(zap.String("registry", d.Kind))
	switch d.Kind {
	case "consul":
		reg, err := consul.NewRegistrar(consulConfig(d.Consul), registration(r), log)
		if err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
		return reg, nil
	case "etcd":
		reg, err := etcd.NewRegistrar(etcdConfig(d.Etcd), registration(r), log)
		if err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
		return reg, nil
	}
	return nil, fmt.Errorf("register: the %s source cannot register an app", d.Kind)
}

// runRegistration waits until the app's health check passes, then registers it and keeps it
// registered until ctx ends. Registering an app that cannot serve yet would send callers to
// it (fabio's issue #991 is the mirror image of this at shutdown).
func (s *Sidecar) runRegistration(ctx context.Context) {
	if s.registrar == nil {
		return
	}
	r := s.register
	if r.Check.HTTP != "" {
		if err := waitHealthy(ctx, r.Check.HTTP, r.Check.Timeout, s.log); err != nil {
			if ctx.Err() == nil {
				s.log.Error("app health check unusable: not registering", zap.String("check", r.Check.HTTP), zap.Error(err))
			}
			return
		}
	}
	s.log.Info("registering", zap.String("service", r.Service), zap.String("id", r.ID))
	if err := s.registrar.Run(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("registration stopped", zap.Error(err))
	}
}

// waitHealthy polls url until it answers 2xx, logging the first failure and then every 30s.
func waitHealthy(ctx context.Context, url string, timeout time.Duration, log *zap.Logger) error {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	var lastLog time.Time
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Since(lastLog) >= 30*time.Second {
			log.Info("waiting for the app's health check before registering", zap.String("check", url), zap.Error(err))
			lastLog = time.Now()
		}
		if err := discovery.Sleep(ctx, min(100*time.Millisecond<<min(attempt, 4), time.Second)); err != nil {
			return err
		}
	}
}
