// Package sidecar wires ringside's packages into the running sidecar: the discovery source,
// one balancer and forwarding handler per upstream, their listeners, the admin server, the
// registration of the local app, reloads, and the drain on shutdown.
package sidecar

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/proxy"
)

// Options are a Sidecar's collaborators.
type Options struct {
	// Logger is the process logger. If nil, zap.NewNop().
	Logger *zap.Logger
	// Version is reported in the ringside_build_info metric.
	Version string
	// Registry receives every metric. If nil, a new registry with the Go and process
	// collectors.
	Registry *prometheus.Registry
}

// Sidecar is one running ringside. New binds every listener (so a port in use is an error at
// once, and port 0 works); Run serves until its context ends and then drains; Reload applies a
// new configuration. Reload and the accessors are safe for concurrent use with Run.
type Sidecar struct {
	log      *zap.Logger
	reg      *prometheus.Registry
	dmetrics *discoveryMetrics
	pmetrics *proxy.Metrics
	started  time.Time
	draining atomic.Bool

	source    discovery.Source
	registrar discovery.Registrar
	register  *config.Register // what registrar registers; fixed for the process's life
	engine    config.Engine    // how listeners serve; fixed for the process's life
	admin     *adminServer
	events    *admin.EventLog // what changed, for the admin API; fixed for the process's life

	mu        sync.Mutex // guards what follows; never held on the request path
	cfg       *config.Config
	closing   bool                 // the drain has begun: Reload is refused
	upstreams map[string]*upstream // by name
	listeners map[string]*listener // by upstream name
	hostRoute *listener
	watch     *watch          // the running Source.Watch; nil before Run
	watched   bool            // a watch was started once
	runCtx    context.Context // Run's context, for what Reload starts
	bgWG      sync.WaitGroup  // goroutines Reload may start: balancer.Run, servers

	bySvc atomic.Pointer[map[string][]*upstream] // service → upstreams, for dispatch

	snapMu   sync.Mutex                     // guards lastSnap; dispatch takes it, never s.mu
	lastSnap map[string]*discovery.Snapshot // by service, for upstreams added by Reload
	fatal    chan error                     // a listener that failed while serving
}

// New builds the sidecar for cfg and binds its listeners. cfg must have passed config.Load
// and Check.
func New(cfg *config.Config, opts Options) (*Sidecar, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ringside_build_info", Help: "Always 1; the labels say which ringside runs.",
	}, []string{"version"})
	buildInfo.WithLabelValues(opts.Version).Set(1)
	reg.MustRegister(buildInfo)
	pm, err := proxy.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s := &Sidecar{
		log:       opts.Logger,
		reg:       reg,
		dmetrics:  newDiscoveryMetrics(reg),
		pmetrics:  pm,
		started:   time.Now(),
		cfg:       cfg,
		upstreams: make(map[string]*upstream),
		listeners: make(map[string]*listener),
		lastSnap:  make(map[string]*discovery.Snapshot),
		fatal:     make(chan error, 1),
		events:    admin.NewEventLog(0),
	}
	reg.MustRegister(loopMetrics{s}, connMetrics{s})
	ok := false
	defer func() {
		if !ok {
			s.closeAll()
		}
	}()
	if s.source, err = newSource(cfg.Discovery, s.log, s.dmetrics); err != nil {
		return nil, err
	}
	if cfg.Register != nil {
		if s.registrar, err = newRegistrar(cfg.Discovery, cfg.Register, s.log); err != nil {
			return nil, err
		}
		s.register = cfg.Register
	}
	for _, uc := range cfg.Upstreams {
		u, err := s.newUpstream(uc)
		if err != nil {
			return nil, err
		}
		s.upstreams[uc.Name] = u
	}
	s.engine = cfg.Engine
	if err := s.bindListeners(cfg); err != nil {
		return nil, err
	}
	s.publishRoutes()
	if s.admin, err = newAdminServer(cfg.Admin.Listen, reg, s, cfg.Admin.Pprof, s.newAPI(cfg)); err != nil {
		return nil, fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	ok = true
	return s, nil
}

// AdminAddr is the address the admin server listens on.
func (s *Sidecar) AdminAddr() string { return s.admin.Addr() }

// UpstreamAddr is the address upstream name's own listener is bound to, or "" when it has
// none.
func (s *Sidecar) UpstreamAddr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listeners[name]; l != nil {
		return l.ln.Addr().String()
	}
	return ""
}

// HostRoutingAddr is the address of the host_routing listener, or "".
func (s *Sidecar) HostRoutingAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hostRoute == nil {
		return ""
	}
	return s.hostRoute.ln.Addr().String()
}

// Readiness reports whether the sidecar should get traffic: not draining, and every upstream
// has its first snapshot (or has waited its ready_wait).
func (s *Sidecar) Readiness() ReadinessReport {
	rep := ReadinessReport{Ready: true, Draining: s.draining.Load(), Upstreams: make(map[string]string)}
	if rep.Draining {
		rep.Ready = false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	since := time.Since(s.started)
	for name, u := range s.upstreams {
		wait := u.cfg.ReadyWait
		if wait == 0 {
			wait = s.cfg.Lifecycle.ReadyWait
		}
		switch {
		case u.bal.Ready():
			rep.Upstreams[name] = "ready"
		case wait > 0 && since >= wait:
			rep.Upstreams[name] = "no snapshot yet; ready_wait passed"
		default:
			rep.Upstreams[name] = "waiting for the first snapshot"
			rep.Ready = false
		}
	}
	return rep
}

// Run serves until ctx ends, then drains (see drain). It returns nil after a clean drain.
func (s *Sidecar) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, l := range s.listeners {
		s.serveListener(l)
	}
	if s.hostRoute != nil {
		s.serveListener(s.hostRoute)
	}
	for _, u := range s.upstreams {
		s.runUpstream(u)
	}
	s.restartWatchLocked()
	s.mu.Unlock()

	adminDone := make(chan error, 1)
	go func() { adminDone <- s.admin.serve() }()

	regCtx, stopReg := context.WithCancel(context.Background())
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		s.runRegistration(regCtx)
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-s.fatal:
		s.log.Error("shutting down", zap.Error(runErr))
	case err := <-adminDone:
		runErr = fmt.Errorf("admin server: %w", err)
		adminDone <- nil
	}
	stopReg()
	<-regDone
	graceEnd := s.drain()
	adminCtx, cancel := context.WithDeadline(context.Background(), graceEnd.Add(time.Second))
	defer cancel()
	if err := s.admin.shutdown(adminCtx); err != nil {
		s.log.Warn("admin shutdown", zap.Error(err))
	}
	if err := <-adminDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("admin server: %w", err)
	}
	return runErr
}

// quietPeriod is how long the app must send no request through ringside before the drain
// stops accepting; see drain.
const quietPeriod = time.Second

// drain is the shutdown sequence; it returns when everything Run started has stopped, with the
// end of the grace period, for what is left to close.
//
//  1. Turn not-ready and deregister the app, at once.
//  2. Keep serving for drain_delay, so callers' views of the registry catch up.
//  3. Keep serving the app's own outbound calls until they have been quiet for quietPeriod:
//     the app is shutting down too and may still call out (its preStop hook keeps it
//     serving while callers move away). A reserve of a quarter of the grace period, up to 5s,
//     is kept for the next step.
//  4. Stop accepting, finish the requests, streams and tunnels in flight, stop the watches.
func (s *Sidecar) drain() time.Time {
	s.draining.Store(true)
	s.mu.Lock()
	s.closing = true
	lc := s.cfg.Lifecycle
	s.mu.Unlock()
	grace, cancel := context.WithTimeout(context.Background(), lc.GracePeriod)
	defer cancel()
	start := time.Now()
	if s.registrar != nil {
		if err := s.registrar.Deregister(grace); err != nil {
			s.log.Error("deregister", zap.Error(err))
		} else {
			s.log.Info("deregistered", zap.String("service", s.register.Service), zap.String("id", s.register.ID))
		}
	}
	_ = discovery.Sleep(grace, lc.DrainDelay)

	s.mu.Lock()
	ls := make([]*listener, 0, len(s.listeners)+1)
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	if s.hostRoute != nil {
		ls = append(ls, s.hostRoute)
	}
	ups := make([]*upstream, 0, len(s.upstreams))
	for _, u := range s.upstreams {
		ups = append(ups, u)
	}
	s.mu.Unlock()
	reserve := min(lc.GracePeriod/4, 5*time.Second)
	quietBy := start.Add(lc.GracePeriod - reserve)
	waitQuiet(grace, ls, quietBy)

	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { l.shutdown(grace, s.log) })
	}
	for _, u := range ups {
		wg.Go(func() {
			if err := u.handler.Drain(grace); err != nil {
				s.log.Warn("drain: streams cut at the end of the grace period", zap.String("upstream", u.cfg.Name), zap.Error(err))
			}
		})
	}
	wg.Wait()
	s.mu.Lock()
	if s.watch != nil {
		s.watch.stop()
		s.watch = nil
	}
	for _, u := range ups {
		u.stop()
	}
	s.mu.Unlock()
	s.bgWG.Wait()
	for _, u := range ups {
		u.transport.CloseIdleConnections()
	}
	s.log.Info("drained", zap.Duration("took", time.Since(start)))
	return start.Add(lc.GracePeriod)
}

// waitQuiet returns once no listener has started a request for quietPeriod, or at by, or when
// ctx ends.
func waitQuiet(ctx context.Context, ls []*listener, by time.Time) {
	count := func() (n uint64) {
		for _, l := range ls {
			n += l.requests.Load()
		}
		return n
	}
	last, quietSince := count(), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		if now.Sub(quietSince) >= quietPeriod || !now.Before(by) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := count(); n != last {
				last, quietSince = n, time.Now()
			}
		}
	}
}

// closeAll releases what New bound, when New fails.
func (s *Sidecar) closeAll() {
	for _, l := range s.listeners {
		_ = l.ln.Close()
	}
	if s.hostRoute != nil {
		_ = s.hostRoute.ln.Close()
	}
}

// dispatch hands a snapshot to every upstream of its service. It runs on the source's
// goroutines: never concurrently for one service. Storing the snapshot and reading the routes
// happen under one snapMu section, as Reload's seeding and publishing do, so an upstream that
// Reload adds gets either this snapshot from lastSnap or this call, never neither.
//
// A snapshot with no endpoints, after one with some, is not applied: a Consul agent restarted
// without state, or a registry restored from an empty backup, reports every service empty until
// the instances register again, and applying that would turn a registry hiccup into an outage.
// The last endpoints keep serving (outlier detection ejects any that are really gone) until
// the registry lists some again.
func (s *Sidecar) dispatch(snap *discovery.Snapshot) {
	s.snapMu.Lock()
	if prev := s.lastSnap[snap.Service]; len(snap.Endpoints) == 0 && prev != nil && len(prev.Endpoints) > 0 {
		s.snapMu.Unlock()
		s.log.Warn("registry lists no instances: keeping the last ones until it lists some again",
			zap.String("service", snap.Service), zap.Int("kept", len(prev.Endpoints)))
		return
	}
	s.lastSnap[snap.Service] = snap
	ups := (*s.bySvc.Load())[snap.Service]
	s.snapMu.Unlock()
	for _, u := range ups {
		u.bal.Update(snap)
	}
	s.log.Debug("snapshot", zap.String("service", snap.Service), zap.Int("endpoints", len(snap.Endpoints)),
		zap.Uint64("revision", snap.Revision))
}

// servicesLocked lists the distinct services of the upstreams, sorted; s.mu is held.
func (s *Sidecar) servicesLocked() []string {
	set := make(map[string]bool)
	for _, u := range s.upstreams {
		set[u.cfg.Service] = true
	}
	out := make([]string, 0, len(set))
	for svc := range set {
		out = append(out, svc)
	}
	sort.Strings(out)
	return out
}

// publishRoutes rebuilds the service → upstreams table dispatch reads.
func (s *Sidecar) publishRoutes() {
	m := make(map[string][]*upstream)
	for _, u := range s.upstreams {
		m[u.cfg.Service] = append(m[u.cfg.Service], u)
	}
	s.bySvc.Store(&m)
}

// watch is one running Source.Watch.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *watch) stop() {
	w.cancel()
	<-w.done
}

// restartWatchLocked (re)starts the source's watch over the current services; s.mu is held.
func (s *Sidecar) restartWatchLocked() {
	if s.watch != nil {
		s.watch.stop()
	}
	services := s.servicesLocked()
	s.dmetrics.watching(services)
	if len(services) == 0 {
		s.watch = nil // a sidecar that only registers its app watches nothing
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	w := &watch{cancel: cancel, done: make(chan struct{})}
	initial := !s.watched
	s.watched = true
	go func() {
		defer close(w.done)
		var backoff discovery.Backoff
		for attempt := 0; ; attempt++ {
			err := s.source.Watch(ctx, services, s.dispatch)
			if ctx.Err() != nil {
				return
			}
			if initial {
				// At start a source that cannot start (a bad services file) is a bad
				// configuration: exit rather than serve nothing.
				s.fail(fmt.Errorf("discovery: %w", err))
				return
			}
			// After a reload the last snapshots stay in force; keep trying.
			s.log.Error("discovery watch failed; retrying, the last snapshots stay in force", zap.Error(err))
			if discovery.Sleep(ctx, backoff.Delay(attempt)) != nil {
				return
			}
		}
	}()
	s.watch = w
}

// fail reports a fatal error to Run, once.
func (s *Sidecar) fail(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}
