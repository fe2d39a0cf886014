#!/usr/bin/env bash
# A domain team's CI job for Thesa definitions (the deployment guide's
# "Domain Team CI"): validate against the backends' specs, check for
# breaking changes against what is published, write the checksum manifest.
# Copy it into your repository and adjust the paths; it needs `thesa-bff`
# on PATH (or THESA_BFF=/path/to/thesa-bff).
#
#   docs/ci/domain-ci.sh <definitions dir> <specs dir> <published dir> <out dir>
#
# Exit 0: publishable, <out dir> holds the definitions and
# thesa-checksums.sha256 (sign it with your CI key, then publish the
# directory). Exit 1: validation errors or breaking changes (set
# ALLOW_BREAKING=1 for a release that announces them). Exit 2: usage.
set -euo pipefail

THESA_BFF=${THESA_BFF:-thesa-bff}
if [ $# -ne 4 ]; then
  echo "usage: $0 <definitions dir> <specs dir> <published dir> <out dir>" >&2
  exit 2
fi
definitions=$1 specs=$2 published=$3 out=$4

echo "== 1. validate (operation IDs, references, capabilities, workflows)"
mkdir -p "$out"
"$THESA_BFF" validate --definitions "$definitions" --specs "$specs" \
  --write-checksums "$out/thesa-checksums.sha256"

echo "== 2. breaking changes against the published definitions"
if [ -d "$published" ] && [ -n "$(ls -A "$published")" ]; then
  if ! "$THESA_BFF" diff --old "$published" --new "$definitions"; then
    if [ "${ALLOW_BREAKING:-0}" = 1 ]; then
      echo "breaking changes allowed by ALLOW_BREAKING=1"
    else
      echo "breaking changes: coordinate with the frontend, or set ALLOW_BREAKING=1" >&2
      exit 1
    fi
  fi
else
  echo "nothing published yet: every change is new"
fi

echo "== 3. artifact: definitions and their checksum manifest in $out"
cp -R "$definitions"/. "$out"/
echo "done: $(grep -vc '^#' "$out/thesa-checksums.sha256") definition(s)"
