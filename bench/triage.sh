#!/usr/bin/env bash
# vantage triage on a big edge log: parse rate and memory.
#
#   bench/triage.sh [SIZE]        SIZE of the log, e.g. 50M, 1G (default 1G, binary units)
#
# Generates a log of SIZE (nginx combined, iptables LOG and sshd lines in
# equal parts, about 1% malformed lines; sources drawn from SOURCES=200000
# addresses, 5% of them IPv6) in a temporary directory, starts a local
# `vantage server` on a temporary data directory on 127.0.0.1, runs
#
#   /usr/bin/time -v vantage triage --json --server URL FILE >/dev/null
#
# and prints lines, seconds, lines/s, the malformed lines counted (and
# generated) and the maximum RSS. Everything it made (the log, the data
# directory, the binary) is removed at the end, and the server stopped,
# also on failure or Ctrl-C. Each step is bounded: TIMEOUT=1800 seconds for
# the triage, 900 for generating the log. TMPDIR picks where the log goes
# (it needs SIZE free).
set -euo pipefail

SIZE_ARG="${1:-${SIZE:-1G}}"
SOURCES="${SOURCES:-200000}"
TIMEOUT="${TIMEOUT:-1800}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE="$(numfmt --from=iec "$SIZE_ARG")"
for tool in /usr/bin/time awk numfmt curl timeout go; do
  command -v "$tool" >/dev/null || { echo "bench/triage.sh: $tool is needed" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vantage-triagebench.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building vantage ..." >&2
(cd "$ROOT" && go build -tags duckdb_arrow -o "$WORK/vantage" ./cmd/vantage)

echo "generating a $SIZE_ARG log from $SOURCES sources ..." >&2
LOG="$WORK/edge.log"
start=$(date +%s.%N)
# mawk is several times faster than gawk here when it is there
AWK=awk
command -v mawk >/dev/null && AWK=mawk
timeout 900 "$AWK" -v size="$SIZE" -v sources="$SOURCES" -v meta="$WORK/generated" '
function ip(k) {
  if (k % 20 == 0) return sprintf("2001:db8::%x:%x", int(k / 65536), k % 65536)
  return sprintf("10.%d.%d.%d", int(k / 65536) % 256, int(k / 256) % 256, k % 256)
}
BEGIN {
  srand(1)
  split("22 23 80 443 445 3389 8080 2323 5900 6379", ports, " ")
  split("/ /wp-login.php /.env /admin /index.html /cgi-bin/luci /api/v1/status /favicon.ico", paths, " ")
  n = 0; bytes = 0; bad = 0
  while (bytes < size) {
    k = int(rand() * sources)
    r = rand()
    if (r < 0.01) {
      line = sprintf("Nov 27 10:%02d:%02d host kernel: something without a source, %d", n % 60, n % 59, n); bad++
    } else if (r < 0.34) {
      line = sprintf("%s - - [27/Nov/2026:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d \"-\" \"Mozilla/5.0 (compatible; scanner/%d)\"", ip(k), n % 60, n % 59, paths[1 + n % 8], (n % 3 ? 404 : 200), 100 + n % 5000, n % 7)
    } else if (r < 0.67) {
      line = sprintf("Nov 27 10:%02d:%02d gw kernel: [%d.%03d] IN=eth0 OUT= MAC=00:16:3e:00:00:01 SRC=%s DST=198.18.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=%d ID=%d PROTO=TCP SPT=%d DPT=%s WINDOW=1024 RES=0x00 SYN URGP=0", n % 60, n % 59, n, n % 1000, ip(k), 32 + n % 200, n % 65536, 1024 + n % 60000, ports[1 + n % 10])
    } else {
      line = sprintf("Nov 27 10:%02d:%02d host sshd[%d]: Failed password for %s from %s port %d ssh2", n % 60, n % 59, 1000 + n % 30000, (n % 2 ? "root" : "invalid user admin"), ip(k), 1024 + n % 60000)
    }
    print line
    bytes += length(line) + 1
    n++
  }
  print n, bad > meta
}' > "$LOG"
read -r GEN_LINES GEN_BAD < "$WORK/generated"
gen_secs="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')"
echo "generated $(numfmt --to=iec --round=nearest "$(stat -c %s "$LOG")") in $gen_secs s: $GEN_LINES lines, $GEN_BAD malformed" >&2

echo "starting a server ..." >&2
mkdir -p "$WORK/data"
"$WORK/vantage" server --data "$WORK/data" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
URL=""
for _ in $(seq 600); do
  URL="$(grep -o 'API on http://[^ ]*' "$WORK/server.log" | head -1 | cut -d' ' -f3 || true)"
  if [ -n "$URL" ] && curl -fsS "$URL/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  URL=""
  sleep 0.1
done
[ -n "$URL" ] || { echo "the server was not ready after a minute:" >&2; cat "$WORK/server.log" >&2; exit 1; }

echo "vantage triage --json --server $URL $(basename "$LOG") ..." >&2
timeout "$TIMEOUT" /usr/bin/time -v "$WORK/vantage" triage --json --server "$URL" "$LOG" >/dev/null 2>"$WORK/triage.err" || {
  echo "vantage triage failed:" >&2; cat "$WORK/triage.err" >&2; exit 1; }

# vantage: FILE: N lines, S sources, M lines not understood (X s, R lines/s)
report="$(grep '^vantage: ' "$WORK/triage.err" | tail -1)"
lines="$(sed -E 's/.*: ([0-9]+) lines, .*/\1/' <<<"$report")"
srcs="$(sed -E 's/.* ([0-9]+) sources, .*/\1/' <<<"$report")"
malformed="$(sed -E 's/.* ([0-9]+) lines not understood.*/\1/' <<<"$report")"
parse_secs="$(sed -E 's/.*\(([0-9.]+) s, .*/\1/' <<<"$report")"
wall="$(grep 'Elapsed (wall clock)' "$WORK/triage.err" | awk '{print $NF}')"
# h:mm:ss or m:ss.cc
secs="$(awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$wall")"
rss_kb="$(grep 'Maximum resident set size' "$WORK/triage.err" | awk '{print $NF}')"
cpu="$(grep 'Percent of CPU' "$WORK/triage.err" | awk '{print $NF}')"

cat <<EOF
vantage triage, $(numfmt --to=iec --round=nearest "$SIZE") log ($(nproc) cores, $(date -u +%F)):
  lines          $lines (generated $GEN_LINES)
  sources        $srcs (drawn from $SOURCES)
  malformed      $malformed counted (generated $GEN_BAD)
  seconds        $secs total; $parse_secs reading the log
  lines/s        $(awk -v l="$lines" -v s="$secs" 'BEGIN { printf "%.0f", l / s }') overall; $(awk -v l="$lines" -v s="$parse_secs" 'BEGIN { printf "%.0f", l / s }') reading
  max RSS        $(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }') MiB
  CPU            $cpu
EOF
if [ "$lines" != "$GEN_LINES" ] || [ "$malformed" != "$GEN_BAD" ]; then
  echo "MISMATCH: triage counted $lines lines and $malformed malformed; the generator wrote $GEN_LINES and $GEN_BAD" >&2
  exit 1
fi
