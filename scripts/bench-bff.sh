#!/usr/bin/env bash
# Load test of the BFF's metadata endpoints against a bare axum handler
# (the ceiling) in the same run, on 127.0.0.1 only. Bounded: each load
# phase runs DURATION seconds; everything started here is stopped on exit.
#
#   bash scripts/bench-bff.sh            # DURATION=10 CONNECTIONS=32
#
# Server processes are pinned to CPU 0 and the load tools to CPU 1, so
# the two do not compete for a core. Needs wrk and hey (Debian packages;
# installed here when missing). Figures go to stdout; BENCHMARKS.md has
# the last recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
BFF_PORT=${BFF_PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18090}

for tool in wrk hey curl; do
  if ! command -v "$tool" >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$tool" >/dev/null
  fi
done

cargo build --release --locked -q -p thesa-bff --bin thesa-bff --example ceiling
BIN=target/release/thesa-bff

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# Start-up to ready: from spawn until /ui/ready answers 200.
start_ns=$(date +%s%N)
THESA_SERVER_PORT=$BFF_PORT THESA_OBSERVABILITY_LOG_LEVEL=info \
  taskset -c 0 "$BIN" serve --config config/config.yaml >/tmp/thesa-bench-bff.log 2>&1 &
bff=$!
pids+=("$bff")
until curl -fs -o /dev/null "http://127.0.0.1:$BFF_PORT/ui/ready"; do
  kill -0 "$bff" 2>/dev/null || { cat /tmp/thesa-bench-bff.log; exit 1; }
  sleep 0.002
done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
logged_ms=$(grep -o '"startup_ms":[0-9]*' /tmp/thesa-bench-bff.log | cut -d: -f2)
sleep 1
idle_rss=$(rss_mb "$bff")

TOKEN=$("$BIN" dev-token --config config/config.yaml --sub bench --tenant acme --roles admin)
AUTH="Authorization: Bearer $TOKEN"
nav_bytes=$(curl -fs -H "$AUTH" "http://127.0.0.1:$BFF_PORT/ui/navigation" | wc -c)
page_bytes=$(curl -fs -H "$AUTH" "http://127.0.0.1:$BFF_PORT/ui/pages/orders.list" | wc -c)

taskset -c 0 target/release/examples/ceiling "$CEILING_PORT" "$page_bytes" >/dev/null &
pids+=("$!")
until curl -fs -o /dev/null "http://127.0.0.1:$CEILING_PORT/"; do sleep 0.01; done

# Peak requests/s with wrk.
peak() { # url [header]
  local args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency)
  [ -n "${2:-}" ] && args+=(-H "$2")
  taskset -c 1 wrk "${args[@]}" "$1" | awk '/Requests\/sec/ {printf "%d", $2}'
}
# p99 in ms at a fixed rate with hey (-q is per worker).
p99_at() { # rate url [header]
  local workers=10 args=()
  [ -n "${3:-}" ] && args+=(-H "$3")
  taskset -c 1 hey -z "${DURATION}s" -c "$workers" -q $(( $1 / workers )) "${args[@]}" "$2" \
    | awk '/99%% in|99% in/ {printf "%.2f", $3 * 1000}'
}

ceiling=$(peak "http://127.0.0.1:$CEILING_PORT/")
nav=$(peak "http://127.0.0.1:$BFF_PORT/ui/navigation" "$AUTH")
page=$(peak "http://127.0.0.1:$BFF_PORT/ui/pages/orders.list" "$AUTH")
loaded_rss=$(rss_mb "$bff")
nav_p99=$(p99_at $(( nav / 2 )) "http://127.0.0.1:$BFF_PORT/ui/navigation" "$AUTH")
page_p99=$(p99_at $(( page / 2 )) "http://127.0.0.1:$BFF_PORT/ui/pages/orders.list" "$AUTH")

pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", 100 * a / b}'; }
cat <<EOF
thesa-bff $("$BIN" --version | cut -d' ' -f2-) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))
servers on CPU 0, load on CPU 1; wrk -t1 -c$CONNECTIONS -d${DURATION}s; hey -c10 at half the peak rate
start-up to ready       ${ready_ms} ms (logged start-up ${logged_ms} ms)
idle RSS                ${idle_rss} MB (after the load: ${loaded_rss} MB)
ceiling (bare axum, ${page_bytes} B)   ${ceiling} req/s
GET /ui/navigation (${nav_bytes} B)   ${nav} req/s = $(pct "$nav" "$ceiling")% of ceiling; p99 at $(( nav / 2 )) req/s: ${nav_p99} ms
GET /ui/pages/orders.list (${page_bytes} B)   ${page} req/s = $(pct "$page" "$ceiling")% of ceiling; p99 at $(( page / 2 )) req/s: ${page_p99} ms
EOF
