package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/proxy/balancer"
	"github.com/ringside-proxy/ringside/proxy/hashkey"
)

// Options are the collaborators of a Handler. All are optional.
type Options struct {
	// Logger receives an endpoint without a transport (a wiring mistake) at Error, and each
	// failed attempt at Debug (checked first: nothing is built when Debug is off). If nil,
	// zap.NewNop().
	Logger *zap.Logger
	// Metrics records requests, latency, retries and tunnels. If nil, nothing is recorded.
	Metrics *Metrics
	// AccessLog, if set, receives one Info line per sampled request. If nil, there is no
	// access log, at no cost.
	AccessLog *zap.Logger
	// AccessLogEvery samples the access log: one request in every AccessLogEvery is logged.
	// Default 100; 1 logs every request.
	AccessLogEvery int
}

// Handler forwards requests to the endpoints of one balancer.Upstream. Create it with New;
// serve it with a fasthttp.Server configured as NewServer does (StreamRequestBody on).
//
// A Handler is safe for concurrent use. None of its configuration may change after New.
// Streamed response bodies and upgraded connections outlive ServeFastHTTP; Drain waits for
// them at shutdown.
type Handler struct {
	cfg     Config
	up      *balancer.Upstream
	keys    *hashkey.Extractor
	log     *zap.Logger
	access  *accessLog
	metrics *upstreamMetrics
	budget  *budget
	ids     *requestIDs
	track   tracker
	tunnels atomic.Int64

	noTransport atomic.Bool // the wiring mistake was logged
	exchanges   sync.Pool
}

// New returns a Handler forwarding to up. up's endpoints must carry the Data of a Transport:
// create up with Transport.BalancerOptions.
func New(cfg Config, up *balancer.Upstream, opts Options) (*Handler, error) {
	if up == nil {
		return nil, fmt.Errorf("%w: nil upstream", ErrBadConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	specs, err := hashkey.ParseSpecs(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("%w: upstream %q: %w", ErrBadConfig, up.Name(), err)
	}
	keys, err := hashkey.New(specs, cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("%w: upstream %q: %w", ErrBadConfig, up.Name(), err)
	}
	cfg.TrustedProxies = keys.Trusted() // masked copies
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	h := &Handler{
		cfg:     cfg,
		up:      up,
		keys:    keys,
		log:     opts.Logger.With(zap.String("upstream", up.Name())),
		access:  newAccessLog(opts.AccessLog, up.Name(), orDefault(opts.AccessLogEvery, 100)),
		metrics: opts.Metrics.upstream(up.Name()),
		budget:  newBudget(cfg.Retry.Budget),
		ids:     newRequestIDs(),
	}
	h.exchanges.New = func() any { return &exchange{h: h} }
	return h, nil
}

// Drain waits for the streamed responses and upgraded connections in progress to end, for
// shutdown; new upgrades are refused from the first call on. When ctx ends first, it breaks
// off what is left (closing the connections), waits briefly for it to unwind, and returns
// ctx.Err(). Call it alongside fasthttp.Server.ShutdownWithContext: the server does not wait
// for upgraded connections, and cannot interrupt a stream that never ends.
func (h *Handler) Drain(ctx context.Context) error { return h.track.drain(ctx) }

// Active returns the number of streamed responses and upgraded connections in progress.
func (h *Handler) Active() int { return h.track.len() }

// exchange is the state of one request, pooled.
type exchange struct {
	h   *Handler
	ctx *fasthttp.RequestCtx

	peer, client netip.Addr
	trusted      bool
	upgrade      bool
	idempotent   bool

	bodyMode    uint8
	bodyTouched bool   // a byte of the streamed body was read
	bodyDone    bool   // the client's body was read to its end
	body        []byte // bodyBuffered: the whole body

	up   upConn // the endpoint connection of the current attempt, while held
	keep bool   // up may be reused once the response body is read

	// The clock, read as little as it can be: fasthttp stamps the request (ctx.Time) just
	// before the handler runs, which serves as the first attempt's start unless the handler
	// then waited for the client's body; each attempt's end is the next one's start.
	bodyWaited bool      // prepareBody read the body from the client
	ended      time.Time // when the last attempt ended; zero if none ran
	deadline   time.Time // Config.RequestTimeout's end; zero for none

	// Buffers reused from request to request.
	scan    reqScan // what the scan of the request header found (its names reused)
	target  []byte  // the rewritten request target
	dropped nameSet // the response header names cleanResponse drops
	extra   []byte  // the header lines the proxy adds (prepareRequest)
	head    []byte  // the request header as sent upstream (writeRequest)
	log     *entry  // non-nil when this request is sampled for the access log
}

// ServeFastHTTP forwards one request. It implements the fasthttp.RequestHandler signature.
func (h *Handler) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	x := h.exchanges.Get().(*exchange)
	x.ctx = ctx
	x.observeStart()
	status := x.serve()
	x.observeEnd(status, ctx.Time(), x.ended)
	x.reset()
	h.exchanges.Put(x)
}

// observeStart samples the request in x.ctx for the access log and counts it in flight.
func (x *exchange) observeStart() {
	h := x.h
	if h.access.sample() {
		if x.log == nil {
			x.log = new(entry)
		}
		x.log.begin(x.ctx.Method(), x.ctx.Request.Header.RequestURI())
	} else if x.log != nil {
		x.log = nil
	}
	if h.metrics != nil {
		h.metrics.inFlight.Inc()
	}
}

// observeEnd records the end of the request begun at start and answered with status: the
// metrics and the access log line. end is when it ended; zero reads the clock, which is read
// only when something is recorded.
func (x *exchange) observeEnd(status int, start, end time.Time) {
	h := x.h
	if h.metrics == nil && x.log == nil {
		return
	}
	if end.IsZero() {
		end = time.Now()
	}
	took := end.Sub(start)
	if h.metrics != nil {
		h.metrics.inFlight.Dec()
		h.metrics.duration.Observe(took.Seconds())
	}
	if x.log != nil {
		h.access.write(x.log, status, took, x)
	}
}

// logAttemptFailed logs a failed attempt at Debug; nothing is built when Debug is off.
func (h *Handler) logAttemptFailed(be *backend, attempt int, r result) {
	if ce := h.log.Check(zap.DebugLevel, "attempt failed"); ce != nil {
		ce.Write(zap.String("endpoint", be.id), zap.Int("attempt", attempt),
			zap.Stringer("failure", r.fail), zap.Error(r.err))
	}
}

func (x *exchange) reset() {
	x.up.release(false) // a safety net: every path has released or handed over the connection
	nominated, dropped := x.scan.nominated, x.dropped
	nominated.reset()
	dropped.reset()
	*x = exchange{h: x.h, body: x.body[:0], target: x.target[:0], dropped: dropped,
		extra: x.extra[:0], head: x.head[:0], log: x.log}
	x.scan.nominated = nominated
}

// serve handles the request and returns the status sent.
func (x *exchange) serve() int {
	hash, hasKey, status, ok := x.begin(x.ctx.Time())
	if !ok {
		return status
	}
	return x.forward(hash, hasKey)
}

// begin runs the checks and rewrites that come before the first attempt: it returns the
// request's hash, or ok false with the status of the proxy's own answer, already in the
// response, when the request is not to be forwarded. now is when the request came in.
func (x *exchange) begin(now time.Time) (hash uint64, hasKey bool, status int, ok bool) {
	h, ctx := x.h, x.ctx
	hdr := &ctx.Request.Header
	if RefuseHTTP2(ctx) {
		return 0, false, x.refuseHTTP2(), false
	}
	x.peer = hashkey.PeerAddr(ctx)
	x.trusted = hashkey.Trusted(x.peer, h.cfg.TrustedProxies)
	scan := &x.scan
	scan.scan(hdr.RawHeaders(), x.trusted)

	// Request smuggling shapes fasthttp lets through: it refuses duplicate Content-Length
	// headers, transfer codings other than chunked and identity, and bad header bytes itself,
	// but quietly prefers Transfer-Encoding when Content-Length is there too, ignores
	// "identity" (RFC 9112 section 6.1: a request whose final coding is not chunked is a 400),
	// and accepts obs-fold.
	if scan.transferEncoding && scan.contentLength {
		return 0, false, x.reject(fasthttp.StatusBadRequest, "both Content-Length and Transfer-Encoding"), false
	}
	if scan.transferEncoding && hdr.ContentLength() != -1 {
		return 0, false, x.reject(fasthttp.StatusBadRequest, "Transfer-Encoding other than chunked"), false
	}
	if scan.obsFold {
		return 0, false, x.reject(fasthttp.StatusBadRequest, "obsolete line folding in header"), false
	}
	if scan.tooManyOptions {
		return 0, false, x.reject(fasthttp.StatusBadRequest, "Connection header names too many headers"), false
	}
	if len(hdr.Host()) == 0 && hdr.IsHTTP11() {
		return 0, false, x.reject(fasthttp.StatusBadRequest, "missing Host header"), false
	}
	x.client = x.peer
	if x.trusted {
		x.client = hashkey.ClientIP(ctx, h.cfg.TrustedProxies)
	}
	// A request that asks for an upgrade and to close the connection cannot be tunnelled:
	// fasthttp closes the connection after the response instead of running the hijack, which
	// would hold a tunnel slot until hijackWait. Serve it as a plain request.
	x.upgrade = scan.isUpgrade(hdr) && !hdr.ConnectionClose()
	x.idempotent = idempotentMethod(hdr) || scan.idempotencyKey
	hash, hasKey = h.keys.Hash(ctx) // before any rewrite: keys see the request as sent

	if max := h.cfg.MaxRequestBody; max > 0 && int64(hdr.ContentLength()) > max {
		return 0, false, x.reject(fasthttp.StatusRequestEntityTooLarge, "request body too large"), false
	}
	if x.target, ok = h.rewriteURI(hdr, x.target); !ok {
		return 0, false, x.reject(fasthttp.StatusBadRequest, "bad request target"), false
	}
	x.extra = h.prepareRequest(ctx, scan, x.peer, x.client, x.trusted, x.upgrade, x.extra)
	if t := h.cfg.RequestTimeout; t > 0 {
		x.deadline = now.Add(t) // before the body is read: reading it counts too
	}
	if err := x.prepareBody(); err != nil {
		return 0, false, x.clientFailed(err), false
	}
	if x.bodyMode != bodyStreamed {
		x.bodyDone = true
	}
	if x.upgrade && !x.reserveTunnel() {
		return 0, false, x.reject(fasthttp.StatusServiceUnavailable, "too many upgraded connections"), false
	}
	h.budget.request(now)
	return hash, hasKey, 0, true
}

// forward runs the attempts of the request on the endpoints of its pick.
func (x *exchange) forward(hash uint64, hasKey bool) int {
	h := x.h
	var pick balancer.Pick
	h.up.Begin(&pick, hash, hasKey)
	var last result
	var next *balancer.Endpoint // the endpoint of a retry, chosen before a response is dropped
	attempted := false
	start := x.ctx.Time()
	if x.bodyWaited || start.IsZero() { // zero: a RequestCtx set up by hand, not by fasthttp.Server
		start = time.Now()
	}
	for attempt := 1; ; attempt++ {
		ep := next
		next = nil
		if ep == nil {
			var err error
			if ep, err = pick.Next(); err != nil {
				x.releaseTunnel()
				if attempted && errors.Is(err, balancer.ErrExhausted) {
					return x.failed(last)
				}
				return x.noEndpoint(err, last)
			}
		}
		be, ok := ep.Data.(*backend)
		if !ok {
			x.missingTransport(ep)
			continue
		}
		if !x.deadline.IsZero() && x.pastDeadline(time.Now()) { // the clock only when there is a deadline
			x.releaseTunnel()
			return x.failed(result{fail: failTimeout, err: errRequestTimeout})
		}
		attempted = true
		if x.log != nil {
			x.log.endpoint, x.log.attempts = be.id, attempt
		}
		ep.Start()
		last = x.attempt(be, start)
		x.ended = time.Now()
		ep.Finish(balancer.Outcome{Status: last.status, Failure: last.fail.outcome(), Latency: x.ended.Sub(start)})
		if last.fail != failNone {
			h.logAttemptFailed(be, attempt, last)
		}
		var retry bool
		if next, retry = x.retryAfter(&pick, attempt, last, x.ended); !retry {
			if last.fail == failNone {
				return x.deliver(be, last.status)
			}
			x.releaseTunnel()
			return x.failed(last)
		}
		if h.metrics != nil {
			h.metrics.retries[last.fail].Inc()
		}
		x.discard()
		start = x.ended
		if last.fail == failNone {
			start = time.Now() // the dropped response's body was read
		}
	}
}

// missingTransport handles an endpoint whose Data is not a Transport's: a wiring mistake,
// logged once.
func (x *exchange) missingTransport(ep *balancer.Endpoint) {
	ep.Start()
	ep.Finish(balancer.Outcome{})
	if x.h.noTransport.CompareAndSwap(false, true) {
		x.h.log.Error("endpoint has no transport: create the upstream with Transport.BalancerOptions",
			zap.String("endpoint", ep.ID))
	}
}

// deliver sends the response of the last attempt to the client: a body already read, a body
// streamed from the endpoint, or an upgrade.
func (x *exchange) deliver(be *backend, status int) int {
	be.codes.inc(status)
	if status == fasthttp.StatusSwitchingProtocols {
		x.startTunnel()
		return status
	}
	x.releaseTunnel()
	if x.up.c == nil {
		return status
	}
	resp := &x.ctx.Response
	cl := resp.Header.ContentLength()
	s := newRespStream(x.h, be, x.up, x.ctx.Conn(), x.deadline, cl, x.keep)
	x.up = upConn{}
	if cl < 0 && !x.ctx.Request.Header.IsHTTP11() {
		x.deliverUntilClose(s)
		return status
	}
	if cl < 0 {
		cl = -1
	}
	// The header goes out at once: a stream of events must not wait for its first one, and a
	// body broken off later must reach the client as a truncated body after its header, not
	// as an empty reply (a body of known length has sent its first byte already, firstByte).
	resp.ImmediateHeaderFlush = true
	resp.SetBodyStream(s, cl)
	return status
}

// discard drops the response of an attempt that will be retried.
func (x *exchange) discard() {
	x.up.release(false)
	x.ctx.Response.ResetBody()
}
