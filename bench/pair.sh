#!/usr/bin/env bash
# Two rollcall builds under the same load at the same time: CPU per request of B against A.
#
#   REPS=5 SECS=4 bash bench/pair.sh 304|feed|range64|range1m|whole|page CONNECTIONS BINARY_A BINARY_B
#
# Alternating runs (bench/abn.sh) cannot separate a few per cent on a shared VM whose speed moves
# by a third between runs a minute apart. Here both servers run at once on CPU 0, each with its
# own copy of the 5,000-episode catalog's state (BENCH_DIR, default /tmp/rollcall-bench, as
# bench/run.sh generates it) and its own wrk (1 thread each, CPU 1), so whatever slows the machine
# slows both. Each run prints both servers' rates and user+system CPU per request
# (/proc/PID/stat); the last line gives the median of the runs' B/A ratios. Loopback only; every
# load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/scenario.sh
. bench/scenario.sh
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
USAGE="usage: bash bench/pair.sh 304|feed|range64|range1m|whole|page CONNECTIONS BINARY_A BINARY_B"
SCENARIO=${1:?$USAGE}
CONNS=${2:?$USAGE}
A=${3:?$USAGE}
B=${4:?$USAGE}
REPS=${REPS:-5}
SECS=${SECS:-4}
HZ=$(getconf CLK_TCK)
CAT=$DIR/cat5k
[ -f "$CAT/config.toml" ] || { echo "run bash bench/run.sh once first to generate $DIR" >&2; exit 1; }
port=$(sed -n 's/^listen *= *"127.0.0.1:\([0-9]*\)".*/\1/p' "$CAT/config.toml")
[ -n "$port" ] || { echo "no listen address in $CAT/config.toml" >&2; exit 1; }

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # binary side port
  { echo "state_dir = \".rollcall-pair-$2\""; sed -e "s/127.0.0.1:$port/127.0.0.1:$3/" -e '/^state_dir/d' "$CAT/config.toml"; } > "$CAT/config-pair-$2.toml"
  taskset -c 0 "$1" --config "$CAT/config-pair-$2.toml" serve > "$DIR/pair-$2.out" 2> "$DIR/pair-$2.log" &
  PIDS+=($!)
}
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
start "$A" a 18091
start "$B" b 18092
for p in 18091 18092; do
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done
sleep 2 # startup compression and first measurements

echo "$SCENARIO, $CONNS connections each, $SECS s per run, $REPS runs; A=$A B=$B"
ratios=()
for rep in $(seq 1 "$REPS"); do
  a0=$(ticks "${PIDS[0]}"); b0=$(ticks "${PIDS[1]}")
  # Each wrk gets the scenario as its own server answers it (a 304 needs that server's ETag).
  scenario "$SCENARIO" http://127.0.0.1:18091 rollcall
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$script" http://127.0.0.1:18091 > "$DIR/pair-wrk-a" 2>&1 &
  wa=$!
  scenario "$SCENARIO" http://127.0.0.1:18092 rollcall
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$script" http://127.0.0.1:18092 > "$DIR/pair-wrk-b" 2>&1 &
  wb=$!
  wait "$wa" "$wb"
  a1=$(ticks "${PIDS[0]}"); b1=$(ticks "${PIDS[1]}")
  na=$(awk '/ requests in / {print $1}' "$DIR/pair-wrk-a"); nb=$(awk '/ requests in / {print $1}' "$DIR/pair-wrk-b")
  line=$(awk -v ta=$((a1 - a0)) -v tb=$((b1 - b0)) -v na="${na:-0}" -v nb="${nb:-0}" -v hz="$HZ" -v s="$SECS" 'BEGIN {
    ua = (na > 0) ? ta / hz * 1e6 / na : 0; ub = (nb > 0) ? tb / hz * 1e6 / nb : 0
    printf "%.4f A %.0f req/s %.2f us/req, B %.0f req/s %.2f us/req", (ua > 0) ? ub / ua : 0, na / s, ua, nb / s, ub }')
  ratios+=("${line%% *}")
  echo "run $rep: ${line#* } (B/A ${line%% *})"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR] = $1} END {printf "median CPU per request B/A: %.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
