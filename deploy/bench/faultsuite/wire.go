package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
	"strings"
)

// Every request carries a unique id (header X-Req-Id), and every byte of a body — a
// request's or a response's — is a function of that id and of the byte's offset: the id
// and a dot, repeated. So whoever reads a body can tell, byte by byte, whether it belongs
// to the exchange it is reading; a stray byte from another request cannot pass.

// idHeader carries the request id, both ways.
const idHeader = "X-Req-Id"

// idPrefix starts every id, so a body that is not ours can be searched for ids.
const idPrefix = "rid-"

// unit is the repeating body pattern of id.
func unit(id string) string { return id + "." }

// fillPattern writes the pattern of id into dst, starting at body offset off.
func fillPattern(dst []byte, id string, off int64) {
	u := unit(id)
	for i := range dst {
		dst[i] = u[(off+int64(i))%int64(len(u))]
	}
}

// matchPattern reports whether b is the pattern of id at body offset off.
func matchPattern(b []byte, id string, off int64) bool {
	u := unit(id)
	for i, c := range b {
		if c != u[(off+int64(i))%int64(len(u))] {
			return false
		}
	}
	return true
}

// patternBody returns n bytes of id's pattern.
func patternBody(id string, n int) []byte {
	b := make([]byte, n)
	fillPattern(b, id, 0)
	return b
}

// head is a parsed HTTP/1.1 message head, request or response: the first line and the
// header fields the suite looks at (names lower-cased, the last value wins).
type head struct {
	first  string
	fields map[string]string
}

// maxHeadBytes bounds a head the suite reads; anything larger is a broken peer.
const maxHeadBytes = 64 << 10

var errHeadTooLarge = errors.New("message head larger than 64 KiB")

// readHead reads one message head. An io.EOF before the first byte is returned as is, so a
// caller can tell a peer that closed between messages from one that cut a head short.
func readHead(br *bufio.Reader) (head, error) {
	h := head{fields: make(map[string]string)}
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err != nil {
			if errors.Is(err, io.EOF) && total > 0 {
				err = io.ErrUnexpectedEOF
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errHeadTooLarge
			}
			return head{}, err
		}
		if total > maxHeadBytes {
			return head{}, errHeadTooLarge
		}
		line = bytes.TrimRight(line, "\r\n")
		if h.first == "" {
			if len(line) == 0 {
				continue // tolerated blank line before a message
			}
			h.first = string(line)
			continue
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return head{}, fmt.Errorf("header line %q has no colon", line)
		}
		h.fields[strings.ToLower(string(bytes.TrimSpace(name)))] = string(bytes.TrimSpace(value))
	}
}

// get returns a header field's value ("" when absent).
func (h head) get(name string) string { return h.fields[strings.ToLower(name)] }

// chunked reports whether the message body is chunked.
func (h head) chunked() bool {
	return strings.Contains(strings.ToLower(h.get("Transfer-Encoding")), "chunked")
}

// contentLength is the declared Content-Length, or -1 when there is none.
func (h head) contentLength() (int64, error) {
	v := h.get("Content-Length")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("content-length %q", v)
	}
	return n, nil
}

// status is a response head's status code.
func (h head) status() (int, error) {
	_, rest, ok := strings.Cut(h.first, " ")
	if !ok || !strings.HasPrefix(h.first, "HTTP/1.") || len(rest) < 3 {
		return 0, fmt.Errorf("status line %q", h.first)
	}
	return strconv.Atoi(rest[:3])
}

// bodyReader frames a message body that follows h on br. noBody is set for responses that
// have none whatever their head says (to HEAD, 1xx, 204, 304). closeDelimited reports a
// response body that ends only when the connection closes.
func bodyReader(br *bufio.Reader, h head, noBody, isResponse bool) (r io.Reader, closeDelimited bool, err error) {
	if noBody {
		return bytes.NewReader(nil), false, nil
	}
	if h.chunked() {
		return httputil.NewChunkedReader(br), false, nil
	}
	n, err := h.contentLength()
	if err != nil {
		return nil, false, err
	}
	if n >= 0 {
		return &exactReader{r: br, left: n}, false, nil
	}
	if isResponse {
		return br, true, nil
	}
	return bytes.NewReader(nil), false, nil
}

// exactReader reads a body of a declared length: a stream that ends before it is cut short
// (io.ErrUnexpectedEOF), never a complete body.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// writeResponseHead writes a response head carrying id, with Content-Length n when n ≥ 0.
func writeResponseHead(w io.Writer, status int, reason, id string, n int, extra ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n%s: %s\r\n", status, reason, idHeader, id)
	for _, e := range extra {
		b.WriteString(e)
		b.WriteString("\r\n")
	}
	if n >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", n)
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// strayResponse is what a faulty backend sends beyond the response it declared: a complete,
// well-formed 200 carrying id — the worst case, since a proxy that takes it for the answer to
// the next request on that connection delivers it whole to another client.
func strayResponse(id string) []byte {
	var b bytes.Buffer
	body := patternBody(id, 48)
	_ = writeResponseHead(&b, 200, "OK", id, len(body), "X-Stray: 1")
	b.Write(body)
	return b.Bytes()
}
