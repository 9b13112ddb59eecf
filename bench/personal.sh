#!/usr/bin/env bash
# Personal (members) feeds against the public feed they are built like, on one machine in one run:
# a 5,000-episode catalog whose `bench` feed is public and whose `members` feed (access =
# "members", episodes = "all") carries the same 5,000 episodes through an officer's personal URL.
# Alternating wrk runs (1 thread on CPU 1; the release server on CPU 0, loopback only) measure
# requests per second and the server's CPU per request for: the public feed GET, the personal
# feed GET, and the 304 of each (If-None-Match with its own ETag).
# Then, at once: a second server of the same build (its own state folder, officer and port) starts
# on CPU 0 beside the first, and in each run one serves the public request while the other serves
# the personal one, each under its own wrk on CPU 1; the next run swaps them. Whatever slows the
# machine slows both sides alike, which alternating runs cannot promise: on this shared VM the
# same request's rate moves by 15-25% between runs a minute apart. Both servers get the CPU in
# turn, so each side's rate follows its cost; the second table gives the medians of the runs'
# personal/public ratios of rate and of CPU per request.
# Usage: bash bench/personal.sh   Env: BENCH_SECONDS (per run, default 5), BENCH_REPS (default 3),
# BENCH_DIR (default /tmp/rollcall-bench-personal), BENCH_ROWS (which requests, default "get gzip 304"),
# BENCH_AT_ONCE_ROWS (which requests at once, default "gzip 304"; empty for none).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/rollcall-bench-personal}
SECS=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
ROWS=${BENCH_ROWS:-get gzip 304}
AT_ONCE_ROWS=${BENCH_AT_ONCE_ROWS-gzip 304}
PORT=18097
for t in wrk taskset python3 curl ffmpeg; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done
mkdir -p "$DIR"
(cd "$REPO" && cargo build --release -q)
BIN=$REPO/target/release/rollcall
log() { echo "[personal] $*" >&2; }

[ -f "$DIR/tiny.mp3" ] || ffmpeg -v error -y -f lavfi -i "sine=f=440:d=3" -ac 1 -c:a libmp3lame -b:a 32k "$DIR/tiny.mp3"
CAT=$DIR/cat5k
if [ ! -f "$CAT/.complete" ]; then
  log "generating a 5,000-episode catalog"
  rm -rf "$CAT"
  python3 "$REPO/bench/gen_catalog.py" "$CAT" 5000 "$DIR/tiny.mp3" "$REPO/feeds/defusing-difficult-encounters.jpg"
  # The same feed, members-only, carrying every episode: "all" on a members feed takes them all.
  sed -e 's/^episodes = .*/episodes = "all"\naccess = "members"/' -e 's/^artwork = .*/artwork = "members.jpg"/' \
    "$CAT/feeds/bench.toml" > "$CAT/feeds/members.toml"
  ln -f "$CAT/feeds/bench.jpg" "$CAT/feeds/members.jpg"
  touch "$CAT/.complete"
fi
. "$REPO/bench/personal_server.sh"
PUBLIC=/feeds/bench.xml
# etag_at PORT PATH -> the ETag that server gives PATH; etag PATH -> the first server's.
etag_at() { curl -sI "http://127.0.0.1:$1$2" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }
etag() { etag_at "$PORT" "$1"; }
P_ETAG=$(etag $PUBLIC); M_ETAG=$(etag "$PERSONAL")
P_BYTES=$(curl -s "http://127.0.0.1:$PORT$PUBLIC" | wc -c); M_BYTES=$(curl -s "http://127.0.0.1:$PORT$PERSONAL" | wc -c)
gz_bytes() { curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PORT$1" | wc -c; }
# The first gzip request, right after the start: stitched at build time, not compressed later.
P_GZ=$(gz_bytes $PUBLIC); M_GZ=$(gz_bytes "$PERSONAL")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$PERSONAL")" = 200 ] || { echo "the personal feed does not answer" >&2; exit 1; }

HZ=$(getconf CLK_TCK)
ticks() { sed 's/.*) //' "/proc/${1:-$PID}/stat" | awk '{print $12 + $13}'; }
# run PATH INM CONNS [AE] -> "req_per_sec cpu_us_per_req"
run() {
  local t0 t1 out reqs
  t0=$(ticks)
  out=$(BENCH_PATH=$1 BENCH_INM=$2 BENCH_AE=${4:-} taskset -c 1 wrk -t1 -c"$3" -d"${SECS}s" --timeout 10s -s "$REPO/bench/headers.lua" "http://127.0.0.1:$PORT" 2>&1)
  t1=$(ticks)
  reqs=$(awk '/ requests in / {print $1}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers for $1" >&2; exit 1; fi
  echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="${reqs:-0}" 'BEGIN {printf "%.1f", (n > 0) ? t / hz * 1e6 / n : 0}')"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rows=()
pair() { # label public-path public-inm personal-path personal-inm conns [accept-encoding]
  local pr=() pc=() mr=() mc=() r c
  for rep in $(seq 1 "$REPS"); do
    local order="p m"; [ $((rep % 2)) -eq 0 ] && order="m p"
    for s in $order; do
      if [ "$s" = p ]; then read -r r c <<<"$(run "$2" "$3" "$6" "${7:-}")"; pr+=("$r"); pc+=("$c")
      else read -r r c <<<"$(run "$4" "$5" "$6" "${7:-}")"; mr+=("$r"); mc+=("$c"); fi
    done
  done
  local a b ca cb
  a=$(printf '%s\n' "${pr[@]}" | median); b=$(printf '%s\n' "${mr[@]}" | median)
  ca=$(printf '%s\n' "${pc[@]}" | median); cb=$(printf '%s\n' "${mc[@]}" | median)
  local ratio; ratio=$(awk -v a="$b" -v b="$a" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
  log "$1 c=$6 public=$a personal=$b ratio=$ratio cpu public=$ca personal=$cb"
  rows+=("| $1 | $6 | $a | $b | **$ratio** | $ca | $cb |")
}
row() { [[ " $ROWS " == *" $1 "* ]]; }
for c in 16 256; do
  if row get; then pair "feed GET" $PUBLIC "" "$PERSONAL" "" $c; fi
  if row gzip; then pair "feed GET, gzip" $PUBLIC "" "$PERSONAL" "" $c gzip; fi
  if row 304; then pair "feed 304" $PUBLIC "$P_ETAG" "$PERSONAL" "$M_ETAG" $c; fi
done
echo "Personal feeds, $(date -u +%Y-%m-%d), rollcall $(git -C "$REPO" rev-parse --short HEAD): public feed $P_BYTES bytes, personal feed $M_BYTES bytes (5,000 episodes each); gzip $P_GZ and $M_GZ bytes on the first request after the start; medians of $REPS alternating ${SECS}-second runs."
echo
echo "| request | connections | public req/s | personal req/s | personal/public | public CPU µs/req | personal CPU µs/req |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"

# --- at once ---------------------------------------------------------------------------------
# A second server of the same build beside the first; in each run one serves the public request
# and the other the personal one, the next run the other way round (see the head of this file).
if [ -n "$AT_ONCE_ROWS" ]; then
  PORT_B=$((PORT + 1))
  start_personal "$PORT_B" -b
  PID_B=$STARTED_PID
  PERSONAL_B=$STARTED_PERSONAL
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_B$PERSONAL_B")" = 200 ] || { echo "the second server's personal feed does not answer" >&2; exit 1; }
  sleep 2 # its start's background work
  # both KIND CONNS SWAP -> "rate_ratio cpu_ratio public_rps personal_rps": public on the first
  # server and personal on the second, or (SWAP=1) the other way round, loaded at the same time.
  both() {
    local ae="" pub_port=$PORT pub_pid=$PID per_port=$PORT_B per_pid=$PID_B per_path=$PERSONAL_B pub_inm="" per_inm=""
    if [ "$3" = 1 ]; then pub_port=$PORT_B pub_pid=$PID_B per_port=$PORT per_pid=$PID per_path=$PERSONAL; fi
    if [ "$1" = gzip ]; then ae=gzip; fi
    if [ "$1" = 304 ]; then pub_inm=$(etag_at $pub_port $PUBLIC); per_inm=$(etag_at $per_port "$per_path"); fi
    local p0 m0 p1 m1 w1 w2
    p0=$(ticks $pub_pid); m0=$(ticks $per_pid)
    BENCH_PATH=$PUBLIC BENCH_INM=$pub_inm BENCH_AE=$ae taskset -c 1 wrk -t1 -c"$2" -d"${SECS}s" --timeout 10s -s "$REPO/bench/headers.lua" "http://127.0.0.1:$pub_port" > "$DIR/wrk-public" 2>&1 &
    w1=$!
    BENCH_PATH=$per_path BENCH_INM=$per_inm BENCH_AE=$ae taskset -c 1 wrk -t1 -c"$2" -d"${SECS}s" --timeout 10s -s "$REPO/bench/headers.lua" "http://127.0.0.1:$per_port" > "$DIR/wrk-personal" 2>&1 &
    w2=$!
    wait $w1 $w2
    p1=$(ticks $pub_pid); m1=$(ticks $per_pid)
    if grep -q "Non-2xx" "$DIR/wrk-public" "$DIR/wrk-personal"; then echo "non-2xx answers at once ($1)" >&2; exit 1; fi
    local np nm
    np=$(awk '/ requests in / {print $1}' "$DIR/wrk-public"); nm=$(awk '/ requests in / {print $1}' "$DIR/wrk-personal")
    awk -v tp=$((p1 - p0)) -v tm=$((m1 - m0)) -v np="${np:-0}" -v nm="${nm:-0}" -v s="$SECS" 'BEGIN {
      cp = (np > 0) ? tp / np : 0; cm = (nm > 0) ? tm / nm : 0
      printf "%.4f %.4f %.0f %.0f", (np > 0) ? nm / np : 0, (cp > 0) ? cm / cp : 0, np / s, nm / s }'
  }
  at_rows=()
  for c in 16 256; do
    for kind in $AT_ONCE_ROWS; do
      rr=() cr=() pr=() mr=()
      for rep in $(seq "$REPS"); do
        for swap in 0 1; do
          read -r a b p m <<<"$(both "$kind" $c $swap)"
          rr+=("$a"); cr+=("$b"); pr+=("$p"); mr+=("$m")
          log "at once $kind c=$c run $rep swap=$swap public=$p personal=$m rate personal/public=$a cpu personal/public=$b"
        done
      done
      label="feed 304"; [ "$kind" = gzip ] && label="feed GET, gzip"; [ "$kind" = get ] && label="feed GET"
      at_rows+=("| $label | $c | $((2 * REPS)) | $(printf '%s\n' "${pr[@]}" | median) | $(printf '%s\n' "${mr[@]}" | median) | **$(printf '%s\n' "${rr[@]}" | median | awk '{printf "%.2f", $1}')** | $(printf '%s\n' "${cr[@]}" | median | awk '{printf "%.2f", $1}') |")
    done
  done
  echo
  echo "At once: two servers of this build on CPU 0, one serving the public request and the other the personal one at the same time, each under its own wrk (-t1, CPU 1), swapped every run; ${SECS}-second runs; medians of the runs' figures and of their personal/public ratios."
  echo
  echo "| request | connections | runs | public req/s | personal req/s | personal/public rate | personal/public CPU per request |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${at_rows[@]}"
fi
