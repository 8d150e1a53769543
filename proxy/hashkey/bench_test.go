package hashkey

import (
	"net/netip"
	"testing"
)

func BenchmarkHash(b *testing.B) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	benches := []struct {
		name  string
		spec  string
		lines []string
	}{
		{"header", "header:X-User-ID", []string{"GET /a HTTP/1.1", "Host: a", "User-Agent: x", "Accept: */*", "X-User-ID: user-4242"}},
		{"cookie", "cookie:sid", []string{"GET /a HTTP/1.1", "Host: a", "Cookie: theme=dark; lang=en; sid=0123456789abcdef"}},
		{"query", "query:uid", []string{"GET /a?x=1&uid=4242 HTTP/1.1", "Host: a"}},
		{"path", "path", []string{"GET /users/4242/orders HTTP/1.1", "Host: a"}},
		{"path_prefix", "path_prefix:2", []string{"GET /users/4242/orders HTTP/1.1", "Host: a"}},
		{"path_regex", "path_regex:^/users/([^/]+)", []string{"GET /users/4242/orders HTTP/1.1", "Host: a"}},
		{"client_ip", "client_ip", []string{"GET / HTTP/1.1", "Host: a"}},
		{"client_ip_xff", "client_ip", []string{"GET / HTTP/1.1", "Host: a", "X-Forwarded-For: 203.0.113.5, 10.1.1.1"}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			e := mustExtractor(b, trusted, bb.spec)
			ctx := newCtx(b, "10.0.0.1:1234", bb.lines...)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := e.Hash(ctx); !ok {
					b.Fatal("no key")
				}
			}
		})
	}
}
