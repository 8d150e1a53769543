package config

import (
	"strings"
	"testing"
	"time"
)

func TestConnectionAndTunnelLimitsErrorsNameFileLineField(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{
			name: "negative max_connections",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    max_connections: -1\n",
			want: "c.yaml:4: upstreams[0].max_connections: -1: want a number of connections >= 1",
		},
		{
			name: "negative host_routing max_connections",
			give: "host_routing:\n  listen: 127.0.0.1:9000\n  max_connections: -5\nupstreams:\n  - {name: cart, hosts: [cart]}\n",
			want: "c.yaml:3: host_routing.max_connections: -5: want a number of connections >= 1",
		},
		{
			name: "negative tunnels.max",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    tunnels:\n      max: -1\n",
			want: "c.yaml:5: upstreams[0].tunnels.max: -1: want a number of tunnels >= 1",
		},
		{
			name: "negative tunnels.idle_timeout",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    tunnels:\n      idle_timeout: -1s\n",
			want: "c.yaml:5: upstreams[0].tunnels.idle_timeout: -1s: want a duration >= 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.give), env(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConnectionAndTunnelLimitsDefaults(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("discovery: {kind: file, file: {path: s.yaml}}\nupstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Upstreams[0]
	if u.MaxConnections != 0 || u.Tunnels.Max != 1024 || u.Tunnels.IdleTimeout != 5*time.Minute {
		t.Errorf("max_connections %d (want 0: sized at start), tunnels %+v (want 1024, 5m)", u.MaxConnections, u.Tunnels)
	}
}
