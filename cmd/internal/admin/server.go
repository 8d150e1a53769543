// Package admin is ringside's admin API: JSON under /v1/ on the admin server, for the
// `ringside` CLI, the status page and scripts. It reads what the request path reads (the
// balancers' atomic state, the handlers' key extractors) and takes no lock a request takes.
//
// Reads: GET /v1/upstreams, /v1/upstreams/{name}/endpoints, /v1/route (GET with a key, POST
// with a whole request), /v1/events, /v1/overrides. Changes, behind a bearer token
// (admin.token_file): drain, undrain, eject, weight and clearing overrides of an endpoint, and,
// for the file source, adding, changing and removing an endpoint in the services file. The
// JSON shapes are documented in deploy/CONFIG.md and kept stable: fields may be added, never
// renamed or removed.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/proxy/balancer"
	"github.com/ringside-proxy/ringside/proxy/hashkey"
)

// Upstream is what the API needs of one configured upstream.
type Upstream struct {
	Config config.Upstream
	// Listen is the address its listener is bound to ("" without one).
	Listen   string
	Balancer *balancer.Upstream
	// Keys is the upstream's own key extractor, the one its handler uses.
	Keys *hashkey.Extractor
}

// Sidecar is what the API reads of the running sidecar. Its methods are safe for concurrent
// use and quick.
type Sidecar interface {
	// Upstreams returns the configured upstreams, sorted by name.
	Upstreams() []Upstream
}

// ServicesEditor edits the services file of the file source (discovery/file.Editor); errors
// wrapping file.ErrEdit are the request's or the file's fault (400), others the system's (500).
type ServicesEditor interface {
	Put(service string, e discovery.Endpoint) (created bool, err error)
	Delete(service, id string) (bool, error)
}

// Options configure a Server.
type Options struct {
	Sidecar Sidecar
	// Discovery is the source kind: "file", "consul" or "etcd".
	Discovery string
	// Events is the event log; if nil, a new one.
	Events *EventLog
	// Gatherer is read for request rates and per-endpoint counts; if nil, none are shown.
	Gatherer prometheus.Gatherer
	// TokenFile holds the bearer token of the mutating endpoints; "" disables them.
	TokenFile string
	// Services edits the services file; nil unless Discovery is "file".
	Services ServicesEditor
	// Logger receives every change made through the API (never the token). If nil, none.
	Logger *zap.Logger
	// ShareSamples is how many keys a key-share measurement walks; default
	// balancer.DefaultShareSamples.
	ShareSamples int
}

// Server serves the API. Register its routes on the admin server's mux.
type Server struct {
	opts   Options
	log    *zap.Logger
	rates  *rates
	shares shareCache
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.Events == nil {
		opts.Events = NewEventLog(0)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ShareSamples <= 0 {
		opts.ShareSamples = balancer.DefaultShareSamples
	}
	return &Server{opts: opts, log: opts.Logger, rates: newRates(opts.Gatherer)}
}

// Events returns the server's event log.
func (s *Server) Events() *EventLog { return s.opts.Events }

// Register adds the API's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/upstreams", s.getUpstreams)
	mux.HandleFunc("GET /v1/upstreams/{name}", s.getUpstream)
	mux.HandleFunc("GET /v1/upstreams/{name}/endpoints", s.getEndpoints)
	mux.HandleFunc("GET /v1/route", s.getRoute)
	mux.HandleFunc("POST /v1/route", s.postRoute)
	mux.HandleFunc("GET /v1/events", s.getEvents)
	mux.HandleFunc("GET /v1/overrides", s.getOverrides)
	mux.HandleFunc("GET /v1/upstreams/{name}/overrides", s.getOverrides)

	mux.HandleFunc("POST /v1/upstreams/{name}/endpoints/{id}/drain", s.guard(s.postDrain))
	mux.HandleFunc("POST /v1/upstreams/{name}/endpoints/{id}/undrain", s.guard(s.postUndrain))
	mux.HandleFunc("POST /v1/upstreams/{name}/endpoints/{id}/eject", s.guard(s.postEject))
	mux.HandleFunc("POST /v1/upstreams/{name}/endpoints/{id}/return", s.guard(s.postReturn))
	mux.HandleFunc("POST /v1/upstreams/{name}/endpoints/{id}/weight", s.guard(s.postWeight))
	mux.HandleFunc("DELETE /v1/upstreams/{name}/endpoints/{id}/weight", s.guard(s.deleteWeight))
	mux.HandleFunc("DELETE /v1/upstreams/{name}/overrides/{id}", s.guard(s.deleteOverrides))
	mux.HandleFunc("PUT /v1/services/{service}/endpoints/{id}", s.guard(s.putServiceEndpoint))
	mux.HandleFunc("DELETE /v1/services/{service}/endpoints/{id}", s.guard(s.deleteServiceEndpoint))
	mux.HandleFunc("/v1/", s.notFound)
	mux.HandleFunc("GET /{$}", s.getPage)
}

// upstream returns the upstream of the request's {name}, or answers 404 and returns false.
func (s *Server) upstream(w http.ResponseWriter, r *http.Request, name string) (Upstream, bool) {
	ups := s.opts.Sidecar.Upstreams()
	for _, u := range ups {
		if u.Config.Name == name {
			return u, true
		}
	}
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.Config.Name
	}
	writeError(w, http.StatusNotFound, "unknown upstream "+quote(name), "one of: "+list(names))
	return Upstream{}, false
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path,
		"see the admin API section of deploy/CONFIG.md: GET /v1/upstreams, /v1/upstreams/{name}/endpoints, /v1/route, /v1/events, /v1/overrides")
}

// APIError is the body of every error answer.
type APIError struct {
	Error string `json:"error"`
	// Allowed says what the API accepts instead, or how to enable what was refused.
	Allowed string `json:"allowed,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, allowed string) {
	writeJSON(w, status, APIError{Error: msg, Allowed: allowed})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
