package hashkey

import (
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}
	tests := []struct {
		name  string
		peer  string
		xff   []string // one element per header line
		trust []netip.Prefix
		want  string
	}{
		{name: "untrusted peer: XFF is ignored", peer: "192.0.2.1:1", xff: []string{"203.0.113.9"}, trust: trusted, want: "192.0.2.1"},
		{name: "no trusted list: XFF is ignored", peer: "10.0.0.1:1", xff: []string{"203.0.113.9"}, want: "10.0.0.1"},
		{name: "trusted peer, one hop", peer: "10.0.0.1:1", xff: []string{"203.0.113.9"}, trust: trusted, want: "203.0.113.9"},
		{name: "trusted peer without XFF", peer: "10.0.0.1:1", trust: trusted, want: "10.0.0.1"},
		{
			name: "spoofed left entries are not believed",
			peer: "10.0.0.1:1", xff: []string{"1.1.1.1, 203.0.113.9, 10.2.2.2"}, trust: trusted,
			want: "203.0.113.9",
		},
		{
			name: "all hops trusted: the leftmost",
			peer: "10.0.0.1:1", xff: []string{"10.3.3.3, 10.2.2.2"}, trust: trusted,
			want: "10.3.3.3",
		},
		{
			name: "several header lines: the last line holds the nearest hops",
			peer: "10.0.0.1:1", xff: []string{"1.1.1.1, 198.51.100.7", "10.9.9.9"}, trust: trusted,
			want: "198.51.100.7",
		},
		{
			name: "garbage stops the walk at the hop that wrote it",
			peer: "10.0.0.1:1", xff: []string{"203.0.113.9, unknown, 10.2.2.2"}, trust: trusted,
			want: "10.2.2.2",
		},
		{
			name: "ports and brackets",
			peer: "10.0.0.1:1", xff: []string{"[2001:db8::7]:443, 10.2.2.2:80"}, trust: trusted,
			want: "2001:db8::7",
		},
		{name: "bare bracketed IPv6", peer: "10.0.0.1:1", xff: []string{"[2001:db8::8]"}, trust: trusted, want: "2001:db8::8"},
		{name: "zone dropped", peer: "10.0.0.1:1", xff: []string{"fe80::1%eth0"}, trust: trusted, want: "fe80::1"},
		{name: "mapped IPv4 unmapped", peer: "[::ffff:10.0.0.1]:1", xff: []string{"::ffff:203.0.113.9"}, trust: trusted, want: "203.0.113.9"},
		{name: "empty elements skipped", peer: "10.0.0.1:1", xff: []string{"203.0.113.9, ,"}, trust: trusted, want: "203.0.113.9"},
		{name: "bad port stops the walk", peer: "10.0.0.1:1", xff: []string{"203.0.113.9:http"}, trust: trusted, want: "10.0.0.1"},
		{name: "junk after bracket stops the walk", peer: "10.0.0.1:1", xff: []string{"[2001:db8::7]x"}, trust: trusted, want: "10.0.0.1"},
		{name: "trusted IPv6 peer", peer: "[2001:db8:ffff::1]:1", xff: []string{"203.0.113.9"}, trust: trusted, want: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := []string{"GET / HTTP/1.1", "Host: a"}
			for _, v := range tt.xff {
				lines = append(lines, "X-Forwarded-For: "+v)
			}
			ctx := newCtx(t, tt.peer, lines...)
			if got := ClientIP(ctx, tt.trust); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("ClientIP = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTrusted(t *testing.T) {
	p := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if Trusted(netip.Addr{}, p) {
		t.Error("the invalid address is trusted")
	}
	if !Trusted(netip.MustParseAddr("10.1.2.3"), p) || Trusted(netip.MustParseAddr("11.0.0.1"), p) {
		t.Error("prefix membership is wrong")
	}
}

func FuzzParseHop(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:443", "[::1]", "fe80::1%eth0", "unknown", "[", "1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return // ClientIP never passes an empty element
		}
		a, ok := parseHop([]byte(s))
		if ok && (!a.IsValid() || a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("parseHop(%q) = %v, want a valid, unzoned, unmapped address", s, a)
		}
		if !ok && a.IsValid() {
			t.Fatalf("parseHop(%q) = %v, false", s, a)
		}
	})
}
