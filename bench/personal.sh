#!/usr/bin/env bash
# Personal (members) feeds against the public feed they are built like, on one machine in one run:
# a 5,000-episode catalog whose `bench` feed is public and whose `members` feed (access =
# "members", episodes = "all") carries the same 5,000 episodes through an officer's personal URL.
# Alternating wrk runs (1 thread on CPU 1; the release server on CPU 0, loopback only) measure
# requests per second and the server's CPU per request for: the public feed GET, the personal
# feed GET, and the 304 of each (If-None-Match with its own ETag).
# Usage: bash bench/personal.sh   Env: BENCH_SECONDS (per run, default 5), BENCH_REPS (default 3),
# BENCH_DIR (default /tmp/rollcall-bench-personal), BENCH_ROWS (which requests, default "get gzip 304").
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/rollcall-bench-personal}
SECS=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
ROWS=${BENCH_ROWS:-get gzip 304}
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
etag() { curl -sI "http://127.0.0.1:$PORT$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }
P_ETAG=$(etag $PUBLIC); M_ETAG=$(etag "$PERSONAL")
P_BYTES=$(curl -s "http://127.0.0.1:$PORT$PUBLIC" | wc -c); M_BYTES=$(curl -s "http://127.0.0.1:$PORT$PERSONAL" | wc -c)
gz_bytes() { curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PORT$1" | wc -c; }
# The first gzip request, right after the start: stitched at build time, not compressed later.
P_GZ=$(gz_bytes $PUBLIC); M_GZ=$(gz_bytes "$PERSONAL")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$PERSONAL")" = 200 ] || { echo "the personal feed does not answer" >&2; exit 1; }

HZ=$(getconf CLK_TCK)
ticks() { sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}'; }
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
