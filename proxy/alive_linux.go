//go:build linux

package proxy

import (
	"crypto/tls"
	"net"
)

// connAlive reports whether a pooled connection is still open and clean: a peek that does not
// wait finds nothing to read (EAGAIN). End of stream, an error, or bytes nobody asked for mean
// the endpoint closed it, or it is out of step: unusable. Endpoint connections are rawConns
// (the Transport's dialer wraps them), under TLS or not: a TLS record nobody asked for is
// bytes on the socket too. A connection of any other kind cannot be peeked at and is taken to
// be open.
//
// It costs one system call (no deadline is touched: see peekAlive), made before every request
// sent on a pooled connection (see exchange.attempt).
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	rc, ok := c.(*rawConn)
	if !ok {
		return true
	}
	return rc.peekAlive()
}
