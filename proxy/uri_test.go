package proxy

import "testing"

// add_prefix confines a path to the prefix only if the path's ".." segments cannot climb above
// it: "/../admin" under add_prefix /cart would reach the endpoint's /admin.
func TestAddPrefixRefusesClimbingPaths(t *testing.T) {
	tests := []struct {
		strip, target string
		wantURI       string // "" means 400
	}{
		{target: "/a/../b", wantURI: "/cart/a/../b"},
		{target: "/a/./b/..", wantURI: "/cart/a/./b/.."},
		{target: "/.../x", wantURI: "/cart/.../x"},
		{target: "/x?next=/../../etc", wantURI: "/cart/x?next=/../../etc"},
		{target: "/../admin"},
		{target: "/a/../../admin"},
		{target: "/%2e%2e/admin"},
		{target: "/.%2E/admin"},
		{target: "/a/..%2f..%2fadmin"},
		{target: "/a%5c..%5c..%5cadmin"},
		{target: "/..;/admin"},
		{target: "/.."},
		{target: "/;x/../admin"},      // a parameter-only segment is merged away by Tomcat-like servers
		{target: "/a/;x/../../admin"}, // so it buys no level
		{target: "/..#"},              // nginx resolves the ".." and ends the path at '#'
		{target: "/a/../..#x"},
		{strip: "/api", target: "/api/../admin"},
		{strip: "/api", target: "/api/v1/../x", wantURI: "/cart/v1/../x"},
	}
	for _, tt := range tests {
		t.Run(tt.strip+tt.target, func(t *testing.T) {
			b := startHTTPBackend(t, "a", echoHandler())
			s := newStack(t, stackOpts{cfg: Config{StripPrefix: tt.strip, AddPrefix: "/cart"}}, b)
			resp, body := rawExchange(t, s.addr, "GET "+tt.target+" HTTP/1.1\r\nHost: a\r\n\r\n")
			if tt.wantURI == "" {
				if resp.StatusCode != 400 || b.hits.Load() != 0 {
					t.Fatalf("status %d (%s), endpoint hits %d: want 400 and none", resp.StatusCode, body, b.hits.Load())
				}
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if e := decodeEcho(t, body); e.URI != tt.wantURI {
				t.Fatalf("endpoint saw %q, want %q", e.URI, tt.wantURI)
			}
		})
	}
}
