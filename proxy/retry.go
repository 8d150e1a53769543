package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// failKind is how an attempt failed without a usable response.
type failKind uint8

const (
	failNone     failKind = iota
	failConnect           // the connection could not be made: the request never left
	failPoolFull          // the endpoint's connection pool was full: the request never left
	failTimeout           // no response header in time
	failReset             // the connection broke, or the response was malformed
	failClient            // reading the client's request body failed: nobody upstream is to blame
)

// String returns the reason label of retries and logs.
func (f failKind) String() string {
	switch f {
	case failConnect:
		return "connect"
	case failPoolFull:
		return "pool_full"
	case failTimeout:
		return "timeout"
	case failReset:
		return "reset"
	case failClient:
		return "client"
	}
	return "none"
}

// outcome maps f onto what outlier detection knows. A full pool and a failing client say
// nothing about the endpoint's health, so they report no failure (and no status).
func (f failKind) outcome() balancer.FailureKind {
	switch f {
	case failConnect:
		return balancer.FailConnect
	case failTimeout:
		return balancer.FailTimeout
	case failReset:
		return balancer.FailReset
	}
	return balancer.FailNone
}

// neverSent reports whether the attempt failed before any byte of the request was written, so
// that any request, whatever its method and body, may be retried.
func (f failKind) neverSent() bool { return f == failConnect || f == failPoolFull }

// classify maps an error of the exchange with the endpoint onto a failKind.
func classify(err error) failKind {
	switch {
	case err == nil:
		return failNone
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return failPoolFull
	case isConnectError(err):
		return failConnect
	case isTimeout(err):
		return failTimeout
	}
	return failReset
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isStale reports whether err is what a pooled connection that the endpoint closed while it
// sat idle looks like: the end of the stream (or a reset) before the first byte of a response.
// fasthttp reports any error on the first byte of a response header as io.EOF.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// idempotentMethod reports whether RFC 9110 calls the method idempotent (QUERY included), so
// that a request may be sent twice.
func idempotentMethod(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsPut() || h.IsDelete() || h.IsTrace() ||
		string(h.Method()) == "QUERY"
}

// retryStatus reports whether a response status is worth another endpoint's try.
func retryStatus(status int) bool {
	return status == fasthttp.StatusBadGateway || status == fasthttp.StatusServiceUnavailable ||
		status == fasthttp.StatusGatewayTimeout
}

// result is the end of one attempt.
type result struct {
	status    int      // the response status, 0 when there is none
	fail      failKind // failNone when there is a response
	err       error
	afterHead bool // the failure came after a response header: not a stale connection's
}

// shouldRetry reports whether the request may go to another endpoint after r: a request that
// never left may always; otherwise only an idempotent one whose body can be sent again, after
// a timeout, a reset, or a 502, 503 or 504.
func (x *exchange) shouldRetry(r result) bool {
	switch {
	case r.fail.neverSent():
		return true
	case r.fail == failClient, !x.idempotent, !x.canResend():
		return false
	case r.fail == failTimeout, r.fail == failReset:
		return true
	}
	return r.fail == failNone && retryStatus(r.status)
}

var errRequestTimeout = errors.New("request timeout passed before the attempt")

// pastDeadline reports whether Config.RequestTimeout has passed at now: no attempt starts then,
// so that no endpoint is charged a timeout it had no time to avoid.
func (x *exchange) pastDeadline(now time.Time) bool {
	return !x.deadline.IsZero() && !now.Before(x.deadline)
}

// retryAfter decides whether the request goes to another endpoint after its attempt-th
// attempt ended with r at now: the retry policy (shouldRetry), the attempts left, the time
// left (Config.RequestTimeout), and the budget. For a response in hand (a 502, 503 or 504), it also picks the next endpoint, which
// it returns: the response is dropped only when another endpoint is there to try, or the
// client would get the proxy's 502 instead of the endpoint's answer.
func (x *exchange) retryAfter(pick *balancer.Pick, attempt int, r result, now time.Time) (next *balancer.Endpoint, retry bool) {
	h := x.h
	if attempt >= h.cfg.Retry.Attempts || !x.shouldRetry(r) || x.pastDeadline(now) {
		return nil, false
	}
	if r.fail == failNone {
		n, err := pick.Next()
		if err != nil {
			return nil, false
		}
		next = n
	}
	if !h.budget.tryRetry(now) {
		if h.metrics != nil {
			h.metrics.budget.Inc()
		}
		return nil, false
	}
	return next, true
}
