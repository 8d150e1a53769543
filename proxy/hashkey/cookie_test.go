package hashkey

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// cookie reads a request's cookies as fasthttp's RequestHeader.Cookie does: the same value, or
// none, for every shape below.
func TestCookieReadsAsFasthttp(t *testing.T) {
	headers := [][]string{
		{"Cookie: sid=abc"},
		{"Cookie: a=1; sid=abc; b=2"},
		{"Cookie: a=1;sid=abc"},
		{"Cookie:   sid  =  abc  ; x=1"},
		{`Cookie: sid="quoted"`},
		{`Cookie: sid="half`},
		{`Cookie: sid=a"b; sid=second`},
		{`Cookie: sid=a\b; sid=second`},
		{"Cookie: sid=; sid=second"},
		{"Cookie: sid; sid=x"},
		{"Cookie: =sid; sid=y"},
		{"Cookie: SID=upper; sid=lower"},
		{"Cookie: a=1", "Cookie: sid=from-second-line"},
		{"Cookie: sid=first", "Cookie: sid=second"},
		{"Cookie: a=b=c; sid=d=e"},
		{"Cookie: "},
		{},
	}
	for _, hs := range headers {
		raw := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Join(append(hs, ""), "\r\n") + "\r\n"
		var mine, theirs fasthttp.Request
		for _, r := range []*fasthttp.Request{&mine, &theirs} {
			if err := r.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
		}
		got, want := cookie(&mine.Header, "sid"), theirs.Header.Cookie("sid")
		if string(got) != string(want) {
			t.Errorf("%q: cookie sid = %q, fasthttp says %q", hs, got, want)
		}
	}
}

// BenchmarkCookieManyLines extracts a cookie key from a request of many Cookie lines (within
// the default 16 KiB header limit), each request parsed afresh as the server would.
func BenchmarkCookieManyLines(b *testing.B) {
	var raw strings.Builder
	raw.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for i := range 1200 {
		fmt.Fprintf(&raw, "Cookie: c%d=1\r\n", i)
	}
	raw.WriteString("Cookie: sid=abc\r\n\r\n")
	var parsed fasthttp.Request
	if err := parsed.Read(bufio.NewReaderSize(strings.NewReader(raw.String()), 64<<10)); err != nil {
		b.Fatal(err)
	}
	e := mustExtractor(b, nil, "cookie:sid")
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		parsed.CopyTo(&ctx.Request)
		if _, ok := e.Hash(&ctx); !ok {
			b.Fatal("no key")
		}
	}
}
