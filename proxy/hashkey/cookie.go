package hashkey

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// cookie returns the value of the first cookie named name in the request's Cookie headers, or
// nil; the value aliases the header. It reads the pairs as fasthttp's RequestHeader.Cookie does
// (names and values trimmed of spaces, a value's surrounding quotes dropped, a value holding a
// quote, a semicolon or a backslash skipped), in one pass over the header lines. Cookie itself
// first moves every Cookie line out of the header list, each move a copy of the lines after
// it: quadratic in the number of Cookie lines, a cost a client chooses, paid on the event loop.
func cookie(h *fasthttp.RequestHeader, name string) []byte {
	for _, line := range h.PeekAll(fasthttp.HeaderCookie) {
		for len(line) > 0 {
			pair := line
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				pair, line = line[:i], line[i+1:]
			} else {
				line = nil
			}
			k, v, ok := bytes.Cut(pair, equals)
			if !ok || string(trimSpaces(k)) != name {
				continue
			}
			v = trimSpaces(v)
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if bytes.ContainsAny(v, "\"\\") {
				continue // fasthttp drops such a pair
			}
			return v
		}
	}
	return nil
}

var equals = []byte{'='}

// trimSpaces trims the spaces (only: not tabs) around b, as fasthttp's cookie parser does.
func trimSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}
