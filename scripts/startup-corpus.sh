#!/usr/bin/env bash
# Start-up time of the release thesa-bff on the Thesa corpus
# (../shared/thesa-corpus: 6 definitions, 12 specs; service IDs from the spec
# file names): RUNS starts, each measured two ways — `startup_ms` as the
# server logs it (configuration → listening), and spawn → first 200 from
# /ui/ready, polled every 2 ms (process start and the poll loop included).
# Prints min, median and max of both. Needs curl and python3.
#
#   bash scripts/startup-corpus.sh            # RUNS=20
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
CORPUS=${CORPUS:-../shared/thesa-corpus}
[ -d "$CORPUS/definitions" ] && [ -d "$CORPUS/specs" ] || {
  echo "the Thesa corpus is missing: expected $CORPUS/definitions and $CORPUS/specs" >&2
  exit 2
}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -q -p thesa-bff
BIN="$TARGET/release/thesa-bff"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PORT=${PORT:-18431}

{
  echo "server: {port: $PORT}"
  echo "identity: {jwks_file: \"$PWD/config/dev/jwks.json\", issuer: thesa-dev, audience: thesa-bff}"
  echo "specs: {directory: \"$(cd "$CORPUS/specs" && pwd)\"}"
  echo "definitions: {directories: [\"$(cd "$CORPUS/definitions" && pwd)\"]}"
  echo "capability: {evaluator: static, static_policy_file: \"$PWD/config/policies.yaml\"}"
  echo "services:"
  for spec in "$CORPUS"/specs/*.yaml; do
    echo "  $(basename "$spec" .yaml): {base_url: \"http://127.0.0.1:9\"}"
  done
} > "$WORK/config.yaml"

logged=()
ready=()
for i in $(seq "$RUNS"); do
  start=$(date +%s%N)
  "$BIN" serve --config "$WORK/config.yaml" > "$WORK/log" 2>&1 &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/ui/ready"; do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
    sleep 0.002
  done
  end=$(date +%s%N)
  ready+=($(( (end - start) / 1000000 )))
  logged+=($(grep -o '"startup_ms":[0-9]*' "$WORK/log" | cut -d: -f2))
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done

stats() { printf '%s\n' "$@" | sort -n | python3 -c '
import sys
v = [int(x) for x in sys.stdin]
print(f"min {v[0]} ms, median {v[len(v)//2]} ms, max {v[-1]} ms")'; }
echo "thesa-bff on the Thesa corpus, $RUNS starts:"
echo "  startup_ms logged by the server: $(stats "${logged[@]}")"
echo "  spawn -> first 200 /ui/ready:    $(stats "${ready[@]}")"
