package config

import (
	"errors"
	"strconv"
	"syscall"
)

// ListenField returns the path of the field that sets listener address addr (admin.listen,
// host_routing.listen or upstreams[N].listen), or "" when none does. Validation keeps
// addresses distinct, except port 0, which is never in use.
func (c *Config) ListenField(addr string) string {
	if c.Admin.Listen == addr {
		return "admin.listen"
	}
	if c.HostRouting != nil && c.HostRouting.Listen == addr {
		return "host_routing.listen"
	}
	for i, u := range c.Upstreams {
		if u.Listen == addr {
			return "upstreams[" + strconv.Itoa(i) + "].listen"
		}
	}
	return ""
}

// ListenError is the configuration error for listener address addr that could not be
// bound (err is net.Listen's), at the line of the field that set it: the address is in use,
// not one of this host's, or not permitted.
func (c *Config) ListenError(addr string, err error) *Error {
	field := c.ListenField(addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return c.Errorf(field, "%s is already in use (another process is listening there: stop it or choose another port)", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return c.Errorf(field, "%s is not an address of this host (use one of its own addresses, 127.0.0.1, or 0.0.0.0 for all)", addr)
	case errors.Is(err, syscall.EACCES):
		return c.Errorf(field, "%s cannot be bound: permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)", addr)
	}
	return c.Errorf(field, "%s cannot be bound: %v", addr, err)
}
