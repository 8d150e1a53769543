package sidecar

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/proxy"
	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// upstream is one configured upstream: its balancer (routing state and health), the transport
// to its endpoints, and the forwarding handler. A reload that changes an upstream builds a new
// one and swaps it in; listeners find the current one through an atomic pointer.
type upstream struct {
	cfg       config.Upstream
	bal       *balancer.Upstream
	transport *proxy.Transport
	handler   *proxy.Handler

	cancel context.CancelFunc // stops bal.Run; nil until started
	done   chan struct{}
}

func (s *Sidecar) newUpstream(uc config.Upstream) (*upstream, error) {
	bc, err := balancerConfig(uc)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", uc.Name, err)
	}
	pc, err := proxyConfig(uc)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", uc.Name, err)
	}
	tc, err := transportConfig(uc, s.log.With(zap.String("upstream", uc.Name)))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", uc.Name, err)
	}
	bc.Active.TLS = tc.TLS // active checks speak to the endpoints as the traffic does
	tr, err := proxy.NewTransport(uc.Name, tc, s.pmetrics)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", uc.Name, err)
	}
	bal, err := balancer.New(uc.Name, bc, tr.BalancerOptions(balancer.Options{
		Logger:   s.log.With(zap.String("upstream", uc.Name)),
		Events:   s.pmetrics,
		OnChange: s.events.RecordChange,
	}))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", uc.Name, err)
	}
	var access *zap.Logger
	if s.cfg.Log.AccessLog {
		access = s.log.Named("access")
	}
	h, err := proxy.New(pc, bal, proxy.Options{
		Logger:         s.log,
		Metrics:        s.pmetrics,
		AccessLog:      access,
		AccessLogEvery: s.cfg.Log.AccessLogSample,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", uc.Name, err)
	}
	return &upstream{cfg: uc, bal: bal, transport: tr, handler: h}, nil
}

// runUpstream starts the balancer's active checks under Run's context; s.mu is held.
func (s *Sidecar) runUpstream(u *upstream) {
	ctx, cancel := context.WithCancel(s.runCtx)
	u.cancel, u.done = cancel, make(chan struct{})
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		defer close(u.done)
		_ = u.bal.Run(ctx) // returns ctx.Err()
	}()
}

// stop stops the balancer's active checks and waits for them.
func (u *upstream) stop() {
	if u.cancel != nil {
		u.cancel()
		<-u.done
	}
}
