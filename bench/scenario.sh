# Sourced by bench/abn.sh and bench/spot.sh: sets up one wrk scenario against a running server.
#
#   scenario 304|feed|range64|whole|page BASE_URL nginx|rollcall
#
# Exports the BENCH_* variables the wrk scripts read and sets `script` to the wrk script to run.
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
    range64|whole)
      media=big100
      if [ "$name" = whole ]; then media=big30; fi
      if [ "${server#nginx}" != "$server" ]; then BENCH_PATH=/big/$media.mp3
      # Read whole, not piped: grep -m1 would cut curl off (SIGPIPE), and pipefail end the
      # calling script with its server still running.
      else feed=$(curl -s "$base/feeds/big.xml"); BENCH_PATH=$(grep -o -m1 "/media/$media/[^\"]*\.mp3" <<<"$feed"); fi
      export BENCH_PATH BENCH_SIZE=100000000 BENCH_WINDOW=65536
      script=bench/range.lua
      if [ "$name" = whole ]; then script=bench/headers.lua; fi ;;
    page)
      export BENCH_PATH=/episodes/briefing-000001 BENCH_AE=gzip
      curl -s -o /dev/null -H "Accept-Encoding: gzip" "$base$BENCH_PATH" # render it once
      script=bench/headers.lua ;;
    *) return 2 ;;
  esac
}
