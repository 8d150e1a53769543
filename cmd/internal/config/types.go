package config

import (
	"fmt"
	"time"
)

// Config is a whole ringside configuration file. Field tags name the YAML keys; every key is
// documented in deploy/CONFIG.md (linked from README.md), and unknown keys are errors.
type Config struct {
	Admin     Admin      `yaml:"admin"`
	Discovery Discovery  `yaml:"discovery"`
	Register  *Register  `yaml:"register"`
	Upstreams []Upstream `yaml:"upstreams"`
	// HostRouting, when set, is a shared listener that routes by the Host header to the
	// upstreams that list hosts.
	HostRouting *HostRouting `yaml:"host_routing"`
	Lifecycle   Lifecycle    `yaml:"lifecycle"`
	Log         Log          `yaml:"log"`
	Engine      Engine       `yaml:"engine"`

	// file and lines remember where each field was, for errors found after Load.
	file  string
	lines map[string]int
}

// Errorf returns an *Error about field (a path such as "upstreams[0].balancer"), at the line
// of the field or of its nearest parent present in the file.
func (c *Config) Errorf(field, format string, args ...any) *Error {
	line, p := 0, field
	for p != "" {
		if l, ok := c.lines[p]; ok {
			line = l
			break
		}
		p = parent(p)
	}
	return &Error{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Admin is the admin server: /metrics, /readyz, /healthz, /debug/pprof and the JSON API
// under /v1/.
type Admin struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:9901
	Pprof  bool   `yaml:"pprof"`  // default false
	// TokenFile holds the bearer token the API's changes (drain, eject, ...) require; ""
	// (the default) refuses every change.
	TokenFile string `yaml:"token_file"`
}

// Discovery selects and configures the registry ringside watches.
type Discovery struct {
	Kind   string       `yaml:"kind"` // file | consul | etcd
	File   FileSource   `yaml:"file"`
	Consul ConsulSource `yaml:"consul"`
	Etcd   EtcdSource   `yaml:"etcd"`
	// Settle (consul, etcd): removals held after a registry comes back, default 5s.
	Settle time.Duration `yaml:"settle"`
	// Coalesce (consul, etcd): least time between two updates of a service, default 100ms.
	Coalesce time.Duration `yaml:"coalesce"`
}

// FileSource is the embedded default: a YAML/JSON list of endpoints, re-read on change.
type FileSource struct {
	Path         string        `yaml:"path"`
	PollInterval time.Duration `yaml:"poll_interval"` // default 1s
}

// ConsulSource configures the Consul health watch and registration. Empty fields fall back to
// the standard CONSUL_HTTP_* environment, as the consul CLI does.
type ConsulSource struct {
	Address     string        `yaml:"address"`
	Scheme      string        `yaml:"scheme"`
	Token       string        `yaml:"token"`
	TokenFile   string        `yaml:"token_file"`
	Datacenter  string        `yaml:"datacenter"`
	Tag         string        `yaml:"tag"`
	Filter      string        `yaml:"filter"`
	PassingOnly *bool         `yaml:"passing_only"` // default false: passing + warning
	Stale       bool          `yaml:"stale"`
	WaitTime    time.Duration `yaml:"wait_time"` // blocking query wait, default 5m
	TLS         TLSClient     `yaml:"tls"`
}

// EtcdSource configures the etcd watch and registration.
type EtcdSource struct {
	Endpoints   []string      `yaml:"endpoints"`
	Prefix      string        `yaml:"prefix"` // default /ringside/services
	Username    string        `yaml:"username"`
	Password    string        `yaml:"password"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	TLS         TLSClient     `yaml:"tls"`
}

// TLSClient is TLS towards a server: a registry or an upstream endpoint.
type TLSClient struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// TLSServer is TLS on a listener; the files are re-read when they change.
type TLSServer struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Register describes the local app, registered once its health check passes and deregistered
// on shutdown.
type Register struct {
	ID      string            `yaml:"id"`
	Service string            `yaml:"service"`
	Address string            `yaml:"address"`
	Port    int               `yaml:"port"`
	Tags    []string          `yaml:"tags"`
	Meta    map[string]string `yaml:"meta"`
	Weights struct {
		Passing int `yaml:"passing"`
		Warning int `yaml:"warning"`
	} `yaml:"weights"`
	Check struct {
		HTTP            string        `yaml:"http"`
		Interval        time.Duration `yaml:"interval"`
		Timeout         time.Duration `yaml:"timeout"`
		DeregisterAfter time.Duration `yaml:"deregister_after"`
	} `yaml:"check"`
	TTL time.Duration `yaml:"ttl"`
}

// Upstream is one service the app calls, with its own listener (the pattern Consul's
// upstreams use: 127.0.0.1:9001 → "cart").
type Upstream struct {
	Name    string     `yaml:"name"`
	Service string     `yaml:"service"` // default: Name
	Listen  string     `yaml:"listen"`  // "" = only reachable through host_routing
	Hosts   []string   `yaml:"hosts"`   // Host header values routed here on host_routing
	TLS     *TLSServer `yaml:"tls"`     // TLS on this upstream's listener
	// MaxConnections caps the client connections of this upstream's listener; 0 = sized to
	// the process's file-descriptor and memory limits (proxy.DefaultMaxConns).
	MaxConnections int `yaml:"max_connections"`

	HashKey        []string      `yaml:"hash_key"` // e.g. [header:X-User-ID, cookie:uid, client_ip]
	NoKey          string        `yaml:"no_key"`   // random | round_robin | reject
	Balancer       string        `yaml:"balancer"` // ring_hash | maglev | round_robin | weighted_round_robin | least_request | random
	VirtualNodes   int           `yaml:"virtual_nodes"`
	BoundedLoad    float64       `yaml:"bounded_load"`
	PanicThreshold *float64      `yaml:"panic_threshold"`
	SlowStart      time.Duration `yaml:"slow_start"`
	MaxRequests    int64         `yaml:"max_requests"`

	TrustedProxies []string `yaml:"trusted_proxies"` // CIDRs whose X-Forwarded-For is believed
	StripPrefix    string   `yaml:"strip_prefix"`
	AddPrefix      string   `yaml:"add_prefix"`

	MaxRequestBody     int64 `yaml:"max_request_body"`     // bytes; 0 = no limit
	MaxStreamingBodies int   `yaml:"max_streaming_bodies"` // per endpoint; default 512

	Retries     Retries       `yaml:"retries"`
	Timeouts    Timeouts      `yaml:"timeouts"`
	Outlier     Outlier       `yaml:"outlier"`
	Tunnels     Tunnels       `yaml:"tunnels"`
	HealthCheck *HealthCheck  `yaml:"health_check"`
	UpstreamTLS *TLSClient    `yaml:"upstream_tls"`
	ReadyWait   time.Duration `yaml:"ready_wait"` // overrides lifecycle.ready_wait
}

// Retries bounds retrying on the next distinct endpoint.
type Retries struct {
	Attempts        int           `yaml:"attempts"`          // total tries, default 3
	PerTryTimeout   time.Duration `yaml:"per_try_timeout"`   // default: timeouts.response_header
	BudgetPercent   float64       `yaml:"budget_percent"`    // retries ≤ this share of requests, default 20
	ReplayBodyLimit int           `yaml:"replay_body_limit"` // bytes buffered to allow replay, default 64 KiB
}

// Timeouts of the forwarding path.
type Timeouts struct {
	Dial           time.Duration `yaml:"dial"`            // default 2s
	ResponseHeader time.Duration `yaml:"response_header"` // default 30s
	Idle           time.Duration `yaml:"idle"`            // default 90s
	ReadHeader     time.Duration `yaml:"read_header"`     // listener, default 10s
	BodyIdle       time.Duration `yaml:"body_idle"`       // a streamed body's longest pause, default 30s
	Request        time.Duration `yaml:"request"`         // the whole exchange; default 0 (off)
	MaxHeaderBytes int           `yaml:"max_header_bytes"`
}

// Tunnels bounds the upgraded (WebSocket) connections of an upstream.
type Tunnels struct {
	Max         int           `yaml:"max"`          // open at once, default 1024; more get 503
	IdleTimeout time.Duration `yaml:"idle_timeout"` // closed after this long without a byte, default 5m
}

// Outlier is passive outlier detection.
type Outlier struct {
	Consecutive5xx            int           `yaml:"consecutive_5xx"`
	ConsecutiveGatewayFailure int           `yaml:"consecutive_gateway_failure"`
	BaseEjectionTime          time.Duration `yaml:"base_ejection_time"`
	MaxEjectionTime           time.Duration `yaml:"max_ejection_time"`
	MaxEjectionPercent        int           `yaml:"max_ejection_percent"`
}

// HealthCheck is the optional active check of each endpoint.
type HealthCheck struct {
	Path               string        `yaml:"path"`
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
	HealthyThreshold   int           `yaml:"healthy_threshold"`
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"`
	ExpectStatus       []int         `yaml:"expect_status"` // [lo, hi], default [200, 399]
	Host               string        `yaml:"host"`
}

// HostRouting is a shared listener that picks the upstream by Host header.
type HostRouting struct {
	Listen         string     `yaml:"listen"`
	TLS            *TLSServer `yaml:"tls"`
	MaxConnections int        `yaml:"max_connections"` // as an upstream's
}

// Lifecycle governs start-up readiness and shutdown draining.
type Lifecycle struct {
	ReadyWait   time.Duration `yaml:"ready_wait"`   // ready anyway after this long without first snapshots; 0 = wait forever
	DrainDelay  time.Duration `yaml:"drain_delay"`  // after deregistration is visible, keep serving this long; default 5s
	GracePeriod time.Duration `yaml:"grace_period"` // the whole shutdown must end within it; default 30s
}

// Engine chooses how listeners serve connections.
type Engine struct {
	Kind  string `yaml:"kind"`  // goroutines | event_loop, default goroutines
	Loops int    `yaml:"loops"` // event_loop: loops (threads) per listener, default 1
}

// Log configures zap and the access log.
type Log struct {
	Level           string `yaml:"level"`  // debug | info | warn | error, default info
	Format          string `yaml:"format"` // json | console, default json
	AccessLog       bool   `yaml:"access_log"`
	AccessLogSample int    `yaml:"access_log_sample"` // log 1 in N requests, default 1
}
