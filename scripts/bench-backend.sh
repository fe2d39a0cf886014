#!/usr/bin/env bash
# What the BFF adds to backend calls: page data and a command through the
# BFF against the ceiling any proxy has — a bare pass-through proxy (axum
# and the same HTTP client, no auth, no mapping: bff/examples/passthrough.rs)
# in front of the same mock backend — and, for reference, the backend
# called directly; in one run, on 127.0.0.1 only. Bounded: each phase runs DURATION seconds; everything
# started here is stopped on exit.
#
#   bash scripts/bench-backend.sh        # DURATION=10 CONNECTIONS=32
#
# The BFF (or the proxy) and the mock backend (bff/examples/mock_backend.rs)
# share CPU 0,
# wrk runs on CPU 1. p50 comes from one connection at a time (latency
# without queueing); throughput from CONNECTIONS connections.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
BFF_PORT=${BFF_PORT:-18180}
PROXY_PORT=${PROXY_PORT:-18185}
BACKEND_PORT=${BACKEND_PORT:-18191}

command -v wrk >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null
cargo build --release --locked -q -p thesa-bff --bin thesa-bff --example mock_backend --example passthrough
BIN=target/release/thesa-bff

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c 0 target/release/examples/mock_backend "$BACKEND_PORT" >/dev/null &
pids+=("$!")
THESA_SERVER_PORT=$BFF_PORT THESA_OBSERVABILITY_LOG_LEVEL=info \
  THESA_SERVICES_ORDERS_SVC_BASE_URL="http://127.0.0.1:$BACKEND_PORT" \
  THESA_IDEMPOTENCY_ENABLED=false \
  taskset -c 0 "$BIN" serve --config config/config.yaml >/tmp/thesa-bench-backend.log 2>&1 &
pids+=("$!")
taskset -c 0 target/release/examples/passthrough "$PROXY_PORT" "http://127.0.0.1:$BACKEND_PORT" >/dev/null &
pids+=("$!")
until curl -fs -o /dev/null "http://127.0.0.1:$BFF_PORT/ui/ready"; do sleep 0.01; done
until curl -fs -o /dev/null "http://127.0.0.1:$PROXY_PORT/ui/pages/orders.list/data"; do sleep 0.01; done
until curl -fs -o /dev/null "http://127.0.0.1:$BACKEND_PORT/orders"; do sleep 0.01; done

TOKEN=$("$BIN" dev-token --config config/config.yaml --sub bench --tenant acme --roles admin)
AUTH="Authorization: Bearer $TOKEN"
DIRECT_GET="http://127.0.0.1:$BACKEND_PORT/orders?offset=0&limit=25&sort_by=created_at&order=desc&priority=normal"
BFF_GET="http://127.0.0.1:$BFF_PORT/ui/pages/orders.list/data"
PROXY_GET="http://127.0.0.1:$PROXY_PORT/ui/pages/orders.list/data"
DIRECT_POST="http://127.0.0.1:$BACKEND_PORT/orders/o1/confirm"
BFF_POST="http://127.0.0.1:$BFF_PORT/ui/commands/orders.confirm"
PROXY_POST="http://127.0.0.1:$PROXY_PORT/ui/commands/orders.confirm"
BODY='{"input": {"id": "o1"}}'

# wrk: requests/s and the median latency in ms (its distribution has
# microsecond resolution). A Lua file sets the method, body and headers.
rps() { awk '/Requests\/sec/ {printf "%d", $2}'; }
p50() {
  awk '$1 == "50%" {v = $2; f = 1; if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else if (v ~ /s$/) f = 1000;
       sub(/[a-z]+$/, "", v); printf "%.3f", v * f}'
}
lua() { # method body
  local file
  file=$(mktemp --suffix .lua)
  {
    echo "wrk.method = \"$1\""
    echo "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\""
    echo "wrk.headers[\"Content-Type\"] = \"application/json\""
    [ -n "$2" ] && printf 'wrk.body = [[%s]]\n' "$2"
  } >"$file"
  echo "$file"
}
run() { # connections url script
  taskset -c 1 wrk -t1 -c"$1" -d"${DURATION}s" --latency -s "$3" "$2"
}

report() { # name direct-url proxy-url bff-url method body
  local script d1 p1 b1 dn pn bn
  script=$(lua "$5" "${6:-}")
  d1=$(run 1 "$2" "$script" | p50)
  p1=$(run 1 "$3" "$script" | p50)
  b1=$(run 1 "$4" "$script" | p50)
  dn=$(run "$CONNECTIONS" "$2" "$script" | rps)
  pn=$(run "$CONNECTIONS" "$3" "$script" | rps)
  bn=$(run "$CONNECTIONS" "$4" "$script" | rps)
  rm -f "$script"
  printf '%s\n  p50: direct %s ms, pass-through proxy %s ms, BFF %s ms (%s ms over the proxy)\n' \
    "$1" "$d1" "$p1" "$b1" "$(awk -v a="$b1" -v b="$p1" 'BEGIN {printf "%.3f", a - b}')"
  printf '  throughput: direct %s req/s, pass-through proxy %s req/s, BFF %s req/s = %s%% of the proxy\n' \
    "$dn" "$pn" "$bn" "$(awk -v a="$bn" -v b="$pn" 'BEGIN {printf "%.0f", 100 * a / b}')"
}

echo "thesa-bff $("$BIN" --version | cut -d' ' -f2-), $(nproc) CPUs; wrk -t1 -d${DURATION}s; p50 at -c1, throughput at -c$CONNECTIONS"
report "GET page data (25 rows)" "$DIRECT_GET" "$PROXY_GET" "$BFF_GET" GET
report "POST command (confirm)" "$DIRECT_POST" "$PROXY_POST" "$BFF_POST" POST "$BODY"
