package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// The headers the proxy writes or inspects, in fasthttp's canonical form.
const (
	hdrXForwardedFor   = "X-Forwarded-For"
	hdrXForwardedProto = "X-Forwarded-Proto"
	hdrXForwardedHost  = "X-Forwarded-Host"
	hdrXRealIP         = "X-Real-Ip"
	hdrXRequestID      = "X-Request-Id"
	hdrConnection      = "Connection"
)

// reqScan is what one pass over the raw request header found.
type reqScan struct {
	xff, xfp, xfh, realIP, requestID bool // present
	contentLength                    bool // a Content-Length line, whatever fasthttp kept
	transferEncoding                 bool // a Transfer-Encoding line, whatever fasthttp kept
	idempotencyKey                   bool // Idempotency-Key or X-Idempotency-Key
	upgradeHdr                       bool // an Upgrade line
	trailer                          bool // a Trailer line
	obsFold                          bool // a line continued with leading white space
	connUpgrade                      bool // "upgrade" among the Connection tokens
	tooManyOptions                   bool // Connection names more than maxConnectionOptions headers
	// strip says that a line may have to be dropped on the way upstream: one that
	// requestDrops names, or one the Connection header nominates.
	strip bool
	// nominated holds the header names the Connection header nominates.
	nominated nameSet
}

// scan reads the raw request header once (lines as received, before fasthttp's own
// bookkeeping) and notes the forwarding headers present, the names the Connection header
// nominates, and what framing and upgrade checks need, replacing what s held (its buffers are
// reused). trusted says whether the peer's forwarding headers are kept.
func (s *reqScan) scan(raw []byte, trusted bool) {
	*s = reqScan{nominated: s.nominated}
	s.nominated.reset()
	for len(raw) > 0 {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			line, raw = raw, nil
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			s.obsFold = true // RFC 9112 section 5.2: reject; fasthttp lets it through
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		key := line[:colon]
		switch key[0] | 0x20 {
		case 'c':
			if equalFold(key, "content-length") {
				s.contentLength = true
			} else if equalFold(key, "connection") {
				up, full := s.nominated.addOptions(line[colon+1:])
				s.connUpgrade = s.connUpgrade || up
				s.tooManyOptions = s.tooManyOptions || full
			}
		case 'i':
			if equalFold(key, "idempotency-key") {
				s.idempotencyKey = true
			}
		case 't':
			if equalFold(key, "transfer-encoding") {
				s.transferEncoding = true
			} else if equalFold(key, "trailer") {
				s.trailer = true
			}
		case 'u':
			if equalFold(key, "upgrade") {
				s.upgradeHdr = true
			}
		case 'x':
			s.scanX(key)
		}
		s.strip = s.strip || requestDrops(key, trusted, false)
	}
	if s.nominated.n > 0 {
		s.strip = true
		// A nominated line is dropped on the way: as good as absent, so the proxy adds its own.
		s.xfp = s.xfp && !s.nominated.has([]byte(hdrXForwardedProto))
		s.xfh = s.xfh && !s.nominated.has([]byte(hdrXForwardedHost))
		s.realIP = s.realIP && !s.nominated.has([]byte(hdrXRealIP))
		s.requestID = s.requestID && !s.nominated.has([]byte(hdrXRequestID))
		// An idempotency key the endpoint never sees cannot make a request safe to repeat.
		if s.idempotencyKey && (s.nominated.has([]byte("Idempotency-Key")) || s.nominated.has([]byte("X-Idempotency-Key"))) {
			s.idempotencyKey = false
		}
	}
}

// scanX notes the X- headers of scan that are present.
func (s *reqScan) scanX(key []byte) {
	switch {
	case equalFold(key, "x-request-id"):
		s.requestID = true
	case equalFold(key, "x-idempotency-key"):
		s.idempotencyKey = true
	case equalFold(key, "x-real-ip"):
		s.realIP = true
	case equalFold(key, "x-forwarded-for"):
		s.xff = true
	case equalFold(key, "x-forwarded-proto"):
		s.xfp = true
	case equalFold(key, "x-forwarded-host"):
		s.xfh = true
	}
}

// isUpgrade reports whether the request asks for a protocol upgrade (WebSocket and the
// like): HTTP/1.1 with "Connection: upgrade" and an Upgrade header.
func (s *reqScan) isUpgrade(h *fasthttp.RequestHeader) bool {
	return s.connUpgrade && s.upgradeHdr && h.IsHTTP11()
}

// prepareRequest rewrites the client's header into the one sent upstream: forwarding headers
// set, a request ID added when absent, and the framing left to the codec. The hop-by-hop
// headers are dropped later, as the head is written (appendHead).
//
// The headers the proxy adds are not put in the fasthttp header: they are appended, as
// header lines, to extra, which appendHead writes after the client's. Adding them to the
// header list would cost a key normalisation and an entry copy each, on every request.
// extra is reused; the returned slice holds the lines.
func (h *Handler) prepareRequest(ctx *fasthttp.RequestCtx, s *reqScan, peer, client netip.Addr, trusted, upgrade bool, extra []byte) []byte {
	hdr := &ctx.Request.Header
	if s.trailer {
		// fasthttp keeps the names Trailer lists apart and leaves the lines they name out of
		// the head it writes; the Trailer line itself is hop-by-hop. Not in its header list:
		// this deletion moves no line.
		hdr.Del("Trailer")
	}
	// The client's connection management is not the upstream's: the pool keeps its
	// connections alive, and the server has already noted whether to close the client's.
	hdr.ResetConnectionClose()
	hdr.SetNoDefaultContentType(true)

	// The lines added from here on are dropped from the client's header as it is written
	// (requestDrops), or kept and then not added. Their values hold no CR or LF: addresses, a
	// generated ID, and the Host the codec parsed as one line.
	extra = extra[:0]
	if upgrade {
		extra = append(extra, hdrConnection+": Upgrade\r\n"...)
	}
	if peer.IsValid() {
		extra = append(extra, hdrXForwardedFor+": "...)
		if trusted && s.xff {
			// The chain as it arrived, its lines in their order: the client's address is
			// read from its right end.
			for _, line := range hdr.PeekAll(hdrXForwardedFor) {
				if line = bytes.TrimSpace(line); len(line) > 0 {
					extra = append(extra, line...)
					extra = append(extra, ", "...)
				}
			}
		}
		extra = peer.AppendTo(extra)
		extra = append(extra, "\r\n"...)
	}
	if !(trusted && s.xfp) {
		if ctx.IsTLS() {
			extra = append(extra, hdrXForwardedProto+": https\r\n"...)
		} else {
			extra = append(extra, hdrXForwardedProto+": http\r\n"...)
		}
	}
	if !(trusted && s.xfh) {
		if host := hdr.Host(); len(host) > 0 {
			extra = appendLine(extra, hdrXForwardedHost, host)
		}
	}
	if !(trusted && s.realIP) && client.IsValid() {
		extra = append(extra, hdrXRealIP+": "...)
		extra = client.AppendTo(extra)
		extra = append(extra, "\r\n"...)
	}
	if !s.requestID {
		extra = append(extra, hdrXRequestID+": "...)
		extra = h.ids.append(extra)
		extra = append(extra, "\r\n"...)
	}
	switch {
	case h.cfg.Host != "":
		hdr.SetHost(h.cfg.Host)
	case len(hdr.Host()) == 0:
		// An HTTP/1.0 request may come without one; upstream it is HTTP/1.1, which needs one.
		hdr.SetHost(h.up.Name())
	}
	return extra
}

// appendLine appends the header line "name: value\r\n" to dst.
func appendLine(dst []byte, name string, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// addedValue returns the value of the line named name in extra (as prepareRequest wrote it:
// canonical names, one line each), or nil.
func addedValue(extra []byte, name string) []byte {
	for len(extra) > 0 {
		line := extra
		if i := bytes.IndexByte(extra, '\n'); i >= 0 {
			line, extra = extra[:i+1], extra[i+1:]
		} else {
			extra = nil
		}
		if len(line) > len(name)+2 && string(line[:len(name)]) == name && line[len(name)] == ':' {
			return bytes.TrimRight(line[len(name)+2:], "\r\n")
		}
	}
	return nil
}

// appendHead appends the head sent upstream to dst: the client's request line and header as
// rewritten, without the lines that stop at the proxy (dropped in one pass, the others in
// their order), then the proxy's own lines and the blank line. Both engines send this.
func (x *exchange) appendHead(dst []byte) []byte {
	start := len(dst)
	dst = x.ctx.Request.Header.AppendBytes(dst)
	dst = dst[:len(dst)-2] // the blank line
	if x.scan.strip {
		dst = dst[:start+len(x.scan.dropLines(dst[start:], x.trusted, x.upgrade))]
	}
	dst = append(dst, x.extra...)
	return append(dst, "\r\n"...)
}

// framingHeader reports whether name is a header that frames the message (Content-Length,
// Transfer-Encoding) or routes it (Host): a Connection header may not make us drop those.
func framingHeader(name []byte) bool {
	return equalFold(name, "content-length") || equalFold(name, "transfer-encoding") || equalFold(name, "host")
}

// isToken reports whether b is an RFC 9110 token, the syntax of header names.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// requestIDs makes X-Request-ID values: a random per-process prefix and a counter, unique
// without a call to crypto/rand per request. Safe for concurrent use.
type requestIDs struct {
	prefix [17]byte // 16 hex digits and a dash
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var r requestIDs
	var seed [8]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails on supported platforms
	hex.Encode(r.prefix[:16], seed[:])
	r.prefix[16] = '-'
	return &r
}

// append appends a new ID to dst.
func (r *requestIDs) append(dst []byte) []byte {
	dst = append(dst, r.prefix[:]...)
	return strconv.AppendUint(dst, r.n.Add(1), 16)
}
