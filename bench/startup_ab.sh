#!/usr/bin/env bash
# Startup time of two builds on the same catalog, alternating, so a noisy machine hits both alike.
# Usage: bash bench/startup_ab.sh BIN_A BIN_B [CATALOG_DIR] [RUNS]
# CATALOG_DIR defaults to the 100,000-episode catalog that `bash bench/run.sh` generates
# (/tmp/rollcall-bench/cat100000); both builds start warm (after one start each that is not
# counted). Prints each run's time to the `listening on` line and the server's own
# load_ms/render_ms, then the medians.
set -euo pipefail
A=$1; B=$2; C=${3:-/tmp/rollcall-bench/cat100000}; RUNS=${4:-3}
[ -f "$C/config.toml" ] || { echo "no catalog at $C: run BENCH_PARTS=scale bash bench/run.sh first" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
start_once() { # bin -> prints "ms load_ms render_ms"
  local t0 pid ms
  : > "$OUT/out" # emptied before the start: the redirection runs in the child, which the wait below can outrun
  t0=$(date +%s%N)
  "$1" --config "$C/config.toml" serve > "$OUT/out" 2> "$OUT/log" &
  pid=$!
  until grep -q "listening on" "$OUT/out" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { cat "$OUT/log" >&2; exit 1; }
    sleep 0.01
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  # Let it write what a start saves for the next (a build without that has no such thread).
  for _ in $(seq 600); do grep -qs save-caches /proc/$pid/task/*/comm || break; sleep 0.1; done
  kill $pid; wait $pid 2>/dev/null || true
  echo "$ms $(grep -o 'load_ms=[0-9]*' "$OUT/log" | cut -d= -f2) $(grep -o 'render_ms=[0-9]*' "$OUT/log" | cut -d= -f2)"
}
start_once "$A" > /dev/null; start_once "$B" > /dev/null
declare -a RA RB
for i in $(seq "$RUNS"); do
  a=$(start_once "$A"); b=$(start_once "$B")
  echo "run $i: A $a | B $b  (startup_ms load_ms render_ms)"
  RA+=("${a%% *}"); RB+=("${b%% *}")
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "median startup: A $(median "${RA[@]}") ms, B $(median "${RB[@]}") ms"
