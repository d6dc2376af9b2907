#!/usr/bin/env bash
# Throughput of the quickstart server under wrk on 127.0.0.1, with the Portcullis layers
# (API key + RBAC + audit) and without them (--without-layers), and the ratio.
# Target (issue #8): ratio >= 0.9. Usage: scripts/wrk-quickstart.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
command -v wrk >/dev/null 2>&1 || {
  echo "installing wrk" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
}
cargo build --release -q -p quickstart
BIN=target/release/quickstart
AUDIT="$(mktemp -d)/audit.jsonl"

run() {
  local port=$1; shift
  "$BIN" --dev --port "$port" --audit-log "$AUDIT" "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local rps
  rps=$(wrk -t2 -c32 -d"${DURATION}s" -H 'X-API-Key: demo-reader-key' \
    "http://127.0.0.1:$port/collections/datasets" | awk '/Requests\/sec/ {print $2}')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps"
}

with=$(run 18181)
without=$(run 18182 --without-layers)
echo "with layers:    $with req/s"
echo "without layers: $without req/s"
awk -v a="$with" -v b="$without" 'BEGIN { printf "ratio:          %.3f (target >= 0.9)\n", a / b }'
