# Sourced by the bench scripts that drive one scenario (abn.sh, pair.sh, spot.sh, threads.sh,
# allocs.sh, flat.sh): sets up one wrk scenario against a running server, and starts rollcall.
#
#   scenario 304|feed|range64|range1m|whole|page BASE_URL nginx|rollcall
#
# `scenario` exports the BENCH_* variables the wrk scripts read and sets `script` to the wrk script to run.
# Returns 2 for an unknown scenario.
scenario() {
  local name=$1 base=$2 server=$3 feed media
  case $name in
    304)
      export BENCH_PATH=/feeds/bench.xml
      BENCH_INM=$(curl -sI "$base$BENCH_PATH" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
      export BENCH_INM
      script=bench/headers.lua ;;
    feed) # the whole 5,000-episode feed, uncompressed
      export BENCH_PATH=/feeds/bench.xml
      script=bench/headers.lua ;;
    range64|range1m|whole)
      media=big100
      if [ "$name" = whole ]; then media=big30; fi
      if [ "${server#nginx}" != "$server" ]; then BENCH_PATH=/big/$media.mp3
      # Read whole, not piped: grep -m1 would cut curl off (SIGPIPE), and pipefail end the
      # calling script with its server still running.
      else feed=$(curl -s "$base/feeds/big.xml"); BENCH_PATH=$(grep -o -m1 "/media/$media/[^\"]*\.mp3" <<<"$feed"); fi
      export BENCH_PATH BENCH_SIZE=100000000 BENCH_WINDOW=65536
      if [ "$name" = range1m ]; then BENCH_WINDOW=1048576; fi
      script=bench/range.lua
      if [ "$name" = whole ]; then script=bench/headers.lua; fi ;;
    page)
      export BENCH_PATH=/episodes/briefing-000001 BENCH_AE=gzip
      curl -s -o /dev/null -H "Accept-Encoding: gzip" "$base$BENCH_PATH" # render it once
      script=bench/headers.lua ;;
    *) return 2 ;;
  esac
}

# Starts rollcall BINARY on CPU 0 with the 5,000-episode catalog bench/run.sh generates in $DIR,
# waits until it answers, then SETTLE seconds more (default 1.5: startup compression), and stops
# it when the calling script exits. Sets `pid` and `base`.
#
#   serve_rollcall BINARY [SETTLE]
serve_rollcall() {
  [ -f "$DIR/cat5k/config.toml" ] || { echo "run bash bench/run.sh once first to generate $DIR" >&2; exit 1; }
  base=http://127.0.0.1:18081
  taskset -c 0 "$1" --config "$DIR/cat5k/config.toml" serve >/dev/null 2>&1 &
  pid=$!
  # shellcheck disable=SC2064 # the pid is fixed now
  trap "kill $pid 2>/dev/null || true; ${SERVE_CLEANUP:-}" EXIT
  for _ in $(seq 1 200); do curl -s -o /dev/null "$base/" && break; sleep 0.05; done
  sleep "${2:-1.5}"
}
