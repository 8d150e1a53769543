package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers: the rules that say which header lines stop at the proxy, in both
// directions, and the set of names a Connection header nominates.
//
// The work is linear in the size of the head. A Connection header may nominate at most
// maxConnectionOptions distinct names: a request naming more is refused (400), a response's
// further names are left in place. A request's lines are dropped in one pass over the head as
// it is written upstream (appendHead), so the client's lines keep their order (an
// X-Forwarded-For chain, above all); fasthttp's own deletion moves the last line into the hole.
// A response's are deleted by name from fasthttp's header, at most one deletion per distinct
// name that is present.

// maxConnectionOptions caps the distinct header names a Connection header may nominate. Real
// clients and servers name one or two (Upgrade, HTTP2-Settings, TE).
const maxConnectionOptions = 32

// nameSet is a small set of header names, compared ignoring ASCII case: a hash table with
// open addressing over names, which holds them NUL-terminated. The zero value is empty; its
// table is allocated at the first add unless one is given, and reused after reset.
type nameSet struct {
	names []byte
	n     int
	slots *[nameSlots]nameSlot
}

// nameSlots is the size of nameSet's table: a power of two, at least 1.5 times the largest
// set (maxConnectionOptions names, and hopByHop's eight for a response).
const nameSlots = 64

// nameSlot locates one name of the set in names; size 0 marks an empty slot.
type nameSlot struct {
	hash      uint32
	off, size uint32
}

// nameHash is FNV-1a of name in lower case.
func nameHash(name []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range name {
		h = (h ^ uint32(lower(c))) * 16777619
	}
	return h
}

// reset empties s, keeping its buffers.
func (s *nameSet) reset() {
	if s.n > 0 {
		clear(s.slots[:])
	}
	s.names, s.n = s.names[:0], 0
}

// find returns the slot of name, or the empty slot where it would go.
func (s *nameSet) find(name []byte, h uint32) *nameSlot {
	for i := h; ; i++ {
		sl := &s.slots[i&(nameSlots-1)]
		if sl.size == 0 || (sl.hash == h && equalFoldBytes(s.names[sl.off:sl.off+sl.size], name)) {
			return sl
		}
	}
}

// has reports whether name is in the set.
func (s *nameSet) has(name []byte) bool {
	if s.n == 0 || len(name) == 0 {
		return false
	}
	return s.find(name, nameHash(name)).size != 0
}

// add adds name, a non-empty token, unless it is there already. It reports false, adding
// nothing, when the set already holds max names (at most maxConnectionOptions+8).
func (s *nameSet) add(name []byte, max int) bool {
	if s.slots == nil {
		s.slots = new([nameSlots]nameSlot)
	}
	h := nameHash(name)
	sl := s.find(name, h)
	if sl.size != 0 {
		return true
	}
	if s.n >= max || s.n >= maxConnectionOptions+8 {
		return false
	}
	*sl = nameSlot{hash: h, off: uint32(len(s.names)), size: uint32(len(name))}
	s.names = append(append(s.names, name...), 0)
	s.n++
	return true
}

// addOptions adds the header names the Connection value v nominates, up to
// maxConnectionOptions distinct ones. Connection options that name no header (close,
// keep-alive) and the framing headers are never added; upgrade is reported, not added: the
// Upgrade header has a rule of its own. full reports a name that did not fit.
func (s *nameSet) addOptions(v []byte) (upgrade, full bool) {
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
			upgrade = true
		case framingHeader(tok):
			// "Connection: Content-Length" must not strip the body's framing: the body would
			// stay on the connection, read as the next message (a CL.0 desync).
		default:
			full = !s.add(tok, maxConnectionOptions) || full
		}
	}
	return upgrade, full
}

// hopByHop reports whether name is a hop-by-hop header in either direction (RFC 9110 section
// 7.6.1, and the proxy authentication pair of section 11.7): Connection, Keep-Alive,
// Proxy-Authenticate, Proxy-Authorization, Proxy-Connection, TE, Trailer, and Upgrade unless
// keepUpgrade (a protocol switch). Transfer-Encoding is left to the codec, which re-frames.
func hopByHop(name []byte, keepUpgrade bool) bool {
	if len(name) == 0 {
		return false
	}
	switch name[0] | 0x20 {
	case 'c':
		return equalFold(name, "connection")
	case 'k':
		return equalFold(name, "keep-alive")
	case 'p':
		return equalFold(name, "proxy-authenticate") || equalFold(name, "proxy-authorization") ||
			equalFold(name, "proxy-connection")
	case 't':
		return equalFold(name, "te") || equalFold(name, "trailer")
	case 'u':
		return !keepUpgrade && equalFold(name, "upgrade")
	}
	return false
}

// requestDrops reports whether a request header line named name stops at the proxy, besides
// the names its Connection header nominates:
//
//   - the hop-by-hop headers (Connection always: an upgrade gets the proxy's own), and any
//     Proxy-* header (addressed to a proxy, or a client-IP lookalike such as Proxy-Client-IP);
//   - Expect, which the server has answered;
//   - X-Forwarded-For, which the proxy writes again (with a trusted peer's chain first);
//   - the underscore spellings of the forwarding headers the proxy writes (X_Forwarded_For,
//     X_Real_IP...), from anyone: servers that map header names to CGI-style variables read
//     them as the real ones, and no proxy writes them;
//   - from an untrusted peer, every header a backend may take the client's address or scheme
//     from: Forwarded, X-Forwarded-*, X-Real-IP, True-Client-IP, X-Client-IP, Client-IP,
//     X-Cluster-Client-IP, CF-Connecting-IP, Fastly-Client-IP, X-Original-Forwarded-For, in
//     any spelling with '_' for '-'.
func requestDrops(name []byte, trusted, upgrade bool) bool {
	if len(name) == 0 {
		return false
	}
	if hopByHop(name, upgrade) {
		return true
	}
	switch name[0] | 0x20 {
	case 'e':
		return equalFold(name, "expect")
	case 'p':
		return len(name) > len("proxy-") && equalFold(name[:len("proxy-")], "proxy-")
	case 'x':
		if equalFold(name, "x-forwarded-for") {
			return true
		}
	}
	if bytes.IndexByte(name, '_') >= 0 && (ownForwardingHeader(name) || framingLookalike(name)) {
		return true
	}
	return !trusted && clientAddressHeader(name)
}

// ownForwardingHeader reports whether name is, with '_' read as '-', one of the forwarding
// headers the proxy writes.
func ownForwardingHeader(name []byte) bool {
	return sameName(name, "x-forwarded-for") || sameName(name, "x-forwarded-proto") ||
		sameName(name, "x-forwarded-host") || sameName(name, "x-real-ip")
}

// framingLookalike reports whether name is, with '_' read as '-', a header that frames or
// routes the request (framingHeader): a backend that maps '_' to '-' (as CGI does) would read
// "Transfer_Encoding" as the real thing, beside the framing the proxy checked.
func framingLookalike(name []byte) bool {
	return sameName(name, "content-length") || sameName(name, "transfer-encoding") || sameName(name, "host")
}

// clientAddressHeader reports whether name is, with '_' read as '-', a header from which a
// backend may take the client's address or scheme.
func clientAddressHeader(name []byte) bool {
	if len(name) > len("x-forwarded-") && sameName(name[:len("x-forwarded-")], "x-forwarded-") {
		return true
	}
	for _, s := range clientAddressHeaders {
		if sameName(name, s) {
			return true
		}
	}
	return false
}

var clientAddressHeaders = [...]string{
	"forwarded", "x-forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "client-ip",
	"x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip", "x-original-forwarded-for",
}

// dropLines removes from head, in place and in one pass, the header lines after its first
// line that stop at the proxy (requestDrops, and the names the Connection header nominates),
// and returns what is left. head is a request head as fasthttp writes it: lines ending in
// CRLF, without the blank line that ends the head.
func (s *reqScan) dropLines(head []byte, trusted, upgrade bool) []byte {
	// Lines end in CRLF, and no value holds an LF (the parser refused those): a line ends at
	// its LF.
	r := bytes.IndexByte(head, '\n')
	if r < 0 {
		return head
	}
	r++
	w := r
	for r < len(head) {
		end := len(head)
		if i := bytes.IndexByte(head[r:], '\n'); i >= 0 {
			end = r + i + 1
		}
		line := head[r:end]
		if colon := bytes.IndexByte(line, ':'); colon <= 0 ||
			!(requestDrops(line[:colon], trusted, upgrade) || s.nominated.has(line[:colon])) {
			w += copy(head[w:], line)
		}
		r = end
	}
	return head[:w]
}

// cleanResponse removes the hop-by-hop headers of an upstream response: those of hopByHop
// (Connection and Upgrade kept when the response switches protocols) and up to
// maxConnectionOptions that its Connection header names. Transfer-Encoding and Content-Length
// are the codec's: they are rewritten for the client. drop is emptied, then holds the names
// dropped (reused from response to response: a response costs no allocation).
func cleanResponse(hdr *fasthttp.ResponseHeader, switching bool, drop *nameSet) {
	drop.reset()
	for k, v := range hdr.All() { // the nominated names first, so that the cap counts them alone
		if equalFold(k, "connection") {
			drop.addOptions(v) // names past the cap stay: the endpoint's own headers, misnamed
		}
	}
	for k := range hdr.All() {
		if hopByHop(k, switching) && !(switching && equalFold(k, "connection")) {
			drop.add(k, maxConnectionOptions+8) // and hopByHop's eight
		}
	}
	for names := drop.names; len(names) > 0; {
		i := bytes.IndexByte(names, 0)
		hdr.DelBytes(names[:i])
		names = names[i+1:]
	}
	// "Connection: close" lives in a flag, not in the list: it was about our connection.
	hdr.ResetConnectionClose()
}

// sameName is equalFold reading '_' in b as '-'.
func sameName(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := lower(b[i])
		if c == '_' {
			c = '-'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether a and b are equal ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
