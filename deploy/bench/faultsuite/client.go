package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// Outcome labels besides HTTP status codes.
const (
	outHang      = "hang"       // nothing ended the exchange before its deadline
	outClosed    = "closed"     // the connection closed (or was reset) before a response head
	outTruncated = "truncated"  // the head came, then the connection closed before the body's end
	outDialError = "dial_error" // ringside did not accept the connection
	outWrong     = "wrong"
	outCrossed   = "crossed" // wrong, but the extra bytes and the request crossed on the wire (see crossings)
)

// Reasons an answer is wrong.
const (
	wrongForeignID   = "foreign_id"      // the response carries another request's id
	wrongNoID        = "no_id"           // a 2xx/3xx without an id: nobody's answer to this request
	wrongBodyBytes   = "body_bytes"      // a body byte that is not this request's
	wrongForeignBody = "foreign_body"    // an error body holding a request id
	wrongLength      = "length"          // a body that ended cleanly at the wrong length
	wrongExtraBytes  = "extra_bytes"     // bytes after a complete response, before the next request
	wrongReqBody     = "request_body"    // the backend saw request-body bytes that were not ours
	wrongUnparseable = "unparseable"     // bytes that are no HTTP response
	wrongStatus      = "unexpected_code" // an id'd answer with a status the backend never sends for it
)

// outcome is what one exchange came to.
type outcome struct {
	label  string // status code ("200", "504", …) or one of the out… labels
	reason string // for outWrong: one of the wrong… reasons
	served bool   // a complete response reached the client
	// detail describes a wrong answer or a hang, for the report's examples.
	detail string
}

// client is one keep-alive connection to ringside, used by one goroutine: it sends a
// request, reads the answer and checks every byte of it against the request's id.
type client struct {
	addr     string
	deadline time.Duration // per exchange, from the first byte sent
	conn     net.Conn
	br       *bufio.Reader
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// deadlineFor is the exchange's deadline: the configured bound, plus the time the slow
// reader takes over its body (a backend that reads slowly is not a hang of ringside).
func (c *client) deadlineFor(r request) time.Duration {
	return c.deadline + slowReadTime(r.bodyLen)
}

// do runs one exchange. Every outcome but a clean keep-alive one closes the connection,
// so a desynchronised connection is never reused.
func (c *client) do(r request) outcome {
	start := time.Now()
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, c.deadline)
		if err != nil && isTimeout(err) {
			return outcome{label: outHang, detail: "connecting: " + err.Error()}
		}
		if err != nil {
			return outcome{label: outDialError, detail: err.Error()}
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 32<<10)
	}
	_ = c.conn.SetDeadline(start.Add(c.deadlineFor(r)))
	out := c.exchange(r)
	if out.label == outHang {
		out.detail = fmt.Sprintf("%s %s: no end after %v: %s", r.method, r.target, time.Since(start).Round(time.Millisecond), out.detail)
	}
	if !out.served || out.label == outWrong || out.label[0] != '2' && out.label[0] != '3' {
		c.close() // only a clean answer from the backend keeps the connection
	}
	return out
}

func (c *client) exchange(r request) outcome {
	wErr := c.writeRequest(r)
	if wErr != nil && isTimeout(wErr) {
		return outcome{label: outHang, detail: "sending the request: " + wErr.Error()}
	}
	// On another write error ringside may have answered early (and closed): read it.
	h, err := readHead(c.br)
	if err != nil {
		return c.failed(err, outClosed)
	}
	status, err := h.status()
	if err != nil {
		return outcome{label: outWrong, reason: wrongUnparseable, detail: err.Error()}
	}
	got := h.get(idHeader)
	switch {
	case got != "" && got != r.id:
		return outcome{label: outWrong, reason: wrongForeignID, detail: fmt.Sprintf("%s %s (%s) got %d for %s", r.method, r.target, r.id, status, got)}
	case got == "" && status < 400:
		return outcome{label: outWrong, reason: wrongNoID, detail: fmt.Sprintf("%s %s got %d without an id", r.method, r.target, status)}
	case got != "" && h.get("X-Body-Mismatch") != "":
		return outcome{label: outWrong, reason: wrongReqBody, detail: fmt.Sprintf("%s %s: the backend got another request's body bytes", r.method, r.target)}
	case got != "" && status != r.wantStatus:
		return outcome{label: outWrong, reason: wrongStatus, detail: fmt.Sprintf("%s %s answered %d", r.method, r.target, status)}
	}
	noBody := r.method == "HEAD" || status < 200 || status == 204 || status == 304
	body, closeDelimited, err := bodyReader(c.br, h, noBody, true)
	if err != nil {
		return outcome{label: outWrong, reason: wrongUnparseable, detail: err.Error()}
	}
	label := strconv.Itoa(status)
	if got == "" {
		// ringside's own answer (an error): it must hold no request's bytes.
		b, err := io.ReadAll(io.LimitReader(body, 1<<20))
		if err != nil {
			return c.failed(err, outTruncated)
		}
		if i := bytes.Index(b, []byte(idPrefix)); i >= 0 {
			return outcome{label: outWrong, reason: wrongForeignBody, detail: fmt.Sprintf("%d body holds %.40q", status, b[i:])}
		}
		return c.finish(label, h, closeDelimited)
	}
	n, err := checkResponseBody(body, r.id)
	if err != nil {
		if errors.Is(err, errBodyBytes) {
			return outcome{label: outWrong, reason: wrongBodyBytes, detail: fmt.Sprintf("%s %s: %v at offset %d", r.method, r.target, err, n)}
		}
		return c.failed(err, outTruncated)
	}
	if !noBody && n != int64(r.wantLen) {
		return outcome{label: outWrong, reason: wrongLength, detail: fmt.Sprintf("%s %s: body of %d bytes ended cleanly, want %d", r.method, r.target, n, r.wantLen)}
	}
	return c.finish(label, h, closeDelimited)
}

// finish ends a complete exchange: bytes already waiting behind the response are a wrong
// answer (nobody asked for them); a close-delimited body or Connection: close ends the
// connection.
func (c *client) finish(label string, h head, closeDelimited bool) outcome {
	if n := c.br.Buffered(); n > 0 {
		extra, _ := c.br.Peek(min(n, 60))
		return outcome{label: outWrong, reason: wrongExtraBytes, served: true, detail: fmt.Sprintf("%d bytes after a complete %s: %q", n, label, extra)}
	}
	if closeDelimited || h.get("Connection") == "close" {
		c.close()
	}
	return outcome{label: label, served: true}
}

// failed names an exchange that ended with err: a hang when its deadline passed, else
// whatever ended it early (closed or truncated).
func (c *client) failed(err error, early string) outcome {
	if isTimeout(err) {
		stage := "waiting for the response head"
		if early == outTruncated {
			stage = "reading the body"
		}
		return outcome{label: outHang, detail: stage + ": " + err.Error()}
	}
	return outcome{label: early}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

var errBodyBytes = errors.New("a body byte that is not this request's")

// checkResponseBody reads body to its end and checks every byte against id's pattern. It
// returns the bytes read (up to the first wrong one).
func checkResponseBody(body io.Reader, id string) (int64, error) {
	buf := make([]byte, 16<<10)
	var off int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if !matchPattern(buf[:n], id, off) {
				for i := range n {
					if !matchPattern(buf[i:i+1], id, off+int64(i)) {
						return off + int64(i), errBodyBytes
					}
				}
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// writeRequest sends r: its head, then its body (id's pattern) when it has one.
func (c *client) writeRequest(r request) error {
	var hb bytes.Buffer
	fmt.Fprintf(&hb, "%s %s HTTP/1.1\r\nHost: faultsuite\r\n%s: %s\r\nX-User-ID: %s\r\n", r.method, r.target, idHeader, r.id, r.id)
	if r.bodyLen > 0 {
		fmt.Fprintf(&hb, "Content-Length: %d\r\n", r.bodyLen)
	}
	hb.WriteString("\r\n")
	if r.bodyLen > 0 && r.bodyLen <= 64<<10 {
		hb.Write(patternBody(r.id, r.bodyLen))
		_, err := c.conn.Write(hb.Bytes())
		return err
	}
	if _, err := c.conn.Write(hb.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 16<<10)
	for off := 0; off < r.bodyLen; off += len(buf) {
		chunk := buf[:min(len(buf), r.bodyLen-off)]
		fillPattern(chunk, r.id, int64(off))
		if _, err := c.conn.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}
