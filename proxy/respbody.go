package proxy

import "github.com/valyala/fasthttp"

// respBody is how an attempt treats the body of a response whose header it has read: the one
// rule both engines follow for where the attempt ends.
type respBody uint8

const (
	respNoBody    respBody = iota // none, whatever the header says: HEAD, 204, 304
	respSmall                     // a Content-Length up to smallBody: read whole within the attempt
	respFirstByte                 // a larger Content-Length: its first byte is part of the attempt
	respStreamed                  // chunked, or until the endpoint closes: streamed from the header on
)

// classifyBody returns how the body of a response with status and contentLength (as fasthttp's
// ResponseHeader.ContentLength reports it: -1 chunked, -2 until close) to a request (head: a
// HEAD request) is treated. A body of known length waits for its first byte within the attempt
// because until then nothing has reached the client, and an endpoint that stalls after its
// header is retried or answered 504 like any other; a body of unknown length may be a stream
// of events whose first one comes late, so its header goes to the client at once.
func classifyBody(head bool, status, contentLength int) respBody {
	switch {
	case head || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified:
		return respNoBody
	case contentLength >= 0 && contentLength <= smallBody:
		return respSmall
	case contentLength > smallBody:
		return respFirstByte
	}
	return respStreamed
}
