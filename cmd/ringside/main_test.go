package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	services := write("services.yaml", "services:\n  cart:\n    - {address: 127.0.0.1:8081}\n")
	good := write("good.yaml", "discovery: {kind: file, file: {path: "+services+"}}\nupstreams:\n  - name: cart\n    listen: 127.0.0.1:0\n")
	bad := write("bad.yaml", "discovery: {kind: file, file: {path: "+services+"}}\nupstreams:\n  - name: cart\n    listen: 127.0.0.1:0\n    hash_kee: [path]\n")
	wrongType := write("wrongtype.yaml", "discovery: {kind: file, file: {path: "+services+"}}\nupstreams:\n  - name: cart\n    listen: 127.0.0.1:0\n    retries: {attempts: many}\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "ringside dev"},
		{name: "validate good", args: []string{"validate", "-config", good}, wantCode: 0, wantStdout: "ok (1 upstreams, discovery file)"},
		{name: "validate bad names line and field", args: []string{"validate", "-config", bad}, wantCode: 2,
			wantStderr: "bad.yaml:5: upstreams[0].hash_kee: unknown field; allowed here:"},
		{name: "wrong type names field and what is allowed", args: []string{"validate", "-config", wrongType}, wantCode: 2,
			wantStderr: "wrongtype.yaml:5: upstreams[0].retries.attempts: \"many\" is not a whole number (e.g. 3)"},
		{name: "run bad exits 2 before starting", args: []string{"-config", bad}, wantCode: 2, wantStderr: "bad.yaml:5:"},
		{name: "missing file", args: []string{"-config", filepath.Join(dir, "nope.yaml")}, wantCode: 2, wantStderr: "nope.yaml"},
		{name: "no config flag", args: nil, wantCode: 2, wantStderr: "usage:"},
		{name: "unknown flag", args: []string{"-confg", good}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// validate refuses what run would refuse at start: problems only the packages see (a bounded
// load on a policy that has none, a missing services file, an unreadable CA), each named with
// its file, line and field.
func TestValidateRefusesWhatRunWould(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		give string
		want string
	}{
		{"missing services file", "discovery: {kind: file, file: {path: " + filepath.Join(dir, "none.yaml") + "}}\nupstreams: [{name: a, listen: '127.0.0.1:0'}]\n",
			"c.yaml:1: discovery.file.path:"},
		{"bounded load without a hash policy", "discovery: {kind: file, file: {path: x}}\nupstreams:\n  - name: a\n    listen: 127.0.0.1:0\n    balancer: round_robin\n    bounded_load: 1.5\n",
			"c.yaml:6: upstreams[0].bounded_load: applies to the ring_hash and maglev balancers only"},
		{"unreadable CA", "discovery: {kind: file, file: {path: x}}\nupstreams:\n  - name: a\n    listen: 127.0.0.1:0\n    upstream_tls: {ca_file: /nonexistent/ca.pem}\n",
			"c.yaml:5: upstreams[0].upstream_tls:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(p, []byte(tt.give), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"validate", "-config", p}, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.want)
			}
		})
	}
}
