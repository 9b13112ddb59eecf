#!/usr/bin/env bash
# A/B of two rollcall binaries on the same data: CPU per request and throughput, alternating.
#
#   REPS=3 SECS=4 WINDOWS="65536 1048576" CONNS="16 256" bash bench/ab.sh BINARY_A BINARY_B
#
# Each run starts the binary on CPU 0 with the 5,000-episode catalog bench/run.sh generates
# (BENCH_DIR, default /tmp/rollcall-bench), sends random single ranges of WINDOW bytes of the
# 100 MB file with wrk (1 thread, CPU 1) for SECS seconds, and reads the server's user+system time
# from /proc/PID/stat before and after. A and B alternate, so drift on a noisy machine hits both.
# Loopback only; every load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
A=${1:?usage: bash bench/ab.sh BINARY_A BINARY_B}
B=${2:?usage: bash bench/ab.sh BINARY_A BINARY_B}
REPS=${REPS:-3}
SECS=${SECS:-4}
HZ=$(getconf CLK_TCK)
[ -f "$DIR/cat5k/config.toml" ] || { echo "run bash bench/run.sh once first to generate $DIR" >&2; exit 1; }
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
one() { # binary connections window -> "X us/req Y req/s"
  taskset -c 0 "$1" --config "$DIR/cat5k/config.toml" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do curl -s -o /dev/null http://127.0.0.1:18081/healthz && break; sleep 0.05; done
  sleep 1.5 # let startup compression finish
  local path t0 t1 out n
  feed=$(curl -s http://127.0.0.1:18081/feeds/big.xml) # not piped: grep -m1 would cut curl off, and pipefail end the script
  path=$(grep -o -m1 "/media/big100/[^\"]*\.mp3" <<<"$feed")
  t0=$(ticks $pid)
  out=$(BENCH_PATH=$path BENCH_SIZE=100000000 BENCH_WINDOW=$3 taskset -c 1 wrk -t1 -c"$2" -d"${SECS}s" \
    --timeout 10s -s bench/range.lua http://127.0.0.1:18081 2>&1)
  t1=$(ticks $pid)
  kill $pid; wait $pid 2>/dev/null || true
  n=$(awk '/ requests in / {print $1}' <<<"$out")
  awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" -v s="$SECS" 'BEGIN {printf "%.1f us/req %.0f req/s\n", t / hz * 1e6 / n, n / s}'
}
for w in ${WINDOWS:-65536}; do
  for c in ${CONNS:-16 256}; do
    for _ in $(seq 1 "$REPS"); do
      echo "window=$w connections=$c A $(one "$A" "$c" "$w")"
      echo "window=$w connections=$c B $(one "$B" "$c" "$w")"
    done
  done
done
