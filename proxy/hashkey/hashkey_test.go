package hashkey

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/hashring"
)

// newCtx returns a request context for the raw request text (lines joined with CRLF and
// ended by an empty line) as if it came from peer ("ip:port").
func newCtx(tb testing.TB, peer string, lines ...string) *fasthttp.RequestCtx {
	tb.Helper()
	var req fasthttp.Request
	raw := strings.Join(lines, "\r\n") + "\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		tb.Fatalf("parse request %q: %v", raw, err)
	}
	ap := netip.MustParseAddrPort(peer)
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, net.TCPAddrFromAddrPort(ap), nil)
	return ctx
}

func mustExtractor(tb testing.TB, trusted []netip.Prefix, specs ...string) *Extractor {
	tb.Helper()
	sp, err := ParseSpecs(specs)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(sp, trusted)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestExtractorChain(t *testing.T) {
	chain := []string{
		"header:X-User-ID", "cookie:session", "query:uid", "path_regex:^/users/([^/]+)",
		"path_prefix:2", "client_ip",
	}
	tests := []struct {
		name    string
		lines   []string
		wantKey string
		wantSrc Source
	}{
		{
			name:    "header wins over everything",
			lines:   []string{"GET /users/7?uid=9 HTTP/1.1", "Host: a", "x-user-id: 42", "Cookie: session=s1"},
			wantKey: "42", wantSrc: SourceHeader,
		},
		{
			name:    "empty header falls through to the cookie",
			lines:   []string{"GET /a HTTP/1.1", "Host: a", "X-User-ID:", "Cookie: theme=dark; session=s1"},
			wantKey: "s1", wantSrc: SourceCookie,
		},
		{
			name:    "query parameter, URL-decoded",
			lines:   []string{"GET /a?x=1&uid=a%20b HTTP/1.1", "Host: a"},
			wantKey: "a b", wantSrc: SourceQuery,
		},
		{
			name:    "regex capture group",
			lines:   []string{"GET /users/alice/orders HTTP/1.1", "Host: a"},
			wantKey: "alice", wantSrc: SourcePathRegex,
		},
		{
			name:    "path prefix on the normalized path",
			lines:   []string{"GET //shop//cart/items/3 HTTP/1.1", "Host: a"},
			wantKey: "/shop/cart", wantSrc: SourcePathPrefix,
		},
		{
			name:    "client IP when nothing else is there",
			lines:   []string{"GET /x HTTP/1.1", "Host: a"},
			wantKey: "192.0.2.10", wantSrc: SourceClientIP,
		},
	}
	e := mustExtractor(t, nil, chain...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := newCtx(t, "192.0.2.10:5000", tt.lines...)
			key, src, ok := e.Key(ctx, nil)
			if !ok || string(key) != tt.wantKey || src != tt.wantSrc {
				t.Fatalf("Key = %q, %v, %v; want %q, %v", key, src, ok, tt.wantKey, tt.wantSrc)
			}
			h, ok := e.Hash(ctx)
			if !ok || h != hashring.HashString(tt.wantKey) {
				t.Fatalf("Hash = %x, %v; want HashString(%q) = %x", h, ok, tt.wantKey, hashring.HashString(tt.wantKey))
			}
		})
	}
}

func TestExtractorNoKey(t *testing.T) {
	e := mustExtractor(t, nil, "header:X-User-ID", "path_prefix:3")
	ctx := newCtx(t, "192.0.2.10:5000", "GET /a/b HTTP/1.1", "Host: a")
	if h, ok := e.Hash(ctx); ok {
		t.Fatalf("Hash = %x, true; want no key (header absent, path too short)", h)
	}
	empty, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.Hash(ctx); ok {
		t.Fatal("an Extractor without specs found a key")
	}
}

func TestPathPrefix(t *testing.T) {
	tests := []struct {
		path string
		n    int
		want string // "" means no key
	}{
		{"/a/b/c", 1, "/a"},
		{"/a/b/c", 2, "/a/b"},
		{"/a/b/c", 3, "/a/b/c"},
		{"/a/b/c", 4, ""},
		{"/a/b/", 2, "/a/b"},
		{"/a/b/", 3, ""},
		{"/", 1, ""},
		{"", 1, ""},
		{"//a///b", 2, "//a///b"},
	}
	for _, tt := range tests {
		if got := string(pathPrefix([]byte(tt.path), tt.n)); got != tt.want {
			t.Errorf("pathPrefix(%q, %d) = %q, want %q", tt.path, tt.n, got, tt.want)
		}
	}
}

// A Spec slice handed to New is copied, so the caller may reuse it.
func TestNewCopiesSpecs(t *testing.T) {
	specs := []Spec{{Source: SourceHeader, Name: "X-A"}}
	e, err := New(specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	specs[0].Name = "X-B"
	if got := e.Specs()[0].Name; got != "X-A" {
		t.Fatalf("Specs()[0].Name = %q after the caller changed its slice", got)
	}
}

func TestHashDoesNotAllocate(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		spec  string
		lines []string
	}{
		{"header:X-User-ID", []string{"GET / HTTP/1.1", "Host: a", "X-User-ID: 42"}},
		{"cookie:sid", []string{"GET / HTTP/1.1", "Host: a", "Cookie: a=b; sid=xyz"}},
		{"query:uid", []string{"GET /?uid=7 HTTP/1.1", "Host: a"}},
		{"path", []string{"GET /a/b HTTP/1.1", "Host: a"}},
		{"path_prefix:1", []string{"GET /a/b HTTP/1.1", "Host: a"}},
		{"client_ip", []string{"GET / HTTP/1.1", "Host: a", "X-Forwarded-For: 203.0.113.5, 10.1.1.1"}},
		{"client_ip", []string{"GET / HTTP/1.1", "Host: a", "X-Forwarded-For: [2001:db8::1]:443"}},
	}
	for _, tt := range tests {
		e := mustExtractor(t, trusted, tt.spec)
		ctx := newCtx(t, "10.0.0.1:1234", tt.lines...)
		if _, ok := e.Hash(ctx); !ok {
			t.Fatalf("%s: no key", tt.spec)
		}
		if n := testing.AllocsPerRun(100, func() { e.Hash(ctx) }); n != 0 {
			t.Errorf("%s: Hash allocates %v times per call, want 0", tt.spec, n)
		}
	}
}
