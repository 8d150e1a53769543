package proxy

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// http2Refusal is what a listener that speaks HTTP/1.1 only says to a client that opened with
// the HTTP/2 connection preface (prior knowledge, as gRPC clients do): the server's preface
// (an empty SETTINGS frame) and a GOAWAY that processed no stream, with the error code
// HTTP_1_1_REQUIRED (RFC 9113, sections 3.4, 6.8 and 7). An HTTP/2 client reads it as "use
// HTTP/1.1" instead of choking on an HTTP/1.1 response it cannot parse.
var http2Refusal = []byte{
	0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS: length 0, no flags, stream 0
	0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY: length 8, no flags, stream 0
	0, 0, 0, 0, // last stream ID: none processed
	0, 0, 0, 0xd, // HTTP_1_1_REQUIRED
}

// isHTTP2Preface reports whether h is the request line of the HTTP/2 connection preface
// ("PRI * HTTP/2.0"), as an HTTP/1 parser reads it.
func isHTTP2Preface(h *fasthttp.RequestHeader) bool {
	return string(h.Method()) == "PRI" && string(h.RequestURI()) == "*" && string(h.Protocol()) == "HTTP/2.0"
}

// RefuseHTTP2 reports whether the request in ctx is the HTTP/2 connection preface, and if so
// answers it with http2Refusal on the raw connection, which the server then closes: nothing of
// it goes to an endpoint. Handler does it for every request; a server that routes requests
// among handlers calls it for a request it routes nowhere (the preface has no Host).
func RefuseHTTP2(ctx *fasthttp.RequestCtx) bool {
	if !isHTTP2Preface(&ctx.Request.Header) {
		return false
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(lingerRefusal)
	return true
}

// lingerRefusal writes http2Refusal, then reads what the client goes on sending (the rest of
// its preface, its SETTINGS, its first request) until it closes, as it does on the GOAWAY, for
// a second at most: closing a socket with unread bytes resets the connection, and the reset
// can reach the client before it has read the GOAWAY.
func lingerRefusal(c net.Conn) {
	if _, err := c.Write(http2Refusal); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

// refuseHTTP2 records the refusal of the HTTP/2 preface RefuseHTTP2 answered, and returns its
// status, 505.
func (x *exchange) refuseHTTP2() int {
	if x.log != nil {
		x.log.reason = "HTTP/2 connection preface on an HTTP/1.1 listener"
	}
	if m := x.h.metrics; m != nil {
		m.local.inc(fasthttp.StatusHTTPVersionNotSupported)
	}
	return fasthttp.StatusHTTPVersionNotSupported
}
