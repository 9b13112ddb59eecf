#!/usr/bin/env bash
# One quick scenario against rollcall alone, for profiling between full runs of bench/run.sh.
#
#   bash bench/spot.sh 304|feed|range64|range1m|whole|page [CONNECTIONS] [SECONDS]
#
# Needs the data bench/run.sh generates (BENCH_DIR, default /tmp/rollcall-bench) and a release
# build. The server runs on CPU 0 and wrk (1 thread) on CPU 1, as in the full benchmark. With
# PERF=1 it also records a profile of the server to /tmp/rollcall-<scenario>.perf.
# Loopback only; the load lasts SECONDS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/scenario.sh
. bench/scenario.sh
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
SCENARIO=${1:?usage: bash bench/spot.sh 304|feed|range64|range1m|whole|page [connections] [seconds]}
CONNS=${2:-256}
SECS=${3:-5}
PORT=18081
B=http://127.0.0.1:$PORT
[ -f "$DIR/cat5k/config.toml" ] || { echo "run bash bench/run.sh once first to generate $DIR" >&2; exit 1; }

: > "$DIR/spot.out" # emptied before the start: the redirection runs in the child, which the wait below can outrun
taskset -c 0 target/release/rollcall --config "$DIR/cat5k/config.toml" serve > "$DIR/spot.out" 2> "$DIR/spot.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until grep -q "listening on" "$DIR/spot.out" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || { cat "$DIR/spot.log" >&2; exit 1; }
  sleep 0.05
done
sleep 2 # let background compression finish

scenario "$SCENARIO" "$B" rollcall || { echo "unknown scenario $SCENARIO" >&2; exit 2; }

perf_pid=""
if [ "${PERF:-0}" = 1 ]; then
  perf record -F 2999 ${PERF_CG:--g} -p $pid -o "/tmp/rollcall-$SCENARIO.perf" -- sleep "$SECS" >/dev/null 2>&1 &
  perf_pid=$!
fi
taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$script" "$B" | grep -E "Requests/sec|Transfer/sec"
[ -z "$perf_pid" ] || wait "$perf_pid"
