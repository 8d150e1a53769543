// Package hashkey extracts the key a request is routed by: a chain of sources (a header, a
// cookie, a query parameter, the path or part of it, the client IP), of which the first present
// one wins, hashed with hashring.Hash so the balancer can place it on its ring.
//
// Build an Extractor once with New from Specs (ParseSpec reads their text form, e.g.
// "header:X-User-ID"), then call Hash on every request. ClientIP is exported on its own for the
// forwarding path, which needs the client address for X-Forwarded-For and X-Real-IP.
//
// Header lookups assume that the server normalizes header names (fasthttp's default); a
// server with DisableHeaderNamesNormalizing matches header names case-sensitively.
package hashkey

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/hashring"
)

// Extractor finds the routing key of a request. It is immutable and safe for concurrent use.
type Extractor struct {
	specs   []Spec
	regexps []*regexp.Regexp // by index into specs; nil for other sources
	trusted []netip.Prefix
}

// New returns an Extractor that tries specs in order. trusted lists the proxies whose
// X-Forwarded-For is believed by the client_ip source (see ClientIP); nil trusts none. Both
// slices are copied. An Extractor without specs finds no key in any request.
func New(specs []Spec, trusted []netip.Prefix) (*Extractor, error) {
	e := &Extractor{
		specs:   slices.Clone(specs),
		regexps: make([]*regexp.Regexp, len(specs)),
	}
	for i, sp := range specs {
		re, err := sp.compile()
		if err != nil {
			return nil, fmt.Errorf("key source %d: %w", i+1, err)
		}
		e.regexps[i] = re
	}
	for _, p := range trusted {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: invalid trusted proxy prefix %v", ErrBadSpec, p)
		}
		e.trusted = append(e.trusted, p.Masked())
	}
	return e, nil
}

// Specs returns a copy of the sources e tries, in order.
func (e *Extractor) Specs() []Spec { return slices.Clone(e.specs) }

// Trusted returns a copy of the trusted proxy prefixes.
func (e *Extractor) Trusted() []netip.Prefix { return slices.Clone(e.trusted) }

// Hash returns the hash of the request's key, hashring.Hash of the bytes Key returns, and
// whether any source had a key. An empty value counts as absent, so the chain moves on.
//
// Hash does not allocate, except for the path_regex source, whose match allocates.
func (e *Extractor) Hash(ctx *fasthttp.RequestCtx) (h uint64, ok bool) {
	var buf [64]byte // room for a client IP's text without touching the heap
	key, _, ok := e.key(ctx, buf[:0])
	if !ok {
		return 0, false
	}
	return hashring.Hash(key), true
}

// Key appends the request's key to dst and returns it, with the source it came from, and
// whether any source had one. It is meant for logs and tests.
func (e *Extractor) Key(ctx *fasthttp.RequestCtx, dst []byte) ([]byte, Source, bool) {
	var buf [64]byte
	key, src, ok := e.key(ctx, buf[:0])
	if !ok {
		return dst, 0, false
	}
	return append(dst, key...), src, true
}

// key returns the first non-empty key; the result aliases the request or scratch.
func (e *Extractor) key(ctx *fasthttp.RequestCtx, scratch []byte) ([]byte, Source, bool) {
	for i := range e.specs {
		sp := &e.specs[i]
		var v []byte
		switch sp.Source {
		case SourceHeader:
			v = ctx.Request.Header.Peek(sp.Name)
		case SourceCookie:
			v = cookie(&ctx.Request.Header, sp.Name)
		case SourceQuery:
			v = ctx.QueryArgs().Peek(sp.Name)
		case SourcePath:
			v = ctx.Path()
		case SourcePathPrefix:
			v = pathPrefix(ctx.Path(), sp.Segments)
		case SourcePathRegex:
			v = submatch(e.regexps[i], ctx.Path())
		case SourceClientIP:
			if a := ClientIP(ctx, e.trusted); a.IsValid() {
				v = a.AppendTo(scratch[:0])
			}
		}
		if len(v) > 0 {
			return v, sp.Source, true
		}
	}
	return nil, 0, false
}

// pathPrefix returns the first n segments of path ("/a/b" of "/a/b/c" for 2), or nil when
// path has fewer than n non-empty segments.
func pathPrefix(path []byte, n int) []byte {
	end, seen := 0, 0
	for end < len(path) && seen < n {
		if path[end] == '/' {
			end++
			continue
		}
		next := bytes.IndexByte(path[end:], '/')
		if next < 0 {
			end = len(path)
		} else {
			end += next
		}
		seen++
	}
	if seen < n {
		return nil
	}
	return path[:end]
}

// submatch returns the first capture group of re in path, or nil.
func submatch(re *regexp.Regexp, path []byte) []byte {
	m := re.FindSubmatchIndex(path)
	if len(m) < 4 || m[2] < 0 {
		return nil
	}
	return path[m[2]:m[3]]
}
