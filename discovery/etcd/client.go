package etcd

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/ringside-proxy/ringside/discovery"
)

// logEvery is how often a repeating registry error is logged.
const logEvery = 30 * time.Second

// clientConfig checks c and turns it into a clientv3 configuration, reading the TLS files.
// etcd's client logs every retry at warn level; ringside logs registry errors itself, once per
// interval, so the client only gets to log errors.
func (c Config) clientConfig(logger *zap.Logger) (clientv3.Config, error) {
	if len(c.Endpoints) == 0 {
		return clientv3.Config{}, fmt.Errorf("%w: no endpoints", ErrBadConfig)
	}
	for _, ep := range c.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return clientv3.Config{}, fmt.Errorf("%w: empty endpoint", ErrBadConfig)
		}
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 || c.ProgressInterval < 0 {
		return clientv3.Config{}, fmt.Errorf("%w: negative timeout or interval", ErrBadConfig)
	}
	if c.Password != "" && c.Username == "" {
		return clientv3.Config{}, fmt.Errorf("%w: password without username", ErrBadConfig)
	}
	cc := clientv3.Config{
		Endpoints:            append([]string(nil), c.Endpoints...),
		DialTimeout:          orDefault(c.DialTimeout, DefaultDialTimeout),
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             c.Username,
		Password:             c.Password,
		Logger:               logger.WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
		DialOptions:          []grpc.DialOption{grpc.WithConnectParams(c.connectParams())},
	}
	if c.TLS.enabled() {
		tc, err := c.TLS.load()
		if err != nil {
			return clientv3.Config{}, err
		}
		cc.TLS = tc
	}
	return cc, nil
}

// connectParams paces gRPC's reconnection to etcd with the configured backoff, capped as
// while etcd is unreachable (discovery.Backoff.UnreachableDelay): a connection attempt only
// happens while etcd is unreachable. clientv3 leaves gRPC's default, which backs off to two
// minutes between attempts: after a long outage, a sidecar would then wait up to two minutes
// more before it noticed etcd was back.
func (c Config) connectParams() grpc.ConnectParams {
	base, ceiling := c.Backoff.Base, c.Backoff.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	unreachable := c.Backoff.Unreachable
	if unreachable <= 0 {
		unreachable = discovery.DefaultUnreachable
	}
	if ceiling <= 0 || ceiling > unreachable {
		ceiling = unreachable
	}
	return grpc.ConnectParams{
		Backoff: grpcbackoff.Config{
			BaseDelay:  base,
			Multiplier: grpcbackoff.DefaultConfig.Multiplier,
			Jitter:     grpcbackoff.DefaultConfig.Jitter,
			MaxDelay:   max(ceiling, base),
		},
		MinConnectTimeout: 20 * time.Second, // gRPC's default
	}
}

// connect creates a client, retrying with backoff until it succeeds or ctx ends. Creating a
// client does not wait for etcd unless authentication is on (the client then fetches a token),
// so a sidecar that starts before etcd is reachable waits here instead of failing. Each failure
// goes to onErr.
func connect(ctx context.Context, cc clientv3.Config, b discovery.Backoff, onErr func(error)) (*clientv3.Client, error) {
	for attempt := 0; ; attempt++ {
		cli, err := clientv3.New(cc)
		if err == nil {
			return cli, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		onErr(fmt.Errorf("connect to etcd %s: %w", strings.Join(cc.Endpoints, ","), err))
		if err := discovery.Sleep(ctx, b.Delay(attempt)); err != nil {
			return nil, err
		}
	}
}

// limitedLogger logs a repeating error once per logEvery per key, with a count of the lines it
// suppressed meanwhile, so an unreachable etcd is not logged once per retry. Safe for
// concurrent use.
type limitedLogger struct {
	logger  *zap.Logger
	limiter *discovery.LogLimiter
}

func newLimitedLogger(logger *zap.Logger) limitedLogger {
	return limitedLogger{logger: logger, limiter: discovery.NewLogLimiter(logEvery)}
}

// log logs msg at level unless a line for key was logged within logEvery.
func (l limitedLogger) log(level zapcore.Level, key, msg string, fields ...zap.Field) {
	ce := l.logger.Check(level, msg)
	if ce == nil {
		return
	}
	ok, suppressed := l.limiter.Allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	ce.Write(fields...)
}

// reset makes the next line for key go out at once: call it when the error has cleared.
func (l limitedLogger) reset(key string) { l.limiter.Reset(key) }
