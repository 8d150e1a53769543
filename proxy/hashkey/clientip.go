package hashkey

import (
	"bytes"
	"net"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// headerXFF is the header ClientIP reads from trusted peers.
const headerXFF = "X-Forwarded-For"

// PeerAddr returns the address of the connection's peer (the hop that connected to us), with
// an IPv4-mapped IPv6 address turned into IPv4. It returns the invalid netip.Addr when the
// connection has no IP address (an in-memory listener, for example).
func PeerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	switch a := ctx.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// Trusted reports whether addr is in one of the prefixes.
func Trusted(addr netip.Addr, trusted []netip.Prefix) bool {
	if !addr.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client that made the request. When the peer is not in
// trusted, that is the peer itself and X-Forwarded-For is ignored, since anyone can write it.
// When the peer is trusted, X-Forwarded-For is walked from right to left (the last header line
// first), skipping the addresses of trusted proxies, and the first untrusted address is the
// client; if every hop is trusted, the leftmost is. A malformed entry stops the walk at the
// hop that wrote it. Entries may carry a port ("192.0.2.1:5000", "[2001:db8::1]:443").
//
// ClientIP does not allocate for well-formed headers. It returns the invalid netip.Addr only
// when the peer has no IP address.
func ClientIP(ctx *fasthttp.RequestCtx, trusted []netip.Prefix) netip.Addr {
	addr := PeerAddr(ctx)
	if len(trusted) == 0 || !Trusted(addr, trusted) {
		return addr
	}
	lines := ctx.Request.Header.PeekAll(headerXFF)
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for len(line) > 0 {
			var entry []byte
			if c := bytes.LastIndexByte(line, ','); c >= 0 {
				entry, line = line[c+1:], line[:c]
			} else {
				entry, line = line, nil
			}
			entry = bytes.TrimSpace(entry)
			if len(entry) == 0 {
				continue // "a, , b": an empty element is allowed by the list syntax
			}
			hop, ok := parseHop(entry)
			if !ok {
				return addr
			}
			addr = hop
			if !Trusted(addr, trusted) {
				return addr
			}
		}
	}
	return addr
}

// parseHop parses one X-Forwarded-For element: an IP address, optionally bracketed (IPv6)
// and optionally followed by a port. Zones are dropped. The shape is decided before parsing,
// so a well-formed element never goes through a failed parse (whose error allocates).
func parseHop(b []byte) (netip.Addr, bool) {
	switch {
	case b[0] == '[': // "[v6]" or "[v6]:port"
		end := bytes.IndexByte(b, ']')
		if end < 0 || (end+1 < len(b) && (b[end+1] != ':' || !isPort(b[end+2:]))) {
			return netip.Addr{}, false
		}
		b = b[1:end]
	case bytes.Count(b, colon) == 1: // "v4:port"
		c := bytes.IndexByte(b, ':')
		if !isPort(b[c+1:]) {
			return netip.Addr{}, false
		}
		b = b[:c]
	}
	// The string aliases b only during the parse: netip keeps nothing of it (a zone goes
	// through unique.Make, which clones it).
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(b), len(b)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

var colon = []byte{':'}

// isPort reports whether b is a decimal port number.
func isPort(b []byte) bool {
	if len(b) == 0 || len(b) > 5 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
