#!/usr/bin/env bash
# Copies up to N inputs per fuzz target from Go's fuzz cache into the
# package's testdata/fuzz/<Target>/, so `go test` replays them as regression
# cases. Run after a `go test -fuzz` session: scripts/save-fuzz-corpus.sh [N]
set -euo pipefail
top="$(git rev-parse --show-toplevel)"
n="${1:-40}"
mod="$(cd "$top" && go list -m)"
cache="$(go env GOCACHE)/fuzz/$mod"
[ -d "$cache" ] || { echo "no fuzz cache under $cache"; exit 0; }
find "$cache" -type d -name 'Fuzz*' | while read -r dir; do  # targets of nested packages too
  pkg="${dir#"$cache"/}"; pkg="${pkg%/*}"; target="$(basename "$dir")"
  dest="$top/$pkg/testdata/fuzz/$target"
  mkdir -p "$dest"
  ls "$dir" | head -n "$n" | while read -r f; do cp -n "$dir/$f" "$dest/"; done
  echo "$pkg $target: $(ls "$dest" | wc -l) inputs"
done
