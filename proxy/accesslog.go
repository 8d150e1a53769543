package proxy

import (
	"bytes"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// accessLog writes one Info line for one request in every `every`. A nil *accessLog is off and
// costs one nil check per request. Safe for concurrent use.
type accessLog struct {
	log      *zap.Logger
	upstream string
	every    uint64
	n        atomic.Uint64
}

func newAccessLog(l *zap.Logger, upstream string, every int) *accessLog {
	if l == nil {
		return nil
	}
	return &accessLog{log: l, upstream: upstream, every: uint64(max(every, 1))}
}

// sample reports whether the next request is logged.
func (a *accessLog) sample() bool {
	return a != nil && a.n.Add(1)%a.every == 0
}

// entry is what an exchange remembers of a sampled request for its access log line.
type entry struct {
	method, path []byte // before any rewrite; the query is left out, it may carry secrets
	endpoint     string
	attempts     int
	reason       string // why the proxy answered itself, if it did
}

// begin records the request line of a sampled request.
func (e *entry) begin(method, uri []byte) {
	e.method = append(e.method[:0], method...)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	e.path = append(e.path[:0], uri...)
	e.endpoint, e.attempts, e.reason = "", 0, ""
}

// write logs the request. Keys are constant snake_case.
func (a *accessLog) write(e *entry, status int, d time.Duration, x *exchange) {
	fields := [...]zap.Field{
		zap.String("upstream", a.upstream),
		zap.ByteString("method", e.method),
		zap.ByteString("path", e.path),
		zap.Int("status", status),
		zap.Duration("duration", d),
		zap.String("endpoint", e.endpoint),
		zap.Int("attempts", e.attempts),
		zap.Stringer("client_ip", x.client),
		zap.ByteString("request_id", x.requestID()),
		zap.String("reason", e.reason),
	}
	a.log.Info("request", fields[:]...)
}

// requestID is the request's X-Request-Id as the endpoint saw it: the one the proxy added,
// or else the client's.
func (x *exchange) requestID() []byte {
	if id := addedValue(x.extra, hdrXRequestID); len(id) > 0 {
		return id
	}
	return x.ctx.Request.Header.Peek(hdrXRequestID)
}
