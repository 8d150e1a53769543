// Command ringside is the sidecar: it registers the local app, watches the services the app
// calls, and proxies the app's calls to them with sticky, health-aware routing.
//
//	ringside -config FILE             run the sidecar
//	ringside validate -config FILE    check a configuration and exit (0 good, 2 bad)
//	ringside version                  print the version
//	ringside status|endpoints|route|drain|undrain|eject|return|weight|events ...
//	                                  talk to a running sidecar's admin API (cli.go)
//
// SIGTERM or SIGINT drains and exits 0 (a second one exits at once); SIGHUP reloads the
// configuration, keeping the old one when the new one is invalid.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/cmd/internal/config"
	"github.com/ringside-proxy/ringside/cmd/internal/sidecar"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1 // the sidecar failed while running
	exitConfig = 2 // bad command line or configuration
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isCLICommand(args[0]) {
		return runCLI(args, stdout, stderr) // cli.go: the operator commands
	}
	cmd := "run"
	if len(args) > 0 && (args[0] == "validate" || args[0] == "version" || args[0] == "run") {
		cmd, args = args[0], args[1:]
	}
	if cmd == "version" {
		fmt.Fprintf(stdout, "ringside %s\n", version)
		return exitOK
	}
	fs := flag.NewFlagSet("ringside "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path of the YAML configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: ringside [run|validate] -config FILE | ringside version\n")
		return exitConfig
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "ringside: invalid configuration:\n%v\n", err)
		return exitConfig
	}
	if err := sidecar.Check(cfg); err != nil {
		fmt.Fprintf(stderr, "ringside: invalid configuration:\n%v\n", err)
		return exitConfig
	}
	if cmd == "validate" {
		fmt.Fprintf(stdout, "%s: ok (%d upstreams, discovery %s)\n", *path, len(cfg.Upstreams), cfg.Discovery.Kind)
		return exitOK
	}
	logger, err := sidecar.NewLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ringside: %v\n", err)
		return exitConfig
	}
	defer func() { _ = logger.Sync() }()
	sc, err := sidecar.New(cfg, sidecar.Options{Logger: logger, Version: version})
	if ce := bindError(cfg, err); ce != nil {
		fmt.Fprintf(stderr, "ringside: invalid configuration:\n%v\n", ce)
		return exitConfig
	}
	if err != nil {
		logger.Error("start", zap.Error(err))
		return exitFail
	}
	return serve(*path, sc, logger)
}

// bindError is the configuration error for a listener address err says could not be bound
// (in use, not this host's), naming the field of cfg that set it; nil for any other err.
func bindError(cfg *config.Config, err error) *config.Error {
	var be *sidecar.BindError
	if !errors.As(err, &be) {
		return nil
	}
	return cfg.ListenError(be.Addr, be.Err)
}

// serve runs the sidecar until a signal: the first SIGTERM/SIGINT drains, a second exits at
// once, SIGHUP reloads.
func serve(path string, sc *sidecar.Sidecar, logger *zap.Logger) int {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP && stopping:
				logger.Warn("reload ignored: draining")
			case sig == syscall.SIGHUP:
				reload(path, sc, logger)
			case stopping:
				logger.Warn("second signal: exiting at once", zap.String("signal", sig.String()))
				_ = logger.Sync()
				os.Exit(exitFail)
			default:
				stopping = true
				logger.Info("draining", zap.String("signal", sig.String()))
				stop()
			}
		}
	}()
	if err := sc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("run", zap.Error(err))
		return exitFail
	}
	return exitOK
}

func reload(path string, sc *sidecar.Sidecar, logger *zap.Logger) {
	cfg, err := config.Load(path)
	if err == nil {
		err = sidecar.Check(cfg)
	}
	if err == nil {
		err = sc.Reload(cfg)
		if ce := bindError(cfg, err); ce != nil {
			err = ce
		}
	}
	if err != nil {
		logger.Error("reload refused: the running configuration stays in force", zap.String("config", path), zap.Error(err))
		return
	}
	logger.Info("reloaded", zap.String("config", path))
}
