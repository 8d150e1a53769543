package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// echoed is what echoHandler reports about the request it got.
type echoed struct {
	Host   string
	URI    string
	Proto  string
	Header http.Header
	Body   int
}

// echoHandler answers with a JSON description of the request it received.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Host: r.Host, URI: r.RequestURI, Proto: r.Proto, Header: r.Header, Body: int(n)})
	})
}

// rawExchange sends raw on a new connection to addr and parses one response.
func rawExchange(t testing.TB, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", raw, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

func decodeEcho(t testing.TB, body []byte) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return e
}

// The request carries every kind of header a proxy must handle.
const dirtyRequest = "GET /a?b=1 HTTP/1.1\r\n" +
	"Host: shop.example\r\n" +
	"Connection: keep-alive, X-Hop\r\n" +
	"X-Hop: 1\r\n" +
	"Keep-Alive: timeout=5\r\n" +
	"Proxy-Authorization: Basic eA==\r\n" +
	"Proxy-Connection: keep-alive\r\n" +
	"TE: trailers\r\n" +
	"Upgrade: h2c\r\n" +
	"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n" +
	"X-Forwarded-For: 203.0.113.9, 198.51.100.1\r\n" +
	"X-Forwarded-Proto: https\r\n" +
	"X-Forwarded-Host: spoofed.example\r\n" +
	"X-Forwarded-Port: 443\r\n" +
	"X-Real-IP: 203.0.113.66\r\n" +
	"Forwarded: for=203.0.113.9\r\n" +
	"X-Request-ID: req-42\r\n" +
	"X-Keep: yes\r\n" +
	"\r\n"

func TestRequestHeaderSanitation(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string // "" means absent
	}{
		{
			name: "untrusted peer: forwarding headers replaced",
			want: map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "shop.example",
				"X-Real-Ip":         "127.0.0.1",
				"X-Forwarded-Port":  "",
				"Forwarded":         "",
			},
		},
		{
			name:    "trusted peer: forwarding headers kept, XFF appended",
			trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			want: map[string]string{
				"X-Forwarded-For":   "203.0.113.9, 198.51.100.1, 127.0.0.1",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "spoofed.example",
				"X-Real-Ip":         "203.0.113.66",
				"X-Forwarded-Port":  "443",
				"Forwarded":         "for=203.0.113.9",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startHTTPBackend(t, "a", echoHandler())
			s := newStack(t, stackOpts{cfg: Config{TrustedProxies: tt.trusted}}, b)
			resp, body := rawExchange(t, s.addr, dirtyRequest)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			e := decodeEcho(t, body)
			for _, hop := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Upgrade"} {
				if v, ok := e.Header[hop]; ok {
					t.Errorf("hop-by-hop %s reached the endpoint: %q", hop, v)
				}
			}
			if v := e.Header.Get("Connection"); v != "" && !strings.EqualFold(v, "keep-alive") {
				t.Errorf("Connection = %q upstream", v)
			}
			for k, want := range tt.want {
				if got := strings.Join(e.Header.Values(k), ","); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			checks := map[string]string{
				"Traceparent":  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				"X-Request-Id": "req-42",
				"X-Keep":       "yes",
			}
			for k, want := range checks {
				if got := e.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q (untouched)", k, got, want)
				}
			}
			if e.Host != "shop.example" || e.URI != "/a?b=1" || e.Proto != "HTTP/1.1" {
				t.Errorf("host %q uri %q proto %q", e.Host, e.URI, e.Proto)
			}
		})
	}
}

func TestRequestIDAddedWhenAbsent(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{}, b)
	re := regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]+$`)
	seen := map[string]bool{}
	for range 3 {
		_, body := rawExchange(t, s.addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		id := decodeEcho(t, body).Header.Get("X-Request-Id")
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("X-Request-Id %q: want a fresh prefix-counter id", id)
		}
		seen[id] = true
	}
}

func TestResponseHopByHopStripped(t *testing.T) {
	b := startBackend(t, "a", func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.Set("Connection", "X-Secret")
		h.Set("X-Secret", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "foo")
		h.Set("X-Keep", "yes")
		ctx.SetBodyString("ok")
	})
	s := newStack(t, stackOpts{}, b)
	resp, body := rawExchange(t, s.addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	for _, hop := range []string{"X-Secret", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := resp.Header.Get(hop); v != "" {
			t.Errorf("hop-by-hop %s reached the client: %q", hop, v)
		}
	}
	if resp.Header.Get("X-Keep") != "yes" || resp.Close {
		t.Errorf("X-Keep %q, close %v", resp.Header.Get("X-Keep"), resp.Close)
	}
	if resp.Header.Get("Server") != "" {
		t.Errorf("Server header %q leaked", resp.Header.Get("Server"))
	}
}

func TestPathRewriteAndHost(t *testing.T) {
	tests := []struct {
		strip, add, host string
		give             string // request target
		wantURI          string
		wantHost         string
	}{
		{give: "/a/b?x=1", wantURI: "/a/b?x=1", wantHost: "front"},
		{strip: "/api", give: "/api/users?x=1", wantURI: "/users?x=1", wantHost: "front"},
		{strip: "/api/", give: "/api", wantURI: "/", wantHost: "front"},
		{strip: "/api", give: "/api?x", wantURI: "/?x", wantHost: "front"},
		{strip: "/api", give: "/apix/1", wantURI: "/apix/1", wantHost: "front"},
		{strip: "/api", add: "/v2", give: "/api/users", wantURI: "/v2/users", wantHost: "front"},
		{add: "/v2/", give: "/users", wantURI: "/v2/users", wantHost: "front"},
		{host: "inner:8080", give: "/%2Fencoded/../x", wantURI: "/%2Fencoded/../x", wantHost: "inner:8080"},
		{give: "http://absolute.example/p?q", wantURI: "/p?q", wantHost: "absolute.example"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			b := startHTTPBackend(t, "a", echoHandler())
			s := newStack(t, stackOpts{cfg: Config{StripPrefix: tt.strip, AddPrefix: tt.add, Host: tt.host}}, b)
			resp, body := rawExchange(t, s.addr, "GET "+tt.give+" HTTP/1.1\r\nHost: front\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
			e := decodeEcho(t, body)
			if e.URI != tt.wantURI || e.Host != tt.wantHost {
				t.Fatalf("upstream saw %q host %q, want %q host %q", e.URI, e.Host, tt.wantURI, tt.wantHost)
			}
		})
	}
}

func TestScanRequestConnectionTokens(t *testing.T) {
	raw := []byte("Host: a\r\nconnection: Upgrade, close, X-A\r\nupgrade: websocket\r\nX-A: 1\r\n\r\n")
	var s reqScan
	s.scan(raw, false)
	if !s.connUpgrade || !s.upgradeHdr {
		t.Fatalf("upgrade not seen: %+v", s)
	}
	if got := string(s.nominated.names); got != "X-A\x00" || !s.strip {
		t.Fatalf("nominated = %q (strip %v), want X-A alone", got, s.strip)
	}
}

func TestEqualFold(t *testing.T) {
	if !equalFold([]byte("X-Forwarded-FOR"), "x-forwarded-for") || equalFold([]byte("x-forwarded-fo"), "x-forwarded-for") ||
		equalFold([]byte("te"), "tx") || equalFold([]byte("a\rb"), "a-b") || equalFoldBytes([]byte("a^"), []byte("A~")) {
		t.Fatal("equalFold is wrong")
	}
}
