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
	hdrUpgrade         = "Upgrade"
)

// reqScan is what one pass over the raw request header found.
type reqScan struct {
	xff, xfp, xfh, realIP, requestID bool // present
	contentLength                    bool // a Content-Length line, whatever fasthttp kept
	idempotencyKey                   bool // Idempotency-Key or X-Idempotency-Key
	upgradeHdr                       bool // an Upgrade line
	obsFold                          bool // a line continued with leading white space
	connUpgrade                      bool // "upgrade" among the Connection tokens
	// drop lists, NUL-terminated, the header names to delete before forwarding.
	drop []byte
}

// scanRequest reads the raw request header once (lines as received, before fasthttp's own
// bookkeeping) and notes the hop-by-hop headers to drop, the forwarding headers present, and
// what framing and upgrade checks need. trusted says whether the peer's forwarding headers
// are kept. drop is appended to scratch.
func scanRequest(raw []byte, trusted bool, scratch []byte) reqScan {
	s := reqScan{drop: scratch[:0]}
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
				s.dropConnectionTokens(bytes.TrimSpace(line[colon+1:]))
			}
		case 'e':
			if equalFold(key, "expect") { // answered by the server before the handler ran
				s.dropName(key)
			}
		case 'f':
			if !trusted && equalFold(key, "forwarded") {
				s.dropName(key)
			}
		case 'i':
			if equalFold(key, "idempotency-key") {
				s.idempotencyKey = true
			}
		case 'k':
			if equalFold(key, "keep-alive") {
				s.dropName(key)
			}
		case 'p':
			if len(key) > 6 && equalFold(key[:6], "proxy-") {
				s.dropName(key)
			}
		case 't':
			if equalFold(key, "te") || equalFold(key, "trailer") {
				s.dropName(key)
			}
		case 'u':
			if equalFold(key, "upgrade") {
				s.upgradeHdr = true
			}
		case 'x':
			s.scanX(key, trusted)
		}
	}
	return s
}

// scanX handles the X- headers of scanRequest.
func (s *reqScan) scanX(key []byte, trusted bool) {
	switch {
	case equalFold(key, "x-request-id"):
		s.requestID = true
		return
	case equalFold(key, "x-idempotency-key"):
		s.idempotencyKey = true
		return
	case equalFold(key, "x-real-ip"):
		s.realIP = true
	case len(key) > len("x-forwarded-") && equalFold(key[:len("x-forwarded-")], "x-forwarded-"):
		switch rest := key[len("x-forwarded-"):]; {
		case equalFold(rest, "for"):
			s.xff = true
		case equalFold(rest, "proto"):
			s.xfp = true
		case equalFold(rest, "host"):
			s.xfh = true
		}
	default:
		return
	}
	if !trusted {
		s.dropName(key)
	}
}

// dropConnectionTokens drops the headers a Connection header names, and Connection itself.
func (s *reqScan) dropConnectionTokens(v []byte) {
	s.dropName([]byte(hdrConnection))
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.TrimSpace(tok)
		switch {
		case !isToken(tok), equalFold(tok, "close"), equalFold(tok, "keep-alive"):
		case equalFold(tok, "upgrade"):
			s.connUpgrade = true
		case framingHeader(tok):
			// "Connection: Content-Length" must not strip the body's framing: deleting it
			// would forward the request without its body and leave that body on the client's
			// connection, read as the next request (a CL.0 desync).
		default:
			s.dropName(tok)
		}
	}
}

// dropName adds name to the drop list. A name that is no token cannot have come through
// fasthttp's parser; it is skipped rather than let a NUL into the list.
func (s *reqScan) dropName(name []byte) {
	if !isToken(name) {
		return
	}
	s.drop = append(s.drop, name...)
	s.drop = append(s.drop, 0)
}

// isUpgrade reports whether the request asks for a protocol upgrade (WebSocket and the
// like): HTTP/1.1 with "Connection: upgrade" and an Upgrade header.
func (s *reqScan) isUpgrade(h *fasthttp.RequestHeader) bool {
	return s.connUpgrade && s.upgradeHdr && h.IsHTTP11()
}

// prepareRequest rewrites the client's header into the one sent upstream: hop-by-hop headers
// gone (the Upgrade pair kept for upgrades), forwarding headers set, a request ID added when
// absent, and the framing left to the codec.
//
// The headers the proxy adds are not put in the fasthttp header: they are appended, as
// header lines, to extra, which writeRequest sends after the client's. Adding them to the
// header list would cost a key normalisation and an entry copy each, on every request.
// extra is reused; the returned slice holds the lines.
func (h *Handler) prepareRequest(ctx *fasthttp.RequestCtx, s *reqScan, peer, client netip.Addr, trusted, upgrade bool, extra []byte) []byte {
	hdr := &ctx.Request.Header
	for names := s.drop; len(names) > 0; {
		i := bytes.IndexByte(names, 0)
		if upgrade && equalFold(names[:i], "upgrade") {
			names = names[i+1:]
			continue
		}
		hdr.DelBytes(names[:i])
		names = names[i+1:]
	}
	if !upgrade {
		hdr.Del(hdrUpgrade)
	} else {
		hdr.Set(hdrConnection, "Upgrade")
	}
	// The client's connection management is not the upstream's: the pool keeps its
	// connections alive, and the server has already noted whether to close the client's.
	hdr.ResetConnectionClose()
	hdr.SetNoDefaultContentType(true)

	// The lines added from here on are absent from hdr: the client's were dropped above (or
	// below, for a trusted X-Forwarded-For), or kept and then not added. Their values hold
	// no CR or LF: addresses, a generated ID, and the Host the codec parsed as one line.
	extra = extra[:0]
	if peer.IsValid() {
		extra = append(extra, hdrXForwardedFor+": "...)
		if trusted && s.xff {
			for _, line := range hdr.PeekAll(hdrXForwardedFor) {
				if line = bytes.TrimSpace(line); len(line) > 0 {
					extra = append(extra, line...)
					extra = append(extra, ", "...)
				}
			}
			hdr.Del(hdrXForwardedFor)
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

// cleanResponse removes the hop-by-hop headers of an upstream response: Connection and the
// headers it names, Keep-Alive, Proxy-*, TE, Trailer, and Upgrade unless the response
// switches protocols. Transfer-Encoding and Content-Length are the codec's: they are rewritten
// for the client. scratch is reused for the names found.
func cleanResponse(hdr *fasthttp.ResponseHeader, switching bool, scratch []byte) []byte {
	drop := scratch[:0]
	add := func(name []byte) {
		drop = append(drop, name...)
		drop = append(drop, 0)
	}
	for k, v := range hdr.All() {
		switch k[0] | 0x20 {
		case 'c':
			if equalFold(k, "connection") {
				if !switching {
					add(k)
				}
				for tok := range bytes.SplitSeq(v, []byte(",")) {
					tok = bytes.TrimSpace(tok)
					if len(tok) > 0 && !equalFold(tok, "close") && !equalFold(tok, "keep-alive") &&
						!(switching && equalFold(tok, "upgrade")) && !framingHeader(tok) {
						add(tok) // never the framing: the body would stay unread on a pooled connection
					}
				}
			}
		case 'k':
			if equalFold(k, "keep-alive") {
				add(k)
			}
		case 'p':
			if len(k) > 6 && equalFold(k[:6], "proxy-") {
				add(k)
			}
		case 't':
			if equalFold(k, "te") || equalFold(k, "trailer") {
				add(k)
			}
		case 'u':
			if !switching && equalFold(k, "upgrade") {
				add(k)
			}
		}
	}
	for names := drop; len(names) > 0; {
		i := bytes.IndexByte(names, 0)
		hdr.DelBytes(names[:i])
		names = names[i+1:]
	}
	// "Connection: close" lives in a flag, not in the list: it was about our connection.
	hdr.ResetConnectionClose()
	return drop
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
		if b[i]|0x20 != s[i] && b[i] != s[i] {
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
