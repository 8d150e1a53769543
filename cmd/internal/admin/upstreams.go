package admin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// UpstreamView is one upstream in GET /v1/upstreams.
type UpstreamView struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	// Listen is the address the upstream's own listener is bound to ("" when it is reached
	// only through host_routing, by Hosts); Protocol is "http" or "https" (TLS on the listener).
	Listen   string   `json:"listen"`
	Hosts    []string `json:"hosts"`
	Protocol string   `json:"protocol"`
	// Discovery is the source: "file", "consul" or "etcd".
	Discovery string `json:"discovery"`
	// The settings that decide where a request goes.
	Balancer       string   `json:"balancer"`
	HashKey        []string `json:"hash_key"`
	NoKey          string   `json:"no_key"`
	BoundedLoad    float64  `json:"bounded_load"`
	PanicThreshold float64  `json:"panic_threshold"`
	MaxRequests    int64    `json:"max_requests"`
	SlowStartSecs  float64  `json:"slow_start_seconds"`
	// Snapshot is the last snapshot applied; null before the first.
	Snapshot *SnapshotView `json:"snapshot"`
	// Panic: so few endpoints are healthy that ejection and active checks are ignored.
	Panic     bool       `json:"panic"`
	Endpoints CountsView `json:"endpoints"`
	// Overrides is how many endpoints have an operator's override (GET .../overrides).
	Overrides int     `json:"overrides"`
	Traffic   Traffic `json:"traffic"`
}

// SnapshotView is the last snapshot an upstream applied.
type SnapshotView struct {
	Revision   uint64    `json:"revision"`
	ReceivedAt time.Time `json:"received_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Endpoints  int       `json:"endpoints"`
}

// CountsView counts an upstream's endpoints by state.
type CountsView struct {
	Total           int `json:"total"`
	Healthy         int `json:"healthy"`
	Warming         int `json:"warming"`
	Ejected         int `json:"ejected"`
	ActiveUnhealthy int `json:"active_unhealthy"`
	Drained         int `json:"drained"`
	Critical        int `json:"critical"`
}

// UpstreamsView is GET /v1/upstreams.
type UpstreamsView struct {
	Upstreams []UpstreamView `json:"upstreams"`
}

func (s *Server) getUpstreams(w http.ResponseWriter, _ *http.Request) {
	cur, base := s.rates.read()
	out := UpstreamsView{Upstreams: []UpstreamView{}}
	for _, u := range s.opts.Sidecar.Upstreams() {
		out.Upstreams = append(out.Upstreams, s.upstreamView(u, cur, base))
	}
	writeJSON(w, http.StatusOK, out)
}

// getUpstream is GET /v1/upstreams/{name}: one UpstreamView.
func (s *Server) getUpstream(w http.ResponseWriter, r *http.Request) {
	u, ok := s.upstream(w, r, r.PathValue("name"))
	if !ok {
		return
	}
	cur, base := s.rates.read()
	writeJSON(w, http.StatusOK, s.upstreamView(u, cur, base))
}

func (s *Server) upstreamView(u Upstream, cur reading, base *reading) UpstreamView {
	c, b := u.Config, u.Balancer
	bc := b.Config()
	v := UpstreamView{
		Name: c.Name, Service: c.Service, Listen: u.Listen, Hosts: nonNil(c.Hosts), Protocol: "http",
		Discovery: s.opts.Discovery, Balancer: string(bc.Kind), HashKey: nonNil(c.HashKey),
		NoKey: string(bc.NoKey), BoundedLoad: bc.BoundedLoad, PanicThreshold: bc.PanicThreshold,
		MaxRequests: bc.MaxRequests, SlowStartSecs: bc.SlowStart.Seconds(),
		Panic: b.Panicking(), Overrides: len(b.Overrides()), Traffic: traffic(c.Name, cur, base),
	}
	if c.TLS != nil {
		v.Protocol = "https"
	}
	if snap := b.Snapshot(); snap != nil {
		v.Snapshot = &SnapshotView{Revision: snap.Revision, ReceivedAt: snap.Received,
			AgeSeconds: time.Since(snap.Received).Seconds(), Endpoints: len(snap.Endpoints)}
	}
	sc := b.StateCounts()
	v.Endpoints = CountsView{Total: sc.Total(), Healthy: sc.Healthy, Warming: sc.Warming, Ejected: sc.Ejected,
		ActiveUnhealthy: sc.ActiveUnhealthy, Drained: sc.Drained, Critical: sc.Critical}
	return v
}

// EndpointsView is GET /v1/upstreams/{name}/endpoints.
type EndpointsView struct {
	Upstream string `json:"upstream"`
	Balancer string `json:"balancer"`
	Panic    bool   `json:"panic"`
	// ShareSamples is how many keys the key shares were measured with; 0 for the key-blind
	// policies, whose endpoints' key_share is null.
	ShareSamples int            `json:"share_samples"`
	Endpoints    []EndpointView `json:"endpoints"`
}

// EndpointView is one endpoint of an upstream.
type EndpointView struct {
	ID      string            `json:"id"`
	Address string            `json:"address"`
	Zone    string            `json:"zone"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta"`
	// RegistryHealth is "passing", "warning" or "critical", as the registry says.
	RegistryHealth string `json:"registry_health"`
	// State is ringside's routing state: "healthy", "warming", "ejected",
	// "active_unhealthy", "drained" or "critical".
	State string `json:"state"`
	// Drained by an operator; DrainKeepKeysUntil ends its keep-keys window (null if none).
	Drained            bool       `json:"drained"`
	DrainKeepKeysUntil *time.Time `json:"drain_keep_keys_until"`
	// Ejection is the ejection in force, null if none.
	Ejection        *EjectionView `json:"ejection"`
	ActiveUnhealthy bool          `json:"active_unhealthy"`
	// WarmFraction is the share of its traffic a warming endpoint takes (slow start); 1
	// otherwise.
	WarmFraction float64 `json:"warm_fraction"`
	InFlight     int64   `json:"in_flight"`
	// Requests and Errors5xx count the responses it sent since the start.
	Requests  float64 `json:"requests"`
	Errors5xx float64 `json:"errors_5xx"`
	// LastFailure is its last failed attempt, null if none.
	LastFailure *FailureView `json:"last_failure"`
	// Weight in the table, and the registry's (they differ under a weight override).
	Weight         int `json:"weight"`
	RegistryWeight int `json:"registry_weight"`
	// KeyShare is its share of the key space, null for the key-blind policies.
	KeyShare *ShareView `json:"key_share"`
	// Override is the operator's override of it, null if none.
	Override *OverrideView `json:"override"`
}

// EjectionView is an ejection in force.
type EjectionView struct {
	// Reason: "consecutive_5xx", "consecutive_gateway_failure", "connect_failure_window" or
	// "admin".
	Reason      string    `json:"reason"`
	Until       time.Time `json:"until"`
	SecondsLeft float64   `json:"seconds_left"`
	// Times is the number of ejections in a row that set its length.
	Times int `json:"times"`
}

// FailureView is an endpoint's last failed attempt.
type FailureView struct {
	At time.Time `json:"at"`
	// What: "status 503", "connect", "timeout" or "reset".
	What string `json:"what"`
}

// ShareView is an endpoint's share of the key space, from 0 to 1.
type ShareView struct {
	// Table: the keys whose home it is on the hash table (weights and hashing only).
	Table float64 `json:"table"`
	// Now: the keys that land on it now, with ejections, drains, checks, bounded load and
	// slow start as they are (measured with the request path's own pick).
	Now float64 `json:"now"`
}

// OverrideView is an operator's override of one endpoint.
type OverrideView struct {
	Upstream string `json:"upstream"`
	Endpoint string `json:"endpoint"`
	// Present: the endpoint is in the current snapshot (an override of an absent one waits
	// for it to come back).
	Present       bool       `json:"present"`
	Drained       bool       `json:"drained"`
	DrainedAt     *time.Time `json:"drained_at"`
	KeepKeysUntil *time.Time `json:"keep_keys_until"`
	EjectedUntil  *time.Time `json:"ejected_until"`
	// Weight is the operator's weight (0: none), over RegistryWeight, the registry's weight
	// when it was set; the override lasts until the registry changes that.
	Weight         int `json:"weight"`
	RegistryWeight int `json:"registry_weight"`
}

func (s *Server) getEndpoints(w http.ResponseWriter, r *http.Request) {
	u, ok := s.upstream(w, r, r.PathValue("name"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.endpointsView(u))
}

func (s *Server) endpointsView(u Upstream) EndpointsView { return s.endpointsViewOf(u, false) }

// endpointsViewOf is endpointsView; fresh measures the key shares anew (after a change).
func (s *Server) endpointsViewOf(u Upstream, fresh bool) EndpointsView {
	b := u.Balancer
	cur, _ := s.rates.read()
	v := EndpointsView{Upstream: u.Config.Name, Balancer: string(b.Config().Kind), Panic: b.Panicking(),
		Endpoints: []EndpointView{}}
	shares := s.shares.get(b, s.opts.ShareSamples, fresh)
	if shares != nil {
		v.ShareSamples = s.opts.ShareSamples
	}
	overrides := overridesByID(u)
	registry := map[string]discovery.Endpoint{}
	if snap := b.Snapshot(); snap != nil {
		for _, de := range snap.Endpoints {
			registry[de.ID] = de
		}
	}
	for _, e := range b.Endpoints() {
		v.Endpoints = append(v.Endpoints, endpointView(u.Config.Name, e, registry[e.ID], shares, overrides, cur))
	}
	return v
}

// endpointView describes e, whose registry entry is de.
func endpointView(up string, e *balancer.Endpoint, de discovery.Endpoint, shares map[string]balancer.KeyShare,
	overrides map[string]*OverrideView, cur reading) EndpointView {
	st := e.Status()
	v := EndpointView{
		ID: e.ID, Address: e.Address, Zone: e.Zone, Tags: nonNil(de.Tags), Meta: de.Meta,
		RegistryHealth: de.Health.String(), State: st.State.String(), Drained: st.Drained,
		ActiveUnhealthy: st.ActiveUnhealthy, WarmFraction: st.WarmFraction, InFlight: st.InFlight,
		Requests: cur.epReqs[epKey{up, e.ID}], Errors5xx: cur.ep5xx[epKey{up, e.ID}],
		Weight: st.Weight, RegistryWeight: st.RegistryWeight, Override: overrides[e.ID],
	}
	if v.Meta == nil {
		v.Meta = map[string]string{}
	}
	if !st.DrainKeepKeysUntil.IsZero() {
		v.DrainKeepKeysUntil = ptr(st.DrainKeepKeysUntil)
	}
	if st.Ejected {
		v.Ejection = &EjectionView{Reason: st.EjectReason, Until: st.EjectedUntil,
			SecondsLeft: time.Until(st.EjectedUntil).Seconds(), Times: st.TimesEjected}
	}
	if !st.LastFailure.IsZero() {
		v.LastFailure = &FailureView{At: st.LastFailure, What: st.LastFailureWhat}
	}
	if sh, ok := shares[e.ID]; ok {
		v.KeyShare = &ShareView{Table: sh.Table, Now: sh.Now}
	} else if shares != nil {
		v.KeyShare = &ShareView{} // critical: not on the table
	}
	return v
}

// overridesByID returns u's overrides by endpoint ID.
func overridesByID(u Upstream) map[string]*OverrideView {
	out := map[string]*OverrideView{}
	for _, o := range u.Balancer.Overrides() {
		out[o.Endpoint] = overrideView(u.Config.Name, o)
	}
	return out
}

func overrideView(up string, o balancer.Override) *OverrideView {
	v := &OverrideView{Upstream: up, Endpoint: o.Endpoint, Present: o.Present, Drained: o.Drained,
		Weight: o.Weight, RegistryWeight: o.RegistryWeight}
	if !o.DrainedAt.IsZero() {
		v.DrainedAt = ptr(o.DrainedAt)
	}
	if !o.KeepKeysUntil.IsZero() {
		v.KeepKeysUntil = ptr(o.KeepKeysUntil)
	}
	if !o.EjectedUntil.IsZero() {
		v.EjectedUntil = ptr(o.EjectedUntil)
	}
	return v
}

// OverridesView is GET /v1/overrides and GET /v1/upstreams/{name}/overrides.
type OverridesView struct {
	Overrides []*OverrideView `json:"overrides"`
}

func (s *Server) getOverrides(w http.ResponseWriter, r *http.Request) {
	ups := s.opts.Sidecar.Upstreams()
	if name := r.PathValue("name"); name != "" {
		u, ok := s.upstream(w, r, name)
		if !ok {
			return
		}
		ups = []Upstream{u}
	}
	out := OverridesView{Overrides: []*OverrideView{}}
	for _, u := range ups {
		for _, o := range u.Balancer.Overrides() {
			out.Overrides = append(out.Overrides, overrideView(u.Config.Name, o))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func quote(s string) string { return strconv.Quote(s) }

func list(names []string) string {
	if len(names) == 0 {
		return "(none configured)"
	}
	return strings.Join(names, ", ")
}
