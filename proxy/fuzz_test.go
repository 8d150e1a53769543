package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzScanRequest feeds arbitrary header blocks to the raw header scan: it must not panic,
// every name it nominates must be a non-empty token, at most maxConnectionOptions of them and
// each once, and each must be found again by the set.
func FuzzScanRequest(f *testing.F) {
	f.Add([]byte(dirtyRequest[strings.IndexByte(dirtyRequest, '\n')+1:]), true)
	f.Add([]byte("Connection: ,,upgrade, ,x\r\n X: folded\r\n:\r\nx-forwarded-\r\n"), false)
	f.Add([]byte("Connection: a, A, b\r\nconnection: B, c, Content-Length\r\n"), false)
	f.Fuzz(func(t *testing.T, raw []byte, trusted bool) {
		var s reqScan
		s.scan(raw, trusted)
		set := s.nominated
		if set.n > maxConnectionOptions {
			t.Fatalf("%d names nominated, cap %d", set.n, maxConnectionOptions)
		}
		seen := map[string]bool{}
		for name := range bytes.SplitSeq(bytes.TrimSuffix(set.names, []byte{0}), []byte{0}) {
			if len(set.names) == 0 {
				break
			}
			if !isToken(name) || framingHeader(name) {
				t.Fatalf("nominated names %q hold a bad name %q", set.names, name)
			}
			if seen[strings.ToLower(string(name))] {
				t.Fatalf("nominated names %q hold %q twice", set.names, name)
			}
			seen[strings.ToLower(string(name))] = true
			if !set.has(bytes.ToUpper(name)) {
				t.Fatalf("set %q does not find %q", set.names, name)
			}
		}
	})
}

// FuzzRewriteURI feeds arbitrary request targets to the rewrite: what it accepts becomes an
// origin-form target (or "*").
func FuzzRewriteURI(f *testing.F) {
	for _, s := range []string{"/api/x?y", "/api", "http://h/p", "https://h", "*", "//x", "/apix", "http://u@h/", "/api/a/../..", "/%2e%2E%2f.."} {
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
		if uri != "*" && climbs([]byte(uri[len("/v2"):])) {
			t.Fatalf("rewrite of %q gave %q, which climbs above the prefix", target, uri)
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
