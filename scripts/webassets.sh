#!/usr/bin/env bash
# Rebuilds the web UI's world map from its npm package, pinned in
# web/npm/package-lock.json (@svg-maps/world, CC BY 4.0): npm ci fetches
# exactly that version (npm checks its integrity hash), and
# web/internal/mapgen simplifies it into web/static/world.json, which is
# committed so that a plain `go build` needs no npm. No Node at run time.
#
#   scripts/webassets.sh          rewrite web/static/world.json
#   scripts/webassets.sh --check  fail if the committed map differs from a rebuild
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
command -v npm >/dev/null || { echo "webassets: npm is not installed (apt-get install npm)" >&2; exit 1; }
(cd web/npm && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
out=web/static/world.json
if [ "${1:-}" = --check ]; then
  tmp="$(mktemp)"
  trap 'rm -f "$tmp"' EXIT
  go run ./web/internal/mapgen -in web/npm/node_modules/@svg-maps/world/index.js -out "$tmp"
  if ! cmp -s "$tmp" "$out"; then
    echo "webassets: $out differs from a rebuild from the pinned package: run scripts/webassets.sh and commit it" >&2
    exit 1
  fi
  echo "web/static/world.json matches @svg-maps/world $(node -p 'require("./web/npm/node_modules/@svg-maps/world/package.json").version' 2>/dev/null || echo '(pinned)')"
else
  go run ./web/internal/mapgen -in web/npm/node_modules/@svg-maps/world/index.js -out "$out"
  echo "wrote $out"
fi
