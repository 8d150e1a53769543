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
