//go:build !linux

package proxy

import (
	"context"
	"fmt"
	"net"

	"github.com/valyala/fasthttp"
)

// LoopServer serves the forwarding path on event loops; it needs Linux (epoll).
type LoopServer struct{}

// NewLoopServer returns an error: event loops need Linux.
func NewLoopServer(route func(*fasthttp.RequestCtx) *Handler, fallback *fasthttp.Server, cfg ServerConfig, loops int) (*LoopServer, error) {
	return nil, fmt.Errorf("%w: the event loop engine needs Linux", ErrBadConfig)
}

// Serve is never reached: NewLoopServer fails.
func (s *LoopServer) Serve(ln net.Listener) error {
	return fmt.Errorf("%w: event loops need Linux", ErrBadConfig)
}

// Shutdown does nothing.
func (s *LoopServer) Shutdown(ctx context.Context) error { return nil }

// LoopStats are what a LoopServer counted since it was created.
type LoopStats struct {
	Requests  uint64 // requests the loops served themselves
	Handovers uint64 // connections handed to the fallback server
	Conns     ConnStats
}

// Stats returns zeros.
func (s *LoopServer) Stats() LoopStats { return LoopStats{} }
