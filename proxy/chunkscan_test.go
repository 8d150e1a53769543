package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"testing"
)

func TestChunkScanner(t *testing.T) {
	tests := []struct {
		name, in string
		end      int // where the body ends; -1: not yet; -2: a framing error
	}{
		{"one chunk", "5\r\nhello\r\n0\r\n\r\nNEXT", 15},
		{"extension", "5;name=v\r\nhello\r\n0\r\n\r\n", 22},
		{"upper hex", "A\r\n0123456789\r\n0\r\n\r\n", 20},
		{"trailer", "1\r\nx\r\n0\r\nX-Sum: 1\r\n\r\nNEXT", 21},
		{"bare LF size line", "0\n\r\n", -2},
		{"bare LF in trailer", "0\r\nA: b\n\r\n", -2},
		{"LF alone after size", "5\nhello\r\n", -2},
		{"unfinished", "5\r\nhel", -1},
		{"unfinished trailer", "0\r\nX-A: b\r\n", -1},
		{"no digits", "\r\n", -2},
		{"bad digit", "5x\r\n", -2},
		{"data not followed by CRLF", "1\r\nxy\r\n", -2},
		{"too many digits", "1000000000000000\r\n", -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Byte by byte, and whole: the same answer.
			for _, step := range []int{1, len(tt.in)} {
				var s chunkScanner
				end, failed := -1, false
				for off := 0; off < len(tt.in) && end < 0 && !failed; off += step {
					p := []byte(tt.in[off:min(off+step, len(tt.in))])
					n, done, err := s.scan(p)
					switch {
					case err != nil:
						failed = true
					case done:
						end = off + n
					case n != len(p):
						t.Fatalf("step %d: consumed %d of %d without ending", step, n, len(p))
					}
				}
				if failed && tt.end != -2 || !failed && end != tt.end {
					t.Fatalf("step %d: end %d failed %v, want %d", step, end, failed, tt.end)
				}
			}
		})
	}
}

// FuzzChunkScanner checks the scanner against net/http's chunked reader: where the scanner
// says a body ends, that reader reads the body to its end; a body encoded by net/http's
// chunked writer ends exactly where it was written to end, however it is split.
func FuzzChunkScanner(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), []byte("hello world"), uint8(3))
	f.Add([]byte("0;x=y\r\nA: b\r\n\r\n"), []byte(""), uint8(1))
	f.Fuzz(func(t *testing.T, raw, data []byte, split uint8) {
		step := int(split%64) + 1
		// Any input: no panic, and an end the reference agrees with.
		var s chunkScanner
		for off := 0; off < len(raw); off += step {
			n, done, err := s.scan(raw[off:min(off+step, len(raw))])
			if err != nil {
				break
			}
			if done {
				end := off + n
				r := httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(raw[:end])))
				if _, err := io.Copy(io.Discard, r); err != nil {
					t.Fatalf("scanner ends %q at %d; net/http: %v", raw, end, err)
				}
				break
			}
		}
		// A body net/http encodes, in pieces of step bytes.
		var enc bytes.Buffer
		w := httputil.NewChunkedWriter(&enc)
		for off := 0; off < len(data); off += step {
			_, _ = w.Write(data[off:min(off+step, len(data))])
		}
		_ = w.Close()
		enc.WriteString("\r\n") // the chunked writer leaves the final CRLF to its caller
		body := enc.Len()
		enc.WriteString("GET / HTTP/1.1\r\n")
		var s2 chunkScanner
		p := enc.Bytes()
		for off := 0; ; off += step {
			if off >= len(p) {
				t.Fatalf("no end found in %q", p)
			}
			n, done, err := s2.scan(p[off:min(off+step, len(p))])
			if err != nil {
				t.Fatalf("%q: %v", p, err)
			}
			if done {
				if off+n != body {
					t.Fatalf("end at %d, want %d", off+n, body)
				}
				return
			}
		}
	})
}
