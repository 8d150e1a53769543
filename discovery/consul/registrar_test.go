package consul

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul/consultest"
)

// Consul runs a check no more often than once a second, and first after a random part of
// its interval; a status change shows within a few intervals.
const checkSettle = 10 * time.Second

// healthServer is the app's health endpoint, up or down at the test's command.
func healthServer(t *testing.T) (url string, healthy *atomic.Bool) {
	healthy = new(atomic.Bool)
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/healthz", healthy
}

// checkStatus returns the status of the service's check on the agent, or "" when it has none.
func checkStatus(c *api.Client, id string) string {
	checks, err := c.Agent().Checks()
	if err != nil {
		return ""
	}
	for _, ch := range checks {
		if ch.ServiceID == id {
			return ch.Status
		}
	}
	return ""
}

// hasService reports whether the agent has the service registered.
func hasService(c *api.Client, id string) bool {
	_, _, err := c.Agent().Service(id, nil)
	return err == nil
}

// TestRegistrarLifecycle registers an app with a real agent, follows its HTTP check up and
// down, loses the registration to an agent restart and gets it back, then deregisters.
func TestRegistrarLifecycle(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	checkURL, healthy := healthServer(t)
	reg := discovery.Registration{
		ID: "app-1", Service: "app", Address: "127.0.0.1", Port: 7070,
		Tags:    []string{"blue"},
		Meta:    map[string]string{"version": "7"},
		Weights: discovery.Weights{Passing: 4},
		Check:   discovery.Check{HTTP: checkURL, Interval: time.Second, Timeout: time.Second, DeregisterAfter: time.Minute},
	}
	logger, logs := observedLogger()
	r, err := NewRegistrar(testConfig(a), reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()

	consultest.WaitFor(t, 5*time.Second, "app-1 registered", func() bool { return hasService(c, "app-1") })
	svc, _, err := c.Agent().Service("app-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{svc.Service, svc.Address, svc.Port, svc.Tags, svc.Meta, svc.Weights}
	want := []any{"app", "127.0.0.1", 7070, []string{"blue"}, map[string]string{"version": "7"}, api.AgentWeights{Passing: 4, Warning: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registered %v, want %v", got, want)
	}
	consultest.WaitFor(t, checkSettle, "check passing", func() bool { return checkStatus(c, "app-1") == api.HealthPassing })
	healthy.Store(false)
	consultest.WaitFor(t, checkSettle, "check critical", func() bool { return checkStatus(c, "app-1") == api.HealthCritical })
	healthy.Store(true)
	consultest.WaitFor(t, checkSettle, "check passing again", func() bool { return checkStatus(c, "app-1") == api.HealthPassing })

	a.Restart() // the agent forgets everything
	consultest.WaitFor(t, 5*time.Second, "app-1 registered again", func() bool { return hasService(c, "app-1") })
	consultest.WaitFor(t, checkSettle, "check passing after the restart", func() bool { return checkStatus(c, "app-1") == api.HealthPassing })
	if logs.FilterMessageSnippet("forgot the registration").Len() == 0 {
		t.Errorf("re-registration not logged")
	}

	for i := range 2 { // idempotent
		if err := r.Deregister(context.Background()); err != nil {
			t.Fatalf("Deregister #%d: %v", i+1, err)
		}
	}
	if hasService(c, "app-1") {
		t.Fatal("app-1 still registered after Deregister")
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, ErrDeregistered) {
			t.Errorf("Run = %v after Deregister, want ErrDeregistered", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5s after Deregister")
	}
	time.Sleep(5 * testConfig(a).RegistrationInterval)
	if hasService(c, "app-1") {
		t.Fatal("app-1 registered again after Deregister")
	}
	if err := r.Run(context.Background()); !errors.Is(err, ErrDeregistered) {
		t.Errorf("Run after Deregister = %v, want ErrDeregistered", err)
	}
}

// TestRunEndsAfterDeregister: a Deregister while Run runs makes Run return ErrDeregistered,
// with the agent up or down, and never log a registration as restored.
func TestRunEndsAfterDeregister(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	run := func(id string) (*Registrar, *observer.ObservedLogs, <-chan error) {
		logger, logs := observedLogger()
		r, err := NewRegistrar(testConfig(a), discovery.Registration{ID: id, Service: "gone", Address: "127.0.0.1", Port: 7073}, logger)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		runErr := make(chan error, 1)
		go func() { runErr <- r.Run(ctx) }()
		return r, logs, runErr
	}
	ended := func(runErr <-chan error) {
		t.Helper()
		select {
		case err := <-runErr:
			if !errors.Is(err, ErrDeregistered) {
				t.Errorf("Run = %v after Deregister, want ErrDeregistered", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run still running 5s after Deregister")
		}
	}

	// Registered, the agent up.
	r, _, runErr := run("gone-1")
	consultest.WaitFor(t, 5*time.Second, "gone-1 registered", func() bool { return hasService(c, "gone-1") })
	if err := r.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended(runErr)
	if hasService(c, "gone-1") {
		t.Error("gone-1 still registered")
	}

	// Failing, the agent down: Deregister fails too, but Run stops all the same.
	a.Stop()
	r, logs, runErr := run("gone-2")
	consultest.WaitFor(t, 5*time.Second, "failed registrations", func() bool {
		return logs.FilterMessageSnippet("registration failed").Len() > 0
	})
	if err := r.Deregister(context.Background()); err == nil {
		t.Error("Deregister succeeded without an agent")
	}
	ended(runErr)
	if n := logs.FilterMessageSnippet("registration restored").Len(); n != 0 {
		t.Errorf("%d \"registration restored\" lines without an agent", n)
	}
}

// TestDeregisterTimeoutStartsWithItsRequest: Deregister waits for a request Run has in flight
// (here, the lock that request holds), then has a full RequestTimeout for its own.
func TestDeregisterTimeoutStartsWithItsRequest(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	c := a.Client()
	cfg := testConfig(a)
	cfg.RequestTimeout = 500 * time.Millisecond
	r, err := NewRegistrar(cfg, discovery.Registration{ID: "busy-1", Service: "busy", Address: "127.0.0.1", Port: 7074}, nil)
	if err != nil {
		t.Fatal(err)
	}
	register(t, c, r.def)

	r.mu.Lock() // a request of Run's in flight, using up its own RequestTimeout
	errc := make(chan error, 1)
	go func() { errc <- r.Deregister(context.Background()) }()
	time.Sleep(cfg.RequestTimeout + 200*time.Millisecond)
	r.mu.Unlock()
	if err := <-errc; err != nil {
		t.Fatalf("Deregister after waiting for Run's request: %v", err)
	}
	if hasService(c, "busy-1") {
		t.Error("busy-1 still registered")
	}
}

// TestRegistrarWaitsForAgent starts Run while the agent is down: it retries, logging at a
// limited rate, and registers once the agent is up.
func TestRegistrarWaitsForAgent(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t)
	a.Stop()
	logger, logs := observedLogger()
	cfg := testConfig(a)
	cfg.ErrorLogInterval = time.Hour
	r, err := NewRegistrar(cfg, discovery.Registration{ID: "late-1", Service: "late", Address: "127.0.0.1", Port: 7071}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	time.Sleep(time.Second) // several retries
	a.Restart()
	consultest.WaitFor(t, 5*time.Second, "late-1 registered", func() bool { return hasService(a.Client(), "late-1") })
	consultest.WaitFor(t, 5*time.Second, "recovery logged", func() bool {
		return logs.FilterMessageSnippet("registration restored").Len() == 1
	})
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if n := logs.FilterMessageSnippet("registration failed").Len(); n != 1 {
		t.Errorf("%d failure lines, want 1 (rate-limited)", n)
	}
}

func TestNewRegistrarErrors(t *testing.T) {
	good := discovery.Registration{ID: "a-1", Service: "a", Address: "127.0.0.1", Port: 80}
	tests := []struct {
		name    string
		cfg     Config
		mod     func(*discovery.Registration)
		wantErr error
	}{
		{"no service", Config{}, func(r *discovery.Registration) { r.Service = "" }, discovery.ErrBadRegistration},
		{"port 0", Config{}, func(r *discovery.Registration) { r.Port = 0 }, discovery.ErrBadRegistration},
		{"bad check url", Config{}, func(r *discovery.Registration) { r.Check.HTTP = "ftp://x" }, discovery.ErrBadRegistration},
		{"negative interval", Config{RegistrationInterval: -1}, nil, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := good
			if tt.mod != nil {
				tt.mod(&reg)
			}
			if _, err := NewRegistrar(tt.cfg, reg, nil); !errors.Is(err, tt.wantErr) {
				t.Errorf("NewRegistrar = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestRegistrationDefinition checks the agent's form of a Registration.
func TestRegistrationDefinition(t *testing.T) {
	tests := []struct {
		name string
		give discovery.Registration
		want *api.AgentServiceRegistration
	}{
		{
			name: "no weights, no check",
			give: discovery.Registration{ID: "a-1", Service: "a", Address: "10.0.0.1", Port: 80},
			want: &api.AgentServiceRegistration{ID: "a-1", Name: "a", Address: "10.0.0.1", Port: 80},
		},
		{
			name: "warning weight defaults to 1, check interval to 10s",
			give: discovery.Registration{ID: "a-1", Service: "a", Address: "10.0.0.1", Port: 80,
				Tags: []string{"x"}, Meta: map[string]string{"k": "v"}, Weights: discovery.Weights{Passing: 3},
				Check: discovery.Check{HTTP: "http://10.0.0.1:80/health", DeregisterAfter: 2 * time.Minute}},
			want: &api.AgentServiceRegistration{ID: "a-1", Name: "a", Address: "10.0.0.1", Port: 80,
				Tags: []string{"x"}, Meta: map[string]string{"k": "v"}, Weights: &api.AgentWeights{Passing: 3, Warning: 1},
				Check: &api.AgentServiceCheck{Name: "ringside: a health", HTTP: "http://10.0.0.1:80/health", Method: "GET",
					Interval: "10s", DeregisterCriticalServiceAfter: "2m0s"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := registration(tt.give)
			if len(got.Tags) == 0 {
				got.Tags = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("registration =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}
