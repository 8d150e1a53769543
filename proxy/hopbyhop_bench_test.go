package proxy

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// hostileHead returns a message head (after its first line) within the default 16 KiB header
// limit, built to make hop-by-hop handling expensive: a Connection header naming options
// headers (each distinct, or the same one again and again), and headers other lines that none
// of them names, so every deletion would scan them all.
func hostileHead(options int, distinct bool, headers int) string {
	var b strings.Builder
	b.WriteString("Connection: ")
	for i := range options {
		if i > 0 {
			b.WriteByte(',')
		}
		if distinct {
			fmt.Fprintf(&b, "o%d", i)
		} else {
			b.WriteString("o")
		}
	}
	b.WriteString("\r\n")
	for i := range headers {
		fmt.Fprintf(&b, "h%d: 1\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

var hostileCases = []struct {
	name     string
	options  int
	distinct bool
	headers  int
}{
	{"options=1200/headers=900", 1200, true, 900},
	{"same-option=2000/headers=700", 2000, false, 700},
	{"options=32/headers=1400", 32, true, 1400},
}

// BenchmarkHopByHopRequestWorstCase measures the header work the proxy does before the first
// attempt (begin: scan, checks, rewrite) and the head it writes upstream, for requests built
// to make hop-by-hop handling expensive. This work runs on the event loop, where every other
// connection of the loop waits for it.
func BenchmarkHopByHopRequestWorstCase(b *testing.B) {
	for _, tc := range hostileCases {
		b.Run(tc.name, func(b *testing.B) {
			s := newStack(b, stackOpts{}, benchBackends(b)...)
			raw := "GET /a HTTP/1.1\r\nHost: front\r\n" + hostileHead(tc.options, tc.distinct, tc.headers)
			var req fasthttp.Request
			if err := req.Read(bufio.NewReaderSize(strings.NewReader(raw), 64<<10)); err != nil {
				b.Fatal(err)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init2(benchConn{}, nil, false)
			x := &exchange{h: s.h}
			bw := bufio.NewWriterSize(io.Discard, 64<<10)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				x.reset()
				x.ctx = &ctx
				req.CopyTo(&ctx.Request)
				if _, _, _, ok := x.begin(time.Now()); ok {
					if err := x.writeRequest(bw, nil); err != nil {
						b.Fatal(err)
					}
					_ = bw.Flush()
				}
			}
		})
	}
}

// BenchmarkHopByHopResponseWorstCase measures cleanResponse on responses built the same way.
func BenchmarkHopByHopResponseWorstCase(b *testing.B) {
	for _, tc := range hostileCases {
		b.Run(tc.name, func(b *testing.B) {
			raw := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + hostileHead(tc.options, tc.distinct, tc.headers)
			var parsed, hdr fasthttp.ResponseHeader
			if err := parsed.Read(bufio.NewReaderSize(strings.NewReader(raw), 64<<10)); err != nil {
				b.Fatal(err)
			}
			var drop nameSet
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				parsed.CopyTo(&hdr)
				cleanResponse(&hdr, false, &drop)
			}
		})
	}
}
