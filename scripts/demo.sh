#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian machine with Go: install the
# lab's packages, build vantage, fetch the geo databases, and run
#
#   vantage up --demo
#
# in the foreground: it brings up ../shared/netlab (a simulated Internet in
# network namespaces; nothing leaves the machine) and its twelve daemons,
# runs the platform (embedded bus, store, API and UI in one data directory),
# scans the lab's 131,072-address farm and the daemons into it, runs a
# sensor on the lab's dark range, and every 30 s sends real tool traffic at
# it from seven lab sources (placed in seven countries by an overrides file:
# fiction, for the map). It prints the URL to open; Ctrl-C stops everything,
# removes what it added and takes the lab down if it brought it up
# (NETLAB_KEEP=1 keeps it). Needs root.
#
#   sudo ./scripts/demo.sh                      data in $DATA (default /var/tmp/vantage-demo)
#   sudo ./scripts/demo.sh --listen 0.0.0.0:8080 --for 10m    more flags go to vantage up
set -euo pipefail
# the store reads events through DuckDB's Arrow interface, which needs this tag
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=duckdb_arrow"
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
NETLAB="${NETLAB:-$(cd "$top/.." && pwd)/shared/netlab/netlab}"
DATA="${DATA:-/var/tmp/vantage-demo}"
[ "$(id -u)" = 0 ] || { echo "demo.sh needs root (raw sockets, network namespaces): sudo $0" >&2; exit 1; }
[ -x "$NETLAB" ] || { echo "netlab not found at $NETLAB (set NETLAB=...)" >&2; exit 1; }

echo "== installing the lab's packages (zmap, masscan, nmap, nftables, daemons ...)"
"$NETLAB" deps >/tmp/vantage-deps.log 2>&1 || { tail -20 /tmp/vantage-deps.log; exit 1; }
echo "== building vantage"
go build -o "$top/vantage" ./cmd/vantage
"$top/vantage" version
echo "== fetching the pinned geo databases into $DATA/geo (npm, hash-checked)"
if ! scripts/geodata.sh "$DATA" >/tmp/vantage-geodata.log 2>&1; then
  tail -5 /tmp/vantage-geodata.log
  echo "   (continuing without them: the lab's countries come from the demo's overrides anyway)"
fi
echo "== vantage up --demo (data in $DATA; Ctrl-C stops it)"
exec "$top/vantage" up --demo --data "$DATA" --netlab "$NETLAB" "$@"
