package proxy

import (
	"bufio"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// A hop-by-hop header deleted before the trusted X-Forwarded-For chain was read moved the last
// header line into its place: the chain reached the endpoint reordered, and a client behind a
// trusted proxy could put its forged address where the endpoint looks for the client (the
// right end). Every multi-line header keeps its order.
func TestForwardedForChainKeepsItsOrder(t *testing.T) {
	// What a trusted load balancer passes on: the client's own lines first (a forged
	// address among them), its own line last.
	e := echoThrough(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "GET / HTTP/1.1\r\nHost: a\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"X-Multi: 1\r\n"+
		"X-Forwarded-For: 203.0.113.66\r\n"+
		"Connection: X-Hop\r\n"+
		"X-Multi: 2\r\n"+
		"X-Hop: 1\r\n"+
		"X-Multi: 3\r\n"+
		"X-Forwarded-For: 198.51.100.7\r\n\r\n")
	if got, want := strings.Join(e.Header.Values("X-Forwarded-For"), ", "), "203.0.113.66, 198.51.100.7, 127.0.0.1"; got != want {
		t.Errorf("X-Forwarded-For = %q, want %q: the chain in the order it arrived, the peer last", got, want)
	}
	if got := e.Header.Values("X-Multi"); strings.Join(got, ",") != "1,2,3" {
		t.Errorf("X-Multi lines = %q, want 1,2,3 in order", got)
	}
	if got := e.Header.Get("X-Real-Ip"); got != "198.51.100.7" {
		t.Errorf("X-Real-Ip = %q, want the client the chain names (198.51.100.7)", got)
	}
	for _, hop := range []string{"Keep-Alive", "X-Hop"} {
		if v, ok := e.Header[hop]; ok {
			t.Errorf("hop-by-hop %s reached the endpoint: %q", hop, v)
		}
	}
}

// connectionRequest returns a GET whose Connection header names options (o0, o1, ... or o
// again and again), each also sent as a header.
func connectionRequest(options int, distinct bool) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\nX-Keep: yes\r\nConnection: keep-alive")
	for i := range options {
		name := "o"
		if distinct {
			name = fmt.Sprintf("o%d", i)
		}
		fmt.Fprintf(&b, ", %s", name)
	}
	b.WriteString("\r\n")
	if !distinct {
		b.WriteString("O: x\r\n")
	}
	for i := range options {
		if distinct {
			fmt.Fprintf(&b, "O%d: x\r\n", i)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// A Connection header naming thousands of headers cost a scan of every header line per name,
// on the event loop while its other connections waited. The names are capped: a request
// naming more than maxConnectionOptions distinct headers is refused, one that names the same
// header again and again is served, and whatever is named stays at the proxy.
func TestConnectionOptionsAreCapped(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{}, b)
	tests := []struct {
		name     string
		options  int
		distinct bool
		want     int
	}{
		{"at the cap", maxConnectionOptions, true, 200},
		{"one name many times", 2000, false, 200},
		{"over the cap", maxConnectionOptions + 1, true, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, s.addr, connectionRequest(tt.options, tt.distinct))
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want != 200 {
				if !resp.Close {
					t.Error("refused request did not close the connection")
				}
				return
			}
			e := decodeEcho(t, body)
			for k := range e.Header {
				if k == "O" || (strings.HasPrefix(k, "O") && strings.Trim(k[1:], "0123456789") == "") {
					t.Errorf("nominated header %s reached the endpoint", k)
				}
			}
			if e.Header.Get("X-Keep") != "yes" {
				t.Errorf("X-Keep lost: %v", e.Header)
			}
		})
	}
}

// fasthttp ignores "Transfer-Encoding: identity" and frames by Content-Length; another hop may
// not. RFC 9112 section 6.1: a request whose final coding is not chunked cannot be framed.
func TestTransferEncodingOtherThanChunkedRefused(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{}, b)
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: IDENTITY\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
	} {
		resp, body := rawExchange(t, s.addr, raw)
		if resp.StatusCode != 400 || !resp.Close {
			t.Errorf("%q: %d %q (close %v), want 400 and the connection closed", raw, resp.StatusCode, body, resp.Close)
		}
	}
	if n := b.hits.Load(); n != 0 {
		t.Errorf("endpoint saw %d requests, want none", n)
	}
}

// Backends that read headers through CGI-style names (HTTP_X_FORWARDED_FOR) take X_Forwarded_For
// for X-Forwarded-For, and many read the client's address from True-Client-IP, X-Client-IP and
// the like: from a peer that is not trusted, none of them reaches the endpoint.
func TestClientAddressLookalikesDropped(t *testing.T) {
	const raw = "GET / HTTP/1.1\r\nHost: a\r\n" +
		"X_Forwarded_For: 203.0.113.1\r\n" +
		"X-Forwarded_Proto: https\r\n" +
		"X_Real_IP: 203.0.113.2\r\n" +
		"True-Client-IP: 203.0.113.3\r\n" +
		"X-Client-IP: 203.0.113.4\r\n" +
		"Client-IP: 203.0.113.5\r\n" +
		"CF-Connecting-IP: 203.0.113.6\r\n" +
		"X-Cluster-Client-IP: 203.0.113.7\r\n" +
		"Proxy-Client-IP: 203.0.113.8\r\n" +
		"X-Keep: yes\r\n\r\n"
	lookalikes := []string{"X_forwarded_for", "X-Forwarded_proto", "X_real_ip", "True-Client-Ip", "X-Client-Ip",
		"Client-Ip", "Cf-Connecting-Ip", "X-Cluster-Client-Ip", "Proxy-Client-Ip"}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		kept    []string // lookalikes that reach the endpoint
	}{
		{name: "untrusted peer"},
		{
			name:    "trusted peer",
			trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			kept:    []string{"True-Client-Ip", "X-Client-Ip", "Client-Ip", "Cf-Connecting-Ip", "X-Cluster-Client-Ip"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echoThrough(t, Config{TrustedProxies: tt.trusted}, raw)
			for _, h := range lookalikes {
				_, got := e.Header[h]
				if want := slices.Contains(tt.kept, h); got != want {
					t.Errorf("%s reached the endpoint: %v, want %v (%v)", h, got, want, e.Header)
				}
			}
			if got := e.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want the peer", got)
			}
			if e.Header.Get("X-Keep") != "yes" {
				t.Error("X-Keep lost")
			}
		})
	}
}

// echoThrough sends raw through a proxy configured with cfg to an echoing endpoint, and
// returns what the endpoint saw.
func echoThrough(t *testing.T, cfg Config, raw string) echoed {
	t.Helper()
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{cfg: cfg}, b)
	resp, body := rawExchange(t, s.addr, raw)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	return decodeEcho(t, body)
}

// A response's Connection header names at most maxConnectionOptions headers that are removed;
// those past the cap reach the client. Proxy-Status (RFC 9209) is end-to-end and stays.
func TestCleanResponseCapsNominatedNames(t *testing.T) {
	var raw strings.Builder
	// The hop-by-hop lines before the Connection line do not count against its cap.
	raw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n")
	raw.WriteString("Connection: keep-alive")
	for i := range maxConnectionOptions + 8 {
		fmt.Fprintf(&raw, ", o%d", i)
	}
	raw.WriteString("\r\nProxy-Status: ringside; error=none\r\n")
	for i := range maxConnectionOptions + 8 {
		fmt.Fprintf(&raw, "O%d: x\r\n", i)
	}
	raw.WriteString("\r\n")
	var hdr fasthttp.ResponseHeader
	if err := hdr.Read(bufio.NewReader(strings.NewReader(raw.String()))); err != nil {
		t.Fatal(err)
	}
	var drop nameSet
	cleanResponse(&hdr, false, &drop)
	for i := range maxConnectionOptions + 8 {
		name := fmt.Sprintf("O%d", i)
		if got, want := hdr.Peek(name) != nil, i >= maxConnectionOptions; got != want {
			t.Errorf("%s present: %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{"Proxy-Status": true, "Proxy-Authenticate": false, "Keep-Alive": false, "Connection": false} {
		if got := hdr.Peek(name) != nil; got != want {
			t.Errorf("%s present: %v, want %v", name, got, want)
		}
	}
}

// Underscore spellings of the framing and routing headers never reach the endpoint, from any
// peer: a backend that reads headers through CGI-style names would take Transfer_Encoding for
// Transfer-Encoding beside the Content-Length the proxy checked.
func TestFramingLookalikesDropped(t *testing.T) {
	const raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n" +
		"Transfer_Encoding: chunked\r\nContent_Length: 99\r\nX-Keep: yes\r\n\r\nhello"
	e := echoThrough(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, raw)
	for _, h := range []string{"Transfer_encoding", "Content_length"} {
		if _, got := e.Header[h]; got {
			t.Errorf("%s reached the endpoint (%v)", h, e.Header)
		}
	}
	if e.Header.Get("X-Keep") != "yes" {
		t.Error("X-Keep lost")
	}
}

// An Idempotency-Key that the Connection header nominates is dropped on the way, so the
// endpoint cannot de-duplicate with it: it does not make a POST retryable.
func TestNominatedIdempotencyKeyMakesNothingRetryable(t *testing.T) {
	var hits atomic.Int64
	failing := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	})
	other := startBackend(t, "b", func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	})
	s := newStack(t, stackOpts{}, failing, other)
	resp, _ := rawExchange(t, s.addr, "POST / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\n"+
		"Connection: Idempotency-Key\r\nContent-Length: 2\r\n\r\nhi")
	if resp.StatusCode != 503 {
		t.Fatalf("status %d, want the endpoint's 503", resp.StatusCode)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("the POST was sent %d times, want once: its key never reached an endpoint", n)
	}
}
