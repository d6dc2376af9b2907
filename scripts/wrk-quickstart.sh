#!/usr/bin/env bash
# Throughput of the quickstart server over real HTTP on 127.0.0.1: the server pinned to one
# core and wrk to the other (taskset), with the Portcullis layers (API key + RBAC + audit to a
# file) in each audit_acknowledge mode (queued, written, synced), and without the layers.
# Prints requests/s, p50/p99 latency, the ratio to the bare router, the audit events counted
# in the file against the requests wrk completed, and the audit queue's peak depth.
#
# The bar is CPU per request (the `request_cpu` bench); this is the report next to it.
# Usage: scripts/wrk-quickstart.sh [DURATION_SECONDS]
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
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PATH_UNDER_TEST=/collections/datasets

# A copy of the quickstart's configuration with `audit_acknowledge = $1`.
configure() {
  local mode=$1 dir="$WORK/$1"
  mkdir -p "$dir"
  cp examples/quickstart/api_keys.json examples/quickstart/roles.toml "$dir/"
  { echo "audit_acknowledge = \"$mode\""; cat examples/quickstart/quickstart.toml; } > "$dir/quickstart.toml"
  echo "$dir"
}

# run NAME PORT [ARGS...]: one wrk run; prints "name rps p50 p99 requests events peak".
run() {
  local name=$1 port=$2; shift 2
  local audit="$WORK/$name.jsonl"
  taskset -c 0 "$BIN" --dev --port "$port" --audit-log "$audit" "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local out
  out=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" --latency -H 'X-API-Key: demo-reader-key' \
    "http://127.0.0.1:$port$PATH_UNDER_TEST")
  local peak="-"
  if [ "$name" != "bare" ]; then
    peak=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^portcullis_audit_queue_depth_peak/ {print $2}')
  fi
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99 requests events="-"
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  if [ -f "$audit" ]; then
    # The file and its rotations (<file>.1, <file>.2, ...).
    events=$(cat "$audit" "$audit".* 2>/dev/null | grep -c "\"request_path\":\"$PATH_UNDER_TEST\"" || true)
  fi
  echo "$name $rps $p50 $p99 $requests $events $peak"
}

results=()
port=18180
for mode in queued written synced; do
  port=$((port + 1))
  dir=$(configure "$mode")
  results+=("$(run "$mode" "$port" --config "$dir/quickstart.toml")")
done
results+=("$(run bare $((port + 1)) --without-layers)")

bare_rps=$(awk '$1 == "bare" {print $2}' <<<"$(printf '%s\n' "${results[@]}")")
queued_rps=$(awk '$1 == "queued" {print $2}' <<<"$(printf '%s\n' "${results[@]}")")
printf '%-8s %10s %9s %9s %9s %10s %10s %8s %11s\n' mode "req/s" p50 p99 "/bare" "/queued" requests events "queue peak"
for line in "${results[@]}"; do
  read -r name rps p50 p99 requests events peak <<<"$line"
  awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v bare="$bare_rps" -v q="$queued_rps" \
      -v req="$requests" -v ev="$events" -v pk="$peak" \
    'BEGIN { printf "%-8s %10.0f %9s %9s %9.3f %10.3f %10s %8s %11s\n", n, r, a, b, r / bare, r / q, req, ev, pk }'
done
echo "events: audit lines for $PATH_UNDER_TEST after a graceful stop; they may exceed wrk's count by"
echo "the requests in flight when wrk stopped (answered after its timer), never fall short of it."
