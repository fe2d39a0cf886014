#!/usr/bin/env bash
# Workflow events against PostgreSQL with two BFF processes, on 127.0.0.1
# only: events applied per second to distinct instances, then p50/p99 at
# half that rate (bff/examples/workflow_load.rs). Bounded: each phase runs
# SECONDS seconds; the PostgreSQL cluster and the BFFs started here are
# stopped on exit.
#
#   bash scripts/bench-workflow.sh      # SECONDS=10 CONCURRENCY=32 INSTANCES=2000
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${SECONDS_EACH:-10}
CONCURRENCY=${CONCURRENCY:-32}
INSTANCES=${INSTANCES:-2000}
PORTS=(18280 18281)
PG_PORT=${PG_PORT:-18432}

cargo build --release --locked -q -p thesa-bff --bin thesa-bff --example workflow_load
BIN=target/release/thesa-bff
bash scripts/test-deps.sh

work=$(mktemp -d)
pids=()
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres "$work"

# A throwaway cluster; durability as a default install has it (fsync on).
as_pg "$PG_BIN/initdb" -D "$work/pg" -A trust -U postgres -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
DSN="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

# A workflow that takes any number of events: a <-> b.
mkdir -p "$work/definitions"
cat >"$work/definitions/bench.yaml" <<'YAML'
domain: bench
version: 1.0.0
workflows:
  - id: bench.toggle
    name: Toggle
    initial_step: a
    steps:
      - {id: a, type: human}
      - {id: b, type: human}
      - {id: end, type: terminal}
    transitions:
      - {from: a, to: b, event: flip}
      - {from: b, to: a, event: flip}
      - {from: a, to: end, event: stop}
      - {from: b, to: end, event: stop}
YAML

urls=()
for port in "${PORTS[@]}"; do
  THESA_SERVER_PORT=$port THESA_OBSERVABILITY_LOG_LEVEL=info \
    THESA_DEFINITIONS_DIRECTORIES="definitions,$work/definitions" \
    THESA_WORKFLOW_ENABLED=true THESA_WORKFLOW_STORE_DRIVER=postgres THESA_WORKFLOW_DSN="$DSN" \
    "$BIN" serve --config config/config.yaml >"$work/bff-$port.log" 2>&1 &
  pids+=("$!")
  urls+=("http://127.0.0.1:$port")
done
for url in "${urls[@]}"; do
  for _ in $(seq 300); do curl -fs -o /dev/null "$url/ui/ready" && break; sleep 0.05; done
  curl -fs -o /dev/null "$url/ui/ready" || { cat "$work"/bff-*.log; exit 1; }
done

TOKEN=$("$BIN" dev-token --config config/config.yaml --sub bench --tenant acme --roles admin)
echo "thesa-bff $("$BIN" --version | cut -d' ' -f2-), $(nproc) CPUs, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); 2 BFF processes"
TOKEN=$TOKEN target/release/examples/workflow_load \
  --bff "$(IFS=,; echo "${urls[*]}")" --instances "$INSTANCES" \
  --concurrency "$CONCURRENCY" --seconds "$SECONDS_EACH" | tee "$work/load.txt"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done

# The ceiling: pgbench running what one event costs the database — the
# instance's SELECT, the versioned UPDATE and the history INSERT in one
# transaction — on the same server, instances and connection count, with
# prepared statements. Each client takes its own instances (no conflicts).
psql() { "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql -c "CREATE TABLE bench_ids AS SELECT (row_number() OVER (ORDER BY id))::int AS n, id
         FROM workflow_instances WHERE workflow_id = 'bench.toggle';
         ALTER TABLE bench_ids ADD PRIMARY KEY (n);"
count=$(psql -tA -c "SELECT count(*) FROM bench_ids")
cat >"$work/event.sql" <<'SQL'
\set n 1 + :client_id + :clients * random(0, :count / :clients - 1)
BEGIN;
SELECT w.id AS wid, w.tenant_id AS tenant, w.partition_id AS part, w.current_step AS step, w.version AS v
  FROM workflow_instances w JOIN bench_ids b ON b.id = w.id WHERE b.n = :n \gset
UPDATE workflow_instances SET current_step = CASE current_step WHEN 'a' THEN 'b' ELSE 'a' END,
  state = state, updated_at = now(), version = :v + 1
  WHERE id = :wid AND tenant_id = :tenant AND partition_id = :part AND version = :v;
INSERT INTO workflow_history (instance_id, seq, tenant_id, partition_id, from_step, to_step, event, actor, at)
  VALUES (:wid, :v + 1, :tenant, :part, :step, CASE :step WHEN 'a' THEN 'b' ELSE 'a' END, 'flip', 'pgbench', now());
END;
SQL
"$PG_BIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$CONCURRENCY" -j 2 \
  -T "$SECONDS_EACH" -D count="$count" -D clients="$CONCURRENCY" -f "$work/event.sql" postgres \
  >"$work/pgbench.txt" 2>&1 || { cat "$work/pgbench.txt"; exit 1; }
tps=$(awk '/^tps = / {printf "%.0f", $3}' "$work/pgbench.txt")
events=$(awk '/^max: / {print $2}' "$work/load.txt")
echo "ceiling: pgbench $tps transactions/s (select + versioned update + history insert, $CONCURRENCY connections)"
echo "BFF events/s = $(awk -v a="$events" -v b="$tps" 'BEGIN {printf "%.0f", 100 * a / b}')% of the ceiling"
