package consul

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/ringside-proxy/ringside/discovery"
)

// Config configures a Source and a Registrar. The zero value talks to the agent that the
// standard environment names, exactly as api.DefaultConfig() reads it (CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL,
// CONSUL_HTTP_SSL_VERIFY, CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT,
// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, CONSUL_NAMESPACE, CONSUL_PARTITION), and
// localhost:8500 when it names none. A non-zero field overrides its environment variable.
//
// The token is sent in the X-Consul-Token header and is never logged; do not log a Config.
type Config struct {
	// Address is host:port, or a URL with an http, https or unix scheme.
	Address string
	// Scheme is "http" or "https".
	Scheme string
	// Token is the ACL token. TokenFile names a file holding it, and wins over Token, as in
	// the api package.
	Token     string
	TokenFile string
	// Datacenter is the datacenter to query; empty means the agent's own. It is also the
	// Zone of endpoints whose node does not report its datacenter.
	Datacenter string
	TLS        TLSConfig

	// Tags keeps only instances that carry every one of these tags.
	Tags []string
	// Filter is a Consul filter expression applied by the server, for example
	// `Service.Meta.version == "2"`.
	Filter string
	// Health chooses which instances a Source keeps, by the worst of their checks. The zero
	// value keeps passing and warning instances and drops critical ones.
	Health HealthPolicy
	// Consistency is the read mode of the blocking queries; the zero value is Consul's
	// default mode (served by the leader, not verified).
	Consistency Consistency
	// WaitTime is how long one blocking query may wait for a change (default 5m; Consul caps
	// it at 10m).
	WaitTime time.Duration
	// MinQueryInterval is the least time between the starts of two queries of one service
	// (default 5ms). Consul may return a blocking query without any change, so the loop is
	// paced; a small value keeps propagation fast.
	MinQueryInterval time.Duration
	// Backoff paces retries after a failed query or registration (zero: 100ms doubling to
	// 30s, with full jitter; to 1s while the agent cannot be reached).
	Backoff discovery.Backoff
	// Pacing paces the snapshots a Source delivers: removals held for a while after the
	// agent comes back from an outage or its index goes backwards, bursts coalesced (zero:
	// discovery's defaults).
	Pacing discovery.Pacing
	// ErrorLogInterval is how often a repeating error is logged again (default 1m).
	ErrorLogInterval time.Duration

	// RegistrationInterval is how often a Registrar's Run checks that the agent still has
	// the registration, and restores it when not (default 2s). An agent restarted without
	// state between two checks lists the app again within this long (plus its check's
	// first run): short enough that the callers' settle window (discovery.DefaultSettle, 5s)
	// covers it, and one cheap request to the local agent.
	RegistrationInterval time.Duration
	// RequestTimeout bounds a request that is not a blocking query: registration, the
	// registration check, deregistration (default 10s).
	RequestTimeout time.Duration
}

// TLSConfig configures HTTPS to the agent. Empty fields fall back to the environment.
type TLSConfig struct {
	// ServerName is the name to verify the agent's certificate against, when it differs
	// from the host of Address.
	ServerName string
	CAFile     string
	CAPath     string
	CertFile   string
	KeyFile    string
	// InsecureSkipVerify turns off verification of the agent's certificate.
	InsecureSkipVerify bool
}

// HealthPolicy chooses the instances a Source keeps by health.
type HealthPolicy uint8

const (
	// PassingOrWarning keeps passing and warning instances and drops critical ones.
	PassingOrWarning HealthPolicy = iota
	// PassingOnly keeps instances whose checks all pass (Consul's ?passing filter, applied by
	// the server).
	PassingOnly
	// AnyHealth keeps every instance, critical ones included, with their health, for a
	// consumer that judges health itself. A critical instance has weight 1.
	AnyHealth
)

// Consistency is the consistency mode of Consul reads.
type Consistency uint8

const (
	// DefaultConsistency reads from the leader without verifying its leadership: Consul's
	// default mode.
	DefaultConsistency Consistency = iota
	// Stale reads from any server, which spreads the load and survives a lost leader, at the
	// price of data that may lag the leader by a little.
	Stale
	// Consistent verifies the leadership with a quorum before every read.
	Consistent
)

// Defaults of the Config fields.
const (
	DefaultWaitTime             = 5 * time.Minute
	DefaultMinQueryInterval     = 5 * time.Millisecond
	DefaultErrorLogInterval     = time.Minute
	DefaultRegistrationInterval = 2 * time.Second
	DefaultRequestTimeout       = 10 * time.Second
	maxWaitTime                 = 10 * time.Minute
)

// ErrConfig is wrapped by every configuration error of this package.
var ErrConfig = errors.New("consul: bad config")

// withDefaults returns c with zero durations replaced by their defaults, or an error when a
// field is out of range.
func (c Config) withDefaults() (Config, error) {
	if c.Health > AnyHealth {
		return c, fmt.Errorf("%w: health policy %d", ErrConfig, c.Health)
	}
	if c.Consistency > Consistent {
		return c, fmt.Errorf("%w: consistency mode %d", ErrConfig, c.Consistency)
	}
	for name, d := range map[string]time.Duration{
		"wait time": c.WaitTime, "min query interval": c.MinQueryInterval,
		"error log interval": c.ErrorLogInterval, "registration interval": c.RegistrationInterval,
		"request timeout": c.RequestTimeout,
	} {
		if d < 0 {
			return c, fmt.Errorf("%w: negative %s %v", ErrConfig, name, d)
		}
	}
	if c.WaitTime > maxWaitTime {
		return c, fmt.Errorf("%w: wait time %v exceeds Consul's maximum of %v", ErrConfig, c.WaitTime, maxWaitTime)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.WaitTime, DefaultWaitTime)
	def(&c.MinQueryInterval, DefaultMinQueryInterval)
	def(&c.ErrorLogInterval, DefaultErrorLogInterval)
	def(&c.RegistrationInterval, DefaultRegistrationInterval)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	c.Tags = append([]string(nil), c.Tags...)
	return c, nil
}

// apiClient is the Consul API client of a Source or a Registrar, with the configuration it
// was made from. Both embed it.
type apiClient struct {
	cfg       Config // with its defaults filled in
	client    *api.Client
	transport *http.Transport // the client's own: close its idle connections when done
}

// newAPIClient fills in cfg's defaults and makes its API client, on a transport of its own.
// Fields left empty are filled by api.NewClient from the environment, as api.DefaultConfig()
// does. It fails on a bad configuration; it does not contact Consul.
func newAPIClient(cfg Config) (apiClient, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return apiClient{}, err
	}
	tr := cleanhttp.DefaultPooledTransport()
	// Every watched service holds a connection for its blocking query; let them all stay
	// pooled between queries rather than reconnecting.
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 1024
	client, err := api.NewClient(&api.Config{
		Address:    cfg.Address,
		Scheme:     cfg.Scheme,
		Datacenter: cfg.Datacenter,
		Token:      cfg.Token,
		TokenFile:  cfg.TokenFile,
		Transport:  tr,
		TLSConfig: api.TLSConfig{
			Address:            cfg.TLS.ServerName,
			CAFile:             cfg.TLS.CAFile,
			CAPath:             cfg.TLS.CAPath,
			CertFile:           cfg.TLS.CertFile,
			KeyFile:            cfg.TLS.KeyFile,
			InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
		},
	})
	if err != nil {
		// The api's errors name files and addresses, never the token.
		return apiClient{}, fmt.Errorf("%w: client: %w", ErrConfig, err)
	}
	return apiClient{cfg: cfg, client: client, transport: tr}, nil
}

// queryOptions returns the options shared by every query of a Source.
func (c Config) queryOptions() api.QueryOptions {
	return api.QueryOptions{
		Datacenter:        c.Datacenter,
		Filter:            c.Filter,
		AllowStale:        c.Consistency == Stale,
		RequireConsistent: c.Consistency == Consistent,
		WaitTime:          c.WaitTime,
	}
}
