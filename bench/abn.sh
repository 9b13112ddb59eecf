#!/usr/bin/env bash
# Alternating runs of rollcall binaries (and nginx) on one scenario: CPU per request and rate.
#
#   REPS=3 SECS=5 bash bench/abn.sh 304|feed|range64|range1m|whole|page CONNECTIONS BINARY|nginx|nginx-nolog ...
#
# `nginx-nolog` is the same nginx with `access_log off`, the configuration issue 4 named; bench/run.sh
# has nginx write a buffered access log, as rollcall always does, so that both do the same work.
# For example `bash bench/abn.sh 304 256 nginx /tmp/rc-a /tmp/rc-b`. Each run starts one server on
# CPU 0 with the 5,000-episode catalog and the nginx configuration bench/run.sh generates
# (BENCH_DIR, default /tmp/rollcall-bench), drives it with wrk (1 thread, CPU 1) for SECS seconds,
# and divides the server's user+system time (/proc/PID/stat, nginx's master and worker) by the
# requests wrk completed. Servers alternate within each of REPS rounds, so drift on a noisy
# machine hits all of them. Loopback only; every load is bounded in time.
# Each line also gives CPU 0's whole busy time per request (`/proc/stat`: user, nice, system, irq
# and softirq, whoever ran), and of that the softirq time and `ksoftirqd/0`'s own: on loopback the
# receiving side of each segment the server sends runs in softirq on the server's CPU, charged to
# the server's system time when it runs inline but to nobody's process once the kernel defers it
# to ksoftirqd, which it does under heavy sends.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/scenario.sh
. bench/scenario.sh
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
USAGE="usage: bash bench/abn.sh 304|feed|range64|range1m|whole|page CONNECTIONS BINARY|nginx|nginx-nolog ..."
SCENARIO=${1:?$USAGE}
CONNS=${2:?$USAGE}
shift 2
[ $# -gt 0 ] || { echo "$USAGE" >&2; exit 2; }
REPS=${REPS:-3}
SECS=${SECS:-5}
HZ=$(getconf CLK_TCK)
[ -f "$DIR/cat5k/config.toml" ] && [ -f "$DIR/nginx/nginx.conf" ] ||
  { echo "run bash bench/run.sh once first to generate $DIR" >&2; exit 1; }
# "user system" clock ticks of the given processes, all threads included.
ticks() { local u=0 s=0 p us; for p in "$@"; do us=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12, $13}'); u=$((u + ${us% *})); s=$((s + ${us#* })); done; echo "$u $s"; }
# A server still running when the script ends (an error, Ctrl-C) is stopped with it.
RUNNING=
trap '[ -z "$RUNNING" ] || kill "$RUNNING" 2>/dev/null || true' EXIT
# CPU 0's "busy softirq" clock ticks from /proc/stat (busy: user, nice, system, irq and softirq).
cpu0() { awk '$1 == "cpu0" {print $2 + $3 + $4 + $7 + $8, $8}' /proc/stat; }
KSOFTIRQD=$(pgrep -x ksoftirqd/0 || true)
ksoft() { if [ -n "$KSOFTIRQD" ]; then sed 's/.*) //' "/proc/$KSOFTIRQD/stat" | awk '{print $12 + $13}'; else echo 0; fi; }
up() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1/" && return 0; sleep 0.05; done; return 1; }

one() { # server -> "label rate cpu"
  local server=$1 base pid pids script
  if [ "$server" = nginx ] || [ "$server" = nginx-nolog ]; then
    base=http://127.0.0.1:18080
    local conf=$DIR/nginx/nginx.conf
    if [ "$server" = nginx-nolog ]; then
      conf=$DIR/nginx/nginx-nolog.conf
      sed 's|^  access_log .*|  access_log off;|' "$DIR/nginx/nginx.conf" > "$conf"
    fi
    taskset -c 0 nginx -c "$conf" -p "$DIR/nginx" -g 'daemon off;' &
    pid=$!
    RUNNING=$pid
    up $base
    pids="$pid $(pgrep -P $pid | tr '\n' ' ')"
  else
    base=http://127.0.0.1:18081
    taskset -c 0 "$server" --config "$DIR/cat5k/config.toml" serve >/dev/null 2>&1 &
    pid=$!
    RUNNING=$pid
    pids=$pid
    up $base
    sleep 1.5 # let startup compression finish
  fi
  scenario "$SCENARIO" "$base" "$server" || { echo "$USAGE" >&2; kill "$pid"; exit 2; }
  local t0 t1 c0 c1 k0 k1 out n rate u s
  # shellcheck disable=SC2086
  t0=$(ticks $pids); c0=$(cpu0); k0=$(ksoft)
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$script" "$base" 2>&1)
  # shellcheck disable=SC2086
  t1=$(ticks $pids); c1=$(cpu0); k1=$(ksoft)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  RUNNING=
  n=$(awk '/ requests in / {print $1}' <<<"$out")
  rate=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  u=$((${t1% *} - ${t0% *}))
  s=$((${t1#* } - ${t0#* }))
  awk -v s="$server" -v r="$rate" -v u="$u" -v k="$s" -v n="${n:-0}" -v hz="$HZ" \
    -v busy=$((${c1% *} - ${c0% *})) -v soft=$((${c1#* } - ${c0#* })) -v ks=$((k1 - k0)) \
    'BEGIN {f = (n > 0) ? 1e6 / hz / n : 0
            printf "%-28s %9s req/s %8.2f us/req (user %.2f, system %.2f); CPU 0 busy %.2f (softirq %.2f, ksoftirqd %.2f)\n", s, r, (u + k) * f, u * f, k * f, busy * f, soft * f, ks * f}'
}

echo "$SCENARIO, $CONNS connections, $SECS s per run, $REPS rounds"
for _ in $(seq 1 "$REPS"); do
  for s in "$@"; do one "$s"; done
done
