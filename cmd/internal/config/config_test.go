package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadGood(t *testing.T) {
	t.Setenv("TOKEN", "s3cret")
	t.Setenv("POD", "abc")
	cfg, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	u := cfg.Upstreams[0]
	if cfg.Discovery.Consul.Address != "127.0.0.1:8500" || cfg.Discovery.Consul.Token != "s3cret" || cfg.Register.ID != "web-abc" {
		t.Errorf("env expansion: got address %q token %q id %q", cfg.Discovery.Consul.Address, cfg.Discovery.Consul.Token, cfg.Register.ID)
	}
	if u.Service != "cart" || u.Balancer != "maglev" || u.NoKey != "random" || u.VirtualNodes != 160 || *u.PanicThreshold != 50 {
		t.Errorf("upstream defaults: %+v", u)
	}
	if u.HealthCheck.Interval != 10*time.Second || u.HealthCheck.ExpectStatus[1] != 399 {
		t.Errorf("health check defaults: %+v", u.HealthCheck)
	}
	if u.Timeouts.BodyIdle != 30*time.Second || u.Timeouts.Request != 0 || u.MaxRequestBody != 0 || u.MaxStreamingBodies != 512 {
		t.Errorf("body limits' defaults: body_idle %v, request %v, max_request_body %d, max_streaming_bodies %d",
			u.Timeouts.BodyIdle, u.Timeouts.Request, u.MaxRequestBody, u.MaxStreamingBodies)
	}
	if cfg.Lifecycle.DrainDelay != 2*time.Second || cfg.Lifecycle.GracePeriod != 30*time.Second {
		t.Errorf("lifecycle: %+v", cfg.Lifecycle)
	}
	if cfg.Discovery.Settle != 5*time.Second || cfg.Discovery.Coalesce != 100*time.Millisecond {
		t.Errorf("discovery settle %v, coalesce %v: want the defaults 5s and 100ms", cfg.Discovery.Settle, cfg.Discovery.Coalesce)
	}
}

func TestParseErrorsNameFileLineField(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string // substrings of the error, in order of appearance
	}{
		{
			name: "unknown field",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    balanser: maglev\n",
			want: []string{"c.yaml:4: upstreams[0].balanser: unknown field; allowed here:", "balancer"},
		},
		{
			name: "bad balancer",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    balancer: sticky\n",
			want: []string{"c.yaml:4: upstreams[0].balancer: \"sticky\" is not allowed: want one of ring_hash"},
		},
		{
			name: "bad engine",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\nengine:\n  kind: epoll\n",
			want: []string{"c.yaml:5: engine.kind: \"epoll\" is not allowed: want one of goroutines, event_loop"},
		},
		{
			name: "bad loops",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\nengine:\n  kind: event_loop\n  loops: -1\n",
			want: []string{"c.yaml:6: engine.loops: -1: want 1 to 256"},
		},
		{
			name: "negative max_request_body",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    max_request_body: -1\n",
			want: []string{"c.yaml:4: upstreams[0].max_request_body: -1: want bytes >= 0 (0 = no limit)"},
		},
		{
			name: "negative body_idle",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    timeouts:\n      body_idle: -1s\n",
			want: []string{"c.yaml:5: upstreams[0].timeouts.body_idle:"},
		},
		{
			name: "syntax",
			give: "upstreams:\n  - name: cart\n   listen: [\n",
			want: []string{"c.yaml:", "YAML syntax"},
		},
		{
			name: "unset env",
			give: "upstreams:\n  - name: cart\n    listen: ${LISTEN}\n",
			want: []string{"c.yaml:3: upstreams[0].listen: environment variable LISTEN is not set"},
		},
		{
			name: "bad hash key",
			give: "upstreams:\n  - name: cart\n    listen: 127.0.0.1:9001\n    hash_key: [header]\n",
			want: []string{"c.yaml:4: upstreams[0].hash_key[0]:", "needs an argument"},
		},
		{
			name: "duplicate listen",
			give: "upstreams:\n  - name: a\n    listen: 127.0.0.1:9001\n  - name: b\n    listen: 127.0.0.1:9001\n",
			want: []string{"c.yaml:5: upstreams[1].listen: 127.0.0.1:9001 is also upstreams[0].listen"},
		},
		{
			name: "missing field points at parent",
			give: "upstreams:\n  - listen: 127.0.0.1:9001\n",
			want: []string{"c.yaml:2: upstreams[0].name: missing"},
		},
		{
			name: "register with file source",
			give: "register:\n  id: a\n  service: web\n  address: 1.2.3.4\n  port: 80\n",
			want: []string{"c.yaml:2: register: the file source cannot register"},
		},
		{
			name: "grace shorter than drain",
			give: "upstreams:\n  - name: a\n    listen: 127.0.0.1:9001\nlifecycle:\n  drain_delay: 40s\n",
			want: []string{"lifecycle.grace_period: 30s is shorter than drain_delay 40s"},
		},
		{
			name: "env cannot inject fields",
			give: "upstreams:\n  - name: a\n    listen: ${EVIL}\n",
			want: []string{"upstreams[0].listen:", "want host:port"},
		},
		{
			name: "settle out of range",
			give: "discovery:\n  kind: consul\n  settle: 1h\nupstreams:\n  - name: a\n    listen: 127.0.0.1:9001\n",
			want: []string{"c.yaml:3: discovery.settle: 1h0m0s: want a duration from 0 (the default, 5s) to 5m"},
		},
		{
			name: "negative coalesce",
			give: "discovery:\n  kind: consul\n  coalesce: -1s\nupstreams:\n  - name: a\n    listen: 127.0.0.1:9001\n",
			want: []string{"c.yaml:3: discovery.coalesce: -1s: want a duration from 0 (the default, 100ms) to 10s"},
		},
		{
			name: "empty",
			give: "",
			want: []string{"c.yaml: empty file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.give), env(map[string]string{"EVIL": "x\nadmin: {pprof: true}"}))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.give)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q", msg, w)
				}
				rest = rest[i+len(w):]
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is not a *config.Error: %T", err)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		give, want string
		wantErr    bool
	}{
		{give: "plain", want: "plain"},
		{give: "${A}", want: "1"},
		{give: "x${A}y${B:-two}", want: "x1ytwo"},
		{give: "${EMPTY:-d}", want: "d"},
		{give: "${EMPTY}", want: ""},
		{give: "$$HOME", want: "$HOME"},
		{give: "cost $5", want: "cost $5"},
		{give: "${NOPE}", wantErr: true},
		{give: "${A", wantErr: true},
		{give: "${1A}", wantErr: true},
	}
	lookup := env(map[string]string{"A": "1", "EMPTY": ""})
	for _, tt := range tests {
		got, err := expand(tt.give, lookup)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q, err %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("upstreams:\n  - name: a\n    listen: 127.0.0.1:1\n"))
	f.Add([]byte("admin: {listen: ':0'}\nupstreams: [{name: x, listen: ':1', hash_key: ['path_prefix:2']}]\n"))
	f.Add([]byte("a: &x {b: *x}"))
	f.Add([]byte("upstreams: [&u {name: a, listen: ':1', retries: {attempts: 2.5}}, {<<: *u, name: b, name: c, hash_key: path}]\nadmin: {pprof: maybe}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, env(nil))
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && cfg != nil {
			t.Fatal("config with error")
		}
	})
}

// ${VAR} in a number or a bool field: the expanded text is resolved again (it once stayed a
// string and failed to decode into an int).
func TestExpandIntoTypedFields(t *testing.T) {
	text := `admin:
  listen: "127.0.0.1:${ADMIN_PORT}"
  pprof: ${PPROF}
discovery: {kind: file, file: {path: s.yaml}}
upstreams:
  - name: a
    listen: 127.0.0.1:9001
    max_requests: ${MAX}
    bounded_load: ${LOAD}
    panic_threshold: ${PANIC:-30}
    hash_key: ["header:${HDR}"]
  - name: b
    listen: 127.0.0.1:9002
    service: "${MAX}"
`
	cfg, err := Parse("c.yaml", []byte(text), env(map[string]string{
		"ADMIN_PORT": "9999", "PPROF": "true", "MAX": "7", "LOAD": "1.5", "HDR": "X-User-ID",
	}))
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Upstreams[0]
	if !cfg.Admin.Pprof || cfg.Admin.Listen != "127.0.0.1:9999" || u.MaxRequests != 7 || u.BoundedLoad != 1.5 ||
		*u.PanicThreshold != 30 || u.HashKey[0] != "header:X-User-ID" || cfg.Upstreams[1].Service != "7" {
		t.Errorf("got pprof %v listen %s max %d load %g panic %g key %s service %q", cfg.Admin.Pprof, cfg.Admin.Listen,
			u.MaxRequests, u.BoundedLoad, *u.PanicThreshold, u.HashKey[0], cfg.Upstreams[1].Service)
	}
	if _, err := Parse("c.yaml", []byte("upstreams:\n  - name: a\n    listen: 127.0.0.1:1\n    max_requests: ${MAX}\n"),
		env(map[string]string{"MAX": "lots"})); err == nil || !strings.Contains(err.Error(), "c.yaml:4:") {
		t.Errorf("a non-number in max_requests: %v", err)
	}
}
