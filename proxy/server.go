package proxy

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// ServerConfig configures the listener of the forwarding path. The zero value of every field
// means its default.
type ServerConfig struct {
	// ReadHeaderTimeout bounds the wait for a request line and header, from the connection's
	// accept or the previous response. The body is then read under the handler's
	// Config.StreamIdleTimeout. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request for this long.
	// Default 90s.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing a response to the client; a streamed body pushes the
	// deadline out by Config.StreamIdleTimeout with each piece. Default 60s.
	WriteTimeout time.Duration
	// MaxRequestHeaderSize is the largest request line plus header accepted; larger ones get
	// 431. It is also each connection's read buffer. Default 16 KiB.
	MaxRequestHeaderSize int
	// MaxConns caps the client connections open at once, on the listener (see Listener and
	// LoopServer): one more is answered 503 and closed. Default DefaultMaxConns(), sized to
	// the process's file-descriptor and memory limits.
	MaxConns int
	// Logger receives the server's own errors (a client sending garbage, a connection
	// broken mid-response) at Debug. If nil, they are dropped.
	Logger *zap.Logger
}

const (
	defaultReadHeaderTimeout    = 10 * time.Second
	defaultIdleTimeout          = 90 * time.Second
	defaultWriteTimeout         = 60 * time.Second
	defaultMaxRequestHeaderSize = 16 << 10
)

// NewServer returns the fasthttp.Server that serves handler (a Handler's ServeFastHTTP, or a
// router in front of several) on the forwarding path. What it sets, and why:
//
//   - StreamRequestBody: bodies are streamed to the endpoint, never buffered whole;
//     DisablePreParseMultipartForm, or fasthttp would parse multipart uploads itself.
//   - ReadTimeout = ReadHeaderTimeout, IdleTimeout, WriteTimeout as configured; the handler
//     extends the connection deadlines itself while a body streams.
//   - ReadBufferSize = MaxRequestHeaderSize: fasthttp answers 431 beyond it.
//   - Concurrency = MaxConns, which the Listener the server is given enforces first, with
//     its own answer (fasthttp's counts only the connections it serves, not the upgraded).
//   - NoDefaultServerHeader and an empty Name (no "Server: fasthttp"), NoDefaultContentType
//     and NoDefaultDate: the endpoint's headers go through as they are.
//   - Header names stay normalized (DisableHeaderNamesNormalizing off): the key extractor
//     looks headers up by canonical name.
//   - CloseOnShutdown: Shutdown closes keep-alive connections after their current response.
//   - SecureErrorLogMessage: request contents are kept out of the server's error logs.
//   - ReduceMemoryUsage: a connection that has not sent its first request holds no read
//     buffer and no RequestCtx (5.6 KiB idle instead of 23 KiB), and an idle
//     keep-alive connection gives its write buffer back; with StreamRequestBody, fasthttp
//     keeps the read buffer of a connection that has sent a request. Measured to add no
//     allocation per request (BenchmarkForwardGETServer).
//
// Malformed requests are answered 400 (431 for a header too large, 408 for a header too
// slow) with a short text body, and the connection is closed.
//
// For shutdown, call ShutdownWithContext on the server and Handler.Drain together: the server
// waits for the requests in progress, Drain for the upgraded connections it does not track,
// and Drain breaks off what is left when its context ends.
func NewServer(handler fasthttp.RequestHandler, cfg ServerConfig) (*fasthttp.Server, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrBadConfig)
	}
	cfg.ReadHeaderTimeout = orDefault(cfg.ReadHeaderTimeout, defaultReadHeaderTimeout)
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, defaultIdleTimeout)
	cfg.WriteTimeout = orDefault(cfg.WriteTimeout, defaultWriteTimeout)
	cfg.MaxRequestHeaderSize = orDefault(cfg.MaxRequestHeaderSize, defaultMaxRequestHeaderSize)
	cfg.MaxConns = orDefault(cfg.MaxConns, DefaultMaxConns())
	if cfg.ReadHeaderTimeout < 0 || cfg.IdleTimeout < 0 || cfg.WriteTimeout < 0 ||
		cfg.MaxRequestHeaderSize < 1024 || cfg.MaxConns < 1 {
		return nil, fmt.Errorf("%w: server: negative timeouts, a header limit below 1 KiB or no connections", ErrBadConfig)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	return &fasthttp.Server{
		Handler:                      handler,
		ErrorHandler:                 errorHandler,
		Logger:                       fasthttpLogger{logger.Sugar()},
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  cfg.ReadHeaderTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		ReadBufferSize:               cfg.MaxRequestHeaderSize,
		Concurrency:                  cfg.MaxConns,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		NoDefaultDate:                true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		TCPKeepalive:                 true,
		ReduceMemoryUsage:            true,
	}, nil
}

// errorHandler answers a request fasthttp could not parse.
func errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		ctx.Error("request header too large\n", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error(msgHeaderTimeout, fasthttp.StatusRequestTimeout)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large\n", fasthttp.StatusRequestEntityTooLarge)
	default:
		ctx.Error("malformed request\n", fasthttp.StatusBadRequest)
	}
}

// fasthttpLogger sends fasthttp's log lines to zap at Debug.
type fasthttpLogger struct{ s *zap.SugaredLogger }

func (l fasthttpLogger) Printf(format string, args ...any) { l.s.Debugf(format, args...) }
