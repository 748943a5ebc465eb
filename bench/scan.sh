#!/usr/bin/env bash
# vantage scan against its anchors (zmap, masscan) in netlab, same farm, same
# rates, several times each. Sections (see bench/scanbench/main.go):
#   farm       198.18.0.0/15 port 80 at each of RATES, every tool
#   send-only  unthrottled, 4 probes per target, probes dropped in nl-net by a
#              table of our own (always deleted afterwards): the sustained send rate
#   rate       vantage and zmap asked for 100, 1000, 10000, 100000 pps
#   memory     vantage max RSS for the farm x 1 port and x 3 ports
#
#   sudo bench/scan.sh [OUTDIR]      (default /tmp/vantage-scanbench-DATE)
#
# Environment knobs:
#   REPS=3                         runs of every setting
#   RATES="10000 100000 0"         farm-scan rates in pps; 0 = unlimited (masscan: --rate 10000000)
#   TOOLS="vantage zmap masscan"   tools to run; one that is not installed is skipped with a note
#   QUICK=1                        for CI: REPS=1, RATES="100000 0", rate accuracy at 1000 and
#                                  100000 pps only (explicit REPS / RATES still win)
#   TIMEOUT=120                    seconds before a scan is killed
#   VANTAGE_ARGS="..."             flags added to every vantage scan (e.g. "--send-method ring")
#   NETLAB=PATH                    the netlab script (default ../shared/netlab/netlab)
#   NETLAB_KEEP=1                  keep the lab up if this run brought it up
#
# Writes OUTDIR/results.jsonl (one JSON object per run), OUTDIR/summary.md (printed at
# the end) and OUTDIR/raw/ (each run's command output, results and metadata).
# The lab is shared: the bench takes its machine-wide lock (/run/vantage-netlab.lock)
# and waits if another lab user holds it. Expect about 8 minutes with the defaults,
# 2 with QUICK=1. Other work on the machine (builds) adds noise to rates and CPU.
set -euo pipefail
# the store reads events through DuckDB's Arrow interface, which needs this tag
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=duckdb_arrow"

if [ "$(id -u)" != 0 ]; then
  echo "bench/scan.sh must run as root (network namespaces, raw sockets, nftables): sudo $0 $*" >&2
  exit 1
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-/tmp/vantage-scanbench-$(date +%Y%m%d-%H%M%S)}"
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  REPS="${REPS:-1}"
  RATES="${RATES:-100000 0}"
fi
REPS="${REPS:-3}"
RATES="${RATES:-10000 100000 0}"
TOOLS="${TOOLS:-vantage zmap masscan}"
TIMEOUT="${TIMEOUT:-120}"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BIN="$(mktemp -d /tmp/vantage-scanbench-bin.XXXXXX)"
chmod 755 "$BIN"
trap 'rm -rf "$BIN"' EXIT

cd "$ROOT"
echo "building vantage and scanbench into $BIN" >&2
go build -o "$BIN/vantage" ./cmd/vantage
go build -o "$BIN/scanbench" ./bench/scanbench

quick=false
[ "$QUICK" = 1 ] && quick=true
# Run in the background so that INT/TERM reach the bench at once: it kills the
# running scan, deletes its nftables table and releases the lab before exiting.
"$BIN/scanbench" -out "$OUT" -vantage "$BIN/vantage" -reps "$REPS" -rates "$RATES" \
  -tools "$TOOLS" -quick="$quick" -timeout "${TIMEOUT}s" -vantage-args "${VANTAGE_ARGS:-}" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
rc=0
wait "$pid" || rc=$?
while kill -0 "$pid" 2>/dev/null; do # wait was interrupted by a signal: wait for the cleanup
  rc=0
  wait "$pid" || rc=$?
done
trap - INT TERM
if [ "$rc" != 0 ]; then
  echo "bench/scan.sh: scanbench failed (exit $rc); partial results in $OUT" >&2
  exit "$rc"
fi

cat "$OUT/summary.md"
echo
echo "results in $OUT"
