package config

import "time"

// applyDefaults fills what the file left out with what a user would expect.
func (c *Config) applyDefaults() {
	setStr(&c.Admin.Listen, "127.0.0.1:9901")
	setStr(&c.Discovery.Kind, "file")
	setDur(&c.Discovery.File.PollInterval, time.Second)
	setStr(&c.Discovery.Etcd.Prefix, "/ringside/services")
	setDur(&c.Discovery.Etcd.DialTimeout, 5*time.Second)
	setDur(&c.Discovery.Consul.WaitTime, 5*time.Minute)
	setDur(&c.Discovery.Settle, 5*time.Second)
	setDur(&c.Discovery.Coalesce, 100*time.Millisecond)
	if r := c.Register; r != nil {
		setDur(&r.Check.Interval, 5*time.Second)
		setDur(&r.Check.Timeout, 2*time.Second)
		setDur(&r.TTL, 10*time.Second)
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		setStr(&u.Service, u.Name)
		setStr(&u.Balancer, "ring_hash")
		setStr(&u.NoKey, "random")
		setInt(&u.VirtualNodes, 160)
		if u.PanicThreshold == nil {
			p := 50.0
			u.PanicThreshold = &p
		}
		setInt(&u.Retries.Attempts, 3)
		if u.Retries.BudgetPercent == 0 {
			u.Retries.BudgetPercent = 20
		}
		setInt(&u.Retries.ReplayBodyLimit, 64<<10)
		setDur(&u.Timeouts.Dial, 2*time.Second)
		setDur(&u.Timeouts.ResponseHeader, 30*time.Second)
		setDur(&u.Timeouts.Idle, 90*time.Second)
		setDur(&u.Timeouts.ReadHeader, 10*time.Second)
		setDur(&u.Timeouts.BodyIdle, 30*time.Second)
		setInt(&u.MaxStreamingBodies, 512)
		setInt(&u.Timeouts.MaxHeaderBytes, 16<<10)
		// max_connections stays 0: the listener sizes it to the machine (proxy.DefaultMaxConns).
		setInt(&u.Tunnels.Max, 1024)
		setDur(&u.Tunnels.IdleTimeout, 5*time.Minute)
		setInt(&u.Outlier.Consecutive5xx, 5)
		setInt(&u.Outlier.ConsecutiveGatewayFailure, 5)
		setDur(&u.Outlier.BaseEjectionTime, 30*time.Second)
		setDur(&u.Outlier.MaxEjectionTime, 300*time.Second)
		setInt(&u.Outlier.MaxEjectionPercent, 10)
		if hc := u.HealthCheck; hc != nil {
			setDur(&hc.Interval, 10*time.Second)
			setDur(&hc.Timeout, 2*time.Second)
			setInt(&hc.HealthyThreshold, 2)
			setInt(&hc.UnhealthyThreshold, 3)
			if len(hc.ExpectStatus) == 0 {
				hc.ExpectStatus = []int{200, 399}
			}
		}
		if u.Retries.PerTryTimeout == 0 {
			u.Retries.PerTryTimeout = u.Timeouts.ResponseHeader
		}
	}
	setDur(&c.Lifecycle.DrainDelay, 5*time.Second)
	setDur(&c.Lifecycle.GracePeriod, 30*time.Second)
	setStr(&c.Engine.Kind, "goroutines")
	setInt(&c.Engine.Loops, 1)
	setStr(&c.Log.Level, "info")
	setStr(&c.Log.Format, "json")
	setInt(&c.Log.AccessLogSample, 1)
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt[T int | int64](p *T, v T) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}
