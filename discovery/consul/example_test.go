package consul_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/consul"
)

// ExampleNewSource watches two services through the local agent (CONSUL_HTTP_ADDR, else
// localhost:8500; the token from CONSUL_HTTP_TOKEN) until interrupted. It has no Output: it
// needs a running agent, so it is compiled, not run.
func ExampleNewSource() {
	logger, _ := zap.NewProduction()
	defer logger.Sync()

	src, err := consul.NewSource(consul.Config{
		Tags:   []string{"http"},
		Health: consul.PassingOrWarning, // drop critical instances
	}, logger, discovery.NopObserver{})
	if err != nil {
		logger.Fatal("consul source", zap.Error(err))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = src.Watch(ctx, []string{"cart", "payments"}, func(s *discovery.Snapshot) {
		// Called from the source's goroutines; keep it short (swap an atomic pointer).
		fmt.Printf("%s: %d endpoints at index %d\n", s.Service, len(s.Endpoints), s.Revision)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("consul watch", zap.Error(err))
	}
}

// ExampleNewRegistrar registers the local app with an HTTP health check, keeps it
// registered until interrupted, then deregisters it. Compiled, not run.
func ExampleNewRegistrar() {
	logger := zap.NewExample()
	reg, err := consul.NewRegistrar(consul.Config{}, discovery.Registration{
		ID: "cart-1", Service: "cart", Address: "10.0.0.7", Port: 8080,
		Check: discovery.Check{HTTP: "http://10.0.0.7:8080/healthz"},
	}, logger)
	if err != nil {
		logger.Fatal("consul registrar", zap.Error(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	_ = reg.Run(ctx) // returns when interrupted
	if err := reg.Deregister(context.Background()); err != nil {
		logger.Error("deregister", zap.Error(err))
	}
}
