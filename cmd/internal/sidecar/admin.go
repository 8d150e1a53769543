package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/discovery/file"
)

// Upstreams lists the configured upstreams for the admin API, sorted by name. It takes s.mu,
// which no request takes.
func (s *Sidecar) Upstreams() []admin.Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]admin.Upstream, 0, len(s.upstreams))
	for _, u := range s.upstreams {
		au := admin.Upstream{Config: u.cfg, Balancer: u.bal, Keys: u.handler.Keys()}
		if l := s.listeners[u.cfg.Name]; l != nil {
			au.Listen = l.ln.Addr().String()
		}
		out = append(out, au)
	}
	slices.SortFunc(out, func(a, b admin.Upstream) int { return strings.Compare(a.Config.Name, b.Config.Name) })
	return out
}

var _ admin.Sidecar = (*Sidecar)(nil)

// newAPI returns the admin API of s.
func (s *Sidecar) newAPI(cfg *config.Config) *admin.Server {
	var editor admin.ServicesEditor
	if cfg.Discovery.Kind == "file" {
		editor = file.NewEditor(cfg.Discovery.File.Path)
	}
	return admin.New(admin.Options{
		Sidecar:   s,
		Discovery: cfg.Discovery.Kind,
		Events:    s.events,
		Gatherer:  s.reg,
		TokenFile: cfg.Admin.TokenFile,
		Services:  editor,
		Logger:    s.log.Named("admin"),
	})
}

// ReadinessReport is what /readyz answers, as JSON.
type ReadinessReport struct {
	Ready     bool              `json:"ready"`
	Draining  bool              `json:"draining,omitempty"`
	Upstreams map[string]string `json:"upstreams"` // name → "ready" | "waiting for first snapshot" | ...
}

// readiness is what the admin server asks; the Sidecar implements it.
type readiness interface {
	Readiness() ReadinessReport
}

var _ readiness = (*Sidecar)(nil)

// adminServer serves /metrics, /readyz, /healthz, the JSON API under /v1/ (package admin) and,
// when enabled, /debug/pprof on net/http:
// it is off the request path, so the standard library's conveniences cost nothing that matters.
type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

func newAdminServer(addr string, gatherer prometheus.Gatherer, ready readiness, withPprof bool, api *admin.Server) (*adminServer, error) {
	mux := http.NewServeMux()
	api.Register(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		rep := ready.Readiness()
		w.Header().Set("Content-Type", "application/json")
		if !rep.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := listenTCP(addr)
	if err != nil {
		return nil, err
	}
	return &adminServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		ln:  ln,
	}, nil
}

// Addr is the address the admin server listens on (useful with port 0).
func (a *adminServer) Addr() string { return a.ln.Addr().String() }

// serve blocks until Shutdown; it returns nil after a clean shutdown.
func (a *adminServer) serve() error {
	if err := a.srv.Serve(a.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *adminServer) shutdown(ctx context.Context) error { return a.srv.Shutdown(ctx) }
