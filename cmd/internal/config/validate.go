package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// validator collects errors, each tied to the line of the field it names.
type validator struct {
	cfg  *Config
	errs []error
}

// fail records a problem with field; the line is the field's own, or its nearest parent's
// when the field is absent from the file.
func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, v.cfg.Errorf(field, format, args...))
}

func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func (v *validator) oneOf(field, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.fail(field, "%q is not allowed: want one of %s", got, strings.Join(allowed, ", "))
}

func (v *validator) hostPort(field, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(field, "%q: want host:port, e.g. 127.0.0.1:9001", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.fail(field, "port %q: want a number in 0..65535", port)
	}
	_ = host // an empty host listens on every address, which is allowed
}

func (v *validator) nonNegative(field string, d time.Duration) {
	if d < 0 {
		v.fail(field, "%s: want a duration >= 0, e.g. 5s", d)
	}
}

func (v *validator) maxConnections(field string, n int) {
	if n < 0 {
		v.fail(field, "%d: want a number of connections >= 1 (0 or unset = sized to the machine)", n)
	}
}

func (v *validator) tlsClient(field string, t TLSClient) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.fail(field, "cert_file and key_file go together: set both for mTLS, or neither")
	}
}

func (v *validator) tlsServer(field string, t *TLSServer) {
	if t != nil && (t.CertFile == "" || t.KeyFile == "") {
		v.fail(field, "a listener's TLS needs both cert_file and key_file")
	}
}

func (c *Config) validate(v *validator) {
	v.hostPort("admin.listen", c.Admin.Listen)
	c.validateDiscovery(v)
	if c.Register != nil {
		c.validateRegister(v)
	}
	if len(c.Upstreams) == 0 && c.Register == nil {
		v.fail("upstreams", "no upstreams and nothing to register: add at least one upstream (name, listen, hash_key)")
	}
	names := make(map[string]int)
	listens := map[string]string{c.Admin.Listen: "admin.listen"}
	hosts := make(map[string]int)
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		f := "upstreams[" + strconv.Itoa(i) + "]"
		if u.Name == "" {
			v.fail(f+".name", "missing: every upstream needs a name")
		} else if j, dup := names[u.Name]; dup {
			v.fail(f+".name", "%q is also upstreams[%d].name: names must be unique", u.Name, j)
		} else {
			names[u.Name] = i
		}
		if u.Listen == "" && len(u.Hosts) == 0 {
			v.fail(f+".listen", "missing: give the upstream a listen address (e.g. 127.0.0.1:9001) or hosts for host_routing")
		}
		if u.Listen != "" {
			v.hostPort(f+".listen", u.Listen)
			if other, dup := listens[u.Listen]; dup && !strings.HasSuffix(u.Listen, ":0") {
				v.fail(f+".listen", "%s is also %s: each listener needs its own address", u.Listen, other)
			}
			listens[u.Listen] = f + ".listen"
		}
		for _, h := range u.Hosts {
			if j, dup := hosts[strings.ToLower(h)]; dup {
				v.fail(f+".hosts", "host %q is also routed to upstreams[%d]", h, j)
			}
			hosts[strings.ToLower(h)] = i
		}
		v.maxConnections(f+".max_connections", u.MaxConnections)
		if len(u.Hosts) > 0 && c.HostRouting == nil {
			v.fail(f+".hosts", "hosts are only used by host_routing: add a host_routing section with a listen address")
		}
		c.validateUpstream(v, f, u)
	}
	if c.HostRouting != nil {
		v.hostPort("host_routing.listen", c.HostRouting.Listen)
		if other, dup := listens[c.HostRouting.Listen]; dup && !strings.HasSuffix(c.HostRouting.Listen, ":0") {
			v.fail("host_routing.listen", "%s is also %s", c.HostRouting.Listen, other)
		}
		v.tlsServer("host_routing.tls", c.HostRouting.TLS)
		v.maxConnections("host_routing.max_connections", c.HostRouting.MaxConnections)
	}
	v.nonNegative("lifecycle.ready_wait", c.Lifecycle.ReadyWait)
	v.nonNegative("lifecycle.drain_delay", c.Lifecycle.DrainDelay)
	v.nonNegative("lifecycle.grace_period", c.Lifecycle.GracePeriod)
	if c.Lifecycle.GracePeriod < c.Lifecycle.DrainDelay {
		v.fail("lifecycle.grace_period", "%s is shorter than drain_delay %s: the grace period must cover the drain",
			c.Lifecycle.GracePeriod, c.Lifecycle.DrainDelay)
	}
	v.oneOf("engine.kind", c.Engine.Kind, "goroutines", "event_loop")
	if c.Engine.Loops < 0 || c.Engine.Loops > 256 {
		v.fail("engine.loops", "%d: want 1 to 256 event loops per listener (0 = the default, 1)", c.Engine.Loops)
	}
	if c.Engine.Kind == "event_loop" && runtime.GOOS != "linux" {
		v.fail("engine.kind", "event_loop needs Linux (epoll): use goroutines here")
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "console")
	if c.Log.AccessLogSample < 1 {
		v.fail("log.access_log_sample", "%d: want >= 1 (log 1 request in N)", c.Log.AccessLogSample)
	}
}

func (c *Config) validateDiscovery(v *validator) {
	d := &c.Discovery
	v.oneOf("discovery.kind", d.Kind, "file", "consul", "etcd")
	if d.Settle < 0 || d.Settle > 5*time.Minute {
		v.fail("discovery.settle", "%s: want a duration from 0 (the default, 5s) to 5m: removals are held this long after every registry outage", d.Settle)
	}
	if d.Coalesce < 0 || d.Coalesce > 10*time.Second {
		v.fail("discovery.coalesce", "%s: want a duration from 0 (the default, 100ms) to 10s: a change may wait this long behind the one before", d.Coalesce)
	}
	switch d.Kind {
	case "file":
		if d.File.Path == "" {
			v.fail("discovery.file.path", "missing: the file source needs the path of a services file")
		}
		v.nonNegative("discovery.file.poll_interval", d.File.PollInterval)
	case "consul":
		if a := d.Consul.Address; a != "" && !strings.Contains(a, "://") && !strings.Contains(a, ":") {
			v.fail("discovery.consul.address", "%q: want host:port or a URL (http://, https://, unix://), e.g. 127.0.0.1:8500", a)
		}
		if d.Consul.Scheme != "" {
			v.oneOf("discovery.consul.scheme", d.Consul.Scheme, "http", "https")
		}
		v.nonNegative("discovery.consul.wait_time", d.Consul.WaitTime)
		v.tlsClient("discovery.consul.tls", d.Consul.TLS)
	case "etcd":
		if len(d.Etcd.Endpoints) == 0 {
			v.fail("discovery.etcd.endpoints", "missing: list at least one etcd endpoint, e.g. [http://127.0.0.1:2379]")
		}
		for i, e := range d.Etcd.Endpoints {
			if u, err := url.Parse(e); err != nil || u.Host == "" {
				v.fail("discovery.etcd.endpoints["+strconv.Itoa(i)+"]", "%q: want a URL such as http://127.0.0.1:2379", e)
			}
		}
		if !strings.HasPrefix(d.Etcd.Prefix, "/") {
			v.fail("discovery.etcd.prefix", "%q: want a key prefix starting with /", d.Etcd.Prefix)
		}
		v.nonNegative("discovery.etcd.dial_timeout", d.Etcd.DialTimeout)
		v.tlsClient("discovery.etcd.tls", d.Etcd.TLS)
	}
}

func (c *Config) validateRegister(v *validator) {
	r := c.Register
	if r.Service == "" {
		v.fail("register.service", "missing: the name callers discover the app by")
	}
	if r.ID == "" {
		v.fail("register.id", "missing: a unique instance id, e.g. ${POD_NAME}")
	}
	if r.Address == "" {
		v.fail("register.address", "missing: the address callers dial, e.g. ${POD_IP}")
	}
	if r.Port < 1 || r.Port > 65535 {
		v.fail("register.port", "%d: want the app's port, 1..65535", r.Port)
	}
	if r.Weights.Passing < 0 || r.Weights.Warning < 0 {
		v.fail("register.weights", "weights must be >= 0 (0 = registry default)")
	}
	if r.Check.HTTP != "" {
		if u, err := url.Parse(r.Check.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail("register.check.http", "%q: want a URL such as http://127.0.0.1:8080/healthz", r.Check.HTTP)
		}
	}
	v.nonNegative("register.check.interval", r.Check.Interval)
	v.nonNegative("register.check.timeout", r.Check.Timeout)
	v.nonNegative("register.ttl", r.TTL)
	if c.Discovery.Kind == "file" {
		v.fail("register", "the file source cannot register an app: use discovery.kind consul or etcd, or remove register")
	}
}

func (c *Config) validateUpstream(v *validator, f string, u *Upstream) {
	v.oneOf(f+".balancer", u.Balancer, "ring_hash", "maglev", "round_robin", "weighted_round_robin", "least_request", "random")
	v.oneOf(f+".no_key", u.NoKey, "random", "round_robin", "reject")
	if u.VirtualNodes < 1 || u.VirtualNodes > 10000 {
		v.fail(f+".virtual_nodes", "%d: want 1..10000 (default 160)", u.VirtualNodes)
	}
	if u.BoundedLoad != 0 && u.BoundedLoad <= 1 {
		v.fail(f+".bounded_load", "%g: want 0 (off) or a factor > 1, e.g. 1.25", u.BoundedLoad)
	}
	if u.BoundedLoad != 0 && u.Balancer != "ring_hash" && u.Balancer != "maglev" {
		v.fail(f+".bounded_load", "applies to the ring_hash and maglev balancers only, not %s: remove it or change balancer", u.Balancer)
	}
	if u.PanicThreshold != nil && (*u.PanicThreshold < 0 || *u.PanicThreshold > 100) {
		v.fail(f+".panic_threshold", "%g: want a percentage 0..100", *u.PanicThreshold)
	}
	v.nonNegative(f+".slow_start", u.SlowStart)
	if u.MaxRequests < 0 {
		v.fail(f+".max_requests", "%d: want >= 0 (0 = unlimited)", u.MaxRequests)
	}
	if u.Tunnels.Max < 0 {
		v.fail(f+".tunnels.max", "%d: want a number of tunnels >= 1 (unset = 1024)", u.Tunnels.Max)
	}
	v.nonNegative(f+".tunnels.idle_timeout", u.Tunnels.IdleTimeout)
	for i, k := range u.HashKey {
		if err := checkHashKey(k); err != nil {
			v.fail(f+".hash_key["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
	for i, p := range u.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				v.fail(f+".trusted_proxies["+strconv.Itoa(i)+"]", "%q: want a CIDR such as 10.0.0.0/8 or an IP", p)
			}
		}
	}
	for _, p := range []struct{ field, val string }{{"strip_prefix", u.StripPrefix}, {"add_prefix", u.AddPrefix}} {
		if p.val != "" && !strings.HasPrefix(p.val, "/") {
			v.fail(f+"."+p.field, "%q: want a path starting with /", p.val)
		}
	}
	if u.Retries.Attempts < 1 || u.Retries.Attempts > 10 {
		v.fail(f+".retries.attempts", "%d: want 1..10 tries in all (1 = no retry)", u.Retries.Attempts)
	}
	if u.Retries.BudgetPercent < 0 || u.Retries.BudgetPercent > 100 {
		v.fail(f+".retries.budget_percent", "%g: want 0..100", u.Retries.BudgetPercent)
	}
	if u.Retries.ReplayBodyLimit < 0 {
		v.fail(f+".retries.replay_body_limit", "%d: want bytes >= 0", u.Retries.ReplayBodyLimit)
	}
	v.nonNegative(f+".retries.per_try_timeout", u.Retries.PerTryTimeout)
	for name, d := range map[string]time.Duration{"dial": u.Timeouts.Dial, "response_header": u.Timeouts.ResponseHeader,
		"idle": u.Timeouts.Idle, "read_header": u.Timeouts.ReadHeader, "body_idle": u.Timeouts.BodyIdle,
		"request": u.Timeouts.Request} {
		v.nonNegative(f+".timeouts."+name, d)
	}
	if u.MaxRequestBody < 0 {
		v.fail(f+".max_request_body", "%d: want bytes >= 0 (0 = no limit)", u.MaxRequestBody)
	}
	if u.MaxStreamingBodies < 1 {
		v.fail(f+".max_streaming_bodies", "%d: want >= 1 request bodies streaming to one endpoint at once", u.MaxStreamingBodies)
	}
	if u.Timeouts.MaxHeaderBytes < 0 {
		v.fail(f+".timeouts.max_header_bytes", "%d: want bytes >= 0", u.Timeouts.MaxHeaderBytes)
	}
	o := u.Outlier
	if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		v.fail(f+".outlier.max_ejection_percent", "%d: want 0..100", o.MaxEjectionPercent)
	}
	if o.MaxEjectionTime < o.BaseEjectionTime {
		v.fail(f+".outlier.max_ejection_time", "%s is below base_ejection_time %s", o.MaxEjectionTime, o.BaseEjectionTime)
	}
	if hc := u.HealthCheck; hc != nil {
		hf := f + ".health_check"
		if !strings.HasPrefix(hc.Path, "/") {
			v.fail(hf+".path", "%q: want a path starting with /, e.g. /healthz", hc.Path)
		}
		if hc.Interval <= 0 || hc.Timeout <= 0 {
			v.fail(hf, "interval and timeout must be > 0")
		} else if hc.Timeout > hc.Interval {
			v.fail(hf+".timeout", "%s is above interval %s: a probe must end before the next one", hc.Timeout, hc.Interval)
		}
		if hc.HealthyThreshold < 1 || hc.UnhealthyThreshold < 1 {
			v.fail(hf, "healthy_threshold and unhealthy_threshold must be >= 1")
		}
		if len(hc.ExpectStatus) != 2 || hc.ExpectStatus[0] < 100 || hc.ExpectStatus[1] > 599 || hc.ExpectStatus[0] > hc.ExpectStatus[1] {
			v.fail(hf+".expect_status", "%v: want [lo, hi] within 100..599, e.g. [200, 399]", hc.ExpectStatus)
		}
	}
	if u.UpstreamTLS != nil {
		v.tlsClient(f+".upstream_tls", *u.UpstreamTLS)
	}
	v.tlsServer(f+".tls", u.TLS)
}

// checkHashKey checks the shape of a hash key source; proxy/hashkey parses it for real when
// the sidecar is built, so this only gives early, line-numbered errors.
func checkHashKey(s string) error {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case "header", "cookie", "query", "path_regex":
		if !hasArg || arg == "" {
			return fmt.Errorf("%q: %s needs an argument, e.g. %s:X-User-ID", s, kind, kind)
		}
		return nil
	case "path_prefix":
		if n, err := strconv.Atoi(arg); err != nil || n < 1 {
			return fmt.Errorf("%q: path_prefix takes a number of segments >= 1, e.g. path_prefix:2", s)
		}
		return nil
	case "path", "client_ip":
		if hasArg {
			return fmt.Errorf("%q: %s takes no argument", s, kind)
		}
		return nil
	}
	return fmt.Errorf("%q: want one of header:NAME, cookie:NAME, query:NAME, path, path_prefix:N, path_regex:RE, client_ip", s)
}
