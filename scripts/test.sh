#!/usr/bin/env bash
# Runs every test of the repository: formatting and vet, unit tests, the
# web UI in headless Chromium, the netlab end-to-end tests (as root), a
# short fuzzing pass over every fuzz target, and a quick run of the scan
# benchmark against zmap and masscan.
#
#   sudo ./scripts/test.sh          everything (CI runs exactly this)
#   ./scripts/test.sh               as a normal user: lab tests skip and say why
#
# Knobs: FUZZTIME (per fuzz target, default 20000x; 0 skips fuzzing),
#        BENCH=0 skips the quick benchmark, NETLAB=path/to/netlab.
set -euo pipefail
# the store reads events through DuckDB's Arrow interface, which needs this tag
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=duckdb_arrow"
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
export NETLAB="${NETLAB:-$(cd "$top/.." && pwd)/shared/netlab/netlab}"
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure when the time runs out
# (go.dev/issue/75804, fixed in Go 1.27). A count has no deadline to race.
FUZZTIME="${FUZZTIME:-20000x}"
BENCH="${BENCH:-1}"
step() { printf '\n=== %s\n' "$*"; }
t0=$(date +%s)

if [ "$(id -u)" = 0 ]; then
  step "dependencies (netlab's Debian packages)"
  if [ -x "$NETLAB" ]; then
    "$NETLAB" deps >/tmp/vantage-deps.log 2>&1 || { tail -20 /tmp/vantage-deps.log; exit 1; }
    echo "installed: zmap $(dpkg-query -W -f='${Version}' zmap), masscan $(dpkg-query -W -f='${Version}' masscan), nmap $(dpkg-query -W -f='${Version}' nmap)"
  else
    echo "netlab not found at $NETLAB: lab tests will skip" >&2
  fi
  step "dependencies (Debian's chromium for the web UI's browser tests; npm for pinned data; clickhouse-server for the ClickHouse store's tests)"
  missing=""
  command -v chromium >/dev/null || missing="$missing chromium"
  command -v npm >/dev/null || missing="$missing npm"
  [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null || missing="$missing clickhouse-server clickhouse-client"
  if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >/tmp/vantage-apt.log 2>&1 \
      || { tail -20 /tmp/vantage-apt.log; exit 1; }
  fi
  chromium --version 2>/dev/null | grep -o 'Chromium [0-9.]*' || true
else
  echo "not root: netlab dependencies and chromium not installed; lab and browser tests skip if they are absent"
fi

step "geo data (pinned npm packages, checked against enrich/geodata.lock)"
if [ -z "${VANTAGE_GEODATA:-}" ]; then
  if [ -w /var/cache ]; then VANTAGE_GEODATA=/var/cache/vantage-geodata; else VANTAGE_GEODATA="$HOME/.cache/vantage-geodata"; fi
fi
export VANTAGE_GEODATA
scripts/geodata.sh "$VANTAGE_GEODATA"

step "web assets (the world map rebuilt from its pinned npm package matches the committed one)"
scripts/webassets.sh --check

step "go mod download"
go mod download

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
echo ok

step "go vet"
go vet ./...

step "go test (unit tests, and netlab end-to-end tests when root)"
# -p 1: the lab tests and the raw-socket tests must not run beside each other
go test -p 1 -count=1 -timeout 20m ./...

if [ "$FUZZTIME" != 0 ]; then
  step "fuzzing, $FUZZTIME per target"
  for pkg in $(go list ./...); do
    dir="$(go list -f '{{.Dir}}' "$pkg")"
    for fz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //' | sort -u); do
      echo "$pkg $fz"
      go test -run '^$' -fuzz "^$fz\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/vantage-fuzz.log 2>&1 || { cat /tmp/vantage-fuzz.log; exit 1; }
    done
  done
fi

if [ "$BENCH" = 1 ] && [ "$(id -u)" = 0 ] && [ -x bench/scan.sh ]; then
  step "quick scan benchmark (vantage vs zmap and masscan, in netlab)"
  QUICK=1 bench/scan.sh "$(mktemp -d /tmp/vantage-bench-XXXXXX)"
fi

step "all tests passed in $(( $(date +%s) - t0 ))s"
