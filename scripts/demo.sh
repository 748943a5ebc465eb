#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian machine with Go: install the
# lab's packages, build vantage, bring up ../shared/netlab (a simulated
# Internet in network namespaces, nothing leaves the machine), start the
# platform on the embedded default (vantage server: bus, store, API in one
# data directory), scan the lab's 131,072-address host farm on ports 22, 80
# and 443 into it, check the findings against the lab's ground truth, and
# ask the server about them. Needs root.
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
trap 'if [ "$brought_up" = 1 ] && [ -z "${NETLAB_KEEP:-}" ]; then "$NETLAB" down; fi' EXIT
"$NETLAB" check >/dev/null

out="$(mktemp -d /tmp/vantage-demo-XXXXXX)"
echo "== fetching the pinned geo databases (npm, hash-checked)"
scripts/geodata.sh "$out/data" >/dev/null

# The platform runs inside the scanner's namespace: the lab has no link to
# this host's own network, by design, and the scanner reaches it on loopback.
echo "== starting vantage server (embedded bus and store in $out/data)"
ip netns exec nl-scan "$top/vantage" server --data "$out/data" --listen 127.0.0.1:8080 \
  --overrides "$top/enrich/testdata/netlab.overrides" 2>"$out/server.log" &
server_pid=$!
cleanup() {
  kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ "$brought_up" = 1 ] && [ -z "${NETLAB_KEEP:-}" ]; then "$NETLAB" down; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do [ -s "$out/data/admin.key" ] && grep -q "API on" "$out/server.log" && break; sleep 0.2; done
key="$(cat "$out/data/admin.key")"
v() { ip netns exec nl-scan "$top/vantage" "$@"; }

echo "== scanning 198.18.0.0/15 x {22,80,443} at ${RATE} probes/s, identifying every open port, publishing to the server"
v scan -p 22,80,443 --grab -r "$RATE" -c 2s --allow-reserved 198.18.0.0/15 198.18.0.0/15 \
  -o "$out/results.json" --metadata "$out/metadata.json" --server http://127.0.0.1:8080 --key "$key"

echo "== checked against netlab's ground truth (waiting for ingest)"
sleep 2
for port in 22 80 443; do
  truth="$("$NETLAB" truth "$port" --count)"
  found="$(grep -c "\"port\":$port," "$out/results.json" || true)"
  stored="$(v count "port:$port")"
  printf 'port %-3s  open in the lab: %5s   found by the scan: %5s   searchable on the server: %5s\n' "$port" "$truth" "$found" "$stored"
done
echo
echo "== vantage count 'port:80' --facets country,org"
v count 'port:80' --facets country,org
echo
echo "== vantage count 'port:22' --facets product,version:5 (what the grabber identified)"
v count 'port:22' --facets product,version:5
echo
echo "== vantage search 'port:443 country:XB' --limit 5"
v search 'port:443 country:XB' --limit 5
ip="$(v search 'port:22' --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["ip"])')"
echo
echo "== vantage lookup $ip"
v lookup "$ip"
echo
echo "results: $out/results.json, summary: $out/metadata.json, server log: $out/server.log"
