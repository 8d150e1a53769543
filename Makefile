# ringside: the two commands README.md gives, and a few helpers.
#
#   make demo   runs the sidecar demo on an embedded registry (no external service)
#   make test   builds the test Consul agent and installs chromium when missing, then runs every test with -race

SHELL := /usr/bin/env bash
GO    ?= go
export GOTOOLCHAIN ?= local

.PHONY: demo test consul chromium vet fmt-check bench-ring bench-proxy

demo:
	$(GO) run ./cmd/ringside-demo

# The Consul agent (v1.15.4, built from its Go module) is cached under .cache/bin; the first
# build takes several minutes on 2 cores, later runs reuse it.
consul:
	./discovery/consul/consultest/agent/build.sh

# Debian's chromium, the headless browser of the status page's test (cmd/internal/admin);
# `go test -short` skips that test, a plain `go test` without chromium fails it.
chromium:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd deploy/bench && $(GO) vet ./...

# The proxy and sidecar suites run twice: on the goroutine engine, and on the event-loop engine
# (RINGSIDE_TEST_ENGINE=loop serves every test listener with event loops).
test: consul chromium fmt-check vet
	$(GO) test -race -timeout 45m ./...
	RINGSIDE_TEST_ENGINE=loop $(GO) test -race -timeout 15m ./proxy/ ./cmd/internal/sidecar/ ./cmd/internal/admin/
	cd deploy/bench && $(GO) test -race -timeout 15m ./...

bench-ring:
	cd deploy/bench && $(GO) run ./ringcompare

# Side by side with nginx, HAProxy and Caddy (installs them with apt when missing; ~30 min).
bench-proxy:
	cd deploy/bench && $(GO) run ./proxybench -rounds 3 -duration 15s -out results/
