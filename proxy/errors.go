package proxy

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// The proxy's own answers carry a short text body saying what went wrong, so that a client
// (or an operator with curl) can tell them from an endpoint's.
//
//	400  the request is malformed or ambiguous (never a 5xx for client garbage), or it has
//	     no routing key and the upstream rejects keyless requests
//	408  the client stopped sending its body
//	413  the request body is larger than Config.MaxRequestBody
//	502  every attempt failed (refused, reset, malformed response)
//	503  no endpoint can take the request: none healthy, all at their request cap, all
//	     connection pools full, or too many upgraded connections
//	504  the last attempt timed out
const contentTypeText = "text/plain; charset=utf-8"

// msgHeaderTimeout is the body of the 408 a client gets when its request head is not in within
// ServerConfig.ReadHeaderTimeout, on either engine.
const msgHeaderTimeout = "request timeout\n"

// respond replaces the response with the proxy's own.
func (x *exchange) respond(status int, msg string) int {
	return x.respondClose(status, msg, false)
}

// respondClose is respond, closing the client connection after the response when close is
// set.
func (x *exchange) respondClose(status int, msg string, close bool) int {
	resp := &x.ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType(contentTypeText)
	resp.SetBodyString(msg)
	if cl := x.ctx.Request.Header.ContentLength(); close || (!x.bodyDone && cl != 0 && cl != -2) {
		// Unless told to, only when the rest of the body is still on the wire, where
		// fasthttp would read it as the next request.
		x.ctx.SetConnectionClose()
	}
	if x.log != nil {
		x.log.reason = msg
	}
	if m := x.h.metrics; m != nil {
		m.local.inc(status)
	}
	return status
}

// reject answers a request the proxy will not forward, and closes the connection: a client
// that sent one malformed request may have framed the next one wrong too.
func (x *exchange) reject(status int, why string) int {
	return x.respondClose(status, why+"\n", true)
}

// clientFailed answers a request whose body could not be read.
func (x *exchange) clientFailed(err error) int {
	if errors.Is(err, errBodyTooLarge) {
		return x.respondClose(fasthttp.StatusRequestEntityTooLarge, "request body too large\n", true)
	}
	if isTimeout(err) {
		return x.respondClose(fasthttp.StatusRequestTimeout, "request body timed out\n", true)
	}
	return x.respondClose(fasthttp.StatusBadRequest, "request body incomplete\n", true)
}

// noEndpoint answers a request for which the pick had no endpoint left. last is the previous
// attempt's result, if there was one.
func (x *exchange) noEndpoint(err error, last result) int {
	switch {
	case errors.Is(err, balancer.ErrNoKey):
		return x.respond(fasthttp.StatusBadRequest, "request has no routing key\n")
	case errors.Is(err, balancer.ErrOverloaded):
		return x.respond(fasthttp.StatusServiceUnavailable, "upstream overloaded\n")
	case last.fail == failPoolFull:
		return x.respond(fasthttp.StatusServiceUnavailable, "upstream connection pools full\n")
	case last.fail != failNone:
		return x.failed(last)
	}
	return x.respond(fasthttp.StatusServiceUnavailable, "no healthy endpoint\n")
}

// failed answers a request whose last attempt ended with the failure r. (A response an
// endpoint sent is delivered as it is, whatever its status.) The proxy's answers are counted
// with endpoint "".
func (x *exchange) failed(r result) int {
	x.up.release(false)
	var status int
	var msg string
	switch r.fail {
	case failClient:
		return x.clientFailed(r.err)
	case failTimeout:
		status, msg = fasthttp.StatusGatewayTimeout, "upstream timed out\n"
	case failPoolFull:
		status, msg = fasthttp.StatusServiceUnavailable, "upstream connection pools full\n"
	default:
		status, msg = fasthttp.StatusBadGateway, "upstream unavailable\n"
	}
	return x.respond(status, msg)
}
