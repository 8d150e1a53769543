package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzScanRequest feeds arbitrary header blocks to the raw header scan: it must not panic,
// and every name it drops must be a non-empty name without line breaks or NUL.
func FuzzScanRequest(f *testing.F) {
	f.Add([]byte(dirtyRequest[strings.IndexByte(dirtyRequest, '\n')+1:]), true)
	f.Add([]byte("Connection: ,,upgrade, ,x\r\n X: folded\r\n:\r\nx-forwarded-\r\n"), false)
	f.Fuzz(func(t *testing.T, raw []byte, trusted bool) {
		s := scanRequest(raw, trusted, nil)
		for name := range bytes.SplitSeq(bytes.TrimSuffix(s.drop, []byte{0}), []byte{0}) {
			if len(s.drop) > 0 && (len(name) == 0 || bytes.ContainsAny(name, "\r\n")) {
				t.Fatalf("drop list %q holds a bad name %q", s.drop, name)
			}
		}
	})
}

// FuzzRewriteURI feeds arbitrary request targets to the rewrite: what it accepts becomes an
// origin-form target (or "*").
func FuzzRewriteURI(f *testing.F) {
	for _, s := range []string{"/api/x?y", "/api", "http://h/p", "https://h", "*", "//x", "/apix", "http://u@h/"} {
		f.Add(s)
	}
	h := &Handler{cfg: Config{StripPrefix: "/api", AddPrefix: "/v2"}}
	f.Fuzz(func(t *testing.T, target string) {
		var req fasthttp.Request
		raw := "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n"
		if err := req.Header.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // not a request fasthttp would hand over
		}
		got, ok := h.rewriteURI(&req.Header, nil)
		if !ok {
			return
		}
		uri := string(req.Header.RequestURI())
		if uri != "*" && !strings.HasPrefix(uri, "/v2") {
			t.Fatalf("rewrite of %q gave %q (scratch %q)", target, uri, got)
		}
		if len(req.Header.Host()) == 0 {
			t.Fatalf("rewrite of %q lost the host", target)
		}
	})
}

// FuzzChunkSize feeds arbitrary chunk-size lines to the decoder: sizes are never negative.
func FuzzChunkSize(f *testing.F) {
	for _, s := range []string{"1a\r\n", "0;x=y\r\n", "fffffffffffffff\r\n", "-1\r\n", "\r\n", "1 \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		n, err := readChunkSize(bufio.NewReader(strings.NewReader(line)))
		if err == nil && n < 0 {
			t.Fatalf("readChunkSize(%q) = %d", line, n)
		}
	})
}
