#!/usr/bin/env bash
# Which side limits a scenario: CPU seconds used by each server and by wrk during the same load.
#
#   bash bench/cpu_share.sh [whole30|range64] [CONNECTIONS] [SECONDS]
#
# Needs the data and nginx config bench/run.sh leaves in BENCH_DIR (default /tmp/rollcall-bench)
# and a release build. Both servers run on CPU 0 and wrk (1 thread) on CPU 1, as in the full
# benchmark; nginx and rollcall alternate, twice each. A server far below SECONDS of CPU while wrk
# uses about SECONDS is not the bottleneck. Loopback only; every load lasts SECONDS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
SCENARIO=${1:-whole30}
CONNS=${2:-16}
SECS=${3:-5}
if [ ! -x /usr/bin/time ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends time >/dev/null
fi
[ -f "$DIR/nginx/nginx.conf" ] && [ -f "$DIR/cat5k/config.toml" ] \
  || { echo "run bash bench/run.sh once first to generate $DIR" >&2; exit 1; }

taskset -c 0 nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" -g 'daemon off;' &
npid=$!
: > "$DIR/cpu.out" # emptied before the start: the redirection runs in the child, which the wait below can outrun
taskset -c 0 target/release/rollcall --config "$DIR/cat5k/config.toml" serve > "$DIR/cpu.out" 2> "$DIR/cpu.log" &
rpid=$!
trap 'kill $npid $rpid 2>/dev/null || true' EXIT
until grep -q "listening on" "$DIR/cpu.out" 2>/dev/null; do
  kill -0 $rpid 2>/dev/null || { cat "$DIR/cpu.log" >&2; exit 1; }
  sleep 0.05
done
sleep 2
# Read whole, not piped: grep -m1 would cut curl off, and pipefail end the script.
big() { local feed; feed=$(curl -s "http://127.0.0.1:18081/feeds/big.xml"); grep -o -m1 "/media/$1/[^\"]*\.mp3" <<<"$feed"; }
case $SCENARIO in
  whole30) R_PATH=$(big big30); N_PATH=/big/big30.mp3; script=() ;;
  range64)
    R_PATH=$(big big100); N_PATH=/big/big100.mp3; script=(-s bench/range.lua)
    export BENCH_SIZE=100000000 BENCH_WINDOW=65536 ;;
  *) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
nworker=$(pgrep -P $npid nginx | head -1 || true)
[ -n "$nworker" ] || nworker=$npid

# User plus system clock ticks of every thread of a process.
ticks() {
  local t=0 task
  for task in /proc/"$1"/task/*; do t=$((t + $(awk '{print $14 + $15}' "$task/stat"))); done
  echo "$t"
}
hz=$(getconf CLK_TCK)
for server in nginx rollcall nginx rollcall; do
  if [ $server = nginx ]; then pid=$nworker; port=18080; path=$N_PATH
  else pid=$rpid; port=18081; path=$R_PATH; fi
  before=$(ticks "$pid")
  out=$(BENCH_PATH=$path taskset -c 1 /usr/bin/time -f "wrk cpu %U s user + %S s system" \
    wrk -t1 -c"$CONNS" -d"${SECS}s" "${script[@]}" "http://127.0.0.1:$port$path" 2>&1 \
    | grep -E "Requests/sec|Transfer/sec|wrk cpu" | tr -s ' ' | tr '\n' ';')
  after=$(ticks "$pid")
  echo "$server: server cpu $(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') s; $out"
done
