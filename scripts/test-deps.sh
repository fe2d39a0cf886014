#!/usr/bin/env bash
# Installs what `make test` needs beyond the Rust toolchain, when missing:
# redis-server (the BFF's idempotency tests start throwaway instances on
# 127.0.0.1; set REDIS_URL to use an existing one instead).
set -euo pipefail

if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "test-deps: redis-server is missing; install it (Debian: apt-get install redis-server) or set REDIS_URL" >&2
    exit 1
  fi
  echo "test-deps: installing redis-server"
  apt-get update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq redis-server >/dev/null
fi
