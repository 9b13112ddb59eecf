#!/usr/bin/env bash
# Where a feed poll's CPU goes, thread by thread: the public feed's 304 against an officer's
# personal feed 304, on the 5,000-episode catalog `bash bench/personal.sh` generates (run that
# once first). The release server runs on CPU 0, `wrk -t1 -c16` on CPU 1, loopback only. Each
# thread's user+system ticks (`/proc/PID/task/TID/stat`, summed by thread name) are read before
# and 1.5 s after each run, so the consumers have caught up, and divided by the requests served.
# Usage: bash bench/personal_threads.sh [REPS]   Env: BIN (default target/release/rollcall),
# BENCH_SECONDS (default 5), BENCH_DIR (default /tmp/rollcall-bench-personal), BENCH_CONNS (default 16).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/rollcall-bench-personal}
BIN=${BIN:-$REPO/target/release/rollcall}
SECS=${BENCH_SECONDS:-5}
REPS=${1:-2}
PORT=18097
CAT=$DIR/cat5k
[ -f "$CAT/.complete" ] || { echo "no catalog in $CAT: run bash bench/personal.sh once" >&2; exit 1; }
. "$REPO/bench/personal_server.sh"
etag() { curl -sI "http://127.0.0.1:$PORT$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }
P_ETAG=$(etag /feeds/bench.xml); M_ETAG=$(etag "$PERSONAL")
sleep 4   # the start's background compression is done
HZ=$(getconf CLK_TCK)
snap() {
  for t in /proc/$PID/task/*; do
    echo "$(tr ' ' _ < "$t/comm") $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
for rep in $(seq "$REPS"); do
  for which in public personal; do
    if [ $which = public ]; then P=/feeds/bench.xml; E=$P_ETAG; else P=$PERSONAL; E=$M_ETAG; fi
    snap > "$DIR/t0"
    out=$(BENCH_PATH=$P BENCH_INM=$E taskset -c 1 wrk -t1 -c"${BENCH_CONNS:-16}" -d"${SECS}s" -s "$REPO/bench/headers.lua" "http://127.0.0.1:$PORT")
    sleep 1.5
    snap > "$DIR/t1"
    reqs=$(awk '/ requests in / {print $1}' <<<"$out")
    echo "run $rep, $which 304: $reqs requests"
    join "$DIR/t0" "$DIR/t1" | awk -v r="$reqs" -v hz="$HZ" '{d = $3 - $2; if (d > 0) printf "  %-16s %5d ticks %6.2f us/request\n", $1, d, d * 1e6 / hz / r}'
  done
done
