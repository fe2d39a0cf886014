#!/usr/bin/env bash
# Installs what `make test` needs beyond the Rust toolchain, when missing:
# - redis-server: the idempotency tests start throwaway instances on
#   127.0.0.1 (set REDIS_URL to use an existing server instead);
# - PostgreSQL server binaries and psql: the workflow tests create a
#   throwaway cluster (initdb on a free port) and a database per test (set
#   DATABASE_URL to a server they may create databases in instead);
# - prometheus: the analytics tests start a throwaway Prometheus on
#   127.0.0.1 scraping an exporter the test serves;
# - lua5.4: the Argo CD health checks (deploy/argocd/) run in it;
# - chromium and chromium-driver: the preview's browser test drives a
#   headless Chromium through chromedriver (127.0.0.1 only).
set -euo pipefail

missing=()
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  missing+=(redis-server)
fi
if [ -z "${DATABASE_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v psql >/dev/null; then
  missing+=(postgresql-client)
fi
if ! command -v prometheus >/dev/null; then
  missing+=(prometheus)
fi
if ! command -v lua5.4 >/dev/null; then
  missing+=(lua5.4)
fi
if ! command -v chromium >/dev/null; then
  missing+=(chromium)
fi
if ! command -v chromedriver >/dev/null; then
  missing+=(chromium-driver)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "test-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})," \
       "or set REDIS_URL / DATABASE_URL to existing servers" >&2
  exit 1
fi
echo "test-deps: installing ${missing[*]}"
apt-get update -qq
# The packaged PostgreSQL and Prometheus services are not started here:
# the tests run their own.
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
  --no-install-recommends "${missing[@]}" >/dev/null
