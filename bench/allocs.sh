#!/usr/bin/env bash
# Heap allocations per request on the serving thread, counted exactly: a perf uprobe on
# mimalloc's `mi_malloc_aligned` (what Rust's allocator calls; reallocations go through
# `mi_realloc_aligned`, counted too), read with `perf stat -t` on the server's main thread (the
# async runtime's only worker when it runs on one CPU) during one wrk run.
#
#   bash bench/allocs.sh BINARY 304|feed|range64|range1m|whole|page [CONNECTIONS]
#
# Needs perf with uprobes (root). The server runs on CPU 0 with the catalog bench/run.sh
# generates (BENCH_DIR, default /tmp/rollcall-bench) and is given 3 s to finish its start-up work
# first; wrk (1 thread, CPU 1, default 16 connections) runs 3 s. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/scenario.sh
. bench/scenario.sh
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
USAGE="usage: bash bench/allocs.sh BINARY 304|feed|range64|range1m|whole|page [CONNECTIONS]"
BIN=$(readlink -f "${1:?$USAGE}")
SCENARIO=${2:?$USAGE}
CONNS=${3:-16}
GROUP=rcallocs
perf probe -q -d "$GROUP:*" 2>/dev/null || true
perf probe -q -x "$BIN" -a "$GROUP:malloc=mi_malloc_aligned" -a "$GROUP:realloc=mi_realloc_aligned"
SERVE_CLEANUP="perf probe -q -d '$GROUP:*' 2>/dev/null || true"
serve_rollcall "$BIN" 3
scenario "$SCENARIO" "$base" rollcall || { echo "$USAGE" >&2; exit 2; }
stat=$(mktemp)
perf stat -x, -e "$GROUP:malloc,$GROUP:realloc" -t "$pid" -o "$stat" &
sp=$!
sleep 0.3
n=$(taskset -c 1 wrk -t1 -c"$CONNS" -d3s --timeout 10s -s "$script" "$base" | awk '/ requests in / {print $1}')
sleep 0.3
kill -INT $sp
wait $sp || true
awk -F, -v n="$n" -v s="$SCENARIO" '/rcallocs/ {split($3, a, ":"); printf "%s: %s %.2f per request (%d requests)\n", s, a[2], $1 / n, n}' "$stat"
rm -f "$stat"
