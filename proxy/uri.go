package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// rewriteURI turns the request target into the one sent upstream, working on the raw bytes so
// that the path goes through exactly as the client encoded it:
//
//   - an absolute-form target ("GET http://host/p?q") becomes origin-form ("/p?q") and its
//     authority becomes the Host header, as RFC 9112 section 3.2.2 requires;
//   - Config.StripPrefix is removed at a segment boundary, then Config.AddPrefix is added.
//
// The asterisk form ("OPTIONS *") is left alone. It reports false for a target that is none
// of these forms, and for a path that AddPrefix would not confine: one whose ".." segments
// climb above its start (see climbs). scratch is reused for the new target and returned.
func (h *Handler) rewriteURI(hdr *fasthttp.RequestHeader, scratch []byte) ([]byte, bool) {
	uri := hdr.RequestURI()
	if len(uri) == 0 {
		return scratch, false
	}
	if uri[0] != '/' {
		if len(uri) == 1 && uri[0] == '*' {
			return scratch, true
		}
		authority, rest, ok := splitAbsolute(uri)
		if !ok {
			return scratch, false
		}
		scratch = append(scratch[:0], rest...)
		if len(scratch) == 0 || scratch[0] != '/' {
			scratch = append(append(scratch[:0], '/'), rest...)
		}
		hdr.SetHostBytes(authority)
		hdr.SetRequestURIBytes(scratch)
		uri = hdr.RequestURI()
	}
	strip, add := h.cfg.StripPrefix, h.cfg.AddPrefix
	if strip == "" && add == "" {
		return scratch, true
	}
	rest := uri
	if strip != "" && len(uri) >= len(strip) && string(uri[:len(strip)]) == strip &&
		(len(uri) == len(strip) || uri[len(strip)] == '/' || uri[len(strip)] == '?') {
		rest = uri[len(strip):]
	}
	if len(rest) == len(uri) && add == "" {
		return scratch, true
	}
	if add != "" && climbs(rest) {
		return scratch, false
	}
	scratch = append(scratch[:0], add...)
	switch {
	case len(rest) == 0 || rest[0] == '?':
		if len(scratch) == 0 {
			scratch = append(scratch, '/')
		}
	case len(scratch) > 0 && scratch[len(scratch)-1] == '/':
		rest = rest[1:]
	}
	scratch = append(scratch, rest...)
	hdr.SetRequestURIBytes(scratch)
	return scratch, true
}

// RequestAuthority returns the authority a request is for, which is the one it is forwarded
// with (rewriteURI): the request target's when the target is in absolute form and valid (RFC
// 9112 section 3.2.2: the Host header is then ignored), the Host header otherwise. Whatever
// routes a request by host must route by this.
func RequestAuthority(hdr *fasthttp.RequestHeader) []byte {
	if uri := hdr.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		if authority, _, ok := splitAbsolute(uri); ok {
			return authority
		}
	}
	return hdr.Host()
}

// splitAbsolute splits an absolute-form target "scheme://authority/path?query" into the
// authority and what follows it. Only http and https are accepted, and userinfo is refused.
func splitAbsolute(uri []byte) (authority, rest []byte, ok bool) {
	i := bytes.Index(uri, schemeSep)
	if i <= 0 || !(equalFold(uri[:i], "http") || equalFold(uri[:i], "https")) {
		return nil, nil, false
	}
	hostport := uri[i+3:]
	end := bytes.IndexAny(hostport, "/?")
	if end < 0 {
		end = len(hostport)
	}
	authority, rest = hostport[:end], hostport[end:]
	if len(authority) == 0 || bytes.IndexByte(authority, '@') >= 0 {
		return nil, nil, false
	}
	return authority, rest, true
}

var schemeSep = []byte("://")

// climbs reports whether the path of target (up to its query) climbs above its start once its
// dot segments are resolved, as "/../x" or "/a/../../x" do: appended to a prefix, it would
// leave the prefix. It reads the path as the most lenient backend might: "%2e" is a dot, "%2f",
// "\\" and "%5c" separate segments too, a segment ends at ';' (a path parameter, as in
// "/..;/x"), and one that holds only a parameter ("/;x/") is no level at all, since servers
// that drop parameters then merge the empty segment away. A '#' (not allowed in a request
// target, and where nginx ends the path after resolving what came before it) is taken as
// climbing: such a target is refused, not guessed at.
func climbs(target []byte) bool {
	depth := 0
	for p := target; len(p) > 0; {
		switch p[0] {
		case '?':
			return false
		case '#':
			return true
		}
		if n := separator(p); n > 0 {
			p = p[n:]
			continue
		}
		// A segment: up to the next separator or the query.
		end := 0
		for end < len(p) && p[end] != '?' && p[end] != '#' && separator(p[end:]) == 0 {
			end++
		}
		seg := p[:end]
		p = p[end:]
		if i := bytes.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		if len(seg) == 0 {
			continue // "/;x/": merged away as "//" is
		}
		switch dots(seg) {
		case 1: // "." stays
		case 2:
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// separator returns the length of the path separator p starts with ("/", "\\", "%2f", "%5c"),
// or 0.
func separator(p []byte) int {
	switch {
	case p[0] == '/' || p[0] == '\\':
		return 1
	case len(p) >= 3 && p[0] == '%' && (equalFold(p[1:3], "2f") || equalFold(p[1:3], "5c")):
		return 3
	}
	return 0
}

// dots returns the number of dots seg is made of ("." or "%2e" each), or 0 when it holds
// anything else.
func dots(seg []byte) int {
	n := 0
	for len(seg) > 0 {
		switch {
		case seg[0] == '.':
			seg = seg[1:]
		case len(seg) >= 3 && seg[0] == '%' && equalFold(seg[1:3], "2e"):
			seg = seg[3:]
		default:
			return 0
		}
		n++
	}
	return n
}
