package sidecar

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul"
	"github.com/ringside-proxy/ringside/discovery/etcd"
	"github.com/ringside-proxy/ringside/proxy"
	"github.com/ringside-proxy/ringside/proxy/balancer"
	"github.com/ringside-proxy/ringside/proxy/hashkey"
)

// This file turns the configuration file's sections into the configurations of the packages
// that do the work. Check runs every translation, and builds the discovery source and
// registrar, without side effects (no listener, no network call), so `ringside validate`
// refuses what `ringside` would refuse at start.

// Check reports every problem the packages find in cfg beyond what config.Load checks, each
// as a *config.Error naming the file, the line and the field.
func Check(cfg *config.Config) error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, cfg.Errorf(field, "%v", err))
		}
	}
	for i, u := range cfg.Upstreams {
		field := fmt.Sprintf("upstreams[%d]", i)
		_, err := balancerConfig(u)
		add(field, err)
		_, err = proxyConfig(u)
		add(field, err)
		_, err = hashkey.ParseSpecs(u.HashKey)
		add(field+".hash_key", err)
		_, err = transportConfig(u, zap.NewNop())
		add(field+".upstream_tls", err)
	}
	if cfg.Register != nil {
		add("register", registration(cfg.Register).Validate())
	}
	if cfg.Admin.TokenFile != "" {
		_, err := admin.ReadToken(cfg.Admin.TokenFile)
		add("admin.token_file", err)
	}
	d := cfg.Discovery
	_, err := newSource(d, zap.NewNop(), discovery.NopObserver{})
	add("discovery."+d.Kind, err)
	if d.Kind == "file" {
		if _, err := os.Stat(d.File.Path); err != nil {
			add("discovery.file.path", err)
		}
	}
	if cfg.Register != nil {
		_, err := newRegistrar(d, cfg.Register, zap.NewNop())
		add("register", err)
	}
	return errors.Join(errs...)
}

func balancerConfig(u config.Upstream) (balancer.Config, error) {
	c := balancer.Config{
		Kind:         balancer.Kind(u.Balancer),
		VirtualNodes: u.VirtualNodes,
		BoundedLoad:  u.BoundedLoad,
		SlowStart:    u.SlowStart,
		MaxRequests:  u.MaxRequests,
		NoKey:        balancer.NoKeyPolicy(u.NoKey),
		Outlier: balancer.OutlierConfig{
			Consecutive5xx:            u.Outlier.Consecutive5xx,
			ConsecutiveGatewayFailure: u.Outlier.ConsecutiveGatewayFailure,
			BaseEjectionTime:          u.Outlier.BaseEjectionTime,
			MaxEjectionTime:           u.Outlier.MaxEjectionTime,
			MaxEjectionPercent:        u.Outlier.MaxEjectionPercent,
		},
	}
	// In the file 0 turns panic mode off; in package balancer a negative value does.
	c.PanicThreshold = -1
	if u.PanicThreshold != nil && *u.PanicThreshold > 0 {
		c.PanicThreshold = *u.PanicThreshold
	}
	if hc := u.HealthCheck; hc != nil {
		c.Active = balancer.ActiveConfig{
			Path:               hc.Path,
			Interval:           hc.Interval,
			Timeout:            hc.Timeout,
			HealthyThreshold:   hc.HealthyThreshold,
			UnhealthyThreshold: hc.UnhealthyThreshold,
			Host:               hc.Host,
		}
		if len(hc.ExpectStatus) == 2 {
			c.Active.ExpectStatus = [2]int{hc.ExpectStatus[0], hc.ExpectStatus[1]}
		}
	}
	return c, c.Validate()
}

func proxyConfig(u config.Upstream) (proxy.Config, error) {
	trusted, err := prefixes(u.TrustedProxies)
	if err != nil {
		return proxy.Config{}, fmt.Errorf("trusted_proxies: %w", err)
	}
	return proxy.Config{
		Keys:                  u.HashKey,
		TrustedProxies:        trusted,
		StripPrefix:           u.StripPrefix,
		AddPrefix:             u.AddPrefix,
		ResponseHeaderTimeout: u.Timeouts.ResponseHeader,
		StreamIdleTimeout:     u.Timeouts.BodyIdle,
		RequestTimeout:        u.Timeouts.Request,
		MaxRequestBody:        u.MaxRequestBody,
		TunnelIdleTimeout:     u.Tunnels.IdleTimeout,
		MaxTunnels:            u.Tunnels.Max,
		Retry: proxy.RetryConfig{
			Attempts:       u.Retries.Attempts,
			PerTryTimeout:  u.Retries.PerTryTimeout,
			ReplayBodySize: u.Retries.ReplayBodyLimit,
			Budget:         proxy.BudgetConfig{Ratio: u.Retries.BudgetPercent / 100},
		},
	}, nil
}

func transportConfig(u config.Upstream, log *zap.Logger) (proxy.TransportConfig, error) {
	tc, err := upstreamTLS(u.UpstreamTLS, log)
	return proxy.TransportConfig{
		DialTimeout:                   u.Timeouts.Dial,
		IdleConnTimeout:               u.Timeouts.Idle,
		MaxStreamingBodiesPerEndpoint: u.MaxStreamingBodies,
		TLS:                           tc,
	}, err
}

// prefixes parses CIDRs, and plain IPs as single-address prefixes.
func prefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want a CIDR or an IP", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func registration(r *config.Register) discovery.Registration {
	return discovery.Registration{
		ID:      r.ID,
		Service: r.Service,
		Address: r.Address,
		Port:    r.Port,
		Tags:    r.Tags,
		Meta:    r.Meta,
		Weights: discovery.Weights{Passing: r.Weights.Passing, Warning: r.Weights.Warning},
		Check: discovery.Check{
			HTTP:            r.Check.HTTP,
			Interval:        r.Check.Interval,
			Timeout:         r.Check.Timeout,
			DeregisterAfter: r.Check.DeregisterAfter,
		},
		TTL: r.TTL,
	}
}

func consulConfig(c config.ConsulSource) consul.Config {
	cc := consul.Config{
		Address:    c.Address,
		Scheme:     c.Scheme,
		Token:      c.Token,
		TokenFile:  c.TokenFile,
		Datacenter: c.Datacenter,
		Filter:     c.Filter,
		WaitTime:   c.WaitTime,
		TLS: consul.TLSConfig{
			ServerName:         c.TLS.ServerName,
			CAFile:             c.TLS.CAFile,
			CertFile:           c.TLS.CertFile,
			KeyFile:            c.TLS.KeyFile,
			InsecureSkipVerify: c.TLS.InsecureSkipVerify,
		},
	}
	if c.Tag != "" {
		cc.Tags = []string{c.Tag}
	}
	if c.TLS.Enabled && cc.Scheme == "" {
		cc.Scheme = "https"
	}
	if c.PassingOnly != nil && *c.PassingOnly {
		cc.Health = consul.PassingOnly
	}
	if c.Stale {
		cc.Consistency = consul.Stale
	}
	return cc
}

func etcdConfig(c config.EtcdSource) etcd.Config {
	ec := etcd.Config{
		Endpoints:   c.Endpoints,
		Prefix:      strings.TrimSuffix(c.Prefix, "/"),
		Username:    c.Username,
		Password:    c.Password,
		DialTimeout: c.DialTimeout,
	}
	ec.TLS = etcd.TLSConfig{
		CAFile:             c.TLS.CAFile,
		CertFile:           c.TLS.CertFile,
		KeyFile:            c.TLS.KeyFile,
		ServerName:         c.TLS.ServerName,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify,
	}
	return ec
}
