#!/usr/bin/env bash
# Benchmarks rollcall against nginx on the same files, in the same run, and writes BENCHMARKS.md.
#
#   bash bench/run.sh
#
# Environment: BENCH_PARTS (default "throughput measurement personal memory scale"), BENCH_MEASURE_REPS
# (runs per side in the measurement part, default 5), BENCH_DIR (data, default
# /tmp/rollcall-bench, outside the repo), BENCH_SECONDS (per
# wrk run, default 5), BENCH_REPS (alternating runs per scenario, default 3), BENCH_SCALE=0 to skip
# the 1k/10k/100k catalog-scale part, BENCH_OUT (default BENCHMARKS.md), BENCH_NO_BUILD=1 to use the
# existing target/release/rollcall instead of running `cargo build --release`.
# All traffic goes to 127.0.0.1; every load is bounded in time or count.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DIR=${BENCH_DIR:-/tmp/rollcall-bench}
SECS=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
SCALE=${BENCH_SCALE:-1}
PARTS=${BENCH_PARTS:-throughput measurement personal memory scale}
OUT=${BENCH_OUT:-$REPO/BENCHMARKS.md}
NGINX_PORT=18080
ROLL_PORT=18081
# The same catalog served with download measurement off, for the measurement part.
OFF_PORT=18082
SERVER_CPU=0
CLIENT_CPU=1

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
has_part() { [[ " $PARTS " == *" $1 "* ]]; }

# --- tools -------------------------------------------------------------------------------------
need=()
for t in nginx wrk ffmpeg taskset python3 curl; do
  command -v "$t" >/dev/null 2>&1 || case $t in
    taskset) need+=(util-linux) ;; python3) need+=(python3) ;; *) need+=("$t") ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
ulimit -n "$(ulimit -Hn)"
BIN=$REPO/target/release/rollcall
if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
  [ -x "$BIN" ] || { echo "BENCH_NO_BUILD=1 but $BIN does not exist" >&2; exit 1; }
  log "using the existing $BIN (BENCH_NO_BUILD=1)"
else
  log "building release binary"
  cargo build --release -q
fi

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- data --------------------------------------------------------------------------------------
mkdir -p "$DIR"
if [ ! -f "$DIR/tiny.mp3" ]; then
  ffmpeg -v error -y -f lavfi -i "sine=frequency=440:duration=2" -ac 1 -c:a libmp3lame -b:a 32k "$DIR/tiny.mp3"
fi
make_big() { # name bytes
  if [ ! -f "$DIR/$1.mp3" ] || [ "$(stat -c %s "$DIR/$1.mp3")" != "$2" ]; then
    log "writing $DIR/$1.mp3 ($2 bytes of MP3 frames)"
    python3 - "$REPO/episodes/defining-de-escalation/audio.mp3" "$DIR/$1.mp3" "$2" <<'PY'
import sys
src, dst, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk = open(src, "rb").read()
with open(dst, "wb") as f:
    left = size
    while left > 0:
        f.write(chunk[:left]); left -= min(left, len(chunk))
PY
  fi
}
make_big big30 30000000
make_big big100 100000000
ART=$REPO/feeds/defusing-difficult-encounters.jpg

gen() { # dir episodes [big files]
  if [ ! -f "$1/.complete-$2" ]; then
    log "generating a $2-episode catalog in $1"
    rm -rf "$1"
    python3 "$REPO/bench/gen_catalog.py" "$1" "$2" "$DIR/tiny.mp3" "$ART" "${@:3}"
    touch "$1/.complete-$2"
  fi
}
write_config() { # dir port
  cat > "$1/config.toml" <<EOF
public_url = "http://127.0.0.1:$2"
listen = "127.0.0.1:$2"
[server]
max_connections = 19000
EOF
}

CAT=$DIR/cat5k
gen "$CAT" 5000 big30="$DIR/big30.mp3" big100="$DIR/big100.mp3"
write_config "$CAT" "$ROLL_PORT"
# Measurement off: its own state folder (and database), nothing else different.
{ echo 'state_dir = ".rollcall-off"'; sed -e "s/$ROLL_PORT/$OFF_PORT/g" "$CAT/config.toml"; printf '[measurement]\nenabled = false\n'; } > "$CAT/config-off.toml"
rm -rf "$CAT/.rollcall/rollcall.db"* "$CAT/.rollcall-off/rollcall.db"*

# nginx serves a static export of the same catalog plus the same big files.
WWW=$DIR/www
rm -rf "$WWW"
"$BIN" --config "$CAT/config.toml" build --out "$WWW" >/dev/null
mkdir -p "$WWW/big"
ln -f "$DIR/big30.mp3" "$WWW/big/big30.mp3"
ln -f "$DIR/big100.mp3" "$WWW/big/big100.mp3"
gzip -6 -k -f "$WWW/feeds/bench.xml"
mkdir -p "$DIR/nginx/logs"
cat > "$DIR/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/logs/error.log warn;
events { worker_connections 19000; }
http {
  types { application/rss+xml xml; audio/mpeg mp3; image/jpeg jpg; }
  default_type text/html;
  sendfile on;
  tcp_nopush off;
  etag on;
  # The same work as rollcall, which writes an access line per request in 100 ms batches.
  access_log $DIR/nginx/logs/access.log combined buffer=256k flush=100ms;
  keepalive_requests 1000000;
  gzip_static on;
  gzip_vary on;
  client_body_temp_path $DIR/nginx/tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WWW;
  }
}
EOF
mkdir -p "$DIR/nginx/tmp"

wait_port() { for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

log "starting nginx and rollcall on CPU $SERVER_CPU"
taskset -c $SERVER_CPU nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" -g 'daemon off;' &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
taskset -c $SERVER_CPU "$BIN" --config "$CAT/config.toml" serve > "$DIR/rollcall.out" 2> "$DIR/rollcall.log" &
ROLL_PID=$!; PIDS+=("$ROLL_PID")
wait_port $NGINX_PORT; wait_port $ROLL_PORT

big_path() { curl -s "http://127.0.0.1:$ROLL_PORT/feeds/big.xml" > "$DIR/big.xml"; grep -o -m1 "/media/$1/[^\"]*\.mp3" "$DIR/big.xml"; }
R_BIG100=$(big_path big100); R_BIG30=$(big_path big30)
[ -n "$R_BIG100" ] && [ -n "$R_BIG30" ] || { echo "could not find the big files in rollcall's feed" >&2; exit 1; }
N_BIG100=/big/big100.mp3; N_BIG30=/big/big30.mp3
FEED=/feeds/bench.xml
R_ETAG=$(curl -sI "http://127.0.0.1:$ROLL_PORT$FEED" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
N_ETAG=$(curl -sI "http://127.0.0.1:$NGINX_PORT$FEED" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
FEED_BYTES=$(curl -s "http://127.0.0.1:$ROLL_PORT$FEED" | wc -c)
# nginx serves a static copy of the same episode page (and its gzip twin for gzip_static).
PAGE=/episodes/briefing-000001
mkdir -p "$WWW/episodes"
curl -s "http://127.0.0.1:$ROLL_PORT$PAGE" > "$WWW$PAGE"
gzip -6 -k -f "$WWW$PAGE"
cmp <(curl -s "http://127.0.0.1:$ROLL_PORT$PAGE") <(curl -s "http://127.0.0.1:$NGINX_PORT$PAGE")
# Sanity: both servers send the same feed bytes and the same file bytes.
cmp <(curl -s "http://127.0.0.1:$ROLL_PORT$FEED") <(curl -s "http://127.0.0.1:$NGINX_PORT$FEED")
cmp <(curl -s -r 5000000-5065535 "http://127.0.0.1:$ROLL_PORT$R_BIG100") <(curl -s -r 5000000-5065535 "http://127.0.0.1:$NGINX_PORT$N_BIG100")

# --- throughput --------------------------------------------------------------------------------
nginx_pids() { echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; }
HZ=$(getconf CLK_TCK)
# cpu_ticks PID... -> user+system clock ticks used so far by these processes, all their threads
# included (fields 14 and 15 of /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done
  echo "$t"
}
# run_wrk PORT CONNS LUA "K=V ..." "SERVER PIDS" -> prints "req_per_sec mb_per_sec cpu_us_per_req errors"
# The server's CPU time is sampled right before and right after the wrk run and divided by the
# requests wrk completed in it.
run_wrk() {
  local out rps mbs reqs cpu errs t0 t1
  # This VM takes page cache away from idle files within minutes (fincore showed the 100 MB file
  # at 72 KB cached between runs): read the big files back first, so that every run of either
  # server starts from a cached file instead of measuring whichever disk reads it happens to meet.
  cat "$DIR/big100.mp3" "$DIR/big30.mp3" > /dev/null
  t0=$(cpu_ticks $5)
  # shellcheck disable=SC2086
  out=$(env $4 taskset -c $CLIENT_CPU wrk -t1 -c"$2" -d"${SECS}s" --timeout 10s -s "$3" "http://127.0.0.1:$1" 2>&1)
  t1=$(cpu_ticks $5)
  reqs=$(awk '/ requests in / {print $1}' <<<"$out")
  echo "${reqs:-0}" > "$DIR/last_reqs"
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="${reqs:-0}" 'BEGIN {printf "%.1f", (n > 0) ? t / hz * 1e6 / n : 0}')
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  mbs=$(awk '/^Transfer\/sec/ {v=$2; if (v ~ /GB/) {sub("GB","",v); v*=1024} else if (v ~ /MB/) {sub("MB","",v)} else if (v ~ /KB/) {sub("KB","",v); v/=1024} else {sub("B","",v); v/=1048576}; printf "%.1f", v}' <<<"$out")
  errs=$(awk '/Non-2xx or 3xx/ {printf "non2xx=%s ", $5} /Socket errors/ {gsub(/ /,""); printf "%s ", $0}' <<<"$out")
  echo "${rps:-0} ${mbs:-0} $cpu ${errs:-}"
}
# wrk_bytes FILE -> the bytes wrk read in a run (complete and partial responses alike), from its
# "N requests in Ts, X.XXGB read" line.
wrk_bytes() {
  awk '/ requests in / {v = $5; u = v; gsub(/[0-9.]/, "", u); sub(/[A-Z]+$/, "", v)
    m = (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : (u == "TB") ? 1099511627776 : 1
    printf "%.0f\n", v * m}' "$1"
}
# run_both CONNS LUA "NGINX K=V ..." "ROLLCALL K=V ..." [bytes|requests] [mbs|rps] -> "nginx_cpu
# rollcall_cpu nginx_rate rollcall_rate" (rates in bytes wrk read per second, or with `rps` requests), with
# both servers loaded at once, each by its own wrk: the servers share CPU $SERVER_CPU and the
# clients CPU $CLIENT_CPU, so whatever else the machine does in those seconds hits both alike
# (alternating runs a minute apart differ by up to a third on this VM). CPU per request, or with
# `bytes` CPU per byte wrk read: for large bodies, of which a run completes few, each server's
# responses still in flight at the end would otherwise weigh on it unevenly.
run_both() {
  local n0 r0 n1 r1 w1 w2
  cat "$DIR/big100.mp3" "$DIR/big30.mp3" > /dev/null
  # shellcheck disable=SC2046 # the PIDs are words
  n0=$(cpu_ticks $(nginx_pids)); r0=$(cpu_ticks "$ROLL_PID")
  # shellcheck disable=SC2086
  (env $3 taskset -c $CLIENT_CPU wrk -t1 -c"$1" -d"${SECS}s" --timeout 10s -s "$2" "http://127.0.0.1:$NGINX_PORT" > "$DIR/wrk-both-n.txt" 2>&1) &
  w1=$!
  # shellcheck disable=SC2086
  (env $4 taskset -c $CLIENT_CPU wrk -t1 -c"$1" -d"${SECS}s" --timeout 10s -s "$2" "http://127.0.0.1:$ROLL_PORT" > "$DIR/wrk-both-r.txt" 2>&1) &
  w2=$!
  wait "$w1" "$w2"
  # shellcheck disable=SC2046
  n1=$(cpu_ticks $(nginx_pids)); r1=$(cpu_ticks "$ROLL_PID")
  # What each client got: requests and bytes read. CPU is per request, or (`bytes`) per byte; the
  # rates are bytes read per second, or (`rps`, the 304s) requests.
  local qn qr bn br nn nr rn rr
  qn=$(awk '/ requests in / {print $1}' "$DIR/wrk-both-n.txt"); qr=$(awk '/ requests in / {print $1}' "$DIR/wrk-both-r.txt")
  bn=$(wrk_bytes "$DIR/wrk-both-n.txt"); br=$(wrk_bytes "$DIR/wrk-both-r.txt")
  if [ "${5:-}" = bytes ]; then nn=$bn nr=$br; else nn=$qn nr=$qr; fi
  if [ "${6:-}" = rps ]; then rn=$qn rr=$qr; else rn=$bn rr=$br; fi
  awk -v a=$((n1 - n0)) -v b=$((r1 - r0)) -v na="${nn:-0}" -v nb="${nr:-0}" -v hz="$HZ" -v rn="${rn:-0}" -v rr="${rr:-0}" -v s="$SECS" \
    'BEGIN {printf "%.6g %.6g %.6g %.6g\n", (na > 0) ? a / hz * 1e6 / na : 0, (nb > 0) ? b / hz * 1e6 / nb : 0, rn / s, rr / s}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

ROWS=()
scenario() {
  has_part throughput || return 0 # label lua nginx-env rollcall-env metric   (env as "K=V K=V"; metric rps or mbs)
  local label=$1 lua=$2 nenv=$3 renv=$4 metric=${5:-mbs} cpu_by=${6:-requests}
  for c in 16 256; do
    local n_rps=() r_rps=() n_mb=() r_mb=() n_cpu=() r_cpu=() errs=""
    for rep in $(seq 1 "$REPS"); do
      # Alternate which server goes first.
      local order="n r"; [ $((rep % 2)) -eq 0 ] && order="r n"
      for s in $order; do
        local res rps mb cpu err
        if [ "$s" = n ]; then res=$(run_wrk $NGINX_PORT "$c" "$lua" "$nenv" "$(nginx_pids)")
        else res=$(run_wrk $ROLL_PORT "$c" "$lua" "$renv" "$ROLL_PID"); fi
        read -r rps mb cpu err <<<"$res"
        if [ "$s" = n ]; then n_rps+=("$rps"); n_mb+=("$mb"); n_cpu+=("$cpu")
        else r_rps+=("$rps"); r_mb+=("$mb"); r_cpu+=("$cpu"); fi
        [ -n "${err:-}" ] && errs="$errs $s:$err"
      done
    done
    # The same load on both servers at once: CPU per request, and what each client got.
    local both=() both_rate=()
    for rep in $(seq 1 "$REPS"); do
      local bn br rn rr
      read -r bn br rn rr <<<"$(run_both "$c" "$lua" "$nenv" "$renv" "$cpu_by" "$metric")"
      both+=("$(awk -v a="$br" -v b="$bn" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')")
      both_rate+=("$(awk -v a="$rr" -v b="$rn" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')")
    done
    local nm rm nmb rmb ncpu rcpu ratio cpu_ratio both_ratio both_rate_ratio
    both_ratio=$(printf '%s\n' "${both[@]}" | median | awk '{printf "%.2f", $1}')
    both_rate_ratio=$(printf '%s\n' "${both_rate[@]}" | median | awk '{printf "%.2f", $1}')
    nm=$(printf '%s\n' "${n_rps[@]}" | median); rm=$(printf '%s\n' "${r_rps[@]}" | median)
    nmb=$(printf '%s\n' "${n_mb[@]}" | median); rmb=$(printf '%s\n' "${r_mb[@]}" | median)
    ncpu=$(printf '%s\n' "${n_cpu[@]}" | median); rcpu=$(printf '%s\n' "${r_cpu[@]}" | median)
    cpu_ratio=$(awk -v a="$rcpu" -v b="$ncpu" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
    # Ratios compare bytes delivered per second (wrk counts partial responses too), except for
    # 304s, which have no body and compare requests per second.
    if [ "$metric" = rps ]; then
      ratio=$(awk -v a="$rm" -v b="$nm" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
    else
      ratio=$(awk -v a="$rmb" -v b="$nmb" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
    fi
    log "$label c=$c nginx=$nm rollcall=$rm ratio=$ratio cpu-us/req nginx=$ncpu rollcall=$rcpu ratio=$cpu_ratio at-once=$both_ratio (${both[*]}) throughput-at-once=$both_rate_ratio (${both_rate[*]}) ${errs}"
    ROWS+=("| $label | $c | $nm | $rm | $nmb | $rmb | **$ratio** | **$both_rate_ratio** | $ncpu | $rcpu | **$cpu_ratio** | **$both_ratio** | ${errs:-none} |")
  done
}

L=$REPO/bench
scenario "64 KiB ranges, 100 MB file" "$L/range.lua" "BENCH_PATH=$N_BIG100 BENCH_SIZE=100000000 BENCH_WINDOW=65536" "BENCH_PATH=$R_BIG100 BENCH_SIZE=100000000 BENCH_WINDOW=65536"
scenario "1 MiB ranges, 100 MB file" "$L/range.lua" "BENCH_PATH=$N_BIG100 BENCH_SIZE=100000000 BENCH_WINDOW=1048576" "BENCH_PATH=$R_BIG100 BENCH_SIZE=100000000 BENCH_WINDOW=1048576" mbs bytes
scenario "whole 30 MB file" "$L/headers.lua" "BENCH_PATH=$N_BIG30" "BENCH_PATH=$R_BIG30" mbs bytes
scenario "5,000-episode feed" "$L/headers.lua" "BENCH_PATH=$FEED" "BENCH_PATH=$FEED" mbs bytes
scenario "5,000-episode feed, gzip" "$L/headers.lua" "BENCH_PATH=$FEED BENCH_AE=gzip" "BENCH_PATH=$FEED BENCH_AE=gzip"
scenario "5,000-episode feed, 304" "$L/headers.lua" "BENCH_PATH=$FEED BENCH_INM=$N_ETAG" "BENCH_PATH=$FEED BENCH_INM=$R_ETAG" rps
scenario "episode page, gzip" "$L/headers.lua" "BENCH_PATH=$PAGE BENCH_AE=gzip" "BENCH_PATH=$PAGE BENCH_AE=gzip"

# --- the cost of measurement --------------------------------------------------------------------
# The same 64 KiB range load on the same catalog, measurement on (the server above, which stores
# an event for every response and counts downloads) against measurement off, alternating.
MEASURE_ROWS=()
# thread_ticks PID NAME -> clock ticks used so far by PID's threads called NAME
thread_ticks() {
  local t=0 task
  for task in /proc/"$1"/task/*; do
    [ "$(cat "$task/comm")" = "$2" ] && t=$((t + $(sed 's/.*) //' "$task/stat" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
metric_value() { curl -s "http://127.0.0.1:$ROLL_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# More runs than the other parts: the difference sought is a few percent.
MREPS=${BENCH_MEASURE_REPS:-5}
if has_part measurement; then
  # Both sides start fresh, at the same time: a server that has just streamed the throughput
  # part's 21 MB feeds and 30 MB files carries that history (its heap), which would be charged to
  # measurement. The measuring side keeps its database, grown by the runs above.
  kill "$ROLL_PID"; wait "$ROLL_PID" 2>/dev/null || true
  taskset -c $SERVER_CPU "$BIN" --config "$CAT/config.toml" serve > "$DIR/rollcall.out" 2>> "$DIR/rollcall.log" &
  ROLL_PID=$!; PIDS+=("$ROLL_PID")
  taskset -c $SERVER_CPU "$BIN" --config "$CAT/config-off.toml" serve > "$DIR/rollcall-off.out" 2> "$DIR/rollcall-off.log" &
  OFF_PID=$!; PIDS+=("$OFF_PID")
  wait_port $ROLL_PORT; wait_port $OFF_PORT
  events0=$(metric_value rollcall_measurement_events_total); dropped0=$(metric_value rollcall_measurement_events_dropped_total)
  for c in 16 256; do
    ratios=(); on_cpu=(); off_cpu=(); cpu_ratios=(); thread_us=(); errs=""
    for rep in $(seq 1 "$MREPS"); do
      # Both at once, each with its own wrk: the two servers share CPU $SERVER_CPU and the two
      # clients CPU $CLIENT_CPU, so whatever else the machine does hits both alike.
      a0=$(cpu_ticks "$ROLL_PID"); b0=$(cpu_ticks "$OFF_PID"); m0=$(thread_ticks "$ROLL_PID" measurement)
      (BENCH_PATH=$R_BIG100 BENCH_SIZE=100000000 BENCH_WINDOW=65536 taskset -c $CLIENT_CPU wrk -t1 -c"$c" -d"${SECS}s" --timeout 10s -s "$L/range.lua" "http://127.0.0.1:$ROLL_PORT" > "$DIR/wrk-on.txt" 2>&1) &
      w1=$!
      (BENCH_PATH=$R_BIG100 BENCH_SIZE=100000000 BENCH_WINDOW=65536 taskset -c $CLIENT_CPU wrk -t1 -c"$c" -d"${SECS}s" --timeout 10s -s "$L/range.lua" "http://127.0.0.1:$OFF_PORT" > "$DIR/wrk-off.txt" 2>&1) &
      w2=$!
      wait "$w1" "$w2"
      # The measurement thread writes its last batch up to a second after the load stops.
      sleep 1.5
      a1=$(cpu_ticks "$ROLL_PID"); b1=$(cpu_ticks "$OFF_PID"); m1=$(thread_ticks "$ROLL_PID" measurement)
      na=$(awk '/ requests in / {print $1}' "$DIR/wrk-on.txt"); nb=$(awk '/ requests in / {print $1}' "$DIR/wrk-off.txt")
      for f in on off; do
        e=$(awk '/Non-2xx or 3xx/ {printf "non2xx=%s ", $5} /Socket errors/ {gsub(/ /,""); printf "%s ", $0}' "$DIR/wrk-$f.txt")
        [ -n "$e" ] && errs="$errs $f:$e"
      done
      per() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1e6 / n : 0}'; }
      on_cpu+=("$(per $((a1 - a0)) "$na")"); off_cpu+=("$(per $((b1 - b0)) "$nb")")
      thread_us+=("$(per $((m1 - m0)) "$na")")
      ratios+=("$(awk -v a="$na" -v b="$nb" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')")
      cpu_ratios+=("$(awk -v a="${on_cpu[-1]}" -v b="${off_cpu[-1]}" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')")
      onr=$(awk -v n="$na" -v s="$SECS" 'BEGIN {printf "%.0f", n / s}'); offr=$(awk -v n="$nb" -v s="$SECS" 'BEGIN {printf "%.0f", n / s}')
      log "measurement c=$c run $rep: on $onr req/s ${on_cpu[-1]} us/req (thread ${thread_us[-1]}), off $offr req/s ${off_cpu[-1]} us/req"
    done
    tr=$(printf '%s\n' "${ratios[@]}" | median); cr=$(printf '%s\n' "${cpu_ratios[@]}" | median)
    oncpu=$(printf '%s\n' "${on_cpu[@]}" | median); offcpu=$(printf '%s\n' "${off_cpu[@]}" | median)
    thm=$(printf '%s\n' "${thread_us[@]}" | median)
    share=$(awk -v a="$thm" -v b="$oncpu" 'BEGIN {printf "%.1f", (b > 0) ? 100 * a / b : 0}')
    log "measurement c=$c throughput on/off=$tr cpu-us/req off=$offcpu on=$oncpu ratio=$cr thread=$thm (${share}%) $errs"
    MEASURE_ROWS+=("| 64 KiB ranges, 100 MB file | $c | **$tr** | $offcpu | $oncpu | **$cr** | $thm | **${share}%** | ${errs:-none} |")
  done
  sleep 2
  events1=$(metric_value rollcall_measurement_events_total); dropped1=$(metric_value rollcall_measurement_events_dropped_total)
  MEASURE_EVENTS=$(( ${events1%.*} - ${events0%.*} )); MEASURE_DROPPED=$(( ${dropped1%.*} - ${dropped0%.*} ))
  log "measurement stored $MEASURE_EVENTS events, dropped $MEASURE_DROPPED"
  kill "$OFF_PID"; wait "$OFF_PID" 2>/dev/null || true
  OFF_PID=""
fi

# --- personal feeds --------------------------------------------------------------------------
# A members feed through an officer's personal URL against the public feed it is built like
# (bench/personal.sh, its own catalog and server on the same CPUs; the servers above sit idle).
PERSONAL=""
if has_part personal; then
  PERSONAL=$(BENCH_DIR="$DIR/personal" BENCH_SECONDS=$SECS BENCH_REPS=$REPS bash "$REPO/bench/personal.sh")
fi

# --- memory per connection ---------------------------------------------------------------------
# Waits (at most 60 s) until a rollcall server has written what its start saves for the next one
# (its save-caches thread ends), so the warm start that follows can use it.
wait_saved() { for _ in $(seq 600); do grep -qs save-caches /proc/"$1"/task/*/comm || return 0; sleep 0.1; done; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $t; }
MEM_ROWS=()
memory() { # n
  local n=$1
  for s in nginx rollcall; do
    local port path pids before after ready per
    if [ $s = nginx ]; then port=$NGINX_PORT; path=$N_BIG100; pids=$(nginx_pids); else port=$ROLL_PORT; path=$R_BIG100; pids=$ROLL_PID; fi
    sleep 1
    before=$(rss_kb $pids)
    coproc SLOW { taskset -c $CLIENT_CPU python3 "$L/slow_clients.py" 127.0.0.1 "$port" "$path" 100000000 "$n" 12; }
    read -r ready <&"${SLOW[0]}"
    sleep 2
    after=$(rss_kb $pids)
    wait "$SLOW_PID" || true
    per=$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN {printf "%.1f", (a - b) / n}')
    log "memory $s n=$n before=${before}KB after=${after}KB per-connection=${per}KB ($ready)"
    MEM_ROWS+=("| $s | $n | $before | $after | **$per** | ${ready#ready } |")
  done
}
if has_part memory; then
  memory 1000
  memory 10000
fi

kill "$ROLL_PID" "$NGINX_PID" ${OFF_PID:-} 2>/dev/null || true
wait "$ROLL_PID" "$NGINX_PID" ${OFF_PID:-} 2>/dev/null || true
PIDS=()

# --- catalog scale -----------------------------------------------------------------------------
SCALE_ROWS=()
RERENDER=""
if [ "$SCALE" = 1 ] && has_part scale; then
  for n in 1000 10000 100000; do
    c=$DIR/cat$n
    gen "$c" $n
    rm -rf "$c/episodes/briefing-new"   # left behind by an interrupted run
    write_config "$c" 18090
    for run in cold warm; do
      [ $run = cold ] && rm -rf "$c/.rollcall"
      # Emptied here, not by the redirection below: that runs in the child, which the loop
      # after it can outrun and find the last start's "listening on" line.
      : > "$DIR/scale.out"
      start=$(date +%s%N)
      "$BIN" --config "$c/config.toml" serve > "$DIR/scale.out" 2> "$DIR/scale.log" &
      pid=$!; PIDS+=("$pid")
      until grep -q "listening on" "$DIR/scale.out" 2>/dev/null; do
        kill -0 $pid 2>/dev/null || { cat "$DIR/scale.log" >&2; exit 1; }
        sleep 0.01
      done
      ms=$(( ($(date +%s%N) - start) / 1000000 ))
      rss=$(rss_kb $pid)
      sleep 5
      settled=$(rss_kb $pid)
      log "scale n=$n $run startup=${ms}ms rss=${rss}KB after-5s=${settled}KB"
      SCALE_ROWS+=("| $n | $run | $ms | $((rss / 1024)) | $((settled / 1024)) |")
      if [ $n = 10000 ] && [ $run = warm ]; then
        # Add one episode while wrk keeps requesting, and time the reload.
        base=$(BENCH_PATH=/healthz taskset -c $CLIENT_CPU wrk -t1 -c16 -d3s -s "$L/headers.lua" http://127.0.0.1:18090 | awk '/Latency/ && !done {print $4; done=1}')
        BENCH_PATH=/healthz taskset -c $CLIENT_CPU wrk -t1 -c16 -d4s -s "$L/headers.lua" http://127.0.0.1:18090 > "$DIR/during.txt" &
        wrkpid=$!
        sleep 1
        rm -rf "$DIR/staging"; mkdir -p "$DIR/staging"
        python3 "$L/gen_catalog.py" --add "$DIR/staging" briefing-new 999999 "$DIR/tiny.mp3"
        t0=$(date +%s%N)
        mv "$DIR/staging/episodes/briefing-new" "$c/episodes/briefing-new"
        # (no pipe into grep -q: with pipefail, curl's SIGPIPE would fail the test forever)
        until curl -s -o "$DIR/feed.xml" "http://127.0.0.1:18090/feeds/bench.xml" && grep -q "/media/briefing-new/" "$DIR/feed.xml"; do sleep 0.005; done
        visible=$(( ($(date +%s%N) - t0) / 1000000 ))
        wait $wrkpid || true
        during=$(awk '/Latency/ && !done {print $4; done=1}' "$DIR/during.txt")
        reload=$(grep "catalog reloaded" "$DIR/scale.log" | tail -1 | grep -o 'elapsed_ms=[0-9]*' | cut -d= -f2 || true)
        log "re-render: reload=${reload}ms visible-after=${visible}ms max-latency base=$base during=$during"
        RERENDER="| 10,000 + 1 | ${reload} | ${visible} | $base | $during |"
        rm -rf "$c/episodes/briefing-new" "$DIR/staging"
      fi
      wait_saved $pid
      kill $pid; wait $pid 2>/dev/null || true
    done
  done
fi

# --- report ------------------------------------------------------------------------------------
{
  echo "Produced by \`bash bench/run.sh\` (BENCH_SECONDS=$SECS, BENCH_REPS=$REPS) on $(date -u +%Y-%m-%d)."
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)."
  echo "Versions: rollcall $(git -C "$REPO" rev-parse --short HEAD), $(rustc -V), $(nginx -v 2>&1 | sed 's/.*: //'), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')."
  echo "Both servers run on CPU $SERVER_CPU (nginx: 1 worker, sendfile on, tcp_nopush off, etag on, access log to a file buffered 256 KiB / 100 ms like rollcall's,"
  echo "gzip_static with a pre-compressed copy); wrk runs with 1 thread on CPU $CLIENT_CPU. Each cell is the median of"
  echo "$REPS runs of ${SECS}s, nginx and rollcall alternating. The machine is shared and noisy: compare ratios, not absolutes."
  echo
  echo "## Throughput"
  echo
  echo "| scenario | connections | nginx req/s | rollcall req/s | nginx MB/s | rollcall MB/s | rollcall/nginx | rollcall/nginx, at once | nginx CPU µs/req | rollcall CPU µs/req | CPU rollcall/nginx | CPU rollcall/nginx, at once | errors |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "CPU µs/req is the server's user+system time (utime+stime from \`/proc/PID/stat\`: nginx master and"
  echo "worker, rollcall's process with all its threads), read immediately before and after each wrk run and"
  echo "divided by the requests wrk completed in that run; each cell is a median like the others, and lower is"
  echo "better in the CPU ratio. The counters move in clock ticks of $((1000 / HZ)) ms, so runs must last seconds: a"
  echo "${SECS}s run that keeps the server's core busy is $((SECS * HZ)) ticks, read to within 2 ticks ($(awk -v t=$((SECS * HZ)) 'BEGIN {printf "%.1f", 200 / t}')%), and at"
  echo "~30k req/s it completes ~$((SECS * 30))k requests. CPU spent on responses still in flight when wrk stops is"
  echo "counted but those responses are not, so the cell is too high where a run completes few requests per"
  echo "connection: the whole-file and uncompressed-feed rows, at 256 connections above all."
  echo
  echo "\"At once\" columns measure the same ratios another way: $REPS more runs of ${SECS}s per cell, in which"
  echo "both servers take the same load at the same time, each from its own wrk (both servers on CPU"
  echo "$SERVER_CPU, both clients on CPU $CLIENT_CPU), and the median of the runs' ratios. Whatever else the machine"
  echo "does in those seconds hits both servers alike, which alternating runs cannot promise; each server"
  echo "gets about half the cores it gets alone, so its own figures are not comparable with the columns"
  echo "before, only the ratio is. For the 1 MiB ranges, the whole file and the uncompressed feed, of"
  echo "which a run completes few responses per connection, the ratio is of CPU per byte wrk read"
  echo "(complete and partial responses alike; both servers send the same bytes per response), so that"
  echo "responses still in flight at the end do not weigh on one server more than the other. The"
  echo "throughput ratio at once is of what the two clients got in those same seconds (bytes read, or"
  echo "requests for the 304s): where the servers' core is the limit it follows their costs, and where the"
  echo "clients' is, it shows whether either server's responses cost its client more to read."
  echo
  echo "The feed is $FEED_BYTES bytes uncompressed."
  echo
  if [ ${#MEASURE_ROWS[@]} -gt 0 ]; then
    echo "## The cost of download measurement"
    echo
    echo "The same 64 KiB range load against the same catalog, served by two servers started together just"
    echo "before: one with measurement on (every response stored as an event in SQLite and counted, into the"
    echo "database the throughput part filled) and one with \`[measurement] enabled = false\`. Both run at once,"
    echo "on CPU $SERVER_CPU, each loaded by its own wrk on CPU $CLIENT_CPU, for $MREPS runs of ${SECS}s: whatever else the"
    echo "machine does hits both alike, which alternating runs could not promise (identical runs here differ by"
    echo "more than 5%). Each cell is the median of the runs' ratios. CPU is each whole process, user+system"
    echo "time per request; the measurement thread's own CPU (its \`/proc/PID/task/TID/stat\`, read 1.5 s after"
    echo "each run, once its last batch is written) is given too, with its share of the measuring server's"
    echo "CPU per request. Target: throughput on/off at least 0.95, CPU per request on/off at most 1.05."
    echo
    echo "| scenario | connections (each) | throughput on/off | off CPU µs/req | on CPU µs/req | CPU on/off | measurement thread µs/req | its share | errors |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${MEASURE_ROWS[@]}"
    echo
    echo "Events stored during these runs: $MEASURE_EVENTS; dropped (queue full or store unwritable): $MEASURE_DROPPED."
    echo
  fi
  if [ -n "$PERSONAL" ]; then
    echo "## Personal feeds against the public feed"
    echo
    echo "$PERSONAL"
    echo
  fi
  echo "## Memory per connection during slow downloads"
  echo
  echo "Clients hold \`Range: bytes=X-\` requests for the 100 MB file open, read 4 KB, then stop reading"
  echo "(\`bench/slow_clients.py\`). Resident memory of the server process(es) before and while they wait."
  echo
  echo "| server | connections | RSS before (KB) | RSS during (KB) | KB per connection | clients with 206 / failed / refused |"
  echo "| --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${MEM_ROWS[@]}"
  if [ "$SCALE" = 1 ]; then
    echo
    echo "## Catalog scale"
    echo
    echo "Time from starting \`rollcall serve\` to its \`listening on\` line, and resident memory then and 5 s later"
    echo "(after background compression and watcher setup). \"cold\" starts without \`.rollcall\` (no measurements,"
    echo "parsed episodes or rendered items saved); \"warm\" is the next start, once the cold one has saved them."
    echo
    echo "| episodes | start | startup (ms) | RSS at ready (MB) | RSS 5 s later (MB) |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${SCALE_ROWS[@]}"
    echo
    echo "## Re-render after adding one episode"
    echo
    echo "\`reload\` is the server's own timing of load + render until the new feed is live (log line"
    echo "\`catalog reloaded\`; the gzip variant is stitched before the feed goes live, brotli follows on a"
    echo "background thread);"
    echo "\`visible after\` runs from the new folder's creation until the feed shows it, including the"
    echo "watcher's 200 ms settle time. Max latency is wrk's, for \`/healthz\` requests, before and during the reload."
    echo
    echo "| catalog | reload (ms) | visible after (ms) | max latency before | max latency during |"
    echo "| --- | --- | --- | --- | --- |"
    echo "$RERENDER"
  fi
} > "$DIR/results.md"
cat "$DIR/results.md"
# Replace the measured section of BENCHMARKS.md, keeping the notes around it.
python3 - "$OUT" "$DIR/results.md" <<'PY'
import os, sys
out, results = sys.argv[1], open(sys.argv[2]).read()
start, end = "<!-- results:start -->", "<!-- results:end -->"
text = open(out).read() if os.path.exists(out) else f"{start}\n{end}\n"
if start not in text or end not in text:
    text = f"{start}\n{end}\n" + text
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open(out, "w").write(f"{head}{start}\n{results}{end}{tail}")
PY
log "wrote $OUT"
