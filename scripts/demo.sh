#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian machine with Go: install the
# lab's packages, build vantage, bring up ../shared/netlab (a simulated
# Internet in network namespaces, nothing leaves the machine), scan its
# 131,072-address host farm on ports 22, 80 and 443, and check the findings
# against the lab's ground truth. Needs root.
#
#   sudo ./scripts/demo.sh            RATE=100000 by default (probes/s; 0 = full speed)
set -euo pipefail
# the store reads events through DuckDB's Arrow interface, which needs this tag
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=duckdb_arrow"
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
NETLAB="${NETLAB:-$(cd "$top/.." && pwd)/shared/netlab/netlab}"
RATE="${RATE:-100000}"
[ "$(id -u)" = 0 ] || { echo "demo.sh needs root (raw sockets, network namespaces): sudo $0" >&2; exit 1; }
[ -x "$NETLAB" ] || { echo "netlab not found at $NETLAB (set NETLAB=...)" >&2; exit 1; }

echo "== installing the lab's packages (zmap, masscan, nmap, nftables, ...)"
"$NETLAB" deps >/tmp/vantage-deps.log 2>&1 || { tail -20 /tmp/vantage-deps.log; exit 1; }
echo "== building vantage"
go build -o "$top/vantage" ./cmd/vantage
"$top/vantage" version

brought_up=0
if ! ip netns list | grep -qw nl-scan; then
  echo "== bringing up netlab"
  "$NETLAB" up
  brought_up=1
fi
cleanup() { if [ "$brought_up" = 1 ] && [ -z "${NETLAB_KEEP:-}" ]; then "$NETLAB" down; fi; }
trap cleanup EXIT
"$NETLAB" check >/dev/null

out="$(mktemp -d /tmp/vantage-demo-XXXXXX)"
echo "== scanning 198.18.0.0/15 x {22,80,443} from the scanner namespace at ${RATE} probes/s"
ip netns exec nl-scan "$top/vantage" scan -p 22,80,443 -r "$RATE" -c 2s \
  --allow-reserved 198.18.0.0/15 198.18.0.0/15 -o "$out/results.json" --metadata "$out/metadata.json"

echo "== first results (JSON lines, $out/results.json)"
head -n 3 "$out/results.json"
echo "== checked against netlab's ground truth"
for port in 22 80 443; do
  truth="$("$NETLAB" truth "$port" --count)"
  found="$(grep -c "\"port\":$port," "$out/results.json" || true)"
  printf 'port %-3s  open in the lab: %5s   found by vantage: %5s\n' "$port" "$truth" "$found"
done
echo "summary: $out/metadata.json"
