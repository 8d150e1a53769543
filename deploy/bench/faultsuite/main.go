// Command faultsuite puts the real ringside binary, on each of its engines, in front of
// backends that misbehave — a second response after a short delay, a body on HEAD/204/304,
// an undercounted Content-Length, a response head then a stall (small and large body), a
// stall mid-body, a reset mid-body, a slow reader of request bodies, and a well-behaved
// control — under concurrent load, with raw-socket clients that check every byte they get.
//
// Every request carries a unique id and every correct answer echoes it (header X-Req-Id and
// a body that is the id's pattern), so an answer or a byte that belongs to another request is
// a wrong answer. Every exchange has its own deadline, the configured bound (dial + attempts
// × response_header + body_idle) plus a margin; an exchange still open then is a hang. The
// run fails (exit 1) when any engine gave a wrong answer or hung.
//
//	cd deploy/bench && go run ./faultsuite                          # 10 s per engine, 8 clients per fault
//	cd deploy/bench && go run ./faultsuite -duration 60s -concurrency 32 -json /tmp/fault.json
//
// All traffic stays on 127.0.0.1. Each load loop is bounded by -duration and -max-requests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	opt, jsonPath, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultsuite:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := run(ctx, opt, os.Stdout)
	if jsonPath != "" && len(results) > 0 {
		if b, jerr := json.MarshalIndent(results, "", "  "); jerr == nil {
			jerr = os.WriteFile(jsonPath, b, 0o644)
			if jerr != nil {
				fmt.Fprintln(os.Stderr, "faultsuite:", jerr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultsuite:", err)
		os.Exit(1)
	}
}

// options is one run of the suite (the command line).
type options struct {
	engines     []string
	faults      []fault
	duration    time.Duration // of the load on each engine
	concurrency int           // clients per fault
	maxRequests int           // per client
	backends    int           // backends per fault
	timeouts    timeouts
	ringside    string // prebuilt binary; "" builds one
	keep        bool   // keep the work folder (configs, ringside's log)
	crossWindow time.Duration
	newTimeouts string // auto, on, off: write timeouts.body_idle and timeouts.request
}

func parseFlags(args []string) (options, string, error) {
	fs := flag.NewFlagSet("faultsuite", flag.ContinueOnError)
	var opt options
	engines := fs.String("engines", "goroutines,event_loop", "ringside engines to run, comma-separated")
	faults := fs.String("faults", "all", "faults to inject, comma-separated, or all: "+joinFaults(allFaults))
	fs.DurationVar(&opt.duration, "duration", 10*time.Second, "load time per engine (every fault at once)")
	fs.IntVar(&opt.concurrency, "concurrency", 8, "clients per fault, each on its own keep-alive connection")
	fs.IntVar(&opt.maxRequests, "max-requests", 100000, "requests per client at most")
	fs.IntVar(&opt.backends, "backends", 2, "backends (endpoints) per fault")
	fs.DurationVar(&opt.timeouts.dial, "dial", 500*time.Millisecond, "timeouts.dial")
	fs.DurationVar(&opt.timeouts.responseHeader, "response-header", 2*time.Second, "timeouts.response_header and retries.per_try_timeout")
	fs.IntVar(&opt.timeouts.attempts, "attempts", 2, "retries.attempts")
	fs.DurationVar(&opt.timeouts.bodyIdle, "body-idle", 2*time.Second, "timeouts.body_idle: the streamed-body idle limit ringside is held to (in the deadline; in the config as -new-timeouts says)")
	fs.DurationVar(&opt.timeouts.request, "request-timeout", 0, "timeouts.request (0: left out)")
	fs.StringVar(&opt.newTimeouts, "new-timeouts", "auto", "write timeouts.body_idle (and timeouts.request when -request-timeout > 0) into the config: auto (when this ringside knows them), on, off")
	fs.DurationVar(&opt.timeouts.margin, "margin", 2*time.Second, "slack past the configured bound before an open exchange is a hang")
	fs.DurationVar(&opt.crossWindow, "cross-window", defaultCrossWindow, "a wrong answer to a request that reached the backend this soon after extra bytes on its connection is counted as crossed, not wrong")
	fs.StringVar(&opt.ringside, "ringside", "", "a ringside binary to use (default: build cmd/ringside of this repository)")
	fs.BoolVar(&opt.keep, "keep", false, "keep the work folder (configs and ringside's logs) and print its path")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return opt, "", err
	}
	if fs.NArg() > 0 {
		return opt, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, e := range strings.Split(*engines, ",") {
		e = strings.TrimSpace(e)
		if e != "goroutines" && e != "event_loop" {
			return opt, "", fmt.Errorf("-engines: %q is not an engine: want goroutines and/or event_loop", e)
		}
		opt.engines = append(opt.engines, e)
	}
	switch opt.newTimeouts {
	case "auto", "on", "off":
	default:
		return opt, "", fmt.Errorf("-new-timeouts: %q: want auto, on or off", opt.newTimeouts)
	}
	var err error
	if opt.faults, err = parseFaults(*faults); err != nil {
		return opt, "", fmt.Errorf("-faults: %w", err)
	}
	if opt.duration <= 0 || opt.crossWindow < 0 || opt.concurrency < 1 || opt.maxRequests < 1 || opt.backends < 1 || opt.timeouts.attempts < 1 {
		return opt, "", errors.New("-duration, -concurrency, -max-requests, -backends and -attempts must be positive, -cross-window not negative")
	}
	return opt, *jsonPath, nil
}

// errFaultsFound is returned by run when an engine answered wrongly or hung.
var errFaultsFound = errors.New("wrong answers or hangs found")

// run builds ringside (unless given), runs every engine in turn and writes the report to
// out. It returns errFaultsFound when any engine answered wrongly or hung.
func run(ctx context.Context, opt options, out io.Writer) ([]engineResult, error) {
	work, err := os.MkdirTemp("", "faultsuite-")
	if err != nil {
		return nil, err
	}
	if opt.keep {
		fmt.Fprintf(out, "work folder: %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := opt.ringside
	if bin == "" {
		if bin, err = buildRingside(ctx, work); err != nil {
			return nil, err
		}
	}
	switch opt.newTimeouts {
	case "on":
		opt.timeouts.writeBodyIdle, opt.timeouts.writeRequest = true, true
	case "auto":
		if opt.timeouts.writeBodyIdle, opt.timeouts.writeRequest, err = knownTimeouts(ctx, bin, work); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "faultsuite: %s per engine, %d clients per fault, deadline per exchange %v (%s), cross window %v\n\n",
		opt.duration, opt.concurrency, opt.timeouts.bound(), describeTimeouts(opt.timeouts), opt.crossWindow)
	var results []engineResult
	for _, e := range opt.engines {
		r, err := runEngine(ctx, opt, bin, work, e)
		if err != nil {
			return results, err
		}
		results = append(results, r)
		writeReport(out, r)
	}
	for _, r := range results {
		if w, h := r.failures(); w+h > 0 {
			return results, errFaultsFound
		}
	}
	return results, nil
}
