#!/usr/bin/env bash
# vantage grab in netlab, with nmap -sV as the anchor in the same run (see
# bench/grabbench/main.go for the sections):
#   services  the twelve lab daemons, 12 addresses x 12 ports: wall time and
#             accuracy of vantage grab and of nmap -sV
#   farm      every open 22/80/443 of the host farm: grabs/s, CPU ms per grab
#
#   sudo bench/grab.sh            prints a markdown summary
#
# Knobs: REPS=3 (farm runs per port), CONCURRENCY=1000, SECTIONS=services,farm,
# ROWS=80,443,443h,22 (farm rows; 443h: handshake only), COMPARE=BIN (a second
# vantage build run alternately with this tree's, for an A/B under the same
# load), PROFILES=DIR (a CPU profile of every farm run), NETLAB=PATH. Takes the lab lock like every lab user; brings the lab and its
# services up when absent and takes down only what it brought up.
set -euo pipefail
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=duckdb_arrow"
if [ "$(id -u)" != 0 ]; then
  echo "bench/grab.sh must run as root (network namespaces): sudo $0 $*" >&2
  exit 1
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(mktemp -d /tmp/vantage-grabbench.XXXXXX)"
chmod 755 "$BIN"
trap 'rm -rf "$BIN"' EXIT
cd "$ROOT"
go build -o "$BIN/vantage" ./cmd/vantage
go build -o "$BIN/grabbench" ./bench/grabbench
"$BIN/grabbench" -vantage "$BIN/vantage" -reps "${REPS:-3}" -concurrency "${CONCURRENCY:-1000}" -sections "${SECTIONS:-services,farm}" -rows "${ROWS:-80,443,443h,22}" ${COMPARE:+-compare "$COMPARE"} ${PROFILES:+-cpuprofile "$PROFILES"}
