#!/usr/bin/env bash
# A flat profile of one scenario, for comparing per request with bench/flat_diff.py:
# `perf record -F 2999` of the whole server process for 4 s in the middle of an 8 s wrk run.
#
#   bash bench/flat.sh BINARY 304|feed|range64|range1m|whole|page CONNECTIONS NAME
#
# With THREAD=NAME (a thread's name, such as measurement or access-log), only that thread is
# recorded. Prints wrk's rate and the recorded CPU in µs per request (perf's cpu-clock event count
# divided by the requests of the 4 s).
# Writes /tmp/flat-NAME.data and /tmp/flat-NAME.wrk (wrk's output, for the request rate). The
# server runs on CPU 0 with the catalog bench/run.sh generates (BENCH_DIR, default
# /tmp/rollcall-bench), wrk (1 thread) on CPU 1. Loopback only; the load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/scenario.sh
. bench/scenario.sh
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
USAGE="usage: bash bench/flat.sh BINARY 304|feed|range64|range1m|whole|page CONNECTIONS NAME"
BIN=${1:?$USAGE}
SCENARIO=${2:?$USAGE}
CONNS=${3:?$USAGE}
NAME=${4:?$USAGE}
serve_rollcall "$BIN"
scenario "$SCENARIO" "$base" rollcall || { echo "$USAGE" >&2; exit 2; }
taskset -c 1 wrk -t1 -c"$CONNS" -d8s --timeout 10s -s "$script" "$base" > "/tmp/flat-$NAME.wrk" 2>&1 &
wp=$!
sleep 2
target=(-p "$pid")
if [ -n "${THREAD:-}" ]; then
  tid=$(for t in /proc/$pid/task/*; do [ "$(cat "$t/comm")" = "$THREAD" ] && basename "$t"; done | head -1 || true)
  [ -n "$tid" ] || { echo "no thread named $THREAD" >&2; exit 2; }
  target=(-t "$tid")
fi
perf record -q -F 2999 ${PERF_CG:-} "${target[@]}" -o "/tmp/flat-$NAME.data" -- sleep 4 >/dev/null 2>&1
wait $wp
rate=$(awk '/^Requests\/sec/ {print $2}' "/tmp/flat-$NAME.wrk")
events=$(perf report -i "/tmp/flat-$NAME.data" --stdio 2>/dev/null | awk '/Event count/ && !n++ {print $NF}')
awk -v r="$rate" -v e="${events:-0}" 'BEGIN {printf "Requests/sec %s; recorded CPU %.2f µs per request\n", r, e / 1000 / (r * 4)}'

