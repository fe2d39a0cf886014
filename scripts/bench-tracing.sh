#!/usr/bin/env bash
# What OpenTelemetry tracing costs a request: p50 of GET page data (one
# backend call) through the BFF with tracing off, at sampling 1.0 and 0.1
# (OTLP/HTTP to a collector that discards spans), and at 1.0 with a dead
# collector. On 127.0.0.1 only; each run lasts DURATION seconds; whatever
# is started here is stopped on exit.
#
#   bash scripts/bench-tracing.sh        # DURATION=8
#
# The BFF and the mock backend (which is also the collector) share CPU 0,
# wrk runs on CPU 1 with one connection (latency without queueing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
BFF_PORT=${BFF_PORT:-18280}
BACKEND_PORT=${BACKEND_PORT:-18291}

command -v wrk >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null
cargo build --release --locked -q -p thesa-bff --bin thesa-bff --example mock_backend
BIN=target/release/thesa-bff

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c 0 target/release/examples/mock_backend "$BACKEND_PORT" >/dev/null &
pids+=("$!")
until curl -fs -o /dev/null "http://127.0.0.1:$BACKEND_PORT/orders"; do sleep 0.01; done
TOKEN=$("$BIN" dev-token --config config/config.yaml --sub bench --tenant acme --roles admin)
URL="http://127.0.0.1:$BFF_PORT/ui/pages/orders.list/data"

p50() {
  awk '$1 == "50%" {v = $2; f = 1; if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else if (v ~ /s$/) f = 1000;
       sub(/[a-z]+$/, "", v); printf "%.3f", v * f}'
}

measure() { # label enabled rate endpoint
  env THESA_SERVER_PORT=$BFF_PORT THESA_OBSERVABILITY_LOG_LEVEL=info \
    THESA_SERVICES_ORDERS_SVC_BASE_URL="http://127.0.0.1:$BACKEND_PORT" \
    THESA_OBSERVABILITY_TRACING_ENABLED="$2" \
    THESA_OBSERVABILITY_TRACING_SAMPLING_RATE="$3" \
    THESA_OBSERVABILITY_TRACING_ENDPOINT="$4" \
    THESA_OBSERVABILITY_TRACING_PROTOCOL=http_protobuf \
    taskset -c 0 "$BIN" serve --config config/config.yaml >/tmp/thesa-bench-tracing.log 2>&1 &
  local pid=$!
  pids+=("$pid")
  until curl -fs -o /dev/null "http://127.0.0.1:$BFF_PORT/ui/ready"; do sleep 0.01; done
  local value dropped
  value=$(taskset -c 1 wrk -t1 -c1 -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$URL" | p50)
  dropped=$(curl -fs "http://127.0.0.1:$BFF_PORT/metrics" | awk '/^thesa_trace_spans_dropped_total/ {s += $2} END {printf "%d", s}')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-34s p50 %s ms (spans dropped: %s)\n' "$1" "$value" "$dropped"
}

echo "thesa-bff $("$BIN" --version | cut -d' ' -f2-), $(nproc) CPUs; wrk -t1 -c1 -d${DURATION}s; GET page data"
measure "tracing off" false 1.0 "http://127.0.0.1:$BACKEND_PORT"
measure "sampling 1.0" true 1.0 "http://127.0.0.1:$BACKEND_PORT"
measure "sampling 0.1" true 0.1 "http://127.0.0.1:$BACKEND_PORT"
measure "sampling 1.0, dead collector" true 1.0 "http://127.0.0.1:9"
