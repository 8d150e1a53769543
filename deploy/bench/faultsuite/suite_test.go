package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// shortOptions is the bounded mode `go test` runs: 1.5 s of load per engine, 3 clients per
// fault, at most 400 requests each, timeouts short enough that a hang shows within seconds
// (deadline per exchange 5.5 s).
func shortOptions() options {
	return options{
		engines:     []string{"goroutines", "event_loop"},
		faults:      allFaults,
		duration:    1500 * time.Millisecond,
		concurrency: 3,
		maxRequests: 400,
		backends:    2,
		crossWindow: testCrossWindow,
		newTimeouts: "auto",
		timeouts: timeouts{
			dial:           500 * time.Millisecond,
			responseHeader: time.Second,
			attempts:       2,
			bodyIdle:       time.Second,
			margin:         2 * time.Second,
		},
	}
}

// TestFaultSuiteShort runs the suite against the ringside binary built from this repository,
// on both engines: no answer may carry another request's bytes, and no exchange may outlive
// the configured timeouts. About 10 s per engine, plus building ringside.
func TestFaultSuiteShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	results, err := run(ctx, shortOptions(), &out)
	t.Logf("report:\n%s", out.String())
	if err != nil && !errors.Is(err, errFaultsFound) {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d engine results, want 2", len(results))
	}
	for _, r := range results {
		if r.Before.RSSKiB <= 0 || r.After.FDs <= 0 {
			t.Errorf("%s: no /proc readings: before %+v after %+v", r.Engine, r.Before, r.After)
		}
		for _, f := range r.Faults {
			if f.Requests == 0 {
				t.Errorf("%s / %s: no requests sent", r.Engine, f.Fault)
			}
			if f.Fault == faultNone && f.Outcomes["200"] == 0 {
				t.Errorf("%s / %s: %v, want answers from the backend through ringside", r.Engine, f.Fault, f.Outcomes)
			}
			if f.Wrong > 0 || f.Hangs > 0 {
				t.Errorf("%s / %s: %d wrong answers %v, %d hangs past %v:\n  %s", r.Engine, f.Fault,
					f.Wrong, f.Reasons, f.Hangs, r.Deadline, strings.Join(f.Examples, "\n  "))
			}
		}
	}
}

func TestSidecarConfigWritesNewTimeoutsOnlyWhenAsked(t *testing.T) {
	listen := map[fault]string{faultNone: "127.0.0.1:1"}
	to := shortOptions().timeouts
	plain := sidecarConfig("/s.yaml", "127.0.0.1:2", listen, []fault{faultNone}, to, "event_loop")
	for _, want := range []string{"response_header: 1s", "per_try_timeout: 1s", "attempts: 2", "engine: {kind: event_loop}"} {
		if !strings.Contains(plain, want) {
			t.Errorf("config lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "body_idle") || strings.Contains(plain, "request:") {
		t.Errorf("config has timeouts today's ringside refuses:\n%s", plain)
	}
	to.writeBodyIdle, to.writeRequest, to.request = true, true, 2*time.Second
	withNew := sidecarConfig("/s.yaml", "127.0.0.1:2", listen, []fault{faultNone}, to, "goroutines")
	if !strings.Contains(withNew, "body_idle: 1s, request: 2s}") {
		t.Errorf("-new-timeouts config lacks body_idle and request:\n%s", withNew)
	}
	if got, want := to.bound(), 2*time.Second+to.margin; got != want {
		t.Errorf("bound with a request timeout = %v, want %v", got, want)
	}
}
