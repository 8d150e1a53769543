package proxy

import (
	"time"

	"go.uber.org/zap"
)

// abortReason is why a response body was broken off after its header had gone to the client:
// too late for a retry or an answer of the proxy's own, so the client's connection is closed
// and the client sees a truncated body. Both engines report each one through bodyAborted.
type abortReason uint8

const (
	abortIdle     abortReason = iota // no byte for Config.StreamIdleTimeout
	abortDeadline                    // Config.RequestTimeout passed
	abortEndpoint                    // the endpoint's connection broke, or it sent a malformed body
	numAbortReasons
)

// String returns the reason label of the metric and the log.
func (r abortReason) String() string {
	switch r {
	case abortIdle:
		return "idle_timeout"
	case abortDeadline:
		return "request_timeout"
	}
	return "endpoint"
}

// abortCause says why a body read failed with err at now, for a request whose
// Config.RequestTimeout ends at deadline (zero for none).
func abortCause(err error, deadline, now time.Time) abortReason {
	switch {
	case !isTimeout(err):
		return abortEndpoint
	case !deadline.IsZero() && !now.Before(deadline):
		return abortDeadline
	}
	return abortIdle
}

// bodyAborted counts and logs a response body broken off for why; err is the failure seen.
func (h *Handler) bodyAborted(be *backend, why abortReason, err error) {
	if h.metrics != nil {
		h.metrics.aborts[why].Inc()
	}
	if ce := h.log.Check(zap.WarnLevel, "response body broken off"); ce != nil {
		ce.Write(zap.String("endpoint", be.id), zap.Stringer("reason", why), zap.Error(err))
	}
}
