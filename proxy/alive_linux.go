//go:build linux

package proxy

import (
	"net"
	"time"
)

// connAlive reports whether a pooled connection is still open: a peek that does not wait finds
// nothing to read (EAGAIN). End of stream, an error, or bytes nobody asked for mean the
// endpoint closed it, or it is out of step: unusable. Endpoint connections are rawConns (the
// Transport's dialer wraps them); one that is not, a TLS connection, cannot be peeked at
// and is taken to be open.
//
// It costs one system call, so the proxy asks only of connections that sat idle for a while,
// or before sending a request that could not be sent again if the connection turned out stale
// (see exchange.attempt).
//
// A pooled connection keeps the deadline of its last exchange; once that has passed,
// RawConn.Read fails at once without calling us, and a healthy connection would be called
// dead. So the read deadline is cleared first; the attempt sets its own right after.
func connAlive(c net.Conn) bool {
	rc, ok := c.(*rawConn)
	if !ok {
		return true
	}
	_ = c.SetReadDeadline(time.Time{})
	return rc.peekAlive()
}
