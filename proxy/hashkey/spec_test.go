package hashkey

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		give string
		want Spec
	}{
		{"header:X-User-ID", Spec{Source: SourceHeader, Name: "X-User-ID"}},
		{"  Header : x-user-id ", Spec{Source: SourceHeader, Name: "x-user-id"}},
		{"cookie:session", Spec{Source: SourceCookie, Name: "session"}},
		{"query:uid", Spec{Source: SourceQuery, Name: "uid"}},
		{"query:user[id]", Spec{Source: SourceQuery, Name: "user[id]"}},
		{"path", Spec{Source: SourcePath}},
		{"path_prefix:2", Spec{Source: SourcePathPrefix, Segments: 2}},
		{"path_regex:^/users/([^/]+)", Spec{Source: SourcePathRegex, Pattern: "^/users/([^/]+)"}},
		// Everything after the first colon is the pattern, colons included.
		{"path_regex:^/t:(\\w+)", Spec{Source: SourcePathRegex, Pattern: "^/t:(\\w+)"}},
		{"client_ip", Spec{Source: SourceClientIP}},
		{"CLIENT_IP", Spec{Source: SourceClientIP}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseSpec(tt.give)
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.give, err)
			}
			if got != tt.want {
				t.Fatalf("ParseSpec(%q) = %+v, want %+v", tt.give, got, tt.want)
			}
			back, err := ParseSpec(got.String())
			if err != nil || back != got {
				t.Fatalf("ParseSpec(%q.String() = %q) = %+v, %v; want a round trip", tt.give, got.String(), back, err)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		give string
		want string // a fragment of the message
	}{
		{"", "empty"},
		{"   ", "empty"},
		{":x", "empty"},
		{"header", "needs a name"},
		{"header:", "needs a name"},
		{"header:X User", "not a valid token"},
		{"header:X-User:ID", "not a valid token"},
		{"cookie:a=b", "not a valid token"},
		{"query:", "needs a name"},
		{"query:a\x00b", "control characters"},
		{"path:/x", "takes no argument"},
		{"client_ip:1", "takes no argument"},
		{"path_prefix", "needs a number"},
		{"path_prefix:x", "needs a number"},
		{"path_prefix:0", "want 1..64"},
		{"path_prefix:-1", "want 1..64"},
		{"path_prefix:65", "want 1..64"},
		{"path_regex", "needs a pattern"},
		{"path_regex:", "needs a pattern"},
		{"path_regex:^/users/[^/]+", "no capture group"},
		{"path_regex:(", "missing closing )"},
		{"ip", "unknown source"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			_, err := ParseSpec(tt.give)
			if err == nil {
				t.Fatalf("ParseSpec(%q) succeeded, want an error", tt.give)
			}
			if !errors.Is(err, ErrBadSpec) {
				t.Errorf("ParseSpec(%q) = %v, want it to wrap ErrBadSpec", tt.give, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSpec(%q) = %q, want it to mention %q", tt.give, err, tt.want)
			}
		})
	}
}

func TestParseSpecs(t *testing.T) {
	got, err := ParseSpecs([]string{"header:X-User-ID", "cookie:sid", "client_ip"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Source != SourceClientIP {
		t.Fatalf("ParseSpecs = %+v", got)
	}
	if _, err := ParseSpecs([]string{"header:X", "bogus"}); err == nil {
		t.Fatal("ParseSpecs with a bad spec succeeded")
	}
}

func TestNewRejectsInconsistentSpec(t *testing.T) {
	tests := []Spec{
		{},
		{Source: 99},
		{Source: SourcePath, Name: "x"},
		{Source: SourceHeader, Name: "X", Segments: 2},
		{Source: SourceClientIP, Pattern: "(x)"},
		{Source: SourcePathPrefix},
	}
	for _, sp := range tests {
		if _, err := New([]Spec{sp}, nil); !errors.Is(err, ErrBadSpec) {
			t.Errorf("New(%+v) = %v, want ErrBadSpec", sp, err)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"header:X-User-ID", "cookie:session", "query:uid", "path", "path_prefix:2",
		"path_regex:^/users/([^/]+)", "client_ip", "path_prefix:99999999999999999999", "header:\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("ParseSpec(%q) = %v, not wrapping ErrBadSpec", s, err)
			}
			return
		}
		back, err := ParseSpec(sp.String())
		if err != nil || back != sp {
			t.Fatalf("ParseSpec(%q) = %+v; its String %q parses to %+v, %v", s, sp, sp.String(), back, err)
		}
		if _, err := New([]Spec{sp}, nil); err != nil {
			t.Fatalf("New rejects parsed spec %+v: %v", sp, err)
		}
	})
}
