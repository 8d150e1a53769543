package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// Config configures the forwarding of requests to one upstream. The zero value of every field
// means its default; New applies them.
type Config struct {
	// Keys is the chain of hash key sources in hashkey.ParseSpec syntax, first present wins:
	// "header:X-User-ID", "cookie:session", "query:uid", "path", "path_prefix:2",
	// "path_regex:^/users/([^/]+)", "client_ip". Empty: requests have no key, and the
	// balancer's NoKey policy decides.
	Keys []string
	// TrustedProxies are the peers whose X-Forwarded-For, X-Forwarded-Proto,
	// X-Forwarded-Host, X-Real-IP and Forwarded headers are believed and kept. From any other
	// peer they are replaced, and their lookalikes removed (requestDrops). Empty: no peer is
	// trusted.
	TrustedProxies []netip.Prefix
	// StripPrefix is removed from the start of the path, at a segment boundary, before the
	// request goes upstream: "/api" turns "/api/users?x" into "/users?x" and "/api" into "/",
	// and leaves "/apix" alone. Empty: nothing is stripped.
	StripPrefix string
	// AddPrefix is put in front of the path after StripPrefix: "/v2" turns "/users" into
	// "/v2/users". A path whose ".." segments would climb above it is refused (400). Empty:
	// nothing is added.
	AddPrefix string
	// Host, when set, replaces the Host header sent upstream. Empty: the client's Host goes
	// through (and is always sent as X-Forwarded-Host).
	Host string

	// ResponseHeaderTimeout bounds the wait for the response header once the request has
	// been sent; it ends the attempt as a timeout. Default 30s.
	ResponseHeaderTimeout time.Duration
	// StreamIdleTimeout bounds every pause while a body streams, in either direction, on
	// either connection: reading the client's request body, writing it upstream, reading the
	// response body, writing it to the client. A response body that pauses longer is broken
	// off: the client's connection is closed, so that the client sees a truncated body, never
	// a hang, and the abort is logged and counted. Default 30s: a healthy endpoint sends a
	// byte far more often (server-sent events need heartbeats below it, or a higher value).
	StreamIdleTimeout time.Duration
	// RequestTimeout bounds the whole exchange, from the request's arrival to the last byte
	// of the response body, retries included (upgraded connections excepted: they have
	// TunnelIdleTimeout). Before the response header is sent, it ends the attempt under way
	// as a timeout (504, no retry); after, the response is broken off as StreamIdleTimeout
	// does. Default 0: no limit.
	RequestTimeout time.Duration
	// TunnelIdleTimeout closes an upgraded (WebSocket) connection after this long without a
	// byte in either direction. Default 5m (as Envoy's stream idle timeout; WebSocket clients
	// ping well within it).
	TunnelIdleTimeout time.Duration
	// MaxTunnels caps the upgraded connections open at once through this handler; more
	// upgrade requests get 503. Default 1024 (about 32 MiB of idle tunnels, see
	// deploy/CONFIG.md); negative means no cap.
	MaxTunnels int
	// MaxRequestBody is the largest request body accepted, in bytes: a larger Content-Length
	// gets 413 before anything is sent upstream, and a chunked body that grows past it is
	// broken off (413 if no response has started). Default 0: no limit - bodies stream, so
	// their size costs the proxy no memory; StreamIdleTimeout, RequestTimeout and
	// TransportConfig.MaxStreamingBodiesPerEndpoint bound what a slow sender holds.
	MaxRequestBody int64

	// Retry configures retries to other endpoints.
	Retry RetryConfig
}

// RetryConfig configures retries. A retry goes to the next distinct endpoint of the request's
// pick (for hash policies, the next endpoint on the key's walk, so it is stable).
//
// Any request is retried when an attempt never reached the endpoint (the connection was
// refused or timed out, or the endpoint's connection pool was full). An idempotent request
// (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or any request with an Idempotency-Key or
// X-Idempotency-Key header) is also retried after a 502, 503 or 504, a reset connection or a
// timeout, provided its body can be sent again: it has none, or it was buffered (see
// ReplayBodySize). A body streamed upstream cannot be.
type RetryConfig struct {
	// Attempts is the most attempts per request, the first included. Default 3; 1 turns
	// retries off.
	Attempts int
	// PerTryTimeout bounds one attempt from its start (the connect included) to the response
	// header; for a request body streamed upstream, from the end of the body. Default 0: only
	// ResponseHeaderTimeout and the dial timeout apply.
	PerTryTimeout time.Duration
	// ReplayBodySize is the largest request body (with a Content-Length) read whole before the
	// first attempt, so that it can be sent again. Default 64 KiB; negative means never:
	// requests with a body are then retried only when no attempt reached an endpoint.
	ReplayBodySize int
	// Budget caps the retries of the upstream as a whole.
	Budget BudgetConfig
}

// BudgetConfig is a retry budget: over the last Window, retries may not exceed
// MinPerSecond·Window plus Ratio times the requests. A retry over budget is not made; the
// client gets the failure. This keeps a dying upstream from a retry storm.
type BudgetConfig struct {
	// Ratio is the share of requests that may be retried. Default 0.2; negative means 0.
	Ratio float64
	// MinPerSecond is the retry rate always allowed, for quiet upstreams. Default 10;
	// negative means 0.
	MinPerSecond float64
	// Window is how far back requests and retries are counted, in whole seconds, 1s to 60s.
	// Default 10s.
	Window time.Duration
}

// ErrBadConfig is wrapped by every configuration error New, NewTransport and NewServer return.
var ErrBadConfig = errors.New("bad proxy config")

// The defaults.
const (
	defaultResponseHeaderTimeout = 30 * time.Second
	defaultStreamIdleTimeout     = 30 * time.Second
	defaultTunnelIdleTimeout     = 5 * time.Minute
	defaultMaxTunnels            = 1024
	defaultAttempts              = 3
	defaultReplayBodySize        = 64 << 10
	defaultBudgetRatio           = 0.2
	defaultBudgetMinPerSecond    = 10
	defaultBudgetWindow          = 10 * time.Second
)

// withDefaults returns c with every zero field set to its default, and checks it.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	for _, p := range []struct{ name, v string }{{"strip prefix", c.StripPrefix}, {"add prefix", c.AddPrefix}} {
		if p.v != "" && (!strings.HasPrefix(p.v, "/") || strings.ContainsAny(p.v, "?# \t\r\n")) {
			bad("%s %q must start with / and hold no query, fragment or space", p.name, p.v)
		}
	}
	if strings.ContainsAny(c.Host, " \t\r\n/") {
		bad("host %q is not a host[:port]", c.Host)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			bad("invalid trusted proxy prefix %v", p)
		}
	}
	c.StripPrefix = strings.TrimSuffix(c.StripPrefix, "/")
	c.ResponseHeaderTimeout = orDefault(c.ResponseHeaderTimeout, defaultResponseHeaderTimeout)
	c.StreamIdleTimeout = orDefault(c.StreamIdleTimeout, defaultStreamIdleTimeout)
	c.TunnelIdleTimeout = orDefault(c.TunnelIdleTimeout, defaultTunnelIdleTimeout)
	if c.ResponseHeaderTimeout < 0 || c.StreamIdleTimeout < 0 || c.TunnelIdleTimeout < 0 || c.Retry.PerTryTimeout < 0 ||
		c.RequestTimeout < 0 || c.MaxRequestBody < 0 {
		bad("timeouts must be >= 0")
	}
	c.MaxTunnels = orDefault(c.MaxTunnels, defaultMaxTunnels)

	r := &c.Retry
	r.Attempts = orDefault(r.Attempts, defaultAttempts)
	if r.Attempts < 1 {
		bad("retry attempts %d, want >= 1", r.Attempts)
	}
	r.ReplayBodySize = orDefault(r.ReplayBodySize, defaultReplayBodySize)
	b := &r.Budget
	if math.IsNaN(b.Ratio) || math.IsNaN(b.MinPerSecond) || math.IsInf(b.Ratio, 0) || math.IsInf(b.MinPerSecond, 0) {
		bad("retry budget ratio and minimum must be finite")
	}
	b.Ratio = orDefault(b.Ratio, defaultBudgetRatio)
	b.MinPerSecond = orDefault(b.MinPerSecond, defaultBudgetMinPerSecond)
	b.Ratio, b.MinPerSecond = max(b.Ratio, 0), max(b.MinPerSecond, 0)
	b.Window = orDefault(b.Window, defaultBudgetWindow)
	if b.Window < time.Second || b.Window > time.Minute || b.Window%time.Second != 0 {
		bad("retry budget window %v, want whole seconds from 1s to 60s", b.Window)
	}
	return c, errors.Join(errs...)
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
