#!/usr/bin/env bash
# build.sh builds the cut-down Consul v1.15.4 agent used by ringside's integration tests
# into <repo root>/.cache/bin/consul-1.15.4, only when it is missing. A first build takes
# 6 to 9 minutes on 2 cores (seconds from a warm build cache). The binary is built under a
# temporary name and moved into place, so an interrupted build leaves nothing behind. Set
# RINGSIDE_CONSUL_BIN to use a binary from elsewhere instead (consultest honours it; this
# script then does nothing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
out="$root/.cache/bin/consul-1.15.4"

if [[ -n "${RINGSIDE_CONSUL_BIN:-}" ]]; then
	echo "consul: using RINGSIDE_CONSUL_BIN=$RINGSIDE_CONSUL_BIN"
	exit 0
fi
if [[ -x "$out" ]]; then
	echo "consul: $out is up to date"
	exit 0
fi

mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$out.tmp.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' INT TERM HUP # exit through the EXIT trap

start=$SECONDS
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" .)
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "consul: built $out in $((SECONDS - start))s"
