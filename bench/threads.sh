#!/usr/bin/env bash
# Where one scenario's CPU goes, thread by thread: user and system µs per request for each of
# rollcall's threads, and how often each was woken (summed by thread name, from /proc/PID/task/TID/stat, read before and 1.5 s
# after one wrk run, so the consumers have caught up).
#
#   bash bench/threads.sh BINARY 304|feed|range64|range1m|whole|page CONNECTIONS
#
# The server runs on CPU 0 with the 5,000-episode catalog bench/run.sh generates (BENCH_DIR,
# default /tmp/rollcall-bench), wrk (1 thread) on CPU 1 for SECS seconds (default 5). Loopback
# only; the load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/scenario.sh
. bench/scenario.sh
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
USAGE="usage: bash bench/threads.sh BINARY 304|feed|range64|range1m|whole|page CONNECTIONS"
BIN=${1:?$USAGE}
SCENARIO=${2:?$USAGE}
CONNS=${3:?$USAGE}
SECS=${SECS:-5}
HZ=$(getconf CLK_TCK)
serve_rollcall "$BIN"
scenario "$SCENARIO" "$base" rollcall || { echo "$USAGE" >&2; exit 2; }
# "name user system switches" per thread, summed by name (switches: voluntary context switches,
# each one a time the thread went to sleep and was woken again).
snap() {
  for t in /proc/$pid/task/*; do
    echo "$(tr ' ' _ < "$t/comm") $(sed 's/.*) //' "$t/stat" | awk '{print $12, $13}') $(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")"
  done | awk '{u[$1] += $2; s[$1] += $3; w[$1] += $4} END {for (k in u) print k, u[k], s[k], w[k]}' | sort
}
before=$(snap)
out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$script" "$base" 2>&1)
sleep 1.5
after=$(snap)
n=$(awk '/ requests in / {print $1}' <<<"$out")
echo "$SCENARIO, $CONNS connections, $SECS s: $n requests"
join <(echo "$before") <(echo "$after") | awk -v n="${n:-0}" -v hz="$HZ" -v secs="$SECS" '
  {du = $5 - $2; ds = $6 - $3; dw = $7 - $4; if (n > 0 && du + ds + dw > 0) printf "%-20s user %8.2f  system %8.2f  µs per request  %7.1f wake-ups a second\n", $1, du / hz * 1e6 / n, ds / hz * 1e6 / n, dw / (secs + 1.5)}'
