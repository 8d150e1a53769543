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
// of these forms. scratch is reused for the new target and returned.
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
