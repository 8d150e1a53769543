package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// TransportConfig configures the connections to the endpoints of one upstream. The zero value
// of every field means its default.
type TransportConfig struct {
	// DialTimeout bounds connecting to an endpoint. Default 2s.
	DialTimeout time.Duration
	// IdleConnTimeout closes a pooled connection unused for this long. Keep it below the
	// endpoints' own keep-alive timeout, or requests will meet connections the endpoint has
	// just closed. Default 10s.
	IdleConnTimeout time.Duration
	// MaxConnsPerEndpoint caps the connections to one endpoint, pooled and busy (streams and
	// tunnels included). An attempt that finds the pool full goes to the next endpoint.
	// Default 1024.
	MaxConnsPerEndpoint int
	// MaxStreamingBodiesPerEndpoint caps the attempts to one endpoint that stream a request
	// body (one too large to be buffered, see RetryConfig.ReplayBodySize) at once: each holds
	// a connection for as long as its client takes to send, so slow uploads alone could take
	// every connection MaxConnsPerEndpoint allows. An attempt over the cap goes to the next
	// endpoint, as one that finds the pool full does. Default MaxConnsPerEndpoint/2; negative
	// means no cap.
	MaxStreamingBodiesPerEndpoint int
	// MaxResponseHeaderSize is the largest response header accepted from an endpoint; it is
	// also the read buffer of each connection. Default 16 KiB.
	MaxResponseHeaderSize int
	// WriteBufferSize is the write buffer of each connection. Default 4 KiB.
	WriteBufferSize int
	// TLS, when set, makes every connection to the endpoints TLS with this configuration (CA
	// pool, client certificate for mTLS, ServerName; an empty ServerName is the endpoint's
	// host). The handshake happens on a connection's first write. If nil, plain HTTP.
	TLS *tls.Config
}

const (
	defaultDialTimeout           = 2 * time.Second
	defaultIdleConnTimeout       = 10 * time.Second
	defaultMaxConnsPerEndpoint   = 1024
	defaultMaxResponseHeaderSize = 16 << 10
	defaultWriteBufferSize       = 4 << 10
)

func (c TransportConfig) withDefaults() (TransportConfig, error) {
	c.DialTimeout = orDefault(c.DialTimeout, defaultDialTimeout)
	c.IdleConnTimeout = orDefault(c.IdleConnTimeout, defaultIdleConnTimeout)
	c.MaxConnsPerEndpoint = orDefault(c.MaxConnsPerEndpoint, defaultMaxConnsPerEndpoint)
	c.MaxStreamingBodiesPerEndpoint = orDefault(c.MaxStreamingBodiesPerEndpoint, max(c.MaxConnsPerEndpoint/2, 1))
	c.MaxResponseHeaderSize = orDefault(c.MaxResponseHeaderSize, defaultMaxResponseHeaderSize)
	c.WriteBufferSize = orDefault(c.WriteBufferSize, defaultWriteBufferSize)
	if c.DialTimeout < 0 || c.IdleConnTimeout < 0 || c.MaxConnsPerEndpoint < 0 ||
		c.MaxResponseHeaderSize < 1024 || c.WriteBufferSize < 512 {
		return c, fmt.Errorf("%w: transport: negative values, or buffers below 1 KiB (read) / 512 B (write)", ErrBadConfig)
	}
	return c, nil
}

// Transport owns the connections to the endpoints of one upstream: one fasthttp.HostClient
// per endpoint, created when the balancer first sees the endpoint and closed when it leaves.
// Wire it into the balancer before creating the Upstream, with BalancerOptions or by setting
// balancer.Options.OnEndpoint and OnRemove to its methods. Safe for concurrent use.
type Transport struct {
	upstream string
	cfg      TransportConfig
	metrics  *Metrics
	bufs     *connBufs

	mu       sync.Mutex
	backends map[*backend]struct{}
	perID    map[string]int // backends by endpoint ID: an endpoint that changed address has two for a moment
}

// NewTransport returns the transport of the upstream named upstream. m may be nil (no
// metrics).
func NewTransport(upstream string, cfg TransportConfig, m *Metrics) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Transport{
		upstream: upstream,
		cfg:      cfg,
		metrics:  m,
		bufs:     &connBufs{readSize: cfg.MaxResponseHeaderSize, writeSize: cfg.WriteBufferSize},
		backends: make(map[*backend]struct{}),
		perID:    make(map[string]int),
	}, nil
}

// BalancerOptions returns o with OnEndpoint and OnRemove set to t's (an OnRemove already in
// o is still called, after t's), and Events set to t's Metrics when o has none and t has
// some.
func (t *Transport) BalancerOptions(o balancer.Options) balancer.Options {
	o.OnEndpoint = t.OnEndpoint
	if prev := o.OnRemove; prev != nil {
		o.OnRemove = func(ep *balancer.Endpoint) { t.OnRemove(ep); prev(ep) }
	} else {
		o.OnRemove = t.OnRemove
	}
	if o.Events == nil && t.metrics != nil {
		o.Events = t.metrics
	}
	return o
}

// OnEndpoint builds the client of a new endpoint; the balancer stores it in Endpoint.Data.
func (t *Transport) OnEndpoint(ep *balancer.Endpoint) any {
	b := &backend{id: ep.ID, addr: ep.Address, bufs: t.bufs, dialTimeout: t.cfg.DialTimeout, tls: t.cfg.TLS != nil,
		maxStreaming: int64(t.cfg.MaxStreamingBodiesPerEndpoint)}
	b.ip, _ = netip.ParseAddrPort(ep.Address) // an event loop dials IP addresses only
	b.hc = &fasthttp.HostClient{
		Addr:                     ep.Address,
		Dial:                     dialer(t.cfg.DialTimeout),
		NoDefaultUserAgentHeader: true,
		MaxConns:                 t.cfg.MaxConnsPerEndpoint,
		MaxIdleConnDuration:      t.cfg.IdleConnTimeout,
		// No buffer sizes: the HostClient's own buffer pools are not used (see connBufs).
		DisablePathNormalizing: true,
		IsTLS:                  t.cfg.TLS != nil,
		TLSConfig:              t.cfg.TLS,
		// Hot connections first: the cold ones then idle out instead of going stale.
		ConnPoolStrategy: fasthttp.LIFO,
	}
	b.codes = t.metrics.endpointCodes(t.upstream, ep.ID)
	t.mu.Lock()
	t.backends[b] = struct{}{}
	t.perID[ep.ID]++
	t.mu.Unlock()
	return b
}

// OnRemove closes the idle connections of an endpoint that left the upstream, or of the old
// address of one that moved. Connections still busy finish their exchange and are closed by
// the pool's idle timer. The endpoint's metric series go only when no backend of its ID is
// left: one that moved keeps counting into them.
func (t *Transport) OnRemove(ep *balancer.Endpoint) {
	b, ok := ep.Data.(*backend)
	if !ok {
		return
	}
	t.mu.Lock()
	delete(t.backends, b)
	t.perID[ep.ID]--
	gone := t.perID[ep.ID] <= 0
	if gone {
		delete(t.perID, ep.ID)
	}
	t.mu.Unlock()
	b.hc.CloseIdleConnections()
	if gone {
		t.metrics.forgetEndpoint(t.upstream, ep.ID)
	}
}

// CloseIdleConnections closes the idle pooled connections of every endpoint, for shutdown.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	bs := make([]*backend, 0, len(t.backends))
	for b := range t.backends {
		bs = append(bs, b)
	}
	t.mu.Unlock()
	for _, b := range bs {
		b.hc.CloseIdleConnections()
	}
}

// backend is what the proxy keeps per endpoint, in balancer.Endpoint.Data. Immutable.
type backend struct {
	id, addr    string
	ip          netip.AddrPort // addr, when it is an IP address and port
	tls         bool
	dialTimeout time.Duration
	hc          *fasthttp.HostClient
	bufs        *connBufs     // the Transport's, shared by all its endpoints
	codes       *codeCounters // requests by status class; nil without metrics

	maxStreaming int64        // TransportConfig.MaxStreamingBodiesPerEndpoint; < 0 no cap
	streaming    atomic.Int64 // attempts streaming a request body to this endpoint now
}

var errStreamingFull = errors.New("endpoint's streaming request bodies at their cap")

// holdStreaming takes one of the endpoint's slots for an attempt that streams its request
// body; false when all are taken. The caller gives it back with streaming.Add(-1).
func (b *backend) holdStreaming() bool {
	if b.streaming.Add(1) > b.maxStreaming && b.maxStreaming >= 0 {
		b.streaming.Add(-1)
		return false
	}
	return true
}

// connBufs are the read and write buffers of a Transport's connections, shared by all its
// endpoints. The pools of fasthttp's HostClient are per endpoint: with thousands of endpoints,
// each reached every few thousand requests, a GC empties them before their buffers come back
// into use, and many requests allocated a fresh read buffer (MaxResponseHeaderSize).
// One pool per Transport keeps the buffers in use. A reader goes back to the pool only when
// its connection is released (upConn.release), after any stream or tunnel reading through it.
type connBufs struct {
	readers, writers    sync.Pool // *bufio.Reader, *bufio.Writer, attached to no connection
	readSize, writeSize int
}

func (p *connBufs) reader(c net.Conn) *bufio.Reader {
	if br, ok := p.readers.Get().(*bufio.Reader); ok {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, p.readSize)
}

// putReader returns br to the pool; br must not be used again.
func (p *connBufs) putReader(br *bufio.Reader) {
	br.Reset(nil) // let go of the connection
	p.readers.Put(br)
}

func (p *connBufs) writer(c net.Conn) *bufio.Writer {
	if bw, ok := p.writers.Get().(*bufio.Writer); ok {
		bw.Reset(c)
		return bw
	}
	return bufio.NewWriterSize(c, p.writeSize)
}

// putWriter returns bw to the pool; bw must not be used again.
func (p *connBufs) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	p.writers.Put(bw)
}

// connectError marks a failure to connect: the request never reached the endpoint.
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// dialer returns the dial function of an endpoint's HostClient.
func dialer(timeout time.Duration) fasthttp.DialFunc {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(addr string) (net.Conn, error) {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &connectError{err: err}
		}
		return wrapConn(c), nil
	}
}

// isConnectError reports whether err says the endpoint was never reached.
func isConnectError(err error) bool {
	var ce *connectError
	return errors.As(err, &ce)
}
