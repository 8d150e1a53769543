package balancer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
)

// Options are the collaborators of an Upstream.
type Options struct {
	// Logger receives ejections, returns and active-check changes. If nil, nothing is logged.
	Logger *zap.Logger
	// Events is told about ejections, returns and state changes, for metrics. If nil, nothing
	// is told.
	Events Events
	// OnEndpoint is called once for each new endpoint handle, from Update's goroutine, before
	// the handle is first published; its result is stored in Endpoint.Data (typically the
	// forwarding client of the endpoint). If nil, Data stays nil.
	OnEndpoint func(*Endpoint) any
	// OnRemove is called once when a handle leaves the upstream (its ID left the snapshot, or
	// its address changed), from Update's goroutine, after the handle was unpublished. Picks
	// that began earlier may still return it, and attempts on it may still be in flight. If
	// nil, nothing is called.
	OnRemove func(*Endpoint)
	// OnChange is told about every snapshot applied, ejection and return, active-check
	// verdict and operator override, for an event log. It is called synchronously from the
	// goroutine of Update, of Run, of a request that ejects an endpoint, or of the operator
	// method; never from Pick.Next. It must be quick, must not block, and must not call back
	// into the Upstream's mutating methods. If nil, nothing is told.
	OnChange func(Change)
	// Now is the clock of ejections and slow start. If nil, time.Now. (Active checks run on
	// real timers whatever it is.)
	Now func() time.Time
}

// Upstream balances the requests of one service over its endpoints.
//
// Update installs each new discovery snapshot; Begin and Pick.Next choose an endpoint per
// request; Endpoint.Start and Endpoint.Finish bracket each attempt and feed outlier
// detection; Run runs active health checks and reports the returns from ejection that
// requests notice (see Run for what happens without it). Begin, Next, Start, Finish and the
// accessors are safe for concurrent use with each other and with Update and Run; Update must
// be called from one goroutine at a time.
type Upstream struct {
	name     string
	cfg      Config
	pol      policy
	log      *zap.Logger
	events   Events
	clock    func() time.Time
	onNew    func(*Endpoint) any
	onGone   func(*Endpoint)
	onChange func(Change)

	bounded bool // cfg.BoundedLoad > 0: Start and Finish keep inflight

	// state is the routing state, swapped whole by Update; the hot path Loads it once.
	state atomic.Pointer[state]
	snap  atomic.Pointer[discovery.Snapshot]

	// Counters shared by every handle; see Endpoint.transition. Every Begin reads down; they
	// change only with health.
	down    atomic.Int64 // routable endpoints ejected or failing active checks, + drainedUnit per drained one
	ejected atomic.Int32 // routable endpoints ejected, plus ejections being decided
	// budgetSweep is when a spent ejection budget may next sweep, UnixNano.
	budgetSweep atomic.Int64

	// inflight and rr sit on a cache line of their own: requests write them, while every
	// Begin reads the fields above (state, down, cfg), which must not bounce between cores
	// with each write.
	_        [64]byte
	inflight atomic.Int64  // attempts in flight on all handles, when bounded
	rr       atomic.Uint64 // the round-robin counter
	_        [48]byte

	// handles is the table of handles by ID, and overrides the operator's overrides by
	// endpoint ID; only Update and the override methods touch them, under updateMu.
	updateMu  sync.Mutex
	handles   map[string]*Endpoint
	overrides map[string]*override

	changed  chan struct{} // told of each Update, for the active checker; size 1
	returned chan struct{} // told of each return from ejection, for Run to report; size 1
	running  atomic.Bool
	notifyMu sync.Mutex // orders Events.StateChanged calls

	sweepEvery time.Duration // how often Run returns expired ejections; tests shorten it
}

// ErrRunning is returned by Run when the upstream is already running.
var ErrRunning = errors.New("upstream already running")

// New returns an upstream named name (used in logs and events) with no endpoints: until its
// first Update, Pick.Next returns ErrNoEndpoints. It validates cfg and applies its defaults.
func New(name string, cfg Config, opts Options) (*Upstream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	cfg = cfg.withDefaults()
	u := &Upstream{
		name:       name,
		cfg:        cfg,
		pol:        newPolicy(cfg),
		log:        opts.Logger,
		events:     opts.Events,
		clock:      opts.Now,
		onNew:      opts.OnEndpoint,
		onGone:     opts.OnRemove,
		onChange:   opts.OnChange,
		overrides:  make(map[string]*override),
		bounded:    cfg.BoundedLoad > 0,
		handles:    make(map[string]*Endpoint),
		changed:    make(chan struct{}, 1),
		returned:   make(chan struct{}, 1),
		sweepEvery: time.Second,
	}
	if u.log == nil {
		u.log = zap.NewNop()
	}
	if u.events == nil {
		u.events = NopEvents{}
	}
	if u.clock == nil {
		u.clock = time.Now
	}
	return u, nil
}

// Name returns the upstream's name.
func (u *Upstream) Name() string { return u.name }

// Config returns the upstream's configuration with its defaults filled in.
func (u *Upstream) Config() Config { return u.cfg }

// Ready reports whether the upstream has applied its first snapshot.
func (u *Upstream) Ready() bool { return u.state.Load() != nil }

// Snapshot returns the last snapshot applied, or nil before the first.
func (u *Upstream) Snapshot() *discovery.Snapshot { return u.snap.Load() }

// Endpoints returns the current handles, critical ones included, sorted by ID. It copies; it
// is not meant for the request path.
func (u *Upstream) Endpoints() []*Endpoint {
	s := u.state.Load()
	if s == nil {
		return nil
	}
	return append([]*Endpoint(nil), s.all...)
}

// Run runs the upstream's background work until ctx ends: active health checks when
// Config.Active.Path is set; a once-a-second sweep that returns endpoints whose ejection is
// over even when no request looks at them; and the reporting of returns from ejection.
//
// A request that meets an endpoint whose ejection is over returns it to service at once, but
// only flips its state: the return is logged and told to Events.Returned and StateChanged by
// Run, within moments. Without Run, those returns are reported by the next Update (or by the
// endpoint's next ejection), however late that is, so run it whenever logs or Events matter:
// the proxy's sidecar always does. Run reports what is left before it returns.
//
// Run joins every goroutine it started before it returns ctx.Err(). It returns ErrRunning at
// once if Run is already running.
func (u *Upstream) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return fmt.Errorf("upstream %q: %w", u.name, ErrRunning)
	}
	defer u.running.Store(false)
	var wg sync.WaitGroup
	if u.cfg.Active.Path != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.runActive(ctx)
		}()
	}
	t := time.NewTicker(u.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			u.report()
			return ctx.Err()
		case <-t.C:
			u.sweep() // signals u.returned if it returned any
		case <-u.returned:
			u.report()
		}
	}
}

// report reports the returns from ejection not reported yet, then the state counts once.
func (u *Upstream) report() {
	if s := u.state.Load(); s != nil && u.reportReturns(s.all) > 0 {
		u.notify()
	}
}

// nowNanos reads the upstream's clock.
func (u *Upstream) nowNanos() int64 { return u.clock().UnixNano() }
