//go:build !linux

package proxy

import "net"

// wrapConn returns c: raw socket calls are a Linux optimisation (see rawconn_linux.go).
func wrapConn(c net.Conn) net.Conn { return c }

// WrapListener returns ln unchanged on this platform.
func WrapListener(ln net.Listener) net.Listener { return ln }
