package config

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
)

// A listener address that cannot be bound is reported at the field that set it, saying why
// in words and what to do.
func TestListenErrorNamesFieldAndCause(t *testing.T) {
	text := "admin: {listen: '127.0.0.1:9901'}\ndiscovery: {kind: file, file: {path: s.yaml}}\nhost_routing: {listen: '127.0.0.1:8080'}\nupstreams:\n" +
		"  - name: cart\n    listen: '127.0.0.1:9001'\n    hosts: [cart]\n  - name: orders\n    listen: '10.9.9.9:9002'\n"
	cfg, err := Parse("c.yaml", []byte(text), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	bind := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
	}
	tests := []struct {
		addr string
		err  error
		want string
	}{
		{"127.0.0.1:9001", bind(syscall.EADDRINUSE), "c.yaml:6: upstreams[0].listen: 127.0.0.1:9001 is already in use " +
			"(another process is listening there: stop it or choose another port)"},
		{"10.9.9.9:9002", bind(syscall.EADDRNOTAVAIL), "c.yaml:9: upstreams[1].listen: 10.9.9.9:9002 is not an address of this host " +
			"(use one of its own addresses, 127.0.0.1, or 0.0.0.0 for all)"},
		{"127.0.0.1:8080", bind(syscall.EACCES), "c.yaml:3: host_routing.listen: 127.0.0.1:8080 cannot be bound: permission denied " +
			"(a port below 1024 needs root or CAP_NET_BIND_SERVICE)"},
		{"127.0.0.1:9901", errors.New("too many open files"), "c.yaml:1: admin.listen: 127.0.0.1:9901 cannot be bound: too many open files"},
	}
	for _, tt := range tests {
		if got := cfg.ListenError(tt.addr, tt.err).Error(); got != tt.want {
			t.Errorf("ListenError(%s)\n got: %s\nwant: %s", tt.addr, got, tt.want)
		}
	}
}
